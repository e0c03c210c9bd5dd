"""LightGBM on train-split statistics, metadata, MF — and, for ``lightgbm_history``, the
user's earlier rows with item-kNN over them (the information ENF's portrait has).

Features of a row (all causal; train-split statistics out of fold on train rows):

* ``lightgbm_stats``: the item's and the user's smoothed train negative rate and
  mean watch ratio / rating, the item's train count, the video vector (topics,
  elements, reason prior, plot appeal, duration: the content metadata ENF reads),
  and MF (d = 32): its logit, user and item bias.
* ``lightgbm_history`` adds the user's earlier rows (``history.history_features``:
  counts, outcome rates, last 5, recency-weighted, last outcome), item-kNN over
  the earlier items in MF item-factor space and in content space, and ENF's own
  portrait before the row.

LightGBM picks its number of trees on the valid split (early stopping), as ENF's
scorer picks its epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.baselines.common import TaskData
from models.baselines.history import HISTORY_NAMES, history_features, knn_features, knn_names
from models.baselines.logistic import train_video_vectors
from models.baselines.mf import OOFMF, MFConfig, oof_mf
from models.item_appeal import item_rates

__all__ = ["GBDTConfig", "LightGBMBaseline"]


@dataclass(frozen=True)
class GBDTConfig:
    num_leaves: int = 31
    learning_rate: float = 0.08
    max_rounds: int = 600
    early_stopping: int = 30
    min_child_samples: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    threads: int = 1  # OpenMP threads spin on a shared, loaded machine
    knn_k: int = 50


@dataclass
class LightGBMBaseline:
    history: bool = True
    config: GBDTConfig = field(default_factory=GBDTConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    name: str = "lightgbm_history"
    info: str = ""
    valid_rows: np.ndarray | None = None  # for early stopping; set by the evaluator
    booster: Any = None
    names: list[str] = field(default_factory=list)
    _oof: OOFMF | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.history:
            self.name = "lightgbm_stats" if self.name == "lightgbm_history" else self.name
        self.info = self.info or (
            "train-split item / user rates and counts (out of fold), video vector, MF (d=32)"
            + ("; the user's earlier rows: outcome rates, recency, last outcome, item-kNN "
               "(MF and content space); ENF's portrait" if self.history else ""))

    # -- features
    def _features(self, d: TaskData, rows: np.ndarray) -> np.ndarray:
        ctx = d.ctx
        assert self._oof is not None
        cols: list[np.ndarray] = []
        names: list[str] = []

        def add(name: str, x: np.ndarray) -> None:
            cols.append(np.asarray(x, np.float32).reshape(len(rows), -1))
            names.append(name)

        for key, code in (("item", ctx.item), ("user", ctx.user)):
            n_codes = ctx.n_items if key == "item" else ctx.n_users
            for stat, value in (("neg", d.label.astype(np.float64)), ("value", ctx.value)):
                tag = f"{key}_{stat}"
                if tag not in self._cache:
                    self._cache[tag] = item_rates(code, value, d.train, n_codes, prior=5.0,
                                                  folds=d.folds, seed=d.seed).row
                add(f"{key}_{stat}_rate", self._cache[tag][rows])
            if f"{key}_count" not in self._cache:
                self._cache[f"{key}_count"] = np.bincount(code[d.train], minlength=n_codes)
            add(f"{key}_train_count", np.log1p(self._cache[f"{key}_count"][code[rows]]))
        train_set = np.isin(rows, d.train)
        vv = d.f.video_vectors(rows).copy()
        if d.train_videos is not None and train_set.any():
            vv[train_set] = train_video_vectors(d, rows[train_set])
        for j in range(vv.shape[1]):
            add(f"video_{j}", vv[:, j])
        add("mf_logit", self._oof.logit(d, rows))
        which = self._oof.model_of(d, rows)
        models = (*self._oof.per_fold, self._oof.full)
        bu = np.empty(len(rows))
        bi = np.empty(len(rows))
        for k, m in enumerate(models):
            sel = which == k
            bu[sel] = m.bu[ctx.user[rows[sel]]]
            bi[sel] = m.bi[ctx.item[rows[sel]]]
        add("mf_user_bias", bu)
        add("mf_item_bias", bi)
        if self.history:
            if "history" not in self._cache:
                self._cache["history"] = history_features(ctx, k=self.config.knn_k)
            h = self._cache["history"][rows]
            for j, nm in enumerate(HISTORY_NAMES):
                add(nm, h[:, j])
            knn = np.empty((len(rows), 8), np.float32)
            for k, m in enumerate(models):
                sel = which == k
                if sel.any():
                    knn[sel] = knn_features(ctx, m.q, rows[sel], k=self.config.knn_k)
            for j, nm in enumerate(knn_names("knn_mf")):
                add(nm, knn[:, j])
            content = knn_features(ctx, d.f.videos[:, :-2], rows, k=self.config.knn_k)
            for j, nm in enumerate(knn_names("knn_content")):
                add(nm, content[:, j])
            p = d.f.portraits[rows]
            for j in range(p.shape[1]):
                add(f"portrait_{j}", p[:, j])
        self.names = names
        return np.concatenate(cols, axis=1)

    def fit(self, d: TaskData) -> LightGBMBaseline:
        import lightgbm as lgb

        t0 = time.perf_counter()
        self._cache = {}
        self._oof = oof_mf(d, self.mf)
        c = self.config
        x = self._features(d, d.train)
        y = d.label[d.train]
        params = {"objective": "binary", "num_leaves": c.num_leaves,
                  "learning_rate": c.learning_rate, "min_child_samples": c.min_child_samples,
                  "feature_fraction": c.feature_fraction, "bagging_fraction": c.bagging_fraction,
                  "bagging_freq": 1, "lambda_l2": c.lambda_l2, "num_threads": c.threads,
                  "seed": d.seed, "verbose": -1, "metric": "auc"}
        train_set = lgb.Dataset(x, y, feature_name=self.names, free_raw_data=True)
        valid = self.valid_rows
        if valid is not None and len(valid) and len(np.unique(d.label[valid])) > 1:
            vset = lgb.Dataset(self._features(d, valid), d.label[valid], reference=train_set)
            self.booster = lgb.train(params, train_set, num_boost_round=c.max_rounds,
                                     valid_sets=[vset],
                                     callbacks=[lgb.early_stopping(c.early_stopping,
                                                                   verbose=False)])
        else:
            self.booster = lgb.train(params, train_set, num_boost_round=200)
        self.seconds = time.perf_counter() - t0
        return self

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        assert self.booster is not None, "fit first"
        p = self.booster.predict(self._features(d, rows),
                                 num_iteration=self.booster.best_iteration or None)
        return np.asarray(p, np.float32), None
