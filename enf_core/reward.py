"""The staged (S-GRPO) reward of one Reason-Agent completion, and its ungated sum.

Per completion (PAPER.md, S-GRPO), against the row's truth:

1. unparseable (``enf_core.reason_prompt.parse_answer``) or wrong judgement: 0, stop;
   right judgement: 0.5; stop if the truth is positive or has no reason label;
2. right reason category: +1.0 and go on; else stop;
3. where the user stated a reason: + mean(ROUGE-1, ROUGE-2, ROUGE-L F1) of the
   explanation against it (``rouge-score``, stemmed).

So the total is one of 0, 0.5, 1.5, 1.5 + ROUGE. The components are returned
beside it with ``None`` where the gate closed, so a trainer can log each one.
``ungated_reward`` is the ablation's plain GRPO reward: the same components
summed with no gate (class and ROUGE count even after a wrong judgement).

Pure; ``rouge-score`` is imported on first use only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from enf_core.reason_prompt import Answer, parse_answer

__all__ = ["CLASS_REWARD", "JUDGE_REWARD", "RewardParts", "Truth", "rouge_mean",
           "staged_reward", "ungated_reward"]

JUDGE_REWARD = 0.5
CLASS_REWARD = 1.0


@dataclass(frozen=True, slots=True)
class Truth:
    """What happened: negative (quick swipe or dislike), its reason label, the stated text."""

    negative: bool
    reason: str | None = None  # one of the four, or None when unknown / positive
    reason_text: str = ""  # the user's written reason ("" when none)


@dataclass(frozen=True, slots=True)
class RewardParts:
    """The total and its components; a component is None where it was not computed."""

    total: float
    judge: float
    cls: float | None
    rouge: float | None
    parsed: bool
    answer: Answer | None


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_mean(prediction: str, reference: str) -> tuple[float, float, float]:
    """ROUGE-1, ROUGE-2, ROUGE-L F1 of ``prediction`` against ``reference``."""
    s = _scorer().score(reference, prediction)
    return s["rouge1"].fmeasure, s["rouge2"].fmeasure, s["rougeL"].fmeasure


def _rouge(answer: Answer, truth: Truth) -> float:
    return sum(rouge_mean(answer.explanation, truth.reason_text)) / 3.0


def staged_reward(completion: str, truth: Truth) -> RewardParts:
    """The gated reward of ``completion`` (module docstring)."""
    a = parse_answer(completion)
    if a is None:
        return RewardParts(0.0, 0.0, None, None, False, None)
    if a.negative != truth.negative:
        return RewardParts(0.0, 0.0, None, None, True, a)
    if not truth.negative or truth.reason is None:
        return RewardParts(JUDGE_REWARD, JUDGE_REWARD, None, None, True, a)
    if a.reason != truth.reason:
        return RewardParts(JUDGE_REWARD, JUDGE_REWARD, 0.0, None, True, a)
    if not truth.reason_text:
        return RewardParts(JUDGE_REWARD + CLASS_REWARD, JUDGE_REWARD, CLASS_REWARD, None, True, a)
    r = _rouge(a, truth)
    return RewardParts(JUDGE_REWARD + CLASS_REWARD + r, JUDGE_REWARD, CLASS_REWARD, r, True, a)


def ungated_reward(completion: str, truth: Truth) -> RewardParts:
    """The same components summed without the gate (the SFT + GRPO arm).

    Judgement 0.5 when right; class 1.0 whenever the stated category equals the
    truth's (for a negative truth with a label); ROUGE wherever the user wrote a
    reason. Unparseable: 0.
    """
    a = parse_answer(completion)
    if a is None:
        return RewardParts(0.0, 0.0, None, None, False, None)
    judge = JUDGE_REWARD if a.negative == truth.negative else 0.0
    cls = None
    if truth.negative and truth.reason is not None:
        cls = CLASS_REWARD if a.reason == truth.reason else 0.0
    rouge = _rouge(a, truth) if truth.negative and truth.reason_text else None
    return RewardParts(judge + (cls or 0.0) + (rouge or 0.0), judge, cls, rouge, True, a)
