"""An item's Beta-smoothed like rate from the train split, out of fold for train rows.

Rating datasets have no video to watch, so ENF's plot-appeal input is the item's
train-split like rate. Computed from every train row, a train row's own label
is inside its feature (a one-rating item's appeal *is* its label), and the
scorer learns to read it: a leak that does not exist on valid / test rows.
So the rate a train row sees is computed from the other folds of the train
split (``folds`` random folds, seeded); valid and test rows see the rate of
the whole train split, as a deployed model would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ItemRates", "item_rates", "smoothed_rate"]


def smoothed_rate(items: np.ndarray, value: np.ndarray, n_items: int, prior: float,
                  mean: float | None = None) -> np.ndarray:
    """Per item: (sum of ``value`` + prior * mean) / (count + prior); ``mean`` defaults
    to the mean of ``value`` (0.5 when empty)."""
    g = float(value.mean()) if mean is None and len(value) else (0.5 if mean is None else mean)
    sums = np.bincount(items, weights=value.astype(np.float64), minlength=n_items)
    counts = np.bincount(items, minlength=n_items)
    return (sums + prior * g) / (counts + prior)


@dataclass(frozen=True)
class ItemRates:
    """``full[item]``: the rate over all train rows (for valid / test rows);
    ``row[i]``: the rate row ``i`` sees (out of fold for train rows, else ``full``)."""

    full: np.ndarray  # [n_items]
    row: np.ndarray  # [n_rows]


def item_rates(items: np.ndarray, value: np.ndarray, train: np.ndarray, n_items: int, *,
               prior: float = 5.0, folds: int = 5, seed: int = 0) -> ItemRates:
    """Beta-smoothed per-item mean of ``value`` over ``train`` rows, out of fold for them.

    ``items`` and ``value`` are row-aligned over the whole dataset; ``train`` holds the
    row indices the rate may learn from. The prior's centre is the mean over the rows
    the rate learns from (the other folds, for a train row).
    """
    items = np.asarray(items, np.int64)
    value = np.asarray(value, np.float64)
    train = np.asarray(train, np.int64)
    g = float(value[train].mean()) if len(train) else 0.5
    full = smoothed_rate(items[train], value[train], n_items, prior, g)
    row = full[items].copy()
    if folds > 1 and len(train) >= folds:
        fold = np.random.default_rng(seed).integers(0, folds, size=len(train))
        for k in range(folds):
            rest = train[fold != k]
            rate = smoothed_rate(items[rest], value[rest], n_items, prior)
            mine = train[fold == k]
            row[mine] = rate[items[mine]]
    return ItemRates(full=full, row=row)
