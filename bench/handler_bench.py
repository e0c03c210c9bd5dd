"""The two stream paths in process against a real Redis, without a broker: portrait
events/s (``PortraitHandler.handle``: one Lua read, the pure update, one Lua CAS
write per batch) and candidates/s (``ScoringHandler.handle``: one pipelined Redis
read per batch, one ONNX call) with the shipped model.

The broker-bound numbers are ``bench/stream_bench.py``'s; this isolates what the
portrait's latent taste and history cost the handlers (run it on two checkouts:
``ENF_BENCH_ROOT=/path/to/other/checkout python bench/handler_bench.py``).
Prints one JSON object. Usage: python bench/handler_bench.py [--events N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("ENF_BENCH_ROOT") or str(Path(__file__).resolve().parents[1]))

import orjson


class _Sink:
    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _videos(n: int, rng: random.Random) -> list[Any]:
    from enf_core.analysis import VideoAnalysis
    from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

    out = []
    for i in range(n):
        t = [rng.random() for _ in TOPICS]
        s = sum(t)
        out.append(VideoAnalysis(f"v{i}", tuple(x / s for x in t),
                                 tuple(rng.random() * 0.6 for _ in ELEMENTS),
                                 (1 / len(REASONS),) * len(REASONS), plot_appeal=rng.random(),
                                 duration_ms=10_000))
    return out


async def _redis_cpu(store: Any) -> float:
    """Redis's own CPU seconds so far (INFO cpu: user + sys of the server)."""
    info = await store.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from models.runtime import ScorerRuntime
    from streams.handlers.base import Message
    from streams.handlers.portraits import PortraitHandler
    from streams.handlers.scoring import ScoringHandler
    from streams.services import start_redis
    from streams.store import RedisStore, StoreConfig

    rng = random.Random(0)
    runtime = ScorerRuntime(None, prefer_gpu=False)
    latents = getattr(runtime, "latents", None)
    redis = start_redis()
    try:
        store = RedisStore(redis.url, StoreConfig(prefix="hb"))
        videos = _videos(args.videos, rng)
        if latents is not None:  # what the video handler stores with this model
            videos = [latents.attach(a) for a in videos]
        await store.put_videos(videos, ts=1)
        sink = _Sink()
        portraits = PortraitHandler(store, sink, dead_letter_topic="dlq", window_s=3600)
        # Valid at the edge (enf_core.limits): a recent ts, the key is the user id.
        t0_ms = int(time.time() * 1000) - args.events
        raws = [(f"u{i % args.users}".encode(),
                 orjson.dumps({"v": 1, "type": "watch", "event_id": f"e{i}",
                               "user_id": f"u{i % args.users}",
                               "video_id": f"v{rng.randrange(args.videos)}",
                               "play_ms": rng.randrange(0, 12_000), "duration_ms": 10_000,
                               "ts": t0_ms + i})) for i in range(args.events)]
        msgs = [Message(r, k, "t", 0, i) for i, (k, r) in enumerate(raws)]
        redis_cpu0 = await _redis_cpu(store)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for s in range(0, len(msgs), args.batch):
            await portraits.handle(msgs[s:s + args.batch])
        t_p, cpu_p = time.perf_counter() - t0, time.process_time() - cpu0
        redis_cpu_p = await _redis_cpu(store) - redis_cpu0
        scoring = ScoringHandler(store, sink, runtime, suppressions_topic="s",
                                 explanations_topic="x", dead_letter_topic="dlq",
                                 suppression_pages=True)
        reqs = []
        for i in range(args.requests):
            uid = f"u{rng.randrange(args.users)}"
            reqs.append(Message(orjson.dumps({
                "v": 1, "type": "candidates", "event_id": f"c{i}", "request_id": f"r{i}",
                "user_id": uid,
                "video_ids": [f"v{j}" for j in rng.sample(range(args.videos), 100)],
                "ts": t0_ms + i}), uid.encode(), "c", 0, i))
        await scoring.handle(reqs[:10])  # warm the video cache and the session
        t0 = time.perf_counter()
        scored = 0
        for s in range(0, len(reqs), 20):
            scored += (await scoring.handle(reqs[s:s + 20])).candidates
        if scored != 100 * args.requests:  # a dead-lettered request measures nothing
            raise SystemExit(f"only {scored} of {100 * args.requests} candidates scored")
        t_s = time.perf_counter() - t0
        size = len(await store.redis.hget(store.portrait_key("u0"), "data") or b"")
        await store.close()
    finally:
        redis.stop()
    return {"portrait_events_per_s": round(args.events / t_p),
            # CPU per event, robust to a loaded machine: this process, and Redis.
            "portrait_worker_cpu_us_per_event": round(1e6 * cpu_p / args.events, 1),
            "portrait_redis_cpu_us_per_event": round(1e6 * redis_cpu_p / args.events, 1),
            "load_average": os.getloadavg()[0],
            "candidates_per_s": round(100 * args.requests / t_s),
            "portrait_json_bytes": size, "model": runtime.version,
            "latents": latents is not None, "events": args.events, "batch": args.batch,
            "requests": args.requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=2_000)
    ap.add_argument("--videos", type=int, default=500)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
