"""The policy on a real (small) simulated dataset: the ablation's explainers block and
``enf distill --policy`` end to end (a new, loadable model version with its teacher)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.policy.data import PolicyRow, RowMix


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, encoders: Path) -> Iterator[Path]:
    """60 users, 120 videos, dislikes frequent enough to give stated reasons in every split."""
    from enf_core.data.simulate import SimulationConfig, simulate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENF_FEATURE_CACHE", str(tmp_path_factory.mktemp("policy-features")))
        out = tmp_path_factory.mktemp("policy-sim")
        simulate(out, SimulationConfig(users=60, videos=120, seed=7, dislike_rate=0.05))
        yield out


@pytest.fixture(scope="module")
def heldout(sim: Path) -> list[PolicyRow]:
    from enf_core.reason_prompt import PromptConfig
    from models.policy.data import load_rows

    return load_rows(sim, "test", RowMix(200, 4, 4, seed=1), PromptConfig(instruction=False))


@pytest.fixture(scope="module")
def policy_dir(sim: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) tiny policy saved as ``<run>/sft/policy``, as ``enf train policy``."""
    from enf_core.reason_prompt import PromptConfig
    from models.policy.data import load_rows
    from models.policy.tiny import TinyConfig, build_tiny_policy

    rows = load_rows(sim, "train", RowMix(40, 40, 40), PromptConfig(instruction=False))
    return build_tiny_policy([r.prompt + r.completion for r in rows],
                             tmp_path_factory.mktemp("run") / "sft" / "policy",
                             TinyConfig(vocab_size=400, hidden=32, layers=1, heads=2,
                                        intermediate=64))


def test_ablation_explainers_block_has_the_student_and_the_policy(
        sim: Path, heldout: list[PolicyRow], policy_dir: Path) -> None:
    from models.policy.ablation import AblationConfig, _explainers
    from models.policy.runner import RunnerConfig

    stated = [r for r in heldout if r.reason_text]
    assert stated, "the simulation gave no stated test dislikes"
    # the policy "writes" each held-out user's own words: its ROUGE must come out as 1
    texts = [r.reason_text for r in heldout]
    c = AblationConfig(runner=RunnerConfig(max_new_tokens=8))
    out = _explainers(sim, heldout, texts, policy_dir, c)
    assert {"template", "fixed_phrase", "student", "policy", "protocol"} <= set(out)
    for name in ("template", "fixed_phrase", "student", "policy"):
        assert out[name] is not None and out[name]["n"] == len(stated), name
        assert 0.0 <= out[name]["rouge1"] <= 1.0
    assert out["policy"]["rouge1"] == pytest.approx(1.0)
    assert out["student"]["rouge1"] < 1.0  # a real explainer, not the references


def test_enf_distill_policy_publishes_a_loadable_version_with_its_teacher(
        sim: Path, policy_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from models.manifest import read_manifest
    from models.runtime import DEFAULT_MODEL_DIR, ScorerRuntime
    from streams.cli.distill import distill

    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    parent = read_manifest(model_dir)["version"]
    res = CliRunner().invoke(distill, ["--data", str(sim), "--policy", str(policy_dir),
                                       "--model", str(model_dir), "--epochs", "1",
                                       "--teacher-rows", "40", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["parent_version"] == parent and out["version"] != parent
    assert out["teacher"]["arm"] == "sft" and out["teacher"]["policy"].startswith("llama:")
    m = read_manifest(model_dir)
    assert m["version"] == out["version"] and m["parent_version"] == parent
    assert m["teacher"] == out["teacher"] and "explainer" in m["files"]
    assert out["teacher_rows"] >= 40
    rt = ScorerRuntime(model_dir, prefer_gpu=False)  # the runtime loads the new version
    assert rt.version == out["version"] and rt.explainer is not None
    import numpy as np

    from models.dataset_features import dataset_features

    f = dataset_features(sim)
    rows = f.rows("test")[:5]
    p, probs = rt.score(f.portraits[rows], f.video_vectors(rows))
    assert np.all((p >= 0) & (p <= 1)) and np.allclose(np.asarray(probs).sum(1), 1, atol=1e-4)


def test_sft_rows_carry_explanations_and_swipes_are_explained_like_users(sim: Path) -> None:
    from enf_core.reason_prompt import PromptConfig, parse_answer
    from models.policy.data import load_rows

    pc = PromptConfig(instruction=False)
    rows = {m: load_rows(sim, "train", RowMix(20, 20, 10, seed=3), pc, m)
            for m in ("student", "template")}
    assert [r.row for r in rows["student"]] == [r.row for r in rows["template"]]
    for mode, rs in rows.items():
        answers = [(r, parse_answer(r.completion)) for r in rs]
        assert all(a is not None for _, a in answers), mode
        for r, a in answers:
            assert a is not None
            if r.kind == "dislike":  # the user's own words, whichever mode
                assert a.explanation == r.reason_text != ""
            elif r.kind == "swipe":
                assert a.explanation and a.negative and a.reason == r.reason
            else:
                assert a.explanation == "" and not a.negative
    swipe = {m: [parse_answer(r.completion).explanation  # type: ignore[union-attr]
                 for r in rs if r.kind == "swipe"] for m, rs in rows.items()}
    assert swipe["student"] != swipe["template"]
    # the template quotes its numbers ("plot appeal 0.75"); the student writes like a user
    assert sum(any(c.isdigit() for c in t) for t in swipe["template"]) > len(swipe["template"]) // 2
    assert sum(any(c.isdigit() for c in t) for t in swipe["student"]) < len(swipe["student"]) // 4
    with pytest.raises(ValueError, match="swipe_explanations"):
        load_rows(sim, "train", RowMix(1, 1, 1), pc, "gpt")
