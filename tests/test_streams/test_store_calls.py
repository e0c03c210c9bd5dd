"""How a batch's users are split into Lua calls (pure logic of streams.store)."""

from __future__ import annotations

import itertools

import pytest

from streams.store import split_calls


def test_calls_respect_the_user_and_id_limits() -> None:
    assert split_calls([1] * 7, 3, 100) == [(0, 3), (3, 6), (6, 7)]
    assert split_calls([5, 5, 5, 5], 10, 10) == [(0, 2), (2, 4)]
    # A user heavier than the id budget gets a call of its own, never none.
    assert split_calls([1, 50, 1, 1], 10, 10) == [(0, 1), (1, 2), (2, 4)]
    assert split_calls([], 3, 3) == []
    spans = split_calls([3, 1, 4, 1, 5, 9, 2, 6] * 50, 7, 20)
    assert spans[0][0] == 0 and spans[-1][1] == 400
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(e - s <= 7 for s, e in spans)


def test_hiredis_packing_sends_the_bytes_redis_py_sends() -> None:
    from redis.asyncio.connection import Connection
    from redis.exceptions import DataError

    from streams.store import hiredis_packing

    plain, fast = Connection(), hiredis_packing(Connection)()
    commands = [("EVALSHA", "ab12", 2, "k:{u1}", b"k2", 7, -1, 0.1, 1e-07, "ü\x1f", b"\x00\xff"),
                ("SCRIPT LOAD", "return 1"), ("HSET", "k", "f", memoryview(b"xy")),
                (b"GET", "k")]
    for cmd in commands:
        assert b"".join(fast.pack_command(*cmd)) == b"".join(plain.pack_command(*cmd))
    assert b"".join(fast.pack_commands(commands)) == b"".join(plain.pack_commands(commands))
    with pytest.raises(DataError):  # what redis-py refuses, it still refuses
        fast.pack_command("SET", "k", True)
