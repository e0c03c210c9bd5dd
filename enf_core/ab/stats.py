"""Per-arm metrics over seeds: means, 95 % intervals, B vs A, B's share of O's gain.

The interval is Student's t over the per-seed values (seeds are independent
replications: other users, other noise), mean +- t(0.975, n-1) * sd / sqrt(n).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["METRICS", "PAPER", "interval", "summarize"]

METRICS = ("watch_ratio", "quick_swipe_rate", "dislike_rate", "suppressed_share",
           "empty_requests")
# The paper's online A/B (Table 7): control -> ENF.
PAPER: dict[str, dict[str, float]] = {
    "watch_ratio": {"A": 0.476, "B": 0.538},
    "quick_swipe_rate": {"A": 0.237, "B": 0.143},
    "dislike_rate": {"A": 0.0061, "B": 0.0035},
}
# Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95 % t-interval of ``values`` (a single value has a zero-width one)."""
    n = len(values)
    if n == 0:
        return {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "lo": mean, "hi": mean}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    half = t * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half}


def _relative(b: float, a: float) -> float | None:
    return (b - a) / a if a else None


def summarize(per_seed: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """``per_seed[arm]`` = one metrics dict per seed -> arms, relative, gains, the bar.

    ``bar`` is the issue's acceptance test: B below A in quick-swipe and dislike
    rate with non-overlapping intervals, at an equal or higher watch ratio (B's
    mean watch ratio not below A's interval).
    """
    arms = {arm: {m: interval([s[m] for s in seeds]) for m in METRICS}
            for arm, seeds in per_seed.items()}
    out: dict[str, Any] = {"arms": arms}
    if "A" in arms and "B" in arms:
        a, b = arms["A"], arms["B"]
        out["relative"] = {m: _relative(b[m]["mean"], a[m]["mean"])
                           for m in ("watch_ratio", "quick_swipe_rate", "dislike_rate")}
        # Paired by seed (the same users and draws in both arms): the sharper test.
        pa, pb = per_seed["A"], per_seed["B"]
        out["paired_difference"] = {
            m: interval([sb[m] - sa[m] for sa, sb in zip(pa, pb, strict=True)])
            for m in ("watch_ratio", "quick_swipe_rate", "dislike_rate")}
        out["paper_relative"] = {m: round((v["B"] - v["A"]) / v["A"], 4)
                                 for m, v in PAPER.items()}
        out["bar"] = {
            "quick_swipe_rate": b["quick_swipe_rate"]["hi"] < a["quick_swipe_rate"]["lo"],
            "dislike_rate": b["dislike_rate"]["hi"] < a["dislike_rate"]["lo"],
            "watch_ratio": b["watch_ratio"]["mean"] >= a["watch_ratio"]["lo"],
        }
        out["bar"]["passed"] = all(out["bar"].values())
        if "O" in arms:
            o = arms["O"]
            share = {}
            for m in ("watch_ratio", "quick_swipe_rate", "dislike_rate"):
                gain = o[m]["mean"] - a[m]["mean"]
                share[m] = (b[m]["mean"] - a[m]["mean"]) / gain if gain else None
            out["share_of_oracle_gain"] = share
    return out
