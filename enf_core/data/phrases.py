"""The phrase bank behind simulated dislike reasons.

Real users name the thing that put them off ("the spider close-up made my skin
crawl"), sometimes only the category ("too gory"), and sometimes nothing useful
("meh"). The Reason Agent is scored by ROUGE against these texts, so they must
vary the way people do: many templates per element, the specific object
(``imagenet_elements.OBJECTS``) in the sentence, a share of category-level and
vague reasons, and light surface noise (case, punctuation, fillers).

``reason_text`` draws one reason; ``phrase_inventory`` lists every distinct
phrasing before surface noise, which the tests use to check variety.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from enf_core.data.imagenet_elements import OBJECTS_BY_ELEMENT
from enf_core.taxonomy import Reason

__all__ = [
    "CATEGORY_PHRASES",
    "ELEMENT_TEMPLATES",
    "NO_INTEREST_TEMPLATES",
    "VAGUE_PHRASES",
    "phrase_inventory",
    "reason_text",
]

# {obj} is the object's name (imagenet_elements.OBJECTS), always after "the".
_VISUAL_CREEPY: Final = (
    "the {obj} close-up made my skin crawl",
    "did not need to see the {obj} while eating",
    "the {obj} shot came out of nowhere, gross",
    "I have a phobia and the {obj} was right in my face",
    "why would you show the {obj} that close",
    "the {obj} scene made me feel sick",
    "couldn't look at the {obj}, swiped right away",
    "warn people before showing the {obj}",
    "the {obj} gave me the creeps",
    "seeing the {obj} crawl around freaked me out",
    "too much {obj} footage, I'm out",
    "the {obj} in the middle of the video is disgusting",
)
_REPTILE: Final = (
    "the {obj} made me jump, I hate those",
    "I'm terrified of reptiles and the {obj} was huge",
    "the {obj} close-up was horrifying",
    "no warning before the {obj} showed up",
    "the {obj} slithering around made me sick",
    "can't stand watching the {obj}",
    "the {obj} part gave me chills",
    "please stop recommending the {obj} videos",
    "that {obj} scene is nightmare fuel",
    "the {obj} was way too close to the camera",
)
_BLOOD: Final = (
    "the {obj} was too graphic",
    "too much blood around the {obj}",
    "I faint at the sight of the {obj}",
    "the {obj} close-up made me queasy",
    "didn't expect the {obj}, really gross",
    "the {obj} scene was hard to watch",
    "blurring the {obj} would have helped",
    "the {obj} shot was stomach-turning",
    "I can't handle the {obj}, felt dizzy",
    "so gory, the {obj} was too much",
)
_NEG_EVENT: Final = (
    "the {obj} made the whole thing depressing",
    "I don't want to see the {obj} in my feed",
    "the {obj} scene was too upsetting",
    "seeing the {obj} ruined my mood",
    "the {obj} brought back bad memories",
    "too much tragedy, the {obj} was the last straw",
    "the {obj} footage is just sad",
    "I watch videos to relax, not to see the {obj}",
    "the {obj} part left me anxious",
    "why show the {obj} so casually",
    "the {obj} was heartbreaking, stop pushing this",
)
_VIOLENCE: Final = (
    "the {obj} made it feel violent",
    "I don't like seeing the {obj} glorified",
    "the {obj} scene was too aggressive",
    "too much {obj} stuff, it's disturbing",
    "the {obj} made me uncomfortable",
    "stop showing the {obj} to everyone",
    "violence with the {obj} isn't entertainment",
    "the {obj} part was scary and pointless",
    "no need for the {obj} in a video like this",
    "the {obj} scenes are too intense for me",
)
_CRUELTY: Final = (
    "the {obj} was cruel to watch",
    "how is the {obj} okay to post",
    "I love animals, the {obj} broke my heart",
    "the {obj} scene is animal cruelty",
    "the {obj} made me lose my appetite",
    "poor thing, the {obj} was awful",
    "cooking the {obj} like that is wrong",
    "the {obj} shot was inhumane",
    "I can't believe they showed the {obj}",
    "the {obj} part goes against my values",
)
_VULGAR: Final = (
    "the {obj} shots were tasteless",
    "too vulgar, the {obj} scenes were unnecessary",
    "the {obj} stuff is cheap clickbait",
    "the {obj} jokes were crude",
    "I don't want the {obj} content on my feed",
    "the {obj} part was embarrassing to watch",
    "why so much focus on the {obj}",
    "the {obj} humour is just gross",
    "inappropriate, the {obj} scene went too far",
    "the {obj} close-ups were vulgar",
)
_VALUES: Final = (
    "promoting the {obj} is against my values",
    "the {obj} part sends a bad message",
    "I don't support the {obj}, stop showing it",
    "the {obj} glorification is wrong",
    "kids watch this and the {obj} is everywhere",
    "the {obj} thing clashes with what I believe",
    "showing off the {obj} like that is irresponsible",
    "not okay to make the {obj} look cool",
    "the {obj} scene was offensive to me",
    "I'm against the {obj}, this is a bad influence",
)
_SLOW: Final = (
    "nothing happened for the first {n} seconds",
    "the {topic} part dragged on forever",
    "so slow, the {topic} story went nowhere",
    "{n} seconds in and still no point",
    "the pacing of this {topic} clip is painful",
    "too long and too slow for a {topic} video",
    "boring {topic} content, the same shot over and over",
    "the {topic} video never got to the point",
    "fell asleep during the {topic} part",
    "the intro alone took {n} seconds",
    "dull, the {topic} scenes don't change at all",
)
_NO_INTEREST: Final = (
    "I'm not into {topic} at all",
    "why do I keep getting {topic} videos",
    "{topic} again? not interested",
    "stop recommending {topic}, it's boring",
    "this {topic} stuff doesn't interest me",
    "nothing new in this {topic} clip",
    "another {topic} video, boring",
)

ELEMENT_TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "insects_spiders": _VISUAL_CREEPY,
    "snakes_reptiles": _REPTILE,
    "blood_injury": _BLOOD,
    "weapons": _VIOLENCE,
    "accident_emergency": _NEG_EVENT,
    "fire_disaster": _NEG_EVENT,
    "animal_cruelty_food_animals": _CRUELTY,
    "negative_event_cue": _NEG_EVENT,
    "vulgarity_cue": _VULGAR,
    "value_conflict_cue": _VALUES,
    "slow_plot": _SLOW,
}
"""Element -> templates. ``slow_plot`` uses {topic} and {n} (seconds), not {obj}."""

NO_INTEREST_TEMPLATES: Final = _NO_INTEREST
"""Boring because the topic does not interest the user (no element involved)."""

CATEGORY_PHRASES: Final[dict[Reason, tuple[str, ...]]] = {
    Reason.NEGATIVE_EVENT: ("too depressing", "so sad", "too dark for me",
                            "didn't need this negativity", "upsetting"),
    Reason.VULGAR_OR_VALUE_CONFLICT: ("tasteless", "inappropriate", "offensive",
                                      "too vulgar", "against my values"),
    Reason.BORING: ("boring", "too slow", "waste of time", "dull", "pointless"),
    Reason.VISUAL_DISCOMFORT: ("gross", "disgusting", "made me feel sick",
                               "too graphic", "hard to look at"),
}
"""Category-level reasons: they say the category but not the element."""

VAGUE_PHRASES: Final = ("not for me", "meh", "no", "just no", "don't like it", "nah",
                        "dislike", "not my thing", "bad", "nope", "ugh", "whatever",
                        "didn't enjoy it", "not interested", "skip")
"""Reasons that say nothing about why, as real users often write."""

_PREFIXES: Final = ("", "", "", "", "ugh, ", "honestly ", "sorry but ", "ok so ", "lol ")
_SUFFIXES: Final = ("", "", "", ".", ".", "!", "!!", " :(", "...")


def _surface(rng: np.random.Generator, text: str) -> str:
    """People vary case and punctuation; ROUGE tokenises past most of it."""
    text = _PREFIXES[rng.integers(len(_PREFIXES))] + text + _SUFFIXES[rng.integers(len(_SUFFIXES))]
    roll = rng.random()
    if roll < 0.15:
        return text.lower()
    if roll < 0.55:
        return text[:1].upper() + text[1:]
    return text


def reason_text(rng: np.random.Generator, *, category: str, element: str = "", obj: str = "",
                topic: str = "", seconds: int = 10, p_vague: float = 0.1,
                p_category: float = 0.12) -> str:
    """One stated reason for a dislike.

    ``element``/``obj`` name what triggered it (an ``ELEMENTS`` name and an
    ``OBJECTS`` name); for ``boring`` without an element the reason is lack of
    interest in ``topic``. With probability ``p_vague`` the reason is vague,
    with ``p_category`` it names only the category.
    """
    roll = rng.random()
    if roll < p_vague:
        return _surface(rng, VAGUE_PHRASES[rng.integers(len(VAGUE_PHRASES))])
    if roll < p_vague + p_category:
        options = CATEGORY_PHRASES[Reason(category)]
        return _surface(rng, options[rng.integers(len(options))])
    if element and element in ELEMENT_TEMPLATES and (element == "slow_plot" or obj):
        templates = ELEMENT_TEMPLATES[element]
    elif category == Reason.BORING:
        templates = NO_INTEREST_TEMPLATES
    else:
        options = CATEGORY_PHRASES[Reason(category)]
        return _surface(rng, options[rng.integers(len(options))])
    template = templates[rng.integers(len(templates))]
    return _surface(rng, template.format(obj=obj, topic=topic or "this", n=seconds))


def phrase_inventory(topics: tuple[str, ...] = ("news", "food", "sports")) -> set[str]:
    """Every distinct reason phrasing before surface noise (object x template)."""
    out: set[str] = set(VAGUE_PHRASES)
    for phrases in CATEGORY_PHRASES.values():
        out.update(phrases)
    for element, templates in ELEMENT_TEMPLATES.items():
        if element == "slow_plot":
            out.update(t.format(topic=topic, n=n, obj="") for t in templates for topic in topics
                       for n in (5, 10, 20))
            continue
        out.update(t.format(obj=o.name) for t in templates for o in OBJECTS_BY_ELEMENT[element])
    out.update(t.format(topic=topic) for t in NO_INTEREST_TEMPLATES for topic in topics)
    return out
