"""Hot reload and rollback of model versions under a running worker.

A worker serves version A; mid-stream B is published into its model directory
and picked up by ``maybe_reload``; then ``enf model rollback`` makes A current
again. No restart, nothing lost: every candidates request is answered (by the
version that was current when it was sent), and every portrait equals one
delivery of the events.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import torch

from models.export import export_scorer
from models.manifest import read_manifest
from models.runtime import DEFAULT_MODEL_DIR
from models.scorer import ScorerConfig, ScorerNet
from streams.config import TopicNames
from tests.integration.test_worker import (
    _analyses,
    _events_counted,
    _n_valid,
    _reference,
    _stored,
    _user_events,
    _videos,
)
from tests.integration.workers import WorkerProcess, consume, event, produce, wait_until

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future
ROOT = Path(__file__).resolve().parents[2]


def _publish_b(model_dir: Path) -> str:
    """Version B: A's weights with the last bias moved (different scores, same layout)."""
    m = read_manifest(model_dir)
    net = ScorerNet(ScorerConfig(**m["scorer_config"]))
    net.load_state_dict(torch.load(model_dir / m["files"]["torch"]["path"], weights_only=True))
    with torch.no_grad():
        list(net.parameters())[-1].add_(0.3)
    b = export_scorer(net, model_dir, name="enf-b", extra={"threshold": m.get("threshold")},
                      extra_files={k: m["files"][k]["path"] for k in ("video_head",
                                                                     "portrait_step")
                                   if k in m["files"]})
    return str(b["version"])


class _Feed(threading.Thread):
    """Sends candidates requests and user events in small steps until stopped,
    tagging each request with the phase it was sent in."""

    def __init__(self, bootstrap: str, topics: TopicNames, events: list[tuple[str, bytes]]):
        super().__init__(daemon=True)
        self.bootstrap, self.topics, self.events = bootstrap, topics, events
        self.phase = 0
        self.sent: dict[str, int] = {}  # request_id -> phase
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            k = 0
            while not self.stop.is_set():
                phase = self.phase
                chunk = self.events[k * 20:(k + 1) * 20]
                reqs = []
                for j in range(3):
                    rid = f"req-{k}-{j}"
                    uid = f"u{(k * 3 + j) % 30}"
                    reqs.append((self.topics.candidates, uid.encode(), event(
                        "candidates", event_id=f"c-{rid}", request_id=rid, user_id=uid,
                        video_ids=[f"v{i}" for i in range(5)], ts=T0 + 20_000 + k)))
                produce(self.bootstrap, [(self.topics.user_events, key.encode(), v)
                                         for key, v in chunk] + reqs)
                for _, _, raw in reqs:
                    self.sent[orjson.loads(raw)["request_id"]] = phase
                k += 1
                time.sleep(0.05)
            rest = self.events[k * 20:]
            if rest:
                produce(self.bootstrap, [(self.topics.user_events, key.encode(), v)
                                         for key, v in rest])
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def test_worker_picks_up_b_then_rolls_back_to_a(broker: Any, redis_url: str, topic_prefix: str,
                                                tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    a = read_manifest(model_dir)["version"]
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(redis_url)
    env = {"ENF_MODEL_DIR": str(model_dir), "ENF_MODEL_POLL_S": "0.2",
           "ENF_SUPPRESS_THRESHOLD": "0.0", "ENF_SUPPRESS_MAX_PER_REQUEST": "-1",
           "ENF_SUPPRESS_MAX_FRACTION": "1", "ENF_SUPPRESS_COLD_WATCHES": "0",
           "ENF_SUPPRESSION_FORMAT": "page",
           "ENF_EXPLANATIONS_PER_REQUEST": "1"}
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                           broker_kind=broker.kind, prefix=topic_prefix, env=env,
                           log_path=tmp_path / "worker.log")
    feed: _Feed | None = None
    try:
        produce(broker.bootstrap, [(topics.videos, k.encode(), v) for k, v in _videos(5)])
        wait_until(lambda: len(_analyses(r, topic_prefix)) == 5, timeout_s=120,
                   what="5 video analyses", worker=worker)
        analyses = _analyses(r, topic_prefix)
        assert worker.status()["model"]["version"] == a
        user_events = _user_events(30, 40, 5, seed=5)
        feed = _Feed(broker.bootstrap, topics, user_events)
        feed.start()
        wait_until(lambda: len(feed.sent) >= 6, timeout_s=30, what="first requests")

        b = _publish_b(model_dir)
        wait_until(lambda: worker.status().get("model", {}).get("version") == b, timeout_s=30,
                   what="worker on version B", worker=worker, interval_s=0.05)
        feed.phase = 1
        wait_until(lambda: sum(p == 1 for p in feed.sent.values()) >= 6, timeout_s=30,
                   what="requests sent under B")

        out = subprocess.run([sys.executable, "-m", "streams.cli", "model", "rollback",
                              "--model", str(model_dir), "--json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.splitlines()[-1])["to"] == a
        wait_until(lambda: worker.status().get("model", {}).get("version") == a, timeout_s=30,
                   what="worker back on version A", worker=worker, interval_s=0.05)
        feed.phase = 2
        wait_until(lambda: sum(p == 2 for p in feed.sent.values()) >= 6, timeout_s=30,
                   what="requests sent after the rollback")
        feed.stop.set()
        feed.join(timeout=60)
        assert feed.error is None, feed.error
        sent = dict(feed.sent)

        pages = consume(broker.bootstrap, topics.suppressions, len(sent), timeout_s=60)
        answered = [orjson.loads(m.value) for m in pages]
        assert sorted(p["request_id"] for p in answered) == sorted(sent)  # each exactly once
        # Sent before B was live: A, or B if still queued at the switch; sent while B was
        # live: B, or A if still queued at the rollback; sent after the rollback: A.
        allowed = {0: {a, b}, 1: {a, b}, 2: {a}}
        for p in answered:
            assert p["type"] == "suppression_page" and len(p["items"]) == 5
            assert p["model_version"] in allowed[sent[p["request_id"]]], p["request_id"]
        assert any(p["model_version"] == b for p in answered)
        # Per output partition, in offset order, versions only ever go A -> B -> A.
        for part in {m.partition for m in pages}:
            seq = [orjson.loads(m.value)["model_version"]
                   for m in sorted((m for m in pages if m.partition == part),
                                   key=lambda m: m.offset)]
            runs = [v for i, v in enumerate(seq) if i == 0 or seq[i - 1] != v]
            assert runs in ([a], [b], [a, b], [b, a], [a, b, a]), runs

        n_valid = _n_valid(user_events)
        wait_until(lambda: _events_counted(r, topic_prefix) >= n_valid, timeout_s=60,
                   what="all user events applied", worker=worker)
        assert _stored(r, topic_prefix) == _reference(user_events, analyses)
        assert _events_counted(r, topic_prefix) == n_valid
        assert worker.alive()
    finally:
        if feed is not None:
            feed.stop.set()
        worker.stop()
