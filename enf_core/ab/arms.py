"""The A/B's arms: what each serves from the ranked list, and what is counted.

* A (control): the ranker's top ``page_size``.
* B (ENF): the same ranked list sent through the worker; in ``drop`` mode the
  suppressed videos are removed and the page backfilled from the next ranked
  candidates; in ``demote`` mode the list is re-ranked by score - penalty.
* O (oracle): suppresses by the latent truth with the same per-request budget:
  the candidates most likely negative (P(quick swipe or dislike) from the
  response model), at most ``Budget.cap`` of them, each at least
  ``oracle_threshold`` likely. The ceiling of what suppression can do here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ARMS", "ArmTally", "Budget", "oracle_suppress", "serve_demoted", "serve_dropped"]

ARMS = ("A", "B", "O")


@dataclass(frozen=True)
class Budget:
    """At most ``max_per_request`` suppressions per request, and never more than
    ``max_fraction`` of it (the product policy's budget; the oracle gets the same)."""

    max_per_request: int = 3
    max_fraction: float = 0.25

    @classmethod
    def from_policy(cls) -> Budget:
        """The worker's own budget (``enf_core.policy.SuppressionPolicy`` with its
        ``ENF_SUPPRESS_*`` variables), so the oracle never gets more than B."""
        import importlib

        try:
            policy = importlib.import_module("enf_core.policy").SuppressionPolicy.from_env()
        except (ImportError, AttributeError):
            return cls()
        k = int(policy.max_per_request)
        return cls(k if k >= 0 else 1 << 30, float(policy.max_fraction))

    def cap(self, n: int) -> int:
        return max(0, min(self.max_per_request, math.floor(self.max_fraction * n + 1e-9)))


def serve_dropped(ranked: np.ndarray, suppressed: np.ndarray,
                  page_size: int) -> np.ndarray:
    """The first ``page_size`` ranked videos not suppressed (backfilled from the rest)."""
    return ranked[~suppressed][:page_size]


def serve_demoted(ranked: np.ndarray, scores: np.ndarray, penalty: np.ndarray,
                  page_size: int) -> np.ndarray:
    """The ranked list re-ranked by ``score - penalty`` (stable), its top ``page_size``."""
    order = np.argsort(-(scores - penalty), kind="stable")
    return ranked[order][:page_size]


def oracle_suppress(p_negative: np.ndarray, budget: Budget, threshold: float,
                    page_size: int) -> np.ndarray:
    """Mask of the candidates the oracle suppresses: the likeliest negatives, capped.

    Only the first ``page_size + cap`` ranked candidates can reach the page, so the
    oracle spends its budget there (suppressing deeper ones would change nothing).
    """
    cap = budget.cap(len(p_negative))
    mask = np.zeros(len(p_negative), dtype=bool)
    if cap == 0:
        return mask
    window = p_negative[: page_size + cap]
    order = np.argsort(-window, kind="stable")[:cap]
    mask[order[window[order] >= threshold]] = True
    return mask


@dataclass
class ArmTally:
    """What one arm served and how the users reacted, for one seed."""

    requests: int = 0
    empty_requests: int = 0  # requests with nothing left to serve
    impressions: int = 0
    watch_ratio_sum: float = 0.0  # watch ratios capped at 1 (a replay counts as a full watch)
    quick_swipes: int = 0
    dislikes: int = 0
    scored: int = 0  # candidates the arm's filter looked at
    suppressed: int = 0
    stale_requests: int = 0  # B: answered on a portrait missing some of the user's events
    per_round_scored: list[int] = field(default_factory=list)
    per_round_suppressed: list[int] = field(default_factory=list)

    def add_request(self, *, scored: int, suppressed: int, served: int, round_ix: int,
                    stale: bool = False) -> None:
        """One request's filter decision (``served``: videos left to show)."""
        self.requests += 1
        self.empty_requests += int(served == 0)
        self.scored += scored
        self.suppressed += suppressed
        self.stale_requests += int(stale)
        while len(self.per_round_scored) <= round_ix:
            self.per_round_scored.append(0)
            self.per_round_suppressed.append(0)
        self.per_round_scored[round_ix] += scored
        self.per_round_suppressed[round_ix] += suppressed

    def add_reactions(self, watch_ratio: np.ndarray, implicit: np.ndarray,
                      explicit: np.ndarray) -> None:
        """The users' reactions to what was served."""
        self.impressions += len(watch_ratio)
        self.watch_ratio_sum += float(np.minimum(watch_ratio, 1.0).sum())
        self.quick_swipes += int(np.sum(implicit))
        self.dislikes += int(np.sum(explicit))

    def metrics(self) -> dict[str, float]:
        n = max(self.impressions, 1)
        return {"watch_ratio": self.watch_ratio_sum / n,
                "quick_swipe_rate": self.quick_swipes / n,
                "dislike_rate": self.dislikes / n,
                "suppressed_share": self.suppressed / max(self.scored, 1),
                "empty_requests": float(self.empty_requests)}
