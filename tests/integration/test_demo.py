"""``enf demo --json`` as a user runs it: embedded services, a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_demo_json_summary_counts_every_bad_event() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--events", "3000", "--bad-events", "7",
         "--users", "150", "--videos", "200", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["dead_letters"] == 7
    assert 2980 <= summary["events_in"] - 7 <= 3000  # the feed is cut at a message boundary
    assert summary["portraits"] > 0 and summary["videos_analyzed"] == 200
    # Every clip and frames row is under the demo's media root: none refused.
    assert summary["videos_failed"] == 0
    assert summary["candidates_scored"] >= summary["candidate_requests"] > 0
    assert 0.0 < summary["quick_swipe_rate"] < 1.0
    assert summary["model"]["providers"] == ["CPUExecutionProvider"]
    assert summary["broker"]["kind"] == "tansu"
    for key in ("explanations", "suppressions", "throughput_eps", "latency_ms", "redis"):
        assert key in summary
    # The product policy: never more than the budget's fraction (0.25) of a request;
    # requests ride in the user's own stream, so no portrait is ever stale.
    assert 0.0 <= summary["suppressed_share"] <= 0.25
    assert summary["suppressions"] <= 0.25 * summary["candidates_scored"]
    assert summary["candidates_topic"] == "user-events"
    assert summary["stale_portrait_share"] == 0.0
