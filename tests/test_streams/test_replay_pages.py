"""Replay's JSON-array mode keeps every event and each key's order."""

from __future__ import annotations

from enf_core.data.replay_plan import PlannedMessage
from streams.replay import _pages


def _msg(i: int, key: str, n: int = 1) -> PlannedMessage:
    return PlannedMessage("user-events", key, "watch", i, {"i": i},
                          tuple(f"{i}:{k}" for k in range(n)))


def test_pages_group_per_key_and_keep_order() -> None:
    msgs = [_msg(i, "ab"[i % 2], n=1 + (i % 3 == 0)) for i in range(50)]
    pages = _pages(msgs, page_events=4)
    flat = [m for _, _, group in pages for m in group]
    assert sorted(m.ts for m in flat) == list(range(50))
    for key in "ab":
        order = [m.ts for _, k, group in pages if k == key for m in group]
        assert order == sorted(order)
    assert all(sum(len(m.event_ids) for m in g) <= 4 or len(g) == 1 for _, _, g in pages)
    assert all(len({m.key for m in g}) == 1 for _, _, g in pages)


def test_single_event_mode_is_one_message_each() -> None:
    msgs = [_msg(i, "k") for i in range(5)]
    assert [g for _, _, g in _pages(msgs, page_events=1)] == [[m] for m in msgs]
