"""Versioned event records, their validation and their wire format (orjson).

Every record on the wire is one JSON object with ``v`` (schema version),
``type`` and a unique ``event_id``. A message may also hold a JSON array of such
objects (a page of events), which cuts the per-message cost of the broker and of
Faust when a producer has several events at hand.

Validation is hand-written rather than model-based: the portrait path must decode
tens of thousands of events per second per worker, and a failed check must say
which field is wrong so that the dead-letter record is useful to a person.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from enf_core.limits import ID_CHARSETS, InputLimits
from enf_core.taxonomy import REASONS

__all__ = [
    "SCHEMA_VERSION",
    "CandidatesEvent",
    "Event",
    "EventChecks",
    "EventError",
    "FeedbackEvent",
    "ImpressionEvent",
    "UserProfileEvent",
    "VideoEvent",
    "WatchEvent",
    "check_key",
    "decode_events",
    "encode",
    "key_field",
    "parse_event",
]

SCHEMA_VERSION: Final = 1
DEFAULT_LIMITS: Final = InputLimits()
# Defaults of InputLimits, kept as names for the data tools that size messages.
MAX_MESSAGE_BYTES: Final = DEFAULT_LIMITS.max_message_bytes
MAX_ID_LEN: Final = DEFAULT_LIMITS.max_id_len
MAX_CANDIDATES: Final = DEFAULT_LIMITS.max_candidates
MAX_PAGE: Final = DEFAULT_LIMITS.max_page_events
MAX_TEXT: Final = 2000
# Numbers the models see become float32: anything beyond this is Inf there (1e39 was
# accepted as "finite" and stored as NaN in the video's vector).
FLOAT32_MAX: Final = 3.4028234663852886e38
FEEDBACK_KINDS: Final = ("dislike", "report", "not_interested")
_REASON_VALUES: Final = frozenset(r.value for r in REASONS)


class EventError(ValueError):
    """A message that is not a valid event; ``field`` names the offending part and
    ``reason`` is a short code for the dead letter (``invalid``, ``key_mismatch``)."""

    def __init__(self, message: str, *, field: str = "", index: int | None = None,
                 reason: str = "invalid") -> None:
        self.field = field
        self.index = index
        self.reason = reason
        where = f"{field}: " if field else ""
        at = f"[{index}] " if index is not None else ""
        code = f"{reason}: " if reason != "invalid" else ""
        super().__init__(f"{code}{at}{where}{message}")


class EventChecks:
    """``InputLimits`` prepared for decoding, with the timestamp window fixed at
    ``now_ms``: build one per batch (``decode_events(..., checks=)``), not per message."""

    __slots__ = ("charset", "limits", "max_id_len", "ts_hi", "ts_lo")

    def __init__(self, limits: InputLimits | None = None, now_ms: int | None = None) -> None:
        self.limits = limits = limits or DEFAULT_LIMITS
        now = int(time.time() * 1000) if now_ms is None else now_ms
        self.ts_lo, self.ts_hi = limits.ts_window(now)
        self.charset = ID_CHARSETS[limits.id_charset]
        self.max_id_len = limits.max_id_len


_Checks = EventChecks
_MISSING: Final = object()


# ----------------------------------------------------------------- field checks


def _get(obj: dict[str, Any], name: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise EventError("missing required field", field=name) from None


def _check_id(value: Any, name: str, c: _Checks) -> str:
    # The common case first, in one test (the portrait path decodes ~3 ids per event).
    if type(value) is str and 0 < len(value) <= c.max_id_len and value.isprintable() \
            and c.charset is None:
        return value
    # Ints are not coerced: 7 and "7" would be two spellings of one user.
    if not isinstance(value, str):
        raise EventError(f"expected a string id, got {type(value).__name__}", field=name)
    limit = c.limits.max_id_len
    if not value or len(value) > limit:
        raise EventError(f"id length must be 1..{limit}", field=name)
    if not value.isprintable():
        raise EventError("id holds control characters", field=name)
    if c.charset is not None and c.charset.fullmatch(value) is None:
        raise EventError("id holds characters outside the allowed set", field=name)
    return value


def _id(obj: dict[str, Any], name: str, c: _Checks) -> str:
    value = obj.get(name, _MISSING)
    if type(value) is str and 0 < len(value) <= c.max_id_len and value.isprintable() \
            and c.charset is None:
        return value
    if value is _MISSING:
        raise EventError("missing required field", field=name)
    return _check_id(value, name, c)


def _ts(obj: dict[str, Any], c: _Checks) -> int:
    ts = _int(obj, "ts")
    if not c.ts_lo <= ts <= c.ts_hi:
        raise EventError(f"timestamp {ts} outside the accepted window [{c.ts_lo}, {c.ts_hi}] "
                         "(epoch ms, not before 2000, not in the future)", field="ts")
    return ts


def _int(obj: dict[str, Any], name: str, *, lo: int = 0, hi: int = 1 << 62) -> int:
    value = obj.get(name, _MISSING)
    if type(value) is int and lo <= value <= hi:
        return value
    if value is _MISSING:
        raise EventError("missing required field", field=name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(f"expected an integer, got {type(value).__name__}", field=name)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise EventError("expected an integer", field=name)
        value = int(value)
    if not lo <= value <= hi:
        raise EventError(f"out of range [{lo}, {hi}]: {value}", field=name)
    return value


def _opt_text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventError(f"expected a string, got {type(value).__name__}", field=name)
    if len(value) > MAX_TEXT:
        raise EventError(f"longer than {MAX_TEXT} characters", field=name)
    return value


def _str_list(obj: dict[str, Any], name: str, *, limit: int) -> tuple[str, ...]:
    value = obj.get(name, [])
    if not isinstance(value, list):
        raise EventError("expected a list of strings", field=name)
    if len(value) > limit:
        raise EventError(f"more than {limit} entries", field=name)
    out = []
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_ID_LEN or not item.isprintable():
            raise EventError("expected a list of short printable strings", field=name)
        out.append(item)
    return tuple(out)


# ----------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class ImpressionEvent:
    """A video was shown to a user at a position of a feed page."""

    event_id: str
    user_id: str
    video_id: str
    request_id: str
    position: int
    ts: int
    type: str = "impression"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """How long a user watched a video; a quick swipe is a low watch ratio."""

    event_id: str
    user_id: str
    video_id: str
    play_ms: int
    duration_ms: int
    ts: int
    type: str = "watch"

    @property
    def watch_ratio(self) -> float:
        return min(self.play_ms / self.duration_ms, 1.0)


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """Explicit negative feedback, optionally with the user's stated reason."""

    event_id: str
    user_id: str
    video_id: str
    kind: str
    ts: int
    reason_category: str = ""
    reason_text: str = ""
    type: str = "feedback"


@dataclass(frozen=True, slots=True)
class VideoEvent:
    """A video entering the catalogue; the Video Agent analyses it.

    ``frame_features`` holds precomputed image-encoder features (one row per
    sampled frame) when the producer has them; otherwise ``uri`` names a file
    the analyser decodes.
    """

    event_id: str
    video_id: str
    title: str
    duration_ms: int
    ts: int
    tags: tuple[str, ...] = ()
    uri: str = ""
    frame_features: tuple[tuple[float, ...], ...] | None = None
    type: str = "video"


@dataclass(frozen=True, slots=True)
class CandidatesEvent:
    """A ranker's candidate list for one request; the scorer answers it."""

    event_id: str
    request_id: str
    user_id: str
    video_ids: tuple[str, ...]
    ts: int
    type: str = "candidates"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # The upstream ranker's score of each candidate (parallel to video_ids), if
    # sent: passed through as ``ranker_score`` on every output item.
    ranker_scores: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class UserProfileEvent:
    """What the feed knows of a user up front (the paper's user info): it seeds
    the portrait's demographics and raises the declared interest topics."""

    event_id: str
    user_id: str
    ts: int
    age: int | None = None
    gender: str = ""
    occupation: str = ""
    interest_tags: tuple[str, ...] = ()
    type: str = "user"


Event = (ImpressionEvent | WatchEvent | FeedbackEvent | VideoEvent | CandidatesEvent
         | UserProfileEvent)


def _frames(obj: dict[str, Any]) -> tuple[tuple[float, ...], ...] | None:
    value = obj.get("frame_features")
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= 64:
        raise EventError("expected 1..64 frames of features", field="frame_features")
    width = None
    rows = []
    for row in value:
        if not isinstance(row, list) or not row or len(row) > 4096:
            raise EventError("each frame must be a non-empty list of numbers",
                             field="frame_features")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise EventError("frames differ in width", field="frame_features")
        for x in row:
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) \
                    or abs(x) > FLOAT32_MAX:
                raise EventError("frame features must be finite float32 numbers",
                                 field="frame_features")
        rows.append(tuple(float(x) for x in row))
    return tuple(rows)


def _parse_one(obj: Any, c: _Checks) -> list[Event]:
    if not isinstance(obj, dict):
        raise EventError(f"expected a JSON object, got {type(obj).__name__}")
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise EventError(f"unsupported schema version {version!r}", field="v")
    kind = obj.get("type")
    ts = _ts(obj, c)
    if kind == "watch":
        play_ms = _int(obj, "play_ms")
        duration_ms = _int(obj, "duration_ms", lo=1)
        if play_ms > c.limits.max_play_ratio * duration_ms:
            raise EventError(f"play_ms above {c.limits.max_play_ratio:g} x duration_ms",
                             field="play_ms")
        return [WatchEvent(_id(obj, "event_id", c), _id(obj, "user_id", c),
                           _id(obj, "video_id", c), play_ms, duration_ms, ts)]
    if kind == "impression":
        event_id, user_id = _id(obj, "event_id", c), _id(obj, "user_id", c)
        request_id = _id(obj, "request_id", c)
        items = obj.get("items")
        if items is None:
            return [ImpressionEvent(event_id, user_id, _id(obj, "video_id", c), request_id,
                                    _int(obj, "position"), ts)]
        limit = c.limits.max_candidates
        if not isinstance(items, list) or not 1 <= len(items) <= limit:
            raise EventError(f"expected 1..{limit} items", field="items")
        out: list[Event] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise EventError("expected an object", field=f"items[{i}]")
            out.append(ImpressionEvent(f"{event_id}:{i}", user_id, _id(item, "video_id", c),
                                       request_id, _int(item, "position"), ts))
        return out
    if kind == "feedback":
        fb_kind = _get(obj, "kind")
        if fb_kind not in FEEDBACK_KINDS:
            raise EventError(f"expected one of {', '.join(FEEDBACK_KINDS)}", field="kind")
        category = _opt_text(obj, "reason_category")
        if category and category not in _REASON_VALUES:
            raise EventError(f"unknown reason category {category!r}", field="reason_category")
        return [FeedbackEvent(_id(obj, "event_id", c), _id(obj, "user_id", c),
                              _id(obj, "video_id", c), fb_kind, ts, category,
                              _opt_text(obj, "reason_text"))]
    if kind == "video":
        title = _get(obj, "title")
        if not isinstance(title, str) or len(title) > MAX_TEXT:
            raise EventError("expected a string of at most 2000 characters", field="title")
        uri = _opt_text(obj, "uri")
        return [VideoEvent(_id(obj, "event_id", c), _id(obj, "video_id", c), title,
                           _int(obj, "duration_ms", lo=1), ts, _str_list(obj, "tags", limit=64),
                           uri, _frames(obj))]
    if kind == "user":
        age = obj.get("age")
        if age is not None:
            age = _int(obj, "age", hi=150)
        return [UserProfileEvent(_id(obj, "event_id", c), _id(obj, "user_id", c), ts, age,
                                 _opt_text(obj, "gender")[:64], _opt_text(obj, "occupation")[:128],
                                 _str_list(obj, "interest_tags", limit=64))]
    if kind == "candidates":
        ids = _get(obj, "video_ids")
        limit = c.limits.max_candidates
        if not isinstance(ids, list) or not 1 <= len(ids) <= limit:
            raise EventError(f"expected a list of 1..{limit} ids", field="video_ids")
        for i, vid in enumerate(ids):
            _check_id(vid, f"video_ids[{i}]", c)
        video_ids = list(ids)
        scores = obj.get("ranker_scores")
        if scores is not None:
            if not isinstance(scores, list) or len(scores) != len(video_ids):
                raise EventError("expected a list of numbers parallel to video_ids",
                                 field="ranker_scores")
            for i, x in enumerate(scores):
                if isinstance(x, bool) or not isinstance(x, int | float) \
                        or not math.isfinite(x) or abs(x) > FLOAT32_MAX:
                    raise EventError("expected a finite float32 number",
                                     field=f"ranker_scores[{i}]")
        # Duplicates are collapsed, the first kept: 50 copies of one id were 50
        # suppressions of one video for one request.
        if len(set(video_ids)) != len(video_ids):
            first = {v: i for i, v in reversed(list(enumerate(video_ids)))}
            keep = sorted(first.values())
            video_ids = [video_ids[i] for i in keep]
            scores = [scores[i] for i in keep] if scores is not None else None
        return [CandidatesEvent(_id(obj, "event_id", c), _id(obj, "request_id", c),
                                _id(obj, "user_id", c), tuple(video_ids), ts,
                                ranker_scores=(tuple(float(x) for x in scores)
                                               if scores is not None else None))]
    raise EventError(f"unknown event type {kind!r}", field="type")


def _checks(limits: InputLimits | None, now_ms: int | None) -> _Checks:
    return _Checks(limits, now_ms)


def parse_event(obj: Any, limits: InputLimits | None = None, *,
                now_ms: int | None = None) -> list[Event]:
    """Validate one decoded JSON object; an impression page yields several events."""
    return _parse_one(obj, _checks(limits, now_ms))


def key_field(event: Event) -> str:
    """The field a record's Kafka key must equal: video_id on the videos topic,
    user_id everywhere else (so all of a user's events share a partition)."""
    return event.video_id if isinstance(event, VideoEvent) else event.user_id


def check_key(key: bytes | None, events: list[Event]) -> None:
    """Raise EventError(reason ``key_mismatch``) unless ``key`` is every event's
    user_id / video_id: a wrong or missing key puts a user's events on two
    partitions, processed by two workers, out of order."""
    if key is None:
        raise EventError("the message has no key; it must be the record's "
                         f"{'video_id' if isinstance(events[0], VideoEvent) else 'user_id'}",
                         reason="key_mismatch")
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("the message key is not UTF-8", reason="key_mismatch") from None
    if len(events) == 1:  # the common case, without the loop
        e = events[0]
        if (e.video_id if type(e) is VideoEvent else e.user_id) == text:  # type: ignore[union-attr]
            return
    for i, e in enumerate(events):
        if key_field(e) != text:
            name = "video_id" if isinstance(e, VideoEvent) else "user_id"
            raise EventError(f"message key {text[:64]!r} is not the record's {name} "
                             f"{key_field(e)[:64]!r}", reason="key_mismatch",
                             index=i if len(events) > 1 else None)


def decode_events(raw: bytes | None, limits: InputLimits | None = None, *,
                  now_ms: int | None = None, checks: EventChecks | None = None) -> list[Event]:
    """Decode one Kafka message value: an event object or an array (page) of them.

    Raises EventError for anything malformed or outside ``limits`` (the
    defaults of ``InputLimits`` when None; ``checks`` instead: prepared once per
    batch); a page is rejected whole, so that a dead-letter record always
    corresponds to one message and its offset.
    """
    c = checks or _checks(limits, now_ms)
    if raw is None:
        raise EventError("empty message (null value)")
    if len(raw) > c.limits.max_message_bytes:
        raise EventError(f"message of {len(raw)} bytes exceeds {c.limits.max_message_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"not valid JSON: {exc}") from None
    if isinstance(obj, list):
        limit = c.limits.max_page_events
        if not 1 <= len(obj) <= limit:
            raise EventError(f"a page must hold 1..{limit} events")
        out: list[Event] = []
        for i, item in enumerate(obj):
            try:
                out.extend(_parse_one(item, c))
            except EventError as exc:
                raise EventError(str(exc), field=exc.field, index=i) from None
        return out
    return _parse_one(obj, c)


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(record: Any) -> bytes:
    """Encode an event (dataclass) or a plain dict as one JSON object with ``v``."""
    if isinstance(record, dict):
        payload = record if "v" in record else {"v": SCHEMA_VERSION, **record}
        return orjson.dumps(payload, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    data = {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]
    data.pop("extra", None)
    for optional in ("frame_features", "ranker_scores"):
        if optional in data and data[optional] is None:
            data.pop(optional)
    return orjson.dumps({"v": SCHEMA_VERSION, **data}, default=_default,
                        option=orjson.OPT_SERIALIZE_NUMPY)
