from __future__ import annotations

import time

from enf_core.analysis import ElementEvidence, VideoAnalysis
from enf_core.portrait import Portrait
from enf_core.reason import Explanation, dimensions, explain, format_frames
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS


def _analysis(**elements: float) -> VideoAnalysis:
    el = tuple(elements.get(n, 0.0) for n in ELEMENTS)
    evidence = (
        ElementEvidence("insects_spiders", elements.get("insects_spiders", 0.0),
                        (4, 5, 6, 7, 8, 9), ("tarantula", "barn_spider")),
        ElementEvidence("vulgarity_cue", elements.get("vulgarity_cue", 0.0),
                        title_words=("damn",)),
    )
    topics = [0.0] * len(TOPICS)
    topics[TOPICS.index("animals")] = 1.0
    return VideoAnalysis("v1", tuple(topics), el, (0.1, 0.2, 0.1, 0.6), plot_appeal=0.3,
                         evidence=evidence)


def test_format_frames() -> None:
    assert format_frames([]) == ""
    assert format_frames([3]) == "frame 3"
    assert format_frames([9, 4, 5, 6, 7, 8]) == "frames 4–9"
    assert format_frames([1, 4, 5, 6, 9]) == "frames 1, 4–6 and 9"


def test_cites_trait_and_frames_for_visual_discomfort() -> None:
    p = Portrait.new("u")
    p.element_sensitivity[ELEMENTS.index("insects_spiders")] = 0.85
    e = explain(p, _analysis(insects_spiders=0.9), 0.8, [0.05, 0.05, 0.1, 0.8])
    assert isinstance(e, Explanation)
    assert e.reason == "visual_discomfort"
    assert e.text == ("You usually swipe away videos with insects or spiders; "
                      "frames 4–9 show tarantula and barn spider.")
    assert e.evidence["traits"][0] == {"tag": "sensitive to insects and spiders", "weight": 0.85}
    assert e.evidence["elements"][0]["frames"] == [4, 5, 6, 7, 8, 9]
    assert set(e.evidence["dimensions"]) == {"interest_match", "plot_appeal", "values",
                                             "visual_tolerance"}
    assert e.evidence["dimensions"]["visual_tolerance"] < 0.3


def test_cites_title_words_for_vulgarity() -> None:
    p = Portrait.new("u")
    p.reason_tolerance[REASONS.index("vulgar_or_value_conflict")] = 0.2
    e = explain(p, _analysis(vulgarity_cue=0.7), 0.7, [0.1, 0.7, 0.1, 0.1])
    assert e.reason == "vulgar_or_value_conflict"
    assert "“damn”" in e.text and "little patience" in e.text
    assert e.evidence["traits"][0]["tag"] == "averse to vulgar content"


def test_boring_cites_quick_swipes_and_interest() -> None:
    p = Portrait.new("u")
    p.quick_swipe_rate = 0.5
    p.interests[TOPICS.index("animals")] = 0.1
    e = explain(p, _analysis(), 0.6, [0.1, 0.1, 0.7, 0.1])
    assert e.reason == "boring"
    assert "quick-swipe rate 50%" in e.text and "animals" in e.text and "0.30" in e.text
    tags = [t["tag"] for t in e.evidence["traits"]]
    assert "impatient with slow plots" in tags and "rarely finishes animals videos" in tags


def test_no_evidence_still_explains() -> None:
    e = explain(Portrait.new("u"), VideoAnalysis.neutral("v"), 0.55, [0.4, 0.2, 0.2, 0.2])
    assert e.reason == "negative_event" and e.text.endswith(".")
    assert e.to_dict()["p_negative"] == 0.55


def test_dimensions_in_unit_range() -> None:
    d = dimensions(Portrait.new("u"), _analysis(insects_spiders=1.0, vulgarity_cue=1.0))
    assert all(0.0 <= x <= 1.0 for x in d.values())


def test_explain_is_fast() -> None:
    p = Portrait.new("u")
    p.element_sensitivity[0] = 0.9
    a = _analysis(insects_spiders=0.9)
    t0 = time.perf_counter()
    for _ in range(2000):
        explain(p, a, 0.8, [0.05, 0.05, 0.1, 0.8])
    per_call = (time.perf_counter() - t0) / 2000
    assert per_call < 500e-6  # ~20 µs here; generous for slow CI machines
