"""How enf ab's harness reads the worker's answers (records as the worker writes them)."""

from __future__ import annotations

from typing import Any

from streams.ab.harness import WorkerFilter, count_events
from streams.config import TopicNames


def _filter(mode: str = "drop") -> WorkerFilter:
    return WorkerFilter(bootstrap="127.0.0.1:1", topics=TopicNames("t"), worker=None,  # type: ignore[arg-type]
                        mode=mode)


def test_suppression_records_deduplicate_on_record_id() -> None:
    f = _filter()
    rec: dict[str, Any] = {"type": "suppression", "record_id": "r1:v1", "request_id": "r1",
                           "video_id": "v1", "stale": False}
    f._on(rec)
    f._on(rec)  # a redelivered output
    f._on({**rec, "record_id": "r1:v2", "video_id": "v2", "stale": True})
    assert f.answers.suppressed == {"r1": {"v1", "v2"}}
    assert f.answers.suppressed_items == 2 and f.answers.stale == {"r1"}
    f._on({**rec, "record_id": "r1-x@50:v1", "request_id": "r1-x@50"})  # a probe's answer
    assert f.answers.suppressed_items == 3 and f.answers.probe_suppressed == 1


def test_pages_and_rerank_pages() -> None:
    f = _filter("demote")
    f._on({"type": "rerank_page", "request_id": "r2", "items": [
        {"video_id": "a", "penalty": 0.0, "suppressed": False},
        {"video_id": "b", "penalty": 0.7, "suppressed": True}]})
    f._on({"type": "suppression_page", "request_id": "r3", "items": [{"video_id": "c"}]})
    assert f.answers.penalties["r2"] == {"a": 0.0, "b": 0.7}
    assert f.answers.suppressed == {"r2": {"b"}, "r3": {"c"}}
    assert f.answers.pages == {"r2", "r3"}


def test_count_events_counts_impression_items() -> None:
    assert count_events({"type": "impression", "items": [{}, {}, {}]}) == 3
    assert count_events({"type": "watch"}) == 1
