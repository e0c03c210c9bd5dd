"""The per-user chronological split: rule, determinism, independence of row order."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from enf_core.data.split import SplitConfig, assign_split


@pytest.mark.parametrize(("n", "expected"), [
    (1, {"train": 1}), (2, {"train": 2}), (3, {"train": 1, "valid": 1, "test": 1}),
    (10, {"train": 8, "valid": 1, "test": 1}), (15, {"train": 11, "valid": 2, "test": 2}),
    (33, {"train": 27, "valid": 3, "test": 3}),
])
def test_rule_counts(n: int, expected: dict[str, int]) -> None:
    labels = assign_split(np.array(["u"] * n), np.arange(n))
    assert dict(Counter(labels)) == expected


def test_chronological_and_order_independent() -> None:
    rng = np.random.default_rng(0)
    users = rng.choice(["a", "b", "c"], size=200)
    ts = rng.integers(0, 10_000, size=200)
    labels = assign_split(users, ts)
    rank = {"train": 0, "valid": 1, "test": 2}
    for u in "abc":
        rows = np.flatnonzero(users == u)
        by_time = rows[np.argsort(ts[rows], kind="stable")]
        seq = [rank[x] for x in labels[by_time]]
        assert seq == sorted(seq)
    perm = rng.permutation(200)
    again = assign_split(users[perm], ts[perm], video_ids=np.arange(200)[perm].astype(str))
    ref = assign_split(users, ts, video_ids=np.arange(200).astype(str))
    assert (again == ref[perm]).all()


def test_fractions_are_configurable() -> None:
    labels = assign_split(np.array(["u"] * 10), np.arange(10),
                          config=SplitConfig(valid_fraction=0.2, test_fraction=0.3))
    assert list(labels) == ["train"] * 5 + ["valid"] * 2 + ["test"] * 3
