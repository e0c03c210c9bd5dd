"""Dead-letter records: exact bytes, a size cap, and headers cut on characters."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.handlers.base import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetters,
    Message,
    Quarantined,
    cut_utf8,
    dead_letter_record,
)


def test_error_header_is_cut_on_a_character_boundary() -> None:
    text = "é" * 1500  # 3000 bytes of two-byte characters
    cut = cut_utf8(text, 2001)
    assert len(cut) == 2000 and cut.decode("utf-8") == "é" * 1000
    assert cut_utf8("ok", 10) == b"ok"


def test_null_value_stays_null_and_small_values_are_exact() -> None:
    key, value, headers = dead_letter_record(Message(None, b"u1", "t", 0, 5), "empty")
    assert value is None and key == b"u1"
    assert not any(name.startswith("enf.truncated") for name, _ in headers)
    raw = b'{"broken":'
    _, value, _ = dead_letter_record(Message(raw, None, "t", 0, 5), "bad")
    assert value == raw


def test_an_oversized_message_is_truncated_with_its_source() -> None:
    raw = b"x" * 1_000_000
    key, value, headers = dead_letter_record(Message(raw, b"k" * 600_000, "enf.videos", 3, 42),
                                             "not json")
    h = dict(headers)
    assert value is not None and key is not None
    assert len(key) + len(value) <= DEAD_LETTER_MAX_BYTES
    assert value == raw[:len(value)]
    assert h["enf.truncated"] == b"1000000" and h["enf.truncated.key"] == b"600000"
    assert h["enf.source.topic"] == b"enf.videos" and h["enf.source.partition"] == b"3"
    assert h["enf.source.offset"] == b"42"


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Any = None) -> Any:
        self.sent.append((topic, key, value, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def test_a_quarantined_value_is_reported_once() -> None:
    sink = _Sink()
    dead = DeadLetters(sink, "dlq")
    q = Quarantined("enf:v:v1", b"{not json", "stored video analysis is unusable")

    async def run() -> None:
        await dead.quarantine([q])
        await dead.quarantine([q])  # the next batch reads the same bad value
        await dead.quarantine([Quarantined("enf:v:v1", b"{other", "unusable")])

    asyncio.run(run())
    assert len(sink.sent) == 2
    topic, key, value, headers = sink.sent[0]
    h = dict(headers)
    assert topic == "dlq" and key == b"enf:v:v1" and value == b"{not json"
    assert h["enf.quarantine.key"] == b"enf:v:v1" and h["enf.error"]
