"""The trained policy as ``enf distill``'s teacher (``models.distill.scorer.Teacher``).

``label(features, rows)`` renders each row's prompt from the portrait before the
row and the video's analysis (``enf_core.reason_prompt.build_prompt``, no
demographics: DatasetFeatures does not carry them) and asks ``PolicyRunner.judge``:
teacher-forced ``p_negative`` and ``reason_probs`` after the policy's own
``<think>``, and its explanation sentences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from enf_core.reason_prompt import PromptConfig, build_prompt
from models.policy.data import portrait_from_vector
from models.policy.runner import PolicyRunner, RunnerConfig

__all__ = ["PolicyTeacher"]


class PolicyTeacher:
    """A policy directory (``<run>/<arm>/policy``) that labels dataset rows."""

    def __init__(self, policy_dir: str | Path, *, prompt: PromptConfig | None = None,
                 runner: RunnerConfig | None = None) -> None:
        self.policy_dir = Path(policy_dir)
        self.prompt = prompt or PromptConfig(instruction=False)
        self.runner = PolicyRunner(self.policy_dir, runner)

    def describe(self) -> dict[str, Any]:
        arm = self.policy_dir.parent.name
        cfg = self.policy_dir / "config.json"
        kind = json.loads(cfg.read_text()).get("model_type", "") if cfg.is_file() else ""
        st = cfg.stat().st_mtime_ns if cfg.is_file() else 0
        return {"policy": f"{kind}:{self.policy_dir.parent.parent.name}", "arm": arm,
                "version": f"{st}"}

    def label(self, features: Any, rows: np.ndarray) -> Any:
        from models.distill.scorer import TeacherLabels

        prompts = [build_prompt(portrait_from_vector(features.portraits[i],
                                                     str(features.user_ids[i])),
                                features.analyses[str(features.video_ids[i])], self.prompt)
                   for i in np.asarray(rows, np.int64)]
        js = self.runner.judge(prompts)
        return TeacherLabels(np.array([j.p_negative for j in js], np.float32),
                             np.array([j.reason_probs for j in js], np.float32),
                             [j.explanation for j in js])
