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
    assert len(set(names)) == len(names) == 7


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
