"""The portrait path beside its peers: one broker, one run, the same event logic.

Every peer drains the same pre-filled topic of single-event ``watch`` messages
(keyed by user) with its own consumer group and applies each event with the
same Profile Agent logic (``enf_core.events.decode_events`` then
``enf_core.portrait.apply_event``); what differs is the client and where the
portraits live:

- ``aiokafka``: a raw ``getmany`` loop, portraits in a process-local dict;
- ``confluent-kafka``: a raw ``consume`` loop (librdkafka), portraits in a dict;
- ``quixstreams``: a Quix Streams ``StreamingDataFrame.update(stateful=True)``,
  portraits in Quix's own state (RocksDB + changelog topic);
- ``aiokafka+redis``: the raw aiokafka loop handing batches to our
  ``PortraitHandler`` (Redis CAS writes, watermarks, counters): our logic and
  state without the worker's engine;
- ``enf direct`` / ``enf faust``: a real ``enf worker`` (the two engines).

Each row also checks a sample of portraits against an offline replay (the
peers must compute the same thing). Prints a table and one JSON line; asserts
nothing (numbers on a shared machine are noisy: say so when quoting them).

Usage: python bench/peers.py [--broker kafka|tansu|both] [--events N] [--users N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from stream_bench import drain_rate, produce, watch

from enf_core.events import decode_events
from enf_core.portrait import Portrait, apply_event
from streams.config import TopicNames
from streams.process import WorkerProcess
from streams.services import EmbeddedServices, create_enf_topics

PREFIX = "peers"
SAMPLE = 50  # users whose portraits are checked per peer


def apply_raw(portraits: dict[str, Portrait], raw: bytes | None) -> int:
    """The event logic every peer runs: decode, then apply to the user's portrait."""
    n = 0
    for e in decode_events(raw):
        uid = e.user_id  # type: ignore[union-attr]
        p = portraits.get(uid)
        if p is None:
            p = portraits[uid] = Portrait.new(uid)
        apply_event(p, e, None)  # type: ignore[arg-type]
        n += 1
    return n


def reference(records: list[tuple[bytes, bytes]], users: list[str]) -> dict[str, Any]:
    portraits: dict[str, Portrait] = {}
    for _k, v in records:
        apply_raw(portraits, v)
    return {u: portraits[u].to_dict() for u in users if u in portraits}


async def peer_aiokafka(boot: str, topic: str, n: int, group: str,
                        handle: Callable[[list[Any]], Any] | None = None
                        ) -> tuple[float, dict[str, Portrait]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=boot, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=1000, fetch_max_wait_ms=20)
    await consumer.start()
    portraits: dict[str, Portrait] = {}
    seen, t0 = 0, 0.0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                continue
            if not t0:
                t0 = time.monotonic()
            records = [r for recs in batch.values() for r in recs]
            if handle is not None:
                await handle(records)
            else:
                for r in records:
                    apply_raw(portraits, r.value)
            seen += len(records)
            await consumer.commit()
    finally:
        await consumer.stop()
    return n / (time.monotonic() - t0), portraits


def peer_confluent(boot: str, topic: str, n: int, group: str
                   ) -> tuple[float, dict[str, Portrait]]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": boot, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    portraits: dict[str, Portrait] = {}
    seen, t0 = 0, 0.0
    try:
        deadline = time.monotonic() + 600
        while seen < n and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=1000, timeout=0.5)
            if not msgs:
                continue
            if not t0:
                t0 = time.monotonic()
            for m in msgs:
                if m.error():
                    continue
                apply_raw(portraits, m.value())
                seen += 1
            consumer.commit(asynchronous=True)
    finally:
        consumer.close()
    return n / (time.monotonic() - t0), portraits


def peer_quix(boot: str, topic: str, n: int, group: str, state_dir: Path
              ) -> tuple[float, dict[str, Any]]:
    from quixstreams import Application

    app = Application(broker_address=boot, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING", commit_interval=1.0)
    t = app.topic(topic, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(t)
    sample: dict[str, Any] = {}
    clock = {"t0": 0.0}

    def update(value: bytes, state: Any) -> None:
        if not clock["t0"]:
            clock["t0"] = time.monotonic()
        for e in decode_events(value):
            uid = e.user_id  # type: ignore[union-attr]
            stored = state.get(uid)
            p = Portrait.from_dict(stored) if stored else Portrait.new(uid)
            apply_event(p, e, None)  # type: ignore[arg-type]
            d = p.to_dict()
            state.set(uid, d)
            sample[uid] = d

    sdf.update(update, stateful=True)
    app.run(count=n, timeout=600, collect=False)
    return n / (time.monotonic() - clock["t0"]), sample


def check(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    def as_dict(v: Any) -> Any:
        return v.to_dict() if isinstance(v, Portrait) else v

    return all(orjson.loads(orjson.dumps(as_dict(got.get(u)))) ==
               orjson.loads(orjson.dumps(ref[u])) for u in ref)


def run_broker(kind: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    import redis

    rows: list[dict[str, Any]] = []
    topics = TopicNames(PREFIX)
    records = [watch(i, args.users, 200) for i in range(args.events)]
    sample_users = [f"u{i}" for i in range(0, args.users, max(args.users // SAMPLE, 1))]
    ref = reference(records, sample_users)
    with EmbeddedServices(broker=kind, partitions=4) as svc:
        boot = svc.bootstrap
        create_enf_topics(svc.kafka_url, topics, partitions=4)
        asyncio.run(produce(boot, topics.user_events, records))
        r = redis.Redis.from_url(svc.redis_url)

        def row(name: str, eps: float | None, same: bool | None) -> None:
            rows.append({"broker": kind, "peer": name,
                         "events_per_s": round(eps) if eps else None, "same_portraits": same})
            print(f"  {kind:6s} {name:16s} {rows[-1]['events_per_s']!s:>9} events/s  "
                  f"portraits as the replay: {same}", file=sys.stderr)

        eps, got = asyncio.run(peer_aiokafka(boot, topics.user_events, args.events, "p-aio"))
        row("aiokafka", eps, check(got, ref))
        eps, got = peer_confluent(boot, topics.user_events, args.events, "p-ck")
        row("confluent-kafka", eps, check(got, ref))
        try:
            eps, sample = peer_quix(boot, topics.user_events, args.events, "p-quix",
                                    workdir / "quix-state")
            row("quixstreams", eps, check(sample, ref))
        except Exception as exc:  # a peer failing is a result, not a crash of the table
            print(f"  quixstreams failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            row("quixstreams", None, None)

        async def ours() -> float:
            from streams.handlers.base import Message
            from streams.handlers.portraits import PortraitHandler
            from streams.rebuild import NullSink
            from streams.store import RedisStore, StoreConfig

            store = RedisStore(svc.redis_url, StoreConfig(prefix=PREFIX))
            handler = PortraitHandler(store, NullSink(), dead_letter_topic="dlq")

            async def handle(recs: list[Any]) -> None:
                await handler.handle([Message(x.value, x.key, x.topic, x.partition, x.offset,
                                              x.timestamp) for x in recs])
            try:
                eps, _ = await peer_aiokafka(boot, topics.user_events, args.events, "p-aio-r",
                                             handle)
            finally:
                await store.close()
            return eps

        def stored() -> dict[str, Any]:
            out = {}
            for u in sample_users:
                data = r.hget(f"{PREFIX}:p:{{{u}}}", "data")
                if data:
                    out[u] = orjson.loads(data)  # type: ignore[arg-type]
            return out

        clear(r)
        # As `enf worker` does at start-up: what this process holds so far (the
        # other peers' clients, the records) is frozen out of the collector.
        gc.collect()
        gc.freeze()
        row("aiokafka+redis", asyncio.run(ours()), check(stored(), ref))
        for engine in ("direct", "faust"):
            clear(r)
            w = WorkerProcess(kafka_url=svc.kafka_url, redis_url=svc.redis_url, broker_kind=kind,
                              prefix=PREFIX, app_id=f"peers-{engine}",
                              log_path=workdir / f"{engine}.log",
                              env={"ENF_PORTRAIT_ENGINE": engine})
            try:
                eps = drain_rate(w, "enf_portrait_events_applied_total", args.events, 900)
                row(f"enf {engine}", eps, check(stored(), ref))
            finally:
                w.stop()
        r.close()
    return rows


def clear(r: Any) -> None:
    """Delete the bench's keys between peers. The embedded Redis renames FLUSHDB
    away (a local process must not wipe state), so delete by prefix instead."""
    batch = []
    for key in r.scan_iter(match=f"{PREFIX}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            r.unlink(*batch)
            batch.clear()
    if batch:
        r.unlink(*batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="kafka", choices=["tansu", "kafka", "both"])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--users", type=int, default=5_000)
    args = ap.parse_args()
    kinds = ["kafka", "tansu"] if args.broker == "both" else [args.broker]
    workdir = Path(tempfile.mkdtemp(prefix="enf-peers-"))
    rows = [r for k in kinds for r in run_broker(k, args, workdir)]
    print("\n| broker | peer | events/s | portraits = replay |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['broker']} | {r['peer']} | {r['events_per_s']} | {r['same_portraits']} |")
    print(json.dumps({"machine_cores": os.cpu_count(), "load_average": os.getloadavg(),
                      "events": args.events, "users": args.users, "rows": rows}))


if __name__ == "__main__":
    main()
