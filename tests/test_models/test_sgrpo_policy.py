"""The S-GRPO policy on TRL with the tiny from-scratch model: config, rewards, runner,
the paper's advantage and loss against TRL's, SFT + RL with checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from enf_core.analysis import ElementEvidence, VideoAnalysis
from enf_core.portrait import Portrait
from enf_core.reason_prompt import PromptConfig, build_prompt, build_think, render_answer
from enf_core.taxonomy import ELEMENTS, TOPICS
from models.policy.data import PolicyRow

PC = PromptConfig(instruction=False)


def _rows(n: int = 24) -> list[PolicyRow]:
    """Prompts from hand-made portraits and analyses (no dataset needed): spiders are
    disliked by the spider-sensitive, everything else is watched."""
    rows = []
    for i in range(n):
        p = Portrait.new(f"u{i}")
        p.demographics = {"age": 20 + i, "gender": "F" if i % 2 else "M"}
        spider = i % 3 == 0
        el = [0.0] * len(ELEMENTS)
        if spider:
            el[0] = 0.9
            p.element_sensitivity[0] = 0.8
        topics = [0.0] * len(TOPICS)
        topics[i % len(TOPICS)] = 1.0
        ev = (ElementEvidence("insects_spiders", 0.9, (4, 5, 6), ("tarantula",)),) if spider else ()
        a = VideoAnalysis(f"v{i}", tuple(topics), tuple(el), (0.0, 0.0, 0.0, 1.0),
                          plot_appeal=0.7, duration_ms=15000, title=f"clip {i}", evidence=ev)
        reason = "visual_discomfort" if spider else None
        text = "the spider made my skin crawl" if spider else ""
        rows.append(PolicyRow(build_prompt(p, a, PC),
                              render_answer(spider, reason, text, build_think(p, a, reason, PC)),
                              spider, reason, text, "dislike" if spider else "positive",
                              p.user_id, a.video_id, i))
    return rows


@pytest.fixture(scope="module")
def rows() -> list[PolicyRow]:
    return _rows()


@pytest.fixture(scope="module")
def tiny_base(rows: list[PolicyRow], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.policy.tiny import TinyConfig, build_tiny_policy

    return build_tiny_policy([r.prompt + r.completion for r in rows],
                             tmp_path_factory.mktemp("tiny") / "base",
                             TinyConfig(vocab_size=400, hidden=64, layers=2, heads=2,
                                        intermediate=128))


def test_grpo_config_sets_every_trl_field() -> None:
    from transformers import TrainingArguments
    from trl import GRPOConfig

    from models.policy.config import SGRPOConfig

    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    own = {f.name for f in dataclasses.fields(GRPOConfig)} - base
    c = SGRPOConfig()
    assert own - set(c.grpo_fields()) == set(), "a GRPOConfig field is left to TRL's default"
    args = c.grpo_args("/tmp/unused", reward_weights=[1.0, 0, 0, 0, 0])
    assert (args.loss_type, args.multi_objective_aggregation, args.scale_rewards) == (
        "grpo", "sum_then_normalize", "group")
    assert args.beta > 0 and args.num_generations == 8 and args.epsilon == 0.2
    assert args.per_device_train_batch_size == c.prompts_per_step * c.num_generations
    assert args.use_bias_correction_kl is False and args.gradient_checkpointing is False


def test_reward_functions_log_components_with_none_where_gated(rows: list[PolicyRow]) -> None:
    from models.policy.trainer import reward_functions

    fns, weights = reward_functions(gated=True)
    assert [f.__name__ for f in fns] == ["sgrpo_total", "judge", "cls", "rouge", "format"]
    assert weights == [1.0, 0.0, 0.0, 0.0, 0.0]
    truth = {"negative": [True, True, False, True],
             "reason": ["visual_discomfort"] * 2 + ["", "boring"],
             "reason_text": ["spider made my skin crawl", "", "", ""]}
    comps = [render_answer(True, "visual_discomfort", "the spider made my skin crawl"),
             render_answer(False, None, ""), render_answer(False, None, ""), "garbage"]
    out = {f.__name__: f(["p"] * 4, comps, **truth) for f in fns}
    assert out["sgrpo_total"][1:] == [0.0, 0.5, 0.0] and out["sgrpo_total"][0] > 2.0
    assert out["cls"] == [1.0, None, None, None] and out["rouge"][1:] == [None, None, None]
    assert out["format"] == [1.0, 1.0, 1.0, 0.0]
    ungated, _ = reward_functions(gated=False)
    assert ungated[0].__name__ == "grpo_total"


def test_runner_returns_probabilities_for_any_policy(tiny_base: Path,
                                                     rows: list[PolicyRow]) -> None:
    from models.policy.runner import PolicyRunner, RunnerConfig

    r = PolicyRunner(tiny_base, RunnerConfig(max_new_tokens=12, batch_size=4))
    js = r.judge([x.prompt for x in rows[:3]])
    for j in js:
        assert 0.0 < j.p_negative < 1.0
        assert len(j.reason_probs) == 4 and math.isclose(sum(j.reason_probs), 1.0, rel_tol=1e-6)
        assert j.format_ok is False and j.explanation == ""  # untrained: no grammar yet
        assert set(j.to_dict()) >= {"p_negative", "reason_probs", "explanation", "format_ok"}
    # teacher forcing is a real likelihood: the options' probabilities sum to < 1
    lp = r.option_logprobs(rows[0].prompt, "<think>", ["a", "b"])
    assert all(x < 0 for x in lp)


def _reference_loss(model: Any, ref: Any, inputs: dict[str, Any], rewards: Any, g: int,
                    beta: float, eps: float, temperature: float) -> tuple[Any, Any]:
    """The paper's S-GRPO objective, written out (PAPER.md):
    A_i = (R_i - mean_j R_j) / (std_j R_j + 1e-4) over the G samples of a prompt;
    loss = mean_i [ mean_t ( -min(rho A_i, clip(rho, 1-eps, 1+eps) A_i) + beta KL_t ) ],
    KL_t = exp(ref - logp) - (ref - logp) - 1 (k3), rho = exp(logp - logp_old).

    logp is the log-probability under the *sampling* policy, softmax(logits / T): rho is
    "the token probability ratio to the sampling policy", and a ratio of an unscaled
    policy to a T-scaled sampler would not be 1 on-policy. At the paper's T = 1 the two
    readings coincide; at our T = 0.7 they do not (the old reference left T out and gave
    0.1162 where TRL gives 0.2288). The reference policy is scored at the same T."""
    import torch

    # TRL shuffles a generation batch before the step: a group is the rows of one prompt
    keys = [tuple(x) for x in inputs["prompt_ids"].tolist()]
    adv = torch.zeros_like(rewards)
    for k in set(keys):
        sel = torch.tensor([q == k for q in keys])
        assert int(sel.sum()) == g
        r = rewards[sel]
        adv[sel] = (r - r.mean()) / (r.std() + 1e-4)  # std with Bessel's correction
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    t = inputs["completion_ids"].shape[1]

    def logps(m: Any) -> Any:
        logits = m(input_ids=ids, attention_mask=att).logits[:, -t - 1:-1].float() / temperature
        return torch.log_softmax(logits, -1).gather(-1, inputs["completion_ids"][..., None])[..., 0]

    lp = logps(model)
    with torch.no_grad():
        lref = logps(ref)
    rho = torch.exp(lp - lp.detach())
    a = adv[:, None]
    pg = -torch.min(rho * a, torch.clamp(rho, 1 - eps, 1 + eps) * a)
    kl = torch.exp(lref - lp) - (lref - lp) - 1
    mask = inputs["completion_mask"].float()
    per_seq = ((pg + beta * kl) * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_seq.mean(), adv


def test_trl_loss_and_advantage_match_the_paper(tiny_base: Path, rows: list[PolicyRow],
                                                tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from models.policy.config import SGRPOConfig

    def length_reward(prompts: Any, completions: Any, **_: Any) -> list[float]:
        return [float(len(c) % 5) for c in completions]  # varied, deterministic

    c = SGRPOConfig(num_generations=4, prompts_per_step=2, max_completion_length=10,
                    max_steps=2, beta=0.3, learning_rate=5e-2, save_steps=100)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    from models.policy.trainer import _dataset

    trainer = GRPOTrainer(model=str(tiny_base), reward_funcs=[length_reward],
                          args=c.grpo_args(str(tmp_path / "ck"), reward_weights=[1.0]),
                          train_dataset=_dataset(rows, sft=False), processing_class=tok)
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    orig = trainer._compute_loss

    def spy(model: Any, inputs: dict[str, Any]) -> Any:
        seen.append(({k: (v.clone() if torch.is_tensor(v) else v) for k, v in inputs.items()},
                     {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return orig(model, inputs)

    trainer._compute_loss = spy  # type: ignore[method-assign]
    trainer.train()
    inputs, state = seen[-1]  # the second step: the policy has moved away from the reference
    texts = tok.batch_decode(inputs["completion_ids"], skip_special_tokens=True)
    rewards = torch.tensor([float(len(x) % 5) for x in texts])

    theirs = trainer.model  # TRL's own (patched for its fused LM head), at the step's weights
    theirs.load_state_dict(state)
    theirs.train()
    mine = AutoModelForCausalLM.from_pretrained(tiny_base)  # a plain copy at the same weights
    mine.load_state_dict(state)
    mine.train()
    ref = AutoModelForCausalLM.from_pretrained(tiny_base).eval()  # the SFT/base policy
    loss_ref, adv = _reference_loss(mine, ref, inputs, rewards, 4, c.beta, c.epsilon,
                                    c.temperature)
    assert torch.allclose(adv, inputs["advantages"], atol=1e-5)
    theirs.zero_grad()
    loss_trl = orig(theirs, inputs)
    assert torch.allclose(loss_ref, loss_trl, atol=1e-5)
    # the sampling temperature is part of the semantics: unscaled logits give another loss
    assert c.temperature != 1.0
    with torch.no_grad():
        loss_t1, _ = _reference_loss(mine, ref, inputs, rewards, 4, c.beta, c.epsilon, 1.0)
    assert not torch.allclose(loss_t1, loss_trl, atol=1e-3)
    assert float(loss_ref.detach()) > 0  # KL to the moved policy counts (advantages sum to ~0)
    loss_ref.backward()
    loss_trl.backward()
    checked = 0
    theirs_grads = {n: p.grad for n, p in theirs.named_parameters()}
    for n, p1 in mine.named_parameters():  # the transformer layers (embeddings are tied)
        if ".layers." in n:
            assert torch.allclose(p1.grad, theirs_grads[n], atol=1e-6, rtol=1e-4), n
            checked += 1
    assert checked > 5


@pytest.mark.slow  # ~30 s unloaded; minutes on the shared 2-core machine
def test_sft_then_sgrpo_with_checkpoints_and_resume(tiny_base: Path, rows: list[PolicyRow],
                                                    tmp_path: Path) -> None:
    import json

    from models.policy.config import SFTSettings, SGRPOConfig
    from models.policy.runner import PolicyRunner, RunnerConfig
    from models.policy.trainer import run_rl, run_sft

    sft = run_sft(tiny_base, rows, tmp_path / "sft",
                  SFTSettings(max_steps=40, batch_size=8, learning_rate=3e-3, logging_steps=10))
    hist = json.loads((tmp_path / "sft" / "log_history.json").read_text())
    losses = [h["loss"] for h in hist if "loss" in h]
    assert losses[-1] < losses[0] * 0.6  # it learns the answers
    c = SGRPOConfig(num_generations=4, prompts_per_step=2, max_completion_length=96,
                    max_steps=2, logging_steps=1, save_steps=1)
    out = run_rl(sft, rows, tmp_path / "sgrpo", c)
    hist = json.loads((tmp_path / "sgrpo" / "log_history.json").read_text())
    logged = {k for h in hist for k in h}
    for key in ("kl", "entropy", "frac_reward_zero_std", "rewards/sgrpo_total/mean",
                "rewards/judge/mean", "rewards/format/mean"):
        assert key in logged, key
    assert (tmp_path / "sgrpo" / "checkpoints" / "checkpoint-2").is_dir()
    # resume: asking for 3 steps continues from checkpoint-2 and runs one more
    run_rl(sft, rows, tmp_path / "sgrpo", c.with_(max_steps=3))
    hist = json.loads((tmp_path / "sgrpo" / "log_history.json").read_text())
    steps = [h["step"] for h in hist if "kl" in h]
    assert steps[-1] == 3 and 1 not in steps[steps.index(3):]
    j = PolicyRunner(out, RunnerConfig(max_new_tokens=96)).judge([rows[0].prompt])[0]
    assert 0.0 <= j.p_negative <= 1.0


@pytest.mark.slow  # ~40 s unloaded; minutes on the shared 2-core machine
def test_ablation_runs_three_arms_on_the_same_heldout_rows(rows: list[PolicyRow],
                                                           tmp_path: Path) -> None:
    from models.policy.ablation import AblationConfig
    from models.policy.ablation import run_ablation as ablate
    from models.policy.config import SFTSettings, SGRPOConfig
    from models.policy.data import RowMix
    from models.policy.runner import RunnerConfig
    from models.policy.tiny import TinyConfig

    c = AblationConfig(train=RowMix(), heldout=RowMix(), budget_s=600,
                       sft=SFTSettings(max_steps=20, batch_size=8, learning_rate=3e-3),
                       rl=SGRPOConfig(num_generations=4, prompts_per_step=2,
                                      max_completion_length=64, max_steps=2, save_steps=10),
                       runner=RunnerConfig(max_new_tokens=64),
                       tiny=TinyConfig(vocab_size=400, hidden=64, layers=2, heads=2,
                                       intermediate=128))
    lines: list[str] = []
    r = ablate(None, tmp_path, c, rows=(rows[:18], rows[18:]), progress=lines.append)
    assert set(r["arms"]) == {"sft", "grpo", "sgrpo"}
    for m in r["arms"].values():
        assert set(m) == {"reward", "f1", "class_acc", "rouge1", "rouge2", "rougeL", "format_ok"}
        assert 0.0 <= m["reward"] <= 2.5
    assert 1 <= r["steps"]["grpo"] == r["steps"]["sgrpo"] <= 2  # same steps (the deadline may cut)
    assert set(r["explainers"]) == {"template", "fixed_phrase", "student", "policy"}
    assert any("[sgrpo] step" in x for x in lines)  # progress shown
    held = [json.loads(x) for x in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    for arm in ("sft", "grpo", "sgrpo"):  # the same rows, in the same order, for every arm
        answers = [json.loads(x) for x in (tmp_path / f"answers-{arm}.jsonl").read_text()
                   .splitlines()]
        assert [a["row"] for a in answers] == [h["row"] for h in held]


@pytest.mark.slow  # the GPU script's path on CPU: ~1 min unloaded
def test_gpu_script_cpu_dry_run(rows: list[PolicyRow], tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gpu_sgrpo", Path(__file__).resolve().parents[2] / "bench" / "gpu_sgrpo.py")
    assert spec is not None and spec.loader is not None
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    stash = tmp_path / "stash"
    gpu.pack(stash, None, wheels=False, gguf=False)
    for split, part in (("train", rows[:18]), ("heldout", rows[18:])):
        (stash / f"rows-{split}.jsonl").write_text(
            "".join(json.dumps(r.to_dict()) + "\n" for r in part))
    # a big file travels in 48 MiB parts and comes back whole
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (gpu.PART // 256 + 1000))
    names = gpu._split(big, stash, "big")
    assert len(names) == 2
    assert gpu._join(stash, "big", tmp_path / "joined.bin").read_bytes() == big.read_bytes()
    out = tmp_path / "out"
    r = gpu.run(stash, out, cpu_dry_run=True, budget_s=600, teacher_rows=4)
    assert set(r["arms"]) == {"sft", "grpo", "sgrpo"} and r["device"] == "cpu"
    labels = [json.loads(x) for x in (out / "soft_labels.jsonl").read_text().splitlines()]
    assert len(labels) == 4 and all(0.0 <= x["p_negative"] <= 1.0 for x in labels)
    assert "| sgrpo |" in (out / "ablation.md").read_text()
