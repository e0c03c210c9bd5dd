"""The policy as the stream's explainer (``ENF_EXPLAINER=policy``): sentences for
(portrait, analysis) pairs, for ``streams.policy_explanations.PolicyExplanations``.

The prompt is the one the policy was trained on (``PromptConfig(instruction=False)``
for the tiny policy, as ``PolicyTeacher``); the sentence is the ``explanation`` of
its greedy answer, "" when the answer does not parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import Portrait
from enf_core.reason_prompt import PromptConfig, build_prompt, parse_answer
from models.policy.runner import PolicyRunner, RunnerConfig

__all__ = ["PolicySentences"]


class PolicySentences:
    """``explain_many(pairs) -> list[str]`` over a saved policy directory."""

    def __init__(self, policy_dir: str | Path, *, prompt: PromptConfig | None = None,
                 runner: RunnerConfig | None = None) -> None:
        self.prompt = prompt or PromptConfig(instruction=False)
        self.runner = PolicyRunner(policy_dir, runner)

    def __call__(self, pairs: Sequence[tuple[Portrait, VideoAnalysis]]) -> list[str]:
        texts = self.runner.generate([build_prompt(p, a, self.prompt) for p, a in pairs])
        out = []
        for t in texts:
            a = parse_answer(t)
            out.append(a.explanation if a is not None else "")
        return out
