"""The logged streams back into the ENF log schema, outcomes joined to decisions.

``enf logs dump`` reads every topic a deployment writes and hands the decoded
records here, in any order (the join sorts by time). Pure: no Kafka.

* ``interactions``: one row per watch (ts, play and duration, watch ratio),
  with the feed page it was shown on (the latest impression of that user and
  video at or before the watch: ``request_id``, ``position``) and the
  feedback that followed it (the latest watch at or before a feedback gets it;
  a feedback without a watch is a row of its own without a watch ratio).
  Split by the schema's rule. Input events are de-duplicated by ``event_id``
  (redelivered messages), outputs by ``record_id`` (at-least-once outputs).
* ``users`` from ``user`` records (users seen only in events get empty rows);
  ``videos`` from ``video`` records (``frames://<file>#<row>`` uris of one
  frames file become ``frames_row`` with that file in the sidecar, so the
  dump trains the video head too); videos seen only in events get empty rows.
* ``decisions``: one row per candidate of every candidates request: was it
  suppressed, with which p_negative, reason, model version and explanation
  (text, explainer), and what the user did with that video at or after the
  request: shown, watched (watch ratio, quick swipe), disliked (category).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from enf_core.data.schema import IMPLICIT_THRESHOLD
from enf_core.data.split import SplitConfig, event_order, split_column
from enf_core.events import (
    CandidatesEvent,
    Event,
    FeedbackEvent,
    ImpressionEvent,
    UserProfileEvent,
    VideoEvent,
    WatchEvent,
)

__all__ = ["DECISION_COLUMNS", "DumpTables", "LogJoin"]

DECISION_COLUMNS: dict[str, pa.DataType] = {
    "request_id": pa.string(), "user_id": pa.string(), "video_id": pa.string(),
    "candidate_index": pa.int32(), "request_ts": pa.int64(), "suppressed": pa.bool_(),
    "p_negative": pa.float64(), "reason": pa.string(), "model_version": pa.string(),
    "explanation": pa.string(), "explainer": pa.string(), "shown": pa.bool_(),
    "watched": pa.bool_(), "watch_ratio": pa.float64(), "quick_swipe": pa.bool_(),
    "disliked": pa.bool_(), "reason_category": pa.string(), "outcome_ts": pa.int64(),
}


@dataclass
class DumpTables:
    """What the join produces: the schema's three tables, decisions, counts, meta."""

    users: pa.Table
    videos: pa.Table
    interactions: pa.Table
    decisions: pa.Table
    counts: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Decision:
    p_negative: float | None = None
    reason: str | None = None
    model_version: str | None = None
    suppressed: bool = False
    explanation: str | None = None
    explainer: str | None = None


class LogJoin:
    """Accumulates decoded records; ``tables()`` joins them."""

    def __init__(self) -> None:
        self.users: dict[str, UserProfileEvent] = {}
        self.videos: dict[str, VideoEvent] = {}
        self.impressions: list[ImpressionEvent] = []
        self.watches: list[WatchEvent] = []
        self.feedback: list[FeedbackEvent] = []
        self.candidates: dict[str, CandidatesEvent] = {}
        self.decisions: dict[tuple[str, str], _Decision] = {}
        self._event_ids: set[str] = set()
        self._record_ids: set[str] = set()
        self.counts: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------ inputs

    def add_event(self, e: Event) -> None:
        """A validated input event (user events, videos, candidates topics)."""
        eid = e.event_id
        if eid in self._event_ids:
            self.counts["duplicate_events"] += 1
            return
        self._event_ids.add(eid)
        self.counts[e.type] += 1
        if isinstance(e, UserProfileEvent):
            self.users[e.user_id] = e
        elif isinstance(e, VideoEvent):
            self.videos[e.video_id] = e
        elif isinstance(e, ImpressionEvent):
            self.impressions.append(e)
        elif isinstance(e, WatchEvent):
            self.watches.append(e)
        elif isinstance(e, FeedbackEvent):
            self.feedback.append(e)
        elif isinstance(e, CandidatesEvent):
            self.candidates.setdefault(e.request_id, e)

    def add_output(self, record: Any) -> None:
        """One record of the suppressions or explanations topic (a dict)."""
        if not isinstance(record, dict) or not isinstance(record.get("request_id"), str):
            self.counts["unreadable_outputs"] += 1
            return
        rid = record.get("record_id")
        if isinstance(rid, str):
            if rid in self._record_ids:
                self.counts["duplicate_outputs"] += 1
                return
            self._record_ids.add(rid)
        kind = record.get("type")
        self.counts[f"out_{kind}"] += 1
        req, version = record["request_id"], record.get("model_version")
        if kind == "suppression":
            self._decide(req, record, version, suppressed=True)
        elif kind in ("suppression_page", "rerank_page"):
            for item in record.get("items") or ():
                if isinstance(item, dict):
                    self._decide(req, item, version,
                                 suppressed=bool(item.get("suppressed", True)))
        elif kind == "explanation":
            d = self._decide(req, record, version, suppressed=True)
            if d is not None:
                d.explanation = str(record.get("text") or "")
                d.explainer = str(record.get("explainer") or "template")

    def _decide(self, req: str, item: dict[str, Any], version: Any, *,
                suppressed: bool) -> _Decision | None:
        vid = item.get("video_id")
        if not isinstance(vid, str):
            return None
        d = self.decisions.setdefault((req, vid), _Decision())
        p = item.get("p_negative")
        if isinstance(p, int | float) and not isinstance(p, bool):
            d.p_negative = float(p)
        if isinstance(item.get("reason"), str):
            d.reason = item["reason"]
        if isinstance(version, str):
            d.model_version = version
        d.suppressed = d.suppressed or suppressed
        return d

    # ------------------------------------------------------------ the join

    def tables(self, split: SplitConfig | None = None) -> DumpTables:
        inter = self._interactions(split or SplitConfig())
        users = self._users(inter)
        videos, frames_meta = self._videos(inter)
        decisions = self._decisions(inter)
        counts = dict(self.counts)
        counts.update(interactions=inter.num_rows, decisions=decisions.num_rows,
                      users=users.num_rows, videos=videos.num_rows)
        return DumpTables(users, videos, inter, decisions, counts,
                          {"frames": frames_meta} if frames_meta else {})

    def _interactions(self, split: SplitConfig) -> pa.Table:
        # the page each (user, video) was shown on, by time
        shown: dict[tuple[str, str], list[tuple[int, str, int]]] = defaultdict(list)
        for i in self.impressions:
            shown[(i.user_id, i.video_id)].append((i.ts, i.request_id, i.position))
        for v in shown.values():
            v.sort()
        rows: list[dict[str, Any]] = []
        by_pair: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for w in sorted(self.watches, key=lambda w: (w.ts, w.user_id, w.video_id)):
            by_pair[(w.user_id, w.video_id)].append((w.ts, len(rows)))
            rows.append({"user_id": w.user_id, "video_id": w.video_id, "ts": w.ts,
                         "play_ms": w.play_ms, "duration_ms": w.duration_ms, "explicit": False,
                         "reason_category": "", "reason_text": ""})
        for f in sorted(self.feedback, key=lambda f: f.ts):
            pair = by_pair.get((f.user_id, f.video_id), [])
            k = bisect.bisect_right(pair, (f.ts, len(rows) + 1)) - 1
            if k >= 0:
                row = rows[pair[k][1]]
            else:
                row = {"user_id": f.user_id, "video_id": f.video_id, "ts": f.ts,
                       "play_ms": None, "duration_ms": None}
                self.counts["feedback_without_watch"] += 1
                rows.append(row)
            row.update(explicit=True, reason_category=f.reason_category,
                       reason_text=f.reason_text)
        # Each row takes the latest page shown at or before it, its first position not
        # taken yet (a video may sit twice on one page; each showing is watched once).
        used: set[tuple[str, str, int]] = set()
        for row in sorted(rows, key=lambda r: r["ts"]):
            pages = shown.get((row["user_id"], row["video_id"]), [])
            k = bisect.bisect_right(pages, (row["ts"], "\uffff", 1 << 30))
            free = [p for p in pages[:k] if (row["user_id"], p[1], p[2]) not in used]
            if free:
                top = max(p[0] for p in free)
                pick = min((p for p in free if p[0] == top), key=lambda p: p[2])
                used.add((row["user_id"], pick[1], pick[2]))
                row["request_id"], row["position"] = pick[1], pick[2]
            else:
                row["request_id"], row["position"] = None, None
        n = len(rows)
        uid = np.array([r["user_id"] for r in rows], dtype=object)
        vid = np.array([r["video_id"] for r in rows], dtype=object)
        ts = np.array([r["ts"] for r in rows], dtype=np.int64)
        pos = np.array([r["position"] for r in rows], dtype=object)
        order = event_order(uid, ts, position=pos, video_ids=vid) if n else np.zeros(0, int)
        rows = [rows[i] for i in order]
        play = [r["play_ms"] for r in rows]
        dur = [r["duration_ms"] for r in rows]
        ratio = [p / d if p is not None and d else None for p, d in zip(play, dur, strict=True)]
        return pa.table({
            "user_id": pa.array([r["user_id"] for r in rows], pa.string()),
            "video_id": pa.array([r["video_id"] for r in rows], pa.string()),
            "ts": pa.array([r["ts"] for r in rows], pa.int64()),
            "play_ms": pa.array(play, pa.int64()),
            "duration_ms": pa.array(dur, pa.int64()),
            "watch_ratio": pa.array(ratio, pa.float64()),
            "implicit_negative": pa.array([None if x is None else x < IMPLICIT_THRESHOLD
                                           for x in ratio], pa.bool_()),
            "explicit_negative": pa.array([bool(r["explicit"]) for r in rows], pa.bool_()),
            "reason_category": pa.array([r["reason_category"] for r in rows], pa.string()),
            "reason_text": pa.array([r["reason_text"] for r in rows], pa.string()),
            "split": split_column(uid[order], ts[order], position=pos[order],
                                  video_ids=vid[order], config=split) if n
            else pa.array([], pa.string()),
            "request_id": pa.array([r["request_id"] for r in rows], pa.string()),
            "position": pa.array([r["position"] for r in rows], pa.int16()),
        })

    def _users(self, inter: pa.Table) -> pa.Table:
        seen = dict.fromkeys([*self.users, *inter.column("user_id").to_pylist()])
        rec = [self.users.get(u) for u in seen]
        return pa.table({
            "user_id": pa.array(list(seen), pa.string()),
            "age": pa.array([r.age if r else None for r in rec], pa.int16()),
            "gender": pa.array([(r.gender or None) if r else None for r in rec], pa.string()),
            "occupation": pa.array([(r.occupation or None) if r else None for r in rec],
                                   pa.string()),
            "interest_tags": pa.array([list(r.interest_tags) if r else [] for r in rec],
                                      pa.list_(pa.string())),
        })

    def _videos(self, inter: pa.Table) -> tuple[pa.Table, dict[str, Any] | None]:
        seen = dict.fromkeys([*self.videos, *inter.column("video_id").to_pylist(),
                              *(v for c in self.candidates.values() for v in c.video_ids)])
        rec = [self.videos.get(v) for v in seen]
        uris = [(r.uri or None) if r else None for r in rec]
        files = {u.split("://", 1)[1].rsplit("#", 1)[0] for u in uris
                 if u and u.startswith("frames://") and "#" in u}
        rows: list[int | None] = [None] * len(rec)
        frames_meta = None
        if len(files) == 1:  # one frames file: rows of it, the file named in the sidecar
            (file,) = files
            for i, u in enumerate(uris):
                if u and u.startswith("frames://"):
                    rows[i], uris[i] = int(u.rsplit("#", 1)[1]), None
            frames_meta = _frames_meta(file)
            if frames_meta is None:  # the file is gone: keep the uris, no frames
                rows = [None] * len(rec)
                uris = [(r.uri or None) if r else None for r in rec]
        return pa.table({
            "video_id": pa.array(list(seen), pa.string()),
            "title": pa.array([r.title if r else "" for r in rec], pa.string()),
            "duration_ms": pa.array([r.duration_ms if r and r.duration_ms > 1 else None
                                     for r in rec], pa.int64()),
            "tags": pa.array([list(r.tags) if r else [] for r in rec], pa.list_(pa.string())),
            "uri": pa.array(uris, pa.string()),
            "frames_row": pa.array(rows, pa.int32()),
        }), frames_meta

    def _decisions(self, inter: pa.Table) -> pa.Table:
        outcome: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        cols = {c: inter.column(c).to_pylist() for c in (
            "user_id", "video_id", "ts", "watch_ratio", "explicit_negative", "reason_category",
            "request_id")}
        for i, (u, v, t) in enumerate(zip(cols["user_id"], cols["video_id"], cols["ts"],
                                          strict=True)):
            outcome[(u, v)].append((t, i))
        out: dict[str, list[Any]] = {c: [] for c in DECISION_COLUMNS}
        for req in sorted(self.candidates.values(), key=lambda c: (c.ts, c.request_id)):
            for k, vid in enumerate(req.video_ids):
                d = self.decisions.get((req.request_id, vid), _Decision())
                later = outcome.get((req.user_id, vid), [])
                j = bisect.bisect_left(later, (req.ts, -1))
                row = later[j][1] if j < len(later) else None
                ratio = cols["watch_ratio"][row] if row is not None else None
                values = {
                    "request_id": req.request_id, "user_id": req.user_id, "video_id": vid,
                    "candidate_index": k, "request_ts": req.ts, "suppressed": d.suppressed,
                    "p_negative": d.p_negative, "reason": d.reason,
                    "model_version": d.model_version, "explanation": d.explanation,
                    "explainer": d.explainer,
                    "shown": row is not None and cols["request_id"][row] == req.request_id,
                    "watched": ratio is not None, "watch_ratio": ratio,
                    "quick_swipe": None if ratio is None else ratio < IMPLICIT_THRESHOLD,
                    "disliked": bool(row is not None and cols["explicit_negative"][row]),
                    "reason_category": cols["reason_category"][row] if row is not None else "",
                    "outcome_ts": cols["ts"][row] if row is not None else None}
                for c, v in values.items():
                    out[c].append(v)
        self.counts["decisions_without_request"] = len(
            {r for r, _ in self.decisions} - set(self.candidates))
        return pa.table({c: pa.array(v, t) for (c, t), v in zip(DECISION_COLUMNS.items(),
                                                               out.values(), strict=True)})


def _frames_meta(file: str) -> dict[str, Any] | None:
    """The sidecar's frames block for an existing frames.npy (read as a memory map)."""
    path = Path(file)
    if path.is_dir():
        path = path / "frames.npy"
    if not path.is_file():
        return None
    arr = np.load(path, mmap_mode="r")
    return {"file": str(path.resolve()), "dtype": str(arr.dtype), "shape": list(arr.shape),
            "source": "frames:// uris of the logged video records"}
