"""Which Kafka messages a dataset replays into, in which order, with which ids.

Pure logic (no Kafka): ``streams.replay`` sends what ``plan_replay`` yields.
The rules, also in docs/data.md:

* Videos first, one ``video`` record each (key video_id, topic ``videos``),
  with ``uri`` = the real file's path, or ``frames://<abs path of frames.npy>#<row>``
  for simulated frames (the video analyser resolves it), or "" when the
  dataset has neither. ``duration_ms`` = 1 means unknown (the schema requires >= 1).
* Then user events in time order (``enf_core.data.split.event_order``: ts, user,
  position, video_id; key user_id): per feed request (``request_id``;
  derived as consecutive chunks of ``page_size`` of a user's interactions when the
  data has none) a ``candidates`` record (topic ``candidates``: the page's videos
  plus ``extra_candidates`` random catalogue videos, shuffled), then one
  ``impression`` page record listing the page's videos by position, then per
  interaction a ``watch`` (when play and duration are known) and, for an explicit
  negative, a ``feedback`` (kind "dislike", with reason category and text).
* Event ids come from the data, so a replay can be checked against it:
  ``v:<video>``, ``c:<request>``, ``i:<request>`` (the page; its decoded
  impressions are ``i:<request>:<index>``), ``w:<user>:<video>:<ts>``,
  ``f:<user>:<video>:<ts>``; a rare collision gets ``#2``, ``#3``...
* ``limit`` keeps the first N interactions in time order, and only the videos
  those events mention.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from enf_core.data.schema import Dataset
from enf_core.data.split import event_order
from enf_core.events import MAX_TEXT, SCHEMA_VERSION

__all__ = [
    "STREAMS",
    "PlannedMessage",
    "ReplayConfig",
    "ReplayPlan",
    "ids_digest",
    "plan_replay",
]

STREAMS: Final = ("videos", "user-events", "candidates")
_KIND_ORDER: Final = {"candidates": 0, "impression": 1, "watch": 2, "feedback": 3}


@dataclass(frozen=True)
class ReplayConfig:
    """How a dataset becomes messages."""

    page_size: int = 6  # derived feed pages when the data has no request_id
    extra_candidates: int = 20  # random catalogue videos added to each candidates request
    seed: int = 0  # for the extra candidates and their shuffle
    limit: int | None = None  # replay only the first N interactions (time order)


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message: which stream, its key, its JSON payload and the ids it decodes to."""

    stream: str
    key: str
    type: str
    ts: int
    payload: dict[str, Any]
    event_ids: tuple[str, ...]


@dataclass
class ReplayPlan:
    """The messages in send order, with their counts by type."""

    messages: list[PlannedMessage]
    counts: dict[str, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[PlannedMessage]:
        return iter(self.messages)

    @property
    def n_events(self) -> int:
        return sum(len(m.event_ids) for m in self.messages)

    def event_ids(self) -> list[str]:
        return [i for m in self.messages for i in m.event_ids]


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 over the sorted ids, newline-joined: equal iff the id sets are equal."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode())
        h.update(b"\n")
    return h.hexdigest()


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


class _Ids:
    """Deterministic, collision-free event ids."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.repeats: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        if base not in self.seen:
            self.seen.add(base)
            return base
        n = self.repeats.get(base, 1) + 1
        self.repeats[base] = n
        return f"{base}#{n}"


def plan_replay(ds: Dataset, config: ReplayConfig = ReplayConfig()) -> ReplayPlan:
    """Every message a replay of ``ds`` sends, in order (see the module docstring)."""
    inter = ds.interactions
    order = event_order(_column(inter, "user_id"), _column(inter, "ts"),
                        position=_position_key(inter), video_ids=_column(inter, "video_id"))
    if config.limit is not None:
        order = order[: max(0, config.limit)]
    user = _column(inter, "user_id").astype(object)[order]
    video = _column(inter, "video_id").astype(object)[order]
    ts = _column(inter, "ts").astype(np.int64)[order]
    play = inter.column("play_ms").to_pylist()
    dur = inter.column("duration_ms").to_pylist()
    explicit = _column(inter, "explicit_negative").astype(bool)[order]
    cats = _column(inter, "reason_category").astype(object)[order]
    texts = _column(inter, "reason_text").astype(object)[order]
    positions = inter.column("position").to_pylist()
    requests = _request_ids(inter.column("request_id").to_pylist(), order, user,
                            config.page_size)
    m = len(order)

    # Pages: rows grouped by request, ordered by position (then time).
    req_codes_unique, page_of_row = np.unique(np.asarray(requests, dtype=object).astype(str),
                                              return_inverse=True)
    n_pages = len(req_codes_unique)
    page_ts = np.full(n_pages, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(page_ts, page_of_row, ts)
    pos_key = np.array([positions[i] if positions[i] is not None else 0 for i in order],
                       dtype=np.int64) if m else np.zeros(0, dtype=np.int64)
    by_page = np.lexsort((np.arange(m), pos_key, page_of_row))
    page_starts = np.searchsorted(page_of_row[by_page], np.arange(n_pages))
    page_ends = np.r_[page_starts[1:], m].astype(np.int64)
    page_user = user[by_page[page_starts]] if m else np.array([], dtype=object)

    # Candidates: the page's videos plus random catalogue videos, shuffled.
    catalogue = _column(ds.videos, "video_id").astype(object)
    rng = np.random.default_rng(config.seed)
    page_order = np.argsort(page_ts, kind="stable")
    candidates: dict[int, list[str]] = {}
    for p in page_order:
        rows = by_page[page_starts[p]:page_ends[p]]
        page_videos = list(dict.fromkeys(video[rows].tolist()))
        extra: list[str] = []
        if config.extra_candidates and len(catalogue):
            want = min(config.extra_candidates, len(catalogue) - len(page_videos))
            taken = set(page_videos)
            while len(extra) < want:  # draws with repeats, keeps the first of each
                for c in catalogue[rng.integers(len(catalogue), size=2 * want)].tolist():
                    if c not in taken:
                        taken.add(c)
                        extra.append(c)
                        if len(extra) == want:
                            break
        both = page_videos + extra
        candidates[int(p)] = [both[i] for i in rng.permutation(len(both))]

    messages: list[PlannedMessage] = []
    counts = {"user": 0, "video": 0, "candidates": 0, "impression": 0, "watch": 0,
              "feedback": 0}
    ids = _Ids()
    first_ts = int(ts.min()) if m else 0

    # Videos: all of them, or with a limit those the replayed events mention.
    if config.limit is None:
        wanted = np.arange(ds.videos.num_rows)
    else:
        mentioned = set(video.tolist())
        for c in candidates.values():
            mentioned.update(c)
        wanted = np.flatnonzero(np.isin(catalogue, np.array(sorted(mentioned), dtype=object)))
    uris = ds.video_uris()
    titles = ds.videos.column("title").to_pylist()
    v_dur = ds.videos.column("duration_ms").to_pylist()
    v_tags = ds.videos.column("tags").to_pylist()
    video_ts = max(0, first_ts - 1)
    for row in wanted.tolist():
        vid = str(catalogue[row])
        eid = ids(f"v:{vid}")
        payload = {"v": SCHEMA_VERSION, "type": "video", "event_id": eid, "video_id": vid,
                   "title": (titles[row] or "")[:MAX_TEXT],
                   "duration_ms": int(v_dur[row]) if v_dur[row] else 1,
                   "ts": video_ts, "tags": list(v_tags[row] or [])[:64],
                   "uri": uris[row]}
        messages.append(PlannedMessage("videos", vid, "video", video_ts, payload, (eid,)))
        counts["video"] += 1

    # User records (demographics, declared interests): each replayed user's, on the
    # user-events topic before any of that user's events, so the worker's portrait
    # starts where the Profile Agent's offline replay starts.
    replayed = set(user.tolist())
    u_ids = ds.users.column("user_id").to_pylist()
    u_cols = {name: ds.users.column(name).to_pylist()
              for name in ("age", "gender", "occupation", "interest_tags")
              if name in ds.users.column_names}
    for row, uid in enumerate(u_ids):
        if uid not in replayed:
            continue
        eid = ids(f"u:{uid}")
        payload = {"v": SCHEMA_VERSION, "type": "user", "event_id": eid, "user_id": str(uid),
                   "ts": video_ts}
        for name, col in u_cols.items():
            value = col[row]
            if value is not None:
                payload[name] = list(value)[:64] if name == "interest_tags" else value
        messages.append(PlannedMessage("user-events", str(uid), "user", video_ts, payload,
                                       (eid,)))
        counts["user"] += 1

    # User events, sorted by (ts, kind, index).
    keys: list[tuple[int, int, int]] = []
    for p in range(n_pages):
        keys.append((int(page_ts[p]), _KIND_ORDER["candidates"], p))
        keys.append((int(page_ts[p]), _KIND_ORDER["impression"], p))
    for r in range(m):
        src = int(order[r])
        if play[src] is not None and dur[src]:
            keys.append((int(ts[r]), _KIND_ORDER["watch"], r))
        if explicit[r]:
            keys.append((int(ts[r]), _KIND_ORDER["feedback"], r))
    keys.sort()
    for when, kind, ix in keys:
        if kind == _KIND_ORDER["candidates"]:
            req = str(req_codes_unique[ix])
            eid = ids(f"c:{req}")
            payload = {"v": SCHEMA_VERSION, "type": "candidates", "event_id": eid,
                       "request_id": req, "user_id": str(page_user[ix]),
                       "video_ids": candidates[ix], "ts": when}
            messages.append(PlannedMessage("candidates", str(page_user[ix]), "candidates", when,
                                           payload, (eid,)))
            counts["candidates"] += 1
        elif kind == _KIND_ORDER["impression"]:
            req = str(req_codes_unique[ix])
            rows = by_page[page_starts[ix]:page_ends[ix]]
            eid = ids(f"i:{req}")
            items = [{"video_id": str(video[r]),
                      "position": int(pos_key[r]) if positions[int(order[r])] is not None
                      else k} for k, r in enumerate(rows)]
            payload = {"v": SCHEMA_VERSION, "type": "impression", "event_id": eid,
                       "user_id": str(page_user[ix]), "request_id": req, "ts": when,
                       "items": items}
            messages.append(PlannedMessage("user-events", str(page_user[ix]), "impression", when,
                                           payload,
                                           tuple(f"{eid}:{k}" for k in range(len(items)))))
            counts["impression"] += len(items)
        elif kind == _KIND_ORDER["watch"]:
            src = int(order[ix])
            eid = ids(f"w:{user[ix]}:{video[ix]}:{when}")
            payload = {"v": SCHEMA_VERSION, "type": "watch", "event_id": eid,
                       "user_id": str(user[ix]), "video_id": str(video[ix]),
                       "play_ms": int(play[src]), "duration_ms": int(dur[src]), "ts": when}
            messages.append(PlannedMessage("user-events", str(user[ix]), "watch", when, payload,
                                           (eid,)))
            counts["watch"] += 1
        else:
            eid = ids(f"f:{user[ix]}:{video[ix]}:{when}")
            payload = {"v": SCHEMA_VERSION, "type": "feedback", "event_id": eid,
                       "user_id": str(user[ix]), "video_id": str(video[ix]), "kind": "dislike",
                       "ts": when, "reason_category": str(cats[ix] or ""),
                       "reason_text": str(texts[ix] or "")[:MAX_TEXT]}
            messages.append(PlannedMessage("user-events", str(user[ix]), "feedback", when,
                                           payload, (eid,)))
            counts["feedback"] += 1
    return ReplayPlan(messages, counts)


def _position_key(inter: pa.Table) -> np.ndarray:
    pos = inter.column("position").to_pylist()
    return np.array([p if p is not None else 0 for p in pos], dtype=np.int64)


def _request_ids(given: list[Any], order: np.ndarray, user: np.ndarray,
                 page_size: int) -> list[str]:
    """The data's request ids, or per-user chunks of ``page_size`` rows: ``<user>-r<k>``."""
    out: list[str] = []
    rank: dict[str, int] = {}
    for r, src in enumerate(order.tolist()):
        req = given[src]
        if req:
            out.append(str(req))
            continue
        u = str(user[r])
        k = rank.get(u, 0)
        rank[u] = k + 1
        out.append(f"{u}-r{k // page_size}")
    return out
