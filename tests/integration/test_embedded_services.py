"""The embedded services for real: both brokers carry data, Redis answers, nothing leaks.

The session ``broker`` fixture gives one Apache Kafka and one Tansu; the
start/stop tests start their own instances because they kill them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.config import TopicNames
from streams.services import (
    EmbeddedServices,
    RedisConfig,
    ServiceError,
    TansuConfig,
    create_enf_topics,
    create_topics,
    start_redis,
    start_tansu,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


async def _roundtrip(bootstrap: str, topic: str, n: int) -> dict[int, list[tuple[bytes, bytes]]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=f"k{i % 37}".encode(), value=str(i).encode())
                   for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    try:
        deadline = time.monotonic() + 60
        got = 0
        while got < n and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                by_partition[tp.partition].extend((r.key, r.value) for r in records)
                got += len(records)
    finally:
        await consumer.stop()
    return by_partition


def test_broker_carries_1000_messages_on_4_partitions(broker: Any, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.roundtrip"
    assert create_topics(broker.kafka_url, [topic], partitions=4) == [topic]
    by_partition = asyncio.run(_roundtrip(broker.bootstrap, topic, 1000))
    values = sorted(int(v) for records in by_partition.values() for _, v in records)
    assert values == list(range(1000))
    assert sorted(by_partition) == [0, 1, 2, 3]
    per_key: dict[bytes, list[int]] = defaultdict(list)
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    for partition, records in by_partition.items():
        for key, value in records:
            per_key[key].append(int(value))
            partition_of[key].add(partition)
    assert all(len(parts) == 1 for parts in partition_of.values())  # key -> one partition
    assert all(vals == sorted(vals) for vals in per_key.values())  # in order per key


def test_create_enf_topics_is_idempotent(broker: Any, topic_prefix: str) -> None:
    topics = TopicNames(topic_prefix)
    created = create_enf_topics(broker.kafka_url, topics, partitions=4)
    assert sorted(created) == sorted([*topics.inputs(), *topics.outputs()])
    assert create_enf_topics(broker.kafka_url, topics, partitions=4) == []
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_topics(list(topics.inputs()))
    finally:
        admin.close()
    assert {len(t["partitions"]) for t in described} == {4}


def test_redis_answers(redis_service: Any, redis_url: str, topic_prefix: str) -> None:
    assert redis_url.startswith("redis://:") and "@127.0.0.1:" in redis_url
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    client.set(f"{topic_prefix}:k", b"v")
    assert client.get(f"{topic_prefix}:k") == b"v"
    assert client.info("persistence")["aof_enabled"] == 0  # no persistence
    # A random password per run, and not on the (world-readable) command line.
    password = redis_url.split("@")[0].rsplit(":", 1)[1]
    cmdline = Path(f"/proc/{redis_service.pid}/cmdline").read_bytes()
    assert len(password) >= 24 and password.encode() not in cmdline
    anonymous = redis.Redis.from_url(redis_url.replace(f":{password}@", ""))
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    # CONFIG SET dir + SAVE wrote files anywhere; DEBUG and FLUSHALL are gone too.
    for command in (("CONFIG", "SET", "dir", "/tmp"), ("DEBUG", "SLEEP", "0"), ("FLUSHALL",),
                    ("FLUSHDB",)):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(*command)
    assert client.get(f"{topic_prefix}:k") == b"v"


@pytest.mark.parametrize("kind", ["tansu", "kafka"])
def test_stop_leaves_no_process_or_temp_dir(kind: str) -> None:
    with EmbeddedServices(broker=kind, redis_url=None) as services:
        assert services.kafka_url.startswith("kafka://127.0.0.1:")
        described = services.describe()
        assert described["broker_kind"] == kind
        assert described["bootstrap"] == services.bootstrap
        pids = [s.pid for s in services.services]
        dirs = [s.temp_dir for s in services.services]
        assert len(pids) == 2 and all(d is not None and d.is_dir() for d in dirs)
        assert redis.Redis.from_url(services.redis_url).ping()
    assert all(_gone(pid) for pid in pids)
    assert not any(d is not None and d.exists() for d in dirs)


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL the parent (no atexit runs): PR_SET_PDEATHSIG must take the children."""
    script = textwrap.dedent(f"""
        import json, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from streams.services import start_redis, start_tansu
        t = start_tansu(run_dir=__import__("pathlib").Path({str(tmp_path)!r}))
        r = start_redis(run_dir=__import__("pathlib").Path({str(tmp_path)!r}))
        print(json.dumps([t.pid, r.pid]), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        assert all(not _gone(pid, 0.1) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert all(_gone(pid) for pid in pids)
    # The next start sweeps the temp dirs the killed parent could not remove.
    start_redis(run_dir=tmp_path).stop()
    assert list(tmp_path.glob("enf-svc-*")) == []


def test_failed_start_reports_the_log_tail() -> None:
    with pytest.raises(ServiceError, match="UnsupportedStorageUrl"):
        start_tansu(TansuConfig(storage_engine="bogus://nowhere", start_timeout_s=10))


def test_taken_port_is_an_error_not_someone_elses_service() -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        with pytest.raises(ServiceError, match=r"(?i)address already in use|not ours|not ready"):
            start_redis(RedisConfig(port=port, start_timeout_s=5))
    finally:
        squatter.close()


def _enf(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_enf_up_and_down(tmp_path: Path) -> None:
    env = {**os.environ, "ENF_CACHE": str(tmp_path), "ENF_TOPIC_PREFIX": "updown"}
    env.pop("ENF_REDIS_URL", None)
    first = _enf(["up", "--broker", "tansu"], env)
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout.strip().splitlines()[-1])
    pids = list(info["pids"].values())
    try:
        assert info["kafka_url"].startswith("kafka://127.0.0.1:")
        assert (tmp_path / "run" / "services.json").is_file()
        # Detached: alive after `enf up` exited, and usable.
        assert redis.Redis.from_url(info["redis_url"]).ping()
        again = _enf(["up"], env)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.strip().splitlines()[-1])["pids"] == info["pids"]
        other = _enf(["up", "--broker", "kafka"], env)
        assert other.returncode != 0 and "enf down" in other.stderr
    finally:
        down = _enf(["down"], env)
    assert down.returncode == 0, down.stderr
    assert len(json.loads(down.stdout.strip().splitlines()[-1])["stopped"]) == 2
    assert all(_gone(pid) for pid in pids)
    assert not (tmp_path / "run" / "services.json").exists()
    assert list((tmp_path / "run").glob("enf-svc-*")) == []
    assert json.loads(_enf(["down"], env).stdout.strip().splitlines()[-1]) == {"stopped": []}
