"""Small PNG charts without a plotting library (matplotlib is not in the venv).

A numpy RGB canvas with lines, boxes, error bars and a 5x7 bitmap font, written
with zlib. Enough for the A/B report's bar and line charts; swap for
matplotlib once the venv has it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["Canvas", "bar_chart", "line_chart"]

_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "B": ("11110", "10001", "10001", "11110", "10001", "10001", "11110"),
    "C": ("01110", "10001", "10000", "10000", "10000", "10001", "01110"),
    "D": ("11100", "10010", "10001", "10001", "10001", "10010", "11100"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "F": ("11111", "10000", "10000", "11110", "10000", "10000", "10000"),
    "G": ("01110", "10001", "10000", "10111", "10001", "10001", "01111"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "J": ("00111", "00010", "00010", "00010", "00010", "10010", "01100"),
    "K": ("10001", "10010", "10100", "11000", "10100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "M": ("10001", "11011", "10101", "10101", "10001", "10001", "10001"),
    "N": ("10001", "10001", "11001", "10101", "10011", "10001", "10001"),
    "O": ("01110", "10001", "10001", "10001", "10001", "10001", "01110"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "Q": ("01110", "10001", "10001", "10001", "10101", "10010", "01101"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "U": ("10001", "10001", "10001", "10001", "10001", "10001", "01110"),
    "V": ("10001", "10001", "10001", "10001", "10001", "01010", "00100"),
    "W": ("10001", "10001", "10001", "10101", "10101", "10101", "01010"),
    "X": ("10001", "10001", "01010", "00100", "01010", "10001", "10001"),
    "Y": ("10001", "10001", "01010", "00100", "00100", "00100", "00100"),
    "Z": ("11111", "00001", "00010", "00100", "01000", "10000", "11111"),
    " ": ("00000",) * 7,
    ".": ("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
    ",": ("00000", "00000", "00000", "00000", "01100", "00100", "01000"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    "+": ("00000", "00100", "00100", "11111", "00100", "00100", "00000"),
    "%": ("11000", "11001", "00010", "00100", "01000", "10011", "00011"),
    "/": ("00000", "00001", "00010", "00100", "01000", "10000", "00000"),
    "(": ("00010", "00100", "01000", "01000", "01000", "00100", "00010"),
    ")": ("01000", "00100", "00010", "00010", "00010", "00100", "01000"),
    "=": ("00000", "00000", "11111", "00000", "11111", "00000", "00000"),
    "<": ("00010", "00100", "01000", "10000", "01000", "00100", "00010"),
    ">": ("01000", "00100", "00010", "00001", "00010", "00100", "01000"),
    "_": ("00000", "00000", "00000", "00000", "00000", "00000", "11111"),
    "?": ("01110", "10001", "00001", "00010", "00100", "00000", "00100"),
}
_FONT = {c: np.array([[ch == "1" for ch in row] for row in rows]) for c, rows in _GLYPHS.items()}

COLORS = {"A": (120, 120, 120), "B": (31, 119, 180), "O": (44, 160, 44),
          "grid": (225, 225, 225), "axis": (40, 40, 40), "text": (20, 20, 20),
          "accent": (214, 39, 40)}


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.px = np.full((height, width, 3), 255, np.uint8)
        self.width, self.height = width, height

    def rect(self, x0: float, y0: float, x1: float, y1: float,
             color: tuple[int, int, int]) -> None:
        xa, xb = sorted((round(x0), round(x1)))
        ya, yb = sorted((round(y0), round(y1)))
        self.px[max(ya, 0):max(min(yb, self.height), 0) + 1,
                max(xa, 0):max(min(xb, self.width), 0) + 1] = color

    def line(self, x0: float, y0: float, x1: float, y1: float, color: tuple[int, int, int],
             width: int = 1) -> None:
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for t in np.linspace(0.0, 1.0, n):
            x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            h = width // 2
            self.rect(x - h, y - h, x + h, y + h, color)

    def text(self, x: float, y: float, s: str, color: tuple[int, int, int] = COLORS["text"],
             scale: int = 2, anchor: str = "left") -> None:
        w = len(s) * 6 * scale
        if anchor == "center":
            x -= w / 2
        elif anchor == "right":
            x -= w
        cx = int(x)
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT["?"])
            ys, xs = np.nonzero(glyph)
            for gy, gx in zip(ys.tolist(), xs.tolist(), strict=True):
                self.rect(cx + gx * scale, int(y) + gy * scale, cx + gx * scale + scale - 1,
                          int(y) + gy * scale + scale - 1, color)
            cx += 6 * scale

    def save(self, path: Path) -> None:
        raw = b"".join(b"\x00" + self.px[r].tobytes() for r in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        png = (b"\x89PNG\r\n\x1a\n"
               + chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
        path.write_bytes(png)


def _fmt(v: float, percent: bool) -> str:
    return f"{v * 100:.1f}%" if percent else f"{v:.3g}"


def _axes(c: Canvas, box: tuple[int, int, int, int], lo: float, hi: float,
          percent: bool) -> None:
    x0, y0, x1, y1 = box
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = y1 - (y1 - y0) * k / 4
        c.line(x0, y, x1, y, COLORS["grid"])
        c.text(x0 - 6, y - 6, _fmt(v, percent), scale=1 if c.width < 400 else 2, anchor="right")
    c.line(x0, y0, x0, y1, COLORS["axis"], 2)
    c.line(x0, y1, x1, y1, COLORS["axis"], 2)


def bar_chart(path: Path, title: str, groups: Sequence[str],
              series: dict[str, Sequence[tuple[float, float, float]]], *,
              percent: bool = True, width: int = 900, height: int = 480) -> None:
    """Grouped bars (one group per metric, one bar per series) with (mean, lo, hi) bars."""
    c = Canvas(width, height)
    c.text(width / 2, 14, title, anchor="center")
    box = (130, 60, width - 30, height - 80)
    values = [v for s in series.values() for m in s for v in m]
    hi = max([*values, 1e-09]) * 1.15
    _axes(c, box, 0.0, hi, percent)
    x0, y0, x1, y1 = box
    gw = (x1 - x0) / max(len(groups), 1)
    bw = gw * 0.7 / max(len(series), 1)
    for g, name in enumerate(groups):
        c.text(x0 + gw * (g + 0.5), y1 + 12, name, anchor="center")
        for k, (arm, vals) in enumerate(series.items()):
            mean, lo, hi_v = vals[g]
            bx = x0 + gw * g + gw * 0.15 + bw * k
            ym = y1 - (y1 - y0) * mean / hi
            c.rect(bx, ym, bx + bw - 4, y1 - 1, COLORS.get(arm, COLORS["B"]))
            cx = bx + (bw - 4) / 2
            yl, yh = y1 - (y1 - y0) * lo / hi, y1 - (y1 - y0) * hi_v / hi
            c.line(cx, yl, cx, yh, COLORS["axis"], 2)
            c.line(cx - 5, yl, cx + 5, yl, COLORS["axis"], 2)
            c.line(cx - 5, yh, cx + 5, yh, COLORS["axis"], 2)
            c.text(cx, ym - 18, _fmt(mean, percent), scale=1, anchor="center")
    lx = x0 + 10
    for arm in series:
        c.rect(lx, height - 40, lx + 16, height - 26, COLORS.get(arm, COLORS["B"]))
        c.text(lx + 22, height - 40, arm)
        lx += 90
    c.save(path)


def line_chart(path: Path, title: str, x_labels: Sequence[str],
               series: Mapping[str, Sequence[float | None]], *, percent: bool = True,
               y_max: float | None = None, x_title: str = "", width: int = 900,
               height: int = 480) -> None:
    """Lines over categorical x positions (None: a gap)."""
    c = Canvas(width, height)
    c.text(width / 2, 14, title, anchor="center")
    box = (130, 60, width - 30, height - 100)
    values = [v for s in series.values() for v in s if v is not None]
    hi = y_max if y_max is not None else max([*values, 1e-09]) * 1.15
    _axes(c, box, 0.0, hi, percent)
    x0, y0, x1, y1 = box
    n = max(len(x_labels), 1)
    step = (x1 - x0) / n
    every = max(1, n // 12)
    for i, label in enumerate(x_labels):
        if i % every == 0:
            c.text(x0 + step * (i + 0.5), y1 + 10, label, scale=1, anchor="center")
    if x_title:
        c.text((x0 + x1) / 2, y1 + 30, x_title, anchor="center")
    palette = [COLORS["B"], COLORS["O"], COLORS["accent"], COLORS["A"]]
    for k, (name, vals) in enumerate(series.items()):
        color = COLORS.get(name, palette[k % len(palette)])
        prev = None
        for i, v in enumerate(vals):
            if v is None:
                prev = None
                continue
            pt = (x0 + step * (i + 0.5), y1 - (y1 - y0) * min(v, hi) / hi)
            c.rect(pt[0] - 3, pt[1] - 3, pt[0] + 3, pt[1] + 3, color)
            if prev is not None:
                c.line(prev[0], prev[1], pt[0], pt[1], color, 2)
            prev = pt
        c.rect(x0 + 10 + 260 * k, height - 40, x0 + 26 + 260 * k, height - 26, color)
        c.text(x0 + 32 + 260 * k, height - 40, name[:20])
    c.save(path)
