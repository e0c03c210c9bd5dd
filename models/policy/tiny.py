"""The tiny from-scratch policy of CPU tests and CI: a BPE tokenizer trained on our
own prompts and answers, and a few-million-parameter Llama.

A pretrained 135M–270M model takes 10–60 s a step on this CPU (SGRPO.md); this
one takes about a second, so SFT reaches the answer format in minutes and the
RL arms can actually be compared here. Byte-level BPE: every character of a
user's written reason (emoji included) round-trips. The grammar's tags are
ordinary added tokens, so TRL's ``skip_special_tokens`` decoding keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from enf_core.reason_prompt import ANSWER_OPEN, THINK_OPEN

__all__ = ["TinyConfig", "build_tiny_policy", "train_tokenizer"]

_TAGS = (THINK_OPEN, "</think>", ANSWER_OPEN, "</answer>")


@dataclass(frozen=True)
class TinyConfig:
    """Size of the tiny policy (documented defaults: ~0.75 M parameters)."""

    vocab_size: int = 1200
    hidden: int = 128
    layers: int = 3
    heads: int = 4
    intermediate: int = 384
    max_positions: int = 768
    seed: int = 0


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> object:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(texts, trainer=trainer)
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in _TAGS])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>",  # noqa: S106
                                   eos_token="</s>", pad_token="<pad>",  # noqa: S106
                                   padding_side="left")


def build_tiny_policy(texts: Iterable[str], out_dir: str | Path,
                      config: TinyConfig | None = None) -> Path:
    """Train the tokenizer on ``texts``, initialise the Llama, save both to ``out_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    c = config or TinyConfig()
    tok = train_tokenizer(texts, c.vocab_size)
    torch.manual_seed(c.seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=c.hidden, num_hidden_layers=c.layers,  # type: ignore[arg-type]
                      num_attention_heads=c.heads, num_key_value_heads=c.heads,
                      intermediate_size=c.intermediate, max_position_embeddings=c.max_positions,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,  # type: ignore[attr-defined]
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=True)  # type: ignore[attr-defined]
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
        bos_token_id=tok.bos_token_id)  # type: ignore[attr-defined]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)  # type: ignore[attr-defined]
    return out
