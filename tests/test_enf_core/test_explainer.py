"""The explanation student's pure part: slots from the evidence, bank lookup, fallbacks."""

from __future__ import annotations

import pytest

from enf_core.analysis import ElementEvidence, VideoAnalysis
from enf_core.explainer import ExplainerStudent, slot_key, slots
from enf_core.portrait import Portrait
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

VISUAL = [0.0, 0.0, 0.0, 1.0]  # reason_probs: visual_discomfort
assert REASONS[3].value == "visual_discomfort"


def analysis(element: str = "insects_spiders", *, classes: tuple[str, ...] = ("tarantula",),
             words: tuple[str, ...] = (), score: float = 0.9, topic: str = "animals"
             ) -> VideoAnalysis:
    el = [0.0] * len(ELEMENTS)
    el[ELEMENTS.index(element)] = score
    topics = [0.0] * len(TOPICS)
    topics[TOPICS.index(topic)] = 1.0
    ev = (ElementEvidence(element, score, (3, 4, 5) if classes else (), classes, words),)
    return VideoAnalysis("v1", tuple(topics), tuple(el), (0.1, 0.1, 0.1, 0.7), evidence=ev)


def sensitive(element: str = "insects_spiders") -> Portrait:
    p = Portrait.new("u1")
    p.element_sensitivity[ELEMENTS.index(element)] = 0.9
    return p


def test_slots_name_the_object_the_frames_or_the_title_show() -> None:
    s = slots(sensitive(), analysis(classes=("barn_spider",)), VISUAL)
    assert (s.reason, s.element, s.obj, s.topic) == ("visual_discomfort", "insects_spiders",
                                                     "spider", "animals")
    # a title word wins over the frames' class: the user read it
    assert slots(sensitive(), analysis(words=("Scorpion",)), VISUAL).obj == "scorpion"
    # no nameable evidence: no object, and the key says so
    s = slots(sensitive(), analysis(classes=()), VISUAL)
    assert s.obj == "" and slot_key(s) == "visual_discomfort|insects_spiders|-"
    # an element below the floor is not cited
    assert slots(sensitive(), analysis(score=0.1), VISUAL).element == ""
    # the stated reason can be forced (training) instead of the argmax
    assert slots(sensitive(), analysis(), VISUAL, reason="boring").reason == "boring"


def test_student_fills_the_bank_and_falls_back() -> None:
    student = ExplainerStudent({
        "visual_discomfort|insects_spiders|obj": "the {obj} gave me the creeps",
        "visual_discomfort|insects_spiders|-": "gross",
        "visual_discomfort||-": "too graphic for {topic}"})
    e = student.explain(sensitive(), analysis(), 0.8, VISUAL)
    assert e.text == "The tarantula gave me the creeps."
    assert e.reason == "visual_discomfort" and e.evidence["cited"]["object"] == "tarantula"
    assert e.evidence["elements"] and "dimensions" in e.evidence  # the template's grounds
    assert student.explain(sensitive(), analysis(classes=()), 0.8, VISUAL).text == "Gross."
    assert student.explain(sensitive(), analysis(score=0.1), 0.8,
                           VISUAL).text == "Too graphic for animals."
    # a reason the bank never saw: its name, never an empty sentence
    assert ExplainerStudent({}).explain(sensitive(), analysis(), 0.8, VISUAL).text == (
        "Visual discomfort.")


def test_a_pattern_needing_an_object_is_never_used_without_one() -> None:
    student = ExplainerStudent({"visual_discomfort|insects_spiders|-": "the {obj} again",
                                "visual_discomfort||-": "gross"})
    assert student.explain(sensitive(), analysis(classes=()), 0.8, VISUAL).text == "Gross."


def test_round_trip_and_refusals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    student = ExplainerStudent({"boring||-": "dull"}, meta={"source": "test"})
    student.save(tmp_path / "e.json")
    back = ExplainerStudent.load(tmp_path / "e.json")
    assert back.bank == student.bank and back.meta == {"source": "test"}
    (tmp_path / "bad.json").write_text('{"format": "other", "version": 1, "bank": {}}')
    with pytest.raises(ValueError, match="not an enf-explainer"):
        ExplainerStudent.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="bank must map"):
        ExplainerStudent.from_dict({"format": "enf-explainer", "version": 1, "bank": {"a": 1}})
