"""enf ab's report: PNGs that decode, a report.md a reader can follow."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from enf_core.ab.stats import summarize
from streams.ab.png import Canvas, bar_chart
from streams.ab.report import write_report


def _decode(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * 3)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 3)


def test_png_canvas_round_trips(tmp_path: Path) -> None:
    c = Canvas(40, 20)
    c.rect(2, 2, 5, 5, (255, 0, 0))
    c.text(10, 5, "AB 1%", scale=1)
    c.save(tmp_path / "x.png")
    px = _decode(tmp_path / "x.png")
    assert px.shape == (20, 40, 3)
    assert tuple(px[3, 3]) == (255, 0, 0) and tuple(px[0, 0]) == (255, 255, 255)
    assert (px[5:12, 10:40] != 255).any()  # the text drew something


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
    for png in ("rates.png", "dislike_rate.png", "suppressed_share.png", "responsiveness.png",
                "responsiveness_ms.png"):
        assert _decode(tmp_path / png).shape[2] == 3
    bar_chart(tmp_path / "b.png", "T", ["X"], {"A": [(0.0, 0.0, 0.0)]})  # all-zero data
    assert _decode(tmp_path / "b.png").shape == (480, 900, 3)
