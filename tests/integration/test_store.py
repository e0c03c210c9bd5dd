"""The Redis store against a real Redis: atomic CAS writes, redelivery, overlap."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.events import WatchEvent
from enf_core.policy import SuppressionPolicy
from enf_core.portrait import Portrait, apply_event
from streams.handlers.base import Message
from streams.handlers.portraits import PortraitHandler
from streams.store import PortraitWrite, RedisStore, StoreConfig, with_retry
from tests.integration.workers import event

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: Any = None) -> Any:
        self.sent.append((topic, key, value, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _store(redis_url: str) -> RedisStore:
    return RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))


async def test_cas_refuses_a_stale_version(redis_url: str) -> None:
    store = _store(redis_url)
    p = Portrait.new("u1")
    apply_event(p, WatchEvent("e1", "u1", "v", 100, 1000, 1))
    assert await store.write_portraits([PortraitWrite(p, 0, ("e1",), {"events": 1})], 0) == []
    stale = Portrait.new("u1")
    apply_event(stale, WatchEvent("e2", "u1", "v", 900, 1000, 2))
    assert await store.write_portraits([PortraitWrite(stale, 0, ("e2",), {"events": 1})],
                                       0) == ["u1"]
    state = (await store.read_for_update({"u1": ["e1", "e2"]}))["u1"]
    assert state[0] == 1 and state[2] == {"e1"}
    assert state[1] is not None and state[1].to_dict() == p.to_dict()
    assert (await store.read_window(0)) == {"events": 1}
    await store.close()


async def test_overlapping_owners_apply_each_event_once(redis_url: str) -> None:
    """Two handlers get the same batch at once (a rebalance overlap): the
    portrait equals one delivery and the counters count each event once."""
    store_a, sink = _store(redis_url), ListSink()
    store_b = RedisStore(redis_url, store_a.config)
    raws = [event("watch", event_id=f"e{i}", user_id=f"u{i % 3}", video_id="v",
                  play_ms=100 * i, duration_ms=5000, ts=T0 + i) for i in range(60)]
    msgs = [Message(r, f"u{i % 3}".encode(), "t", 0, i) for i, r in enumerate(raws)]
    a = PortraitHandler(store_a, sink, dead_letter_topic="dlq", window_s=3600)
    b = PortraitHandler(store_b, sink, dead_letter_topic="dlq", window_s=3600)
    ra, rb = await asyncio.gather(a.handle(msgs), b.handle(msgs))
    assert ra.applied + rb.applied == 60
    assert ra.duplicates + rb.duplicates == 60
    ref: dict[str, Portrait] = {}
    for i in range(60):
        uid = f"u{i % 3}"
        apply_event(ref.setdefault(uid, Portrait.new(uid)),
                    WatchEvent(f"e{i}", uid, "v", 100 * i, 5000, T0 + i), None)
    for uid, p in ref.items():
        stored = await store_a.get_portrait(uid)
        assert stored is not None and stored.to_dict() == p.to_dict()
    totals = await store_a.totals()
    assert totals["events"] == 60 and totals["watches"] == 60
    await store_a.close()
    await store_b.close()


async def test_portraits_round_trip_with_video_analyses(redis_url: str) -> None:
    store = _store(redis_url)
    a = VideoAnalysis.neutral("v1", duration_ms=5000, title="t")
    await store.put_videos([a], ts=1)
    assert (await store.get_analyses(["v1", "nope"])) == {"v1": a}
    await store.close()


async def test_a_window_is_claimed_once(redis_url: str) -> None:
    store = _store(redis_url)
    assert await store.claim_window(123) is True
    assert await store.claim_window(123) is False
    await store.close()


async def test_retry_waits_out_a_failing_dependency() -> None:
    calls = {"n": 0}

    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("redis is restarting")
        return "ok"

    assert await with_retry(flaky, what="test", max_backoff_s=0.01) == "ok"
    assert calls["n"] == 3
    with pytest.raises(ConnectionError):
        await with_retry(lambda: (_ for _ in ()).throw(ConnectionError("down")),  # type: ignore[arg-type,return-value]
                         what="t", deadline_s=0.05, max_backoff_s=0.01)


@pytest.mark.parametrize("pages", [False, True])
async def test_scorer_emits_records_or_one_page_per_request(redis_url: str, pages: bool) -> None:
    import orjson

    from models.runtime import ScorerRuntime
    from streams.handlers.scoring import ScoringHandler

    store, sink = _store(redis_url), ListSink()
    await store.put_videos([VideoAnalysis.neutral(f"v{i}") for i in range(4)], ts=1)
    handler = ScoringHandler(store, sink, ScorerRuntime(prefer_gpu=False),
                             suppressions_topic="sup", explanations_topic="exp",
                             dead_letter_topic="dlq", explanations_per_request=1,
                             policy=SuppressionPolicy.unlimited(0.0),
                             suppression_pages=pages)
    msgs = [Message(event("candidates", event_id=f"c{r}", request_id=f"r{r}", user_id="u",
                          video_ids=["v0", "v1", "v2", "v3", "unknown"],
                          ts=1_700_000_000_000), b"u")
            for r in range(2)]
    result = await handler.handle(msgs)
    assert result.suppressions == 8 and result.unknown_videos == 2  # never the unknown one
    sup = [orjson.loads(v) for t, _, v, _ in sink.sent if t == "sup"]
    exp = [orjson.loads(v) for t, _, v, _ in sink.sent if t == "exp"]
    if pages:
        assert [len(s["items"]) for s in sup] == [4, 4]
        assert {i["video_id"] for i in sup[0]["items"]} == {"v0", "v1", "v2", "v3"}
    else:
        assert len(sup) == 8 and all(s["video_id"] != "unknown" for s in sup)
    assert len(exp) == 2 and all(e["text"] for e in exp)
    await store.close()


async def test_scripts_survive_a_flushed_script_cache(redis_url: str) -> None:
    """A restarted Redis forgets loaded scripts; the store's calls load them again."""
    store = _store(redis_url)
    p = Portrait.new("u1")
    apply_event(p, WatchEvent("e1", "u1", "v", 100, 1000, 1))
    await store.redis.script_flush()
    assert await store.write_portraits([PortraitWrite(p, 0, ("e1",), {"events": 1})], 0) == []
    await store.redis.script_flush()
    assert (await store.read_for_update({"u1": ["e1"]}))["u1"][2] == {"e1"}
    await store.close()


@pytest.mark.parametrize("pages", [False, True])
async def test_redelivered_candidates_repeat_their_record_ids(redis_url: str,
                                                             pages: bool) -> None:
    """Outputs are at-least-once: a redelivered batch emits its records again,
    with the same deterministic ``record_id`` so consumers de-duplicate on it."""
    import orjson

    from models.runtime import ScorerRuntime
    from streams.handlers.scoring import ScoringHandler

    store = _store(redis_url)
    await store.put_videos([VideoAnalysis.neutral(f"v{i}") for i in range(3)], ts=1)
    msgs = [Message(event("candidates", event_id=f"c{r}", request_id=f"r{r}", user_id=f"u{r}",
                          video_ids=["v0", "v1", "v2"], ts=T0), f"u{r}".encode(), "cand", 0, r)
            for r in range(2)]
    deliveries = []
    for _ in range(2):  # the same batch twice: a crash before the commit
        sink = ListSink()
        handler = ScoringHandler(store, sink, ScorerRuntime(prefer_gpu=False),
                                 suppressions_topic="sup", explanations_topic="exp",
                                 dead_letter_topic="dlq",
                                 policy=SuppressionPolicy.unlimited(0.0),
                                 explanations_per_request=2, suppression_pages=pages)
        await handler.handle(msgs)
        deliveries.append([(t, orjson.loads(v)["record_id"]) for t, _, v, _ in sink.sent])
    first, second = deliveries
    assert first and sorted(first) == sorted(second)
    ids = [rid for _, rid in first]
    assert len(ids) == len(set(ids))  # unique within one delivery
    if pages:
        assert sorted(rid for t, rid in first if t == "sup") == ["r0", "r1"]
    else:
        assert {rid for t, rid in first if t == "sup"} == {
            f"r{r}:v{i}" for r in range(2) for i in range(3)}
    exp = [rid for t, rid in first if t == "exp"]
    assert len(exp) == 4 and set(exp) <= {f"r{r}:v{i}:x" for r in range(2) for i in range(3)}
    await store.close()


async def _evalsha_calls(store: RedisStore) -> int:
    stats = await store.redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_huge_batch_is_split_into_small_lua_calls(redis_url: str) -> None:
    """1,050 users with a limit of 100 per call: 11 reads and 11 writes instead
    of one call each that blocks Redis; the result equals the reference."""
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}",
                                              max_users_per_call=100))
    raws = [event("watch", event_id=f"e{i}", user_id=f"u{i % 1050}", video_id="v",
                  play_ms=37 * i % 5000, duration_ms=5000, ts=T0 + i) for i in range(2100)]
    msgs = [Message(r, f"u{i % 1050}".encode(), "t", 0, i) for i, r in enumerate(raws)]
    handler = PortraitHandler(store, ListSink(), dead_letter_topic="dlq", window_s=3600)
    before = await _evalsha_calls(store)
    res = await handler.handle(msgs)
    assert res.applied == 2100 and res.users == 1050
    assert await _evalsha_calls(store) - before == 2 * 11
    for uid in ("u0", "u523", "u1049"):
        ref = Portrait.new(uid)
        for i in range(2100):
            if f"u{i % 1050}" == uid:
                apply_event(ref, WatchEvent(f"e{i}", uid, "v", 37 * i % 5000, 5000, T0 + i), None)
        stored = await store.get_portrait(uid)
        assert stored is not None and stored.to_dict() == ref.to_dict()
    assert (await store.totals())["events"] == 2100
    await store.close()


async def test_few_huge_pages_are_split_by_event_ids(redis_url: str) -> None:
    """Four pages of 6,000 impressions (four users): calls stay within the id
    budget, and only the newest ids are recorded (the watermark does the rest)."""
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}",
                                              max_ids_per_call=10_000))
    import orjson

    def page(u: int) -> bytes:  # a page of three impression pages of 2,000 items
        return orjson.dumps([orjson.loads(event(
            "impression", event_id=f"p{u}-{k}", user_id=f"u{u}", request_id="r", ts=T0,
            items=[{"video_id": f"v{i % 300}", "position": i} for i in range(2000)]))
            for k in range(3)])

    msgs = [Message(page(u), f"u{u}".encode(), "t", 0, u) for u in range(4)]
    handler = PortraitHandler(store, ListSink(), dead_letter_topic="dlq", window_s=3600)
    before = await _evalsha_calls(store)
    assert (await handler.handle(msgs)).applied == 24_000
    # 6,000 ids per user, 10,000 per call: one user per slice, a read and a write each.
    assert await _evalsha_calls(store) - before == 4 * 2
    assert await store.redis.zcard(store.applied_key("u0")) == 2000
    again = await PortraitHandler(store, ListSink(), dead_letter_topic="dlq",
                                  window_s=3600).handle(msgs)
    assert again.applied == 0 and again.duplicates == 24_000
    await store.close()


async def test_a_call_that_times_out_is_retried_smaller(caplog: pytest.LogCaptureFixture) -> None:
    """A reply timeout far below what one 20,000-user call takes (about a
    second on an idle machine): the worker halves the call until it fits and
    then sends one call per round trip, instead of retrying the whole call
    forever; nothing is applied twice (a call that landed late shows up as a
    conflict). Its own Redis without a password: with one, every reconnect's
    AUTH waits behind the still-running call and short timeouts pile up."""
    from streams.services import RedisConfig, start_redis

    n = 20_000
    service = start_redis(RedisConfig(password=""))
    store = RedisStore(service.url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}",
                                              max_users_per_call=n, socket_timeout_s=0.25,
                                              retry_max_s=0.05))
    raws = [event("watch", event_id=f"e{i}", user_id=f"u{i}", video_id="v",
                  play_ms=i % 5000, duration_ms=5000, ts=T0 + i) for i in range(n)]
    msgs = [Message(r, f"u{i}".encode(), "t", 0, i) for i, r in enumerate(raws)]
    handler = PortraitHandler(store, ListSink(), dead_letter_topic="dlq", window_s=3600)
    with caplog.at_level("WARNING", logger="streams.store"):
        res = await asyncio.wait_for(handler.handle(msgs), timeout=300)
    # A write that landed after its timeout reads back as already applied.
    assert res.applied + res.duplicates == n
    assert "retrying with up to" in caplog.text
    assert (await store.totals())["events"] == n
    ref = Portrait.new("u3999")
    apply_event(ref, WatchEvent("e3999", "u3999", "v", 3999, 5000, T0 + 3999), None)
    stored = await store.get_portrait("u3999")
    assert stored is not None and stored.to_dict() == ref.to_dict()
    await store.close()
    service.stop()


async def test_latent_taste_and_bounded_history_ride_the_cas_write(redis_url: str) -> None:
    """Issue 9: the portrait's latent and recent history are written by the same CAS
    call, bounded, and the scorer's one pipelined read gets them in ``vec``."""
    import numpy as np

    from enf_core.features import PORTRAIT_DIM, PORTRAIT_SLICES, VIDEO_DIM, VIDEO_SLICES
    from enf_core.latent import USER_LATENT_DIM
    from enf_core.portrait import PortraitConfig

    store, sink = _store(redis_url), ListSink()
    lat = tuple(0.1 * ((-1) ** k) for k in range(USER_LATENT_DIM))
    videos = [VideoAnalysis.neutral(f"v{k}", duration_ms=5000) for k in range(3)]
    videos = [VideoAnalysis.from_dict({**a.to_dict(), "latent": list(lat),
                                       "latent_source": "learned"}) for a in videos]
    await store.put_videos(videos, ts=T0)
    raws = [event("watch", event_id=f"e{i}", user_id="u", video_id=f"v{i % 3}",
                  play_ms=(500 if i % 2 else 4900), duration_ms=5000, ts=T0 + i) for i in range(50)]
    handler = PortraitHandler(store, sink, dead_letter_topic="dlq", window_s=3600)
    for s in range(0, 50, 7):  # several batches: the result must not depend on the split
        await handler.handle([Message(r, b"u", "t", 0, s + j)
                              for j, r in enumerate(raws[s:s + 7])])
    ref = Portrait.new("u")
    by_id = {a.video_id: a for a in videos}
    for i in range(50):
        apply_event(ref, WatchEvent(f"e{i}", "u", f"v{i % 3}", 500 if i % 2 else 4900, 5000,
                                    T0 + i), by_id[f"v{i % 3}"])
    stored = await store.get_portrait("u")
    assert stored is not None and stored.to_dict() == ref.to_dict()
    assert stored.n_latent == 50 and len(stored.history) == PortraitConfig().history_len
    (user_raw, video_raw) = await store.read_for_scoring(["u"], ["v0"])
    vec = np.frombuffer(user_raw[0][0], np.float32)
    assert vec.shape == (PORTRAIT_DIM,) and np.array_equal(vec, ref.vector())
    assert np.abs(vec[PORTRAIT_SLICES["latent"]]).sum() > 0
    vvec = np.frombuffer(video_raw[0][0], np.float32)
    assert vvec.shape == (VIDEO_DIM,) and vvec[VIDEO_SLICES["latent_known"]][0] == 1.0
    await store.close()


async def test_the_video_handler_stores_learned_or_content_latents(redis_url: str) -> None:
    import numpy as np

    from enf_core.latent import USER_LATENT_DIM
    from models.latent import CONTENT_DIM, LatentModel
    from streams.handlers.videos import NeutralAnalyzer, VideoHandler

    table = np.full((1, USER_LATENT_DIM), 0.25, np.float32)
    head = np.zeros((CONTENT_DIM + 1, USER_LATENT_DIM))
    head[-1] = -0.5
    model = LatentModel(["known"], table, head)
    store, sink = _store(redis_url), ListSink()
    handler = VideoHandler(store, sink, NeutralAnalyzer(), dead_letter_topic="dlq",
                           latents=lambda: model)
    ids = ("known", "new")
    raws = [event("video", event_id=f"e{v}", video_id=v, title="t", duration_ms=1000, ts=T0)
            for v in ids]
    await handler.handle([Message(r, v.encode(), "t", 0, i)
                          for i, (v, r) in enumerate(zip(ids, raws, strict=True))])
    got = await store.get_analyses(["known", "new"])
    assert got["known"].latent_source == "learned"
    assert got["known"].latent == pytest.approx((0.25,) * USER_LATENT_DIM)
    assert got["new"].latent_source == "content"
    assert got["new"].latent == pytest.approx((-0.5,) * USER_LATENT_DIM)
    handler.close()
    await store.close()
