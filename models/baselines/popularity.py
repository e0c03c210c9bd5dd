"""Item popularity: an item's smoothed train negative rate and its most frequent reason.

Information: the train split's (item, label, reason) — what a ranker that only
counts gets. The floor every model must clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from enf_core.taxonomy import REASONS
from models.baselines.common import TaskData
from models.item_appeal import smoothed_rate

__all__ = ["ItemPopularity"]

_N_R = len(REASONS)


@dataclass
class ItemPopularity:
    prior_strength: float = 10.0
    name: str = "item_popularity"
    info: str = "train split's per-item negative rate (Beta-smoothed) and reason counts"
    rate: np.ndarray | None = None
    reason: np.ndarray | None = None  # [n_items, 4]
    global_reason: np.ndarray = field(default_factory=lambda: np.full(_N_R, 1.0 / _N_R))

    def fit(self, d: TaskData) -> ItemPopularity:
        f, rows = d.f, d.train
        items = d.ctx.item[rows]
        self.rate = smoothed_rate(items, d.label[rows].astype(np.float64), d.ctx.n_items,
                                  self.prior_strength)
        known = rows[(f.reason[rows] >= 0) & (d.label[rows] > 0)]
        self.reason = np.tile(self.global_reason, (d.ctx.n_items, 1))
        if len(known):
            g = np.bincount(f.reason[known], minlength=_N_R).astype(np.float64)
            self.global_reason = (g + 1) / (g + 1).sum()
            counts = np.zeros((d.ctx.n_items, _N_R))
            np.add.at(counts, (d.ctx.item[known], f.reason[known]), 1.0)
            c = counts + self.global_reason
            self.reason = c / c.sum(1, keepdims=True)
        return self

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        assert self.rate is not None and self.reason is not None, "fit first"
        items = d.ctx.item[rows]
        return self.rate[items].astype(np.float32), self.reason[items].astype(np.float32)
