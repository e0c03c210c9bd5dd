"""``enf ab`` end to end on a tiny simulation: embedded Tansu, Redis, a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from enf_core.data.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_enf_ab_runs_arm_b_through_the_worker(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    simulate(data, SimulationConfig(users=40, videos=90, seed=4, real_videos_per_file=0))
    out = tmp_path / "ab"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "ab", "--seeds", "2", "--users", "8",
         "--sessions", "1", "--pages", "3", "--catalogue", "90", "--data", str(data),
         "--out", str(out), "--broker", "tansu", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(line) >= {"arms", "relative", "seeds", "broker", "model"}
    assert line["seeds"] == 2 and line["broker"] == "tansu" and line["model"]["version"]
    metrics = {"watch_ratio", "quick_swipe_rate", "dislike_rate", "suppressed_share",
               "empty_requests"}
    for arm in ("A", "B", "O"):
        assert set(line["arms"][arm]) == metrics
        for m in metrics:
            iv = line["arms"][arm][m]
            assert iv["lo"] <= iv["mean"] <= iv["hi"]
    assert set(line["relative"]) == {"watch_ratio", "quick_swipe_rate", "dislike_rate"}

    results = json.loads((out / "results.json").read_text())
    # Arm B's suppressions are the worker's: every request went through it, and
    # what B suppressed is exactly what the harness read off the suppressions topic.
    h = results["harness"]
    assert h["requests_sent"] == 2 * 8 * 3
    assert results["worker"]["requests"] == h["requests_sent"] + h["probe_requests_sent"]
    b_suppressed = sum(round(s["suppressed_share"] * 12 * 8 * 3)
                       for s in results["per_seed"]["B"])
    assert b_suppressed == results["harness"]["suppressed_seen"] > 0
    assert results["worker"]["events_applied"] >= results["harness"]["events_sent"] > 0
    assert (out / "report.md").read_text().startswith("# ENF closed-loop simulated A/B")
    for png in ("rates.png", "suppressed_share.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
