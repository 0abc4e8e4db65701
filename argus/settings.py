"""One typed settings object for Argus, read from ``ARGUS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Domain = Literal["medical", "industrial"]
Device = Literal["auto", "cpu", "cuda"]
SegmenterArch = Literal["unet", "deeplabv3plus"]


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``ARGUS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_", extra="ignore")

    data_dir: Path = Field(default=Path(".argus"), description="Root for the database, objects and caches.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir.")
    object_store: str | None = Field(
        default=None,
        description="Object store URL (file:///dir or s3://bucket/prefix); default file://<data_dir>/objects.",
    )
    s3_endpoint: str | None = Field(default=None, description="S3 server as host:port (for s3:// stores).")
    s3_access_key: str | None = Field(default=None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    s3_secure: bool = Field(default=True, description="HTTPS to the S3 endpoint (false for plain HTTP).")
    s3_region: str = Field(default="us-east-1", min_length=1, description="S3 region of the bucket.")
    device: Device = "auto"
    actor: str = Field(default="argus", description="Who is recorded in the audit trail for CLI actions.")

    medical_detector: Path | None = Field(
        default=None, description="YOLO .pt (or exported .onnx / .torchscript) for lesions; default shipped."
    )
    industrial_detector: Path | None = Field(
        default=None, description="YOLO .pt (or exported .onnx / .torchscript) for defects; default shipped."
    )
    medical_segmenter: Path | None = Field(default=None, description="Segmenter weights for lesions.")
    industrial_segmenter: Path | None = Field(default=None, description="Segmenter weights for defects.")
    medical_segmenter_arch: SegmenterArch = Field(
        default="unet", description="Shipped segmenter (and the architecture of a bare user state dict)."
    )
    industrial_segmenter_arch: SegmenterArch = Field(default="unet", description="As medical_segmenter_arch.")
    medical_detector_sha256: str | None = Field(default=None, description="Refuse other detector weights.")
    industrial_detector_sha256: str | None = Field(default=None, description="Refuse other detector weights.")
    medical_segmenter_sha256: str | None = Field(default=None, description="Refuse other segmenter weights.")
    industrial_segmenter_sha256: str | None = Field(
        default=None, description="Refuse other segmenter weights."
    )

    detector_confidence: float = Field(default=0.25, ge=0.0, le=1.0)
    detector_iou: float = Field(default=0.45, ge=0.0, le=1.0)
    detector_batch: int = Field(default=8, ge=1, le=256)
    reporter: Literal["auto", "template", "transformers", "openai"] = Field(
        default="auto",
        description="auto: our own VLM for a domain whose model card meets the default bar, else the "
        "template; or one backend for every domain.",
    )
    reporter_model: str | None = Field(
        default=None,
        description="transformers: a local model directory (default: our own model of the study's domain); "
        "openai: the endpoint's model name.",
    )
    reporter_url: str | None = Field(
        default=None, description="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1."
    )
    reporter_api_key: SecretStr | None = Field(default=None, description="Bearer token for the endpoint.")
    reporter_timeout: float = Field(default=120.0, gt=0, description="Seconds per endpoint request.")
    reporter_retries: int = Field(default=2, ge=0, le=10, description="Retries on 5xx and connection errors.")
    reporter_max_new_tokens: int = Field(default=768, ge=16, le=8192)
    reporter_temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy (no sampling).")
    reporter_top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    reporter_guided: bool = Field(
        default=True,
        description="transformers: the answer's fixed values come from the findings; the model writes text.",
    )
    reporter_max_crops: int = Field(default=8, ge=0, le=64, description="ROI crops sent per study.")
    reporter_crop_margin: float = Field(
        default=0.5, ge=0.0, le=4.0, description="Context around a box, as a fraction of its size."
    )
    reporter_crop_size: int = Field(default=224, ge=16, le=1024, description="Longest side of a crop (px).")

    run_lease_seconds: float = Field(
        default=3600.0, gt=0, description="A running run without a heartbeat for this long counts as crashed."
    )
    max_image_pixels: int = Field(default=64_000_000, ge=1, description="Larger images are rejected.")
    min_image_side: int = Field(default=16, ge=1, description="Smaller images are rejected.")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(
                f"ARGUS_DATABASE_URL must be a SQLAlchemy URL such as sqlite:///x.db, got {value!r}"
            )
        return value

    @field_validator(
        "medical_detector_sha256",
        "industrial_detector_sha256",
        "medical_segmenter_sha256",
        "industrial_segmenter_sha256",
    )
    @classmethod
    def _check_sha256(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower()):
            raise ValueError(f"a sha256 pin must be 64 hex digits, got {value!r}")
        return value.lower()

    @field_validator("object_store")
    @classmethod
    def _check_object_store(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file://", "s3://")):
            raise ValueError(f"ARGUS_OBJECT_STORE must be a file:// or s3://bucket/prefix URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.object_store and self.object_store.startswith("s3://"):
            required = {"ARGUS_S3_ENDPOINT": self.s3_endpoint, "ARGUS_S3_ACCESS_KEY": self.s3_access_key}
            required["ARGUS_S3_SECRET_KEY"] = (
                self.s3_secret_key.get_secret_value() if self.s3_secret_key else ""
            )
            missing = [name for name, value in required.items() if not value]
            if missing:
                raise ValueError(f"ARGUS_OBJECT_STORE={self.object_store} needs {', '.join(missing)}")
        return self

    @field_validator("reporter_url")
    @classmethod
    def _check_reporter_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"ARGUS_REPORTER_URL must be an http(s):// URL, got {value!r}")
        return None if value is None else value.rstrip("/")

    @model_validator(mode="after")
    def _check_reporter_backend(self) -> Settings:
        if self.reporter == "openai" and not (self.reporter_url and self.reporter_model):
            raise ValueError(
                "ARGUS_REPORTER=openai needs ARGUS_REPORTER_URL (the API base) and ARGUS_REPORTER_MODEL"
            )
        return self

    @property
    def resolved_data_dir(self) -> Path:
        """The data directory as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'argus.db'}"

    @property
    def resolved_object_store(self) -> str:
        """The object store URL, defaulting to ``file://<data_dir>/objects``."""
        return self.object_store or f"file://{self.resolved_data_dir / 'objects'}"

    def detector_weights(self, domain: str) -> Path | None:
        """User-configured detector weights for a domain, or None for the shipped ones."""
        return self.medical_detector if domain == "medical" else self.industrial_detector

    def segmenter_weights(self, domain: str) -> Path | None:
        """User-configured segmenter weights for a domain, or None for the shipped ones."""
        return self.medical_segmenter if domain == "medical" else self.industrial_segmenter

    def segmenter_arch(self, domain: str) -> SegmenterArch:
        """The segmenter architecture selected for a domain."""
        return self.medical_segmenter_arch if domain == "medical" else self.industrial_segmenter_arch

    def weights_pin(self, kind: str, domain: str) -> str | None:
        """The sha256 the ``kind`` weights of ``domain`` must have, if pinned."""
        value: str | None = getattr(self, f"{domain}_{kind}_sha256")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
