"""Every baseline learns a planted signal, and sees only a row's past."""

from __future__ import annotations

import numpy as np
import pytest

from models.baselines import BASELINES, build_context, make_baseline, task_data
from models.baselines.common import earlier_rows
from models.baselines.history import history_features, knn_features
from models.baselines.sequence_data import typed_history, user_windows
from models.metrics import auc
from tests.test_models.conftest import planted_rating_features


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    f, ts = planted_rating_features()
    ctx = build_context(f, ts)
    train = f.rows("train")
    d = task_data(ctx, "rating", f.dislike.astype(np.int64), train)
    held = np.concatenate([f.rows("valid"), f.rows("test")])
    return d, f.rows("valid"), held


def _small(name: str):  # type: ignore[no-untyped-def]
    """The baseline with fewer epochs / rounds: the same code, seconds on tiny data."""
    from dataclasses import replace

    b = make_baseline(name)
    if name == "sasrec":
        b.config = replace(b.config, fit=replace(b.config.fit, epochs=8, patience=8, lr=1e-2))
    if name == "dfn":
        b.config = replace(b.config, fit=replace(b.config.fit, epochs=8, patience=3))
    if name.startswith("lightgbm"):
        b.config = replace(b.config, max_rounds=150)
    return b


# item-only models can only find the planted item bias; the rest should find the taste
# (SASRec reads the taste only through the outcomes of earlier ids: slower to learn it)
FLOOR = {"item_popularity": 0.56, "user_item_bias": 0.56, "sasrec": 0.58}


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_learns_the_planted_signal(planted, name: str) -> None:  # type: ignore[no-untyped-def]
    d, valid, held = planted
    b = _small(name)
    if hasattr(b, "valid_rows"):
        b.valid_rows = valid
    b.fit(d)
    p, reasons = b.predict(d, held)
    assert p.shape == (len(held),) and np.isfinite(p).all()
    assert reasons is None or reasons.shape == (len(held), 4)
    a = auc(d.label[held], p)
    assert a > FLOOR.get(name, 0.62), f"{name}: AUC {a:.3f}"


def test_history_and_sequences_never_see_a_later_row() -> None:
    """Changing the outcome of a user's later rows leaves an earlier row's history
    features, kNN features, typed sequences and SASRec windows unchanged."""
    from dataclasses import replace

    f, ts = planted_rating_features(users=30, per_user=20, seed=3)
    ctx = build_context(f, ts)
    u0 = ctx.by_user[ctx.starts[0]:ctx.starts[1]]
    cut = u0[10]  # a row in the middle of user 0's sequence
    later = u0[11:]
    flipped = f.dislike.copy()
    flipped[later] = ~flipped[later]
    ratio = f.watch_ratio.copy()
    ratio[later] = 1 - ratio[later]
    ctx2 = build_context(replace(f, dislike=flipped, watch_ratio=ratio,
                                 explicit=flipped & f.explicit), ts)
    rows = np.array([cut])
    assert np.array_equal(history_features(ctx)[cut], history_features(ctx2)[cut],
                          equal_nan=True)
    vec = np.random.default_rng(0).normal(size=(ctx.n_items, 8))
    assert np.array_equal(knn_features(ctx, vec, rows), knn_features(ctx2, vec, rows),
                          equal_nan=True)
    assert set(earlier_rows(ctx, 50, rows)[0]) - {-1} == set(u0[:10])
    th = typed_history(ctx, 20, rows)
    assert set(th.reshape(-1)) - {-1} <= set(u0[:10])
    w = user_windows(ctx, 8)
    owned = w.rows[w.owned]
    assert sorted(owned.tolist()) == list(range(ctx.n))  # every row predicted exactly once


def test_unknown_baseline_is_named() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'xgb'"):
        make_baseline("xgb")
