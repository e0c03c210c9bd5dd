"""The ablation of the paper, on our data: SFT, SFT + GRPO, SFT + S-GRPO.

Both RL arms start from the same SFT checkpoint, run the same number of steps
(GRPO runs first within its share of the budget; S-GRPO then runs exactly as
many steps) and all three are evaluated greedily on the same held-out rows
(test split, a fixed mix of dislikes with written reasons, quick swipes with
their causes and positives). Per arm: the mean staged reward, judgement F1
(negative = positive class), class accuracy over held-out negatives with a
label (a wrong judgement counts as a wrong class), ROUGE-1 / 2 / L F1 of the
explanation against the written reason of each held-out dislike, and the share
of answers that parse. The explainers are compared on the same dislikes:
``template`` (``enf_core.reason.explain`` over the default scorer's verdict),
``fixed_phrase`` (one most representative train reason per predicted category),
``student`` (the shipped model's explanation student) and ``policy`` (the S-GRPO
arm's explanations), through ``models.distill.explainer.evaluate_explainers`` on
the test split's stated dislikes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from enf_core.reason_prompt import PromptConfig
from enf_core.reward import Truth, rouge_mean, staged_reward
from models.policy.config import ARMS, SFTSettings, SGRPOConfig
from models.policy.data import PolicyRow, RowMix, load_rows
from models.policy.runner import Judgement, PolicyRunner, RunnerConfig
from models.policy.tiny import TinyConfig

__all__ = ["AblationConfig", "arm_metrics", "explainer_rouge", "run_ablation"]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class AblationConfig:
    """What ``enf train policy --ablation`` runs (documented defaults: the tiny policy)."""

    policy: str = "tiny"  # tiny | gemma | smollm2
    train: RowMix = field(default_factory=lambda: RowMix(400, 400, 400, seed=0))
    heldout: RowMix = field(default_factory=lambda: RowMix(48, 48, 48, seed=1))
    prompt: PromptConfig = field(default_factory=lambda: PromptConfig(instruction=False))
    # who writes the SFT explanations of quick swipes: the shipped explanation student
    # (user-like sentences) or the template (models/policy/data.py)
    swipe_explanations: str = "student"
    sft: SFTSettings = field(default_factory=SFTSettings)
    rl: SGRPOConfig = field(default_factory=SGRPOConfig)
    budget_s: float = 840.0  # the whole command; the RL arms share what SFT leaves
    sft_share: float = 0.35  # of the budget SFT may use at most (it stops at the deadline)
    eval_share: float = 0.3  # of the budget kept for the held-out evaluation (CPU: slow)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    threads: int = 0  # torch threads; 0 keeps torch's default
    tiny: TinyConfig = field(default_factory=TinyConfig)  # the tiny policy's size


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    tp = float((y & p).sum())
    prec = tp / max(float(p.sum()), 1.0)
    rec = tp / max(float(y.sum()), 1.0)
    return 0.0 if tp == 0 else 2 * prec * rec / (prec + rec)


def _rouge3(pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    if not pairs:
        return {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    s = np.array([rouge_mean(pred, ref) for pred, ref in pairs])
    return {k: round(float(v), 4) for k, v in zip(("rouge1", "rouge2", "rougeL"), s.mean(0),
                                                  strict=True)}


def arm_metrics(rows: Sequence[PolicyRow], js: Sequence[Judgement]) -> dict[str, float]:
    """The ablation's numbers for one arm's greedy answers on held-out rows."""
    rewards = [staged_reward(j.text, Truth(r.negative, r.reason, r.reason_text)).total
               for r, j in zip(rows, js, strict=True)]
    y = np.array([r.negative for r in rows])
    p = np.array([bool(j.answer and j.answer.negative) for j in js])
    labelled = [(r, j) for r, j in zip(rows, js, strict=True) if r.negative and r.reason]
    cls = np.mean([bool(j.answer and j.answer.negative and j.answer.reason == r.reason)
                   for r, j in labelled]) if labelled else 0.0
    stated = [(j.explanation, r.reason_text) for r, j in zip(rows, js, strict=True)
              if r.reason_text]
    return {"reward": round(float(np.mean(rewards)), 4), "f1": round(_f1(y, p), 4),
            "class_acc": round(float(cls), 4), **_rouge3(stated),
            "format_ok": round(float(np.mean([j.format_ok for j in js])), 4)}


def explainer_rouge(rows: Sequence[PolicyRow], texts: Sequence[str]) -> dict[str, float]:
    """ROUGE of one explainer's texts (aligned with ``rows``) on the rows with a written reason."""
    return _rouge3([(t, r.reason_text) for r, t in zip(rows, texts, strict=True) if r.reason_text])


def _explainers(data_dir: Path, heldout: Sequence[PolicyRow], policy_texts: Sequence[str],
                policy_dir: Path, c: AblationConfig) -> dict[str, Any]:
    """The ``explainers`` block: ``models.distill.explainer.evaluate_explainers`` on the
    test split's stated dislikes (template, fixed_phrase, the shipped model's student)
    with the S-GRPO arm's explanations as ``policy`` (docs/interfaces.md).

    The policy's sentence for a held-out row is the one the arm's evaluation already
    wrote; a stated dislike outside the held-out mix is asked once, from the portrait
    the evaluation passes (no demographics, as ``PolicyTeacher``)."""
    from enf_core.reason_prompt import build_prompt
    from models.dataset_features import dataset_features
    from models.distill.explainer import evaluate_explainers
    from models.runtime import ScorerRuntime

    known = {(r.user_id, r.video_id): t for r, t in zip(heldout, policy_texts, strict=True)}
    runner: list[PolicyRunner] = []

    def policy(portrait: Any, analysis: Any, p_negative: float,
               reason_probs: Sequence[float]) -> str:
        key = (portrait.user_id, analysis.video_id)
        if key not in known:
            if not runner:
                runner.append(PolicyRunner(policy_dir, c.runner))
            known[key] = runner[0].judge([build_prompt(portrait, analysis, c.prompt)])[0] \
                .explanation
        return known[key]

    scorer = ScorerRuntime(Path(__file__).resolve().parents[1] / "default", prefer_gpu=False)
    return evaluate_explainers(dataset_features(data_dir), data_dir, scorer,
                               extra={"policy": policy})


class _Deadline:
    """A TrainerCallback that stops training at a wall-clock deadline and shows progress."""

    def __init__(self, deadline: float, label: str, progress: Progress) -> None:
        from transformers import TrainerCallback

        outer = self

        class CB(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                if time.monotonic() > outer.deadline:
                    control.should_training_stop = True
                return control

            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                       **kw: Any) -> Any:
                if logs:
                    keys = ("loss", "reward", "rewards/sgrpo_total/mean",
                            "rewards/grpo_total/mean", "rewards/format/mean", "kl",
                            "frac_reward_zero_std")
                    shown = {k.split("/")[-2] if "/" in k else k: round(float(v), 3)
                             for k, v in logs.items() if k in keys}
                    outer.progress(f"[{outer.label}] step {state.global_step}/"
                                   f"{state.max_steps} {shown}")

        self.deadline, self.label, self.progress = deadline, label, progress
        self.callback = CB()


def _base_policy(c: AblationConfig, rows: Sequence[PolicyRow], out: Path) -> Path:
    if c.policy == "tiny":
        from models.policy.tiny import build_tiny_policy

        return build_tiny_policy([r.prompt + r.completion for r in rows], out / "base", c.tiny)
    from models.policy.staging import stage_policy

    return stage_policy(c.policy)


def run_ablation(data_dir: str | Path | None, out_dir: str | Path,
                 config: AblationConfig | None = None, *, progress: Progress = _stderr,
                 device: str = "cpu",
                 rows: tuple[Sequence[PolicyRow], Sequence[PolicyRow]] | None = None
                 ) -> dict[str, Any]:
    """SFT, then GRPO and S-GRPO from it, all evaluated on the same held-out rows.

    ``rows`` (train, held-out) replaces reading ``data_dir``; the template and
    fixed-phrase explainers need the dataset and are null without it.
    """
    import torch

    c = config or AblationConfig()
    t0 = time.monotonic()
    deadline = t0 + c.budget_s
    if c.threads:
        torch.set_num_threads(c.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rows is None:
        if data_dir is None:
            raise ValueError("give a dataset directory or the rows")
        progress(f"rows: features of {data_dir} (cached after the first run)")
        train = load_rows(data_dir, "train", c.train, c.prompt, c.swipe_explanations)
        heldout = load_rows(data_dir, "test", c.heldout, c.prompt, c.swipe_explanations)
    else:
        train, heldout = list(rows[0]), list(rows[1])
    (out / "heldout.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in heldout))
    progress(f"rows: {len(train)} train, {len(heldout)} held-out ({time.monotonic() - t0:.0f}s)")
    base = out / "base" if (out / "base" / "config.json").is_file() else _base_policy(c, train, out)
    from models.policy.trainer import run_rl, run_sft

    sft_cb = _Deadline(t0 + c.sft_share * c.budget_s, "sft", progress)
    done = out / "sft" / "policy"  # a finished stage is reused: an interrupted run resumes
    sft_reused = (done / "config.json").is_file()
    progress(f"sft: reusing {done}" if sft_reused else
             f"sft: {c.sft.epochs} epochs over {len(train)} rows")
    policies = {"sft": done if (done / "config.json").is_file() else
                run_sft(base, train, out / "sft", c.sft, callbacks=[sft_cb.callback])}
    t_sft = time.monotonic() - t0
    rl_end = deadline - c.eval_share * c.budget_s
    share = max((rl_end - time.monotonic()) / 2.0, 0.0)
    steps: dict[str, int] = {}
    for arm in ("grpo", "sgrpo"):
        rl = c.rl.with_(gated=arm == "sgrpo")
        if arm == "sgrpo":
            rl = rl.with_(max_steps=max(steps["grpo"], 1))
        cb = _Deadline(time.monotonic() + share * (1.5 if arm == "sgrpo" else 1.0), arm, progress)
        progress(f"{arm}: up to {rl.max_steps} steps, {rl.prompts_per_step} prompts x "
                 f"G={rl.num_generations}, beta {rl.beta}, lr {rl.learning_rate}")
        done = out / arm / "policy"
        policies[arm] = done if (done / "config.json").is_file() else run_rl(
            policies["sft"], train, out / arm, rl, callbacks=[cb.callback])
        hist = json.loads((out / arm / "log_history.json").read_text())
        steps[arm] = max([int(h.get("step", 0)) for h in hist] or [0])
    progress(f"eval: {len(heldout)} held-out rows x {len(ARMS)} arms")
    arms: dict[str, dict[str, float]] = {}
    policy_texts: list[str] = []
    for arm in ARMS:
        js = PolicyRunner(policies[arm], c.runner).judge([r.prompt for r in heldout])
        arms[arm] = arm_metrics(heldout, js)
        with (out / f"answers-{arm}.jsonl").open("w") as fh:
            for r, j in zip(heldout, js, strict=True):
                fh.write(json.dumps({"row": r.row, "kind": r.kind, **j.to_dict()}) + "\n")
        if arm == "sgrpo":
            policy_texts = [j.explanation for j in js]
        progress(f"eval {arm}: {arms[arm]}")
    explainers: dict[str, Any]
    if data_dir is not None:
        progress("explainers: template, fixed phrase, student and policy on the test split")
        explainers = _explainers(Path(data_dir), heldout, policy_texts, policies["sgrpo"], c)
    else:  # rows given without a dataset: only the policy can be scored (on its own rows)
        explainers = {"template": None, "fixed_phrase": None, "student": None,
                      "policy": explainer_rouge(heldout, policy_texts)}
    result = {"arms": arms, "explainers": explainers, "policy": c.policy, "device": device,
              "seconds": round(time.monotonic() - t0, 1),
              "steps": {"sft_s": round(t_sft, 1), **steps},
              "heldout": {"rows": len(heldout),
                          "dislikes": sum(r.kind == "dislike" for r in heldout),
                          "swipes": sum(r.kind == "swipe" for r in heldout),
                          "positives": sum(r.kind == "positive" for r in heldout)},
              "config": {"rl": c.rl.to_dict(), "sft": asdict(c.sft), "budget_s": c.budget_s,
                         # a reused SFT policy was trained by an earlier run (its own
                         # settings: OUT/sft/log_history.json), not by "sft" above
                         "sft_reused": sft_reused},
              "out": str(out.resolve())}
    (out / "ablation.json").write_text(json.dumps(result, indent=1))
    return result
