"""Kafka and Redis credentials from URLs and settings (streams.credentials)."""

from __future__ import annotations

import pytest

from streams.config import WorkerConfig
from streams.credentials import KafkaSecurity, redis_url_with, strip_kafka_credentials
from streams.services import bootstrap_servers


def test_kafka_url_carries_sasl_and_tls() -> None:
    url = "kafka://alice:p%40ss@b1:9093;b2:9093?sasl_mechanism=SCRAM-SHA-512"
    s = KafkaSecurity.from_url(url)
    assert (s.protocol, s.mechanism, s.username, s.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "p@ss")
    assert "p@ss" not in repr(s)
    assert strip_kafka_credentials(url) == "kafka://b1:9093;b2:9093"
    assert bootstrap_servers(url) == "b1:9093,b2:9093"
    kw = s.aiokafka()
    assert kw["sasl_plain_username"] == "alice" and kw["security_protocol"] == "SASL_PLAINTEXT"
    assert KafkaSecurity.from_url("kafka://b:9092").aiokafka() == {
        "security_protocol": "PLAINTEXT"}
    assert KafkaSecurity.from_url("kafka://u:p@b:9092").mechanism == "PLAIN"


def test_settings_fill_what_the_url_leaves_out(tmp_path: object) -> None:
    cfg = WorkerConfig.from_env({"ENF_KAFKA_URL": "kafka://b:9093",
                                 "ENF_KAFKA_SASL_USERNAME": "bob",
                                 "ENF_KAFKA_SASL_PASSWORD": "pw",
                                 "ENF_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                                 "ENF_REDIS_URL": "rediss://r:6380/0",
                                 "ENF_REDIS_USERNAME": "enf", "ENF_REDIS_PASSWORD": "p/w",
                                 "ENF_REDIS_SSL_CA_CERTS": "/ca.pem"})
    s = cfg.kafka_security()
    assert (s.protocol, s.mechanism, s.username, s.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "pw")
    assert "pw" not in repr(cfg)
    assert cfg.redis_connection_url() == "rediss://enf:p%2Fw@r:6380/0?ssl_ca_certs=%2Fca.pem"
    assert redis_url_with("redis://:x@r/0", password="y") == "redis://:x@r/0"  # URL wins


def test_a_tls_context_verifies_with_the_given_ca() -> None:
    import ssl

    s = KafkaSecurity.from_url("kafka://b:9093?security_protocol=SSL")
    ctx = s.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert s.faust() is not None and KafkaSecurity().faust() is None


@pytest.mark.parametrize("url", ["kafka://b:1?security_protocol=TLS",
                                 "kafka://b:1?sasl_mechanism=GSSAPI&security_protocol=SASL_SSL",
                                 "kafka://b:1?security_protocol=SASL_PLAINTEXT",
                                 "kafka://b:1?colour=blue"])
def test_bad_kafka_security_is_a_clear_error(url: str) -> None:
    with pytest.raises(ValueError):
        KafkaSecurity.from_url(url)
