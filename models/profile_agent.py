"""The Profile Agent over a dataset: portraits built one event at a time.

The update rule is ``enf_core.portrait.apply_event`` (the same code the stream
runs), so a portrait built here from a log equals the one the worker builds
from the same events. This module adds what a batch job needs: the starting
portrait from demographics and declared interest tags, a chronological replay
that records each user's portrait *before* each interaction (the scorer's
causal input), the Redis hash codec (the stream store's layout), and a
readable summary for ``enf agents profile``.

Numpy and pyarrow only; no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from enf_core.analysis import VideoAnalysis
from enf_core.data.split import event_order
from enf_core.events import FeedbackEvent, WatchEvent
from enf_core.features import PORTRAIT_DIM
from enf_core.portrait import Portrait, PortraitConfig, apply_event, apply_profile
from enf_core.taxonomy import REASONS, TOPICS

__all__ = [
    "ProfileConfig",
    "Replay",
    "initial_portrait",
    "portrait_from_hash",
    "portrait_summary",
    "portrait_to_hash",
    "replay_order",
    "replay_portraits",
    "table_rows",
]


@dataclass(frozen=True)
class ProfileConfig:
    """Starting point of a portrait (documented defaults) and the update rule's config."""

    declared_interest: float = 0.65  # interest of a topic the user declared as a tag
    portrait: PortraitConfig = field(default_factory=PortraitConfig)


def initial_portrait(user_id: str, *, age: int | None = None, gender: str | None = None,
                     occupation: str | None = None, interest_tags: Sequence[str] = (),
                     config: ProfileConfig | None = None) -> Portrait:
    """A new user's portrait: what a ``user`` event gives the stream's portrait
    (``enf_core.portrait.apply_profile``), so training sees what the worker sees."""
    c = config or ProfileConfig()
    pc = replace(c.portrait, declared_interest=c.declared_interest)
    return apply_profile(Portrait.new(user_id, pc), age=age, gender=gender,
                         occupation=occupation, interest_tags=interest_tags, config=pc)


@dataclass(frozen=True)
class Replay:
    """Result of replaying a log: the portrait before each row, and the final ones."""

    before: np.ndarray  # float32 [n_rows, PORTRAIT_DIM], aligned with the input rows
    after: np.ndarray  # float32 [n_rows, PORTRAIT_DIM], the portrait after the row's events
    portraits: dict[str, Portrait]


def replay_order(rows: Mapping[str, Sequence[Any]]) -> np.ndarray:
    """The rows in the log's one chronological order (``enf_core.data.split.event_order``:
    ts, user, position, video_id, row), the order the split was cut in: a train row is
    never replayed after a valid or test row of its user, even on equal timestamps."""
    position = rows.get("position")
    return event_order(np.asarray(rows["user_id"], dtype=object), np.asarray(rows["ts"], np.int64),
                       position=None if position is None else np.asarray(position, dtype=object),
                       video_ids=np.asarray(rows["video_id"], dtype=object))


def replay_portraits(rows: Mapping[str, Sequence[Any]], analyses: Mapping[str, VideoAnalysis],
                     users: Mapping[str, Mapping[str, Any]] | None = None, *,
                     config: ProfileConfig | None = None) -> Replay:
    """Replay interactions in time order through the Profile Agent.

    ``rows`` has columns user_id, video_id, ts, play_ms, duration_ms,
    watch_ratio, explicit_negative, reason_category and optionally position (an
    interactions table as lists), replayed in ``replay_order``. Row *i* yields a
    watch event when its watch ratio (or play and duration) is known, and a
    feedback event when it is an explicit negative.
    ``before[i]`` is the user's portrait just before row *i*.
    """
    c = config or ProfileConfig()
    users = users or {}
    n = len(rows["user_id"])
    ts = np.asarray(rows["ts"], np.int64)
    order = replay_order(rows)
    before = np.empty((n, PORTRAIT_DIM), np.float32)
    after = np.empty((n, PORTRAIT_DIM), np.float32)
    portraits: dict[str, Portrait] = {}
    uid_col, vid_col = rows["user_id"], rows["video_id"]
    ratio_col, play_col, dur_col = rows["watch_ratio"], rows["play_ms"], rows["duration_ms"]
    exp_col, reason_col = rows["explicit_negative"], rows["reason_category"]
    for i in order:
        uid = uid_col[i]
        p = portraits.get(uid)
        if p is None:
            u = users.get(uid, {})
            p = initial_portrait(uid, age=u.get("age"), gender=u.get("gender"),
                                 occupation=u.get("occupation"),
                                 interest_tags=u.get("interest_tags") or (), config=c)
            portraits[uid] = p
        before[i] = p.vector()
        vid = vid_col[i]
        a = analyses.get(vid)
        t = int(ts[i])
        ratio = ratio_col[i]
        if ratio is not None and not (isinstance(ratio, float) and np.isnan(ratio)):
            dur = dur_col[i] or 10_000
            play = play_col[i] if play_col[i] is not None else int(float(ratio) * dur)
            apply_event(p, WatchEvent(f"w{i}", uid, vid, int(play), int(dur), t), a, c.portrait)
        if exp_col[i]:
            apply_event(p, FeedbackEvent(f"f{i}", uid, vid, "dislike", t,
                                         reason_col[i] or ""), a, c.portrait)
        after[i] = p.vector()
    return Replay(before, after, portraits)


# ------------------------------------------------------------------ Redis hash


def portrait_to_hash(p: Portrait) -> dict[str, bytes]:
    """The stream store's portrait hash: v, data (orjson), vec (float32), ts, n, qsr."""
    return {"v": str(p.version).encode(), "data": orjson.dumps(p.to_dict()),
            "vec": p.vector().tobytes(), "ts": str(p.last_ts).encode(),
            "n": str(p.n_events).encode(), "qsr": str(round(p.quick_swipe_rate, 6)).encode()}


def portrait_from_hash(h: Mapping[bytes | str, bytes | str]) -> Portrait:
    """Inverse of ``portrait_to_hash``; checks that ``v`` agrees with the data."""
    def get(name: str) -> bytes | str | None:
        return h.get(name, h.get(name.encode()))  # type: ignore[call-overload, no-any-return]

    data = get("data")
    if data is None:
        raise ValueError("portrait hash has no 'data' field")
    p = Portrait.from_dict(orjson.loads(data))
    v = get("v")
    if v is not None and int(v) != p.version:
        raise ValueError(f"portrait hash version {v!r} disagrees with its data ({p.version})")
    return p


# ------------------------------------------------------------------ summary


def portrait_summary(p: Portrait, *, top_interests: int = 5) -> dict[str, Any]:
    """What ``enf agents profile`` prints: the paper's portrait, as numbers and tags."""
    interests = sorted(zip(TOPICS, p.interests, strict=True), key=lambda kv: -kv[1])
    return {
        "user_id": p.user_id,
        "demographics": p.demographics,
        "interests": {t: round(v, 3) for t, v in interests[:top_interests]},
        "interest_vector": [round(v, 4) for v in p.interests],
        "tags": [{"tag": t, "weight": w} for t, w in p.tags(limit=8)],
        "reason_tolerance": {r.value: round(v, 3)
                             for r, v in zip(REASONS, p.reason_tolerance, strict=True)},
        "quick_swipe_rate": round(p.quick_swipe_rate, 4),
        "dislike_rate": round(p.dislike_rate, 4),
        "events": p.n_events,
        "watches": p.n_watches,
        "quick_swipes": p.n_quick_swipes,
        "dislikes": p.n_dislikes,
        "version": p.version,
    }


def table_rows(table: Any, columns: Iterable[str]) -> dict[str, list[Any]]:
    """Columns of a pyarrow table as Python lists (the replay's input)."""
    return {c: table.column(c).to_pylist() for c in columns}
