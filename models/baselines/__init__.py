"""Baselines scored on exactly ENF's rows, one module each (what each gets: ``info``).

| name | module | information |
|---|---|---|
| ``item_popularity`` | popularity | train-split per-item negative rate and reasons |
| ``logistic_enf_inputs`` | logistic | ENF's scorer inputs (portrait, video, crosses) |
| ``user_item_bias`` | mf | train (user, item, label): b + b_u + b_i |
| ``biased_mf`` | mf | train (user, item, rating / label), d = 32 |
| ``lightgbm_stats`` | gbdt | train-split rates (out of fold), video vector, MF |
| ``lightgbm_history`` | gbdt | + the user's earlier rows, item-kNN, ENF's portrait |
| ``sasrec`` | sasrec | the user's earlier rows as a sequence (items, outcomes) |
| ``dfn`` | dfn | the user's earlier positive / skip / dislike sequences |

Every baseline is causal on the same split: statistics of train rows are out of
fold, history is the user's strictly earlier rows (``common``).
"""

from __future__ import annotations

from collections.abc import Callable

from models.baselines.common import Baseline, Context, TaskData, build_context, task_data

__all__ = ["BASELINES", "DEFAULT_BASELINES", "Baseline", "Context", "TaskData", "build_context",
           "make_baseline", "task_data"]


def _popularity() -> Baseline:
    from models.baselines.popularity import ItemPopularity

    return ItemPopularity()


def _logistic() -> Baseline:
    from models.baselines.logistic import LogisticENFInputs

    return LogisticENFInputs()


def _bias() -> Baseline:
    from models.baselines.mf import UserItemBias

    return UserItemBias()


def _mf() -> Baseline:
    from models.baselines.mf import BiasedMF

    return BiasedMF()


def _lgb_stats() -> Baseline:
    from models.baselines.gbdt import LightGBMBaseline

    return LightGBMBaseline(history=False)


def _lgb_history() -> Baseline:
    from models.baselines.gbdt import LightGBMBaseline

    return LightGBMBaseline(history=True)


def _sasrec() -> Baseline:
    from models.baselines.sasrec import SASRec

    return SASRec()


def _dfn() -> Baseline:
    from models.baselines.dfn import DFN

    return DFN()


BASELINES: dict[str, Callable[[], Baseline]] = {
    "item_popularity": _popularity,
    "logistic_enf_inputs": _logistic,
    "user_item_bias": _bias,
    "biased_mf": _mf,
    "lightgbm_stats": _lgb_stats,
    "lightgbm_history": _lgb_history,
    "sasrec": _sasrec,
    "dfn": _dfn,
}
"""Name -> a fresh, unfitted baseline (each task fits its own)."""

DEFAULT_BASELINES: tuple[str, ...] = tuple(BASELINES)


def make_baseline(name: str) -> Baseline:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")
    return BASELINES[name]()
