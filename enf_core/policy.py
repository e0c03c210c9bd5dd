"""The suppression policy: which scored candidates a feed should hide or demote.

A model's F1-optimal threshold is a benchmark operating point: on the default
simulation it flags 41 % of rows at precision 0.40, and a feed that removes two
fifths of itself is unusable whatever its F1. The policy turns calibrated
probabilities into product decisions:

* **Operating point.** A candidate is *flagged* when its calibrated
  ``p_negative`` is at or above the threshold. By default that is the model's
  ``operating_point.threshold`` (the lowest calibrated p whose flagged rows on
  the valid split reach ``target_precision``, see ``operating_point``), measured
  when the model is calibrated (``enf model calibrate``).
* **Budget.** At most ``max_per_request`` candidates of a request are
  suppressed, and never more than ``floor(max_fraction × request size)``: the
  most likely negatives first.
* **Cold portraits.** A portrait with fewer than ``cold_watches`` watches says
  little about the user (the blank portrait flagged ~91 % of candidates), so a
  cold user's candidate is suppressed only when the video analysis alone is
  *decisive*: the video shows an element (score ≥ ``decisive_element``) that
  the user has already shown aversion to (sensitivity ≥
  ``decisive_sensitivity``; the prior is 0.15, one explicit dislike naming the
  element's reason lifts it to ~0.66, two quick swipes on it to ~0.64). A
  decisive candidate is flagged whatever its p, for warm users too, and comes
  first in the budget: the user told us.
* **Modes.** ``drop``: the budgeted candidates are suppressed (suppression
  records). ``demote``: nothing is removed; every flagged candidate gets a
  penalty ``demote_weight × p`` (to subtract from the ranker's score) and the
  budgeted ones are marked ``suppressed``; one ``rerank_page`` per request.

Pure numpy over the scorer's own input vectors (``enf_core.features``), so the
scorer applies it to a whole batch without parsing a portrait.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from enf_core.features import PORTRAIT_SLICES, VIDEO_SLICES

__all__ = [
    "MODES",
    "Decisions",
    "SuppressionPolicy",
    "decide",
    "operating_point",
    "portrait_watches",
    "request_budgets",
]

MODES = ("drop", "demote")
ENV_PREFIX = "ENF_SUPPRESS_"
# portrait_vector's experience feature is min(log1p(watches) / 10, 1).
_EXPERIENCE = PORTRAIT_SLICES["rates"].start + 2


@dataclass(frozen=True)
class SuppressionPolicy:
    """Product rules on top of the scorer; every field is ``ENF_SUPPRESS_<FIELD>``."""

    # drop: suppression records; demote: one rerank_page per request with penalties.
    mode: str = "drop"
    # Calibrated p_negative at or above this flags a candidate. Negative: the
    # model's operating point (manifest), else its F1 threshold, else 0.5.
    threshold: float = -1.0
    # Precision on valid the operating point is chosen for (used by calibration).
    target_precision: float = 0.6
    max_per_request: int = 3  # budget per request; negative: no limit
    max_fraction: float = 0.25  # and at most floor(fraction × candidates) suppressed
    cold_watches: int = 5  # fewer watches: cold portrait, only decisive candidates
    decisive_element: float = 0.5  # a video element at least this strong ...
    decisive_sensitivity: float = 0.6  # ... that the user is at least this sensitive to
    demote_weight: float = 1.0  # demote: penalty = weight × calibrated p (ranker's units)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"suppression mode must be one of {', '.join(MODES)}, "
                             f"not {self.mode!r}")
        if not 0.0 < self.target_precision < 1.0:
            raise ValueError(f"target_precision must be in (0, 1), got {self.target_precision}")
        if not 0.0 <= self.max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in [0, 1], got {self.max_fraction}")
        if self.demote_weight < 0:
            raise ValueError(f"demote_weight must be >= 0, got {self.demote_weight}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any
                 ) -> SuppressionPolicy:
        """Defaults, then ``ENF_SUPPRESS_<FIELD>`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"{ENV_PREFIX}{f.name.upper()}")
            if raw is None:
                continue
            kind: type = type(f.default)
            try:
                values[f.name] = kind(raw.strip()) if kind is not str else raw.strip()
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected "
                                 f"{kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    @classmethod
    def unlimited(cls, threshold: float = -1.0, **overrides: Any) -> SuppressionPolicy:
        """The threshold alone decides: no budget, no cold-portrait rule (the
        benchmark view, and tests that want every flagged candidate)."""
        return cls(threshold=threshold, max_per_request=-1, max_fraction=1.0, cold_watches=0,
                   **overrides)

    def resolve_threshold(self, manifest: Mapping[str, Any] | None) -> float:
        """The flagging threshold: configured, else the model's operating point,
        else its (benchmark) F1 threshold, else 0.5."""
        if self.threshold >= 0:
            return self.threshold
        manifest = manifest or {}
        op = manifest.get("operating_point")
        if isinstance(op, Mapping) and op.get("threshold") is not None:
            return float(op["threshold"])
        if manifest.get("threshold") is not None:
            return float(manifest["threshold"])
        return 0.5


@dataclass(frozen=True, slots=True)
class Decisions:
    """Per candidate row of a batch: flagged, suppressed (within budget), penalty."""

    flagged: np.ndarray  # bool [N]
    suppressed: np.ndarray  # bool [N]
    penalty: np.ndarray  # float32 [N], 0 unless flagged and mode is demote
    decisive: np.ndarray  # bool [N]
    cold: np.ndarray  # bool [N]


def portrait_watches(portraits: np.ndarray) -> np.ndarray:
    """Watches behind each portrait row, read back from its experience feature
    (exact below 22,026 watches, where the feature saturates)."""
    x = np.asarray(portraits, np.float64)[:, _EXPERIENCE]
    return np.rint(np.expm1(np.clip(x, 0.0, 1.0) * 10.0)).astype(np.int64)


def request_budgets(policy: SuppressionPolicy, sizes: np.ndarray) -> np.ndarray:
    """How many candidates each request may lose: min(k, floor(fraction × size))."""
    sizes = np.asarray(sizes, np.int64)
    by_fraction = np.floor(sizes * policy.max_fraction + 1e-9).astype(np.int64)
    if policy.max_per_request < 0:
        return by_fraction
    return np.minimum(by_fraction, policy.max_per_request)


def decide(policy: SuppressionPolicy, p: np.ndarray, threshold: float,
           portraits: np.ndarray, videos: np.ndarray, starts: np.ndarray,
           eligible: np.ndarray | None = None) -> Decisions:
    """Apply the policy to one batch.

    ``p`` [N] calibrated p_negative per candidate row; ``portraits`` [N, P] and
    ``videos`` [N, V] the rows the scorer saw; ``starts`` [R + 1] the row where
    each request begins (the last entry is N); ``eligible`` [N] False for rows
    that must never be suppressed (a video the Video Agent has not analysed).
    """
    p = np.asarray(p, np.float64)
    n = len(p)
    starts = np.asarray(starts, np.int64)
    if len(starts) == 0 or starts[-1] != n:
        raise ValueError("starts must end at the number of rows")
    elig = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool)
    cold = portrait_watches(portraits) < policy.cold_watches
    el = VIDEO_SLICES["elements"]
    sens = PORTRAIT_SLICES["element_sensitivity"]
    decisive = ((np.asarray(videos)[:, el] >= policy.decisive_element)
                & (np.asarray(portraits)[:, sens] >= policy.decisive_sensitivity)).any(axis=1)
    decisive &= elig
    flagged = (elig & ~cold & (p >= threshold)) | decisive
    suppressed = np.zeros(n, bool)
    sizes = np.diff(starts)
    budgets = request_budgets(policy, sizes)
    req = np.repeat(np.arange(len(sizes)), sizes)
    rows = np.flatnonzero(flagged)
    if len(rows):
        # Within each request: decisive first, then by p, highest first; ties in
        # request order (the ranker's).
        order = rows[np.lexsort((rows, -p[rows], ~decisive[rows], req[rows]))]
        r = req[order]
        first = np.searchsorted(r, r, side="left")
        rank = np.arange(len(order)) - first
        suppressed[order[rank < budgets[r]]] = True
    penalty = np.zeros(n, np.float32)
    if policy.mode == "demote":
        penalty[flagged] = (policy.demote_weight * p[flagged]).astype(np.float32)
    return Decisions(flagged, suppressed, penalty, decisive, cold)


def operating_point(y: np.ndarray, p: np.ndarray, target_precision: float
                    ) -> dict[str, Any]:
    """The lowest threshold on ``p`` whose flagged rows reach ``target_precision``.

    Lowest, so recall is the largest at that precision. When no threshold reaches
    it, the most precise one (ties: the lower threshold) is returned, and
    ``precision`` says how far it fell short.
    """
    y = np.asarray(y, np.int64)
    p = np.asarray(p, np.float64)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError("operating_point needs equal, non-empty y and p")
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    # Only cut between distinct scores: rows with equal p are flagged together.
    last = np.r_[ps[1:] != ps[:-1], True]
    tp_c, k_c, t_c = tp[last], k[last], ps[last]
    prec = tp_c / k_c
    ok = np.flatnonzero(prec >= target_precision)
    i = int(ok[-1]) if len(ok) else int(np.flatnonzero(prec == prec.max())[-1])
    positives = max(int(ys.sum()), 1)
    return {"target_precision": float(target_precision), "threshold": float(t_c[i]),
            "precision": round(float(prec[i]), 5),
            "recall": round(float(tp_c[i]) / positives, 5),
            "flagged_share": round(float(k_c[i]) / len(ys), 5), "rows": len(ys),
            "measured_on": "valid"}
