"""Logistic regression on the ENF scorer's own inputs and crosses.

Information: exactly the scorer's inputs — the portrait before the row (the
Profile Agent's replay of the user's earlier rows), the video vector and the
crosses the scorer graph builds — one binary model and one multinomial reason
model. Is the student's network worth more than a linear model of the same
evidence?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from enf_core.features import PORTRAIT_SLICES, VIDEO_SLICES
from enf_core.taxonomy import REASONS
from models.baselines.common import TaskData

__all__ = ["LogisticENFInputs", "cross_features"]

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


def train_video_vectors(d: TaskData, rows: np.ndarray) -> np.ndarray:
    """The video vectors the train ``rows`` see (out-of-fold item appeal on rating data)."""
    if d.train_videos is None:
        return d.f.video_vectors(rows)
    where = {int(r): k for k, r in enumerate(d.train)}
    return d.train_videos[np.array([where[int(r)] for r in rows], np.int64)]


@dataclass
class LogisticENFInputs:
    max_rows: int = 150_000  # train subsample: LR on 2 cores stays within seconds
    seed: int = 0
    name: str = "logistic_enf_inputs"
    info: str = "ENF scorer's inputs: portrait before the row, video vector, their crosses"
    model: object | None = None
    reason_model: object | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def fit(self, d: TaskData) -> LogisticENFInputs:
        from sklearn.linear_model import LogisticRegression

        f, rows, label = d.f, d.train, d.label
        rng = np.random.default_rng(self.seed)
        if len(rows) > self.max_rows:
            # keep every positive (explicit negatives are rare), subsample the rest
            pos, neg = rows[label[rows] > 0], rows[label[rows] <= 0]
            keep = max(self.max_rows - len(pos), 1)
            rows = np.sort(np.concatenate([pos, rng.choice(neg, min(keep, len(neg)),
                                                           replace=False)]))
        x = cross_features(f.portraits[rows], train_video_vectors(d, rows))
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        x = (x - self.mean) / self.std
        y = label[rows].astype(int)
        self.model = LogisticRegression(max_iter=300, C=1.0).fit(x, y)
        known = (f.reason[rows] >= 0) & (y > 0)
        if len(np.unique(f.reason[rows][known])) > 1:
            self.reason_model = LogisticRegression(max_iter=300, C=1.0).fit(
                x[known], f.reason[rows][known])
        return self

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        assert self.mean is not None and self.std is not None, "fit first"
        x = (cross_features(d.f.portraits[rows], d.f.video_vectors(rows)) - self.mean) / self.std
        p = self.model.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
        r = np.full((len(rows), _N_R), 1.0 / _N_R)
        if self.reason_model is not None:
            probs = self.reason_model.predict_proba(x)  # type: ignore[attr-defined]
            r = np.zeros((len(rows), _N_R))
            r[:, self.reason_model.classes_] = probs  # type: ignore[attr-defined]
        return p.astype(np.float32), r.astype(np.float32)
