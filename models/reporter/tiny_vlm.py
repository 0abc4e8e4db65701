"""A small LLaVA-style VLM built from transformers configs, with its own offline tokenizer.

CLIP-style vision tower -> LLaVA projector -> Llama decoder, and a byte-level BPE tokenizer trained
here with ``tokenizers`` (digits split one per token, so measured numbers are copied digit by digit).
The saved directory is an ordinary transformers model directory: ``local_vlm`` loads it through the
Auto classes like any other image-text-to-text model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Turns as "<s>role:\n...</s>"; images inline as <image>. The generation prompt ends in a newline so
# the answer's first token never merges with the prompt's last one. ('\n' written as an expression:
# a newline right after a {% %} tag would be dropped.)
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}:{{ '\\n' }}"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "</s>{% endfor %}{% if add_generation_prompt %}<s>assistant:{{ '\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<image>")


@dataclass(frozen=True)
class TinyVlmConfig:
    """Sizes of the vision tower, decoder and tokenizer."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 192
    text_layers: int = 4
    text_heads: int = 6
    text_intermediate: int = 512
    vocab_size: int = 2048
    max_positions: int = 4096

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is no multiple of patch_size {self.patch_size}")
        if self.text_hidden % self.text_heads:
            raise ValueError(f"text_hidden {self.text_hidden} is no multiple of text_heads {self.text_heads}")

    @property
    def image_tokens(self) -> int:
        """Tokens one image becomes in the prompt (one per patch)."""
        return (self.image_size // self.patch_size) ** 2


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (digits one per token) trained on ``corpus``, as a transformers
    fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def build_tiny_vlm(config: TinyVlmConfig, tokenizer: Any, seed: int = 0) -> tuple[Any, Any]:
    """A randomly initialised LLaVA model and its processor for ``tokenizer``."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden,
        intermediate_size=config.vision_hidden * 2,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=max(1, config.vision_hidden // 32),
        image_size=config.image_size,
        patch_size=config.patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden,
        intermediate_size=config.text_intermediate,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=config.max_positions,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
    )
    llava = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=ids["<image>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava)
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    size = config.image_size
    processor = LlavaProcessor(
        # Crops are resized whole (no centre crop): a long thin scratch must stay in the picture.
        image_processor=CLIPImageProcessor(
            size={"height": size, "width": size},
            do_center_crop=False,
            crop_size={"height": size, "width": size},
        ),
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor


def save_tiny_vlm(model: Any, processor: Any, out: Path) -> Path:
    """Write model and processor as one transformers model directory (weights in float16: half the
    size; the backend loads them as float32 on a CPU)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out)
    model.to(torch.float32)
    processor.save_pretrained(out)
    return out
