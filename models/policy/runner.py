"""Load a trained policy and ask it: generate answers, and read its judgement as numbers.

This is the API other parts use (distillation's teacher labels, ``ENF_EXPLAINER=policy``,
the ablation's evaluation). ``PolicyRunner.judge(prompts)`` returns, per prompt:

* ``text``: the greedy completion; ``answer``: it parsed by the answer grammar (or None);
* ``p_negative``: teacher-forced P("true") / (P("true") + P("false")) at the judgement
  position, after the policy's own chain of thought (the greedy ``<think>``);
* ``reason_probs``: the four categories' sequence probabilities after
  ``{"negative": true, "reason": "``, normalised (order of ``REASONS``);
* ``explanation``: the parsed answer's explanation ("" when it did not parse).

Probabilities come from the full token sequences of each option, so they are
right for any tokenizer (a category may span several tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enf_core.reason_prompt import (
    ANSWER_OPEN,
    JUDGEMENT_PREFIX,
    REASON_PREFIX,
    THINK_OPEN,
    Answer,
    parse_answer,
)
from enf_core.taxonomy import REASONS

__all__ = ["Judgement", "PolicyRunner", "RunnerConfig"]

_FALLBACK_PREFIX = f"{THINK_OPEN}</think>{ANSWER_OPEN}{JUDGEMENT_PREFIX}"


@dataclass(frozen=True)
class RunnerConfig:
    """How the policy is run (documented defaults)."""

    max_new_tokens: int = 128  # an answer of the grammar fits in ~100 tiny-policy tokens
    batch_size: int = 32  # prompts per generate call
    device: str = "cpu"
    dtype: str = "float32"  # float32 | bfloat16 (gemma on CPU: bf16, SGRPO.md)
    threads: int = 0  # torch threads; 0 keeps torch's default


@dataclass(frozen=True, slots=True)
class Judgement:
    """The policy's verdict on one prompt."""

    p_negative: float
    reason_probs: tuple[float, ...]
    explanation: str
    text: str
    answer: Answer | None

    @property
    def format_ok(self) -> bool:
        return self.answer is not None

    def to_dict(self) -> dict[str, Any]:
        return {"p_negative": round(self.p_negative, 5),
                "reason_probs": [round(p, 5) for p in self.reason_probs],
                "explanation": self.explanation, "text": self.text, "format_ok": self.format_ok,
                "negative": None if self.answer is None else self.answer.negative,
                "reason": None if self.answer is None else self.answer.reason}


class PolicyRunner:
    """A saved policy directory (``save_pretrained`` model + tokenizer) ready to answer."""

    def __init__(self, model_dir: str | Path, config: RunnerConfig | None = None, *,
                 model: Any = None, tokenizer: Any = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = c = config or RunnerConfig()
        if c.threads:
            torch.set_num_threads(c.threads)
        self.model_dir = Path(model_dir)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model: Any = model or AutoModelForCausalLM.from_pretrained(
            self.model_dir, dtype=getattr(torch, c.dtype))
        self.model.to(torch.device(c.device)).eval()  # type: ignore[arg-type]

    # -- generation ---------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], *, sample: bool = False, temperature: float = 1.0,
                 seed: int = 0) -> list[str]:
        """Completions (greedy unless ``sample``), decoded without special tokens."""
        import torch

        out: list[str] = []
        tok, c = self.tokenizer, self.config
        torch.manual_seed(seed)
        for s in range(0, len(prompts), c.batch_size):
            enc = tok(list(prompts[s:s + c.batch_size]), return_tensors="pt", padding=True,
                      add_special_tokens=False).to(c.device)
            with torch.no_grad():
                ids = self.model.generate(
                    **enc, max_new_tokens=c.max_new_tokens, do_sample=sample,
                    temperature=temperature if sample else None, top_k=0 if sample else None,
                    top_p=None, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            out.extend(tok.batch_decode(ids[:, enc["input_ids"].shape[1]:],
                                        skip_special_tokens=True))
        return out

    # -- teacher-forced probabilities --------------------------------------------------------
    def option_logprobs(self, prompt: str, prefix: str, options: Sequence[str]) -> list[float]:
        """log P(option | prompt + prefix) for each option (whole token sequences)."""
        import torch

        tok, c = self.tokenizer, self.config
        ctx = tok(prompt, add_special_tokens=False)["input_ids"]
        tails = [tok(prefix + o, add_special_tokens=False)["input_ids"] for o in options]
        common = 0
        while all(len(t) > common for t in tails) and len({t[common] for t in tails}) == 1:
            common += 1
        seqs = [ctx + t for t in tails]
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=c.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs],
                            device=c.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
        out = []
        for k, s in enumerate(seqs):
            start = width - len(s) + len(ctx) + common  # first position scored
            out.append(float(logp[k, start - 1:].sum()))
        return out

    def judge(self, prompts: Sequence[str]) -> list[Judgement]:
        """Greedy answer + teacher-forced p_negative and reason_probs per prompt."""
        texts = self.generate(prompts)
        out = []
        for prompt, text in zip(prompts, texts, strict=True):
            k = text.find(JUDGEMENT_PREFIX)
            prefix = text[:k + len(JUDGEMENT_PREFIX)] if k >= 0 else _FALLBACK_PREFIX
            lt, lf = self.option_logprobs(prompt, prefix, [f"true{REASON_PREFIX}",
                                                           f"false{REASON_PREFIX}"])
            p_neg = 1.0 / (1.0 + math.exp(min(max(lf - lt, -50.0), 50.0)))
            lr = self.option_logprobs(prompt, f"{prefix}true{REASON_PREFIX}\"",
                                      [f'{r.value}"' for r in REASONS])
            top = max(lr)
            w = [math.exp(x - top) for x in lr]
            probs = tuple(x / sum(w) for x in w)
            a = parse_answer(text)
            out.append(Judgement(p_neg, probs, a.explanation if a else "", text, a))
        return out
