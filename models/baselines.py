"""Baselines scored on the same rows and features as ENF.

* ``ItemPopularity`` — an item's negative rate in the train split (Beta-smoothed
  towards the global rate) and its most frequent negative reason: what a
  ranker that only counts gets.
* ``LogisticBaseline`` — logistic regression on the very inputs of the ENF
  scorer (portrait, video and their crosses), one binary model and one
  multinomial reason model: is the student's network worth more than a
  linear model of the same evidence?

Both answer ``predict(features, rows) -> (p_negative [n], reason_probs [n, 4])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from enf_core.features import PORTRAIT_SLICES, VIDEO_SLICES
from enf_core.taxonomy import REASONS
from models.dataset_features import DatasetFeatures

__all__ = ["ItemPopularity", "LogisticBaseline", "cross_features"]

_N_R = len(REASONS)


def cross_features(portraits: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """[portrait | video | interest ⊙ topics | sensitivity ⊙ elements | (1 − tol) ⊙ reasons |
    quick-swipe × (1 − plot appeal)] — the scorer graph's crosses, in numpy."""
    p, v = portraits, videos
    inter = p[:, PORTRAIT_SLICES["interests"]] * v[:, VIDEO_SLICES["topics"]]
    expo = p[:, PORTRAIT_SLICES["element_sensitivity"]] * v[:, VIDEO_SLICES["elements"]]
    intol = (1 - p[:, PORTRAIT_SLICES["reason_tolerance"]]) * v[:, VIDEO_SLICES["reasons"]]
    imp = p[:, PORTRAIT_SLICES["rates"]][:, :1] * (1 - v[:, VIDEO_SLICES["meta"]][:, :1])
    return np.concatenate([p, v, inter, inter.sum(1, keepdims=True), expo, intol, imp], axis=1)


@dataclass
class ItemPopularity:
    prior_strength: float = 10.0
    rate: dict[int, float] = field(default_factory=dict)
    reason: dict[int, np.ndarray] = field(default_factory=dict)
    global_rate: float = 0.0
    global_reason: np.ndarray = field(default_factory=lambda: np.full(_N_R, 1.0 / _N_R))

    def fit(self, f: DatasetFeatures, rows: np.ndarray, label: np.ndarray) -> ItemPopularity:
        y = label[rows].astype(np.float64)
        items = f.video_row[rows]
        self.global_rate = float(y.mean())
        sums = np.bincount(items, weights=y, minlength=len(f.videos))
        counts = np.bincount(items, minlength=len(f.videos))
        a = self.prior_strength
        rates = (sums + a * self.global_rate) / (counts + a)
        self.rate = {int(i): float(rates[i]) for i in np.nonzero(counts)[0]}
        known = rows[(f.reason[rows] >= 0) & (label[rows] > 0)]
        if len(known):
            g = np.bincount(f.reason[known], minlength=_N_R).astype(np.float64)
            self.global_reason = (g + 1) / (g + 1).sum()
            for item in np.unique(f.video_row[known]):
                sel = known[f.video_row[known] == item]
                c = np.bincount(f.reason[sel], minlength=_N_R) + self.global_reason
                self.reason[int(item)] = c / c.sum()
        return self

    def predict(self, f: DatasetFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = f.video_row[rows]
        p = np.array([self.rate.get(int(i), self.global_rate) for i in items], np.float32)
        r = np.stack([self.reason.get(int(i), self.global_reason) for i in items]) if len(
            items) else np.zeros((0, _N_R))
        return p, r.astype(np.float32)


@dataclass
class LogisticBaseline:
    max_rows: int = 150_000  # train subsample: LR on 2 cores stays within seconds
    seed: int = 0
    model: object | None = None
    reason_model: object | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def _x(self, f: DatasetFeatures, rows: np.ndarray) -> np.ndarray:
        x = cross_features(f.portraits[rows], f.video_vectors(rows))
        assert self.mean is not None and self.std is not None
        return (x - self.mean) / self.std

    def fit(self, f: DatasetFeatures, rows: np.ndarray, label: np.ndarray, *,
            videos: np.ndarray | None = None) -> LogisticBaseline:
        """``videos``: the rows' own video vectors (e.g. an out-of-fold item rate)."""
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(self.seed)
        vv = f.video_vectors(rows) if videos is None else videos
        if len(rows) > self.max_rows:
            # keep every positive (explicit negatives are rare), subsample the rest
            is_pos = label[rows] > 0
            pos, neg = np.flatnonzero(is_pos), np.flatnonzero(~is_pos)
            keep = max(self.max_rows - len(pos), 1)
            pick = np.concatenate([pos, rng.choice(neg, min(keep, len(neg)), replace=False)])
            rows, vv = rows[pick], vv[pick]
        x = cross_features(f.portraits[rows], vv)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        x = (x - self.mean) / self.std
        y = label[rows].astype(int)
        self.model = LogisticRegression(max_iter=300, C=1.0).fit(x, y)
        known = (f.reason[rows] >= 0) & (y > 0)
        if len(np.unique(f.reason[rows][known])) > 1:
            self.reason_model = LogisticRegression(max_iter=300, C=1.0).fit(
                x[known], f.reason[rows][known])
        return self

    def predict(self, f: DatasetFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._x(f, rows)
        p = self.model.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
        r = np.full((len(rows), _N_R), 1.0 / _N_R)
        if self.reason_model is not None:
            probs = self.reason_model.predict_proba(x)  # type: ignore[attr-defined]
            r = np.zeros((len(rows), _N_R))
            r[:, self.reason_model.classes_] = probs  # type: ignore[attr-defined]
        return p.astype(np.float32), r.astype(np.float32)
