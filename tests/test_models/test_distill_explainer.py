"""The explanation student's training, its ROUGE against baselines, export and hot reload."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from enf_core.explainer import ExplainerStudent
from models.distill.explainer import (
    ExplainerRows,
    explainer_rouge,
    publish_explainer,
    standard_explainers,
    train_explainer,
)
from models.manifest import list_versions, read_manifest, rollback
from models.runtime import ScorerRuntime
from tests.test_enf_core.test_explainer import VISUAL, analysis, sensitive

SAY = ["the {obj} gave me the creeps", "couldn't look at the {obj}, swiped right away",
       "the {obj} close-up made my skin crawl"]
FILLERS = ["", "", "ugh, ", "ok so "]
TRAIN_OBJ = ["tarantula", "scorpion", "cockroach", "centipede"]
TEST_OBJ = ["mantis", "grasshopper"]  # never seen in training


def rows(objects: list[str], n: int, seed: int) -> ExplainerRows:
    rng = random.Random(seed)
    objs = [objects[i % len(objects)] for i in range(n)]
    texts = [rng.choice(FILLERS) + rng.choice(SAY).format(obj=o) + rng.choice(["", "!", "."])
             if rng.random() > 0.2 else rng.choice(["gross", "meh"]) for o in objs]
    return ExplainerRows(portraits=[sensitive() for _ in objs],
                         analyses=[analysis(classes=(o,)) for o in objs],
                         reason_probs=np.tile(np.array(VISUAL, np.float32), (n, 1)),
                         p_negative=np.full(n, 0.8, np.float32),
                         category=["visual_discomfort"] * n, text=texts)


def test_student_generalises_to_unseen_objects_and_beats_the_baselines() -> None:
    train, test = rows(TRAIN_OBJ, 80, 0), rows(TEST_OBJ, 40, 1)
    student = train_explainer(train)
    pattern = student.bank["visual_discomfort|insects_spiders|obj"]
    assert "{obj}" in pattern and not any(o in pattern for o in TRAIN_OBJ)
    assert not pattern.startswith(("ugh", "ok so"))  # the writers' fillers are not kept
    scores = explainer_rouge(test, standard_explainers(train, student))
    assert set(scores) == {"template", "fixed_phrase", "student"}
    assert scores["student"]["rouge1"] > scores["fixed_phrase"]["rouge1"] + 0.05
    assert scores["student"]["rouge1"] > scores["template"]["rouge1"] + 0.1
    assert all(s["n"] == 40 for s in scores.values())
    texts = [student.explain(p, a, 0.8, list(r)).text for p, a, r in zip(
        test.portraits, test.analyses, test.reason_probs, strict=True)]
    assert all(any(o in t for o in TEST_OBJ) for t in texts)  # it names what the frames show


def test_a_pattern_never_names_what_the_evidence_did_not_show() -> None:
    train = rows(TRAIN_OBJ, 60, 2)
    # the evidence shows no object, but the writers named one: that name must not leak
    blind = ExplainerRows(train.portraits, [analysis(classes=()) for _ in train.analyses],
                          train.reason_probs, train.p_negative, train.category, train.text)
    student = train_explainer(blind)
    for pattern in student.bank.values():
        assert not any(o in pattern for o in TRAIN_OBJ), pattern


def test_published_student_is_served_hot_reloaded_and_rolled_back(model_dir: Path) -> None:
    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    assert runtime.explainer is None
    a = read_manifest(model_dir)["version"]
    student = train_explainer(rows(TRAIN_OBJ, 40, 3))
    m = publish_explainer(model_dir, student, {"rouge1": 0.5})
    assert m["parent_version"] == a and m["files"]["scorer"] == read_manifest(
        model_dir)["files"]["scorer"]
    assert m["students"]["explainer"]["rouge_test"] == {"rouge1": 0.5}
    assert runtime.maybe_reload() and isinstance(runtime.explainer, ExplainerStudent)
    assert runtime.explainer.bank == student.bank
    assert [v["version"] for v in list_versions(model_dir)["versions"]] == [a, m["version"]]
    rollback(model_dir)
    assert runtime.maybe_reload() and runtime.explainer is None


def test_a_corrupt_explainer_keeps_the_old_version_serving(model_dir: Path) -> None:
    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    m = publish_explainer(model_dir, train_explainer(rows(TRAIN_OBJ, 20, 4)))
    (model_dir / m["files"]["explainer"]["path"]).write_text("{}")
    assert not runtime.maybe_reload()
    assert runtime.version != m["version"] and runtime.explainer is None
