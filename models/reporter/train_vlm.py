"""Training our own small VLM reporter on synthetic studies (``models.reporter.studies``).

Each example is one study's chat exactly as the ``transformers`` backend builds it (versioned prompt,
findings as JSON lines, ROI crops as images) followed by the faithful answer; the loss is on the
answer, plus the prompt's own text at a lower weight (see ``TrainSettings``). Training runs for a
wall-clock budget with a cosine learning rate over that budget, so a run fits a CI machine or a
lunch break alike.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.domains import domain_spec
from models.registry import ModelCard, write_card
from models.reporter.config import GenerationSettings
from models.reporter.evaluation import evaluate_reporter_model
from models.reporter.local_vlm import (
    chat_turns,
    check_model_dir,
    message_images,
    read_vlm,
    weights_sha256,
)
from models.reporter.output import grounding_problems, parse_output
from models.reporter.prompts import load_prompt, repair_messages
from models.reporter.shipped import DEFAULT_BAR_STUDIES, shipped_reporter_dir
from models.reporter.studies import ReporterExample, reporter_examples
from models.reporter.tiny_vlm import TinyVlmConfig, build_tiny_vlm, save_tiny_vlm, train_tokenizer

IGNORE = -100  # label of a token the loss skips (prompt, image and padding tokens)
FREE_STUDIES = 200  # held-out studies scored with free decoding
CARD_NOTES = (
    "Rates are of the model's first answer, with guided decoding (held_out: the answer's fixed "
    "values written from the findings, the model writes the descriptions and the impression, and "
    "a number or name in them only as its own finding's line or the totals give it) "
    "and without (held_out_free). In production a rejected answer gets one repair try, then "
    "the template reporter. Held-out studies give the reporter the true findings."
)


@dataclass(frozen=True)
class Encoded:
    """One example as tensors: token ids, which of them are learned, and its images."""

    input_ids: list[int]
    labels: list[int]  # the answer's tokens; IGNORE elsewhere
    weights: list[float]  # loss weight of predicting each token (0 for images, padding, a rejected answer)
    pixel_values: Any  # (n_images, 3, H, W) float tensor, or None for a study without findings


@dataclass(frozen=True)
class TrainSettings:
    """What a training run does: data, budget and optimiser."""

    domain: str
    minutes: float = 15.0
    n_train: int = 4000
    seed: int = 0
    generator_version: int = 2
    batch_tokens: int = 3000  # padded tokens per step
    learning_rate: float = 2e-3
    warmup_steps: int = 60
    # The prompt's own tokens are learned too, at this weight: the prompt repeats its values (a size in
    # "longest_mm" and in "size"), and predicting those repeats is what teaches a small model to copy
    # from its context. With the answer alone it plateaus without ever copying a number.
    prompt_weight: float = 0.3
    # Digits of the answer weigh more: copying the measured numbers is the hard part and the part that
    # must be right (a wrong digit is a contradiction; a wrong adjective is not).
    # Off by default, as for the shipped models: with prompt v2 a run with 3 did worse (README).
    digit_weight: float = 1.0
    # This share of studies is also shown as a repair turn: a corrupted answer, the validator's problems,
    # and the faithful answer to learn. Production gives a rejected answer one such repair. Off by
    # default, as for the shipped models (same reason).
    repair_share: float = 0.0
    # Continue from this model directory (its tokenizer and weights) instead of a fresh model; the
    # warm-up and cosine schedule start again over this run's budget.
    init_from: Path | None = None


def encode(
    example: ReporterExample,
    processor: Any,
    *,
    prompt_weight: float = 0.0,
    digit_weight: float = 1.0,
    rejected: tuple[str, list[str]] | None = None,
) -> Encoded:
    """The example's chat (as the backend renders it) and its answer, labelled on the answer.

    With ``rejected`` (a wrong answer and the validator's problems), the chat is the repair turn
    production sends, and the prompt is not learned (it holds the wrong answer).
    """
    messages = example.messages()
    if rejected is not None:
        messages = repair_messages(messages, *rejected)
        prompt_weight = 0.0
    text = processor.apply_chat_template(chat_turns(messages), add_generation_prompt=True, tokenize=False)
    images = message_images(messages)
    prompt = processor(text=text, images=images or None, return_tensors="pt")
    tokenizer = processor.tokenizer
    answer = tokenizer(example.answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    prompt_ids = prompt["input_ids"][0].tolist()
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    digits = {tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    return Encoded(
        input_ids=prompt_ids + answer,
        labels=[IGNORE] * len(prompt_ids) + answer,
        weights=[0.0 if t == image_id else prompt_weight for t in prompt_ids]
        + [digit_weight if t in digits else 1.0 for t in answer],
        pixel_values=prompt.get("pixel_values"),
    )


def corrupted_answer(example: ReporterExample, rng: random.Random) -> tuple[str, list[str]] | None:
    """A wrong answer of the kind a model gives (a size re-measured, a label swapped, a finding
    dropped) and the validator's problems with it; None for a study with nothing to get wrong."""
    answer = json.loads(example.answer)
    findings = answer["findings"]
    if not findings:
        return None
    victim = rng.randrange(len(findings))
    kinds = ["drop"]
    if findings[victim]["longest_mm"] is not None:
        kinds.append("size")
    if example.request.domain == "industrial":
        kinds.append("label")
    kind = rng.choice(kinds)
    if kind == "drop":
        del findings[victim]
    elif kind == "size":
        size = findings[victim]["longest_mm"]
        wrong = round(size * rng.choice([rng.uniform(0.3, 0.7), rng.uniform(1.4, 2.5)]), 1)
        findings[victim]["longest_mm"] = wrong
        findings[victim]["description"] = findings[victim]["description"].replace(f"{size} mm", f"{wrong} mm")
    else:
        labels = [n for n in domain_spec("industrial").class_names if n != findings[victim]["label"]]
        findings[victim]["label"] = rng.choice(labels)
    text = json.dumps(answer)
    problems = grounding_problems(parse_output(text), example.request)
    return (text, problems) if problems else None


def tokenizer_corpus(examples: list[ReporterExample]) -> list[str]:
    """The texts the tokenizer learns its merges from: prompts and answers as the model will see them."""
    texts = []
    for example in examples:
        texts += [m.text for m in example.messages()] + [example.answer]
    return texts


def _batches(encoded: list[Encoded], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length so padding stays small, each batch under ``batch_tokens``."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].input_ids), rng.random()))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        length = len(encoded[i].input_ids)
        if current and max(longest, length) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def collate(items: list[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded ids, labels (answer tokens), loss weights and attention mask; the batch's images in
    example order."""
    import torch

    width = max(len(e.input_ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    weights = torch.zeros((len(items), width))
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, e in enumerate(items):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
        weights[row, : len(e.weights)] = torch.tensor(e.weights)
        mask[row, : len(e.input_ids)] = 1
    batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "weights": weights, "attention_mask": mask}
    pixels = [e.pixel_values for e in items if e.pixel_values is not None]
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
    return batch


def weighted_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, float]:
    """The batch's weighted next-token loss, and the plain loss over answer tokens (what matters)."""
    import torch

    inputs = {k: v for k, v in batch.items() if k not in ("labels", "weights")}
    logits = model(**inputs).logits[:, :-1]
    targets = batch["input_ids"][:, 1:]
    answer = batch["labels"][:, 1:] != IGNORE
    weights = batch["weights"][:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    answer_loss = (losses * answer).sum() / answer.sum().clamp(min=1)
    return (losses * weights).sum() / weights.sum(), answer_loss.item()


def _learning_rate(settings: TrainSettings, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / settings.warmup_steps)
    return settings.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_reporter_vlm(
    settings: TrainSettings, out: Path, config: TinyVlmConfig | None = None, log: Any = print
) -> dict[str, Any]:
    """Train a tiny VLM for one domain within ``settings.minutes`` and save it to ``out``.

    Returns what the model card records about the training run.
    """
    import torch

    config = config or TinyVlmConfig()
    started = time.monotonic()
    examples = reporter_examples(
        settings.domain, settings.seed, settings.n_train, version=settings.generator_version
    )
    if settings.init_from is None:
        tokenizer = train_tokenizer(tokenizer_corpus(examples), config.vocab_size)
        model, processor = build_tiny_vlm(config, tokenizer, seed=settings.seed)
    else:
        processor, model = read_vlm(settings.init_from, torch.float32)
        tokenizer = processor.tokenizer
    prompt_weight, digit_weight = settings.prompt_weight, settings.digit_weight
    encoded = [encode(e, processor, prompt_weight=prompt_weight, digit_weight=digit_weight) for e in examples]
    rng = random.Random(settings.seed)
    for example in rng.sample(examples, round(settings.repair_share * len(examples))):
        rejected = corrupted_answer(example, rng)
        if rejected is not None:
            encoded.append(encode(example, processor, digit_weight=digit_weight, rejected=rejected))
    prepared = time.monotonic() - started
    lengths = np.array([len(e.input_ids) for e in encoded])
    log(
        f"{settings.domain}: {len(examples)} studies and {len(encoded) - len(examples)} repair turns "
        f"encoded in {prepared:.0f} s; tokens per chat median {np.median(lengths):.0f}, max {lengths.max()}; "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
    )
    torch.manual_seed(settings.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    pad_id = tokenizer.pad_token_id
    budget = settings.minutes * 60.0
    train_started = time.monotonic()
    step, epoch, losses = 0, 0, []
    model.train()
    while time.monotonic() - train_started < budget:
        epoch += 1
        batches = _batches(encoded, settings.batch_tokens, rng)
        rng.shuffle(batches)
        for indices in batches:
            progress = (time.monotonic() - train_started) / budget
            if progress >= 1.0:
                break
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(settings, step, progress)
            batch = collate([encoded[i] for i in indices], pad_id)
            loss, answer_loss = weighted_loss(model, batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            losses.append(answer_loss)
            step += 1
            if step % 50 == 0:
                log(
                    f"step {step} epoch {epoch} answer loss {np.mean(losses[-50:]):.4f} "
                    f"({time.monotonic() - train_started:.0f} s)"
                )
    model.eval()
    save_tiny_vlm(model, processor, out)
    return {
        "generator": (
            f"models.reporter.studies.reporter_examples('{settings.domain}', seed={settings.seed}, "
            f"version={settings.generator_version})"
        ),
        "train_studies": settings.n_train,
        "steps": step,
        "epochs": epoch,
        "final_answer_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "prompt_weight": settings.prompt_weight,
        "digit_weight": settings.digit_weight,
        "repair_chats": len(encoded) - len(examples),
        "budget_minutes": settings.minutes,
        "learning_rate": settings.learning_rate,
        "continued_from": str(settings.init_from) if settings.init_from else None,
        "train_seconds_wall": round(time.monotonic() - started, 1),
        "tokens_per_study_median": int(np.median(lengths)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(config),
    }


def held_out_metrics(
    model_dir: Path, domain: str, studies: int, seed: int, generator_version: int, log: Any = print
) -> dict[str, Any]:
    """The card's metrics: first-answer rates on held-out studies with guided decoding (``held_out``,
    what production runs, on ``studies`` studies) and without (``held_out_free``, the model on its own,
    on at most ``FREE_STUDIES``: it informs, it decides nothing)."""
    metrics = {}
    runs = (("held_out", True, studies), ("held_out_free", False, min(studies, FREE_STUDIES)))
    for mode, guided, n in runs:
        started = time.monotonic()
        rates = evaluate_reporter_model(
            model_dir, domain, studies=n, seed=seed, generator_version=generator_version, guided=guided
        )
        metrics[mode] = {k: v for k, v in rates.items() if k not in ("model", "weights_sha256")}
        log(f"{mode}: {n} studies in {time.monotonic() - started:.0f} s: {metrics[mode]}")
    return metrics


def train_reporter(
    settings: TrainSettings,
    *,
    eval_studies: int = DEFAULT_BAR_STUDIES,
    output: Path | None = None,
    config: TinyVlmConfig | None = None,
    log: Any = print,
) -> ModelCard:
    """Train the domain's reporter VLM, score it on the held-out split (``seed + 10 000``) and write
    the model directory (default: the shipped one) with its card."""
    domain = settings.domain
    out = output or shipped_reporter_dir(domain)
    if settings.init_from is not None:  # before any data are made
        check_model_dir(settings.init_from)
        if settings.init_from.resolve() == out.resolve():
            raise ValueError(
                f"{out} is both the model to train further and the output: choose another output"
            )
    if out.exists():
        shutil.rmtree(out)  # a stale weight file left in the directory would be hashed with the new ones
    training = train_reporter_vlm(settings, out, config, log)
    metrics = held_out_metrics(out, domain, eval_studies, settings.seed, settings.generator_version, log)
    return write_reporter_card(settings, out, training, metrics, config)


def write_reporter_card(
    settings: TrainSettings,
    out: Path,
    training: dict[str, Any],
    metrics: dict[str, Any],
    config: TinyVlmConfig | None = None,
) -> ModelCard:
    """Write and return the card of the reporter in ``out``: its training record
    (``train_reporter_vlm``) and held-out rates (``held_out_metrics``)."""
    domain = settings.domain
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    vlm = config or TinyVlmConfig()
    card = ModelCard(
        name=f"argus-{domain}-reporter",
        version=dt.date.today().strftime("%Y.%m.%d"),
        task="report generation",
        architecture=(
            f"LLaVA-style VLM from transformers configs, not pretrained: CLIP ViT "
            f"({vlm.vision_layers} layers, {vlm.image_size} px, {vlm.patch_size} px patches) -> projector "
            f"-> Llama decoder ({vlm.text_layers} layers, hidden {vlm.text_hidden}); byte-level BPE "
            f"tokenizer trained here"
        ),
        domain=domain,
        class_names=list(domain_spec(domain).class_names),
        weights_file=out.name,
        sha256=weights_sha256(out),
        size_bytes=size,
        input={
            "prompt": load_prompt(domain).version,
            "images": f"ROI crops resized to {vlm.image_size} px ({vlm.image_tokens} image tokens each)",
            "generation": GenerationSettings().as_record(),
        },
        training=training,
        metrics=metrics,
        generator_version=settings.generator_version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        notes=CARD_NOTES,
    )
    write_card(card, out)
    return card
