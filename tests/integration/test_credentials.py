"""Credentials by URL and settings: a worker that reaches Kafka through a SASL/PLAIN
listener (Apache Kafka; Tansu serves no SASL, so there it uses plaintext) and Redis
through an ACL user with a password, processes events, and no credential shows up
in its log or on /enf/status."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.config import TopicNames
from streams.credentials import KafkaSecurity
from tests.integration.workers import WorkerProcess, event, produce, secured_round_trip, wait_until

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


async def _sasl_client_fails(bootstrap: str, user: str) -> bool:
    from aiokafka import AIOKafkaProducer

    bad = KafkaSecurity.from_url(f"kafka://{user}:wrong-password@{bootstrap}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                                **bad.aiokafka())
    try:
        await asyncio.wait_for(producer.start(), 20)
    except Exception:
        return True
    await producer.stop()
    return False


async def _scram_round_trip(bootstrap: str, url: str, topic: str) -> list[bytes]:
    return await secured_round_trip(bootstrap, KafkaSecurity.from_url(url), topic, b"scram")


def test_worker_with_sasl_kafka_and_an_acl_redis_user(broker: Any, redis_url: str,
                                                      topic_prefix: str, tmp_path: Path) -> None:
    topics = TopicNames(topic_prefix)
    admin = redis.Redis.from_url(redis_url)
    acl_user, acl_password = f"w-{topic_prefix[-8:]}", "acl-pass-" + topic_prefix[-8:]
    admin.acl_setuser(acl_user, enabled=True, passwords=[f"+{acl_password}"],
                      keys=[f"{topic_prefix}:*", "enf:*"], commands=["+@all"])
    plain_redis = "redis://" + redis_url.rsplit("@", 1)[1]  # no password in the URL
    if broker.sasl_url:
        user, password = broker.sasl_user
        host = broker.sasl_url.split("://", 1)[1]
        kafka_url = f"kafka://{user}:{password}@{host}"
        assert asyncio.run(_sasl_client_fails(host, user))  # the listener checks passwords
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):  # the same clients, other mechanisms
            got = asyncio.run(_scram_round_trip(
                host, f"kafka://{user}:{password}@{host}?sasl_mechanism={mech}",
                f"{topic_prefix}.scram-{mech[-3:]}"))
            assert got == [b"scram"], mech
    else:
        password = ""
        kafka_url = broker.kafka_url
    worker = WorkerProcess(kafka_url=kafka_url, redis_url=plain_redis, broker_kind=broker.kind,
                           prefix=topic_prefix, log_path=tmp_path / "worker.log",
                           env={"ENF_REDIS_USERNAME": acl_user,
                                "ENF_REDIS_PASSWORD": acl_password})
    try:
        produce(broker.bootstrap, [
            (topics.user_events, f"u{i}".encode(), event(
                "watch", event_id=f"e{i}", user_id=f"u{i}", video_id="v", play_ms=100,
                duration_ms=1000, ts=NOW)) for i in range(20)])
        wait_until(lambda: len(admin.keys(f"{topic_prefix}:p:*")) == 20, timeout_s=90,
                   what="20 portraits written through the ACL user", worker=worker)
        status = worker.status()
        assert status["broker"].startswith("kafka://") and status["redis"] == plain_redis
        text = orjson.dumps(status).decode() + worker.log_path.read_text(errors="replace")
        assert acl_password not in text
        if password:
            assert password not in text and "***" in status["broker"]
        clients = admin.client_list()
        assert any(c.get("user") == acl_user for c in clients)  # the worker's connections
    finally:
        worker.stop()
        admin.acl_deluser(acl_user)
