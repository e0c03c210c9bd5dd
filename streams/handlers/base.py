"""What every handler shares: the message shape, the sink, dead-letter records."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from enf_core.events import Event, EventChecks, EventError, check_key, decode_events
from enf_core.limits import InputLimits
from streams.stored import Quarantined

log = logging.getLogger(__name__)

__all__ = ["DEAD_LETTER_MAX_BYTES", "DeadLetters", "DecodedBatch", "Message", "Quarantined",
           "Sink", "cut_utf8", "dead_letter_headers", "dead_letter_record", "decode_batch",
           "now_ms"]

# What a dead letter may carry of the original key and value, in bytes. Below the
# producer's max request size (Faust's default: 1,000,000 bytes) with room for the
# headers, so that dead-lettering a message just under the input limit can never
# fail with MessageSizeTooLargeError and stop the partition for good.
DEAD_LETTER_MAX_BYTES = 256 * 1024
MAX_ERROR_BYTES = 2000


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

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> Awaitable[Any]: ...


def cut_utf8(text: str, max_bytes: int) -> bytes:
    """``text`` as UTF-8, at most ``max_bytes`` long, never cut inside a character."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return raw
    return raw[:max_bytes].decode("utf-8", "ignore").encode("utf-8")


def dead_letter_headers(msg: Message, error: str) -> list[tuple[str, bytes]]:
    """Kafka Connect's convention: the value stays the original bytes, the
    headers say why and where it came from."""
    return [
        ("enf.error", cut_utf8(error, MAX_ERROR_BYTES)),
        ("enf.source.topic", msg.topic.encode()),
        ("enf.source.partition", str(msg.partition).encode()),
        ("enf.source.offset", str(msg.offset).encode()),
        ("enf.failed.ts", str(now_ms()).encode()),
    ]


def _fit(key: bytes | None, value: bytes | None, max_bytes: int
         ) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key and value cut to ``max_bytes`` together (the key keeps at most half),
    with ``enf.truncated`` headers giving the original sizes when anything was cut."""
    n_key, n_value = len(key or b""), len(value or b"")
    if n_key + n_value <= max_bytes:
        return key, value, []
    headers: list[tuple[str, bytes]] = []
    if key is not None and n_key > max_bytes // 2:
        key = key[:max_bytes // 2]
        headers.append(("enf.truncated.key", str(n_key).encode()))
    if value is not None and len(key or b"") + n_value > max_bytes:
        value = value[:max_bytes - len(key or b"")]
        headers.append(("enf.truncated", str(n_value).encode()))
    return key, value, headers


def dead_letter_record(msg: Message, error: str, max_bytes: int = DEAD_LETTER_MAX_BYTES
                       ) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter for ``msg``: the exact original
    bytes (a null value stays null) unless they exceed ``max_bytes``; then a
    prefix, with ``enf.truncated`` = the original value size. The source topic,
    partition and offset always point at the full original in Kafka."""
    key, value, cut = _fit(msg.key, msg.value, max_bytes)
    return key, value, dead_letter_headers(msg, error) + cut


@dataclass(slots=True)
class DecodedBatch:
    events: list[Event] = field(default_factory=list)
    sources: list[Message] = field(default_factory=list)  # the message of each event
    dead: list[tuple[Message, str]] = field(default_factory=list)


def decode_batch(messages: Sequence[Message], *, allowed: tuple[type, ...],
                 limits: InputLimits | None = None) -> DecodedBatch:
    """Decode every message; malformed ones, wrong event types, records outside
    ``limits`` and (with ``limits.check_keys``) keys that are not the record's
    user_id / video_id go to ``dead`` with the reason."""
    out = DecodedBatch()
    limits = limits or InputLimits()
    checks = EventChecks(limits, now_ms())
    for msg in messages:
        try:
            events = decode_events(msg.value, checks=checks)
            for e in events:
                if not isinstance(e, allowed):
                    raise EventError(f"event type {e.type!r} does not belong on {msg.topic}",
                                     field="type")
            if limits.check_keys:
                check_key(msg.key, events)
        except EventError as exc:
            out.dead.append((msg, str(exc)))
            continue
        except Exception as exc:  # hostile input must never stop a worker
            out.dead.append((msg, f"undecodable message: {type(exc).__name__}: {exc}"))
            continue
        out.events.extend(events)
        out.sources.extend([msg] * len(events))
    return out


async def send_dead_letters(sink: Sink, topic: str, dead: Sequence[tuple[Message, str]],
                            max_bytes: int = DEAD_LETTER_MAX_BYTES) -> list[Awaitable[Any]]:
    out = []
    for msg, err in dead:
        key, value, headers = dead_letter_record(msg, err, max_bytes)
        out.append(await sink.send(topic, key, value, headers))
    return out


class DeadLetters:
    """A handler's dead-letter topic: bad messages, and quarantined stored values.

    A bad stored value is read again by every batch that touches it until it is
    overwritten, so each (key, value) is reported once per worker (a bounded
    memory of what was reported) instead of once per batch.
    """

    def __init__(self, sink: Sink, topic: str, max_bytes: int = DEAD_LETTER_MAX_BYTES,
                 remember: int = 10_000) -> None:
        self.sink, self.topic, self.max_bytes = sink, topic, max_bytes
        self._reported: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.remember = remember

    async def send(self, dead: Sequence[tuple[Message, str]]) -> list[Awaitable[Any]]:
        return await send_dead_letters(self.sink, self.topic, dead, self.max_bytes)

    async def quarantine(self, items: Sequence[Quarantined]) -> list[Awaitable[Any]]:
        out = []
        for q in items:
            mark = (q.key, hash(q.value))
            if mark in self._reported:
                continue
            self._reported[mark] = None
            while len(self._reported) > self.remember:
                self._reported.popitem(last=False)
            log.warning("quarantined stored value %s: %s", q.key, q.error)
            key, value, cut = _fit(q.key.encode("utf-8", "replace"), q.value, self.max_bytes)
            headers = [("enf.error", cut_utf8(q.error, MAX_ERROR_BYTES)),
                       ("enf.quarantine.key", cut_utf8(q.key, MAX_ERROR_BYTES)),
                       ("enf.failed.ts", str(now_ms()).encode()), *cut]
            out.append(await self.sink.send(self.topic, key, value, headers))
        return out
