"""Live negative-feedback rates from metric-window counters.

The stream keeps raw counters per window in Redis (bumped in the same atomic
write as the portraits, so a redelivered event is never counted twice); this
module turns a window's counters into the rates operators watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enf_core.taxonomy import REASONS

__all__ = ["window_record"]


def _rate(num: int, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def window_record(counters: Mapping[str, int], *, window_start_ms: int,
                  window_ms: int) -> dict[str, Any]:
    """A metrics record: quick-swipe rate = quick swipes / watches; dislike rate =
    dislikes / watches (a watch is one viewing); per reason category, the share
    of quick swipes (attributed to the video's likeliest reason) and dislikes."""
    watches = counters.get("watches", 0)
    quick = counters.get("quick_swipes", 0)
    dislikes = counters.get("dislikes", 0)
    by_reason = {}
    for r in (*(x.value for x in REASONS), "unstated"):
        qs, dl = counters.get(f"qs:{r}", 0), counters.get(f"dl:{r}", 0)
        by_reason[r] = {"quick_swipes": qs, "dislikes": dl,
                        "quick_swipe_rate": _rate(qs, watches), "dislike_rate": _rate(dl, watches)}
    return {
        "v": 1,
        "type": "metrics",
        "window_start": window_start_ms,
        "window_end": window_start_ms + window_ms,
        "events": counters.get("events", 0),
        "impressions": counters.get("impressions", 0),
        "watches": watches,
        "quick_swipes": quick,
        "dislikes": dislikes,
        "quick_swipe_rate": _rate(quick, watches),
        "dislike_rate": _rate(dislikes, watches),
        "by_reason": by_reason,
    }
