"""The Video Agent's uri policy against a real Redis and real local servers:
nothing outside the media root is opened, no URL is fetched unless allowed, a
stalled server or a stalled analysis cannot stall the path, and what Redis
stores says only "not allowed" / "cannot decode"."""

from __future__ import annotations

import asyncio
import http.server
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from streams.handlers.base import Message
from streams.handlers.videos import VideoHandler
from streams.media import MediaPolicy
from streams.store import RedisStore, StoreConfig
from tests.integration.workers import event

pytestmark = pytest.mark.integration

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"
NOW = int(time.time() * 1000)


class Sink:
    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Recording:
    """Reads the title only; records which uris it was asked to open, and
    sleeps on the ones named slow (a decoder that never returns)."""

    name = "recording"

    def __init__(self) -> None:
        self.opened: list[str] = []

    def analyze(self, e: VideoEvent) -> VideoAnalysis:
        self.opened.append(e.uri)
        if "slow" in e.uri:
            time.sleep(5)
        return VideoAnalysis.neutral(e.video_id, duration_ms=e.duration_ms, title=e.title)


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An HTTP server for a clip, and a TCP listener that accepts and never answers."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "clip.mp4").write_bytes(b"\x00" * 4096)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)

        def log_message(self, *a: Any) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        yield {"web": f"127.0.0.1:{web.server_address[1]}",
               "silent": f"127.0.0.1:{silent.getsockname()[1]}", "silent_sock": silent}
    finally:
        web.shutdown()
        silent.close()


def _video(vid: str, uri: str) -> Message:
    return Message(event("video", event_id=vid, video_id=vid, title="t", duration_ms=1000,
                         ts=NOW, uri=uri), vid.encode())


async def test_uris_outside_the_policy_are_never_opened(redis_url: str, tmp_path: Path,
                                                        servers: dict[str, Any]) -> None:
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip.mp4").write_bytes(b"x")
    (root / "link").symlink_to("/etc/passwd")
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
    analyzer = Recording()
    handler = VideoHandler(store, Sink(), analyzer, dead_letter_topic="dlq",
                           media=MediaPolicy.from_settings(str(root)))
    hostile = ["file:///etc/passwd", "/etc/shadow", "/proc/self/environ", "/dev/zero",
               "../../../../etc/hostname", f"{root}/../../../etc/hostname", f"{root}/link",
               "frames:///etc/passwd#0", f"http://{servers['silent']}/x",
               f"https://{servers['web']}/clip.mp4", "ftp://127.0.0.1/x", "tcp://127.0.0.1:1",
               f"{root}/does-not-exist.mp4"]
    msgs = [_video(f"h{i}", uri) for i, uri in enumerate(hostile)] + [
        _video("ok", str(root / "clip.mp4"))]
    t0 = time.monotonic()
    result = await handler.handle(msgs)
    assert time.monotonic() - t0 < 5
    assert result.failed == len(hostile) and result.analyzed == 1
    assert analyzer.opened == [str(root / "clip.mp4")]
    for i in range(len(hostile)):
        stored = await store.get_video(f"h{i}")
        assert stored[b"status"] == b"failed" and stored[b"error"] == b"not allowed", hostile[i]
    servers["silent_sock"].settimeout(0.2)
    with pytest.raises(TimeoutError):  # nobody ever connected to it
        servers["silent_sock"].accept()
    handler.close()
    await store.close()


async def test_allowed_http_and_a_stalled_server_or_decoder(redis_url: str, tmp_path: Path,
                                                            servers: dict[str, Any]) -> None:
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
    analyzer = Recording()
    policy = MediaPolicy.from_settings(str(tmp_path), allow_http=True,
                                       http_hosts=f"{servers['web']},{servers['silent']}",
                                       connect_timeout_s=0.5, read_timeout_s=0.5)
    handler = VideoHandler(store, Sink(), analyzer, dead_letter_topic="dlq", media=policy,
                           threads=2, analysis_timeout_s=0.5, start_grace_s=0.0)
    (tmp_path / "slow.mp4").write_bytes(b"x")
    t0 = time.monotonic()
    result = await handler.handle([
        _video("web", f"http://{servers['web']}/clip.mp4"),
        _video("missing", f"http://{servers['web']}/nope.mp4"),
        _video("stalled", f"http://{servers['silent']}/x"),
        _video("slow", str(tmp_path / "slow.mp4")),
    ])
    assert time.monotonic() - t0 < 4  # neither the silent server nor the decoder stalls it
    assert result.analyzed == 1 and result.failed == 3
    fetched = analyzer.opened[0]
    assert fetched != f"http://{servers['web']}/clip.mp4" and not Path(fetched).exists()
    assert (await store.get_video("web"))[b"status"] == b"ok"
    for vid in ("missing", "stalled", "slow"):
        assert (await store.get_video(vid))[b"error"] == b"cannot decode"
    handler.close()
    await store.close()


@pytest.mark.skipif(not (REAL / "moviepy_fire2.mp4").is_file(), reason="needs ../shared")
async def test_a_real_clip_under_the_root_is_analysed(redis_url: str, tmp_path: Path) -> None:
    from models.video_runtime import VideoAnalyzer

    shutil.copy(REAL / "moviepy_fire2.mp4", tmp_path / "fire.mp4")
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
    handler = VideoHandler(store, Sink(), VideoAnalyzer(), dead_letter_topic="dlq",
                           media=MediaPolicy.from_settings(f"{REAL}:{tmp_path}"))
    result = await handler.handle([_video("fire", str(tmp_path / "fire.mp4")),
                                   _video("shared", f"file://{REAL}/moviepy_chaplin.mp4")])
    assert result.analyzed == 2, await store.get_video("fire")
    handler.close()
    await store.close()


class Stalling:
    """Never returns for videos named stall* until released (a decoder stuck in C)."""

    name = "stalling"

    def __init__(self) -> None:
        self.release = threading.Event()

    def analyze(self, e: VideoEvent) -> VideoAnalysis:
        if e.video_id.startswith("stall"):
            self.release.wait(30)
        return VideoAnalysis.neutral(e.video_id, duration_ms=e.duration_ms, title=e.title)


async def test_stuck_analysis_threads_are_bounded(redis_url: str) -> None:
    """Thread mode: a timed-out analysis keeps its thread (Python cannot stop it).
    Each timeout used to leave one more thread behind, without bound; now at most
    ``max_stuck_threads`` at once, then videos are stored failed unanalysed until
    the stuck ones return, and the handler reports how many are stuck."""
    store = RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))
    analyzer = Stalling()
    handler = VideoHandler(store, Sink(), analyzer, dead_letter_topic="dlq", threads=1,
                           analysis_timeout_s=0.2, start_grace_s=0.0, max_stuck_threads=2)

    def msg(vid: str) -> Message:
        return Message(event("video", event_id=vid, video_id=vid, title="t", duration_ms=1000,
                             ts=NOW), vid.encode())

    before = threading.active_count()
    try:
        r = await handler.handle([msg(f"stall{i}") for i in range(5)] + [msg("ok0")])
        assert (r.failed, r.stuck, r.refused) == (6, 2, 4)  # 2 timed out, 4 refused (ok0 too)
        assert threading.active_count() - before <= 2 + 1  # the stuck ones + the pool's
        analyzer.release.set()
        deadline = time.monotonic() + 10
        while handler.stuck and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        r = await handler.handle([msg("ok1")])
        assert (r.analyzed, r.stuck, r.refused) == (1, 0, 0)
        assert (await store.get_video("ok1"))[b"status"] == b"ok"
    finally:
        analyzer.release.set()
        handler.close()
        await store.close()
