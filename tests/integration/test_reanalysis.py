"""Videos whose analysis was lost (issue 10) against a real Redis: a candidate
whose video has no analysis is counted, marked in the output records, and asked
for on the video-requests topic (at most once per interval); the catalogue's
answer, the video record sent again on the videos topic, is analysed again
although the video was seen before, and the next request judges it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest

from enf_core.policy import SuppressionPolicy
from streams.handlers.base import Message
from streams.handlers.scoring import ScoringHandler
from streams.handlers.videos import NeutralAnalyzer, VideoHandler
from streams.store import RedisStore, StoreConfig
from tests.integration.test_quarantine import ListSink, _NanRows
from tests.integration.workers import event

pytestmark = pytest.mark.integration
NOW = int(time.time() * 1000)


def _video(vid: str) -> Message:
    return Message(event("video", event_id=f"e-{vid}", video_id=vid, title="Spider close-up",
                         duration_ms=1000, ts=NOW), vid.encode())


def _request(rid: str, videos: list[str]) -> Message:
    return Message(event("candidates", event_id=rid, request_id=rid, user_id="u",
                         video_ids=videos, ts=NOW), b"u")


@pytest.mark.parametrize("mode", ["drop", "demote"])
async def test_a_lost_analysis_is_counted_marked_requested_and_redone(
        redis_url: str, mode: str) -> None:
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
    sink = ListSink()
    videos = VideoHandler(store, sink, NeutralAnalyzer(), dead_letter_topic="dlq")
    scorer = ScoringHandler(store, sink, _NanRows(set()), suppressions_topic="sup",
                            explanations_topic="exp", dead_letter_topic="dlq",
                            policy=SuppressionPolicy.unlimited(0.0, mode=mode),
                            video_cache_ttl_s=0.0, video_requests_topic="vreq")
    try:
        assert (await videos.handle([_video("v0"), _video("v1")])).analyzed == 2
        await store.redis.delete(store.video_key("v0"))  # lost (evicted, Redis restarted)

        def out() -> list[dict[str, Any]]:
            return [orjson.loads(v) for _, v, _ in sink.on("sup")]  # type: ignore[arg-type]

        first = await scorer.handle([_request("r1", ["v0", "v1", "vnew"])])
        again = await scorer.handle([_request("r2", ["v0"])])
        assert (first.unknown_videos, first.video_requests) == (2, 2)
        assert (again.unknown_videos, again.video_requests) == (1, 0)  # asked once per interval
        asked = [orjson.loads(v) for _, v, _ in sink.on("vreq")]  # type: ignore[arg-type]
        assert [(a["video_id"], a["reason"], a["record_id"]) for a in asked] == [
            ("v0", "no_analysis", "r1:v0:a"), ("vnew", "no_analysis", "r1:vnew:a")]
        assert [k for k, _, _ in sink.on("vreq")] == [b"v0", b"vnew"]
        r1 = [o for o in out() if o["request_id"] == "r1"]
        assert r1 and all(o["unknown_videos"] == 2 for o in r1)
        if mode == "demote":
            (page,) = r1
            assert {i["video_id"]: i["unknown_video"] for i in page["items"]} == {
                "v0": True, "v1": False, "vnew": True}
            assert not any(i["suppressed"] for i in page["items"] if i["unknown_video"])
        else:
            assert {o["video_id"] for o in r1} == {"v1"}  # unknown videos are never suppressed

        # The catalogue answers: the record again on the videos topic, analysed again.
        assert (await videos.handle([_video("v0")])).analyzed == 1
        assert (await store.get_video("v0"))[b"status"] == b"ok"
        third = await scorer.handle([_request("r3", ["v0", "v1"])])
        assert (third.unknown_videos, third.video_requests) == (0, 0)
        r3 = [o for o in out() if o["request_id"] == "r3"]
        assert r3 and all(o["unknown_videos"] == 0 for o in r3)
        if mode == "drop":
            assert {o["video_id"] for o in r3} == {"v0", "v1"}
    finally:
        videos.close()
        await store.close()
        await asyncio.sleep(0)
