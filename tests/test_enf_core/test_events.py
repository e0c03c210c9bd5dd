"""Event validation: every malformed shape is refused with the field named."""

from __future__ import annotations

import orjson
import pytest

from enf_core.events import (
    CandidatesEvent,
    EventError,
    FeedbackEvent,
    ImpressionEvent,
    VideoEvent,
    WatchEvent,
    check_key,
    decode_events,
    encode,
)
from enf_core.limits import InputLimits

T = 1_700_000_000_000  # a sane epoch-ms timestamp (2023)


def _raw(**fields: object) -> bytes:
    return orjson.dumps({"v": 1, **fields})


WATCH = {"type": "watch", "event_id": "e1", "user_id": "u1", "video_id": "v1",
         "play_ms": 500, "duration_ms": 2000, "ts": T}


def test_watch_round_trip_and_ratio() -> None:
    (e,) = decode_events(_raw(**WATCH))
    assert isinstance(e, WatchEvent)
    assert e.watch_ratio == 0.25
    assert decode_events(encode(e)) == [e]


def test_impression_page_expands_with_unique_ids() -> None:
    events = decode_events(_raw(type="impression", event_id="p", user_id="u", request_id="r",
                                ts=T, items=[{"video_id": "a", "position": 0},
                                             {"video_id": "b", "position": 1}]))
    assert [e.event_id for e in events] == ["p:0", "p:1"]
    assert all(isinstance(e, ImpressionEvent) for e in events)


def test_message_may_hold_a_page_of_events() -> None:
    page = orjson.dumps([{"v": 1, **WATCH}, {"v": 1, **WATCH, "event_id": "e2"}])
    assert [e.event_id for e in decode_events(page)] == ["e1", "e2"]


def test_user_record_seeds_declared_interests() -> None:
    from enf_core.events import UserProfileEvent
    from enf_core.portrait import Portrait, apply_event
    from enf_core.taxonomy import TOPICS

    (u,) = decode_events(_raw(type="user", event_id="u:1", user_id="1", ts=T, age=31,
                              gender="F", interest_tags=["food", "nonsense"]))
    assert isinstance(u, UserProfileEvent) and u.interest_tags == ("food", "nonsense")
    p = apply_event(Portrait.new("1"), u)
    assert p.interests[TOPICS.index("food")] == 0.65
    assert p.demographics == {"age": 31, "gender": "F", "interest_tags": ["food", "nonsense"]}
    with pytest.raises(EventError):
        decode_events(_raw(type="user", event_id="u", user_id="1", ts=T, age=400))


def test_feedback_candidates_and_video() -> None:
    (f,) = decode_events(_raw(type="feedback", event_id="f", user_id="u", video_id="v",
                              kind="dislike", reason_category="boring", reason_text="dull", ts=T))
    assert isinstance(f, FeedbackEvent) and f.reason_category == "boring"
    (c,) = decode_events(_raw(type="candidates", event_id="c", request_id="r", user_id="u",
                              video_ids=["a", "b", "a", "a"], ts=T))
    assert isinstance(c, CandidatesEvent) and c.video_ids == ("a", "b")  # first kept
    (v,) = decode_events(_raw(type="video", event_id="x", video_id="v", title="t",
                              duration_ms=10, ts=T, tags=["a"], frame_features=[[0.1, 0.2]] * 16))
    assert isinstance(v, VideoEvent) and v.frame_features is not None
    assert len(v.frame_features) == 16


@pytest.mark.parametrize(("raw", "field"), [
    (_raw(**{**WATCH, "play_ms": "ten"}), "play_ms"),
    (_raw(**{**WATCH, "play_ms": True}), "play_ms"),
    (_raw(**{**WATCH, "duration_ms": 0}), "duration_ms"),
    (_raw(**{**WATCH, "play_ms": -1}), "play_ms"),
    (_raw(**{k: v for k, v in WATCH.items() if k != "user_id"}), "user_id"),
    (_raw(**{**WATCH, "user_id": "x" * 129}), "user_id"),
    (_raw(**{**WATCH, "user_id": "a\x00b"}), "user_id"),
    (_raw(**{**WATCH, "event_id": "a\x1fb"}), "event_id"),
    (_raw(**{**WATCH, "type": "teleport"}), "type"),
    (orjson.dumps({**WATCH, "v": 2}), "v"),
    (_raw(type="feedback", event_id="f", user_id="u", video_id="v", kind="love", ts=T), "kind"),
    (_raw(type="feedback", event_id="f", user_id="u", video_id="v", kind="dislike",
          reason_category="meh", ts=T), "reason_category"),
    (_raw(type="candidates", event_id="c", request_id="r", user_id="u", video_ids=[], ts=T),
     "video_ids"),
    (_raw(type="video", event_id="x", video_id="v", title="t", duration_ms=10, ts=T,
          frame_features=[[0.1], [0.1, 0.2]]), "frame_features"),
])
def test_invalid_fields_are_named(raw: bytes, field: str) -> None:
    with pytest.raises(EventError) as info:
        decode_events(raw)
    assert info.value.field == field


@pytest.mark.parametrize("raw", [None, b"", b"{", b"\xff\xfe", b"[]", b"42", b"[" * 10_000,
                                 b'{"v": 1, "type": "watch", "ts": NaN}', b"x" * (2 << 20)])
def test_hostile_messages_raise_event_error_only(raw: bytes | None) -> None:
    with pytest.raises(EventError):
        decode_events(raw)


def test_a_bad_event_rejects_its_whole_page_with_its_index() -> None:
    page = orjson.dumps([{"v": 1, **WATCH}, {"v": 1, **WATCH, "ts": "late"}])
    with pytest.raises(EventError) as info:
        decode_events(page)
    assert info.value.index == 1 and info.value.field == "ts"


def test_frame_features_beyond_float32_are_rejected() -> None:
    """1e39 is a finite double but Inf as float32: it used to be stored as NaN."""
    raw = _raw(type="video", event_id="x", video_id="v", title="t", duration_ms=10, ts=T,
               frame_features=[[1e39, 0.0]])
    with pytest.raises(EventError) as info:
        decode_events(raw)
    assert info.value.field == "frame_features"


def test_candidates_ranker_scores_are_parallel_and_follow_the_collapse() -> None:
    (c,) = decode_events(_raw(type="candidates", event_id="c", request_id="r", user_id="u",
                              video_ids=["a", "b", "a", "c"], ranker_scores=[3, 2.5, 9, 1],
                              ts=T))
    assert c.video_ids == ("a", "b", "c") and c.ranker_scores == (3.0, 2.5, 1.0)
    (plain,) = decode_events(_raw(type="candidates", event_id="c", request_id="r",
                                  user_id="u", video_ids=["a"], ts=T))
    assert plain.ranker_scores is None
    assert "ranker_scores" not in orjson.loads(encode(plain))
    assert decode_events(encode(c))[0] == c
    for bad, where in (([1.0], "ranker_scores"), ([1.0, "x"], "ranker_scores[1]"),
                       ([1.0, True], "ranker_scores[1]"), ("12", "ranker_scores")):
        with pytest.raises(EventError) as err:
            decode_events(_raw(type="candidates", event_id="c", request_id="r", user_id="u",
                               video_ids=["a", "b"], ranker_scores=bad, ts=T))
        assert err.value.field == where


def test_fifty_duplicate_candidates_are_one() -> None:
    (c,) = decode_events(_raw(type="candidates", event_id="c", request_id="r", user_id="u",
                              video_ids=["v1"] * 50 + ["v2"], ts=T))
    assert c.video_ids == ("v1", "v2")  # type: ignore[union-attr]


@pytest.mark.parametrize(("fields", "field"), [
    ({"user_id": 7}, "user_id"),  # ints are not coerced to strings
    ({"video_id": "a\nb"}, "video_id"),
    ({"video_id": "a\x00b"}, "video_id"),
    ({"ts": 253_402_300_799_000}, "ts"),  # year 9999
    ({"ts": 1 << 62}, "ts"),
    ({"ts": 946_684_799_999}, "ts"),  # before 2000-01-01
    ({"play_ms": 20_001, "duration_ms": 2000}, "play_ms"),  # > 10 x duration
])
def test_nonsense_is_rejected(fields: dict[str, object], field: str) -> None:
    with pytest.raises(EventError) as info:
        decode_events(_raw(**{**WATCH, **fields}))
    assert info.value.field == field


def test_candidate_ids_are_checked_like_other_ids() -> None:
    for bad in (7, "x\n", "", "y" * 129):
        with pytest.raises(EventError):
            decode_events(_raw(type="candidates", event_id="c", request_id="r", user_id="u",
                               video_ids=["a", bad], ts=T))


def test_limits_are_configurable() -> None:
    now = 1_800_000_000_000
    watch = {**WATCH, "ts": now + 60_000}
    assert decode_events(_raw(**watch), now_ms=now)  # a minute ahead: within 5 min
    with pytest.raises(EventError):
        decode_events(_raw(**watch), InputLimits(max_future_skew_ms=1000), now_ms=now)
    old = _raw(**{**WATCH, "ts": 1_000_000_000_000})  # 2001: a replayed log
    assert decode_events(old, now_ms=now)  # the past side is generous by default
    with pytest.raises(EventError):
        decode_events(old, InputLimits(max_past_skew_ms=86_400_000), now_ms=now)
    page = orjson.dumps([{"v": 1, **WATCH}] * 3)
    with pytest.raises(EventError):
        decode_events(page, InputLimits(max_page_events=2))
    with pytest.raises(EventError):
        decode_events(_raw(**WATCH), InputLimits(max_message_bytes=10))
    with pytest.raises(EventError):
        decode_events(_raw(**{**WATCH, "user_id": "ü"}), InputLimits(id_charset="ascii"))
    with pytest.raises(ValueError):
        InputLimits(id_charset="anything")


def test_the_key_must_be_the_records_user_or_video() -> None:
    events = decode_events(_raw(**WATCH))
    check_key(b"u1", events)
    for key in (b"u2", None, b"\xff"):
        with pytest.raises(EventError) as info:
            check_key(key, events)
        assert info.value.reason == "key_mismatch" and str(info.value).startswith("key_mismatch")
    video = decode_events(_raw(type="video", event_id="x", video_id="v9", title="t",
                               duration_ms=10, ts=T))
    check_key(b"v9", video)
    with pytest.raises(EventError):
        check_key(b"u1", video)
