"""What every baseline reads: one dataset's rows in event order, and one task's labels.

A baseline sees exactly the rows ENF is scored on and only information ENF's
portrait could have had at that moment:

* **train-split statistics** (item / user rates, matrix factorisation) are fitted on
  train rows; a train row's own statistic is *out of fold* (``TaskData.fold``), so
  no feature of a train row contains its own label;
* **history**: a row sees its user's strictly earlier rows (in
  ``enf_core.data.split.event_order``, the order the split was cut and the Profile
  Agent replays in) with their outcomes, whatever their split: the portrait before
  a test row has seen the user's train and valid rows too.

``Context`` holds the per-dataset arrays (user codes, the per-user sequence, each
row's outcome); ``TaskData`` adds one task's label, its train rows and folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from enf_core.data.split import event_order
from models.dataset_features import DatasetFeatures

__all__ = [
    "OUTCOMES",
    "Baseline",
    "Context",
    "TaskData",
    "build_context",
    "earlier_rows",
    "event_positions",
    "task_data",
]

OUTCOMES = ("positive", "skip", "dislike")
"""A row's outcome as history: watched / liked (0); quick swipe, or a 3-star rating (1);
explicit dislike, or 1–2 stars / not recommended (2)."""


@dataclass(frozen=True)
class Context:
    """Per-dataset arrays shared by every task and baseline."""

    f: DatasetFeatures
    kind: str  # "tvnf" (watch ratios) or "rating"
    user: np.ndarray  # [n] int64 user code
    item: np.ndarray  # [n] int64 item (video row)
    n_users: int
    n_items: int
    by_user: np.ndarray  # [n] row indices grouped by user, each user's rows in event order
    starts: np.ndarray  # [n_users + 1] offsets of each user's rows in by_user
    seq: np.ndarray  # [n] a row's index in by_user (its place in its user's sequence)
    rank: np.ndarray  # [n] number of the user's earlier rows
    outcome: np.ndarray  # [n] int64 in 0..2 (OUTCOMES)
    value: np.ndarray  # [n] float: watch ratio, or the rating read as one; 0.5 when unknown

    @property
    def n(self) -> int:
        return len(self.user)


@dataclass(frozen=True)
class TaskData:
    """One task on one dataset: the label of every row, the rows to fit on, their folds."""

    ctx: Context
    task: str
    label: np.ndarray  # [n] int64 0/1 (0 where unknown; unknown rows are not in train)
    train: np.ndarray  # row indices a baseline may fit on
    fold: np.ndarray  # [n] int64: fold of a train row (0..folds-1), -1 elsewhere
    folds: int
    seed: int
    train_videos: np.ndarray | None = None  # [len(train), 33] the train rows' own video
    # vectors where they differ from f.video_vectors (rating data's out-of-fold appeal)
    shared: dict[str, Any] = field(default_factory=dict)  # fits shared between baselines

    @property
    def f(self) -> DatasetFeatures:
        return self.ctx.f


class Baseline(Protocol):
    """``fit`` on a task's train rows, then ``predict`` any rows: (p [n], reasons [n, 4] or
    None). ``info`` says what information the baseline gets (docs/agents.md)."""

    name: str
    info: str

    def fit(self, d: TaskData) -> Baseline: ...

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


def event_positions(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The (ts, position) columns of a dataset's interactions, row-aligned with its features."""
    import pyarrow.parquet as pq

    t = pq.read_table(Path(data_dir) / "interactions.parquet", columns=["ts", "position"])
    ts = np.asarray(t.column("ts").to_numpy(zero_copy_only=False), np.int64)
    pos = t.column("position")
    position = None if pos.null_count == len(pos) else np.asarray(pos.to_pylist(), dtype=object)
    return ts, position


def build_context(f: DatasetFeatures, ts: np.ndarray, position: np.ndarray | None = None
                  ) -> Context:
    """Index a dataset's rows by user in event order and read each row's outcome."""
    n = len(f.split)
    if len(ts) != n:
        raise ValueError(f"ts has {len(ts)} rows, the features {n}")
    _, user = np.unique(f.user_ids.astype(str), return_inverse=True)
    user = user.reshape(-1).astype(np.int64)
    order = event_order(f.user_ids, ts, position=position, video_ids=f.video_ids)
    by_user = order[np.argsort(user[order], kind="stable")]
    n_users = int(user.max()) + 1 if n else 0
    counts = np.bincount(user, minlength=n_users)
    starts = np.r_[0, np.cumsum(counts)].astype(np.int64)
    seq = np.empty(n, np.int64)
    seq[by_user] = np.arange(n)
    rank = seq - starts[user]
    kind = "rating" if f.rating_known.any() else "tvnf"
    skip = f.implicit | (f.rating_known & f.dislike)
    outcome = np.where(f.explicit, 2, np.where(skip, 1, 0)).astype(np.int64)
    value = np.where(np.isnan(f.watch_ratio), 0.5, np.clip(f.watch_ratio, 0.0, 1.0))
    return Context(f=f, kind=kind, user=user, item=f.video_row.astype(np.int64),
                   n_users=n_users, n_items=len(f.videos), by_user=by_user, starts=starts,
                   seq=seq, rank=rank, outcome=outcome, value=value.astype(np.float64))


def earlier_rows(ctx: Context, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """[len(rows), k] int64: each row's last ``k`` earlier rows of its user, oldest first,
    right-aligned (the most recent in the last column); -1 pads."""
    rows = np.arange(ctx.n) if rows is None else np.asarray(rows, np.int64)
    p = ctx.seq[rows]
    first = ctx.starts[ctx.user[rows]]
    cand = p[:, None] - k + np.arange(k)[None, :]
    ok = cand >= first[:, None]
    return np.where(ok, ctx.by_user[np.where(ok, cand, 0)], -1)


def task_data(ctx: Context, task: str, label: np.ndarray, train: np.ndarray, *, folds: int = 5,
              seed: int = 0, train_videos: np.ndarray | None = None) -> TaskData:
    """A ``TaskData`` with seeded folds over ``train``."""
    fold = np.full(ctx.n, -1, np.int64)
    fold[train] = np.random.default_rng(seed).integers(0, folds, size=len(train))
    return TaskData(ctx=ctx, task=task, label=np.asarray(label, np.int64), train=train,
                    fold=fold, folds=folds, seed=seed, train_videos=train_videos)
