"""``enf ab``'s outputs: DIR/results.json, DIR/report.md and the PNG charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enf_core.ab.stats import PAPER
from streams.ab.png import bar_chart, line_chart

__all__ = ["write_report"]

_NAMES = {"watch_ratio": "average watch ratio", "quick_swipe_rate": "quick-swipe rate",
          "dislike_rate": "dislike rate", "suppressed_share": "suppressed share",
          "empty_requests": "requests with nothing left to serve"}


def _pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f} %"


def _ci(m: dict[str, float], digits: int = 2) -> str:
    lo, hi = m["lo"] * 100, m["hi"] * 100
    return f"{m['mean'] * 100:.{digits}f} % [{lo:.{digits}f}, {hi:.{digits}f}]"


def _plots(out: Path, r: dict[str, Any]) -> list[str]:
    arms = r["arms"]
    names = []

    def triple(arm: str, metric: str) -> tuple[float, float, float]:
        m = arms[arm][metric]
        return (m["mean"], max(m["lo"], 0.0), m["hi"])

    bar_chart(out / "rates.png", "WATCH RATIO AND QUICK-SWIPE RATE PER ARM (95% CI OVER SEEDS)",
              ["WATCH RATIO", "QUICK SWIPES"],
              {arm: [triple(arm, "watch_ratio"), triple(arm, "quick_swipe_rate")]
               for arm in arms})
    names.append("rates.png")
    bar_chart(out / "dislike_rate.png", "DISLIKE RATE PER ARM (95% CI OVER SEEDS)",
              ["DISLIKE RATE"], {arm: [triple(arm, "dislike_rate")] for arm in arms},
              width=600)
    names.append("dislike_rate.png")
    by_round = r.get("suppressed_share_by_round", {})
    if by_round:
        n = max(len(v) for v in by_round.values())
        line_chart(out / "suppressed_share.png", "SUPPRESSED SHARE OF CANDIDATES PER ROUND",
                   [str(i + 1) for i in range(n)], {f"ARM {k}": v for k, v in by_round.items()},
                   x_title="REQUEST NUMBER OF EACH USER")
        names.append("suppressed_share.png")
    resp = r.get("responsiveness", {})
    if resp.get("B", {}).get("by_requests"):
        rows = {arm: {b["after"]: b["share"] for b in v["by_requests"]}
                for arm, v in resp.items()}
        ks = sorted({k for v in rows.values() for k in v})
        series: dict[str, list[float | None]] = {
            f"ARM {arm}": [v.get(k) for k in ks] for arm, v in rows.items()}
        before = resp["B"]["before"]["share"]
        if before is not None:
            series["B BEFORE DISLIKE"] = [before] * len(ks)
        line_chart(out / "responsiveness.png",
                   "SHARE OF CANDIDATES WITH A DISLIKED ELEMENT SUPPRESSED",
                   [str(k) for k in ks], series, y_max=1.0,
                   x_title="REQUESTS SINCE THE FIRST DISLIKE OF THE ELEMENT")
        names.append("responsiveness.png")
        ms = resp["B"]["by_ms"]
        line_chart(out / "responsiveness_ms.png",
                   "ARM B: SUPPRESSED SHARE BY TIME SINCE THE DISLIKE",
                   [b["bin"] for b in ms], {"ARM B": [b["share"] for b in ms]}, y_max=1.0,
                   x_title="MILLISECONDS SINCE THE DISLIKE WAS SENT")
        names.append("responsiveness_ms.png")
    return names


def write_report(out: Path, r: dict[str, Any]) -> None:
    """results.json (everything), report.md (what a reader needs), the charts."""
    (out / "results.json").write_text(json.dumps(r, indent=2) + "\n")
    plots = _plots(out, r)
    arms = r["arms"]
    rel = r.get("relative", {})
    lines = [
        "# ENF closed-loop simulated A/B",
        "",
        f"Arms: **A** baseline ranker's top page; **B** the same list through the real ENF "
        f"worker ({r['broker']} broker, Redis, model {r['model'].get('version', '?')}, "
        f"mode `{r['mode']}`), suppressions backfilled from the next candidates; **O** an "
        f"oracle suppressing by the latent truth with the same budget. {r['seeds']} seeds; "
        f"simulation: `{r['data']}`.",
        "",
        "| metric | A | B | O | B vs A | paper (control → ENF) |",
        "|---|---|---|---|---|---|",
    ]
    for m in ("watch_ratio", "quick_swipe_rate", "dislike_rate", "suppressed_share"):
        digits = 3 if m == "dislike_rate" else 2
        paper = PAPER.get(m)
        paper_s = (f"{paper['A'] * 100:.2f} % → {paper['B'] * 100:.2f} % "
                   f"({(paper['B'] - paper['A']) / paper['A'] * 100:+.1f} %)") if paper else ""
        rel_s = f"{rel[m] * 100:+.1f} %" if rel.get(m) is not None else ""
        lines.append(f"| {_NAMES[m]} | {_ci(arms['A'][m], digits)} | {_ci(arms['B'][m], digits)} "
                     f"| {_ci(arms['O'][m], digits)} | {rel_s} | {paper_s} |")
    e = {arm: arms[arm]["empty_requests"]["mean"] for arm in arms}
    lines += [f"| {_NAMES['empty_requests']} (per seed) | {e['A']:.1f} | {e['B']:.1f} "
              f"| {e['O']:.1f} | | |", ""]
    bar = r.get("bar", {})
    share = r.get("share_of_oracle_gain", {})
    lines += [
        "95 % intervals are Student's t over the seeds' values.",
        "",
        f"**Bar** (B below A in quick-swipe and dislike rate with non-overlapping intervals, "
        f"watch ratio not lower): {'passed' if bar.get('passed') else 'not passed'} "
        f"(quick swipes {bar.get('quick_swipe_rate')}, dislikes {bar.get('dislike_rate')}, "
        f"watch ratio {bar.get('watch_ratio')}).",
        "",
        "Paired by seed (B − A, same users and draws): " + ", ".join(
            f"{_NAMES[m]} {v['mean'] * 100:+.3f} pp [{v['lo'] * 100:+.3f}, {v['hi'] * 100:+.3f}]"
            for m, v in r.get("paired_difference", {}).items()) + ".",
        "",
        "B's share of the oracle's gain: " + ", ".join(
            f"{_NAMES[m]} {_pct(v, 0)}" for m, v in share.items()) + ".",
        "",
        f"Requests answered on a stale portrait (B): {_pct(r.get('stale_share'), 2)}.",
        "",
    ]
    resp = r.get("responsiveness", {}).get("B", {})
    if resp:
        first = next((b for b in resp.get("by_requests", []) if b["after"] == 1), None)
        lines += [
            "## Responsiveness",
            "",
            f"{resp.get('dislikes', 0)} first dislikes naming an element. Of the later "
            "candidates carrying that element, ENF suppressed: "
            + ", ".join(f"{b['after']} request(s) later {_pct(b['share'])} (n={b['n']})"
                        for b in resp.get("by_requests", [])[:5])
            + f"; before the dislike {_pct(resp.get('before', {}).get('share'))}"
            f" (n={resp.get('before', {}).get('n', 0)}).",
            "",
            "By time since the dislike: " + ", ".join(
                f"{b['bin']} ms {_pct(b['share'])} (n={b['n']})" for b in resp.get("by_ms", []))
            + ".",
            "",
        ]
        if first is not None:
            lines += [f"Very next request: {_pct(first['share'])} suppressed.", ""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [
        "", "## Run", "", f"`{r.get('command', 'enf ab')}` — {r['seconds']['total_s']:.0f} s; "
        f"settings in results.json (`config`).", ""]
    (out / "report.md").write_text("\n".join(lines))
