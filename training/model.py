"""GPT-2 sequence classifiers: from a pretrained base (hub id or local dir) or a shape from scratch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

from perfwatch.errors import PerfwatchError

PAD, EOS = "<|pad|>", "<|endoftext|>"


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int


SHAPES: dict[str, Shape] = {
    "distilgpt2": Shape(n_layer=6, n_embd=768, n_head=12, n_positions=1024),  # DistilGPT-2's own shape
    "small": Shape(n_layer=4, n_embd=256, n_head=4, n_positions=128),
    "tiny": Shape(n_layer=2, n_embd=128, n_head=2, n_positions=64),
}


class BaseModelError(PerfwatchError, RuntimeError):
    pass


def train_tokenizer(texts: Sequence[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2's scheme) trained on the data, with a pad and an eos token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS)


def from_scratch(shape_name: str, tokenizer: PreTrainedTokenizerFast,
                 labels: Sequence[str]) -> GPT2ForSequenceClassification:
    shape = SHAPES[shape_name]
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=shape.n_positions, n_embd=shape.n_embd, n_layer=shape.n_layer,
        n_head=shape.n_head, num_labels=len(labels), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)},
        # Plenty of clean data: dropout only slows convergence here.
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return GPT2ForSequenceClassification(config)


def check_base(base: str) -> None:
    """Fail fast (before any data work) when the base checkpoint cannot be loaded."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise BaseModelError(_no_base_message(base, exc)) from None


def _no_base_message(base: str, exc: Exception) -> str:
    where = "local directory" if Path(base).exists() else "Hugging Face hub"
    return (
        f"cannot load base model {base!r} from the {where}: {str(exc).splitlines()[0]}\n"
        "Two ways out: --base-model /path/to/a/local/gpt2-checkpoint (a directory with config.json, "
        "weights and tokenizer files), or --from-scratch distilgpt2|small|tiny (same architecture, "
        "randomly initialised, tokenizer trained on the data)."
    )


def from_pretrained(base: str, labels: Sequence[str]) -> tuple[GPT2ForSequenceClassification, PreTrainedTokenizerFast]:
    """Load a GPT-2 checkpoint (hub id or local dir) with a fresh classification head."""
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(base)
        model = GPT2ForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)}, ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise BaseModelError(_no_base_message(base, exc)) from None
    # GPT-2 has no pad token: pad with eos, and tell the model so it finds the last real token.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def shape_of(model: GPT2ForSequenceClassification) -> dict[str, int]:
    c = model.config
    return {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head, "n_positions": c.n_positions,
            "vocab_size": c.vocab_size, "parameters": int(sum(p.numel() for p in model.parameters()))}
