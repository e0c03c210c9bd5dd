"""Titles and tags of simulated videos.

A title is a topic template filled from a small lexicon, plus — unless the
video hides it — a mention of its controversial object ("... | tarantula found
in the crate"). Hidden elements are the point of the Video Agent: a title that
says "Street food tour in Chengdu" while frames 6–9 show a roasted rabbit can
only be caught from the frames. Tags follow the same rule: the element's tag is
present only when the title mentions it.
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["ELEMENT_TITLE_TEMPLATES", "TOPIC_TITLE_TEMPLATES", "make_title"]

_PLACES: Final = ("Chengdu", "Lisbon", "Kyoto", "the Alps", "Cape Town", "Oaxaca", "Hanoi",
                  "Reykjavik", "Marrakech", "Tasmania", "Seoul", "Istanbul", "Patagonia",
                  "the Highlands", "Bali", "Quebec")
_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "news": ("city council", "flood warning", "election night", "new bridge", "transit strike",
             "heatwave", "budget vote", "school reform", "port expansion", "rail line"),
    "sports": ("last-minute goal", "buzzer beater", "marathon finish", "penalty shootout",
               "rookie debut", "hat-trick", "tennis rally", "derby", "comeback", "world record"),
    "food": ("hotpot", "dumplings", "street noodles", "pizza", "barbecue", "hand-pulled noodles",
             "night market snacks", "ramen", "tacos", "home-style stew", "bakery tour"),
    "animals": ("golden retriever", "rescue kitten", "panda cub", "farm dog", "hamster",
                "baby elephant", "koala", "husky", "parrot", "shelter puppy"),
    "travel": ("hidden beach", "mountain village", "night train", "old town walk", "lake cabin",
               "cliff trail", "desert camp", "island hopping", "castle tour", "road trip"),
    "music": ("street guitarist", "piano cover", "drum solo", "violin duet", "live session",
              "acoustic set", "jazz jam", "choir", "rooftop gig", "busker"),
    "comedy": ("prank", "sketch", "stand-up bit", "office parody", "dad jokes",
               "roommate skit", "wig challenge", "awkward date", "fail compilation", "improv"),
    "gaming": ("speedrun", "boss fight", "ranked match", "mod showcase", "retro console",
               "clutch round", "new patch", "co-op raid", "pixel art game", "esports final"),
    "technology": ("phone teardown", "laptop review", "home server", "drone test",
                   "AI gadget", "keyboard build", "camera shootout", "smart home", "chip launch",
                   "budget tablet"),
    "fashion": ("street style", "thrift haul", "capsule wardrobe", "sneaker drop", "runway recap",
                "makeup look", "denim guide", "winter layers", "perfume review", "vintage finds"),
    "cars": ("track day", "EV road test", "classic restoration", "supercar launch", "off-road run",
             "drift session", "car wash", "engine swap", "limo tour", "karting"),
    "finance": ("budget plan", "index funds", "side hustle", "tax tips", "rent vs buy",
                "savings jar", "market recap", "first paycheck", "coupon hacks", "pension basics"),
    "health": ("morning workout", "stretch routine", "sleep tips", "home gym", "yoga flow",
               "meal prep", "running form", "posture fix", "skin care", "doctor Q&A"),
    "education": ("math trick", "history lesson", "exam tips", "library tour", "science demo",
                  "language hack", "study with me", "graduation", "chemistry basics",
                  "book review"),
    "movies": ("trailer breakdown", "behind the scenes", "film review", "movie recap",
               "director interview", "costume reveal", "cinema vlog", "hidden easter eggs",
               "classic scene", "premiere night"),
    "family": ("baby's first steps", "family picnic", "toddler morning", "grandma's visit",
               "bedtime routine", "twins", "birthday party", "nursery tour", "holiday at home",
               "playground day"),
}

TOPIC_TITLE_TEMPLATES: Final = (
    "{w} in {p}", "My {w} story", "{w}: you won't believe this", "Trying {w} for the first time",
    "{w} — full video", "Best {w} of the week", "{w}, explained", "A day of {w} in {p}",
    "Watch this {w}", "{w} compilation", "Why everyone talks about the {w}", "{w} (part 2)",
)
"""Topic templates: {w} a topic word, {p} a place."""

ELEMENT_TITLE_TEMPLATES: Final = (
    "{t} | {o} caught on camera", "{t} — with a {o}!", "{o} alert: {t}", "{t} (the {o} part)",
    "{t}, then the {o} shows up", "{t} ft. {o}", "Warning, {o}: {t}",
)
"""Ways a title mentions the object: {t} the topic title, {o} the object."""


def make_title(rng: np.random.Generator, topic: str, obj: str | None) -> str:
    """A title for a video of ``topic``; mentions ``obj`` when it is given."""
    words = _WORDS[topic]
    title = TOPIC_TITLE_TEMPLATES[rng.integers(len(TOPIC_TITLE_TEMPLATES))].format(
        w=words[rng.integers(len(words))], p=_PLACES[rng.integers(len(_PLACES))])
    title = title[:1].upper() + title[1:]
    if obj:
        template = ELEMENT_TITLE_TEMPLATES[rng.integers(len(ELEMENT_TITLE_TEMPLATES))]
        title = template.format(t=title, o=obj)
        title = title[:1].upper() + title[1:]
    return title
