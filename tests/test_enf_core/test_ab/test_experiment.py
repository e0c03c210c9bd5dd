"""The A/B's pure parts: ranker, arms, statistics, responsiveness, and the closed loop
with stand-in filters (the real worker is in tests/integration/test_ab.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from enf_core.ab.arms import ArmTally, Budget, oracle_suppress, serve_demoted, serve_dropped
from enf_core.ab.experiment import ABConfig, Decision, Request, run_experiment
from enf_core.ab.ranker import RankerConfig, TopicInterest, rank_pool
from enf_core.ab.responsiveness import Responsiveness
from enf_core.ab.stats import interval, summarize
from enf_core.ab.world import World, load_world
from enf_core.data.response import latent_p_negative
from enf_core.data.simulate import SimulationConfig, simulate
from enf_core.events import parse_event


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("ab-sim")
    simulate(out, SimulationConfig(users=120, videos=300, seed=9, write_frames=False,
                                   real_videos_per_file=0))
    return load_world(out)


def test_budget_caps_by_count_and_fraction() -> None:
    b = Budget(max_per_request=3, max_fraction=0.25)
    assert [b.cap(n) for n in (1, 4, 8, 12, 40)] == [0, 1, 2, 3, 3]


def test_serving_backfills_and_demotes() -> None:
    ranked = np.arange(10, 20)
    sup = np.zeros(10, bool)
    sup[[0, 2]] = True
    assert serve_dropped(ranked, sup, 4).tolist() == [11, 13, 14, 15]
    assert serve_dropped(ranked, np.ones(10, bool), 4).tolist() == []
    scores = np.linspace(1.0, 0.1, 10)
    penalty = np.zeros(10)
    penalty[0] = 2.0
    assert serve_demoted(ranked, scores, penalty, 3).tolist() == [11, 12, 13]


def test_oracle_spends_its_budget_where_it_can_reach_the_page() -> None:
    p = np.array([0.1, 0.9, 0.2, 0.6, 0.1, 0.1, 0.95, 0.99])
    mask = oracle_suppress(p, Budget(3, 0.25), 0.5, page_size=4)  # cap 2, window of 6
    assert mask.tolist() == [False, True, False, True, False, False, False, False]
    assert not oracle_suppress(np.full(8, 0.4), Budget(3, 0.25), 0.5, page_size=4).any()


def test_ranker_prefers_observed_interest_and_popularity() -> None:
    cfg = RankerConfig(request_size=3)
    interest = TopicInterest([2], cfg)
    interest.watch(5, 1.0)
    topic = np.array([2, 5, 7, 2, 7])
    pop = np.array([10.0, 10.0, 30.0, 1.0, 10.0])
    vids, scores = rank_pool(np.arange(5), topic, pop, interest.share(), cfg)
    assert vids.tolist()[:2] == [0, 1] and list(scores) == sorted(scores, reverse=True)
    # Its pool's order does not matter.
    again, _ = rank_pool(np.arange(5)[::-1].copy(), topic, pop, interest.share(), cfg)
    assert again.tolist() == vids.tolist()


def test_interval_and_summary_bar() -> None:
    assert interval([0.5]) == {"mean": 0.5, "lo": 0.5, "hi": 0.5}
    iv = interval([1.0, 2.0, 3.0])
    assert iv["mean"] == 2.0 and iv["lo"] == pytest.approx(2.0 - 4.303 / 3 ** 0.5)

    def seeds(wr: float, qs: float, dl: float) -> list[dict[str, float]]:
        return [{"watch_ratio": wr + d, "quick_swipe_rate": qs + d, "dislike_rate": dl + d / 100,
                 "suppressed_share": 0.1, "empty_requests": 0.0} for d in (-0.001, 0.0, 0.001)]

    s = summarize({"A": seeds(0.5, 0.2, 0.004), "B": seeds(0.52, 0.15, 0.002),
                   "O": seeds(0.55, 0.1, 0.001)})
    assert s["bar"]["passed"]
    assert s["relative"]["quick_swipe_rate"] == pytest.approx(-0.25)
    assert s["share_of_oracle_gain"]["quick_swipe_rate"] == pytest.approx(0.5)
    worse = summarize({"A": seeds(0.5, 0.2, 0.004), "B": seeds(0.5, 0.2, 0.002)})
    assert not worse["bar"]["passed"] and not worse["bar"]["quick_swipe_rate"]


def test_responsiveness_counts_after_the_first_dislike() -> None:
    r = Responsiveness()
    inten = np.zeros((3, 11))
    inten[0, 4] = 0.8
    inten[2, 4] = 0.5
    r.candidates("u", 0, 0.0, inten, np.array([False, False, False]))  # before: 2 trials, 0 hit
    r.dislike("u", 4, 0, 10.0)
    r.dislike("u", 4, 1, 20.0)  # not the first: ignored
    r.candidates("u", 1, 150.0, inten, np.array([True, False, False]))
    r.candidates("v", 1, 150.0, inten, np.array([True, True, True]))  # another user
    s = r.summary()
    assert s["dislikes"] == 1
    assert s["before"] == {"n": 2, "suppressed": 0, "share": 0.0}
    assert s["by_requests"] == [{"after": 1, "n": 2, "suppressed": 1, "share": 0.5}]
    assert s["by_ms"][0]["bin"] == "100-250" and s["by_ms"][0]["n"] == 2


class _Recording:
    """A stand-in filter: keeps every record it is given and decides by ``decide``."""

    def __init__(self, decide: Any) -> None:
        self.decide = decide
        self.records: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.probes: list[Request] = []

    async def send_events(self, events: dict[str, list[dict[str, Any]]], *,
                          probes: Any = (), delays_ms: Any = ()) -> dict[str, Decision]:
        for records in events.values():
            self.records.extend(records)
        self.probes.extend(probes)
        return {f"{p.request_id}@{d}": self.decide(p) for p in probes for d in delays_ms}

    async def answer(self, requests: list[Request]) -> dict[str, Decision]:
        self.requests.extend(requests)
        return {r.request_id: self.decide(r) for r in requests}


_SMALL = ABConfig(seeds=2, users_per_seed=12, sessions=2, pages_per_session=2, catalogue=300)


def test_b_equals_a_when_the_filter_suppresses_nothing(world: World) -> None:
    enf = _Recording(lambda r: Decision(np.zeros(len(r.video_ids), bool)))
    run = asyncio.run(run_experiment(world, _SMALL, enf))
    a, b = run.per_seed_metrics()["A"], run.per_seed_metrics()["B"]
    assert a == [{**m, "suppressed_share": 0.0} for m in b]
    assert len(enf.requests) == 2 * 12 * 4
    assert all(len(r.video_ids) == _SMALL.ranker.request_size for r in enf.requests)


def test_b_equals_o_when_the_filter_knows_the_truth(world: World) -> None:
    index = {str(v): i for i, v in enumerate(world.videos["video_id"])}
    users = {f"{u}.s{s}": i for s in range(2) for i, u in enumerate(world.users["user_id"])}
    rc = _SMALL.ranker

    def truth(r: Request) -> Decision:
        v = np.array([index[x] for x in r.video_ids])
        p = latent_p_negative(world.config, world.users, world.videos,
                              np.full(len(v), users[r.user_id]), v,
                              np.minimum(np.arange(len(v)), rc.page_size - 1),
                              world.dislike_intercept)
        return Decision(oracle_suppress(p, _SMALL.budget, _SMALL.oracle_threshold,
                                        rc.page_size))

    run = asyncio.run(run_experiment(world, _SMALL, _Recording(truth)))
    m = run.per_seed_metrics()
    assert m["B"] == m["O"]
    assert m["O"][0]["suppressed_share"] > 0


def test_the_latent_truth_never_reaches_the_filter(world: World) -> None:
    enf = _Recording(lambda r: Decision(np.zeros(len(r.video_ids), bool)))
    asyncio.run(run_experiment(world, _SMALL, enf))
    kinds = {rec["type"] for rec in enf.records}
    assert kinds == {"user", "impression", "watch", "feedback"} or \
        kinds == {"user", "impression", "watch"}
    # Only the public record schema: every record parses, and carries no other key.
    allowed = {"v", "type", "event_id", "user_id", "ts", "age", "gender", "occupation",
               "interest_tags", "request_id", "items", "video_id", "play_ms", "duration_ms",
               "kind", "reason_category", "reason_text"}
    for rec in enf.records:
        assert parse_event(rec)
        assert set(rec) <= allowed, set(rec) - allowed
    for req in enf.requests:
        assert set(vars(req)) == {"request_id", "user_id", "video_ids", "ranker_scores"}
    # No latent value travels: no sensitivity, intensity, engagement or p_* anywhere.
    text = repr(enf.records) + repr(enf.requests)
    for name in ("sens", "intensity", "engagement", "vocal", "p_implicit", "truth"):
        assert name not in text


def test_world_recovers_the_simulators_dislike_intercept(world: World, tmp_path: Path) -> None:
    # The same world, re-simulated: the intercept recovered equals the calibrated one.
    cfg = SimulationConfig(users=120, videos=300, seed=9, write_frames=False,
                           real_videos_per_file=0)
    from enf_core.data.response import calibrate_intercept

    assert -20 < world.dislike_intercept < 0
    assert calibrate_intercept(np.zeros(1), cfg.dislike_rate) == pytest.approx(
        np.log(cfg.dislike_rate / (1 - cfg.dislike_rate)), abs=1e-6)
    assert len(world.histories) == world.n_users
    assert sum(len(h.video) for h in world.histories) > 15 * world.n_users - 1
    tally = ArmTally()
    tally.add_request(scored=12, suppressed=3, served=0, round_ix=0)
    assert tally.metrics()["empty_requests"] == 1.0


def test_probes_pair_one_carrier_with_clean_videos(world: World) -> None:
    from enf_core.ab.experiment import SLOW_ELEMENT, _probes

    catalogue = np.arange(world.n_videos)
    e = int(np.argmax((world.videos["intensity"] > 0).sum(axis=0)[:SLOW_ELEMENT]))
    probes = _probes(world, catalogue, np.zeros(world.n_videos, bool), 0, 3, "u.s0", 2, e, 2)
    assert len(probes) == 2
    index = {str(v): i for i, v in enumerate(world.videos["video_id"])}
    for p in probes:
        rows = world.videos["intensity"][[index[v] for v in p.video_ids]]
        assert rows[0, e] > 0 and len(p.video_ids) == 4
        assert (rows[1:] <= 0).all()
    r = Responsiveness()
    r.probe(-1, False)
    r.probe(0, True)
    assert [b["delay_ms"] for b in r.summary()["probes"]] == [-1, 0]
