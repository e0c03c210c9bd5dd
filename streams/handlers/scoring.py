"""The candidate scorer: candidates → ONNX student → suppressions + explanations.

Per batch of candidate requests: one pipelined Redis round trip for every
portrait and every video vector not already cached, one ONNX Runtime call for
all candidate rows of the batch, one produce batch. Video vectors change rarely,
so they are cached in-process for a short TTL; portraits change per event and
are always read fresh.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from enf_core.analysis import VideoAnalysis
from enf_core.events import CandidatesEvent
from enf_core.features import PORTRAIT_DIM, VIDEO_DIM, portrait_vector, video_vector
from enf_core.portrait import Portrait
from enf_core.taxonomy import REASONS
from streams.handlers.base import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetters,
    Message,
    Quarantined,
    Sink,
    decode_batch,
    now_ms,
)
from streams.store import RedisStore
from streams.stored import StoredValueError, finite_vector, parse_analysis, parse_portrait

__all__ = ["ScoringHandler", "ScoringResult", "ScoringRuntime"]

log = logging.getLogger(__name__)
_NEUTRAL_PORTRAIT = portrait_vector(Portrait.new("_"))
_NEUTRAL_VIDEO = video_vector(VideoAnalysis.neutral("_"))


class ScoringRuntime(Protocol):
    version: str
    providers: list[str]

    def score(self, portraits: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class ScoringResult:
    requests: int
    candidates: int
    suppressions: int
    explanations: int
    dead_letters: int
    latencies_ms: tuple[float, ...]
    unknown_videos: int = 0  # candidate rows whose video had no analysis yet


class _VideoCache:
    """LRU of video vectors and analyses, each entry fresh for ``ttl_s``."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size, self.ttl_s = size, ttl_s
        self._d: OrderedDict[str, tuple[float, np.ndarray, bytes | None]] = OrderedDict()

    def get(self, vid: str, now: float) -> tuple[np.ndarray, bytes | None] | None:
        hit = self._d.get(vid)
        if hit is None or now - hit[0] > self.ttl_s:
            return None
        self._d.move_to_end(vid)
        return hit[1], hit[2]

    def put(self, vid: str, vec: np.ndarray, data: bytes | None, now: float) -> None:
        self._d[vid] = (now, vec, data)
        self._d.move_to_end(vid)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


class ScoringHandler:
    def __init__(self, store: RedisStore, sink: Sink, runtime: ScoringRuntime, *,
                 suppressions_topic: str, explanations_topic: str, dead_letter_topic: str,
                 threshold: float = -1.0, explanations_per_request: int = 3,
                 video_cache_size: int = 200_000, video_cache_ttl_s: float = 30.0,
                 suppression_pages: bool = False,
                 dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES) -> None:
        self.store = store
        self.sink = sink
        self.runtime = runtime
        self.suppressions_topic = suppressions_topic
        self.explanations_topic = explanations_topic
        self.dead_letter_topic = dead_letter_topic
        self.dead = DeadLetters(sink, dead_letter_topic, dead_letter_max_bytes)
        self.threshold = threshold
        self.explanations_per_request = explanations_per_request
        self.suppression_pages = suppression_pages
        self._cache = _VideoCache(video_cache_size, video_cache_ttl_s)

    def current_threshold(self) -> float:
        """The configured threshold, else the model's (it may change on reload)."""
        if self.threshold >= 0:
            return self.threshold
        model = getattr(self.runtime, "threshold", None)
        return float(model) if model is not None else 0.5

    @staticmethod
    def _stored_vector(key: str, raw: bytes | None, dim: int, bad: list[Quarantined]
                       ) -> np.ndarray | None:
        try:
            return finite_vector(raw, dim)
        except StoredValueError as exc:
            bad.append(Quarantined(key, raw, str(exc)))
            return None

    def _portrait(self, user_id: str, data: bytes | None, bad: list[Quarantined]) -> Portrait:
        if data:
            try:
                return parse_portrait(data)
            except StoredValueError as exc:
                bad.append(Quarantined(self.store.portrait_key(user_id), data, str(exc)))
        return Portrait.new(user_id)

    def _analysis(self, video_id: str, data: bytes | None, bad: list[Quarantined]
                  ) -> VideoAnalysis:
        if data:
            try:
                return parse_analysis(data)
            except StoredValueError as exc:
                bad.append(Quarantined(self.store.video_key(video_id), data, str(exc)))
        return VideoAnalysis.neutral(video_id)

    async def handle(self, messages: Sequence[Message]) -> ScoringResult:
        from enf_core.reason import explain

        batch = decode_batch(messages, allowed=(CandidatesEvent,))
        pending: list[Any] = await self.dead.send(batch.dead)
        pairs = [(e, m) for e, m in zip(batch.events, batch.sources, strict=True)
                 if isinstance(e, CandidatesEvent)]
        requests = [e for e, _ in pairs]
        # When the candidates message entered Kafka: the start of the latency clock.
        produced = [m.timestamp_ms or e.ts for e, m in pairs]
        if not requests:
            for fut in pending:
                await fut
            return ScoringResult(0, 0, 0, 0, len(batch.dead), ())

        now = time.monotonic()
        users = list(dict.fromkeys(r.user_id for r in requests))
        video_ids = list(dict.fromkeys(v for r in requests for v in r.video_ids))
        missing = [v for v in video_ids if self._cache.get(v, now) is None]
        user_raw, video_raw = await self.store.read_for_scoring(users, missing)
        # Stored values that cannot be used are quarantined: such a video counts as
        # unknown (never suppressed), such a user as one without a portrait.
        bad: list[Quarantined] = []
        unknown: set[str] = set()
        for vid, (vec_b, data) in zip(missing, video_raw, strict=True):
            vec = self._stored_vector(self.store.video_key(vid), vec_b, VIDEO_DIM, bad)
            if vec is not None and data:  # its explanation data must be usable too
                try:
                    parse_analysis(data)
                except StoredValueError as exc:
                    bad.append(Quarantined(self.store.video_key(vid), data, str(exc)))
                    vec = None
            if vec is None:  # not analysed yet: not cached, so it is read again next time
                unknown.add(vid)
            else:
                self._cache.put(vid, vec, data, now)

        user_index = {u: i for i, u in enumerate(users)}
        user_mat = np.empty((len(users), PORTRAIT_DIM), np.float32)
        for i, (vec_b, _data) in enumerate(user_raw):
            vec = self._stored_vector(self.store.portrait_key(users[i]), vec_b, PORTRAIT_DIM, bad)
            user_mat[i] = _NEUTRAL_PORTRAIT if vec is None else vec
        video_index = {v: i for i, v in enumerate(video_ids)}
        video_mat = np.empty((len(video_ids), VIDEO_DIM), np.float32)
        video_data: list[bytes | None] = []
        for i, vid in enumerate(video_ids):
            hit = None if vid in unknown else self._cache.get(vid, now)
            if hit is None:  # unknown, or evicted within this batch: neutral
                video_mat[i], data = _NEUTRAL_VIDEO, None
            else:
                video_mat[i], data = hit
            video_data.append(data)
        # A video the Video Agent has not analysed is scored but never suppressed:
        # the feed should not hide what the plugin cannot judge.
        judged = np.fromiter((vid not in unknown for vid in video_ids), dtype=bool,
                             count=len(video_ids))

        uidx = np.fromiter((user_index[r.user_id] for r in requests for _ in r.video_ids),
                           dtype=np.int64)
        vidx = np.fromiter((video_index[v] for r in requests for v in r.video_ids),
                           dtype=np.int64)
        p_neg, reason_probs = self.runtime.score(user_mat[uidx], video_mat[vidx])
        top_reason = reason_probs.argmax(axis=1)
        # A row the model answered with NaN or Inf is never suppressed.
        finite = np.isfinite(p_neg) & np.isfinite(reason_probs).all(axis=1)
        flagged = np.flatnonzero((p_neg >= self.current_threshold()) & judged[vidx] & finite)

        ts = now_ms()
        version = self.runtime.version
        n_expl = 0
        latencies: list[float] = []
        portraits: dict[str, Portrait] = {}
        row_starts = np.cumsum([0] + [len(r.video_ids) for r in requests])
        req_of_row = np.searchsorted(row_starts, flagged, side="right") - 1
        per_request: dict[int, list[int]] = {}
        for row, ri in zip(flagged.tolist(), req_of_row.tolist(), strict=True):
            per_request.setdefault(ri, []).append(row)
        for ri, rows in per_request.items():
            req = requests[ri]
            key = req.user_id.encode()
            latencies.append(ts - produced[ri])
            rows.sort(key=lambda r: -float(p_neg[r]))
            page: list[dict[str, object]] = []
            for rank, row in enumerate(rows):
                vid = video_ids[int(vidx[row])]
                p = float(p_neg[row])
                reason = REASONS[int(top_reason[row])].value
                # Deterministic ids (docs/interfaces.md): a redelivered batch emits
                # the same record_id again, so consumers de-duplicate on it.
                record = {"v": 1, "type": "suppression",
                          "record_id": f"{req.request_id}:{vid}", "request_id": req.request_id,
                          "user_id": req.user_id, "video_id": vid, "p_negative": round(p, 5),
                          "reason": reason, "model_version": version, "ts": ts,
                          "request_ts": req.ts, "source_ts": produced[ri]}
                if self.suppression_pages:
                    page.append({"video_id": vid, "p_negative": record["p_negative"],
                                 "reason": reason})
                else:
                    pending.append(await self.sink.send(self.suppressions_topic, key,
                                                        orjson.dumps(record)))
                if rank >= self.explanations_per_request:
                    continue
                portrait = portraits.get(req.user_id)
                if portrait is None:
                    portrait = self._portrait(req.user_id, user_raw[user_index[req.user_id]][1],
                                              bad)
                    portraits[req.user_id] = portrait
                analysis = self._analysis(vid, video_data[int(vidx[row])], bad)
                probs = [float(x) for x in reason_probs[row]]
                exp = explain(portrait, analysis, p, probs)
                record = {**record, "type": "explanation",
                          "record_id": f"{req.request_id}:{vid}:x", "reason": exp.reason,
                          "reason_probs": {r.value: round(x, 5)
                                           for r, x in zip(REASONS, probs, strict=True)},
                          "text": exp.text, "evidence": exp.evidence}
                pending.append(await self.sink.send(self.explanations_topic, key,
                                                    orjson.dumps(record)))
                n_expl += 1
            if page:
                # One message per request: the per-record produce cost, not the
                # model, bounds the scorer when many candidates are suppressed.
                record = {"v": 1, "type": "suppression_page", "record_id": req.request_id,
                          "request_id": req.request_id,
                          "user_id": req.user_id, "model_version": version, "ts": ts,
                          "request_ts": req.ts, "source_ts": produced[ri], "items": page}
                pending.append(await self.sink.send(self.suppressions_topic, key,
                                                    orjson.dumps(record)))
        pending += await self.dead.quarantine(bad)
        for fut in pending:
            await fut
        return ScoringResult(len(requests), len(uidx), len(flagged), n_expl,
                             len(batch.dead), tuple(latencies),
                             int(np.count_nonzero(~judged[vidx])))
