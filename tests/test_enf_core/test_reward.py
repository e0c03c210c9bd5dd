"""Every branch of the staged reward, the ungated sum and the answer grammar."""

from __future__ import annotations

import pytest

from enf_core.reason_prompt import parse_answer, render_answer
from enf_core.reward import Truth, rouge_mean, staged_reward, ungated_reward

DISLIKE = Truth(True, "visual_discomfort", "the spider close-up made my skin crawl")
SWIPE = Truth(True, "boring", "")  # a quick swipe with its cause, no written reason
UNLABELLED = Truth(True, None, "")  # negative without a reason label
POSITIVE = Truth(False)


def ans(neg: bool, reason: str | None, text: str = "x") -> str:
    return render_answer(neg, reason, text, think="frames 4–9 show tarantula")


def test_unparseable_scores_zero() -> None:
    for bad in ("", "no tags at all", '<think>x</think><answer>{"negative": true}</answer>',
                '<think>x</think><answer>{"negative": "yes", "reason": null, '
                '"explanation": ""}</answer>',
                '<think>x</think><answer>{not json}</answer>',
                '<think>x</think><answer>{"negative": true, "reason": "spooky", '
                '"explanation": ""}</answer>',
                '<think>x</think><answer>{"negative": false, "reason": "boring", '
                '"explanation": ""}</answer>',
                ans(True, "boring") + " trailing words"):
        r = staged_reward(bad, DISLIKE)
        assert (r.total, r.parsed, r.cls, r.rouge) == (0.0, False, None, None), bad
        assert ungated_reward(bad, DISLIKE).total == 0.0


def test_wrong_judgement_stops_at_zero() -> None:
    r = staged_reward(ans(False, None), DISLIKE)
    assert (r.total, r.judge, r.cls, r.rouge, r.parsed) == (0.0, 0.0, None, None, True)
    assert staged_reward(ans(True, "boring"), POSITIVE).total == 0.0


def test_right_on_positive_stops_at_half() -> None:
    r = staged_reward(ans(False, None), POSITIVE)
    assert (r.total, r.judge, r.cls, r.rouge) == (0.5, 0.5, None, None)


def test_right_without_reason_label_stops_at_half() -> None:
    r = staged_reward(ans(True, "boring"), UNLABELLED)
    assert (r.total, r.cls) == (0.5, None)


def test_wrong_class_stops_after_judgement() -> None:
    r = staged_reward(ans(True, "boring", DISLIKE.reason_text), DISLIKE)
    assert (r.total, r.judge, r.cls, r.rouge) == (0.5, 0.5, 0.0, None)


def test_right_class_without_written_reason_is_one_and_a_half() -> None:
    r = staged_reward(ans(True, "boring"), SWIPE)
    assert (r.total, r.cls, r.rouge) == (1.5, 1.0, None)


def test_right_class_adds_mean_rouge() -> None:
    perfect = staged_reward(ans(True, "visual_discomfort", DISLIKE.reason_text), DISLIKE)
    assert perfect.total == pytest.approx(2.5) and perfect.rouge == pytest.approx(1.0)
    partial = staged_reward(ans(True, "visual_discomfort", "a spider close-up"), DISLIKE)
    r1, r2, rl = rouge_mean("a spider close-up", DISLIKE.reason_text)
    assert 0 < partial.rouge < 1  # type: ignore[operator]
    assert partial.rouge == pytest.approx((r1 + r2 + rl) / 3)
    assert partial.total == pytest.approx(1.5 + partial.rouge)
    none = staged_reward(ans(True, "visual_discomfort", "zzz"), DISLIKE)
    assert none.total == pytest.approx(1.5) and none.rouge == 0.0


def test_ungated_sums_components_after_a_wrong_judgement() -> None:
    # Judged positive but the explanation repeats the stated reason: the gate would give 0.
    c = ans(False, None, DISLIKE.reason_text)
    assert staged_reward(c, DISLIKE).total == 0.0
    u = ungated_reward(c, DISLIKE)
    assert (u.judge, u.cls) == (0.0, 0.0) and u.rouge == pytest.approx(1.0)
    assert u.total == pytest.approx(1.0)
    wrong_class = ungated_reward(ans(True, "boring", DISLIKE.reason_text), DISLIKE)
    assert wrong_class.total == pytest.approx(0.5 + 0.0 + 1.0)
    assert ungated_reward(ans(False, None), POSITIVE).total == 0.5
    assert ungated_reward(ans(True, "boring"), POSITIVE).total == 0.0
    assert ungated_reward(ans(True, "boring"), SWIPE).total == 1.5


def test_grammar_round_trip() -> None:
    a = parse_answer(render_answer(True, "boring", "Slow and dull.", think="plot appeal 0.1"))
    assert a is not None and (a.negative, a.reason, a.explanation, a.think) == (
        True, "boring", "Slow and dull.", "plot appeal 0.1")
    with pytest.raises(ValueError, match="needs one of"):
        render_answer(True, None, "")
