"""What every handler shares: the message shape, the sink, dead-letter records."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from enf_core.events import Event, EventError, decode_events

__all__ = ["DecodedBatch", "Message", "Sink", "dead_letter_headers", "decode_batch", "now_ms"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka record, as the handlers need it."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp_ms: int = 0


class Sink(Protocol):
    """Where handlers produce records.

    ``await send(...)`` enqueues the record and returns its delivery future:
    handlers enqueue a whole batch first, then await every delivery before the
    batch's offsets may be committed.
    """

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> Awaitable[Any]: ...


def dead_letter_headers(msg: Message, error: str) -> list[tuple[str, bytes]]:
    """Kafka Connect's convention: the value stays the original bytes, the
    headers say why and where it came from."""
    return [
        ("enf.error", error.encode("utf-8", "replace")[:2000]),
        ("enf.source.topic", msg.topic.encode()),
        ("enf.source.partition", str(msg.partition).encode()),
        ("enf.source.offset", str(msg.offset).encode()),
        ("enf.failed.ts", str(now_ms()).encode()),
    ]


@dataclass(slots=True)
class DecodedBatch:
    events: list[Event] = field(default_factory=list)
    sources: list[Message] = field(default_factory=list)  # the message of each event
    dead: list[tuple[Message, str]] = field(default_factory=list)


def decode_batch(messages: Sequence[Message], *, allowed: tuple[type, ...]) -> DecodedBatch:
    """Decode every message; malformed ones and wrong event types go to ``dead``."""
    out = DecodedBatch()
    for msg in messages:
        try:
            events = decode_events(msg.value)
            for e in events:
                if not isinstance(e, allowed):
                    raise EventError(f"event type {e.type!r} does not belong on {msg.topic}",
                                     field="type")
        except EventError as exc:
            out.dead.append((msg, str(exc)))
            continue
        except Exception as exc:  # hostile input must never stop a worker
            out.dead.append((msg, f"undecodable message: {type(exc).__name__}: {exc}"))
            continue
        out.events.extend(events)
        out.sources.extend([msg] * len(events))
    return out


async def send_dead_letters(sink: Sink, topic: str, dead: Sequence[tuple[Message, str]]
                            ) -> list[Awaitable[Any]]:
    return [await sink.send(topic, msg.key, msg.value or b"", dead_letter_headers(msg, err))
            for msg, err in dead]
