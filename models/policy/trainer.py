"""SFT cold start and the RL arms (GRPO, S-GRPO) on TRL, with checkpoints and resume.

Rewards go to TRL as five functions: the arm's total (weight 1: the staged
reward for S-GRPO, the ungated sum for GRPO) and its components at weight 0 —
``judge``, ``cls``, ``rouge`` (``None`` where the gate closed or the row has no
label, so TRL's per-reward mean counts only where it applies) and ``format``
(1 parsed, 0 not: parse failures per step). TRL logs each as
``rewards/<name>/mean`` beside ``kl``, ``entropy`` and ``frac_reward_zero_std``;
the history is written to ``log_history.json`` in the arm's directory.

Every output is a plain ``save_pretrained`` directory: TRL reloads the
reference model of full fine-tuning from the SFT path (``beta`` > 0).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from enf_core.reward import RewardParts, Truth, staged_reward, ungated_reward
from models.policy.config import SFTSettings, SGRPOConfig
from models.policy.data import PolicyRow

__all__ = ["RewardFn", "reward_functions", "run_rl", "run_sft"]

log = logging.getLogger(__name__)
RewardFn = Callable[..., list[float | None]]
POLICY_SUBDIR = "policy"


@lru_cache(maxsize=65536)
def _parts(completion: str, negative: bool, reason: str | None, text: str,
           gated: bool) -> RewardParts:
    t = Truth(bool(negative), reason or None, text or "")
    return staged_reward(completion, t) if gated else ungated_reward(completion, t)


def _text(c: Any) -> str:
    if isinstance(c, list):  # conversational completions: [{"role", "content"}]
        return "".join(m.get("content", "") for m in c)
    return str(c)


def reward_functions(gated: bool) -> tuple[list[RewardFn], list[float]]:
    """The arm's total (weight 1) and its components (weight 0), TRL's signature."""

    def make(name: str, pick: Callable[[RewardParts], float | None]) -> RewardFn:
        def fn(prompts: Sequence[Any], completions: Sequence[Any], *, negative: Sequence[bool],
               reason: Sequence[str | None], reason_text: Sequence[str],
               **_: Any) -> list[float | None]:
            return [pick(_parts(_text(c), bool(n), r, t, gated))
                    for c, n, r, t in zip(completions, negative, reason, reason_text, strict=True)]

        fn.__name__ = name
        return fn

    total = "sgrpo_total" if gated else "grpo_total"
    fns = [make(total, lambda p: p.total), make("judge", lambda p: p.judge if p.parsed else 0.0),
           make("cls", lambda p: p.cls), make("rouge", lambda p: p.rouge),
           make("format", lambda p: 1.0 if p.parsed else 0.0)]
    return fns, [1.0, 0.0, 0.0, 0.0, 0.0]


def _dataset(rows: Sequence[PolicyRow], *, sft: bool) -> Any:
    from datasets import Dataset

    if sft:
        return Dataset.from_list([{"prompt": r.prompt, "completion": r.completion} for r in rows])
    return Dataset.from_list([{"prompt": r.prompt, "negative": r.negative,
                               "reason": r.reason or "", "reason_text": r.reason_text}
                              for r in rows])


def _last_checkpoint(d: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(d)) if d.is_dir() else None


def _finish(trainer: Any, out_dir: Path) -> Path:
    final = out_dir / POLICY_SUBDIR
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    (out_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return final


def run_sft(base_dir: str | Path, rows: Sequence[PolicyRow], out_dir: str | Path,
            settings: SFTSettings | None = None, *, callbacks: Sequence[Any] = ()) -> Path:
    """Cold start on the rows' rendered answers (completion-only loss); returns the policy dir.

    Resumes from the last checkpoint in ``out_dir/checkpoints`` if one is there.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    s = settings or SFTSettings()
    out = Path(out_dir)
    ck = out / "checkpoints"
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    args = SFTConfig(
        output_dir=str(ck), learning_rate=s.learning_rate, num_train_epochs=s.epochs,
        max_steps=s.max_steps, per_device_train_batch_size=s.batch_size,
        max_length=s.max_length, warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay,
        lr_scheduler_type="cosine", seed=s.seed, data_seed=s.seed,
        logging_steps=s.logging_steps, save_strategy="steps", save_steps=200,
        save_total_limit=1, report_to="none", use_cpu=s.use_cpu, bf16=s.bf16, fp16=False,
        completion_only_loss=True, packing=False, dataset_num_proc=None,
        gradient_checkpointing=False, disable_tqdm=True, dataloader_num_workers=0,
        eos_token=tok.eos_token, pad_token=tok.pad_token)
    trainer = SFTTrainer(model=model, args=args, train_dataset=_dataset(rows, sft=True),
                         processing_class=tok, callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=_last_checkpoint(ck))
    return _finish(trainer, out)


def run_rl(sft_dir: str | Path, rows: Sequence[PolicyRow], out_dir: str | Path,
           config: SGRPOConfig | None = None, *, callbacks: Sequence[Any] = (),
           **grpo_overrides: Any) -> Path:
    """One RL arm from the SFT policy (gated: S-GRPO; else GRPO); returns the policy dir.

    Resumes from the last checkpoint in ``out_dir/checkpoints`` if one is there.
    """
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    c = config or SGRPOConfig()
    out = Path(out_dir)
    ck = out / "checkpoints"
    fns, weights = reward_functions(c.gated)
    args = c.grpo_args(str(ck), reward_weights=weights, **grpo_overrides)
    tok = AutoTokenizer.from_pretrained(str(sft_dir))
    tok.padding_side = "left"
    trainer = GRPOTrainer(model=str(sft_dir), reward_funcs=fns, args=args,  # type: ignore[arg-type]
                          train_dataset=_dataset(rows, sft=False), processing_class=tok,
                          callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=_last_checkpoint(ck))
    return _finish(trainer, out)
