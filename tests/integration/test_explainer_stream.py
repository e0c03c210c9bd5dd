"""Explanation records from the model's explanation student (real Redis, real runtime)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from enf_core.explainer import ExplainerStudent
from enf_core.policy import SuppressionPolicy
from enf_core.taxonomy import REASONS
from models.distill.explainer import publish_explainer
from models.runtime import DEFAULT_MODEL_DIR, ScorerRuntime
from streams.handlers.base import Message
from streams.handlers.scoring import ScoringHandler
from tests.integration.test_store import ListSink, _store
from tests.integration.workers import event
from tests.test_enf_core.test_explainer import analysis

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future


@pytest.mark.parametrize("mode", ["student", "template"])
async def test_explanations_come_from_the_student_and_follow_its_reload(
        redis_url: str, tmp_path: Path, mode: str) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    first = {f"{r.value}||-": f"first {r.value}" for r in REASONS}
    publish_explainer(model_dir, ExplainerStudent(
        {**first, "visual_discomfort|insects_spiders|obj": "the {obj} again"}))
    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    store = _store(redis_url)
    await store.put_videos([analysis()], ts=1)  # "v1": a tarantula in frames 3-5
    sink = ListSink()
    handler = ScoringHandler(store, sink, runtime, suppressions_topic="sup",
                             explanations_topic="exp", dead_letter_topic="dlq",
                             policy=SuppressionPolicy.unlimited(0.0),
                             explanations_per_request=1, explainer=mode)

    async def explanations(request: str) -> list[dict]:
        sink.sent.clear()
        await handler.handle([Message(event("candidates", event_id=f"c{request}",
                                            request_id=request, user_id="u1",
                                            video_ids=["v1"], ts=T0), b"u1")])
        return [orjson.loads(v) for t, _, v, _ in sink.sent if t == "exp"]

    (e,) = await explanations("r1")
    assert e["explainer"] == mode and e["record_id"] == "r1:v1:x"
    assert "traits" in e["evidence"] and "dimensions" in e["evidence"]
    if mode == "student":
        assert e["text"] in ("The tarantula again.", f"First {e['reason']}.")
        assert e["evidence"]["cited"]["key"].startswith(e["reason"])
    else:
        assert "cited" not in e["evidence"] and not e["text"].startswith("First")

    # a new version with another student: the next batch explains with it, no restart
    publish_explainer(model_dir, ExplainerStudent({k: v.replace("first", "second")
                                                   for k, v in first.items()}))
    assert runtime.maybe_reload()
    (e,) = await explanations("r2")
    assert e["text"].startswith("Second") == (mode == "student")
    assert e["model_version"] == runtime.version
    await store.close()


def test_an_unknown_explainer_is_refused() -> None:
    with pytest.raises(ValueError, match="explainer must be one of"):
        ScoringHandler(None, None, None, suppressions_topic="s",  # type: ignore[arg-type]
                       explanations_topic="e", dead_letter_topic="d", explainer="gpt")


SAID = "the tarantula made my skin crawl"


@pytest.fixture(scope="module")
def parrot_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny from-scratch policy that learned one answer for this test's prompt (a few
    seconds of plain torch): the real PolicyRunner path, on CPU, in CI."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from enf_core.portrait import Portrait
    from enf_core.reason_prompt import PromptConfig, build_prompt, render_answer
    from models.policy.tiny import TinyConfig, build_tiny_policy

    text = build_prompt(Portrait.new("u1"), analysis(), PromptConfig(instruction=False)) + \
        render_answer(True, "visual_discomfort", SAID, "tarantula in frames 3-5")
    out = build_tiny_policy([text] * 4, tmp_path_factory.mktemp("parrot"),
                            TinyConfig(vocab_size=300, hidden=32, layers=1, heads=2,
                                       intermediate=64))
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = tok(text + tok.eos_token, return_tensors="pt", add_special_tokens=False)["input_ids"]
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(120):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    return out


async def test_the_policy_explains_on_a_side_path_that_never_blocks(
        redis_url: str, parrot_policy: Path) -> None:
    from models.policy.explain import PolicySentences
    from models.policy.runner import RunnerConfig
    from streams.policy_explanations import PolicyExplanations

    runtime = ScorerRuntime(DEFAULT_MODEL_DIR, prefer_gpu=False)
    store = _store(redis_url)
    await store.put_videos([analysis()], ts=1)
    sink = ListSink()
    px = PolicyExplanations(PolicySentences(parrot_policy, runner=RunnerConfig(
        max_new_tokens=120, threads=1)), sink, "exp", queue_size=4, batch_size=2)
    handler = ScoringHandler(store, sink, runtime, suppressions_topic="sup",
                             explanations_topic="exp", dead_letter_topic="dlq",
                             policy=SuppressionPolicy.unlimited(0.0),
                             explanations_per_request=1, explainer="policy",
                             policy_explanations=px)
    r = await handler.handle([Message(event("candidates", event_id="c1", request_id="r1",
                                            user_id="u1", video_ids=["v1"], ts=T0), b"u1")])
    # the batch is answered at once: suppression and the student's explanation
    assert r.suppressions == 1
    first = [(t, orjson.loads(v)) for t, _, v, _ in sink.sent]
    assert [t for t, _ in first] == ["sup", "exp"] and first[1][1]["explainer"] == "student"
    assert await px.drain(60)
    (p,) = [orjson.loads(v) for t, _, v, _ in sink.sent[2:]]
    assert p["explainer"] == "policy" and p["record_id"] == "r1:v1:xp" and p["text"] == SAID
    assert p["request_id"] == "r1" and p["model_version"] == runtime.version
    assert px.counts == {"queued": 1, "written": 1, "dropped": 0, "empty": 0, "failed": 0}
    px.close()
    await store.close()
    with pytest.raises(ValueError, match="needs its side path"):
        ScoringHandler(store, sink, runtime, suppressions_topic="s", explanations_topic="e",
                       dead_letter_topic="d", explainer="policy")
