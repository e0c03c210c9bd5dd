"""Credentials are redacted from every URL the worker shows."""

from __future__ import annotations

import pytest

from streams.redact import redact, redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://enf:p%40ss@redis:6380/1", "rediss://enf:***@redis:6380/1"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("kafka://alice:pw@b1:9093;b2:9093", "kafka://alice:***@b1:9093;b2:9093"),
    ("kafka://b1:9093?security_protocol=SASL_SSL&sasl_password=pw&sasl_username=a",
     "kafka://b1:9093?security_protocol=SASL_SSL&sasl_password=***&sasl_username=a"),
    ("redis://h:6379/0?password=x", "redis://h:6379/0?password=***"),
])
def test_passwords_are_masked(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_nested_values_are_redacted() -> None:
    out = redact({"broker": "kafka://a:b@h:1", "redis": {"url": "redis://:pw@h/0"},
                  "password": "x", "n": 3, "list": ["redis://:y@h"]})
    assert "b@" not in str(out) and "pw" not in str(out) and "'x'" not in str(out)
    assert out["n"] == 3 and out["password"] == "***"
