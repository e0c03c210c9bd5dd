"""``models.distill.scorer``: a teacher's soft labels into a new scorer version."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.distill.scorer import DistillConfig, ScorerTeacher, TeacherLabels, _blend, distill
from models.manifest import list_versions, read_manifest
from models.runtime import DEFAULT_MODEL_DIR, ScorerRuntime


def test_blend_mixes_the_teacher_with_the_hard_labels() -> None:
    t = TeacherLabels(np.array([0.8, 0.2]), np.array([[0.7, 0.1, 0.1, 0.1],
                                                      [0.25, 0.25, 0.25, 0.25]]))
    p, q = _blend(DistillConfig(soft_weight=0.5), np.array([0.0, 1.0]), np.array([2, -1]), t)
    np.testing.assert_allclose(p, [0.4, 0.6])
    np.testing.assert_allclose(q[0], [0.35, 0.05, 0.55, 0.05])  # half teacher, half label
    np.testing.assert_allclose(q[1], [0.25] * 4)  # no label: the teacher alone
    p, q = _blend(DistillConfig(soft_weight=0.0), np.array([0.0, 1.0]), np.array([2, -1]), t)
    np.testing.assert_allclose(p, [0.0, 1.0])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, encoders: Path) -> Path:
    import os

    from enf_core.data.simulate import SimulationConfig, simulate

    os.environ["ENF_FEATURE_CACHE"] = str(tmp_path_factory.mktemp("distill-features"))
    out = tmp_path_factory.mktemp("distill-sim")
    simulate(out, SimulationConfig(users=150, videos=300, seed=7))
    return out


@pytest.mark.slow  # features of a fresh simulation plus two trainings: minutes on 2 cores
@pytest.mark.timeout(1200)
def test_distilled_version_follows_its_teacher_and_is_served(sim: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    parent = read_manifest(model_dir)["version"]
    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    teacher = ScorerTeacher(DEFAULT_MODEL_DIR)
    m = distill(sim, model_dir, teacher, DistillConfig(soft_weight=1.0, epochs=12, batch_size=128))
    assert m["teacher"] == teacher.describe() and m["parent_version"] == parent
    assert {"scorer", "video_head", "portrait_step", "explainer"} <= set(m["files"])
    assert "calibration" in m and "operating_point" in m
    # the teacher's labels pull the student towards the teacher: more than hard labels do
    hard_dir = tmp_path / "hard"
    shutil.copytree(DEFAULT_MODEL_DIR, hard_dir)
    h = distill(sim, hard_dir, teacher, DistillConfig(soft_weight=0.0, epochs=12, batch_size=128))
    soft_agree, hard_agree = m["distillation"]["agreement"], h["distillation"]["agreement"]
    assert soft_agree["p_negative_corr"] > hard_agree["p_negative_corr"] + 0.05
    assert soft_agree["reason_argmax"] >= hard_agree["reason_argmax"]
    assert m["students"]["explainer"]["rouge_test"]["student"]["n"] >= 0
    # a running scorer switches to it without a restart, with its explainer
    assert runtime.maybe_reload() and runtime.version == m["version"]
    assert runtime.explainer is not None
    assert [v["version"] for v in list_versions(model_dir)["versions"]][-1] == m["version"]
