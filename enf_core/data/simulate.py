"""A TVNF-like simulator with latent truth, multi-granular negative feedback and an oracle.

The paper's TVNF dataset is private; this is the project's stand-in with known
truth. Every modelling choice is documented in docs/data.md; in short:

* Users have latent topic interests (Dirichlet over ``TOPICS``, shifted by age)
  and traits that drive the four reasons: sensitivity to negative events, to
  vulgarity and to particular values (animals as food, gambling, alcohol...),
  patience for slow plots, and phobias of particular visual elements (insects
  and spiders, snakes and reptiles, blood). Observed interest tags are a noisy
  top-k of the latent interests.
* Videos have a topic, a quality, a plot appeal (a low one is the ``slow_plot``
  element), and controversial elements (``ELEMENTS``) with an intensity and a
  nameable object. A title mentions the object unless it hides it
  (``p_hide_element``); frames always show it, in an evidence window.
* A feed shows each user pages of ``page_size`` videos, chosen by a recommender
  that reads the *observed* tags (so it errs the way real ones do).
* Watch ratio = sigmoid(z + noise): z adds interest match, quality and plot
  appeal, and subtracts the user's aversions to the video's elements, slow
  plots, and a position effect; the noise is logistic. A quick swipe (implicit
  negative) is a watch ratio below 0.3.
* A dislike (explicit negative, ~0.3 %) is more likely the stronger the user's
  strongest reason and after a quick swipe; its category is drawn from a
  softmax of the four reason scores with a slip probability, and its text from
  the phrase bank naming the triggering object.
* The oracle knows all latent variables and the noise model and makes the
  Bayes-optimal calls; its scores (the ceiling for every model) are reported.

Latent truth goes to ``DIR/truth/``, which ``read_dataset`` never reads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from enf_core.data import phrases
from enf_core.data.frames import FrameConfig, ImageHead, load_head, synthesize_frames
from enf_core.data.imagenet_elements import OBJECTS, OBJECTS_BY_ELEMENT
from enf_core.data.response import Outcomes, ResponseDraws, dislike_trigger, respond
from enf_core.data.schema import write_dataset
from enf_core.data.split import SplitConfig, split_column
from enf_core.data.summary import summarize
from enf_core.data.titles import make_title
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

__all__ = [
    "REAL_VIDEOS",
    "SimulationConfig",
    "SimulationResult",
    "oracle_scores",
    "simulate",
]

log = logging.getLogger(__name__)

N_T = len(TOPICS)
N_E = len(ELEMENTS)
N_R = len(REASONS)
E = {e: i for i, e in enumerate(ELEMENTS)}
T = {t: i for i, t in enumerate(TOPICS)}
R = {r.value: i for i, r in enumerate(REASONS)}
SLOW = E["slow_plot"]

OCCUPATIONS = ("student", "engineer", "teacher", "nurse", "driver", "retired", "sales",
               "artist", "farmer", "office worker", "self-employed", "doctor")

# Element prevalence per topic (probability that a video of the topic carries it);
# every element also has ``base_element_rate`` everywhere.
TOPIC_ELEMENT_RATES: dict[str, dict[str, float]] = {
    "news": {"accident_emergency": 0.10, "fire_disaster": 0.08, "weapons": 0.06,
             "negative_event_cue": 0.10, "blood_injury": 0.04},
    "sports": {"blood_injury": 0.05, "accident_emergency": 0.03, "value_conflict_cue": 0.03},
    "food": {"animal_cruelty_food_animals": 0.14, "insects_spiders": 0.04},
    "animals": {"insects_spiders": 0.12, "snakes_reptiles": 0.12,
                "animal_cruelty_food_animals": 0.04},
    "travel": {"snakes_reptiles": 0.05, "insects_spiders": 0.05, "fire_disaster": 0.03},
    "music": {"value_conflict_cue": 0.06, "vulgarity_cue": 0.05},
    "comedy": {"vulgarity_cue": 0.14, "value_conflict_cue": 0.05},
    "gaming": {"weapons": 0.12, "blood_injury": 0.06},
    "technology": {"fire_disaster": 0.02},
    "fashion": {"vulgarity_cue": 0.10, "value_conflict_cue": 0.08},
    "cars": {"accident_emergency": 0.10},
    "finance": {"value_conflict_cue": 0.10},
    "health": {"blood_injury": 0.10},
    "education": {"negative_event_cue": 0.03},
    "movies": {"weapons": 0.14, "blood_injury": 0.08, "negative_event_cue": 0.05},
    "family": {"negative_event_cue": 0.03, "insects_spiders": 0.02},
}

# Topic popularity (share of the catalogue) and the topics each age group leans to.
TOPIC_SHARE = np.array([1.3, 1.1, 1.3, 1.3, 1.0, 1.0, 1.2, 0.9, 0.8, 0.8, 0.7, 0.6, 0.7, 0.6,
                        1.0, 0.8])
_YOUNG = ("gaming", "music", "fashion", "comedy", "technology")
_OLD = ("news", "finance", "health", "family", "travel")

# The clips in shared/data/videos, their topic and elements as the EfficientNet
# head and the file names suggest (see docs/data.md).
REAL_VIDEOS: dict[str, dict[str, Any]] = {
    "moviepy_chaplin.mp4": {"topic": "comedy", "elements": {},
                            "title": "Silent film classic: the tramp's day out"},
    "moviepy_fire2.mp4": {"topic": "news", "elements": {"fire_disaster": 0.6},
                          "title": "Evening news: fire downtown"},
    "moviepy_example2.mp4": {"topic": "food", "elements": {"snakes_reptiles": 0.4},
                             "title": "Garden greens and a surprise visitor"},
    "moviepy_video_with_failing_audio.mp4": {"topic": "travel", "elements": {"weapons": 0.4},
                                             "title": "Air show over the bay"},
}


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulator, with the defaults that give TVNF's scale.

    The noise knobs (``noise_scale``, ``class_temperature``, ``class_slip``)
    were tuned so that the oracle lands at implicit F1 ~0.75 and explicit
    class accuracy ~0.87 (docs/data.md has the measurements).
    """

    users: int = 10_000
    videos: int = 20_000
    days: int = 7
    seed: int = 0
    start_ts_ms: int = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    # exposure
    min_interactions: int = 15  # TVNF: every user has at least 15
    mean_extra_interactions: float = 18.0  # negative binomial on top of the minimum
    extra_dispersion: float = 1.5
    page_size: int = 6
    p_recommend_interest: float = 0.6  # share of impressions picked from the user's tags
    popularity_sigma: float = 1.0  # log-normal popularity of videos
    # videos
    base_element_rate: float = 0.012
    p_hide_element: float = 0.35  # title and tags do not mention the element
    slow_appeal_cutoff: float = 0.3  # plot appeal below this is a slow plot
    duration_median_ms: int = 18_000
    duration_sigma: float = 0.45
    duration_range_ms: tuple[int, int] = (5_000, 120_000)
    # watch model: z = bias + engagement + quality + beta_interest * log-interest
    #   + beta_plot * (appeal - 0.5) - aversion_scale * sum(sens * intensity)
    #   - slow_scale * impatience * slowness - position_effect * position
    watch_bias: float = 0.4
    beta_interest: float = 0.55
    beta_plot: float = 1.2
    aversion_scale: float = 3.0
    slow_scale: float = 2.5
    position_effect: float = 0.06
    noise_scale: float = 0.4  # logistic noise on z
    p_replay: float = 0.25  # a full watch is replayed (watch ratio > 1)
    # explicit negatives
    dislike_rate: float = 0.003
    dislike_gain: float = 7.0  # logit per unit of the strongest reason score
    dislike_after_swipe: float = 1.5  # logit bonus after a quick swipe
    vocal_sigma: float = 0.8  # per-user propensity to press dislike
    interest_boredom: float = 0.08  # boring score per unit of missing log-interest
    class_temperature: float = 0.1
    class_slip: float = 0.08  # a user picks a random category
    p_vague: float = 0.1
    p_category_only: float = 0.12
    # frames
    frames: FrameConfig = field(default_factory=FrameConfig)
    write_frames: bool = True
    real_videos_dir: str | None = None  # None: look for shared/data/videos beside the repo
    real_videos_per_file: int = 2
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class SimulationResult:
    """What ``simulate`` wrote and measured."""

    out_dir: Path
    summary: dict[str, Any]
    timings: dict[str, float]


# ----------------------------------------------------------------- helpers


def _default_real_videos_dir() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data" / "videos"
        if candidate.is_dir():
            return candidate
        candidate = parent / "shared" / "data" / "videos"
        if candidate.is_dir():
            return candidate
    return None


def _video_duration_ms(path: Path) -> int | None:
    try:
        import decord  # lazy: optional, only to read real clips' lengths

        reader = decord.VideoReader(str(path))
        return round(len(reader) / reader.get_avg_fps() * 1000)
    except Exception:  # missing decord or an unreadable file: keep the simulated length
        return None


# ----------------------------------------------------------------- users


def _users(rng: np.random.Generator, cfg: SimulationConfig) -> dict[str, Any]:
    n = cfg.users
    age = np.clip(np.round(rng.gamma(6.0, 5.5, size=n) + 12), 16, 80).astype(np.int16)
    gender = rng.choice(np.array(["F", "M"], dtype=object), size=n)
    occupation = rng.choice(np.array(OCCUPATIONS, dtype=object), size=n)
    occupation[age >= 63] = "retired"
    occupation[age <= 20] = "student"
    # Interests: sparse Dirichlet, with a prior leaning by age.
    prior = np.tile(TOPIC_SHARE / TOPIC_SHARE.sum() * N_T, (n, 1)) * 0.3
    young = (age < 30)[:, None]
    old = (age >= 45)[:, None]
    for t in _YOUNG:
        prior[:, T[t]] *= np.where(young[:, 0], 2.0, 1.0)
    for t in _OLD:
        prior[:, T[t]] *= np.where(old[:, 0], 2.0, 1.0)
    g = rng.gamma(prior)
    interests = g / g.sum(axis=1, keepdims=True)
    # Observed tags: a noisy top-k of the latent interests (people mis-declare).
    k = rng.integers(2, 5, size=n)
    noisy = np.log(interests + 1e-9) + rng.gumbel(size=(n, N_T)) * 0.8
    order = np.argsort(-noisy, axis=1)
    tags = [[TOPICS[j] for j in order[i, : k[i]]] for i in range(n)]
    # Traits -> per-element sensitivity in [0, 1].
    sens = np.zeros((n, N_E))

    def phobia(p: float) -> np.ndarray:
        has = rng.random(n) < p
        return np.where(has, rng.uniform(0.65, 1.0, n), rng.uniform(0.0, 0.2, n))

    sens[:, E["insects_spiders"]] = phobia(0.22)
    sens[:, E["snakes_reptiles"]] = phobia(0.18)
    sens[:, E["blood_injury"]] = phobia(0.20)
    neg = np.clip(rng.beta(2.0, 3.5, n) + np.where(age >= 50, 0.1, 0.0), 0, 1)
    for e in ("weapons", "accident_emergency", "fire_disaster", "negative_event_cue"):
        sens[:, E[e]] = np.clip(neg + rng.normal(0, 0.12, n), 0, 1)
    vulgar = np.clip(rng.beta(1.5, 3.0, n) + np.where(age >= 45, 0.15, 0.0), 0, 1)
    sens[:, E["vulgarity_cue"]] = vulgar
    sens[:, E["value_conflict_cue"]] = phobia(0.28)
    animal_lover_p = 0.12 + 0.5 * interests[:, T["animals"]] / interests.max(axis=1)
    lover = rng.random(n) < animal_lover_p
    sens[:, E["animal_cruelty_food_animals"]] = np.where(lover, rng.uniform(0.7, 1.0, n),
                                                         rng.uniform(0.0, 0.3, n))
    patience = rng.beta(2.0, 2.0, n)
    sens[:, SLOW] = 1.0 - patience
    return {
        "user_id": np.array([f"u{i:06d}" for i in range(n)], dtype=object),
        "age": age, "gender": gender, "occupation": occupation, "tags": tags,
        "interests": interests, "sens": sens, "patience": patience,
        "neg_sensitivity": neg, "vulgarity_aversion": vulgar, "animal_lover": lover,
        "engagement": rng.normal(0.0, 0.4, n), "vocal": rng.normal(0.0, cfg.vocal_sigma, n),
        "tag_topics": [[T[t] for t in row] for row in tags],
    }


# ----------------------------------------------------------------- videos


def _videos(rng: np.random.Generator, cfg: SimulationConfig) -> dict[str, Any]:
    n = cfg.videos
    topic = rng.choice(N_T, size=n, p=TOPIC_SHARE / TOPIC_SHARE.sum())
    quality = rng.normal(0.0, 0.35, n)
    popularity = np.exp(rng.normal(0.0, cfg.popularity_sigma, n))
    appeal = rng.beta(2.2, 1.8, n)
    intensity = np.zeros((n, N_E))
    rates = np.full((N_T, N_E), cfg.base_element_rate)
    for t, table in TOPIC_ELEMENT_RATES.items():
        for e, p in table.items():
            rates[T[t], E[e]] += p
    rates[:, SLOW] = 0.0
    present = rng.random((n, N_E)) < rates[topic]
    intensity[present] = rng.uniform(0.3, 1.0, int(present.sum()))
    intensity[:, SLOW] = np.clip((cfg.slow_appeal_cutoff - appeal) / cfg.slow_appeal_cutoff,
                                 0.0, 1.0)
    objects = np.full((n, N_E), -1, dtype=np.int64)
    obj_index = {o.name: i for i, o in enumerate(OBJECTS)}
    for e, objs in OBJECTS_BY_ELEMENT.items():
        if not objs:
            continue
        rows = np.flatnonzero(intensity[:, E[e]] > 0)
        choice = rng.integers(len(objs), size=len(rows))
        objects[rows, E[e]] = np.array([obj_index[o.name] for o in objs])[choice]
    hidden = rng.random((n, N_E)) < cfg.p_hide_element
    duration = np.clip(np.round(cfg.duration_median_ms * np.exp(rng.normal(0, cfg.duration_sigma,
                                                                           n))),
                       *cfg.duration_range_ms).astype(np.int64)
    return {"video_id": np.array([f"v{i:06d}" for i in range(n)], dtype=object),
            "topic": topic, "quality": quality, "popularity": popularity, "appeal": appeal,
            "intensity": intensity, "objects": objects, "hidden": hidden,
            "duration": duration, "uri": np.full(n, None, dtype=object)}


def _assign_real_videos(rng: np.random.Generator, cfg: SimulationConfig,
                        videos: dict[str, Any]) -> list[int]:
    """Give a few videos a real clip from shared/data/videos instead of frames."""
    directory = Path(cfg.real_videos_dir) if cfg.real_videos_dir else _default_real_videos_dir()
    if directory is None or cfg.real_videos_per_file <= 0:
        return []
    rows: list[int] = []
    candidates = rng.permutation(cfg.videos)
    cursor = 0
    obj_index = {o.name: i for i, o in enumerate(OBJECTS)}
    for fname, spec in REAL_VIDEOS.items():
        path = directory / fname
        if not path.is_file():
            continue
        length = _video_duration_ms(path)
        for _ in range(cfg.real_videos_per_file):
            if cursor >= len(candidates):
                break
            row = int(candidates[cursor])
            cursor += 1
            videos["topic"][row] = T[spec["topic"]]
            videos["intensity"][row, :SLOW] = 0.0
            videos["intensity"][row, SLOW + 1:] = 0.0
            videos["objects"][row] = -1
            for e, value in spec["elements"].items():
                videos["intensity"][row, E[e]] = value
                videos["objects"][row, E[e]] = obj_index[OBJECTS_BY_ELEMENT[e][0].name]
                videos["hidden"][row, E[e]] = True
            videos["uri"][row] = str(path.resolve())
            if length:
                videos["duration"][row] = length
            rows.append(row)
    return rows


def _titles(rng: np.random.Generator, videos: dict[str, Any],
            real_rows: list[int]) -> tuple[list[str], list[list[str]], np.ndarray]:
    """Titles and tags; returns which element (index or -1) each title mentions."""
    n = len(videos["topic"])
    titles: list[str] = []
    tags: list[list[str]] = []
    mentioned = np.full(n, -1, dtype=np.int64)
    shown = (videos["objects"] >= 0) & ~videos["hidden"]
    real = set(real_rows)
    for i in range(n):
        topic = TOPICS[videos["topic"][i]]
        if i in real:
            spec = REAL_VIDEOS[Path(videos["uri"][i]).name]
            titles.append(spec["title"])
            tags.append([topic])
            continue
        cand = np.flatnonzero(shown[i])
        obj_name = None
        tag = [topic]
        if cand.size:
            e = int(cand[np.argmax(videos["intensity"][i, cand])])
            mentioned[i] = e
            obj_name = OBJECTS[videos["objects"][i, e]].name
            tag.append(obj_name.replace(" ", "_"))
        titles.append(make_title(rng, topic, obj_name))
        tags.append(tag)
    return titles, tags, mentioned


def _evidence(rng: np.random.Generator, cfg: SimulationConfig,
              videos: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video, up to 3 element slots: object, amplitude and evidence window."""
    n = len(videos["topic"])
    fc = cfg.frames
    slots = 3
    objects = np.full((n, slots), -1, dtype=np.int64)
    amp = np.zeros((n, slots))
    window = np.zeros((n, slots, 2), dtype=np.int64)
    visual = videos["objects"] >= 0
    order = np.argsort(-np.where(visual, videos["intensity"], -1.0), axis=1)[:, :slots]
    for s in range(slots):
        e = order[:, s]
        has = visual[np.arange(n), e]
        objects[has, s] = videos["objects"][np.arange(n), e][has]
        inten = videos["intensity"][np.arange(n), e]
        lo_amp, hi_amp = fc.element_amp
        amp[:, s] = np.where(has, lo_amp + (hi_amp - lo_amp) * inten * rng.uniform(0.6, 1.0, n),
                             0.0)
        length = rng.integers(fc.evidence_len[0], fc.evidence_len[1] + 1, n)
        start = (rng.random(n) * (fc.n_frames - length + 1)).astype(np.int64)
        window[:, s, 0] = start
        window[:, s, 1] = start + length - 1
    return objects, amp, window


# ----------------------------------------------------------------- exposure


def _exposures(rng: np.random.Generator, cfg: SimulationConfig, users: dict[str, Any],
               videos: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(user index, video index) per impression, grouped by user, no repeats where possible."""
    n_users = cfg.users
    p = cfg.extra_dispersion / (cfg.extra_dispersion + cfg.mean_extra_interactions)
    counts = cfg.min_interactions + rng.negative_binomial(cfg.extra_dispersion, p, n_users)
    counts = np.minimum(counts, max(cfg.min_interactions, cfg.videos // 2))
    user_ix = np.repeat(np.arange(n_users), counts)
    m = len(user_ix)
    # Topic of each impression: from the user's tags, or the catalogue at large.
    by_tags = rng.random(m) < cfg.p_recommend_interest
    n_tags = np.array([len(t) for t in users["tag_topics"]])
    tag_matrix = np.full((n_users, 4), 0, dtype=np.int64)
    for i, row in enumerate(users["tag_topics"]):
        tag_matrix[i, : len(row)] = row
    pick = (rng.random(m) * n_tags[user_ix]).astype(np.int64)
    topic_share = np.bincount(videos["topic"], minlength=N_T) / cfg.videos
    topic = np.where(by_tags, tag_matrix[user_ix, pick], rng.choice(N_T, size=m, p=topic_share))
    # Within a topic, by popularity.
    order = np.argsort(videos["topic"], kind="stable")
    sorted_topic = videos["topic"][order]
    cum = np.cumsum(videos["popularity"][order])
    starts = np.searchsorted(sorted_topic, np.arange(N_T))
    ends = np.searchsorted(sorted_topic, np.arange(N_T), side="right")

    cum0 = np.r_[0.0, cum]
    empty = starts == ends
    if empty.any():  # a small catalogue may miss a topic: draw those from any topic
        fallback = np.flatnonzero(~empty)
        topic = np.where(empty[topic], rng.choice(fallback, size=m), topic)

    def draw(topics: np.ndarray) -> np.ndarray:
        lo, hi = cum0[starts[topics]], cum0[ends[topics]]
        u = lo + rng.random(len(topics)) * (hi - lo)
        pos = np.clip(np.searchsorted(cum, u, side="right"), starts[topics], ends[topics] - 1)
        return np.asarray(order[pos])

    video_ix = draw(topic)
    for _ in range(6):  # re-draw repeats of the same (user, video)
        key = user_ix.astype(np.int64) * cfg.videos + video_ix
        _, first = np.unique(key, return_index=True)
        dup = np.ones(m, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        video_ix[dup] = draw(topic[dup])
    return user_ix, video_ix


# ----------------------------------------------------------------- outcomes


def _outcomes(rng: np.random.Generator, cfg: SimulationConfig, users: dict[str, Any],
              videos: dict[str, Any], user_ix: np.ndarray, video_ix: np.ndarray,
              position: np.ndarray) -> Outcomes:
    """The response model (``enf_core.data.response``) with this generator's draws,
    taken in the simulator's historical order so a seed gives the same dataset."""
    m = len(user_ix)
    noise = rng.logistic(0.0, cfg.noise_scale, m)
    replay_u = rng.random(m)
    replay_factor = rng.uniform(1.0, 2.5, m)
    dislike_u = rng.random(m)
    draws = ResponseDraws(noise, replay_u, replay_factor, dislike_u,
                          category_u=lambda rows: rng.random(len(rows)))
    return respond(cfg, users, videos, user_ix, video_ix, position, draws)


# ----------------------------------------------------------------- oracle


def _best_f1_threshold(p: np.ndarray) -> float:
    """Threshold on P(positive) that maximises expected F1, from the probabilities alone."""
    order = np.sort(p)[::-1]
    tp = np.cumsum(order)
    k = np.arange(1, len(order) + 1)
    expected_f1 = 2 * tp / (k + order.sum())
    return float(order[int(np.argmax(expected_f1))])


def oracle_scores(p_implicit: np.ndarray, implicit: np.ndarray, p_reason: np.ndarray,
                  category: np.ndarray) -> dict[str, float]:
    """Bayes-optimal calls from the latent truth: implicit F1 and explicit class accuracy.

    Implicit: predict a quick swipe when P(swipe | latent) is above the threshold
    that maximises *expected* F1 (chosen without looking at outcomes). Explicit:
    the most probable reason category given the latent reason scores.
    """
    threshold = _best_f1_threshold(p_implicit)
    pred = p_implicit >= threshold
    tp = float(np.sum(pred & implicit))
    precision = tp / max(1.0, float(pred.sum()))
    recall = tp / max(1.0, float(implicit.sum()))
    f1 = 2 * precision * recall / max(1e-12, precision + recall)
    has = category >= 0
    class_acc = float(np.mean(p_reason[has].argmax(axis=1) == category[has])) if has.any() else 0.0
    return {"explicit_class_acc": round(class_acc, 4), "implicit_f1": round(f1, 4),
            "implicit_precision": round(precision, 4), "implicit_recall": round(recall, 4),
            "implicit_threshold": round(threshold, 4)}


# ----------------------------------------------------------------- time


def _timestamps(rng: np.random.Generator, cfg: SimulationConfig, user_ix: np.ndarray,
                play_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Page (request) number, position and ts per impression; pages never overlap."""
    m = len(user_ix)
    starts = np.flatnonzero(np.r_[True, user_ix[1:] != user_ix[:-1]])
    sizes = np.diff(np.r_[starts, m])
    rank = np.arange(m) - np.repeat(starts, sizes)
    page = rank // cfg.page_size
    position = rank % cfg.page_size
    page_key = user_ix.astype(np.int64) * 100_000 + page
    page_first = np.flatnonzero(np.r_[True, page_key[1:] != page_key[:-1]])
    n_pages = len(page_first)
    page_user = user_ix[page_first]
    # Page start: a day, and an hour from a diurnal profile (lunch and evening peaks).
    hours = np.array([1, .5, .3, .2, .2, .4, 1, 2, 2.5, 2.5, 2.5, 3, 4, 3.5, 2.5, 2.5, 3, 3.5,
                      4.5, 5.5, 6, 5.5, 4, 2.5])
    day = rng.integers(0, cfg.days, n_pages)
    hour = rng.choice(24, size=n_pages, p=hours / hours.sum())
    start = (day * 86_400_000 + hour * 3_600_000
             + rng.integers(0, 3_600_000, n_pages)).astype(np.int64)
    # Pages are in (user, page number) order; give each user's pages its starts in time order.
    start_sorted = start[np.lexsort((start, page_user))]
    gaps = rng.integers(300, 1_500, m)
    step = play_ms + gaps
    page_sizes = np.diff(np.r_[page_first, m])
    cum = np.cumsum(step)
    page_base = np.repeat(cum[page_first] - step[page_first], page_sizes)
    within = cum - step - page_base  # time from page start to this impression
    page_len = np.add.reduceat(step, page_first)
    # Push a page later when the previous page of the same user has not ended.
    page_rank = page[page_first]
    for r in range(1, int(page_rank.max()) + 1 if n_pages else 0):
        ix = np.flatnonzero(page_rank == r)
        prev_end = start_sorted[ix - 1] + page_len[ix - 1] + 1_000
        start_sorted[ix] = np.maximum(start_sorted[ix], prev_end)
    ts = cfg.start_ts_ms + np.repeat(start_sorted, page_sizes) + within
    return page, position, ts


# ----------------------------------------------------------------- main


def simulate(out_dir: str | Path, config: SimulationConfig = SimulationConfig(), *,
             head: ImageHead | None = None) -> SimulationResult:
    """Generate a dataset in the ENF log schema (and its latent truth) under ``out_dir``."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    rng = np.random.default_rng(config.seed)
    seeds = rng.integers(0, 2**63 - 1, size=8)
    users = _users(np.random.default_rng(seeds[0]), config)
    videos = _videos(np.random.default_rng(seeds[1]), config)
    real_rows = _assign_real_videos(np.random.default_rng(seeds[2]), config, videos)
    titles, tags, mentioned = _titles(np.random.default_rng(seeds[3]), videos, real_rows)
    user_ix, video_ix = _exposures(np.random.default_rng(seeds[4]), config, users, videos)
    rank_pos = _positions(user_ix, config.page_size)
    outcomes = _outcomes(np.random.default_rng(seeds[5]), config, users, videos, user_ix,
                         video_ix, rank_pos)
    page, position, ts = _timestamps(np.random.default_rng(seeds[6]), config, user_ix,
                                     outcomes.play_ms)
    timings["latent_and_outcomes_s"] = time.perf_counter() - t0

    text_rng = np.random.default_rng(seeds[7])
    m = len(user_ix)
    reason_category = np.full(m, "", dtype=object)
    reason_text = np.full(m, "", dtype=object)
    trigger = np.full(m, "", dtype=object)
    trigger_object = np.full(m, "", dtype=object)
    for row in np.flatnonzero(outcomes.explicit):
        cat = REASONS[outcomes.category[row]]
        u, v = user_ix[row], video_ix[row]
        e = dislike_trigger(config, users["sens"][u], videos["intensity"][v],
                            float(users["interests"][u, videos["topic"][v]]), cat)
        element, obj = "", ""
        if e >= 0:
            element = ELEMENTS[e]
            if videos["objects"][v, e] >= 0:
                obj = OBJECTS[videos["objects"][v, e]].name
        reason_category[row] = cat.value
        trigger[row] = element
        trigger_object[row] = obj
        reason_text[row] = phrases.reason_text(
            text_rng, category=cat.value, element=element, obj=obj,
            topic=TOPICS[videos["topic"][v]],
            seconds=int(text_rng.integers(3, 16)), p_vague=config.p_vague,
            p_category=config.p_category_only)
    timings["text_s"] = time.perf_counter() - t0 - timings["latent_and_outcomes_s"]

    # ---- frames
    t1 = time.perf_counter()
    head = head or load_head(dim=1280)
    frames_meta: dict[str, Any] | None = None
    frames_row = np.arange(config.videos, dtype=np.int32)
    has_frames = np.ones(config.videos, dtype=bool)
    has_frames[real_rows] = False
    ev_objects, ev_amp, ev_window = _evidence(np.random.default_rng(seeds[2] + 1), config,
                                              videos)
    if config.write_frames:
        shape = (config.videos, config.frames.n_frames, head.dim)
        path = out / "frames.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
        synthesize_frames(mm, topics=videos["topic"], element_objects=ev_objects,
                          element_amp=ev_amp, evidence=ev_window,
                          slow=videos["intensity"][:, SLOW], head=head,
                          rng=np.random.default_rng(seeds[2] + 2), config=config.frames)
        mm.flush()
        del mm
        frames_meta = {"file": "frames.npy", "dtype": "float16", "shape": list(shape),
                       "encoder": "efficientnet-lite0", "feature": "pooled 1280-d (post-ReLU6)",
                       "head_source": head.source,
                       "uri_scheme": "frames://<absolute path of frames.npy>#<frames_row>",
                       "classes": "enf_core.data.imagenet_elements"}
    timings["frames_s"] = time.perf_counter() - t1

    # ---- tables
    t2 = time.perf_counter()
    users_table = pa.table({
        "user_id": pa.array(users["user_id"].tolist(), pa.string()),
        "age": pa.array(users["age"], pa.int16()),
        "gender": pa.array(users["gender"].tolist(), pa.string()),
        "occupation": pa.array(users["occupation"].tolist(), pa.string()),
        "interest_tags": pa.array(users["tags"], pa.list_(pa.string())),
    })
    videos_table = pa.table({
        "video_id": pa.array(videos["video_id"].tolist(), pa.string()),
        "title": pa.array(titles, pa.string()),
        "duration_ms": pa.array(videos["duration"], pa.int64()),
        "tags": pa.array(tags, pa.list_(pa.string())),
        "uri": pa.array(videos["uri"].tolist(), pa.string()),
        "frames_row": pa.array(np.where(has_frames & config.write_frames, frames_row, 0),
                               pa.int32(), mask=~(has_frames & config.write_frames)),
    })
    uid = users["user_id"][user_ix]
    vid = videos["video_id"][video_ix]
    request_id = np.char.add(np.char.add(uid.astype(str), "-p"), page.astype(str))
    split = split_column(uid, ts, position=position, video_ids=vid, config=config.split)
    inter_table = pa.table({
        "user_id": pa.array(uid.tolist(), pa.string()),
        "video_id": pa.array(vid.tolist(), pa.string()),
        "ts": pa.array(ts, pa.int64()),
        "play_ms": pa.array(outcomes.play_ms, pa.int64()),
        "duration_ms": pa.array(videos["duration"][video_ix], pa.int64()),
        "watch_ratio": pa.array(outcomes.watch_ratio, pa.float64()),
        "implicit_negative": pa.array(outcomes.implicit, pa.bool_()),
        "explicit_negative": pa.array(outcomes.explicit, pa.bool_()),
        "reason_category": pa.array(reason_category.tolist(), pa.string()),
        "reason_text": pa.array(reason_text.tolist(), pa.string()),
        "split": split,
        "request_id": pa.array(request_id.tolist(), pa.string()),
        "position": pa.array(position, pa.int16()),
        "rating": pa.nulls(m, pa.float32()),
    })
    oracle = oracle_scores(outcomes.p_implicit, outcomes.implicit, outcomes.p_reason,
                           outcomes.category)
    summary = summarize(users_table, videos_table, inter_table)
    summary["oracle"] = {"explicit_class_acc": oracle["explicit_class_acc"],
                         "implicit_f1": oracle["implicit_f1"]}
    meta = {"name": "simulated", "source": "enf_core.data.simulate",
            "config": _jsonable(asdict(config)), "frames": frames_meta,
            "split": config.split.describe(), "truth": "truth/ (latent; read_dataset ignores it)",
            "summary": summary}
    write_dataset(out, users_table, videos_table, inter_table, meta=meta,
                  frames_rows=config.videos if config.write_frames else None)
    _write_truth(out / "truth", config, users, videos, titles, mentioned, ev_window, real_rows,
                 uid, vid, ts, outcomes, trigger, trigger_object, oracle)
    timings["write_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return SimulationResult(out, summary, {k: round(v, 3) for k, v in timings.items()})


def _positions(user_ix: np.ndarray, page_size: int) -> np.ndarray:
    m = len(user_ix)
    starts = np.flatnonzero(np.r_[True, user_ix[1:] != user_ix[:-1]])
    sizes = np.diff(np.r_[starts, m])
    return (np.arange(m) - np.repeat(starts, sizes)) % page_size


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _write_truth(root: Path, cfg: SimulationConfig, users: dict[str, Any],
                 videos: dict[str, Any], titles: list[str], mentioned: np.ndarray,
                 window: np.ndarray, real_rows: list[int], uid: np.ndarray, vid: np.ndarray,
                 ts: np.ndarray, o: Outcomes, trigger: np.ndarray, trigger_object: np.ndarray,
                 oracle: dict[str, float]) -> None:
    """Latent truth, one Parquet per table, plus the noise model and the oracle's scores."""
    f32 = pa.list_(pa.float32())
    pq.write_table(pa.table({
        "user_id": pa.array(users["user_id"].tolist(), pa.string()),
        "interests": pa.array(users["interests"].astype(np.float32).tolist(), f32),
        "sensitivity": pa.array(users["sens"].astype(np.float32).tolist(), f32),
        "patience": pa.array(users["patience"], pa.float32()),
        "neg_sensitivity": pa.array(users["neg_sensitivity"], pa.float32()),
        "vulgarity_aversion": pa.array(users["vulgarity_aversion"], pa.float32()),
        "animal_lover": pa.array(users["animal_lover"], pa.bool_()),
        "engagement": pa.array(users["engagement"], pa.float32()),
        "vocal": pa.array(users["vocal"], pa.float32()),
    }), root / "users_truth.parquet", compression="zstd")
    n = len(videos["topic"])
    obj_names = np.where(videos["objects"] >= 0,
                         np.array([o.name for o in OBJECTS] + [""], dtype=object)[
                             videos["objects"]], "")
    real = np.zeros(n, dtype=bool)
    real[real_rows] = True
    pq.write_table(pa.table({
        "video_id": pa.array(videos["video_id"].tolist(), pa.string()),
        "topic": pa.array([TOPICS[t] for t in videos["topic"]], pa.string()),
        "quality": pa.array(videos["quality"], pa.float32()),
        "popularity": pa.array(videos["popularity"], pa.float32()),
        "plot_appeal": pa.array(videos["appeal"], pa.float32()),
        "element_intensity": pa.array(videos["intensity"].astype(np.float32).tolist(), f32),
        "element_objects": pa.array(obj_names.tolist(), pa.list_(pa.string())),
        "title_mentions": pa.array([ELEMENTS[e] if e >= 0 else "" for e in mentioned],
                                   pa.string()),
        "evidence_frames": pa.array(window.tolist(), pa.list_(pa.list_(pa.int64()))),
        "real_file": pa.array(real, pa.bool_()),
    }), root / "videos_truth.parquet", compression="zstd")
    pq.write_table(pa.table({
        "user_id": pa.array(uid.tolist(), pa.string()),
        "video_id": pa.array(vid.tolist(), pa.string()),
        "ts": pa.array(ts, pa.int64()),
        "z": pa.array(o.z, pa.float32()),
        "p_implicit": pa.array(o.p_implicit, pa.float32()),
        "implicit_cause": pa.array([REASONS[c].value for c in o.cause], pa.string()),
        "reason_scores": pa.array(o.reason_scores.astype(np.float32).tolist(), f32),
        "p_dislike": pa.array(o.p_dislike, pa.float32()),
        "p_reason": pa.array(o.p_reason.astype(np.float32).tolist(), f32),
        "trigger_element": pa.array(trigger.tolist(), pa.string()),
        "trigger_object": pa.array(trigger_object.tolist(), pa.string()),
    }), root / "interactions_truth.parquet", compression="zstd")
    noise = {"elements": list(ELEMENTS), "topics": list(TOPICS),
             "reasons": [r.value for r in REASONS],
             "watch_model": "watch_ratio = sigmoid(z + Logistic(0, noise_scale)); "
                            "implicit = watch_ratio < 0.3",
             "dislike_model": "P(dislike) = sigmoid(b + dislike_gain * max(reason_scores) + vocal "
                              "+ dislike_after_swipe * implicit); category ~ (1 - class_slip) * "
                              "softmax(reason_scores / class_temperature) + class_slip / 4",
             "config": _jsonable(asdict(cfg)), "oracle": oracle}
    (root / "noise_model.json").write_text(json.dumps(noise, indent=2) + "\n")
