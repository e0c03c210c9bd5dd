"""The ENF_EXPLAINER=policy side path: bounded, never blocking, one record per job."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import Portrait
from streams.policy_explanations import PolicyExplanations, PolicyJob


class _Sink:
    """Records what was produced (unit test of pure queueing logic: no broker)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> Any:
        self.sent.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _job(i: int) -> PolicyJob:
    record = {"v": 1, "type": "explanation", "record_id": f"r{i}:v{i}:x", "explainer": "student",
              "text": "the student's sentence", "reason": "boring",
              "evidence": {"traits": [], "cited": {"key": "boring||-"}}}
    return PolicyJob(record, b"u", Portrait.new("u"), VideoAnalysis.neutral(f"v{i}"))


async def test_each_job_gets_a_policy_record_and_empty_answers_write_none() -> None:
    sink = _Sink()
    seen: list[int] = []

    def explain_many(pairs: Sequence[tuple[Portrait, VideoAnalysis]]) -> list[str]:
        seen.append(len(pairs))
        return ["" if a.video_id == "v1" else f"policy on {a.video_id}" for _, a in pairs]

    counted: list[str] = []
    px = PolicyExplanations(explain_many, sink, "exp", queue_size=8, batch_size=4,
                            count=counted.append)
    assert all(px.offer(_job(i)) for i in range(3))
    assert await px.drain(10)
    recs = [orjson.loads(v) for t, _, v in sink.sent if t == "exp" and v]
    assert sorted(r["record_id"] for r in recs) == ["r0:v0:xp", "r2:v2:xp"]
    for r in recs:
        assert r["explainer"] == "policy" and r["text"] == f"policy on {r['record_id'][3:5]}"
        assert r["reason"] == "boring" and "cited" not in r["evidence"]
    assert px.counts["queued"] == 3 and px.counts["written"] == 2 and px.counts["empty"] == 1
    assert sorted(counted) == sorted(["queued"] * 3 + ["written"] * 2 + ["empty"])
    assert sum(seen) == 3 and max(seen) <= 4
    px.close()


async def test_a_full_queue_drops_without_blocking_and_a_failure_does_not_stop_it() -> None:
    sink = _Sink()
    gate = threading.Event()
    calls = 0

    def explain_many(pairs: Sequence[tuple[Portrait, VideoAnalysis]]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            gate.wait(10)  # the policy is busy with the first job
            raise RuntimeError("the policy fell over")
        return ["fine"] * len(pairs)

    px = PolicyExplanations(explain_many, sink, "exp", queue_size=2, batch_size=1)
    assert px.offer(_job(0))
    while calls == 0:  # the thread took job 0 and is stuck in it
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = [px.offer(_job(i)) for i in range(1, 6)]
    assert loop.time() - t0 < 1.0  # never waits for the policy
    assert results == [True, True, False, False, False]
    assert px.counts["dropped"] == 3
    gate.set()
    assert await px.drain(10)
    assert px.counts["failed"] == 1 and px.counts["written"] == 2
    assert sorted(orjson.loads(v)["record_id"] for _, _, v in sink.sent if v) == [
        "r1:v1:xp", "r2:v2:xp"]
    px.close()


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PolicyExplanations(lambda p: [], _Sink(), "exp", queue_size=0)


def test_the_worker_refuses_the_policy_explainer_without_a_policy(tmp_path: Any) -> None:
    from streams.app import _policy_explanations
    from streams.config import WorkerConfig
    from streams.metrics import WorkerMetrics

    m = WorkerMetrics()
    assert _policy_explanations(WorkerConfig(), _Sink(), "exp", m) is None
    for missing in ("", str(tmp_path / "nowhere")):
        with pytest.raises(ValueError, match="ENF_POLICY_DIR"):
            _policy_explanations(WorkerConfig(explainer="policy", policy_dir=missing),
                                 _Sink(), "exp", m)
