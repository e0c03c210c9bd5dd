"""The worker's configuration and its run-time footprint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.config import TopicNames, WorkerConfig

ROOT = Path(__file__).resolve().parents[2]


def test_config_reads_typed_env_overrides() -> None:
    cfg = WorkerConfig.from_env({"ENF_PARTITIONS": "8", "ENF_BATCH_WITHIN_S": "0.7",
                                 "ENF_WEB_ENABLED": "false", "ENF_TOPIC_PREFIX": "feed",
                                 "ENF_PORTRAIT_ENGINE": "direct"}, web_port=7000)
    assert cfg.partitions == 8 and cfg.batch_within_s == 0.7
    assert cfg.web_enabled is False and cfg.web_port == 7000
    assert cfg.topics.user_events == "feed.user-events"
    assert cfg.web_host == "127.0.0.1"


def test_topics_are_distinct() -> None:
    t = TopicNames("enf")
    names = [*t.inputs(), *t.outputs()]
    assert len(set(names)) == len(names) == 8


def test_worker_builds_without_torch_or_transformers() -> None:
    """The worker runs ONNX graphs only; the training stack stays out of it."""
    code = ("import sys\n"
            "from streams.config import WorkerConfig\n"
            "from streams.app import EnfWorker\n"
            "w = EnfWorker(WorkerConfig())\n"
            "assert w.app.conf.web_bind == '127.0.0.1', w.app.conf.web_bind\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_web_pages_check_the_host_and_the_admin_token() -> None:
    from streams.app import allowed_hosts, host_allowed, token_ok

    hosts = allowed_hosts(WorkerConfig(web_allowed_hosts="worker-3.internal, ops"))
    for ok in ("127.0.0.1:6066", "localhost", "[::1]:6066", "worker-3.internal:6066", "OPS"):
        assert host_allowed(ok, hosts), ok
    for bad in ("evil.example", "evil.example:6066", "", "127.0.0.1.evil.example",
                "[::2]:1"):
        assert not host_allowed(bad, hosts), bad
    assert token_ok("Bearer s3cret", "s3cret") and token_ok("bearer  s3cret", "s3cret")
    assert not token_ok("Bearer wrong", "s3cret") and not token_ok("s3cret", "s3cret")
    assert not token_ok("Bearer ", "")  # no token configured: the route is closed


def test_input_limits_and_media_policy_come_from_env() -> None:
    cfg = WorkerConfig.from_env({"ENF_MAX_CANDIDATES": "50", "ENF_CHECK_KEYS": "0",
                                 "ENF_MAX_FUTURE_SKEW_MS": "1000",
                                 "ENF_MEDIA_ROOT": "/srv/a:/srv/b", "ENF_MEDIA_HTTP": "1",
                                 "ENF_MEDIA_HTTP_HOSTS": "cdn"})
    limits = cfg.input_limits()
    assert limits.max_candidates == 50 and limits.check_keys is False
    assert limits.max_future_skew_ms == 1000
    policy = cfg.media_policy()
    assert policy.roots == ("/srv/a", "/srv/b") and policy.allow_http
    assert policy.http_hosts == ("cdn",)


def test_gc_pauses_are_timed_into_the_metrics() -> None:
    import gc

    from streams.metrics import WorkerMetrics, watch_gc

    m = WorkerMetrics()
    hook = watch_gc(m)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(hook)
    count = m.registry.get_sample_value("enf_gc_pause_seconds_count", {"generation": "2"})
    assert count == 1
    assert m.registry.get_sample_value("enf_gc_pause_max_seconds") > 0  # type: ignore[operator]


def test_the_default_engine_is_the_direct_loop_with_a_short_fetch_wait() -> None:
    from streams.app import DEFAULT_FETCH_MAX_WAIT_MS

    cfg = WorkerConfig.from_env({})
    assert cfg.portrait_engine == "direct" and cfg.fetch_max_wait_ms == 0
    assert DEFAULT_FETCH_MAX_WAIT_MS <= 50  # a long wait is the scorer's latency mode
