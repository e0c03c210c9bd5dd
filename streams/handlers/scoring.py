"""The candidate scorer: candidates → ONNX student → policy → suppressions / re-rank pages.

Per batch of candidate requests: one pipelined Redis round trip for every
portrait and every video vector not already cached, one ONNX Runtime call for
all candidate rows of the batch (calibrated p_negative), the suppression policy
(``enf_core.policy``: operating point, per-request budget, cold portraits) over
the whole batch, one produce batch. Video vectors change rarely, so they are
cached in-process for a short TTL; portraits change per event and are always
read fresh.

Two ways in (both end in ``respond``):

* ``handle``: the ``candidates`` topic. The portrait is the latest in Redis;
  the record says ``stale`` when the user's portrait had not caught up with
  the user-events partition (see ``PortraitPositions``).
* ``PortraitHandler`` calls ``respond`` for ``candidates`` records sent on the
  user-events topic, with the portrait exactly at the request's position in
  the user's ordered stream (read-your-writes, never stale).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import orjson

from enf_core.analysis import VideoAnalysis
from enf_core.events import CandidatesEvent
from enf_core.features import PORTRAIT_DIM, VIDEO_DIM, portrait_vector, video_vector
from enf_core.limits import InputLimits
from enf_core.policy import SuppressionPolicy, decide
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
from streams.policy_explanations import PolicyExplanations, PolicyJob
from streams.positions import EndOffsets, PartitionPositions, Staleness
from streams.store import RedisStore
from streams.stored import StoredValueError, finite_vector, parse_analysis, parse_portrait

__all__ = ["ScoringHandler", "ScoringRequest", "ScoringResult", "ScoringRuntime"]

log = logging.getLogger(__name__)
_NEUTRAL_PORTRAIT = portrait_vector(Portrait.new("_"))
_NEUTRAL_VIDEO = video_vector(VideoAnalysis.neutral("_"))


class ScoringRuntime(Protocol):
    version: str
    providers: list[str]

    def score(self, portraits: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class ScoringRequest:
    """One candidates request with the portrait it is scored against."""

    event: CandidatesEvent
    produced_ms: int  # when the request entered Kafka: the latency clock's start
    portrait_vec: np.ndarray | None  # None: no portrait yet (the blank one is used)
    portrait: Portrait | bytes | None  # the portrait, or its stored JSON (for explanations)
    stale: bool = False  # scored before every earlier event of the user was applied
    lag_events: int = 0  # events known to be missing from the portrait


@dataclass(frozen=True, slots=True)
class ScoringResult:
    requests: int
    candidates: int
    suppressions: int  # candidates suppressed (drop) or marked suppressed (demote)
    explanations: int
    dead_letters: int
    latencies_ms: tuple[float, ...]
    unknown_videos: int = 0  # candidate rows whose video had no analysis yet
    stale_requests: int = 0  # requests scored on a portrait known to lag
    flagged: int = 0  # candidates at or above the threshold (before the budget)
    video_requests: int = 0  # re-analysis requests sent for videos without an analysis

    def __add__(self, other: ScoringResult) -> ScoringResult:
        return ScoringResult(*(a + b for a, b in zip(_astuple(self), _astuple(other),
                                                     strict=True)))


def _astuple(r: ScoringResult) -> tuple[Any, ...]:
    return tuple(getattr(r, f) for f in ScoringResult.__slots__)


EMPTY_RESULT = ScoringResult(0, 0, 0, 0, 0, ())


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


EXPLAINERS = ("student", "template", "policy")


class ScoringHandler:
    def __init__(self, store: RedisStore, sink: Sink, runtime: ScoringRuntime, *,
                 suppressions_topic: str, explanations_topic: str, dead_letter_topic: str,
                 policy: SuppressionPolicy | None = None, explanations_per_request: int = 3,
                 video_cache_size: int = 200_000, video_cache_ttl_s: float = 30.0,
                 suppression_pages: bool = False,
                 dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES,
                 explainer: str = "student", positions: PartitionPositions | None = None,
                 end_offsets: EndOffsets | None = None, portrait_wait_s: float = 0.05,
                 limits: InputLimits | None = None,
                 policy_explanations: PolicyExplanations | None = None,
                 video_requests_topic: str = "",
                 video_request_interval_s: float = 300.0) -> None:
        if explainer not in EXPLAINERS:
            raise ValueError(f"explainer must be one of {', '.join(EXPLAINERS)}, "
                             f"not {explainer!r}")
        if (explainer == "policy") != (policy_explanations is not None):
            raise ValueError('explainer "policy" needs its side path (policy_explanations), '
                             "and only it")
        self.explainer = explainer
        # ENF_EXPLAINER=policy: every student explanation is also offered to the
        # policy's bounded side path, which never blocks this handler.
        self.policy_explanations = policy_explanations
        self.store = store
        self.sink = sink
        self.runtime = runtime
        self.suppressions_topic = suppressions_topic
        self.explanations_topic = explanations_topic
        self.dead_letter_topic = dead_letter_topic
        self.dead = DeadLetters(sink, dead_letter_topic, dead_letter_max_bytes)
        self.limits = limits or InputLimits()
        self.policy = policy or SuppressionPolicy()
        self.explanations_per_request = explanations_per_request
        self.suppression_pages = suppression_pages
        self._cache = _VideoCache(video_cache_size, video_cache_ttl_s)
        # Candidates-topic requests wait (bounded) for the portrait path to catch
        # up on their user-events partition (streams/positions.py).
        self.positions = positions
        self.end_offsets = end_offsets
        self.portrait_wait_s = portrait_wait_s
        # A candidate video with no usable analysis (never sent, or its analysis
        # lost: a Redis without persistence, an evicted or quarantined key) is asked
        # for on this topic (keyed by video id), at most once per interval per
        # worker: the catalogue answers by sending the video record again on the
        # videos topic, which is always analysed (no record is skipped as seen).
        self.video_requests_topic = video_requests_topic
        self.video_request_interval_s = video_request_interval_s
        self._requested: OrderedDict[str, float] = OrderedDict()

    def current_threshold(self) -> float:
        """The policy's threshold on the calibrated p: configured, else the model's
        operating point (it may change on reload), else its F1 threshold."""
        return self.policy.resolve_threshold(getattr(self.runtime, "manifest", None))

    @staticmethod
    def _stored_vector(key: str, raw: bytes | None, dim: int, bad: list[Quarantined]
                       ) -> np.ndarray | None:
        try:
            return finite_vector(raw, dim)
        except StoredValueError as exc:
            bad.append(Quarantined(key, raw, str(exc)))
            return None

    def _portrait(self, user_id: str, data: Portrait | bytes | None, bad: list[Quarantined]
                  ) -> Portrait:
        if isinstance(data, Portrait):
            return data
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
        """A batch from the candidates topic: latest portraits, one Redis round trip."""
        batch = decode_batch(messages, allowed=(CandidatesEvent,), limits=self.limits)
        pending: list[Any] = await self.dead.send(batch.dead)
        pairs = [(e, m) for e, m in zip(batch.events, batch.sources, strict=True)
                 if isinstance(e, CandidatesEvent)]
        if not pairs:
            for fut in pending:
                await fut
            return ScoringResult(0, 0, 0, 0, len(batch.dead), ())
        staleness = [Staleness(False, 0)] * len(pairs)
        if (self.positions is not None and self.end_offsets is not None
                and self.portrait_wait_s > 0):
            staleness = await self.positions.wait(
                [(m.partition, m.timestamp_ms) for _, m in pairs], self.end_offsets,
                self.portrait_wait_s)
        users = list(dict.fromkeys(e.user_id for e, _ in pairs))
        now = time.monotonic()
        video_ids = list(dict.fromkeys(v for e, _ in pairs for v in e.video_ids))
        missing = [v for v in video_ids if self._cache.get(v, now) is None]
        user_raw, video_raw = await self.store.read_for_scoring(users, missing)
        # Stored values that cannot be used are quarantined: such a video counts as
        # unknown (never suppressed), such a user as one without a portrait.
        bad: list[Quarantined] = []
        unknown = self._cache_videos(missing, video_raw, now, bad)
        portraits = {}
        for u, (vec_b, data) in zip(users, user_raw, strict=True):
            portraits[u] = (self._stored_vector(self.store.portrait_key(u), vec_b, PORTRAIT_DIM,
                                                bad), data)
        requests = []
        for (e, m), st in zip(pairs, staleness, strict=True):
            vec, data = portraits[e.user_id]
            requests.append(ScoringRequest(e, m.timestamp_ms or e.ts, vec, data, st.stale,
                                           st.lag_events))
        result = await self._respond(requests, unknown, now, pending, bad)
        return replace(result, dead_letters=len(batch.dead))

    async def respond(self, requests: Sequence[ScoringRequest]) -> ScoringResult:
        """Score requests whose portraits the caller already has (read-your-writes
        path); reads only the video vectors not cached (one round trip at most)."""
        if not requests:
            return EMPTY_RESULT
        now = time.monotonic()
        video_ids = list(dict.fromkeys(v for r in requests for v in r.event.video_ids))
        missing = [v for v in video_ids if self._cache.get(v, now) is None]
        unknown: set[str] = set()
        bad: list[Quarantined] = []
        if missing:
            _, video_raw = await self.store.read_for_scoring([], missing)
            unknown = self._cache_videos(missing, video_raw, now, bad)
        return await self._respond(requests, unknown, now, [], bad)

    def _cache_videos(self, missing: list[str], video_raw: Sequence[tuple[Any, Any]],
                      now: float, bad: list[Quarantined]) -> set[str]:
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
        return unknown

    def _student(self) -> Any:
        """The current model version's explanation student, unless the template is asked
        for (read per batch: it is hot-reloaded with the scorer)."""
        if self.explainer == "template":
            return None
        return getattr(self.runtime, "explainer", None)

    async def _respond(self, requests: Sequence[ScoringRequest], unknown: set[str], now: float,
                       pending: list[Awaitable[Any]], bad: list[Quarantined]) -> ScoringResult:
        from enf_core.reason import explain

        video_ids = list(dict.fromkeys(v for r in requests for v in r.event.video_ids))
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
        user_mat = np.empty((len(requests), PORTRAIT_DIM), np.float32)
        for i, r in enumerate(requests):
            user_mat[i] = _NEUTRAL_PORTRAIT if r.portrait_vec is None else r.portrait_vec
        sizes = np.fromiter((len(r.event.video_ids) for r in requests), np.int64,
                            count=len(requests))
        starts = np.r_[0, np.cumsum(sizes)]
        uidx = np.repeat(np.arange(len(requests)), sizes)
        vidx = np.fromiter((video_index[v] for r in requests for v in r.event.video_ids),
                           dtype=np.int64, count=int(starts[-1]))
        portraits, videos = user_mat[uidx], video_mat[vidx]
        p_neg, reason_probs = self.runtime.score(portraits, videos)
        # A row the model answered with NaN or Inf is never suppressed.
        finite = np.isfinite(p_neg) & np.isfinite(reason_probs).all(axis=1)
        d = decide(self.policy, p_neg, self.current_threshold(), portraits, videos, starts,
                   judged[vidx] & finite)
        top_reason = reason_probs.argmax(axis=1)

        ts = now_ms()
        version = self.runtime.version
        demote = self.policy.mode == "demote"
        n_expl = 0
        latencies: list[float] = []
        for ri, req in enumerate(requests):
            lo, hi = int(starts[ri]), int(starts[ri + 1])
            rows = [lo + j for j in np.flatnonzero(d.suppressed[lo:hi]).tolist()]
            if not rows and not demote:
                continue
            e = req.event
            key = e.user_id.encode()
            latencies.append(ts - req.produced_ms)
            common = {"request_id": e.request_id, "user_id": e.user_id, "model_version": version,
                      "ts": ts, "request_ts": e.ts, "source_ts": req.produced_ms,
                      "stale": req.stale, "portrait_lag_events": req.lag_events,
                      "unknown_videos": sum(1 for v in e.video_ids if v in unknown)
                      if unknown else 0}
            scores = e.ranker_scores
            rows.sort(key=lambda r: -float(p_neg[r]))
            page: list[dict[str, object]] = []
            portrait: Portrait | None = None
            for rank, row in enumerate(rows):
                vid = e.video_ids[row - lo]
                p = float(p_neg[row])
                reason = REASONS[int(top_reason[row])].value
                item: dict[str, object] = {"video_id": vid, "p_negative": round(p, 5),
                                           "reason": reason}
                if scores is not None:
                    item["ranker_score"] = scores[row - lo]
                record = {"v": 1, "type": "suppression", "record_id": f"{e.request_id}:{vid}",
                          **common, **item}
                if self.suppression_pages:
                    page.append(item)
                elif not demote:
                    pending.append(await self.sink.send(self.suppressions_topic, key,
                                                        orjson.dumps(record)))
                if rank >= self.explanations_per_request:
                    continue
                if portrait is None:
                    portrait = self._portrait(e.user_id, req.portrait, bad)
                analysis = self._analysis(vid, video_data[int(vidx[row])], bad)
                probs = [float(x) for x in reason_probs[row]]
                student = self._student()
                exp = (student.explain(portrait, analysis, p, probs) if student is not None
                       else explain(portrait, analysis, p, probs))
                record = {**record, "type": "explanation", "record_id": f"{e.request_id}:{vid}:x",
                          "explainer": "template" if student is None else "student",
                          "reason": exp.reason,
                          "reason_probs": {r.value: round(x, 5)
                                           for r, x in zip(REASONS, probs, strict=True)},
                          "text": exp.text, "evidence": exp.evidence}
                pending.append(await self.sink.send(self.explanations_topic, key,
                                                    orjson.dumps(record)))
                n_expl += 1
                if self.policy_explanations is not None:
                    self.policy_explanations.offer(PolicyJob(record, key, portrait, analysis))
            if demote:
                items = []
                for row in range(lo, hi):
                    entry: dict[str, object] = {
                        "video_id": e.video_ids[row - lo],
                        "penalty": round(float(d.penalty[row]), 5),
                        "p_negative": round(float(p_neg[row]), 5),
                        "reason": REASONS[int(top_reason[row])].value,
                        "suppressed": bool(d.suppressed[row]),
                        "unknown_video": e.video_ids[row - lo] in unknown}
                    if scores is not None:
                        entry["ranker_score"] = scores[row - lo]
                    items.append(entry)
                record = {"v": 1, "type": "rerank_page", "record_id": e.request_id, **common,
                          "items": items}
                pending.append(await self.sink.send(self.suppressions_topic, key,
                                                    orjson.dumps(record)))
            elif page:
                # One message per request: the per-record produce cost, not the
                # model, bounds the scorer when many candidates are suppressed.
                record = {"v": 1, "type": "suppression_page", "record_id": e.request_id,
                          **common, "items": page}
                pending.append(await self.sink.send(self.suppressions_topic, key,
                                                    orjson.dumps(record)))
        pending += await self.dead.quarantine(bad)
        n_asked = await self._request_videos(requests, unknown, now, ts, pending)
        for fut in pending:
            await fut
        return ScoringResult(len(requests), len(uidx), int(d.suppressed.sum()), n_expl, 0,
                             tuple(latencies), int(np.count_nonzero(~judged[vidx])),
                             sum(1 for r in requests if r.stale), int(d.flagged.sum()),
                             n_asked)

    async def _request_videos(self, requests: Sequence[ScoringRequest], unknown: set[str],
                              now: float, ts: int, pending: list[Awaitable[Any]]) -> int:
        """One ``video_request`` per unknown video not asked for within the interval."""
        if not unknown or not self.video_requests_topic:
            return 0
        n = 0
        for req in requests:
            for vid in req.event.video_ids:
                if vid not in unknown:
                    continue
                last = self._requested.get(vid)
                if last is not None and now - last < self.video_request_interval_s:
                    continue
                self._requested[vid] = now
                self._requested.move_to_end(vid)
                record = {"v": 1, "type": "video_request",
                          "record_id": f"{req.event.request_id}:{vid}:a", "video_id": vid,
                          "reason": "no_analysis", "request_id": req.event.request_id,
                          "ts": ts}
                pending.append(await self.sink.send(self.video_requests_topic, vid.encode(),
                                                    orjson.dumps(record)))
                n += 1
        while len(self._requested) > self._cache.size:
            self._requested.popitem(last=False)
        return n

