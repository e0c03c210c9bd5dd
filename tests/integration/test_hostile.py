"""A hostile producer against a real worker on Apache Kafka and Tansu: no single
message or stored value stops a partition (issue 10). One worker per broker runs
every case, so the whole file takes seconds per broker."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.config import TopicNames
from tests.integration.workers import WorkerProcess, consume, event, produce, wait_until

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CLIP = SHARED / "data" / "videos" / "moviepy_fire2.mp4"


def _watch(uid: str, eid: str, **kw: Any) -> bytes:
    return event("watch", **{"event_id": eid, "user_id": uid, "video_id": "v0", "play_ms": 100,
                             "duration_ms": 1000, "ts": NOW, **kw})


def _applied(r: redis.Redis, prefix: str, uid: str) -> int:
    raw = r.hget(f"{prefix}:p:{{{uid}}}", "data")
    try:
        return int(orjson.loads(raw)["n_events"]) if raw else 0
    except orjson.JSONDecodeError:
        return 0


def test_no_message_or_stored_value_stops_the_worker(broker: Any, redis_url: str,
                                                     topic_prefix: str, tmp_path: Path) -> None:
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(redis_url)
    # A portrait half-written by another tool, before the worker ever reads it.
    r.hset(f"{topic_prefix}:p:{{ucorrupt}}", mapping={"v": 2, "data": b'{"user_id": "uc'})
    # A CAS version that is not an integer: the CAS used to conflict forever (exit 70).
    r.hset(f"{topic_prefix}:p:{{uversion}}", mapping={"v": b"2.5"})
    media = tmp_path / "media"
    media.mkdir()
    if CLIP.is_file():
        shutil.copy(CLIP, media / "clip.mp4")
    (media / "escape").symlink_to("/etc/passwd")
    silent = socket.socket()  # a server that would never answer: nobody may connect
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                           broker_kind=broker.kind, prefix=topic_prefix,
                           env={"ENF_SUPPRESS_THRESHOLD": "0", "ENF_MEDIA_ROOT": str(media)},
                           log_path=tmp_path / "worker.log")
    try:
        huge = b"[" + b" " * 999_000  # invalid JSON just under 1 MB
        bad_video = event("video", event_id="bv", video_id="vhuge", title="t",
                          duration_ms=1000, ts=NOW, frame_features=[[1e39] * 4] * 16)
        hostile = ["file:///etc/passwd", "/proc/self/environ", "/dev/zero",
                   "../../../../etc/hostname", f"{media}/../../../../etc/hostname",
                   f"{media}/escape", "frames:///etc/passwd#0",
                   f"http://127.0.0.1:{silent.getsockname()[1]}/v.mp4", "ftp://127.0.0.1/v"]
        videos = [("v0", ""), ("vclip", str(media / "clip.mp4"))] + [
            (f"h{i}", uri) for i, uri in enumerate(hostile)]
        produce(broker.bootstrap, [(topics.videos, vid.encode(), event(
            "video", event_id=vid, video_id=vid, title="Spider close-up", duration_ms=1000,
            ts=NOW, uri=uri)) for vid, uri in videos])
        wait_until(lambda: all(r.hget(f"{topic_prefix}:v:{vid}", "status") for vid, _ in videos),
                   timeout_s=90, what="videos analysed", worker=worker)
        status = {vid: r.hmget(f"{topic_prefix}:v:{vid}", "status", "error")
                  for vid, _ in videos}
        assert status["v0"] == [b"ok", None]
        if CLIP.is_file():
            assert status["vclip"] == [b"ok", None]
        assert all(status[f"h{i}"] == [b"failed", b"not allowed"] for i in range(len(hostile)))
        silent.settimeout(0.1)
        with pytest.raises(TimeoutError):
            silent.accept()
        produce(broker.bootstrap, [
            (topics.user_events, b"u1", huge),
            (topics.videos, b"vhuge", bad_video),
            (topics.user_events, b"ucorrupt", _watch("ucorrupt", "c1")),
            (topics.user_events, b"uversion", _watch("uversion", "cv1")),
            (topics.user_events, b"u2", _watch("u1", "wrongkey")),
            (topics.user_events, None, _watch("u1", "nokey")),
            (topics.user_events, b"u1", _watch("u1", "y9999", ts=253_402_300_799_000)),
            (topics.user_events, b"u1", _watch("u1", "int", user_id=1)),
            (topics.user_events, b"u1", None),  # a null value (a tombstone)
            *[(topics.user_events, b"u1", _watch("u1", f"w{i}")) for i in range(5)],
            (topics.candidates, b"u1", event("candidates", event_id="c", request_id="r",
                                             user_id="u1", video_ids=["v0"] * 50, ts=NOW)),
        ])
        wait_until(lambda: _applied(r, topic_prefix, "u1") == 5
                   and _applied(r, topic_prefix, "ucorrupt") == 1
                   and _applied(r, topic_prefix, "uversion") == 1, timeout_s=90,
                   what="valid events after the hostile ones", worker=worker)
        # 50 copies of one candidate are one candidate row (so at most one suppression).
        wait_until(lambda: worker.metrics().get("enf_candidates_scored_total"), timeout_s=30,
                   what="the candidates request scored", worker=worker)
        assert worker.metrics()["enf_candidates_scored_total"] == 1
        dead = consume(broker.bootstrap, topics.dead_letters, 9, timeout_s=30)
        assert len(dead) == 9 and worker.metrics()["enf_dead_letters_total"] == 7  # + 2 quarantine
        # The exact original bytes: a null value stays null (it used to become b"").
        assert [d.value for d in dead if b"null value" in dict(d.headers)["enf.error"]] == [None]
        errors = sorted(dict(d.headers)["enf.error"].decode() for d in dead)
        assert sum(e.startswith("key_mismatch") for e in errors) == 2
        assert any("ts: timestamp 253402300799000" in e for e in errors)
        assert any("user_id: expected a string id" in e for e in errors)
        by_source = {dict(d.headers).get("enf.source.topic", b"").decode(): d for d in dead
                     if "enf.truncated" in dict(d.headers) or d.key == b"vhuge"}
        big = by_source[topics.user_events]
        h = dict(big.headers)
        assert h["enf.truncated"] == str(len(huge)).encode()
        assert big.value == huge[:len(big.value)] and len(big.value) < len(huge)
        assert int(h["enf.source.offset"]) == 0 and h["enf.source.partition"]
        assert b"frame_features" in dict(by_source[topics.videos].headers)["enf.error"]
        quarantined = [d for d in dead if "enf.quarantine.key" in dict(d.headers)]
        assert sorted(d.value for d in quarantined) == [b"2.5", b'{"user_id": "uc']
        assert r.hget(f"{topic_prefix}:p:{{uversion}}", "v") == b"1"
        assert worker.alive()
        _check_web(worker, redis_url)
    finally:
        silent.close()
        assert worker.stop() in (0, -15), worker.log_tail()


def _http(worker: WorkerProcess, path: str, *, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _check_web(worker: WorkerProcess, redis_url: str) -> None:
    """/enf/status hides credentials and answers loopback Host names only; the
    state-changing route takes POST and the admin token."""
    password = redis_url.split("@")[0].rsplit(":", 1)[1]
    assert password  # the embedded Redis has a password per run
    code, body = _http(worker, "/enf/status")
    assert code == 200 and password.encode() not in body and b"***" in body
    assert orjson.loads(body)["redis"].startswith("redis://:***@127.0.0.1:")
    assert _http(worker, "/enf/status", headers={"Host": "evil.example"})[0] == 403
    assert _http(worker, "/enf/status", headers={"Host": "localhost:1234"})[0] == 200
    assert _http(worker, "/enf/reset-latency")[0] == 405
    assert _http(worker, "/enf/reset-latency", method="POST")[0] == 403
    assert _http(worker, "/enf/reset-latency", method="POST",
                 headers={"Authorization": "Bearer wrong"})[0] == 403
    ok = _http(worker, "/enf/reset-latency", method="POST",
               headers={"Authorization": f"Bearer {worker.admin_token}"})
    assert ok[0] == 200 and orjson.loads(ok[1]) == {"ok": True}
    assert password not in worker.log_path.read_text(errors="replace")
