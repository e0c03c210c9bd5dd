"""enf ab's report: PNG charts that decode, a report.md a reader can follow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from enf_core.ab.stats import summarize
from streams.ab.report import write_report


def _image(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(matplotlib.image.imread(path))


def test_report_files(tmp_path: Path) -> None:
    def seeds(q: float) -> list[dict[str, float]]:
        return [{"watch_ratio": 0.5, "quick_swipe_rate": q + d, "dislike_rate": 0.003,
                 "suppressed_share": 0.1, "empty_requests": 0.0} for d in (0.0, 0.01)]

    r = {**summarize({"A": seeds(0.2), "B": seeds(0.15), "O": seeds(0.1)}), "seeds": 2,
         "broker": "tansu", "model": {"version": "v1"}, "mode": "drop", "data": "sim",
         "stale_share": 0.0, "suppressed_share_by_round": {"B": [0.1, 0.2], "O": [0.2, 0.2]},
         "responsiveness": {"B": {"dislikes": 1, "by_requests": [{"after": 1, "n": 2,
                                                                   "suppressed": 1,
                                                                   "share": 0.5}],
                                  "by_ms": [{"bin": "<100", "lo_ms": 0, "n": 2, "suppressed": 1,
                                             "share": 0.5}],
                                  "before": {"n": 1, "suppressed": 0, "share": 0.0}}},
         "seconds": {"total_s": 3.0}, "command": "enf ab --seeds 2"}
    write_report(tmp_path, r)
    assert json.loads((tmp_path / "results.json").read_text())["seeds"] == 2
    md = (tmp_path / "report.md").read_text()
    assert "quick-swipe rate" in md and "-24.4 %" in md and "![rates.png](rates.png)" in md
    for png in ("rates.png", "suppressed_share.png", "responsiveness.png"):
        img = _image(tmp_path / png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.std() > 0  # not blank
