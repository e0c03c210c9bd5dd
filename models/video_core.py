"""The Video Agent's reading of frames and title, shared by every backend.

Backends differ only in how they get their numbers (torch modules for training
and the CLI, ONNX sessions in the worker, precomputed features from the
simulator); this module turns those numbers into a ``VideoAnalysis`` with its
evidence, through the vocabulary in ``models.video_vocab``. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enf_core.analysis import ElementEvidence, VideoAnalysis
from enf_core.data.imagenet_elements import ELEMENT_CLASSES
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS, reason_index
from models.encoders import TitleEncoder
from models.video_vocab import (
    ELEMENT_PROTOTYPES,
    TOPIC_PROTOTYPES,
    VocabConfig,
    class_name,
    element_matrix,
    keyword_hits,
    topic_matrix,
)

__all__ = ["FrameCues", "TitleCues", "TitleReader", "build_analysis", "frame_cues"]

_N_T, _N_E, _N_R = len(TOPICS), len(ELEMENTS), len(REASONS)
_ELEMENT_M = element_matrix()
_TOPIC_M = topic_matrix()
_ER = np.zeros((_N_E, _N_R), np.float32)
for _i, _name in enumerate(ELEMENTS):
    _ER[_i, reason_index(ELEMENT_REASON[_name])] = 1.0
_BORING = reason_index("boring")
_SLOW = ELEMENTS.index("slow_plot")
# (floor, span) of the title–prototype cosine margin over the median prototype,
# per encoder: e5's cosines are compressed near 0.8, MiniLM's spread over [0, 0.6].
SEMANTIC_SCALE: dict[str, tuple[float, float, float]] = {
    "minilm": (0.20, 0.15, 0.05),  # floor, span, topic softmax temperature
    "e5": (0.03, 0.04, 0.02),
}


@dataclass(frozen=True)
class FrameCues:
    """What 16 frames say: per-element visual scores and where, topic mass, motion."""

    element_scores: np.ndarray  # [E]
    element_frames: dict[str, tuple[int, ...]]
    element_classes: dict[str, tuple[str, ...]]
    topic_mass: np.ndarray  # [T], sums to <= 1
    motion: float  # mean cosine distance of consecutive frame features
    topic_frames: dict[str, tuple[int, ...]] = field(default_factory=dict)
    topic_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TitleCues:
    element_scores: np.ndarray  # [E]
    element_words: dict[str, tuple[str, ...]]
    topic_dist: np.ndarray | None  # [T] or None without an encoder or topic words
    source: str = "keywords"


def frame_cues(probs: np.ndarray, features: np.ndarray | None,
               config: VocabConfig | None = None) -> FrameCues:
    """Read ImageNet probabilities [F, 1000] (and features [F, D] for motion)."""
    c = config or VocabConfig()
    mass = probs @ _ELEMENT_M  # [F, E]
    top2 = np.sort(mass, axis=0)[-2:].mean(0) if len(mass) >= 2 else mass.max(0)
    scores = np.clip((top2 - c.visual_floor) / c.visual_span, 0.0, 1.0)
    frames: dict[str, tuple[int, ...]] = {}
    classes: dict[str, tuple[str, ...]] = {}
    for e, name in enumerate(ELEMENTS):
        hit = np.nonzero(mass[:, e] >= c.frame_hit)[0]
        if not len(hit):
            continue
        frames[name] = tuple(int(f) for f in hit)
        cls = np.array(ELEMENT_CLASSES[name], np.int64)
        strength = probs[np.ix_(hit, cls)].sum(0)
        order = np.argsort(-strength)[:c.max_classes]
        classes[name] = tuple(class_name(int(cls[i])) for i in order if strength[i] > 0)
    per_frame_topics = probs @ _TOPIC_M  # [F, T]
    topic_mass = per_frame_topics.mean(0)
    topic_frames: dict[str, tuple[int, ...]] = {}
    topic_classes: dict[str, tuple[str, ...]] = {}
    for t in np.argsort(-topic_mass)[:2]:
        hit = np.nonzero(per_frame_topics[:, t] >= c.topic_frame_hit)[0]
        if not len(hit):
            continue
        name = TOPICS[int(t)]
        cls = np.nonzero(_TOPIC_M[:, t])[0]
        strength = probs[np.ix_(hit, cls)].sum(0)
        order = np.argsort(-strength)[:c.max_classes]
        topic_frames[name] = tuple(int(f) for f in hit)
        topic_classes[name] = tuple(class_name(int(cls[i])) for i in order)
    motion = 0.0
    if features is not None and len(features) >= 2:
        f = np.asarray(features, np.float32)
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)
        motion = float(np.mean(1.0 - np.sum(f[1:] * f[:-1], axis=1)))
    slow = np.clip((c.motion_normal - motion) / (c.motion_normal - c.motion_slow), 0.0, 1.0)
    if features is not None and len(features) >= 2:
        scores[_SLOW] = float(slow)
        if slow >= 0.5:
            frames["slow_plot"] = tuple(range(len(features)))
            classes["slow_plot"] = (f"little change between frames (motion {motion:.3f})",)
    return FrameCues(scores.astype(np.float32), frames, classes, topic_mass.astype(np.float32),
                     motion, topic_frames, topic_classes)


@dataclass
class TitleReader:
    """Title (and tags) -> element cues and a topic mix, by keywords and, with an
    encoder, by similarity to the prototype descriptions."""

    encoder: TitleEncoder | None = None
    config: VocabConfig = field(default_factory=VocabConfig)

    def __post_init__(self) -> None:
        self._protos: np.ndarray | None = None
        self._topics: np.ndarray | None = None
        self._words: dict[str, np.ndarray] = {}
        if self.encoder is not None:
            self._protos = self.encoder.encode([ELEMENT_PROTOTYPES[e] for e in ELEMENTS])
            self._topics = self.encoder.encode([TOPIC_PROTOTYPES[t] for t in TOPICS])

    @property
    def source(self) -> str:
        return self.encoder.name if self.encoder is not None else "keywords"

    def read_many(self, titles: list[str], tags: list[tuple[str, ...]] | None = None,
                  *, batch: int = 256) -> list[TitleCues]:
        """``read`` for many titles, encoding them in batches (dataset builds)."""
        tags = tags or [()] * len(titles)
        texts = [t.strip() or " ".join(g) for t, g in zip(titles, tags, strict=True)]
        emb: dict[str, np.ndarray] = {}
        if self.encoder is not None:
            unique = list(dict.fromkeys(x for x in texts if x))
            for i in range(0, len(unique), batch):
                chunk = unique[i:i + batch]
                emb.update(zip(chunk, self.encoder.encode(chunk), strict=True))
        return [self.read(t, tuple(g), embedding=emb.get(x))
                for t, g, x in zip(titles, tags, texts, strict=True)]

    def read(self, title: str, tags: tuple[str, ...] = (), *,
             embedding: np.ndarray | None = None) -> TitleCues:
        c = self.config
        text = " ".join([title, *tags]).strip()
        scores = np.zeros(_N_E, np.float32)
        words: dict[str, tuple[str, ...]] = {}
        for name, found in keyword_hits(text).items():
            e = ELEMENTS.index(name)
            scores[e] = c.keyword_score
            words[name] = found
        topic_dist: np.ndarray | None = None
        topic_words = keyword_hits(text, topics=True)
        if topic_words:
            counts = np.array([len(topic_words.get(t, ())) for t in TOPICS], np.float32)
            topic_dist = counts / counts.sum()
        # The sentence encoder reads the title and, separately, each tag (genres
        # such as "Horror" or "Documentary" carry meaning no keyword list has);
        # the two are averaged. Tags are embedded once each (cached): titles
        # repeat far more often than title + tags combinations do.
        semantic_text = title.strip() or " ".join(tags)
        if self.encoder is not None and self._protos is not None and semantic_text:
            floor, span, temp = SEMANTIC_SCALE.get(self.encoder.name, SEMANTIC_SCALE["minilm"])
            emb = (embedding if embedding is not None
                   else self.encoder.encode([semantic_text])[0])
            tag_list = [t for t in tags if t.strip()]
            if tag_list and title.strip():
                tag_mean = np.mean(self._phrase_vectors(tag_list), axis=0)
                emb = emb / max(float(np.linalg.norm(emb)), 1e-6) + tag_mean / max(
                    float(np.linalg.norm(tag_mean)), 1e-6)
                emb = emb / max(float(np.linalg.norm(emb)), 1e-6)
            sims = self._protos @ emb
            margin = sims - np.median(sims)
            semantic = np.clip((margin - floor) / span, 0.0, 1.0) * c.semantic_weight
            # "slow" is about pacing, which a title rarely states: keywords and motion only.
            semantic[_SLOW] = 0.0
            semantic[semantic < c.semantic_min] = 0.0
            for hit in np.nonzero(semantic > scores)[0]:
                e = int(hit)
                scores[e] = semantic[e]
                name = ELEMENTS[e]
                if name not in words:
                    words[name] = self._closest_words(title, e, tags)
            assert self._topics is not None
            t_sims = self._topics @ emb
            z = np.exp((t_sims - t_sims.max()) / temp)
            semantic_topics = z / z.sum()
            topic_dist = (semantic_topics if topic_dist is None
                          else 0.5 * semantic_topics + 0.5 * topic_dist)
        return TitleCues(scores, words, topic_dist, self.source)

    def _phrase_vectors(self, phrases: list[str]) -> list[np.ndarray]:
        """Embeddings of short phrases (title words, tags), cached across calls."""
        assert self.encoder is not None
        # a local view: another analysis thread may clear the shared cache meanwhile
        vecs = {w: v for w in phrases if (v := self._words.get(w)) is not None}
        missing = list(dict.fromkeys(w for w in phrases if w not in vecs))
        if missing:
            fresh = dict(zip(missing, self.encoder.encode(missing), strict=True))
            if len(self._words) > 50_000:  # bounded: titles reuse a small vocabulary
                self._words.clear()
            self._words.update(fresh)
            vecs.update(fresh)
        return [vecs[w] for w in phrases]

    def _closest_words(self, title: str, element: int, tags: tuple[str, ...] = (),
                       k: int = 2) -> tuple[str, ...]:
        """The title words (or tags) nearest the element's prototype: the evidence to cite."""
        assert self.encoder is not None and self._protos is not None
        tokens = [w.strip(".,!?:;|—-()\"'") for w in title.split()]
        tokens = list(dict.fromkeys([*(w for w in tokens if len(w) > 2),
                                     *(t for t in tags if t.strip())]))
        if not tokens:
            return ()
        sims = np.array([v @ self._protos[element] for v in self._phrase_vectors(tokens)])
        return tuple(tokens[i] for i in np.argsort(-sims)[:k])


def build_analysis(video_id: str, *, title: str, duration_ms: int, frames: FrameCues | None,
                   title_cues: TitleCues, frame_indices: tuple[int, ...] = (),
                   analyzer: str = "", config: VocabConfig | None = None,
                   extra: dict[str, Any] | None = None) -> VideoAnalysis:
    """Merge frame and title cues into the analysis the rest of ENF reads."""
    config = config or VocabConfig()
    visual = frames.element_scores if frames is not None else np.zeros(_N_E, np.float32)
    # Independent sources: P(element) = 1 − (1 − visual)(1 − title).
    elements = 1.0 - (1.0 - visual) * (1.0 - title_cues.element_scores)
    frame_topics = None
    if frames is not None and frames.topic_mass.sum() > 1e-6:
        frame_topics = (frames.topic_mass + 1e-3) / (frames.topic_mass + 1e-3).sum()
    if frame_topics is not None and title_cues.topic_dist is not None:
        w = config.title_topic_weight
        topics = w * title_cues.topic_dist + (1 - w) * frame_topics
    elif frame_topics is not None:
        topics = frame_topics
    elif title_cues.topic_dist is not None:
        topics = title_cues.topic_dist
    else:
        topics = np.full(_N_T, 1.0 / _N_T)
    topics = np.asarray(topics, np.float64)
    topics = topics / topics.sum()
    plot_appeal = float(np.clip(0.75 - 0.6 * elements[_SLOW], 0.05, 0.95))
    prior = elements @ _ER + 0.05
    prior[_BORING] += 0.6 * (1.0 - plot_appeal)
    reasons = prior / prior.sum()
    evidence = []
    for e, name in enumerate(ELEMENTS):
        f = frames.element_frames.get(name, ()) if frames is not None else ()
        cls = frames.element_classes.get(name, ()) if frames is not None else ()
        words = title_cues.element_words.get(name, ())
        if f or words:
            evidence.append(ElementEvidence(name, float(elements[e]), f, cls, words))
    evidence.sort(key=lambda ev: -ev.score)
    extra = dict(extra or {})
    if frames is not None:
        extra["topic_evidence"] = [
            {"topic": t, "score": round(float(topics[TOPICS.index(t)]), 4),
             "frames": list(f), "classes": list(frames.topic_classes.get(t, ()))}
            for t, f in frames.topic_frames.items()]
        extra["motion"] = round(frames.motion, 4)
    return VideoAnalysis(
        video_id=video_id,
        topics=tuple(float(x) for x in topics),
        elements=tuple(float(x) for x in elements),
        reasons=tuple(float(x) for x in reasons),
        plot_appeal=plot_appeal,
        duration_ms=duration_ms,
        title=title,
        evidence=tuple(evidence),
        frame_indices=frame_indices,
        analyzer=analyzer,
        extra=extra,
    )
