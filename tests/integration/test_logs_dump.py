"""``enf logs dump`` after a real worker served a replayed simulation (Kafka and Tansu).

The dump is the simulation again (row for row: the schema's validation passes
and every column equals the original), and every candidate of every request
is a decision row with what the worker decided and what the user then did.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from enf_core.data.replay_plan import ReplayConfig, plan_replay
from enf_core.data.schema import read_dataset
from enf_core.data.simulate import SimulationConfig, simulate
from streams.config import TopicNames
from streams.media import roots_for
from streams.replay import ReplayOptions, replay
from tests.integration.test_worker import _analyses
from tests.integration.workers import WorkerProcess, consume, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
COLS = ("user_id", "video_id", "ts", "play_ms", "duration_ms", "explicit_negative",
        "reason_category", "reason_text", "split", "request_id", "position")


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dump-sim")
    simulate(out, SimulationConfig(users=20, videos=50, seed=4))
    return out


def test_dump_after_a_worker_served_the_feed(broker: Any, redis_url: str, topic_prefix: str,
                                             tmp_path: Path, tiny_sim: Path) -> None:
    topics = TopicNames(topic_prefix)
    env = {"ENF_SUPPRESS_THRESHOLD": "0.0", "ENF_SUPPRESS_MAX_PER_REQUEST": "-1",
           "ENF_SUPPRESS_MAX_FRACTION": "1", "ENF_SUPPRESS_COLD_WATCHES": "0",
           "ENF_SUPPRESSION_FORMAT": "page", "ENF_EXPLANATIONS_PER_REQUEST": "1",
           # the simulation's frames and clips are the only media the worker may open
           "ENF_MEDIA_ROOT": roots_for(read_dataset(tiny_sim).video_uris())}
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                           broker_kind=broker.kind, prefix=topic_prefix, env=env,
                           log_path=tmp_path / "worker.log")
    r = redis.Redis.from_url(redis_url)
    try:
        worker.wait_ready()
        plan = plan_replay(read_dataset(tiny_sim), ReplayConfig(extra_candidates=3))
        options = ReplayOptions(kafka_url=broker.kafka_url, topic_prefix=topic_prefix)
        # the catalogue first, as the demo does: unanalysed videos are never suppressed
        asyncio.run(replay([m for m in plan.messages if m.stream == "videos"], options))
        wait_until(lambda: len(_analyses(r, topic_prefix)) == 50, timeout_s=120,
                   what="video analyses", worker=worker)
        asyncio.run(replay([m for m in plan.messages if m.stream != "videos"], options))
        n_requests = plan.counts["candidates"]
        pages = consume(broker.bootstrap, topics.suppressions, n_requests, timeout_s=120)
        assert len(pages) >= n_requests
        consume(broker.bootstrap, topics.explanations, n_requests, timeout_s=60)
    finally:
        worker.stop()

    out = tmp_path / "dump"
    res = subprocess.run([sys.executable, "-m", "streams.cli", "logs", "dump", "--kafka-url",
                          broker.kafka_url, "--topic-prefix", topic_prefix, "--out", str(out),
                          "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])

    original = read_dataset(tiny_sim)
    dumped = read_dataset(out)  # validates every table
    assert report["interactions"] == dumped.interactions.num_rows == original.interactions.num_rows
    for c in COLS:
        assert dumped.interactions.column(c).to_pylist() == original.interactions.column(
            c).to_pylist(), c
    np.testing.assert_allclose(
        np.array(dumped.interactions.column("watch_ratio").to_pylist(), float),
        np.array(original.interactions.column("watch_ratio").to_pylist(), float))
    assert dumped.frames is not None and dumped.frames.shape[0] == 50

    import pyarrow.parquet as pq

    d = pq.read_table(out / "decisions.parquet").to_pylist()
    assert report["decisions"] == len(d) == sum(
        1 for _ in d) and len({x["request_id"] for x in d}) == n_requests
    # every candidate was flagged at threshold 0 (unanalysed videos are never suppressed)
    assert sum(x["suppressed"] for x in d) == report["suppressed"] > 0.9 * len(d)
    assert all(x["model_version"] for x in d if x["suppressed"])
    assert report["explained"] == n_requests
    assert {x["explainer"] for x in d if x["explanation"]} <= {"student", "template"}
    # outcomes: a shown candidate's watch ratio and dislike are its interaction's
    first: dict[tuple, dict] = {}
    for row in dumped.interactions.to_pylist():
        first.setdefault((row["user_id"], row["video_id"], row["request_id"]), row)
    shown = [x for x in d if x["shown"]]
    assert len(shown) == len({(k[2], k[1]) for k in first if k[2] is not None})
    for x in shown:
        i = first[(x["user_id"], x["video_id"], x["request_id"])]
        assert (x["watch_ratio"], x["disliked"]) == (i["watch_ratio"], i["explicit_negative"])
    assert report["suppressed_disliked"] == sum(x["disliked"] for x in d if x["suppressed"])
