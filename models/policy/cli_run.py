"""What ``enf train policy`` runs: one stage, or the three-arm ablation."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from models.policy.ablation import AblationConfig, run_ablation
from models.policy.data import load_rows

__all__ = ["ablation_config", "run_policy_command"]


def ablation_config(policy: str, *, budget_s: float | None = None, steps: int | None = None,
                    threads: int = 0, rl_lr: float | None = None,
                    rl_beta: float | None = None, sft_epochs: float | None = None,
                    rl_prompts: int | None = None,
                    rl_seed: int | None = None) -> AblationConfig:
    """The ablation's defaults per policy (pretrained ones: smaller steps, bf16-free CPU)."""
    from enf_core.reason_prompt import PromptConfig
    from models.policy.config import SFTSettings

    c = AblationConfig(policy=policy, threads=threads)
    if policy != "tiny":
        # a pretrained policy: the instruction line, gentle SFT, the paper's small RL steps
        c = replace(c, prompt=PromptConfig(), sft=SFTSettings(learning_rate=5e-5, epochs=1.0,
                                                              batch_size=4),
                    rl=c.rl.with_(learning_rate=2e-6, prompts_per_step=1, beta=0.04),
                    runner=replace(c.runner, batch_size=8))
    if budget_s is not None:
        c = replace(c, budget_s=budget_s)
    if steps is not None:
        c = replace(c, rl=c.rl.with_(max_steps=steps))
    if rl_lr is not None:
        c = replace(c, rl=c.rl.with_(learning_rate=rl_lr))
    if rl_beta is not None:
        c = replace(c, rl=c.rl.with_(beta=rl_beta))
    if sft_epochs is not None:
        c = replace(c, sft=replace(c.sft, epochs=sft_epochs))
    if rl_prompts is not None:
        c = replace(c, rl=c.rl.with_(prompts_per_step=rl_prompts))
    if rl_seed is not None:
        c = replace(c, rl=c.rl.with_(seed=rl_seed))
    return c


def run_policy_command(data_dir: Path, out_dir: Path, *, stage: str | None, ablation: bool,
                       policy: str, from_dir: Path | None, budget_s: float | None,
                       steps: int | None, threads: int, rl_lr: float | None = None,
                       rl_beta: float | None = None, sft_epochs: float | None = None,
                       rl_prompts: int | None = None,
                       rl_seed: int | None = None) -> dict[str, Any]:
    c = ablation_config(policy, budget_s=budget_s, steps=steps, threads=threads, rl_lr=rl_lr,
                        rl_beta=rl_beta, sft_epochs=sft_epochs, rl_prompts=rl_prompts,
                        rl_seed=rl_seed)
    if ablation:
        return run_ablation(data_dir, out_dir, c)
    if stage is None:
        raise ValueError("give --stage sft|grpo|sgrpo or --ablation")
    import torch

    from models.policy.ablation import _base_policy, _Deadline, _stderr
    from models.policy.trainer import run_rl, run_sft

    if threads:
        torch.set_num_threads(threads)
    t0 = time.monotonic()
    rows = load_rows(data_dir, "train", c.train, c.prompt, c.swipe_explanations)
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = _Deadline(float("inf"), stage, _stderr).callback  # progress only
    if stage == "sft":
        base = out_dir / "base"
        if not (base / "config.json").is_file():
            base = _base_policy(c, rows, out_dir)
        path = run_sft(base, rows, out_dir / "sft", c.sft, callbacks=[shown])
    else:
        start = from_dir or out_dir / "sft" / "policy"
        if not start.is_dir():
            raise ValueError(f"no SFT policy at {start}: run --stage sft first or pass --from")
        path = run_rl(start, rows, out_dir / stage, c.rl.with_(gated=stage == "sgrpo"),
                      callbacks=[shown])
    return {"stage": stage, "policy": policy, "out": str(path.resolve()),
            "rows": len(rows), "seconds": round(time.monotonic() - t0, 1)}
