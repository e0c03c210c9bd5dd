"""The ENF reason taxonomy, the element vocabulary and the topic vocabulary.

These three vocabularies are the contract between the Video Agent (which scores
elements and topics), the Profile Agent (which learns per-user sensitivities to
the same elements and interests in the same topics) and the Reason Agent / the
scorer (which crosses the two). Their order fixes vector layouts: append, never
reorder, and bump ``FEATURE_LAYOUT_VERSION`` in ``enf_core.features`` if you do.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ELEMENTS",
    "ELEMENT_REASON",
    "REASONS",
    "TOPICS",
    "Reason",
    "reason_index",
]


class Reason(StrEnum):
    """The four negative-feedback reasons of the paper (PAPER.md)."""

    NEGATIVE_EVENT = "negative_event"
    VULGAR_OR_VALUE_CONFLICT = "vulgar_or_value_conflict"
    BORING = "boring"
    VISUAL_DISCOMFORT = "visual_discomfort"


REASONS: tuple[Reason, ...] = tuple(Reason)


def reason_index(value: str) -> int:
    """Index of a reason in ``REASONS``; raises ValueError naming the valid ones."""
    try:
        return REASONS.index(Reason(value))
    except ValueError:
        valid = ", ".join(r.value for r in REASONS)
        raise ValueError(f"unknown reason category {value!r}; expected one of: {valid}") from None


# Controversial elements a video can carry. Each maps to the reason it usually
# triggers; the mapping is a prior, the Reason Agent weighs it per user.
ELEMENTS: tuple[str, ...] = (
    "insects_spiders",
    "snakes_reptiles",
    "blood_injury",
    "weapons",
    "accident_emergency",
    "fire_disaster",
    "animal_cruelty_food_animals",
    "negative_event_cue",
    "vulgarity_cue",
    "value_conflict_cue",
    "slow_plot",
)

ELEMENT_REASON: dict[str, Reason] = {
    "insects_spiders": Reason.VISUAL_DISCOMFORT,
    "snakes_reptiles": Reason.VISUAL_DISCOMFORT,
    "blood_injury": Reason.VISUAL_DISCOMFORT,
    "weapons": Reason.NEGATIVE_EVENT,
    "accident_emergency": Reason.NEGATIVE_EVENT,
    "fire_disaster": Reason.NEGATIVE_EVENT,
    "animal_cruelty_food_animals": Reason.VULGAR_OR_VALUE_CONFLICT,
    "negative_event_cue": Reason.NEGATIVE_EVENT,
    "vulgarity_cue": Reason.VULGAR_OR_VALUE_CONFLICT,
    "value_conflict_cue": Reason.VULGAR_OR_VALUE_CONFLICT,
    "slow_plot": Reason.BORING,
}

# Coarse interest topics shared by portraits (interests) and videos (topic mix).
TOPICS: tuple[str, ...] = (
    "news",
    "sports",
    "food",
    "animals",
    "travel",
    "music",
    "comedy",
    "gaming",
    "technology",
    "fashion",
    "cars",
    "finance",
    "health",
    "education",
    "movies",
    "family",
)
