"""The Faust app: topics, the four agents and the timers, wired to the handlers.

Values travel as raw bytes and are decoded with orjson by the handlers; Faust's
Record models cost more per message than the whole rest of the portrait path.
Each agent consumes ``stream.take_events`` batches; Faust acks a batch's events
(and so may commit their offsets) only after the handler returned, that is
after Redis has the write and the outputs are delivered.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from enf_core.policy import SuppressionPolicy
from enf_core.portrait import PortraitConfig
from streams.config import WorkerConfig
from streams.credentials import strip_kafka_credentials
from streams.direct import run_direct_consumer
from streams.handlers.base import Message
from streams.handlers.monitor import Monitor
from streams.handlers.portraits import PortraitHandler
from streams.handlers.scoring import ScoringHandler, ScoringResult
from streams.handlers.videos import Analyzer, NeutralAnalyzer, VideoHandler
from streams.metrics import WorkerMetrics
from streams.policy_explanations import PolicyExplanations
from streams.positions import PartitionPositions
from streams.redact import redact
from streams.store import RedisDataLostError, RedisStore, StoreConfig

__all__ = ["EnfWorker", "FaustSink", "default_analyzer", "load_analyzer", "load_runtime"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# The consumers' fetch wait on both brokers (see _patch_fetch_wait): it bounds how
# long a drained partition can wait behind a fetch held for quiet ones.
DEFAULT_FETCH_MAX_WAIT_MS = 20
EXIT_UNSAFE = 70  # exit code when a batch could not be finished: offsets stay uncommitted
# Redis lost its data (its epoch key is gone or changed): offsets stay uncommitted;
# rebuild the portraits (``enf portraits rebuild``), then restart the workers.
EXIT_REDIS_LOST = 71


class LatencyReservoir:
    """The last N latencies per path, for p50/p99 in ``/enf/status`` (benchmarks
    and the demo read it; Prometheus gets the histogram)."""

    def __init__(self, size: int = 20_000) -> None:
        self._d: dict[str, deque[float]] = {}
        self.size = size

    def add(self, path: str, values: Sequence[float]) -> None:
        d = self._d.setdefault(path, deque(maxlen=self.size))
        d.extend(values)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for path, d in self._d.items():
            if d:
                s = sorted(d)
                out[path] = {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * .99))],
                             "n": len(s)}
        return out

    def reset(self) -> None:
        self._d.clear()


class FaustSink:
    """Produces through the app's own producer (one connection, batching)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> Awaitable[Any]:
        return await self.app.producer.send(topic, key, value, None, None,
                                            list(headers) if headers else None)


def _patch_fetch_wait(fetch_max_wait_ms: int) -> None:
    """Faust hard-codes the consumer's fetch wait at 1500 ms; we shorten it.

    Tansu holds multi-partition fetches for the full wait. On Apache Kafka the
    wait stalled the scorer: aiokafka sends one fetch per broker at a time and
    leaves out partitions whose records are still buffered. When the agent is
    slower than the 100 ms prefetch backoff (a busy machine), the next fetch
    asks only for the quiet partitions (user events, videos) and the broker
    holds it for the full wait while the candidates partitions, drained
    meanwhile, cannot be fetched: every cycle waited ~1.5 s, and the scorer
    settled at a p50 of 1.35 s at half load (the 0.7-3.5 s latency mode)."""
    from faust.transport.drivers import aiokafka as drv

    cls = drv.AIOKafkaConsumerThread
    original = getattr(cls, "_enf_original_create", None) or cls._create_worker_consumer
    cls._enf_original_create = original  # type: ignore[attr-defined]

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    cls._create_worker_consumer = create  # type: ignore[method-assign]


def load_runtime(config: WorkerConfig) -> Any:
    """The scorer's ONNX runtime (models.runtime); logs the providers in use."""
    from models.runtime import ScorerRuntime

    runtime = ScorerRuntime(config.model_dir or None)
    log.warning("scorer model %s on %s%s", runtime.version, ",".join(runtime.providers),
                f" (CUDA not used: {runtime.fallback_reason})" if runtime.fallback_reason else "")
    return runtime


def default_analyzer() -> Analyzer:
    """The Video Agent for the stream (module-level: analysis processes build it)."""
    return load_analyzer(WorkerConfig.from_env())


def load_analyzer(config: WorkerConfig) -> Analyzer:
    """The Video Agent for the stream; a neutral one if none can be loaded."""
    try:
        from models.video_runtime import VideoAnalyzer
    except Exception as exc:  # the worker must run even without the encoders
        log.warning("video agent unavailable (%s); videos get neutral analyses", exc)
        return NeutralAnalyzer()
    return VideoAnalyzer.for_worker()  # type: ignore[no-any-return,attr-defined]


def allowed_hosts(cfg: WorkerConfig) -> frozenset[str]:
    """Host header values the worker's pages answer: loopback names, the bind
    address and ``ENF_WEB_ALLOWED_HOSTS`` (a DNS-rebinding page in a browser
    sends its own host name, and is refused)."""
    names = {"127.0.0.1", "localhost", "::1", cfg.web_host.lower()}
    names |= {h.strip().lower() for h in cfg.web_allowed_hosts.split(",") if h.strip()}
    return frozenset(names)


def host_allowed(header: str, allowed: frozenset[str]) -> bool:
    """Whether a Host header (``name``, ``name:port``, ``[v6]:port``) is allowed."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return bool(host) and host in allowed


def token_ok(authorization: str, token: str) -> bool:
    """``Authorization: Bearer <token>`` matches ``ENF_ADMIN_TOKEN`` (unset: never)."""
    scheme, _, given = authorization.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode())


def _suppression_pages(fmt: str) -> bool:
    if fmt not in ("record", "page"):
        raise ValueError(f"suppression_format must be 'record' or 'page', not {fmt!r}")
    return fmt == "page"


def _policy_explanations(config: WorkerConfig, sink: Any, topic: str,
                         metrics: WorkerMetrics) -> PolicyExplanations | None:
    """ENF_EXPLAINER=policy: the policy at ENF_POLICY_DIR on its side path (torch is
    imported only here, only then)."""
    if config.explainer != "policy":
        return None
    if not config.policy_dir or not Path(config.policy_dir).is_dir():
        raise ValueError(f"ENF_EXPLAINER=policy needs ENF_POLICY_DIR, a saved policy "
                         f"directory (got {config.policy_dir!r})")
    from models.policy.explain import PolicySentences
    from models.policy.runner import RunnerConfig

    sentences = PolicySentences(config.policy_dir, runner=RunnerConfig(
        max_new_tokens=config.policy_max_new_tokens, batch_size=config.policy_batch_size,
        device=config.policy_device, threads=config.policy_threads))
    return PolicyExplanations(sentences, sink, topic, queue_size=config.policy_queue_size,
                              batch_size=config.policy_batch_size,
                              count=lambda s: metrics.policy_explanations.labels(s).inc())


class EnfWorker:
    """Builds the Faust app for one worker process."""

    def __init__(self, config: WorkerConfig, *, runtime: Any = None,
                 analyzer: Analyzer | None = None,
                 policy: SuppressionPolicy | None = None) -> None:
        self.config = config
        # The suppression policy: ENF_SUPPRESS_* variables (enf_core.policy).
        self.policy = policy or SuppressionPolicy.from_env()
        topics = config.topics
        fetch_wait = config.fetch_max_wait_ms or DEFAULT_FETCH_MAX_WAIT_MS
        _patch_fetch_wait(fetch_wait)
        self.app = faust.App(
            config.app_id,
            broker=strip_kafka_credentials(config.kafka_url),
            broker_credentials=config.kafka_security().faust(),
            value_serializer="raw",
            key_serializer="raw",
            store="memory://",
            autodiscover=False,
            web_enabled=config.web_enabled,
            web_bind=config.web_host,
            web_host=config.web_host,
            web_port=config.web_port,
            topic_partitions=config.partitions,
            consumer_auto_offset_reset="earliest",
            consumer_max_fetch_size=config.consumer_max_fetch_size,
            broker_commit_interval=1.0,
            producer_linger=0.002,
            producer_max_batch_size=1 << 20,
            stream_wait_empty=False,
            broker_session_timeout=config.session_timeout_s,
            broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
            broker_request_timeout=90.0,
        )
        self.metrics = WorkerMetrics()
        self.latency = LatencyReservoir()
        self.store = RedisStore(config.redis_connection_url(), StoreConfig(
            prefix=config.topic_prefix, applied_ids_per_user=config.applied_ids_per_user,
            portrait_ttl_s=config.portrait_ttl_s, retry_max_s=config.redis_retry_max_s,
            socket_timeout_s=config.redis_timeout_s,
            max_users_per_call=config.max_users_per_call,
            max_ids_per_call=config.max_ids_per_call))
        self.sink = FaustSink(self.app)
        limits = config.input_limits()
        self.runtime = runtime if runtime is not None else load_runtime(config)
        providers = ",".join(self.runtime.providers)
        self.metrics.model_info.labels(self.runtime.version, providers).set(1)
        self.positions = PartitionPositions(self.store, topics.user_events)
        self._offsets_client: Any = None
        self.policy_explanations = _policy_explanations(config, self.sink, topics.explanations,
                                                        self.metrics)
        self.scoring = ScoringHandler(
            self.store, self.sink, self.runtime, suppressions_topic=topics.suppressions,
            explanations_topic=topics.explanations, dead_letter_topic=topics.dead_letters,
            dead_letter_max_bytes=config.dead_letter_max_bytes, limits=limits,
            policy=self.policy,
            explanations_per_request=config.explanations_per_request,
            explainer=config.explainer, policy_explanations=self.policy_explanations,
            positions=self.positions, end_offsets=self._user_event_end_offsets,
            portrait_wait_s=config.portrait_wait_ms / 1000.0,
            video_cache_size=config.video_cache_size,
            suppression_pages=_suppression_pages(config.suppression_format),
            video_requests_topic=topics.video_requests,
            video_request_interval_s=config.video_request_interval_s)
        # Candidates records on the user-events topic are scored by the portrait
        # path at their place in the user's stream (read-your-writes).
        self.portraits = PortraitHandler(
            self.store, self.sink, dead_letter_topic=topics.dead_letters,
            dead_letter_max_bytes=config.dead_letter_max_bytes, limits=limits,
            config=PortraitConfig(quick_swipe_ratio=config.quick_swipe_ratio),
            window_s=config.metrics_window_s, scorer=self.scoring, positions=self.positions)
        latents = lambda: getattr(self.runtime, "latents", None)  # noqa: E731
        if analyzer is not None:
            self.videos = VideoHandler(self.store, self.sink, analyzer,
                                       dead_letter_topic=topics.dead_letters, latents=latents,
                                       dead_letter_max_bytes=config.dead_letter_max_bytes,
                                       limits=limits, media=config.media_policy(),
                                       analysis_timeout_s=config.video_timeout_s,
                                       max_stuck_threads=config.video_max_stuck_threads)
        else:
            self.videos = VideoHandler(self.store, self.sink, analyzer_factory=default_analyzer,
                                       processes=config.video_processes,
                                       dead_letter_topic=topics.dead_letters, latents=latents,
                                       dead_letter_max_bytes=config.dead_letter_max_bytes,
                                       limits=limits, media=config.media_policy(),
                                       analysis_timeout_s=config.video_timeout_s,
                                       max_stuck_threads=config.video_max_stuck_threads)
        self.monitor = Monitor(self.store, self.sink, metrics_topic=topics.metrics,
                               window_s=config.metrics_window_s)
        self._register()

    async def _user_event_end_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        """The user-events partitions' end offsets (one ListOffsets request), for the
        candidates topic's bounded wait (streams/positions.py)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.services import bootstrap_servers

        if self._offsets_client is None:
            client = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(self.config.kafka_url),
                                      group_id=None, enable_auto_commit=False,
                                      client_id=f"{self.config.app_id}-positions",
                                      **self.config.kafka_security().aiokafka())
            await client.start()
            self._offsets_client = client
        topic = self.config.topics.user_events
        ends = await self._offsets_client.end_offsets(
            [TopicPartition(topic, p) for p in partitions])
        return {tp.partition: int(off) for tp, off in ends.items()}

    # ------------------------------------------------------------------ wiring
    def _topic(self, name: str) -> Any:
        return self.app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                              value_serializer="raw", partitions=self.config.partitions)

    async def _finish(self, agent: str, fn: Callable[[list[Message]], Awaitable[T]],
                      msgs: list[Message]) -> T:
        """Run a handler so that leaving this call always means "state written".

        Faust acks the batch when the agent moves on, even when it leaves
        because of cancellation (rebalance, shutdown). So a cancelled batch is
        finished before the cancellation goes on, and a batch that cannot be
        finished at all ends the process without committing its offsets:
        the batch is then redelivered, and the store's event-id check makes
        the redelivery harmless.
        """
        task = asyncio.ensure_future(fn(msgs))
        try:
            with self.metrics.batch_seconds.labels(agent).time():
                return await asyncio.shield(task)
        except asyncio.CancelledError:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=60.0)
            except Exception:
                log.critical("%s: could not finish a batch while stopping; exiting without "
                             "committing its offsets", agent)
                os._exit(EXIT_UNSAFE)
            raise
        except RedisDataLostError as exc:
            log.critical("%s: %s Exiting (code %d) without committing this batch's offsets.",
                         agent, exc, EXIT_REDIS_LOST)
            logging.shutdown()
            os._exit(EXIT_REDIS_LOST)
        except Exception:
            log.critical("%s: batch failed for a reason retries cannot fix; exiting without "
                         "committing its offsets", agent, exc_info=True)
            logging.shutdown()
            os._exit(EXIT_UNSAFE)

    @staticmethod
    def _messages(events: Sequence[Any]) -> list[Message]:
        out = []
        for ev in events:
            m = ev.message
            out.append(Message(m.value, m.key, m.topic, m.partition, m.offset,
                               int((m.timestamp or 0) * 1000)))
        return out

    def _register(self) -> None:
        app, cfg, topics, metrics = self.app, self.config, self.config.topics, self.metrics
        take, within = cfg.batch_max, cfg.batch_within_s

        def scored(r: ScoringResult) -> None:
            """Scorer metrics, from the candidates topic or the user-events topic."""
            metrics.requests.inc(r.requests)
            metrics.candidates.inc(r.candidates)
            metrics.unknown_videos.inc(r.unknown_videos)
            metrics.video_requests.inc(r.video_requests)
            metrics.suppressions.inc(r.suppressions)
            metrics.flagged.inc(r.flagged)
            metrics.stale_requests.inc(r.stale_requests)
            metrics.explanations.inc(r.explanations)
            for ms in r.latencies_ms:
                metrics.request_latency_ms.observe(ms)

        async def portrait_batch(msgs: list[Message]) -> None:
            metrics.messages.labels(topics.user_events).inc(len(msgs))
            r = await self._finish("portraits", self.portraits.handle, msgs)
            done = time.time() * 1000
            self.latency.add("portraits", [done - m.timestamp_ms for m in msgs])
            metrics.events.labels("portraits").inc(r.events)
            metrics.applied.inc(r.applied)
            metrics.duplicates.inc(r.duplicates)
            metrics.conflicts.inc(r.conflicts)
            metrics.dead_letters.labels("portraits").inc(r.dead_letters)
            if r.scoring is not None:
                scored(r.scoring)

        @app.task
        async def adopt_epoch() -> None:
            # Written at start-up (SET NX), checked in every batch: see RedisStore.
            try:
                await self.store.ensure_epoch()
            except RedisDataLostError as exc:  # cluster copies disagree: a node lost data
                log.critical("%s Exiting (code %d).", exc, EXIT_REDIS_LOST)
                logging.shutdown()
                os._exit(EXIT_REDIS_LOST)

        if cfg.portrait_engine == "direct":
            @app.task
            async def portraits() -> None:
                await run_direct_consumer(cfg, topics.user_events, portrait_batch)
        elif cfg.portrait_engine == "faust":
            @app.agent(self._topic(topics.user_events), name=f"{cfg.app_id}.portraits")
            async def portraits(stream: Any) -> None:
                async for events in stream.take_events(take, within=within):
                    await portrait_batch(self._messages(events))
        else:
            raise ValueError(f"portrait_engine must be 'faust' or 'direct', "
                             f"not {cfg.portrait_engine!r}")

        @app.agent(self._topic(topics.videos), name=f"{cfg.app_id}.videos")
        async def videos(stream: Any) -> None:
            async for events in stream.take_events(64, within=within):
                msgs = self._messages(events)
                metrics.messages.labels(topics.videos).inc(len(msgs))
                r = await self._finish("videos", self.videos.handle, msgs)
                metrics.videos.labels("ok").inc(r.analyzed)
                metrics.videos.labels("failed").inc(r.failed)
                metrics.videos_refused.inc(r.refused)
                metrics.video_stuck.set(r.stuck)
                metrics.dead_letters.labels("videos").inc(r.dead_letters)

        @app.agent(self._topic(topics.candidates), name=f"{cfg.app_id}.scorer")
        async def scorer(stream: Any) -> None:
            async for events in stream.take_events(max(take // 10, 16), within=within):
                msgs = self._messages(events)
                metrics.messages.labels(topics.candidates).inc(len(msgs))
                r = await self._finish("scorer", self.scoring.handle, msgs)
                metrics.dead_letters.labels("scorer").inc(r.dead_letters)
                done = time.time() * 1000
                scored(r)
                self.latency.add("scorer", [done - m.timestamp_ms for m in msgs])

        @app.timer(interval=max(cfg.metrics_window_s / 2, 0.5))
        async def monitor() -> None:
            for record in await self.monitor.tick():
                metrics.quick_swipe_rate.set(record["quick_swipe_rate"])
                metrics.dislike_rate.set(record["dislike_rate"])
                for reason, v in record["by_reason"].items():
                    metrics.reason_rate.labels(reason, "quick_swipe").set(v["quick_swipe_rate"])
                    metrics.reason_rate.labels(reason, "dislike").set(v["dislike_rate"])

        @app.timer(interval=cfg.model_poll_s)
        async def reload_model() -> None:
            reload = getattr(self.runtime, "maybe_reload", None)
            if reload is None:
                return
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, reload):
                log.warning("scorer model reloaded: %s", self.runtime.version)
                metrics.model_info.clear()
                metrics.model_info.labels(self.runtime.version,
                                          ",".join(self.runtime.providers)).set(1)

        @app.page("/metrics")
        async def prometheus(web: Any, request: Any) -> Any:
            # aiohttp refuses a charset inside content_type, so drop it from the header.
            return web.bytes(generate_latest(metrics.registry),
                             content_type=CONTENT_TYPE_LATEST.split(";")[0])

        hosts = allowed_hosts(cfg)

        @app.page("/enf/status")
        async def status(web: Any, request: Any) -> Any:
            if not host_allowed(request.headers.get("Host", ""), hosts):
                return web.json({"error": "host not allowed"}, status=403)
            return web.json(redact({"model": {"version": self.runtime.version,
                                              "providers": list(self.runtime.providers)},
                                    "broker": cfg.kafka_url, "broker_kind": cfg.broker_kind,
                                    "redis": cfg.redis_url, "last_window": self.monitor.latest,
                                    "latency_ms": self.latency.summary()}))

        worker = self

        class ResetLatency(faust.web.View):
            """State-changing: POST only (GET is 405), with ENF_ADMIN_TOKEN."""

            async def post(self, request: Any) -> Any:
                if not host_allowed(request.headers.get("Host", ""), hosts):
                    return self.json({"error": "host not allowed"}, status=403)
                if not token_ok(request.headers.get("Authorization", ""), cfg.admin_token):
                    return self.json({"error": "needs Authorization: Bearer $ENF_ADMIN_TOKEN"},
                                     status=403)
                worker.latency.reset()
                return self.json({"ok": True})

        reset_latency = app.page("/enf/reset-latency")(ResetLatency)

        self._agents = (portraits, videos, scorer, monitor, reload_model, prometheus, status,
                        reset_latency)
