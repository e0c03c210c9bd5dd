"""Fixtures for the integration tests: real brokers and a real Redis, started once.

* ``broker``: session-scoped, parametrized over Apache Kafka 3.9.1 (from the Maven
  cache that ``make kafka`` fills) and Tansu. A missing Kafka cache is a test
  *failure* with the fix in the message, never a silent skip: a green run must
  mean both brokers were exercised.
* ``redis_url``: session-scoped redis-server on a free loopback port.
* ``topic_prefix``: unique per test, so tests sharing a broker and Redis never see
  each other's topics or keys.

Test modules mark themselves ``pytestmark = pytest.mark.integration``.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streams.services import (
    BROKER_KINDS,
    KafkaConfig,
    KafkaNotFetchedError,
    Service,
    bootstrap_servers,
    start_broker,
    start_kafka,
    start_redis,
)
from tests.integration.tls import Pki, make_pki


@dataclass(frozen=True)
class BrokerHandle:
    """What a test needs from a broker: its kind, Faust URL and bootstrap string."""

    kind: str
    kafka_url: str
    bootstrap: str
    service: Service
    # Apache Kafka only: a SASL_PLAINTEXT listener of the same broker (PLAIN,
    # SCRAM-SHA-256, SCRAM-SHA-512), with the user below (Tansu serves no SASL).
    sasl_url: str = ""
    sasl_user: tuple[str, str] = ("", "")
    # Apache Kafka only: an SSL listener of the same broker, its certificate signed
    # by the session's test CA (``pki``).
    ssl_url: str = ""


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Test certificates made for this session (tests/integration/tls.py)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session", params=list(BROKER_KINDS)[::-1], ids=lambda k: f"broker={k}")
def broker(request: pytest.FixtureRequest, pki: Pki) -> Iterator[BrokerHandle]:
    """One broker of each kind for the whole session (Apache Kafka first)."""
    kind: str = request.param
    missing: str | None = None
    sasl_user = ("enf-test", secrets.token_urlsafe(12))
    try:
        service = (start_kafka(KafkaConfig(sasl_plain_users=(sasl_user,),
                                           sasl_scram_users=(sasl_user,),
                                           ssl_listener=(str(pki.cert), str(pki.key))))
                   if kind == "kafka"
                   else start_broker(kind))
    except KafkaNotFetchedError as exc:
        missing = str(exc)
    if missing is not None:  # outside the except: one clear message, no chained traceback
        pytest.fail(f"{missing}\nThe integration tests need Apache Kafka: run `make kafka`.",
                    pytrace=False)
    try:
        yield BrokerHandle(kind=kind, kafka_url=service.url,
                           bootstrap=bootstrap_servers(service.url), service=service,
                           sasl_url=service.sasl_url,
                           sasl_user=sasl_user if service.sasl_url else ("", ""),
                           ssl_url=service.ssl_url)
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_service() -> Iterator[Service]:
    service = start_redis()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_url(redis_service: Service) -> str:
    """``redis://127.0.0.1:PORT/0`` of a redis-server started for this session."""
    return redis_service.url


@pytest.fixture()
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic/key prefix unique to this test (readable name + random suffix)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"
