"""Per-user chronological train / valid / test split.

The rule (also in docs/data.md): order each user's interactions by
(ts, position, video_id); the last ``test_fraction`` of them (rounded half up,
at least 1) is ``test``, the ``valid_fraction`` before that (same rounding, at
least 1) is ``valid``, the rest is ``train``. A user with fewer than
``min_interactions`` (3) interactions is all ``train``: one or two rows cannot
both teach and test a model of that user.

Why per user and by time: a model must be judged on a user's *future* given
their past, which is what the streaming pipeline faces. The rule depends only
on the rows, never on a random seed, so every run and every source agrees.

``event_order`` is the one chronological order of a log, used by the split,
the loaders (which write rows in it), the Profile Agent's replay and the
Kafka replay plan: by ts, then user, position, video_id and file row. Two rows
of a user with the same ts are therefore ordered by position, then video_id,
everywhere, so no train row is replayed after a valid or test row of its user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from enf_core.data.schema import SPLITS

__all__ = ["SplitConfig", "assign_split", "event_order", "split_column"]


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each user's most recent interactions held out."""

    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    min_interactions: int = 3  # below this a user is all train

    def describe(self) -> dict[str, object]:
        return {"rule": "per user, ordered by (ts, position, video_id): last test_fraction "
                        "(round half up, >= 1) -> test, the valid_fraction before it -> valid, "
                        "rest -> train; users with < min_interactions rows are all train",
                "valid_fraction": self.valid_fraction, "test_fraction": self.test_fraction,
                "min_interactions": self.min_interactions}


def _held_out(n: np.ndarray, fraction: float) -> np.ndarray:
    return np.maximum(1, np.floor(n * fraction + 0.5)).astype(np.int64)


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense codes in sorted order of ``values`` (strings compare as strings)."""
    return np.unique(np.asarray(values).astype(str), return_inverse=True)[1].reshape(-1)


def _position_key(position: np.ndarray | None, n: int) -> np.ndarray:
    if position is None:
        return np.zeros(n, np.int64)
    pos = np.asarray(position, dtype=object)
    return np.array([0 if p is None or (isinstance(p, float) and np.isnan(p)) else int(p)
                     for p in pos], dtype=np.int64)


def event_order(user_ids: np.ndarray, ts: np.ndarray, *, position: np.ndarray | None = None,
                video_ids: np.ndarray | None = None) -> np.ndarray:
    """Row indices in the log's one chronological order: ts, user, position, video_id,
    row (a missing position counts as 0). Within a user this is the split's order."""
    n = len(user_ids)
    if n == 0:
        return np.zeros(0, np.int64)
    keys: list[np.ndarray] = [np.arange(n)]
    if video_ids is not None:
        keys.append(_codes(video_ids))
    keys += [_position_key(position, n), _codes(user_ids), np.asarray(ts, np.int64)]
    return np.lexsort(tuple(keys)).astype(np.int64)


def assign_split(user_ids: np.ndarray, ts: np.ndarray, *, position: np.ndarray | None = None,
                 video_ids: np.ndarray | None = None,
                 config: SplitConfig = SplitConfig()) -> np.ndarray:
    """Split labels (array of 'train'/'valid'/'test') aligned with the input rows."""
    n_rows = len(user_ids)
    if n_rows == 0:
        return np.array([], dtype=object)
    user_codes = _codes(user_ids)
    order = event_order(user_ids, ts, position=position, video_ids=video_ids)
    order = order[np.argsort(user_codes[order], kind="stable")]  # per user, in event order
    sorted_users = user_codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, n_rows])
    rank = np.arange(n_rows) - np.repeat(starts, sizes)  # 0-based rank within the user
    size = np.repeat(sizes, sizes)
    n_test = _held_out(size, config.test_fraction)
    n_valid = _held_out(size, config.valid_fraction)
    eligible = size >= config.min_interactions
    label = np.zeros(n_rows, dtype=np.int8)
    label[eligible & (rank >= size - n_test - n_valid)] = 1
    label[eligible & (rank >= size - n_test)] = 2
    out = np.empty(n_rows, dtype=object)
    out[order] = np.array(SPLITS, dtype=object)[label]
    return out


def split_column(user_ids: np.ndarray, ts: np.ndarray, *, position: np.ndarray | None = None,
                 video_ids: np.ndarray | None = None,
                 config: SplitConfig = SplitConfig()) -> pa.Array:
    """``assign_split`` as an Arrow string array, ready to add to an interactions table."""
    labels = assign_split(user_ids, ts, position=position, video_ids=video_ids, config=config)
    return pa.array(labels.tolist(), type=pa.string())
