"""What configures a language-model reporter: backend, model, generation and ROI crop settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class GenerationSettings(BaseModel):
    """Decoding settings; part of every cache key and run key because they change the text."""

    model_config = ConfigDict(frozen=True)

    max_new_tokens: int = Field(default=768, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)  # 0 means greedy decoding
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    # Guided decoding (local models): the answer's fixed values (count, indices, labels, sizes) are
    # written from the findings and the model writes the strings (descriptions, impression).
    guided: bool = True

    @property
    def do_sample(self) -> bool:
        """Sampling only when a temperature is set; greedy output is reproducible."""
        return self.temperature > 0

    def as_record(self) -> dict[str, float | int | bool]:
        """The settings as stored with each report."""
        return {**self.model_dump(), "do_sample": self.do_sample}


class CropSettings(BaseModel):
    """How many ROI crops a study sends, how much context each has, and how large they may be."""

    model_config = ConfigDict(frozen=True)

    max_crops: int = Field(default=8, ge=0)
    margin: float = Field(default=0.5, ge=0.0)  # context on each side, as a fraction of the box size
    max_side: int = Field(default=224, ge=8)


class ReporterConfig(BaseModel):
    """A reporter backend and everything that shapes its output."""

    model_config = ConfigDict(frozen=True)

    backend: Literal["template", "transformers", "openai"] = "template"
    model: str | None = None  # local model directory (transformers) or the endpoint's model name (openai)
    url: str | None = None  # OpenAI-compatible API base, ending before /chat/completions
    api_key: SecretStr | None = None
    timeout: float = Field(default=120.0, gt=0)
    retries: int = Field(default=2, ge=0)
    generation: GenerationSettings = GenerationSettings()
    crops: CropSettings = CropSettings()
