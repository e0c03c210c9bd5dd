"""The scorer with the suppression policy, against a real Redis and the real model:
budget, cold portraits, drop and demote records, ranker scores passed through."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.policy import SuppressionPolicy
from models.runtime import ScorerRuntime
from streams.handlers.base import Message
from streams.handlers.portraits import PortraitHandler
from streams.handlers.scoring import ScoringHandler
from streams.store import RedisStore, StoreConfig
from tests.integration.workers import event

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future

VIDEOS = [f"v{i}" for i in range(8)]


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None
                   ) -> Any:
        self.sent.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def records(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v in self.sent if t == topic]


async def _setup(redis_url: str) -> RedisStore:
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
    await store.put_videos([VideoAnalysis.neutral(v) for v in VIDEOS], ts=1)
    watches = [Message(event("watch", event_id=f"w{i}", user_id="warm", video_id=VIDEOS[i % 8],
                             play_ms=900, duration_ms=1000, ts=T0 + i), b"warm")
               for i in range(6)]
    await PortraitHandler(store, ListSink(), dead_letter_topic="dlq").handle(watches)
    return store


def _requests() -> list[Message]:
    scores = [float(10 - i) for i in range(8)]
    return [Message(event("candidates", event_id=f"c-{u}", request_id=f"r-{u}", user_id=u,
                          video_ids=[*VIDEOS, "v0"], ranker_scores=[*scores, 0.5], ts=T0 + 100),
                    key=u.encode(), timestamp_ms=123)
            for u in ("warm", "cold")]


def _handler(store: RedisStore, sink: ListSink, **policy: Any) -> ScoringHandler:
    return ScoringHandler(store, sink, ScorerRuntime(prefer_gpu=False), suppressions_topic="sup",
                          explanations_topic="exp", dead_letter_topic="dlq",
                          policy=SuppressionPolicy(threshold=0.0, **policy),
                          explanations_per_request=1)


async def test_drop_keeps_the_budget_and_spares_cold_portraits(redis_url: str) -> None:
    store, sink = await _setup(redis_url), ListSink()
    result = await _handler(store, sink).handle(_requests())
    # 8 distinct candidates (the repeated v0 collapses): budget min(3, floor(0.25 * 8)) = 2;
    # the cold user (no watches) loses nothing at threshold 0.
    assert result.requests == 2 and result.candidates == 16
    assert result.flagged == 8 and result.suppressions == 2
    sup = sink.records("sup")
    assert len(sup) == 2 and {s["user_id"] for s in sup} == {"warm"}
    for s in sup:
        assert s["record_id"] == f"r-warm:{s['video_id']}"
        assert s["stale"] is False and s["portrait_lag_events"] == 0
        assert s["ranker_score"] == 10.0 - VIDEOS.index(s["video_id"])
        assert 0.0 <= s["p_negative"] <= 1.0
    exp = sink.records("exp")
    assert len(exp) == 1 and exp[0]["record_id"].endswith(":x")
    assert exp[0]["explainer"] == "student" and exp[0]["text"]
    await store.close()


async def test_demote_answers_every_request_with_one_page(redis_url: str) -> None:
    store, sink = await _setup(redis_url), ListSink()
    result = await _handler(store, sink, mode="demote", demote_weight=2.0).handle(_requests())
    pages = sink.records("sup")
    assert [p["type"] for p in pages] == ["rerank_page", "rerank_page"]
    by_user = {p["user_id"]: p for p in pages}
    warm, cold = by_user["warm"], by_user["cold"]
    assert [i["video_id"] for i in warm["items"]] == VIDEOS  # the request's order
    assert warm["record_id"] == "r-warm" and warm["stale"] is False
    assert sum(i["suppressed"] for i in warm["items"]) == 2 == result.suppressions
    for i in warm["items"]:
        assert i["penalty"] == pytest.approx(2.0 * i["p_negative"], abs=1e-4)
        assert i["ranker_score"] == 10.0 - VIDEOS.index(i["video_id"])
    assert all(i["penalty"] == 0 and not i["suppressed"] for i in cold["items"])
    await store.close()


def _feed(n_users: int = 4, seed: int = 3) -> list[Message]:
    """Interleaved watches, dislikes and candidates of a few users, keyed by user,
    with Kafka positions: what the user-events topic carries (candidates included)."""
    import random

    rng = random.Random(seed)
    out: list[Message] = []
    for i in range(120):
        u = f"u{rng.randrange(n_users)}"
        kind = rng.random()
        if kind < 0.2:
            value = event("candidates", event_id=f"c{i}", request_id=f"r{i}", user_id=u,
                          video_ids=rng.sample(VIDEOS, 8), ts=T0 + i)
        elif kind < 0.25:
            value = event("feedback", event_id=f"f{i}", user_id=u, video_id=rng.choice(VIDEOS),
                          kind="dislike", reason_category="boring", ts=T0 + i)
        else:
            value = event("watch", event_id=f"w{i}", user_id=u, video_id=rng.choice(VIDEOS),
                          play_ms=rng.choice([100, 900]), duration_ms=1000, ts=T0 + i)
        out.append(Message(value, u.encode(), "ue", 0, i, 1000 + i))
    return out


async def test_candidates_on_user_events_are_scored_at_their_position(redis_url: str) -> None:
    """Each request is scored on the portrait after exactly the user's earlier
    events, whether the feed comes as one batch or one message at a time."""
    import numpy as np

    from enf_core.events import CandidatesEvent, decode_events
    from enf_core.portrait import Portrait, apply_event

    feed = _feed()
    pages: dict[str, dict[str, dict[str, Any]]] = {}
    for batch_size in (len(feed), 1, 7):
        store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
        analyses = [VideoAnalysis.neutral(v) for v in VIDEOS]
        await store.put_videos(analyses, ts=1)
        sink = ListSink()
        scorer = ScoringHandler(store, sink, ScorerRuntime(prefer_gpu=False),
                                suppressions_topic="sup", explanations_topic="exp",
                                dead_letter_topic="dlq",
                                policy=SuppressionPolicy(mode="demote", threshold=0.0))
        handler = PortraitHandler(store, sink, dead_letter_topic="dlq", scorer=scorer)
        for i in range(0, len(feed), batch_size):
            await handler.handle(feed[i:i + batch_size])
        got = {p["request_id"]: p for p in sink.records("sup")}
        assert all(p["stale"] is False and p["portrait_lag_events"] == 0 for p in got.values())
        pages[str(batch_size)] = got
        await store.close()
    one, single, sevens = pages.values()
    assert one.keys() == single.keys() == sevens.keys() and len(one) > 10
    for rid in one:
        assert one[rid]["items"] == single[rid]["items"] == sevens[rid]["items"]

    # The reference: replay the feed through apply_event, score each request on
    # the portrait as it stood then.
    runtime = ScorerRuntime(prefer_gpu=False)
    analyses = {v: VideoAnalysis.neutral(v) for v in VIDEOS}
    portraits: dict[str, Portrait] = {}
    from enf_core.features import video_vector

    for m in feed:
        (e,) = decode_events(m.value)
        p = portraits.setdefault(e.user_id, Portrait.new(e.user_id))
        if isinstance(e, CandidatesEvent):
            vids = np.stack([video_vector(analyses[v]) for v in e.video_ids])
            ref, _ = runtime.score_user(p.vector(), vids)
            items = one[e.request_id]["items"]
            assert [i["video_id"] for i in items] == list(e.video_ids)
            assert np.allclose([i["p_negative"] for i in items], ref, atol=2e-5)
        else:
            apply_event(p, e, analyses.get(getattr(e, "video_id", "")))


async def test_candidates_topic_waits_for_the_partition_then_says_stale(redis_url: str
                                                                        ) -> None:
    """The separate candidates topic: a bounded wait on the partition's position in
    Redis; caught up in time -> fresh, else scored anyway with stale and the lag."""
    from streams.positions import PartitionPositions

    store = await _setup(redis_url)
    positions = PartitionPositions(store, "ue")
    sink = ListSink()
    ends = {0: 10}

    async def end_offsets(parts: Any) -> dict[int, int]:
        return {p: ends[p] for p in parts}

    scorer = ScoringHandler(store, sink, ScorerRuntime(prefer_gpu=False),
                            suppressions_topic="sup", explanations_topic="exp",
                            dead_letter_topic="dlq",
                            policy=SuppressionPolicy(mode="demote", threshold=0.0),
                            positions=positions, end_offsets=end_offsets,
                            portrait_wait_s=0.05)
    portraits = PortraitHandler(store, ListSink(), dead_letter_topic="dlq", positions=positions)

    def watches(lo: int, hi: int) -> list[Message]:
        return [Message(event("watch", event_id=f"x{i}", user_id="warm", video_id="v1",
                              play_ms=900, duration_ms=1000, ts=T0 + 50 + i), b"warm", "ue", 0, i,
                        1000 + i) for i in range(lo, hi)]

    def request(i: int, ts: int) -> Message:
        return Message(event("candidates", event_id=f"c{i}", request_id=f"q{i}",
                             user_id="warm", video_ids=VIDEOS, ts=T0 + ts), b"warm", "cand", 0, i,
                       ts)

    await portraits.handle(watches(0, 6))  # handled up to offset 6 of 10, last ts 1005
    r = await scorer.handle([request(0, 2000)])  # produced after offsets 6..9: not there
    assert r.stale_requests == 1
    page = sink.records("sup")[-1]
    assert page["stale"] is True and page["portrait_lag_events"] == 4
    r = await scorer.handle([request(1, 1003)])  # produced before message 4: caught up
    assert r.stale_requests == 0 and sink.records("sup")[-1]["stale"] is False

    async def later() -> None:  # the rest arrives while the scorer waits
        await asyncio.sleep(0.01)
        await portraits.handle(watches(6, 10))

    ends[0] = 10
    task = asyncio.create_task(later())
    scorer.portrait_wait_s = 5.0
    r = await scorer.handle([request(2, 3000)])
    await task
    last = sink.records("sup")[-1]
    assert r.stale_requests == 0 and last["stale"] is False and last["portrait_lag_events"] == 0
    await store.close()
