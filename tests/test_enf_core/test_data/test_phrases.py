"""The reason phrase bank: variety, named objects, vague reasons."""

from __future__ import annotations

import numpy as np

from enf_core.data.imagenet_elements import OBJECTS_BY_ELEMENT
from enf_core.data.phrases import VAGUE_PHRASES, phrase_inventory, reason_text
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS


def test_several_hundred_distinct_phrasings() -> None:
    inventory = phrase_inventory()
    assert len(inventory) >= 500
    assert set(VAGUE_PHRASES) <= inventory


def test_reason_names_the_object() -> None:
    rng = np.random.default_rng(0)
    for element in ELEMENTS:
        for obj in OBJECTS_BY_ELEMENT[element]:
            text = reason_text(rng, category=ELEMENT_REASON[element].value, element=element,
                               obj=obj.name, p_vague=0.0, p_category=0.0)
            assert obj.name.lower() in text.lower()


def test_drawn_reasons_vary_and_some_are_vague() -> None:
    rng = np.random.default_rng(1)
    texts = [reason_text(rng, category="visual_discomfort", element="insects_spiders",
                         obj="tarantula") for _ in range(500)]
    assert len(set(texts)) >= 150
    vague = [t for t in texts if "tarantula" not in t.lower()]
    assert 0.1 <= len(vague) / len(texts) <= 0.4
    slow = reason_text(rng, category="boring", element="slow_plot", topic="food", seconds=12,
                       p_vague=0.0, p_category=0.0)
    assert "food" in slow or "12" in slow
