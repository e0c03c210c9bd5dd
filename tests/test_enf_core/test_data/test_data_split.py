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


def _tied_log() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users with many rows on few timestamps, video ids whose string order disagrees with
    the file's row order (MovieLens has 111 such train rows ahead of a test row)."""
    rng = np.random.default_rng(1)
    n = 400
    users = rng.choice(["a", "b", "c", "d"], size=n)
    ts = rng.integers(0, 12, size=n) * 1000
    videos = np.array([str(x) for x in rng.permutation(n)])
    return users, ts, videos


def test_event_order_agrees_with_the_split_on_ties() -> None:
    from enf_core.data.split import event_order

    users, ts, videos = _tied_log()
    labels = assign_split(users, ts, video_ids=videos)
    rank = {"train": 0, "valid": 1, "test": 2}
    order = event_order(users, ts, video_ids=videos)
    assert sorted(order.tolist()) == list(range(len(users)))
    assert (np.diff(ts[order]) >= 0).all()
    for u in "abcd":
        seq = [rank[x] for x in labels[order][users[order] == u]]
        assert seq == sorted(seq), f"user {u}: a train row comes after a held-out row"
    # file row order is not the tie-break: the plain (ts, row) order disagrees here
    plain = np.lexsort((np.arange(len(users)), ts))
    bad = sum(any(rank[labels[j]] < rank[labels[i]] for j in plain[k + 1:]
                  if users[j] == users[i]) for k, i in enumerate(plain))
    assert bad > 0


def test_loader_rows_are_written_in_event_order() -> None:
    from enf_core.data.loaders.common import interactions_table
    from enf_core.data.split import event_order

    users, ts, videos = _tied_log()
    t = interactions_table(user_id=users, video_id=videos, ts=ts,
                           explicit=np.zeros(len(users), bool))
    u = np.array(t.column("user_id").to_pylist())
    order = event_order(u, np.array(t.column("ts").to_pylist()),
                        video_ids=np.array(t.column("video_id").to_pylist()))
    assert (order == np.arange(len(u))).all()
