"""The Video Agent's element vocabulary: ImageNet classes and title cues -> ENF elements.

Two sources ground every element the Video Agent reports:

* **Frames.** EfficientNet-Lite0's ImageNet head runs on each of the 16 frames;
  an element's per-frame mass is the head's probability summed over the
  element's classes (``enf_core.data.imagenet_elements.ELEMENT_CLASSES``, shared
  with the simulator, so simulated and real frames are read the same way).
  A frame *shows* an element when that mass is at least ``frame_hit`` (0.06:
  above the 99th percentile of the mass that element-free frames put there,
  0.01–0.04 measured on simulated frames). The video's visual score is the
  mean of the two strongest frames, rescaled from [visual_floor, visual_floor +
  visual_span] to [0, 1]. Topics come from ``TOPIC_CLASSES`` plus, for
  ``animals``, every ImageNet animal class (indices 0–397) that no element
  claims, since the head splits a dog over a hundred breeds.
* **Title.** A keyword lexicon (below, whole words, case-folded) gives exact
  cues and the words cited as evidence; a sentence encoder (MiniLM or
  multilingual e5) compares the title with short prototype descriptions of
  every element and topic, which catches paraphrases and other languages.

``slow_plot`` has no class: a slow video is one whose 16 frame features barely
change (mean cosine distance between consecutive frames, ``motion``).

Every threshold here is a field of ``VocabConfig`` with its measured reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np

from enf_core.data.imagenet_elements import ELEMENT_CLASSES, IMAGENET_LABELS, TOPIC_CLASSES
from enf_core.taxonomy import ELEMENTS, TOPICS

__all__ = [
    "ELEMENT_KEYWORDS",
    "ELEMENT_PROTOTYPES",
    "TOPIC_KEYWORDS",
    "TOPIC_PROTOTYPES",
    "VocabConfig",
    "class_name",
    "element_matrix",
    "keyword_hits",
    "topic_matrix",
]


@dataclass(frozen=True)
class VocabConfig:
    """Thresholds of the vocabulary (documented defaults; see the module docstring)."""

    frame_hit: float = 0.06  # per-frame element mass that counts as "this frame shows it"
    visual_floor: float = 0.03  # top-2 frame mass at or below this scores 0
    visual_span: float = 0.30  # ... and at visual_floor + visual_span scores 1
    keyword_score: float = 0.9  # an exact title keyword for an element
    semantic_floor: float = 0.35  # title–prototype cosine at or below this scores 0
    semantic_span: float = 0.25  # ... at floor + span scores 1 (MiniLM; e5 is shifted)
    semantic_weight: float = 0.8  # semantic title cues are weaker than keywords
    semantic_min: float = 0.2  # weaker semantic cues are dropped (noise on odd titles)
    topic_frame_hit: float = 0.2  # per-frame topic mass that cites a frame for a topic
    topic_temperature: float = 0.05  # softmax temperature of title–topic cosines
    title_topic_weight: float = 0.5  # share of the title in the topic mix (rest: frames)
    motion_slow: float = 0.01  # mean consecutive-frame cosine distance, static (sim: 0.007)
    motion_normal: float = 0.08  # ... and of an edited clip (sim: 0.14–0.22; real: 0.03–0.3)
    max_classes: int = 3  # ImageNet classes cited per element


# Indices 0–397 of ImageNet-1k are animals; those not claimed by an element
# (spiders, snakes, rabbits as food...) count towards the `animals` topic.
_ELEMENT_CLASS_SET: Final = frozenset(c for cs in ELEMENT_CLASSES.values() for c in cs)
ANIMAL_CLASSES: Final = tuple(c for c in range(398) if c not in _ELEMENT_CLASS_SET)


def class_name(index: int) -> str:
    """A readable ImageNet class name (the shared label table), else ``ImageNet class <i>``."""
    return IMAGENET_LABELS.get(index, f"ImageNet class {index}")


def element_matrix(n_classes: int = 1000) -> np.ndarray:
    """[n_classes, len(ELEMENTS)] 0/1: probs @ M gives per-element mass."""
    m = np.zeros((n_classes, len(ELEMENTS)), np.float32)
    for e, name in enumerate(ELEMENTS):
        for c in ELEMENT_CLASSES.get(name, ()):
            m[c, e] = 1.0
    return m


def topic_matrix(n_classes: int = 1000) -> np.ndarray:
    """[n_classes, len(TOPICS)] 0/1: probs @ M gives per-topic mass."""
    m = np.zeros((n_classes, len(TOPICS)), np.float32)
    for t, name in enumerate(TOPICS):
        for c in TOPIC_CLASSES.get(name, ()):
            m[c, t] = 1.0
    m[list(ANIMAL_CLASSES), TOPICS.index("animals")] = 1.0
    return m


# Whole-word, case-folded title keywords per element (English; the sentence
# encoder covers paraphrases and other languages). Multi-word cues are phrases.
ELEMENT_KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "insects_spiders": ("spider", "spiders", "tarantula", "black widow", "scorpion", "tick",
                        "ticks", "centipede", "cockroach", "cockroaches", "roach", "maggot",
                        "maggots", "insect", "insects", "bug swarm", "bee swarm", "ant swarm",
                        "wasp", "hornet", "beetle", "mantis", "grasshopper", "daddy longlegs"),
    "snakes_reptiles": ("snake", "snakes", "python", "cobra", "mamba", "viper", "rattlesnake",
                        "sea snake", "lizard", "iguana", "chameleon", "komodo dragon",
                        "gila monster", "crocodile", "alligator", "reptile", "reptiles"),
    "blood_injury": ("blood", "bloody", "bleeding", "gore", "gory", "wound", "injury", "injured",
                     "needle", "syringe", "stitches", "surgery", "neck injury", "broken bone"),
    "weapons": ("gun", "guns", "rifle", "pistol", "revolver", "shooting", "shot", "axe",
                "sword", "knife", "cannon", "missile", "tank", "warplane", "weapon", "weapons",
                "bomb"),
    "accident_emergency": ("ambulance", "police van", "police", "car crash", "crash", "accident",
                           "collision", "pileup", "shipwreck", "wreck", "rescue", "emergency",
                           "tow truck"),
    "fire_disaster": ("fire", "fires", "burning", "blaze", "flames", "wildfire", "inferno",
                      "burning building", "fireboat", "volcano", "volcanic eruption", "eruption",
                      "explosion", "earthquake", "flood", "tsunami", "disaster", "open flames"),
    "animal_cruelty_food_animals": ("roasted rabbit", "rabbit meat", "pig slaughter", "slaughter",
                                    "butcher", "live chicken", "live lobster", "live frog",
                                    "skinned", "animal abuse", "cruelty", "dog meat",
                                    "eating alive", "foie gras"),
    "negative_event_cue": ("died", "dies", "death", "dead", "killed", "kills", "tragedy",
                           "tragic", "funeral", "victims", "victim", "mourning", "murder",
                           "war", "attack", "terror", "prison", "stretcher", "hospitalized",
                           "oxygen mask", "gas mask", "crutches", "missing", "abuse", "hostage"),
    "vulgarity_cue": ("bikini", "underwear", "lingerie", "swimsuit", "toilet", "nsfw", "sexy",
                      "hot girls", "wtf", "damn", "fart", "poop", "naked", "nude", "twerk",
                      "18+", "explicit"),
    "value_conflict_cue": ("slot machine", "casino", "gambling", "bet", "betting", "beer",
                           "liquor", "vodka", "whiskey", "drunk", "binge drinking", "tobacco",
                           "cigarette", "smoking", "vape", "fur coat", "cash flaunting",
                           "rich kid", "flexing", "scam"),
    "slow_plot": ("full video", "uncut", "unedited", "livestream", "live stream", "slow tv",
                  "8 hours", "10 hours", "real time", "ambient", "asmr", "timelapse of nothing"),
}

TOPIC_KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    "news": ("news", "breaking", "council", "election", "vote", "strike", "report", "policy"),
    "sports": ("goal", "match", "football", "soccer", "basketball", "tennis", "marathon",
               "derby", "tournament", "league", "record"),
    "food": ("food", "recipe", "cooking", "noodles", "dumplings", "pizza", "barbecue", "ramen",
             "tacos", "snacks", "stew", "bakery", "hotpot", "eat", "eating"),
    "animals": ("dog", "puppy", "cat", "kitten", "panda", "hamster", "elephant", "koala",
                "husky", "parrot", "retriever", "pet", "pets", "animal", "animals", "wildlife"),
    "travel": ("travel", "beach", "village", "train", "trip", "cabin", "trail", "camp",
               "island", "castle", "tour", "hike"),
    "music": ("music", "guitar", "piano", "drum", "violin", "song", "cover", "jazz", "choir",
              "gig", "concert", "busker", "band"),
    "comedy": ("funny", "prank", "sketch", "stand-up", "parody", "jokes", "skit", "comedy",
               "fail", "improv", "lol"),
    "gaming": ("game", "gaming", "speedrun", "boss", "ranked", "console", "esports", "raid",
               "patch", "minecraft", "gameplay"),
    "technology": ("phone", "laptop", "server", "drone", "gadget", "keyboard", "camera", "tech",
                   "chip", "tablet", "ai", "review"),
    "fashion": ("fashion", "style", "outfit", "wardrobe", "sneaker", "runway", "makeup",
                "denim", "perfume", "vintage", "haul"),
    "cars": ("car", "cars", "ev", "supercar", "off-road", "drift", "engine", "limo", "karting",
             "track day", "road test"),
    "finance": ("money", "budget", "funds", "invest", "investing", "tax", "rent", "savings",
                "market", "paycheck", "pension", "stocks"),
    "health": ("workout", "fitness", "sleep", "gym", "yoga", "stretch", "running", "posture",
               "skin care", "doctor", "diet", "health"),
    "education": ("learn", "lesson", "math", "history", "exam", "study", "science", "language",
                  "tutorial", "explained", "chemistry", "school"),
    "movies": ("movie", "film", "trailer", "cinema", "scene", "director", "premiere", "review",
               "behind the scenes", "actor"),
    "family": ("family", "baby", "toddler", "kids", "grandma", "twins", "birthday", "picnic",
               "bedtime", "parents", "nursery"),
}

# One-line descriptions the sentence encoder compares titles with.
ELEMENT_PROTOTYPES: Final[dict[str, str]] = {
    "insects_spiders": "a creepy spider, tarantula, scorpion, cockroach or swarm of insects",
    "snakes_reptiles": "a snake, python, cobra, lizard or crocodile up close",
    "blood_injury": "blood, a bleeding wound, gore, needles or a bad injury",
    "weapons": "guns, rifles, knives, shooting and weapons",
    "accident_emergency": "a car crash, an accident, ambulances and an emergency rescue",
    "fire_disaster": "a house fire, burning building, explosion, volcano or natural disaster",
    "animal_cruelty_food_animals": "animals being slaughtered, cooked alive or treated cruelly",
    "negative_event_cue": "tragic news: people died, were killed, a funeral, war or a crime",
    "vulgarity_cue": "vulgar, sexual, crude or obscene content",
    "value_conflict_cue": "gambling, heavy drinking, smoking or flaunting money and luxury",
    "slow_plot": "a long, slow, uneventful video where nothing happens",
}

TOPIC_PROTOTYPES: Final[dict[str, str]] = {
    "news": "local news, politics and current events",
    "sports": "sports highlights, a match, goals and athletes",
    "food": "food, cooking, recipes and street food",
    "animals": "cute pets and animals, dogs, cats and wildlife",
    "travel": "travel, scenic places, beaches, mountains and trips",
    "music": "music, a song, a concert or someone playing an instrument",
    "comedy": "comedy, pranks, sketches and funny moments",
    "gaming": "video games, gameplay, esports and speedruns",
    "technology": "technology, gadgets, phones and computers reviewed",
    "fashion": "fashion, outfits, style, makeup and clothes",
    "cars": "cars, driving, racing and car reviews",
    "finance": "money, personal finance, investing and saving",
    "health": "health, fitness, workouts and wellbeing",
    "education": "education, a lesson, science and studying",
    "movies": "movies, film trailers, reviews and cinema",
    "family": "family life, babies, kids and parents at home",
}


def _compile(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted((re.escape(w) for w in words), key=len, reverse=True)
    return re.compile(r"(?<![\w])(" + "|".join(alternatives) + r")(?![\w])", re.IGNORECASE)


_ELEMENT_RE: Final = {e: _compile(ws) for e, ws in ELEMENT_KEYWORDS.items()}
_TOPIC_RE: Final = {t: _compile(ws) for t, ws in TOPIC_KEYWORDS.items()}


def keyword_hits(text: str, *, topics: bool = False) -> dict[str, tuple[str, ...]]:
    """Lexicon matches in ``text``: element (or topic) -> the matched words, in order."""
    table = _TOPIC_RE if topics else _ELEMENT_RE
    out: dict[str, tuple[str, ...]] = {}
    for name, pattern in table.items():
        found = tuple(dict.fromkeys(m.group(1).lower() for m in pattern.finditer(text)))
        if found:
            out[name] = found
    return out
