"""What every loader returns, and helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from enf_core.data.schema import IMPLICIT_THRESHOLD
from enf_core.data.split import SplitConfig, event_order, split_column

__all__ = ["LoadedTables", "anonymous_users", "default_shared_data", "interactions_table"]


@dataclass
class LoadedTables:
    """A source converted to the schema's three tables, plus sidecar metadata."""

    users: pa.Table
    videos: pa.Table
    interactions: pa.Table
    meta: dict[str, Any] = field(default_factory=dict)


def default_shared_data(name: str) -> Path:
    """``shared/data/<name>`` next to the checkout (../shared/data from the repo root)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        for candidate in (parent / "shared" / "data" / name,
                          parent.parent / "shared" / "data" / name):
            if candidate.is_dir():
                return candidate
    return Path("../shared/data") / name


def interactions_table(*, user_id: np.ndarray, video_id: np.ndarray, ts: np.ndarray,
                       play_ms: np.ndarray | None = None, duration_ms: np.ndarray | None = None,
                       explicit: np.ndarray, rating: np.ndarray | None = None,
                       split: SplitConfig | None = None) -> pa.Table:
    """Build the interactions table the same way for every source.

    ``play_ms``/``duration_ms`` may hold NaN for unknown values (or be None when
    the source has no watch signal); watch ratio and the implicit flag follow.
    Rows are written in ``event_order`` (ts, user, video_id): the file's row order is
    the order the split, the Profile Agent's replay and the Kafka replay all use.
    """
    n = len(user_id)
    uid = np.asarray(user_id).astype(str).astype(object)
    vid = np.asarray(video_id).astype(str).astype(object)
    ts = np.asarray(ts, dtype=np.int64)
    order = event_order(uid, ts, video_ids=vid)
    uid, vid, ts = uid[order], vid[order], ts[order]
    explicit = np.asarray(explicit)[order]
    rating = None if rating is None else np.asarray(rating)[order]
    play_ms = None if play_ms is None else np.asarray(play_ms)[order]
    duration_ms = None if duration_ms is None else np.asarray(duration_ms)[order]
    if play_ms is not None and duration_ms is not None:
        play = np.asarray(play_ms, dtype=np.float64)
        dur = np.asarray(duration_ms, dtype=np.float64)
        known = np.isfinite(play) & np.isfinite(dur) & (dur > 0)
        ratio = np.where(known, play / np.where(known, dur, 1.0), np.nan)
        play_arr = pa.array(np.where(np.isfinite(play), play, 0).astype(np.int64),
                            mask=~np.isfinite(play))
        dur_arr = pa.array(np.where(dur > 0, dur, 1).astype(np.int64), mask=~(dur > 0))
        ratio_arr = pa.array(np.where(known, ratio, 0.0), pa.float64(), mask=~known)
        implicit_arr = pa.array(np.where(known, ratio < IMPLICIT_THRESHOLD, False), pa.bool_(),
                                mask=~known)
    else:
        play_arr = pa.nulls(n, pa.int64())
        dur_arr = pa.nulls(n, pa.int64())
        ratio_arr = pa.nulls(n, pa.float64())
        implicit_arr = pa.nulls(n, pa.bool_())
    return pa.table({
        "user_id": pa.array(uid.tolist(), pa.string()),
        "video_id": pa.array(vid.tolist(), pa.string()),
        "ts": pa.array(ts, pa.int64()),
        "play_ms": play_arr,
        "duration_ms": dur_arr,
        "watch_ratio": ratio_arr,
        "implicit_negative": implicit_arr,
        "explicit_negative": pa.array(np.asarray(explicit, dtype=bool), pa.bool_()),
        "reason_category": pa.array([""] * n, pa.string()),
        "reason_text": pa.array([""] * n, pa.string()),
        "split": split_column(uid, ts, video_ids=vid, config=split or SplitConfig()),
        "request_id": pa.nulls(n, pa.string()),
        "position": pa.nulls(n, pa.int16()),
        "rating": (pa.array(np.asarray(rating, dtype=np.float32), pa.float32())
                   if rating is not None else pa.nulls(n, pa.float32())),
    })


def anonymous_users(user_ids: np.ndarray) -> pa.Table:
    """A users table for logs that carry no demographics: each distinct id once."""
    unique = np.unique(user_ids)
    n = len(unique)
    return pa.table({
        "user_id": pa.array(unique.tolist(), pa.string()),
        "age": pa.nulls(n, pa.int16()),
        "gender": pa.nulls(n, pa.string()),
        "occupation": pa.nulls(n, pa.string()),
        "interest_tags": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
    })
