"""The item-appeal feature of rating data never contains the train row's own label."""

from __future__ import annotations

import numpy as np

from models.item_appeal import item_rates


def test_a_train_rows_rate_does_not_move_with_its_own_label() -> None:
    rng = np.random.default_rng(0)
    n, n_items = 2000, 40
    items = rng.integers(0, n_items, size=n)
    like = (rng.random(n) < 0.6).astype(float)
    train = np.arange(1600)
    a = item_rates(items, like, train, n_items, prior=5.0)
    for i in (0, 17, 900):
        flipped = like.copy()
        flipped[i] = 1 - flipped[i]
        b = item_rates(items, flipped, train, n_items, prior=5.0)
        assert b.row[i] == a.row[i]  # out of fold: its own label is not inside
        assert b.full[items[i]] != a.full[items[i]]  # the whole-train rate does use it
    # valid / test rows see the whole-train rate
    assert np.array_equal(a.row[1600:], a.full[items[1600:]])


def test_out_of_fold_rate_carries_no_label_signal_on_pure_noise() -> None:
    """On labels independent of the item, the in-sample rate 'predicts' the label
    (a leak); the out-of-fold rate does not."""
    from models.metrics import auc

    rng = np.random.default_rng(1)
    n, n_items = 6000, 3000  # ~2 rows per item: the in-sample leak is large
    items = rng.integers(0, n_items, size=n)
    like = (rng.random(n) < 0.5).astype(float)
    train = np.arange(n)
    r = item_rates(items, like, train, n_items, prior=2.0)
    assert auc(like, r.full[items]) > 0.7
    assert abs(auc(like, r.row) - 0.5) < 0.05
