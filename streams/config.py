"""Worker configuration: one frozen dataclass, every tunable with a default.

Values come from ``ENF_*`` environment variables (see the README's table) or
from CLI flags, never from module-level globals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from enf_core.limits import TS_FLOOR_MS, InputLimits
from streams.credentials import KafkaSecurity, redis_url_with
from streams.media import MediaPolicy

__all__ = ["TopicNames", "WorkerConfig"]


@dataclass(frozen=True)
class TopicNames:
    """Kafka topic names. User events and candidates are keyed by user_id, so all
    of a user's events land in one partition in order; videos by video_id."""

    prefix: str = "enf"

    @property
    def user_events(self) -> str:
        return f"{self.prefix}.user-events"

    @property
    def videos(self) -> str:
        return f"{self.prefix}.videos"

    @property
    def candidates(self) -> str:
        return f"{self.prefix}.candidates"

    @property
    def suppressions(self) -> str:
        return f"{self.prefix}.suppressions"

    @property
    def explanations(self) -> str:
        return f"{self.prefix}.explanations"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}.metrics"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    def inputs(self) -> tuple[str, ...]:
        return (self.user_events, self.videos, self.candidates)

    @property
    def video_requests(self) -> str:
        """Videos the scorer met without an analysis: the catalogue re-sends them."""
        return f"{self.prefix}.video-requests"

    def outputs(self) -> tuple[str, ...]:
        return (self.suppressions, self.explanations, self.metrics, self.dead_letters,
                self.video_requests)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; ``from_env`` reads ``ENF_<FIELD>`` overrides."""

    kafka_url: str = "kafka://127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    app_id: str = "enf-stream"
    topic_prefix: str = "enf"
    partitions: int = 4
    # Faust's web server (and so its Prometheus endpoint) binds loopback by default.
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_enabled: bool = True
    # Host header values /enf/* answer besides loopback names and web_host (comma list).
    web_allowed_hosts: str = ""
    # Bearer token for state-changing routes (POST /enf/reset-latency); empty: refused.
    admin_token: str = ""
    model_dir: str = ""  # empty: the default model shipped in models/default
    model_poll_s: float = 5.0  # how often the scorer looks for a new model version
    quick_swipe_ratio: float = 0.3
    # "direct" (default): the portrait path's aiokafka consumer runs as a task of
    # the Faust app (started, stopped and supervised with it; the same handler,
    # producer, metrics and exactly-once guarantees). "faust": a Faust agent
    # consumes user events. Faust's per-message machinery (conductor, Event
    # objects, acks, the consumer thread) costs more than the whole portrait
    # update and caps an agent at ~3-6k single-event messages/s per process here;
    # the direct loop hands whole fetches to the handler (README: Performance).
    portrait_engine: str = "direct"
    batch_max: int = 1000  # stream.take batch size
    batch_within_s: float = 0.01  # stream.take max wait: also the floor of the latency
    redis_retry_max_s: float = 30.0  # back-off cap while Redis is unavailable
    redis_timeout_s: float = 10.0  # a Redis reply slower than this is a failure (retried)
    applied_ids_per_user: int = 2000  # event ids kept per user for redelivery checks
    # Users (and event ids) per Redis Lua call: a huge batch is split so that no
    # call blocks Redis for long; a timed-out call is retried smaller.
    max_users_per_call: int = 500
    max_ids_per_call: int = 20_000
    portrait_ttl_s: int = 0  # 0: portraits never expire
    metrics_window_s: float = 10.0
    video_cache_size: int = 200_000
    # Video analysis runs in this many processes (0: a thread in the worker).
    video_processes: int = 1  # scorer's in-process cache of video vectors
    explanations_per_request: int = 3  # explanation records per candidates request
    # A request on the candidates topic waits at most this long for the portrait
    # path to catch up with its user-events partition, then is scored stale.
    portrait_wait_ms: int = 50
    # Who writes explanation records: "student" (the model version's explanation
    # student, files.explainer; the template when the version has none) or
    # "template" (enf_core.reason.explain); "policy": the student's records as for
    # "student", plus one record per explanation written by the S-GRPO policy at
    # policy_dir on a side path that never blocks suppression
    # (streams/policy_explanations.py; needs torch and the training extra).
    explainer: str = "student"
    policy_dir: str = ""  # a saved policy directory (enf train policy: OUT/<arm>/policy)
    policy_queue_size: int = 64  # jobs waiting for the policy; more are dropped and counted
    policy_batch_size: int = 8  # prompts per policy generate call
    policy_max_new_tokens: int = 128  # an answer of the grammar fits in ~100 tiny tokens
    policy_device: str = "cpu"  # cpu | cuda
    policy_threads: int = 1  # torch threads of the policy (the scorer keeps the rest)
    # "record": one suppression message per suppressed video; "page": one message
    # per request listing them (items [{video_id, p_negative, reason}]).
    suppression_format: str = "record"
    consumer_max_fetch_size: int = 4 * 1024 * 1024
    # 0: automatic, 20 ms on both brokers. Tansu holds multi-partition fetches for
    # the full wait; on Apache Kafka Faust's 1500 ms held drained partitions behind
    # a fetch for quiet ones (aiokafka: one fetch per broker at a time), the
    # scorer's 1.3-1.8 s latency mode on a busy machine (streams.app).
    fetch_max_wait_ms: int = 0
    # Consumer group session: a dead worker's partitions move to others after it.
    session_timeout_s: float = 30.0
    broker_kind: str = "kafka"  # "kafka" (Apache Kafka) or "tansu": settings differ
    # Kafka credentials when ENF_KAFKA_URL does not carry them (streams.credentials).
    kafka_security_protocol: str = ""  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_sasl_mechanism: str = ""  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    # Redis AUTH / ACL user and TLS files when ENF_REDIS_URL does not carry them
    # (rediss:// turns TLS on).
    redis_username: str = ""
    redis_password: str = field(default="", repr=False)
    redis_ssl_ca_certs: str = ""
    redis_ssl_certfile: str = ""
    redis_ssl_keyfile: str = ""
    # Bytes of the original key + value a dead letter keeps (the rest is cut, with
    # an ``enf.truncated`` header); below the producer's 1,000,000-byte request limit.
    dead_letter_max_bytes: int = 256 * 1024
    # Input limits (enf_core.limits.InputLimits, where each is documented).
    max_message_bytes: int = 1 << 20
    max_page_events: int = 10_000
    max_candidates: int = 2000
    max_id_len: int = 128
    id_charset: str = "printable"
    min_ts_ms: int = TS_FLOOR_MS
    max_future_skew_ms: int = 5 * 60_000
    max_past_skew_ms: int = 0
    max_play_ratio: float = 10.0
    check_keys: bool = True
    # What a video record's uri may open (streams.media): ":"-separated directories;
    # empty: no file at all. http(s) only when enabled, to the listed hosts.
    media_root: str = ""
    media_http: bool = False
    media_http_hosts: str = ""  # comma-separated host or host:port
    media_connect_timeout_s: float = 5.0
    media_read_timeout_s: float = 10.0
    media_max_bytes: int = 200 * 1024 * 1024
    video_timeout_s: float = 60.0  # per-video analysis; a stalled one is recorded as failed
    # Thread-mode analyses (an injected analyzer, the rebuild) that timed out and
    # still hold their threads, at most; past it videos are stored failed unanalysed.
    video_max_stuck_threads: int = 4
    # A candidate video without an analysis is asked for on enf.video-requests at most
    # once per this many seconds per worker (0: every time).
    video_request_interval_s: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)

    def kafka_security(self) -> KafkaSecurity:
        """Kafka credentials: the URL's, then the ``kafka_*`` settings."""
        return KafkaSecurity.from_url(
            self.kafka_url, security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism, sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password, ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile, ssl_keyfile=self.kafka_ssl_keyfile)

    def redis_connection_url(self) -> str:
        """``redis_url`` with the ``redis_*`` credentials folded in."""
        return redis_url_with(self.redis_url, username=self.redis_username,
                              password=self.redis_password, ssl_ca_certs=self.redis_ssl_ca_certs,
                              ssl_certfile=self.redis_ssl_certfile,
                              ssl_keyfile=self.redis_ssl_keyfile)

    def media_policy(self) -> MediaPolicy:
        """What the Video Agent may open, from the ``media_*`` fields."""
        return MediaPolicy.from_settings(
            self.media_root, allow_http=self.media_http, http_hosts=self.media_http_hosts,
            connect_timeout_s=self.media_connect_timeout_s,
            read_timeout_s=self.media_read_timeout_s, max_bytes=self.media_max_bytes)

    def input_limits(self) -> InputLimits:
        """The handlers' input limits, from this config's fields of the same names."""
        return InputLimits(**{f.name: getattr(self, f.name) for f in fields(InputLimits)})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> WorkerConfig:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"ENF_{f.name.upper()}")
            if raw is None:
                continue
            default = f.default
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)
