"""The closed loop of the simulated A/B, independent of how arm B's filter is reached.

Per seed, a cohort of the simulation's users (disjoint across seeds when the
simulation has enough) goes through ``sessions x pages_per_session`` feed
requests. For each request the baseline ranker (``enf_core.ab.ranker``) ranks
a pool; arm A serves its top page, arm O filters it by the latent truth, arm B
by the decisions of an ``EnfFilter`` (in ``enf ab``: the real worker on a real
broker, ``streams.ab``). The users react through the simulator's own response
model (``enf_core.data.response.respond``) with draws shared by the arms (one
user shown one video reacts alike wherever it is shown), and arm B's
reactions go back to the filter as the user's events, so its portraits learn
online. The filter sees stream records only: user ids, video ids, ranked
lists, impressions, watches and dislikes (with the simulated user's stated
reason), never a latent variable.

All users of all seeds advance in lockstep (round r is every user's r-th
request), so a round's requests reach the filter as one burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from enf_core.ab.arms import ARMS, ArmTally, Budget, oracle_suppress, serve_demoted, serve_dropped
from enf_core.ab.ranker import RankerConfig, TopicInterest, rank_pool
from enf_core.ab.responsiveness import Responsiveness
from enf_core.ab.world import World
from enf_core.data import phrases
from enf_core.data.response import dislike_trigger, hashed_draws, latent_p_negative, respond
from enf_core.events import MAX_TEXT, SCHEMA_VERSION
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

SLOW_ELEMENT = ELEMENTS.index("slow_plot")

__all__ = ["ABConfig", "ABRun", "Decision", "EnfFilter", "Request", "run_experiment",
           "stream_user_id"]

MODES = ("drop", "demote")


@dataclass(frozen=True)
class ABConfig:
    """The experiment's size and rules; the defaults finish well within 15 minutes here."""

    seeds: int = 5
    users_per_seed: int = 300
    sessions: int = 4
    pages_per_session: int = 5
    catalogue: int = 1_500  # the most popular videos of the simulation form the catalogue
    history: bool = True  # warm the portraits and the ranker with each user's logged history
    mode: str = "drop"  # arm B: drop (suppression records) or demote (rerank pages)
    oracle_threshold: float = 0.5  # O suppresses only what is more likely negative than not
    ranker: RankerConfig = field(default_factory=RankerConfig)
    budget: Budget = field(default_factory=Budget)
    session_gap_ms: int = 0  # wall-clock pause between sessions (0: none)
    # Responsiveness probes: after a user's first dislike naming an element, requests of
    # one video carrying it + 3 clean ones, sent this many ms after the dislike (-1: just
    # before it), never served. Empty: no probes.
    probe_delays_ms: tuple[int, ...] = (-1, 0, 50, 100, 250, 500, 1_000, 2_000)
    probe_carriers: int = 2  # probe requests per new dislike and delay

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.seeds < 1 or self.users_per_seed < 1:
            raise ValueError("seeds and users_per_seed must be at least 1")
        if self.ranker.request_size < self.ranker.page_size:
            raise ValueError("request_size must be at least page_size")

    @property
    def rounds(self) -> int:
        return self.sessions * self.pages_per_session


@dataclass(frozen=True)
class Request:
    """One ranked list for arm B's filter."""

    request_id: str
    user_id: str  # the stream's user id
    video_ids: list[str]
    ranker_scores: list[float]


@dataclass(frozen=True)
class Decision:
    """The filter's answer to a request, aligned with its ``video_ids``."""

    suppressed: np.ndarray  # bool
    penalty: np.ndarray | None = None  # demote mode
    stale: bool = False


class EnfFilter(Protocol):
    """Arm B's filter: takes a round's requests, answers each; takes users' events.

    ``send_events`` may be given probe requests: each is sent once per delay in
    ``delays_ms`` (ms after the events, -1: just before them) with request id
    ``"{request_id}@{delay}"``; the answers come back under those ids.
    """

    async def send_events(self, events: dict[str, list[dict[str, Any]]], *,
                          probes: Sequence[Request] = (),
                          delays_ms: Sequence[int] = ()) -> dict[str, Decision]: ...

    async def answer(self, requests: list[Request]) -> dict[str, Decision]: ...


def stream_user_id(user_id: str, seed: int) -> str:
    """A user's id in the stream: each seed's copy of a user has its own portrait."""
    return f"{user_id}.s{seed}"


@dataclass
class ABRun:
    """Everything measured: per arm, one tally per seed; responsiveness of B and O."""

    config: ABConfig
    tallies: dict[str, list[ArmTally]]
    responsiveness: dict[str, Responsiveness]
    cohorts: list[np.ndarray]
    catalogue: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)

    def per_seed_metrics(self) -> dict[str, list[dict[str, float]]]:
        return {arm: [t.metrics() for t in tallies] for arm, tallies in self.tallies.items()}


def cohorts_for(world: World, config: ABConfig) -> list[np.ndarray]:
    """Users per seed: disjoint slices of one shuffle when there are enough users."""
    order = np.random.default_rng(20_240_101).permutation(world.n_users)
    want = config.users_per_seed
    if want * config.seeds <= world.n_users:
        return [order[s * want:(s + 1) * want] for s in range(config.seeds)]
    return [np.random.default_rng(1_000 + s).permutation(world.n_users)[:min(want, world.n_users)]
            for s in range(config.seeds)]


def catalogue_for(world: World, config: ABConfig) -> np.ndarray:
    """The ``catalogue`` most popular videos (observed popularity), by index."""
    n = min(config.catalogue, world.n_videos)
    return np.sort(np.argsort(-world.popularity, kind="stable")[:n])


def video_record(world: World, v: int, ts: int) -> dict[str, Any]:
    """The catalogue record of video ``v`` (what the Video Agent analyses)."""
    vid = str(world.videos["video_id"][v])
    return {"v": SCHEMA_VERSION, "type": "video", "event_id": f"ab:v:{vid}", "video_id": vid,
            "title": (world.videos["title"][v] or "")[:MAX_TEXT],
            "duration_ms": int(world.videos["duration"][v]), "ts": ts,
            "tags": list(world.videos["tags"][v])[:64], "uri": world.videos["uri"][v]}


def _profile_record(world: World, u: int, sid: str, ts: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"v": SCHEMA_VERSION, "type": "user", "event_id": f"ab:u:{sid}",
                           "user_id": sid, "ts": ts,
                           "interest_tags": world.users["interest_tags"][u][:64]}
    for name in ("age", "gender", "occupation"):
        value = world.users[name][u]
        if value is not None:
            rec[name] = value
    return rec


def _page_records(sid: str, request_id: str, video_ids: list[str], play_ms: list[int],
                  durations: list[int], dislikes: list[tuple[int, str, str]],
                  ts: int) -> list[dict[str, Any]]:
    """An impression page, a watch per video and a feedback per dislike."""
    out: list[dict[str, Any]] = [{
        "v": SCHEMA_VERSION, "type": "impression", "event_id": f"i:{request_id}",
        "user_id": sid, "request_id": request_id, "ts": ts,
        "items": [{"video_id": v, "position": k} for k, v in enumerate(video_ids)]}]
    disliked = {k: (cat, text) for k, cat, text in dislikes}
    for k, vid in enumerate(video_ids):
        out.append({"v": SCHEMA_VERSION, "type": "watch", "event_id": f"w:{request_id}:{k}",
                    "user_id": sid, "video_id": vid, "play_ms": int(play_ms[k]),
                    "duration_ms": int(durations[k]), "ts": ts + k})
        if k in disliked:
            cat, text = disliked[k]
            out.append({"v": SCHEMA_VERSION, "type": "feedback",
                        "event_id": f"f:{request_id}:{k}", "user_id": sid, "video_id": vid,
                        "kind": "dislike", "ts": ts + k, "reason_category": cat,
                        "reason_text": text[:MAX_TEXT]})
    return out


def history_records(world: World, u: int, sid: str, ts: int,
                    page_size: int) -> list[dict[str, Any]]:
    """A user's profile and logged history as stream records (warm-up of arm B)."""
    h = world.histories[u]
    out = [_profile_record(world, u, sid, ts)]
    vids = [str(world.videos["video_id"][v]) for v in h.video.tolist()]
    durations = world.videos["duration"][h.video].tolist()
    for start in range(0, len(vids), page_size):
        sl = slice(start, start + page_size)
        dislikes = [(k, h.category[start + k], h.text[start + k])
                    for k in range(len(vids[sl])) if h.disliked[start + k]
                    and h.category[start + k]]
        out += _page_records(sid, f"{sid}-h{start // page_size}", vids[sl],
                             h.play_ms[sl].tolist(), durations[sl], dislikes, ts)
    return out


@dataclass
class _UserState:
    seen: np.ndarray  # bool per video: shown to this user in this arm
    interest: TopicInterest


def _reason_text(world: World, seed: int, u: int, v: int, category: int) -> tuple[int, str]:
    """The element the user names and the text of the dislike (the simulator's phrases)."""
    cfg = world.config
    reason = REASONS[category]
    e = dislike_trigger(cfg, world.users["sens"][u], world.videos["intensity"][v],
                        float(world.users["interests"][u, world.videos["topic"][v]]), reason)
    element = ELEMENTS[e] if e >= 0 else ""
    obj = world.videos["objects"][v][e] if e >= 0 else ""
    rng = np.random.default_rng([seed, u, v, 7])
    text = phrases.reason_text(rng, category=reason.value, element=element, obj=obj,
                               topic=TOPICS[world.videos["topic"][v]],
                               seconds=int(rng.integers(3, 16)), p_vague=cfg.p_vague,
                               p_category=cfg.p_category_only)
    return e, text


def _probes(world: World, catalogue: np.ndarray, seen: np.ndarray, seed: int, u: int, sid: str,
            r: int, element: int, n: int) -> list[Request]:
    """Probe requests for a new dislike: one unseen video carrying the element (latent
    truth picks it; the worker sees only ids) and three with no element at all, so the
    budget (a quarter of 4 = 1) can only go to the carrier if ENF thinks it worst."""
    inten = world.videos["intensity"][catalogue]
    fresh = ~seen[catalogue]
    carriers = catalogue[fresh & (inten[:, element] > 0)]
    others = np.delete(inten, SLOW_ELEMENT, axis=1)
    clean = catalogue[fresh & (others.max(axis=1) <= 0) & (inten[:, SLOW_ELEMENT] <= 0)]
    if not len(carriers) or len(clean) < 3:
        return []
    rng = np.random.default_rng([seed, u, r, element, 13])
    out = []
    for k, c in enumerate(rng.permutation(carriers)[:n].tolist()):
        vids = [c, *rng.choice(clean, 3, replace=False).tolist()]
        out.append(Request(f"{sid}-x{r}-{element}-{k}", sid,
                           [str(world.videos["video_id"][v]) for v in vids], [0.0] * 4))
    return out


async def run_experiment(world: World, config: ABConfig, enf: EnfFilter, *,
                         progress: Callable[[str, int, int], None] | None = None,
                         clock: Callable[[], float] = time.time) -> ABRun:
    """Run every round for every seed; ``progress(stage, done, total)`` is told as it goes."""
    rc = config.ranker
    cohorts = cohorts_for(world, config)
    catalogue = catalogue_for(world, config)
    in_catalogue = np.zeros(world.n_videos, bool)
    in_catalogue[catalogue] = True
    tallies = {arm: [ArmTally() for _ in range(config.seeds)] for arm in ARMS}
    resp = {"B": Responsiveness(), "O": Responsiveness()}
    seconds: dict[str, float] = {}
    report = progress or (lambda stage, done, total: None)

    states: dict[str, list[dict[int, _UserState]]] = {arm: [] for arm in ARMS}
    for cohort in cohorts:
        for arm in ARMS:
            per_user = {}
            for u in cohort.tolist():
                tags = [TOPICS.index(t) for t in world.users["interest_tags"][u] if t in TOPICS]
                state = _UserState(np.zeros(world.n_videos, bool), TopicInterest(tags, rc))
                if config.history:
                    h = world.histories[u]
                    state.seen[h.video] = True
                    state.interest.watch_many(world.video_topic[h.video], h.watch_ratio)
                per_user[u] = state
            states[arm].append(per_user)

    t0 = time.perf_counter()
    if config.history:
        now = int(clock() * 1000)
        warm = {stream_user_id(str(world.users["user_id"][u]), s):
                history_records(world, u, stream_user_id(str(world.users["user_id"][u]), s), now,
                                rc.page_size)
                for s, cohort in enumerate(cohorts) for u in cohort.tolist()}
    else:
        now = int(clock() * 1000)
        warm = {stream_user_id(str(world.users["user_id"][u]), s):
                [_profile_record(world, u, stream_user_id(str(world.users["user_id"][u]), s),
                                 now)]
                for s, cohort in enumerate(cohorts) for u in cohort.tolist()}
    await enf.send_events(warm)
    seconds["warm_up_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    for r in range(config.rounds):
        if r and config.session_gap_ms and r % config.pages_per_session == 0:
            import asyncio

            await asyncio.sleep(config.session_gap_ms / 1000)
        # 1. Rank: the same pool draw for every arm, minus what that arm has shown.
        ranked: dict[str, dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]] = {
            arm: {} for arm in ARMS}
        requests: list[Request] = []
        request_key: dict[str, tuple[int, int]] = {}
        for s, cohort in enumerate(cohorts):
            for u in cohort.tolist():
                rng = np.random.default_rng([s, u, r, 11])
                draw = catalogue[rng.permutation(len(catalogue))[: rc.pool_size * 2]]
                for arm in ARMS:
                    st = states[arm][s][u]
                    pool = draw[~st.seen[draw]][: rc.pool_size]
                    ranked[arm][(s, u)] = rank_pool(pool, world.video_topic, world.popularity,
                                                    st.interest.share(), rc)
                vids, scores = ranked["B"][(s, u)]
                sid = stream_user_id(str(world.users["user_id"][u]), s)
                rid = f"{sid}-r{r}"
                request_key[rid] = (s, u)
                requests.append(Request(rid, sid, [str(world.videos["video_id"][v])
                                                   for v in vids.tolist()],
                                        [round(float(x), 5) for x in scores.tolist()]))
        # 2. Arm B's filter answers the round (the worker, in enf ab).
        sent_ms = clock() * 1000
        decisions = await enf.answer(requests)
        # 3. Serve, react, tally.
        events: dict[str, list[dict[str, Any]]] = {}
        probes: list[Request] = []
        for s, cohort in enumerate(cohorts):
            served: dict[str, list[tuple[int, np.ndarray]]] = {arm: [] for arm in ARMS}
            # The oracle's view of every O list of this seed, in one call.
            o_lists = [ranked["O"][(s, u)][0] for u in cohort.tolist()]
            o_users = np.concatenate([np.full(len(v), u) for u, v in zip(cohort.tolist(), o_lists,
                                                                           strict=True)])
            o_vids = np.concatenate(o_lists).astype(np.int64)
            o_pos = np.concatenate([np.minimum(np.arange(len(v)), rc.page_size - 1)
                                    for v in o_lists])
            o_p = latent_p_negative(world.config, world.users, world.videos, o_users, o_vids,
                                    o_pos, world.dislike_intercept)
            o_split = np.split(o_p, np.cumsum([len(v) for v in o_lists])[:-1])
            for ui, u in enumerate(cohort.tolist()):
                sid = stream_user_id(str(world.users["user_id"][u]), s)
                rid = f"{sid}-r{r}"
                for arm in ARMS:
                    vids, scores = ranked[arm][(s, u)]
                    if arm == "A":
                        page = vids[: rc.page_size]
                        n_sup, n_scored, stale = 0, 0, False
                    elif arm == "O":
                        mask = oracle_suppress(o_split[ui], config.budget, config.oracle_threshold,
                                               rc.page_size)
                        page = serve_dropped(vids, mask, rc.page_size)
                        n_sup, n_scored, stale = int(mask.sum()), len(vids), False
                        resp["O"].candidates(sid, r, sent_ms, world.videos["intensity"][vids],
                                             mask)
                    else:
                        d = decisions.get(rid)
                        if d is None:
                            raise RuntimeError(f"the filter did not answer request {rid}")
                        if config.mode == "demote" and d.penalty is not None:
                            page = serve_demoted(vids, scores, d.penalty, rc.page_size)
                        else:
                            page = serve_dropped(vids, d.suppressed, rc.page_size)
                        n_sup, n_scored, stale = int(d.suppressed.sum()), len(vids), d.stale
                        resp["B"].candidates(sid, r, sent_ms, world.videos["intensity"][vids],
                                             d.suppressed)
                    served[arm].append((u, page))
                    tallies[arm][s].add_request(scored=n_scored, suppressed=n_sup,
                                                served=len(page), round_ix=r, stale=stale)
            for arm in ARMS:
                rows = served[arm]
                if not rows:
                    continue
                u_ix = np.concatenate([np.full(len(p), u) for u, p in rows]).astype(np.int64)
                v_ix = np.concatenate([p for _, p in rows]).astype(np.int64)
                pos = np.concatenate([np.arange(len(p)) for _, p in rows])
                out = respond(world.config, world.users, world.videos, u_ix, v_ix, pos,
                              hashed_draws(world.config, s, u_ix, v_ix),
                              dislike_intercept=world.dislike_intercept)
                tallies[arm][s].add_reactions(out.watch_ratio, out.implicit, out.explicit)
                start = 0
                now = int(clock() * 1000)
                for u, page in rows:
                    sl = slice(start, start + len(page))
                    start += len(page)
                    st = states[arm][s][u]
                    st.seen[page] = True
                    st.interest.watch_many(world.video_topic[page], out.watch_ratio[sl])
                    if arm == "A" or not len(page):
                        continue
                    sid = stream_user_id(str(world.users["user_id"][u]), s)
                    dislikes = []
                    for k in np.flatnonzero(out.explicit[sl]).tolist():
                        v = int(page[k])
                        e, text = _reason_text(world, s, u, v, int(out.category[sl][k]))
                        if arm == "B" and e >= 0 and not resp["B"].has_disliked(sid, e):
                            probes += _probes(world, catalogue, st.seen, s, u, sid, r, e,
                                              config.probe_carriers)
                        resp[arm].dislike(sid, e, r, now)
                        dislikes.append((k, REASONS[int(out.category[sl][k])].value, text))
                    if arm == "B":
                        events[sid] = _page_records(
                            sid, f"{sid}-r{r}", [str(world.videos["video_id"][v])
                                                 for v in page.tolist()],
                            out.play_ms[sl].tolist(), world.videos["duration"][page].tolist(),
                            dislikes, now)
        # 4. Arm B's reactions go back into the stream (with probes around new dislikes).
        answers = await enf.send_events(events, probes=probes,
                                        delays_ms=config.probe_delays_ms if probes else ())
        for key, d in (answers or {}).items():
            resp["B"].probe(int(key.rsplit("@", 1)[1]), bool(d.suppressed[0]))
        report("rounds", r + 1, config.rounds)
    seconds["rounds_s"] = time.perf_counter() - t1
    return ABRun(config, tallies, resp, cohorts, catalogue, seconds)
