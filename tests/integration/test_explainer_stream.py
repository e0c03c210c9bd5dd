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
