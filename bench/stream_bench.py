"""Throughput and latency of the stream paths, beside the raw broker ceiling.

Prints numbers, asserts nothing (not part of CI's pass/fail). Per broker:

1. raw: an aiokafka consume→produce loop over single-event messages, the
   ceiling any Python worker on this broker and machine can reach;
2. portrait path, single-event messages: events/s of a real ``enf worker``
   draining a pre-filled topic, then p50/p99 (Kafka timestamp → Redis write
   done) at half that rate;
3. portrait path, pages of 100 events per message (the producer-side lever);
4. scoring path: candidates/s draining pre-filled requests of 100 candidates,
   then p50/p99 (candidates message → suppressions produced) at half load.

Usage: python bench/stream_bench.py [--broker tansu|kafka|both] [--events N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.config import TopicNames
from streams.process import WorkerProcess, wait_until
from streams.services import EmbeddedServices, create_topics

T0 = 1_700_000_000_000  # epoch ms; the worker refuses events before 2000 or in the future


def watch(i: int, users: int, videos: int) -> tuple[bytes, bytes]:
    uid = f"u{i % users}"
    return uid.encode(), orjson.dumps({"v": 1, "type": "watch", "event_id": f"w{i}",
                                       "user_id": uid, "video_id": f"v{i % videos}",
                                       "play_ms": (i * 7919) % 20_000, "duration_ms": 20_000,
                                       "ts": T0 + i})


def video(i: int) -> tuple[bytes, bytes]:
    titles = ["Spider close-up", "Pasta in ten minutes", "Car crash on the highway",
              "Slow moss documentary", "Puppies in snow"]
    return f"v{i}".encode(), orjson.dumps({"v": 1, "type": "video", "event_id": f"vid{i}",
                                           "video_id": f"v{i}", "title": titles[i % 5],
                                           "duration_ms": 20_000, "ts": T0})


def candidates(i: int, users: int, videos: int, n: int) -> tuple[bytes, bytes]:
    rng = random.Random(i)
    uid = f"u{i % users}"
    return uid.encode(), orjson.dumps({"v": 1, "type": "candidates", "event_id": f"c{i}",
                                       "request_id": f"r{i}", "user_id": uid,
                                       # distinct ids: the edge collapses duplicates
                                       "video_ids": [f"v{j}" for j in
                                                     rng.sample(range(videos), min(n, videos))],
                                       "ts": int(time.time() * 1000)})


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                  rate: float = 0.0) -> float:
    """Send records (rate-limited when rate > 0); returns the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    t0 = time.monotonic()
    try:
        futs = []
        for i, (key, value) in enumerate(records):
            futs.append(await producer.send(topic, value=value, key=key))
            if rate and i % 10 == 9:  # smooth arrivals, as a live feed sends them
                ahead = (i + 1) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.monotonic() - t0


async def raw_loop(bootstrap: str, src: str, dst: str, n: int) -> float:
    """The ceiling: consume, decode with orjson, produce, commit. Events/s."""
    consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=f"raw-{src}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=5000, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    seen = 0
    t0 = None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            futs = []
            for records in batch.values():
                for rec in records:
                    orjson.loads(rec.value)
                    futs.append(await producer.send(dst, value=rec.value, key=rec.key))
                    seen += 1
            if futs and t0 is None:
                t0 = time.monotonic()
            await asyncio.gather(*futs)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    return n / (time.monotonic() - (t0 or time.monotonic()))


def drain_rate(worker: WorkerProcess, counter: str, total: float, timeout_s: float
               ) -> float | None:
    """Per-second rate of ``counter`` from its first move until it reaches ``total``."""
    first = wait_until(lambda: (worker.metrics().get(counter, 0) > 0) and time.monotonic(),
                       timeout_s=timeout_s, what=f"{counter} > 0", worker=worker, interval_s=0.05)
    start_value = worker.metrics().get(counter, 0)
    wait_until(lambda: worker.metrics().get(counter, 0) >= total, timeout_s=timeout_s,
               what=f"{counter} >= {total}", worker=worker, interval_s=0.1)
    if start_value >= total:  # drained within one poll: too little data to time
        return None
    return (total - start_value) / max(time.monotonic() - first, 1e-9)


def handler_time(before: dict[str, float], after: dict[str, float], agent: str
                 ) -> dict[str, float]:
    """Batches the agent's handler ran between two metric samples, and their mean
    time (ms): what of the end-to-end latency is handling, not waiting."""
    def delta(name: str) -> float:
        key = f'{name}{{agent="{agent}"}}'
        return after.get(key, 0.0) - before.get(key, 0.0)

    n = delta("enf_batch_seconds_count")
    return {"batches": n, "handler_ms_mean": round(1000 * delta("enf_batch_seconds_sum")
                                                   / n, 2) if n else 0.0,
            "gc_pause_max_ms": round(1000 * after.get("enf_gc_pause_max_seconds", 0.0), 1)}


def run_broker(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"broker": kind}
    n, users, nvid = args.events, args.users, args.videos
    with EmbeddedServices(broker=kind, partitions=4) as svc:
        boot = svc.bootstrap
        singles = [watch(i, users, nvid) for i in range(n)]
        phases = set(args.phases.split(","))
        if "raw" in phases:
            create_topics(svc.kafka_url, ["raw-in", "raw-out"], partitions=4)
            asyncio.run(produce(boot, "raw-in", singles))
            out["raw_consume_produce_eps"] = round(asyncio.run(raw_loop(boot, "raw-in", "raw-out",
                                                                        n)))

        def worker_for(prefix: str, **env: str) -> WorkerProcess:
            from streams.services import create_enf_topics

            create_enf_topics(svc.kafka_url, TopicNames(prefix), partitions=4)
            w = WorkerProcess(kafka_url=svc.kafka_url, redis_url=svc.redis_url, broker_kind=kind,
                              prefix=prefix, log_path=workdir / f"{prefix}.log", env=env)
            return w

        def portrait_single(prefix: str, engine: str) -> None:
            """Drain a pre-filled topic of single-event messages, then measure
            latency (Kafka timestamp → Redis write done) at half that rate."""
            t = TopicNames(prefix)
            w = worker_for(prefix, ENF_PORTRAIT_ENGINE=engine)
            try:
                asyncio.run(produce(boot, t.videos, [video(i) for i in range(nvid)]))
                asyncio.run(produce(boot, t.user_events, singles))
                eps = drain_rate(w, "enf_portrait_events_applied_total", n, 600) or 1000.0
                out[f"portrait_single_{engine}_eps"] = round(eps)
                w.reset_latency()
                before = w.samples()
                half = [watch(n + i, users, nvid) for i in range(int(eps / 2 * args.seconds))]
                asyncio.run(produce(boot, t.user_events, half, rate=eps / 2))
                wait_until(lambda: w.metrics().get("enf_portrait_events_applied_total", 0)
                           >= n + len(half), timeout_s=120, what="half-load drained", worker=w)
                out[f"portrait_{engine}_half_load"] = {
                    "rate_eps": round(eps / 2),
                    **w.status().get("latency_ms", {}).get("portraits", {}),
                    **handler_time(before, w.samples(), "portraits")}
            finally:
                w.stop()

        def portrait_pages() -> None:
            # Portrait path, pages of 100 events per message.
            t = TopicNames("b2")
            w = worker_for("b2")
            try:
                asyncio.run(produce(boot, t.videos, [video(i) for i in range(nvid)]))
                # Every user maps to one bucket and a bucket is one key, so a user's
                # events stay in one partition and in order, as a producer must keep them.
                n_paged = 5 * n  # pages drain fast: feed more to time them
                n_buckets = max(n_paged // 100, 1)
                buckets: dict[int, list[Any]] = {}
                for i in range(n_paged):
                    buckets.setdefault((i % users) % n_buckets, []).append(
                        orjson.loads(watch(i, users, nvid)[1]))
                pages = [(f"b{b}".encode(), orjson.dumps(evs[j:j + 100]))
                         for b, evs in buckets.items() for j in range(0, len(evs), 100)]
                asyncio.run(produce(boot, t.user_events, pages))
                out["portrait_pages100_eps"] = drain_rate(w, "enf_portrait_events_applied_total",
                                                          n_paged, 600)
            finally:
                w.stop()

        def scoring() -> None:
            # Scoring path.
            t = TopicNames("b3")
            w = worker_for("b3", ENF_SUPPRESS_THRESHOLD="0.5")
            try:
                asyncio.run(produce(boot, t.videos, [video(i) for i in range(nvid)]))
                wait_until(lambda: w.metrics().get("enf_videos_analyzed_total", 0) >= nvid,
                           timeout_s=300, what="videos analysed", worker=w)
                reqs = [candidates(i, users, nvid, 100) for i in range(args.requests)]
                asyncio.run(produce(boot, t.candidates, reqs))
                cps = drain_rate(w, "enf_candidates_scored_total", 100 * args.requests, 600) or 1e4
                out["scoring_candidates_per_s"] = round(cps)
                w.reset_latency()
                before = w.samples()
                rate = cps / 2 / 100
                half = [candidates(args.requests + i, users, nvid, 100)
                        for i in range(int(rate * args.seconds))]
                asyncio.run(produce(boot, t.candidates, half, rate=rate))
                total = 100 * (args.requests + len(half))
                wait_until(lambda: w.metrics().get("enf_candidates_scored_total", 0) >= total,
                           timeout_s=120, what="half-load scored", worker=w)
                out["scoring_half_load"] = {"requests_per_s": round(rate, 1),
                                            **w.status().get("latency_ms", {}).get("scorer", {}),
                                            **handler_time(before, w.samples(), "scorer")}
                out["model"] = w.status().get("model")
            finally:
                w.stop()

        if "direct" in phases:
            portrait_single("b0", "direct")
        if "faust" in phases:
            portrait_single("b1", "faust")
        if "pages" in phases:
            portrait_pages()
        if "scoring" in phases:
            scoring()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="both", choices=["tansu", "kafka", "both"])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--seconds", type=float, default=15.0, help="half-load phase length")
    ap.add_argument("--phases", default="raw,direct,faust,pages,scoring",
                    help="comma-separated subset of raw,direct,faust,pages,scoring")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kinds = ["kafka", "tansu"] if args.broker == "both" else [args.broker]
    workdir = Path(tempfile.mkdtemp(prefix="enf-bench-"))
    results = [run_broker(k, args, workdir) for k in kinds]
    if not args.json:
        for r in results:
            print(f"== {r['broker']}")
            for k, v in r.items():
                if k != "broker":
                    print(f"  {k}: {v}")
    print(json.dumps({"machine_cores": os.cpu_count(), "load_average": os.getloadavg(),
                      "events": args.events, "results": results}))


if __name__ == "__main__":
    main()
