"""``enf ab``'s outputs: DIR/results.json, DIR/report.md and the PNG charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enf_core.ab.stats import PAPER

__all__ = ["write_report"]

_NAMES = {"watch_ratio": "average watch ratio", "quick_swipe_rate": "quick-swipe rate",
          "dislike_rate": "dislike rate", "suppressed_share": "suppressed share",
          "empty_requests": "requests with nothing left to serve"}


def _pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f} %"


def _ci(m: dict[str, float], digits: int = 2) -> str:
    lo, hi = m["lo"] * 100, m["hi"] * 100
    return f"{m['mean'] * 100:.{digits}f} % [{lo:.{digits}f}, {hi:.{digits}f}]"


_COLORS = {"A": "#7f7f7f", "B": "#1f77b4", "O": "#2ca02c"}


def _bars(ax: Any, arms: dict[str, Any], metrics: list[str], scale: float) -> None:
    width = 0.8 / max(len(arms), 1)
    for k, (arm, values) in enumerate(arms.items()):
        xs = [i + (k - (len(arms) - 1) / 2) * width for i in range(len(metrics))]
        means = [values[m]["mean"] * scale for m in metrics]
        err = [[(values[m]["mean"] - values[m]["lo"]) * scale for m in metrics],
               [(values[m]["hi"] - values[m]["mean"]) * scale for m in metrics]]
        ax.bar(xs, means, width * 0.95, yerr=err, capsize=4, color=_COLORS.get(arm),
               label=f"arm {arm}")
        for x, v in zip(xs, means, strict=True):
            ax.annotate(f"{v:.2f}", (x, v), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=8)
    ax.set_xticks(range(len(metrics)), [_NAMES[m] for m in metrics])
    ax.legend()


def _plots(out: Path, r: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = r["arms"]
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    _bars(axes[0], arms, ["watch_ratio", "quick_swipe_rate"], 100)
    axes[0].set_ylabel("%")
    _bars(axes[1], arms, ["dislike_rate"], 100)
    axes[1].set_ylabel("%")
    fig.suptitle(f"Rates per arm, 95 % intervals over {r['seeds']} seeds")
    fig.tight_layout()
    fig.savefig(out / "rates.png", dpi=110)
    plt.close(fig)
    names.append("rates.png")

    by_round = r.get("suppressed_share_by_round", {})
    if by_round:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        for arm, values in by_round.items():
            ax.plot(range(1, len(values) + 1), [v * 100 for v in values], marker="o",
                    color=_COLORS.get(arm), label=f"arm {arm}")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("request number of each user")
        ax.set_ylabel("suppressed share of candidates (%)")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.set_title("Suppressed share over time")
        fig.tight_layout()
        fig.savefig(out / "suppressed_share.png", dpi=110)
        plt.close(fig)
        names.append("suppressed_share.png")

    resp = r.get("responsiveness", {})
    if resp.get("B", {}).get("by_requests"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for arm, v in resp.items():
            rows = v["by_requests"]
            axes[0].plot([b["after"] for b in rows],
                         [(b["share"] or 0) * 100 for b in rows], marker="o",
                         color=_COLORS.get(arm), label=f"arm {arm}")
        before = resp["B"]["before"]["share"]
        if before is not None:
            axes[0].axhline(before * 100, color=_COLORS["B"], ls="--",
                            label="arm B before the dislike")
        axes[0].set_xlabel("user's requests since the first dislike of the element "
                           "(last: and later)")
        axes[0].set_ylabel("candidates with the element suppressed (%)")
        axes[0].set_ylim(0, 100)
        axes[0].legend()
        probes = resp["B"].get("probes") or []
        if probes:
            labels = ["before" if b["delay_ms"] < 0 else f"+{b['delay_ms']}" for b in probes]
            shares = [(b["share"] or 0) * 100 for b in probes]
            axes[1].plot(range(len(probes)), shares, marker="o", color=_COLORS["B"])
            axes[1].set_xticks(range(len(probes)), labels)
            axes[1].set_xlabel("probe sent ms after the dislike (before: just before it)")
            axes[1].set_ylabel("probe's carrier suppressed (%)")
            for i, b in enumerate(probes):
                axes[1].annotate(f"n={b['n']}", (i, shares[i]), ha="center",
                                 textcoords="offset points", xytext=(0, 4), fontsize=8)
        else:
            ms = resp["B"]["by_ms"]
            axes[1].bar(range(len(ms)), [(b["share"] or 0) * 100 for b in ms],
                        color=_COLORS["B"])
            axes[1].set_xticks(range(len(ms)), [b["bin"] for b in ms], rotation=30, fontsize=8)
            axes[1].set_xlabel("ms since the dislike was sent")
        axes[1].set_ylim(0, 100)
        fig.suptitle("Responsiveness: suppression after a dislike naming an element")
        fig.tight_layout()
        fig.savefig(out / "responsiveness.png", dpi=110)
        plt.close(fig)
        names.append("responsiveness.png")
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
        if resp.get("probes"):
            lines += [
                "Probes (one unseen video carrying the disliked element + 3 videos with no "
                "element, never served; a budget of 1): carrier suppressed "
                + ", ".join(("just before the dislike" if b["delay_ms"] < 0
                             else f"{b['delay_ms']} ms after")
                            + f" {_pct(b['share'])} (n={b['n']})" for b in resp["probes"])
                + ".", ""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [
        "", "## Run", "", f"`{r.get('command', 'enf ab')}` — {r['seconds']['total_s']:.0f} s; "
        f"settings in results.json (`config`).", ""]
    (out / "report.md").write_text("\n".join(lines))
