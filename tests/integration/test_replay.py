"""``enf replay`` against real brokers: the topics receive exactly the data's events."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner

from enf_core.data.replay_plan import ids_digest
from enf_core.data.schema import Dataset, read_dataset
from enf_core.data.simulate import SimulationConfig, simulate
from enf_core.events import decode_events
from streams.cli import main
from streams.config import TopicNames

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    out = tmp_path_factory.mktemp("replay-data")
    simulate(out, SimulationConfig(users=40, videos=120, seed=11))
    return read_dataset(out)


def _expected(ds: Dataset) -> dict[str, list[str]]:
    rows = ds.interactions.to_pylist()
    pages: dict[str, int] = defaultdict(int)
    for r in rows:
        pages[r["request_id"]] += 1
    return {
        "user": [f"u:{u}" for u in sorted({r["user_id"] for r in rows})],
        "video": [f"v:{v}" for v in ds.videos.column("video_id").to_pylist()],
        "candidates": [f"c:{req}" for req in pages],
        "impression": [f"i:{req}:{k}" for req, n in pages.items() for k in range(n)],
        "watch": [f"w:{r['user_id']}:{r['video_id']}:{r['ts']}" for r in rows],
        "feedback": [f"f:{r['user_id']}:{r['video_id']}:{r['ts']}" for r in rows
                     if r["explicit_negative"]],
    }


async def _consume(bootstrap: str, topics: TopicNames, n: int, timeout_s: float = 60.0):
    consumer = AIOKafkaConsumer(topics.videos, topics.user_events, topics.candidates,
                                bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    events = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(events) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for rec in records:
                    for e in decode_events(rec.value):
                        events.append((tp.topic, tp.partition, rec.key.decode(), e))
        await asyncio.sleep(0.5)  # anything beyond n would be a duplicate: look for it
        extra = await consumer.getmany(timeout_ms=500)
        for tp, records in extra.items():
            for rec in records:
                for e in decode_events(rec.value):
                    events.append((tp.topic, tp.partition, rec.key.decode(), e))
    finally:
        await consumer.stop()
    return events


@pytest.mark.parametrize("page_events", [1, 50])
def test_replay_produces_exactly_the_data(broker, topic_prefix: str, dataset: Dataset,
                                          page_events: int) -> None:
    expected = _expected(dataset)
    all_ids = [i for ids in expected.values() for i in ids]
    result = CliRunner().invoke(main, [
        "replay", str(dataset.root), "--kafka-url", broker.kafka_url,
        "--topic-prefix", topic_prefix, "--page-events", str(page_events)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events"] == len(all_ids)
    assert summary["by_type"] == {k: len(v) for k, v in expected.items()}
    assert summary["ids_sha256"] == ids_digest(all_ids)

    topics = TopicNames(topic_prefix)
    events = asyncio.run(_consume(broker.bootstrap, topics, len(all_ids)))
    got = [e.event_id for *_, e in events]
    assert len(got) == len(all_ids)
    assert sorted(got) == sorted(all_ids)
    # keyed as streams/config.py says: users' events on one partition, in time order
    partitions: dict[str, set[int]] = defaultdict(set)
    last_ts: dict[str, int] = {}
    for topic, partition, key, e in events:
        if topic == topics.videos:
            assert key == e.video_id
            continue
        assert key == e.user_id
        if topic == topics.user_events:
            partitions[e.user_id].add(partition)
            assert e.ts >= last_ts.get(key, 0)
            last_ts[key] = e.ts
    assert all(len(p) == 1 for p in partitions.values())


def test_replay_rate_and_limit(broker, topic_prefix: str, dataset: Dataset) -> None:
    result = CliRunner().invoke(main, [
        "replay", str(dataset.root), "--kafka-url", broker.kafka_url,
        "--topic-prefix", topic_prefix, "--limit", "60", "--rate", "400",
        "--extra-candidates", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["by_type"]["watch"] == 60 and summary["by_type"]["impression"] == 60
    assert summary["wall_s"] >= summary["events"] / 400 * 0.8
    events = asyncio.run(_consume(broker.bootstrap, TopicNames(topic_prefix),
                                  summary["events"]))
    assert len(events) == summary["events"]


def test_replay_reports_a_bad_dataset(broker, topic_prefix: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(tmp_path), "--kafka-url", broker.kafka_url,
                                       "--topic-prefix", topic_prefix])
    assert result.exit_code == 1
    assert "schema.json" in result.output
