"""bench/soak.py end to end, briefly (slow: `make test-slow`; the full run is
`python bench/soak.py --minutes 10`).

Asserts what must hold at any length: the worker stays up, every hostile
message becomes exactly one dead letter, and every portrait equals an offline
replay of the valid events. RSS growth and lag are measured figures, printed
by the bench, not asserted here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_soak_briefly(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("enf_soak", path)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    out = soak.main(["--minutes", "1", "--calibrate-events", "5000", "--users", "500",
                     "--sample-s", "5", "--out", str(tmp_path)])
    assert out["worker_alive"] and out["worker_exit"] == 0
    assert out["hostile_messages"] > 0 and out["dead_letters"] == out["hostile_messages"]
    assert out["portraits_equal_replay"], out["portraits_differing"]
    assert (tmp_path / "soak.png").exists() and (tmp_path / "soak.json").exists()
