"""The logged streams joined back into the schema: a replay plan's records in, the
dataset out (pure: the records a replay would send, without Kafka)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enf_core.data.log_join import LogJoin
from enf_core.data.replay_plan import ReplayConfig, plan_replay
from enf_core.data.schema import read_dataset, validate_dataset, write_dataset
from enf_core.data.simulate import SimulationConfig, simulate
from enf_core.events import parse_event

COLS = ("user_id", "video_id", "ts", "play_ms", "duration_ms", "watch_ratio",
        "implicit_negative", "explicit_negative", "reason_category", "reason_text", "split",
        "request_id", "position")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimulationConfig(users=120, videos=200, seed=3))
    return out


def _joined(sim: Path, *, twice: bool = False) -> tuple[LogJoin, list]:
    ds = read_dataset(sim)
    plan = plan_replay(ds, ReplayConfig(extra_candidates=4))
    join = LogJoin()
    for _ in range(2 if twice else 1):  # a redelivery changes nothing
        for m in plan.messages:
            for e in parse_event(m.payload):
                join.add_event(e)
    return join, plan.messages


def test_a_replayed_dataset_comes_back_row_for_row(sim: Path) -> None:
    join, _ = _joined(sim, twice=True)
    t = join.tables()
    original = read_dataset(sim).interactions
    assert t.counts["duplicate_events"] > 0
    assert t.interactions.num_rows == original.num_rows
    for c in COLS:
        got, want = t.interactions.column(c).to_pylist(), original.column(c).to_pylist()
        if c == "watch_ratio":
            np.testing.assert_allclose(np.array(got, float), np.array(want, float))
        else:
            assert got == want, c
    validate_dataset(t.users, t.videos, t.interactions,
                     frames_rows=t.meta["frames"]["shape"][0])
    assert t.meta["frames"]["file"].endswith("frames.npy")
    # a video with frames:// became a frames row; the real clips keep their file uri
    rows, uris = t.videos.column("frames_row").to_pylist(), t.videos.column("uri").to_pylist()
    assert all((r is None) == (u is not None) for r, u in zip(rows, uris, strict=True))


def test_outcomes_join_the_decisions_they_followed(sim: Path, tmp_path: Path) -> None:
    join, messages = _joined(sim)
    cands = [m.payload for m in messages if m.type == "candidates"]
    first = cands[0]
    vid = first["video_ids"][0]
    other = first["video_ids"][1]
    join.add_output({"type": "suppression", "record_id": f"{first['request_id']}:{vid}",
                     "request_id": first["request_id"], "user_id": first["user_id"],
                     "video_id": vid, "p_negative": 0.9, "reason": "boring",
                     "model_version": "A"})
    join.add_output({"type": "suppression", "record_id": f"{first['request_id']}:{vid}",
                     "request_id": first["request_id"], "video_id": vid})  # redelivered
    join.add_output({"type": "explanation", "record_id": f"{first['request_id']}:{vid}:x",
                     "request_id": first["request_id"], "video_id": vid, "text": "dull",
                     "explainer": "student", "model_version": "A", "p_negative": 0.9})
    join.add_output({"type": "rerank_page", "record_id": "x", "request_id": first["request_id"],
                     "model_version": "A", "items": [
                         {"video_id": other, "p_negative": 0.1, "suppressed": False}]})
    t = join.tables()
    assert t.counts["duplicate_outputs"] == 1
    d = t.decisions.to_pylist()
    assert len(d) == sum(len(c["video_ids"]) for c in cands)
    row = next(r for r in d if r["request_id"] == first["request_id"] and r["video_id"] == vid)
    assert row["suppressed"] and row["p_negative"] == 0.9 and row["reason"] == "boring"
    assert row["explanation"] == "dull" and row["explainer"] == "student"
    served = next(r for r in d if r["request_id"] == first["request_id"]
                  and r["video_id"] == other)
    assert not served["suppressed"] and served["p_negative"] == 0.1
    # outcomes: every video of a page was shown and watched, with its own ratio and dislike
    inter: dict[tuple, dict] = {}
    for r in t.interactions.to_pylist():  # rows in time order: the first showing answers
        inter.setdefault((r["user_id"], r["video_id"], r["request_id"]), r)
    shown = [r for r in d if r["shown"]]
    assert shown and all(r["watched"] for r in shown)
    for r in shown:
        i = inter[(r["user_id"], r["video_id"], r["request_id"])]
        assert r["watch_ratio"] == i["watch_ratio"] and r["disliked"] == i["explicit_negative"]
        assert r["quick_swipe"] == i["implicit_negative"]
        assert r["reason_category"] == i["reason_category"]
    # the extra catalogue candidates were never shown on that page
    assert any(not r["shown"] for r in d)
    write_dataset(tmp_path / "dump", t.users, t.videos, t.interactions, meta=t.meta,
                  frames_rows=t.meta["frames"]["shape"][0])
    assert read_dataset(tmp_path / "dump").frames is not None
