"""``transformers`` backend: any local image-text-to-text model directory, loaded offline.

LLaVA-, Qwen2-VL- and Idefics/SmolVLM-style directories all load through ``AutoProcessor`` and
``AutoModelForImageTextToText``; the directory must hold the processor (with a chat template) next to
the weights. Nothing is fetched: ``local_files_only`` and the offline flags are always set.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from models.offline import configure_offline_ml
from models.registry import sha256_file
from models.reporter.chat import BackendError, ChatMessage, Completion, OpenString, Skeleton, message_parts
from models.reporter.config import GenerationSettings
from models.reporter.copying import CopyConstraint

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def check_model_dir(model_dir: Path) -> None:
    """Fail early, naming the directory, when it cannot be a transformers model directory."""
    if not model_dir.is_dir():
        raise BackendError(f"reporter model dir {model_dir} does not exist (ARGUS_REPORTER_MODEL)")
    if not (model_dir / "config.json").is_file():
        raise BackendError(f"reporter model dir {model_dir} has no config.json: not a transformers model dir")


def weights_sha256(model_dir: Path) -> str:
    """sha256 over the model directory's weight files (name and sha256 of each, sorted by name)."""
    check_model_dir(model_dir)
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        kinds = ", ".join(WEIGHT_SUFFIXES)
        raise BackendError(f"reporter model dir {model_dir} holds no weight files ({kinds})")
    # Sizes and mtimes in the cache key: a file replaced in place is hashed again, an unchanged one not.
    stamp = tuple(
        (p.relative_to(model_dir).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    return _weights_digest(model_dir, stamp)


@lru_cache(maxsize=8)
def _weights_digest(model_dir: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _size, _mtime in stamp:
        digest.update(f"{name}:{sha256_file(model_dir / name)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LoadedVlm:
    """A processor and model pair on one device."""

    processor: Any
    model: Any
    device: str


def _dtype(device: str) -> Any:
    import torch

    if device != "cuda":
        return torch.float32  # half precision on CPU is slow or unsupported for many ops
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def read_vlm(model_dir: Path, dtype: Any) -> tuple[Any, Any]:
    """Processor and model from ``model_dir`` in ``dtype``, offline and uncached (``load_vlm`` caches
    for inference; training further takes its own float32 copy)."""
    check_model_dir(model_dir)
    configure_offline_ml()
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
    except Exception as exc:  # config, weights and processor errors come in many types; all mean the same
        raise BackendError(f"cannot load the reporter model from {model_dir}: {exc}") from exc
    if getattr(processor, "chat_template", None) is None:
        raise BackendError(f"reporter model dir {model_dir} has no chat template for its processor")
    return processor, model


@lru_cache(maxsize=2)
def load_vlm(model_dir: Path, sha256: str, device: str) -> LoadedVlm:
    """Processor and model from ``model_dir``, cached per (dir, weights sha256, device)."""
    processor, model = read_vlm(model_dir, _dtype(device))
    loaded: Any = model  # the Auto class's decorated .to() confuses type checkers
    return LoadedVlm(processor, loaded.to(device).eval(), device)


def chat_turns(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages in the chat-template form transformers processors take (images at their slots)."""
    return [
        {
            "role": m.role,
            "content": [
                {"type": "text", "text": part} if isinstance(part, str) else {"type": "image"}
                for part in message_parts(m)
            ],
        }
        for m in messages
    ]


def message_images(messages: list[ChatMessage]) -> list[Any]:
    """The messages' crops as RGB PIL images, in slot order (what the processor takes)."""
    from PIL import Image

    return [Image.open(io.BytesIO(c.png)).convert("RGB") for m in messages for c in m.images]


class TransformersBackend:
    """Generates locally with a cached model; the text never leaves the process."""

    name = "transformers"
    external = False

    def __init__(self, model_dir: Path, device: str, generation: GenerationSettings) -> None:
        self.model_dir = model_dir.resolve()
        self.model = str(self.model_dir)
        self._sha256 = weights_sha256(self.model_dir)
        self.weights_sha256: str | None = self._sha256
        self.device = device
        self.generation = generation

    def identity(self) -> dict[str, str | None]:
        """Backend, model dir and the sha256 of its weights."""
        return {"backend": self.name, "model": self.model, "weights_sha256": self.weights_sha256}

    def complete(self, messages: list[ChatMessage], skeleton: Skeleton | None = None) -> Completion:
        """Greedy (or sampled, with a temperature) generation of at most ``max_new_tokens`` tokens;
        with a ``skeleton``, guided: only its open strings are generated."""
        import torch

        vlm = load_vlm(self.model_dir, self._sha256, self.device)
        chat = chat_turns(messages)
        images = message_images(messages)
        try:
            text = vlm.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            inputs = vlm.processor(text=text, images=images or None, return_tensors="pt").to(vlm.device)
        except (ValueError, TypeError, KeyError) as exc:
            raise BackendError(f"the processor of {self.model_dir} cannot encode the prompt: {exc}") from exc
        with torch.inference_mode():
            if skeleton is not None:
                return self._guided(vlm, inputs, skeleton)
            output = vlm.model.generate(**inputs, **self._options(self.generation.max_new_tokens))
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_length:]
        eos = vlm.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ended = len(new_tokens) > 0 and int(new_tokens[-1]) in eos_ids
        return Completion(
            text=vlm.processor.decode(new_tokens, skip_special_tokens=True),
            truncated=not ended and len(new_tokens) >= self.generation.max_new_tokens,
            prompt_tokens=int(prompt_length),
            completion_tokens=len(new_tokens),
        )

    def _options(self, max_new_tokens: int) -> dict[str, Any]:
        g = self.generation
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": g.do_sample}
        if g.do_sample:
            options |= {"temperature": g.temperature, "top_p": g.top_p}
        return options

    def _guided(self, vlm: LoadedVlm, inputs: Any, skeleton: Skeleton) -> Completion:
        """Write the skeleton's fixed parts and generate each open string up to its closing quote.

        Each string is generated from the prompt plus the answer so far, with an equal share of
        ``max_new_tokens``; generation stops at the first token holding a quote or a line break, and
        the string ends there (JSON strings hold neither raw). A string cut at its share is kept.
        Numbers and names in a string are copied: only its ``quotes`` may hold a digit.
        """
        import torch

        tokenizer = vlm.processor.tokenizer
        quote = _QuoteStop(tokenizer, inputs["input_ids"].shape[1])
        answer, generated, budget_hit = "", 0, False
        strings = sum(isinstance(part, OpenString) for part in skeleton)
        share = max(1, self.generation.max_new_tokens // max(1, strings))
        for part in skeleton:
            if isinstance(part, str):
                answer += part
                continue
            # An equal share of the token budget per string: one rambling string cannot starve the rest.
            budget = min(share, self.generation.max_new_tokens - generated)
            if budget <= 0:  # out of tokens: the string stays empty, and the answer is truncated
                budget_hit = True
                continue
            so_far = tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids = torch.cat([inputs["input_ids"], so_far.to(vlm.device)], dim=1)
            step = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
            quote.start = ids.shape[1]
            copy = CopyConstraint(tokenizer, part.quotes, start=ids.shape[1])
            output = vlm.model.generate(
                **step, **self._options(budget), stopping_criteria=[quote], logits_processor=[copy]
            )
            new = output[0, ids.shape[1] :]
            generated += len(new)
            budget_hit = budget_hit or (len(new) >= budget and not quote.stopped)
            words = tokenizer.decode(new, skip_special_tokens=True)
            answer += json.dumps(re.split(r'["\n]', words, maxsplit=1)[0].strip())[1:-1]
        return Completion(
            text=answer,
            truncated=budget_hit,
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            completion_tokens=generated,
        )


class _QuoteStop:
    """Stops generation once the newest token holds a double quote or a line break."""

    def __init__(self, tokenizer: Any, start: int) -> None:
        self.tokenizer = tokenizer
        self.start = start
        self.stopped = False

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = self.tokenizer.decode(input_ids[0, -1:]) if input_ids.shape[1] > self.start else ""
        self.stopped = '"' in last or "\n" in last
        return torch.full((input_ids.shape[0],), self.stopped, dtype=torch.bool, device=input_ids.device)
