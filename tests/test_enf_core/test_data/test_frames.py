"""Frame synthesis and the ImageNet element tables."""

from __future__ import annotations

import numpy as np

from enf_core.data.frames import (
    FrameConfig,
    _synthetic_head,
    element_class_mass,
    head_probabilities,
    load_head,
    synthesize_frames,
)
from enf_core.data.imagenet_elements import (
    ELEMENT_CLASSES,
    IMAGENET_LABELS,
    OBJECTS,
    TOPIC_CLASSES,
    VISUAL_ELEMENTS,
    class_to_element,
)
from enf_core.taxonomy import ELEMENTS, TOPICS


def test_tables_are_disjoint_and_labelled() -> None:
    assert set(ELEMENT_CLASSES) == set(ELEMENTS)
    assert set(VISUAL_ELEMENTS) == set(ELEMENTS) - {"slow_plot"}
    assert ELEMENT_CLASSES["insects_spiders"][:1] and {72, 73, 74, 75, 76, 77} <= set(
        ELEMENT_CLASSES["insects_spiders"])
    assert set(range(52, 69)) <= set(ELEMENT_CLASSES["snakes_reptiles"])
    assert {407, 734} <= set(ELEMENT_CLASSES["accident_emergency"])
    assert {413, 763, 764} <= set(ELEMENT_CLASSES["weapons"])
    assert class_to_element(76) == "insects_spiders" and class_to_element(963) is None
    used = {c for o in OBJECTS for c in o.classes} | {
        c for cs in TOPIC_CLASSES.values() for c in cs}
    assert used <= set(IMAGENET_LABELS) and all(0 <= c < 1000 for c in used)
    assert set(TOPIC_CLASSES) == set(TOPICS)


def _frames(head, n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    obj = np.full((n, 1), -1)
    tarantula = next(i for i, o in enumerate(OBJECTS) if o.name == "tarantula")
    obj[: n // 2, 0] = tarantula
    amp = np.full((n, 1), 6.0)
    window = np.zeros((n, 1, 2), dtype=np.int64)
    window[:, 0] = (4, 9)
    slow = np.zeros(n)
    slow[-8:] = 1.0
    out = np.zeros((n, 16, head.dim), dtype=np.float16)
    synthesize_frames(out, topics=np.full(n, TOPICS.index("food")), element_objects=obj,
                      element_amp=amp, evidence=window, slow=slow, head=head, rng=rng,
                      config=FrameConfig(chunk_videos=16))
    return out


def test_real_head_reads_back_element_topic_and_pace() -> None:
    head = load_head()
    out = _frames(head)
    f = out.astype(np.float32)
    assert f.min() >= 0 and f.max() <= 6
    probs = head_probabilities(f, head)
    mass = element_class_mass(probs)[..., ELEMENTS.index("insects_spiders")]
    assert mass[:32, 4:10].mean() > 0.3  # evidence frames show the spider
    assert mass[:32, 11:].mean() < 0.05 and mass[32:].mean() < 0.05
    topic_mass = np.stack([probs[..., list(TOPIC_CLASSES[t])].sum(-1) for t in TOPICS], -1)
    assert (topic_mass[32:].argmax(-1) == TOPICS.index("food")).mean() > 0.95
    change = np.linalg.norm(np.diff(f, axis=1), axis=-1).mean(axis=1)
    assert change[-8:].max() < 0.5 * change[32:-8].min()  # slow plots barely change


def test_synthetic_head_is_a_stand_in() -> None:
    head = _synthetic_head(64)
    assert head.weight.shape == (1000, 64) and head.source == "synthetic"
    out = _frames(head, n=16)
    assert out.shape == (16, 16, 64)
