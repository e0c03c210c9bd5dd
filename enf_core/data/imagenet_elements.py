"""ENF elements and topics as ImageNet-1k classes of the frame encoder's head.

The frame encoder is EfficientNet-Lite0 (1280-d pooled features, 1000-class
ImageNet head). Its head is the bridge between pixels and our vocabulary: a
frame "shows spiders" when the head puts mass on the spider classes. The
simulator (``enf_core.data.frames``) builds frame features around exactly these
classes, and the Video Agent reads them back with the real head, so both sides
must use this one table. Indices are the standard ImageNet-1k order (the one in
Keras' ``imagenet_class_index.json`` and torchvision).

Three tables:

* ``OBJECTS`` — specific, nameable things ("tarantula", "ambulance") with their
  element and classes. Reason phrases name objects, so a dislike says "the
  tarantula close-up", not "insects_spiders".
* ``ELEMENT_CLASSES`` — element -> union of its objects' classes.
* ``TOPIC_CLASSES`` — topic -> background classes of ordinary scenes.

ImageNet has no class for blood, gore, nudity or sadness; those elements use
honest proxies (Band-Aid, syringe, neck brace for injuries; bikini, brassiere,
toilet for vulgarity; prison, stretcher, oxygen mask for tragic events), listed
below. ``slow_plot`` has no class at all: a slow video shows it by how little
its 16 frames change (see ``enf_core.data.frames``). The sets are disjoint: no
class index belongs to two elements, nor to an element and a topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from enf_core.taxonomy import ELEMENTS, TOPICS

__all__ = [
    "ELEMENT_CLASSES",
    "IMAGENET_LABELS",
    "OBJECTS",
    "OBJECTS_BY_ELEMENT",
    "TOPIC_CLASSES",
    "VISUAL_ELEMENTS",
    "ElementObject",
    "class_to_element",
]


@dataclass(frozen=True)
class ElementObject:
    """A nameable thing that carries an element, with its ImageNet classes."""

    name: str
    element: str
    classes: tuple[int, ...]


# The ImageNet-1k names of every class used below (index -> name), so that a
# reader can check the tables without downloading the label file.
IMAGENET_LABELS: Final[dict[int, str]] = {
    7: "cock", 8: "hen", 30: "bullfrog",
    38: "banded gecko", 39: "common iguana", 40: "American chameleon", 41: "whiptail",
    42: "agama", 43: "frilled lizard", 44: "alligator lizard", 45: "Gila monster",
    46: "green lizard", 47: "African chameleon", 48: "Komodo dragon",
    49: "African crocodile", 50: "American alligator",
    52: "thunder snake", 53: "ringneck snake", 54: "hognose snake", 55: "green snake",
    56: "king snake", 57: "garter snake", 58: "water snake", 59: "vine snake",
    60: "night snake", 61: "boa constrictor", 62: "rock python", 63: "Indian cobra",
    64: "green mamba", 65: "sea snake", 66: "horned viper", 67: "diamondback",
    68: "sidewinder", 70: "harvestman", 71: "scorpion",
    72: "black and gold garden spider", 73: "barn spider", 74: "garden spider",
    75: "black widow", 76: "tarantula", 77: "wolf spider", 78: "tick", 79: "centipede",
    105: "koala", 118: "Dungeness crab", 122: "American lobster", 124: "crayfish",
    207: "golden retriever", 208: "Labrador retriever", 254: "pug", 258: "Samoyed",
    281: "tabby", 283: "Persian cat", 291: "lion", 302: "ground beetle",
    305: "dung beetle", 306: "rhinoceros beetle", 308: "fly", 309: "bee", 310: "ant",
    311: "grasshopper", 314: "cockroach", 315: "mantis", 330: "wood rabbit", 331: "hare",
    333: "hamster", 340: "zebra", 341: "hog", 386: "African elephant", 388: "giant panda",
    398: "abacus", 400: "academic gown", 402: "acoustic guitar", 404: "airliner",
    407: "ambulance", 413: "assault rifle", 417: "balloon", 418: "ballpoint",
    419: "Band Aid", 420: "banjo", 422: "barbell", 430: "basketball", 431: "bassinet",
    440: "beer bottle", 441: "beer glass", 443: "bib", 445: "bikini", 446: "binder",
    457: "bow tie", 459: "brassiere", 467: "butcher shop", 471: "cannon", 474: "cardigan",
    468: "cab", 479: "car wheel", 480: "cash machine", 483: "castle", 486: "cello",
    487: "cellular telephone", 496: "Christmas stocking", 498: "cinema", 499: "cleaver",
    501: "cloak", 508: "computer keyboard", 511: "convertible", 514: "cowboy boot",
    516: "cradle", 518: "crash helmet", 520: "crib", 523: "crutch", 526: "desk",
    527: "desktop computer", 529: "diaper", 532: "dining table", 541: "drum",
    543: "dumbbell", 546: "electric guitar", 548: "entertainment center", 549: "envelope",
    554: "fireboat", 555: "fire engine", 556: "fire screen", 557: "flagpole",
    560: "football helmet", 563: "fountain pen", 567: "frying pan", 568: "fur coat",
    570: "gasmask", 573: "go-kart", 574: "golf ball", 578: "gown", 579: "grand piano",
    581: "grille", 590: "hand-held computer", 592: "hard disc", 596: "hatchet",
    597: "holster", 598: "home theater", 605: "iPod", 607: "jack-o'-lantern", 608: "jean",
    609: "jeep", 613: "joystick", 617: "lab coat", 620: "laptop", 624: "library",
    625: "lifeboat", 627: "limousine", 628: "liner", 629: "lipstick", 631: "lotion",
    632: "loudspeaker", 643: "mask", 644: "matchstick", 648: "medicine chest",
    650: "microphone", 655: "miniskirt", 656: "minivan", 657: "missile", 661: "Model T",
    662: "modem", 663: "monastery", 664: "monitor", 667: "mortarboard", 673: "mouse",
    678: "neck brace", 679: "necklace", 681: "notebook", 688: "oscilloscope",
    691: "oxygen mask", 697: "pajama", 698: "palace", 709: "pencil box", 711: "perfume",
    713: "photocopier", 719: "piggy bank", 720: "pill bottle", 723: "pinwheel",
    724: "pirate", 731: "plunger", 734: "police van", 743: "prison", 744: "projectile",
    745: "projector", 751: "racer", 752: "racket", 755: "radio telescope",
    763: "revolver", 764: "rifle", 765: "rocking chair", 766: "rotisserie",
    768: "rugby ball", 770: "running shoe", 776: "sax", 777: "scabbard", 779: "school bus",
    781: "scoreboard", 782: "screen", 788: "shoe shop", 798: "slide rule", 800: "slot",
    805: "soccer ball", 808: "sombrero", 809: "soup bowl", 812: "space shuttle",
    817: "sports car", 818: "spotlight", 819: "stage", 823: "stethoscope",
    830: "stretcher", 831: "studio couch", 834: "suit", 837: "sunglasses",
    838: "sunscreen", 839: "suspension bridge", 842: "swimming trunks", 843: "swing",
    845: "syringe", 847: "tank", 850: "teddy", 851: "television", 852: "tennis ball",
    854: "theater curtain", 857: "throne", 860: "tobacco shop", 861: "toilet seat",
    862: "torch", 864: "tow truck", 869: "trench coat", 870: "tricycle", 880: "unicycle",
    889: "violin", 890: "volleyball", 895: "warplane", 901: "whiskey jug", 903: "wig",
    906: "Windsor tie", 907: "wine bottle", 909: "wok", 913: "wreck", 917: "comic book",
    919: "street sign", 921: "book jacket", 923: "plate", 926: "hot pot",
    928: "ice cream", 931: "bagel", 933: "cheeseburger", 934: "hotdog", 959: "carbonara",
    963: "pizza", 965: "burrito", 966: "red wine", 970: "alp", 972: "cliff",
    974: "geyser", 975: "lakeside", 976: "promontory", 978: "seashore", 979: "valley",
    980: "volcano", 981: "ballplayer", 999: "toilet tissue",
}

_O = ElementObject
OBJECTS: Final[tuple[ElementObject, ...]] = (
    # insects_spiders
    _O("spider", "insects_spiders", (72, 73, 74, 77)),
    _O("black widow", "insects_spiders", (75,)),
    _O("tarantula", "insects_spiders", (76,)),
    _O("scorpion", "insects_spiders", (71,)),
    _O("tick", "insects_spiders", (78,)),
    _O("centipede", "insects_spiders", (79,)),
    _O("cockroach", "insects_spiders", (314,)),
    _O("maggot-covered fly swarm", "insects_spiders", (308,)),
    _O("ant swarm", "insects_spiders", (310,)),
    _O("bee swarm", "insects_spiders", (309,)),
    _O("beetle", "insects_spiders", (302, 305, 306)),
    _O("mantis", "insects_spiders", (315,)),
    _O("grasshopper", "insects_spiders", (311,)),
    _O("daddy longlegs", "insects_spiders", (70,)),
    # snakes_reptiles
    _O("snake", "snakes_reptiles", (52, 53, 54, 55, 56, 57, 58, 59, 60)),
    _O("python", "snakes_reptiles", (61, 62)),
    _O("cobra", "snakes_reptiles", (63,)),
    _O("mamba", "snakes_reptiles", (64,)),
    _O("sea snake", "snakes_reptiles", (65,)),
    _O("rattlesnake", "snakes_reptiles", (66, 67, 68)),
    _O("lizard", "snakes_reptiles", (38, 41, 42, 43, 44, 46)),
    _O("iguana", "snakes_reptiles", (39,)),
    _O("chameleon", "snakes_reptiles", (40, 47)),
    _O("Komodo dragon", "snakes_reptiles", (48,)),
    _O("Gila monster", "snakes_reptiles", (45,)),
    _O("crocodile", "snakes_reptiles", (49, 50)),
    # blood_injury (proxies: ImageNet has no blood class)
    _O("bloody wound", "blood_injury", (419,)),
    _O("needle", "blood_injury", (845,)),
    _O("neck injury", "blood_injury", (678,)),
    # weapons
    _O("gun", "weapons", (763, 597)),
    _O("rifle", "weapons", (764, 413)),
    _O("axe", "weapons", (596,)),
    _O("sword", "weapons", (777,)),
    _O("cannon", "weapons", (471,)),
    _O("missile", "weapons", (657, 744)),
    _O("tank", "weapons", (847,)),
    _O("warplane", "weapons", (895,)),
    # accident_emergency
    _O("ambulance", "accident_emergency", (407,)),
    _O("police van", "accident_emergency", (734,)),
    _O("car crash", "accident_emergency", (864, 518)),
    _O("shipwreck", "accident_emergency", (913, 625)),
    # fire_disaster
    _O("burning building", "fire_disaster", (555, 556)),
    _O("fireboat", "fire_disaster", (554,)),
    _O("volcanic eruption", "fire_disaster", (980,)),
    _O("open flames", "fire_disaster", (862, 644)),
    # animal_cruelty_food_animals
    _O("roasted rabbit", "animal_cruelty_food_animals", (331, 330, 766)),
    _O("pig slaughter", "animal_cruelty_food_animals", (341, 467)),
    _O("live chicken", "animal_cruelty_food_animals", (8, 7, 499)),
    _O("live lobster", "animal_cruelty_food_animals", (122, 118, 124)),
    _O("live frog", "animal_cruelty_food_animals", (30,)),
    # negative_event_cue
    _O("prison", "negative_event_cue", (743,)),
    _O("stretcher", "negative_event_cue", (830,)),
    _O("oxygen mask", "negative_event_cue", (691,)),
    _O("gas mask", "negative_event_cue", (570,)),
    _O("crutches", "negative_event_cue", (523,)),
    # vulgarity_cue
    _O("bikini", "vulgarity_cue", (445,)),
    _O("underwear", "vulgarity_cue", (459,)),
    _O("swimsuit", "vulgarity_cue", (842,)),
    _O("toilet", "vulgarity_cue", (861, 999, 731)),
    # value_conflict_cue
    _O("slot machine", "value_conflict_cue", (800,)),
    _O("beer", "value_conflict_cue", (440, 441)),
    _O("liquor", "value_conflict_cue", (901, 907, 966)),
    _O("tobacco", "value_conflict_cue", (860,)),
    _O("fur coat", "value_conflict_cue", (568,)),
    _O("cash flaunting", "value_conflict_cue", (480,)),
)

OBJECTS_BY_ELEMENT: Final[dict[str, tuple[ElementObject, ...]]] = {
    e: tuple(o for o in OBJECTS if o.element == e) for e in ELEMENTS
}

VISUAL_ELEMENTS: Final[tuple[str, ...]] = tuple(e for e in ELEMENTS if OBJECTS_BY_ELEMENT[e])
"""Elements with ImageNet classes; ``slow_plot`` is the one without."""

ELEMENT_CLASSES: Final[dict[str, tuple[int, ...]]] = {
    e: tuple(sorted({c for o in OBJECTS_BY_ELEMENT[e] for c in o.classes})) for e in ELEMENTS
}

TOPIC_CLASSES: Final[dict[str, tuple[int, ...]]] = {
    "news": (650, 851, 834, 919, 557, 906),
    "sports": (430, 805, 981, 852, 752, 768, 890, 781, 560, 574),
    "food": (963, 933, 923, 934, 928, 959, 965, 567, 909, 926, 931, 809),
    "animals": (207, 208, 281, 283, 333, 388, 105, 254, 258, 291, 340, 386),
    "travel": (978, 970, 975, 979, 972, 404, 976, 839, 483, 698, 663, 628, 974),
    "music": (402, 546, 579, 889, 541, 819, 776, 420, 486, 632),
    "comedy": (903, 643, 808, 417, 457, 831, 880, 697, 607),
    "gaming": (613, 664, 782, 527, 508, 673, 598, 548),
    "technology": (620, 487, 605, 590, 592, 662, 688, 812, 755),
    "fashion": (608, 655, 837, 474, 578, 514, 869, 629, 711, 679, 788),
    "cars": (817, 511, 751, 479, 468, 609, 627, 581, 656, 573, 661),
    "finance": (398, 719, 549, 446, 526, 713, 563),
    "health": (543, 422, 720, 823, 617, 648, 770, 631, 838),
    "education": (624, 921, 681, 798, 667, 400, 418, 709, 779),
    "movies": (854, 498, 745, 818, 724, 501, 917, 857),
    "family": (520, 431, 850, 765, 532, 529, 516, 843, 870, 496, 443),
}

_CLASS_ELEMENT: Final[dict[int, str]] = {
    c: e for e, classes in ELEMENT_CLASSES.items() for c in classes
}


def class_to_element(index: int) -> str | None:
    """The element an ImageNet class belongs to, or None for a neutral class."""
    return _CLASS_ELEMENT.get(index)


def _check_tables() -> None:
    """Fail at import if the tables drift: overlaps or unknown names are bugs."""
    seen: dict[int, str] = {}
    for e, classes in ELEMENT_CLASSES.items():
        for c in classes:
            if c in seen:
                raise AssertionError(f"class {c} in both {seen[c]} and {e}")
            seen[c] = e
    for t, classes in TOPIC_CLASSES.items():
        for c in classes:
            if c in seen and not seen[c].startswith("topic:"):
                raise AssertionError(f"class {c} in element {seen[c]} and topic {t}")
            seen.setdefault(c, f"topic:{t}")
    missing = set(seen) - set(IMAGENET_LABELS)
    if missing:
        raise AssertionError(f"classes without a label: {sorted(missing)}")
    if set(TOPIC_CLASSES) != set(TOPICS):
        raise AssertionError("TOPIC_CLASSES must cover exactly taxonomy.TOPICS")


_check_tables()
