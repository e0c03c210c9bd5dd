"""``enf eval quick``: ENF and the baselines on the same rows (protocol: models/evaluate.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["cli"]


@click.group(name="eval")
def eval() -> None:  # shadows the builtin on purpose: the group is `enf eval`
    """Evaluate models on the test splits."""


_DATASETS = ("movielens", "steam")


def _names(values: tuple[str, ...]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@eval.command(name="quick")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="TVNF-like dataset (enf data simulate) for the explicit / implicit tasks.")
@click.option("--model", "model_dir", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model directory (enf train agents); default: the shipped default model.")
@click.option("--steam-path", default=None, type=click.Path(exists=True, path_type=Path),
              help="Steam reviews (raw shared/data/steam or a converted dataset dir).")
@click.option("--movielens-path", default=None, type=click.Path(exists=True, path_type=Path),
              help="MovieLens-100K (ml-100k folder, recbole wheel, or converted dataset); "
                   "default: fetched once into the cache by the loader.")
@click.option("--baselines", "baselines", default=None,
              help="Comma-separated baselines to run (default: all; 'none' for none): "
                   "item_popularity, logistic_enf_inputs, user_item_bias, biased_mf, "
                   "lightgbm_stats, lightgbm_history, sasrec, dfn.")
@click.option("--skip", multiple=True,
              help="Leave out a generalisation dataset (movielens, steam) or a baseline; "
                   "repeatable or comma-separated.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report on stdout.")
def quick(data_dir: Path, model_dir: Path | None, steam_path: Path | None,
          movielens_path: Path | None, baselines: str | None, skip: tuple[str, ...],
          quiet: bool, as_json: bool) -> None:
    """Explicit and implicit metrics on DATA's test split, MovieLens and Steam like/dislike,
    with baselines on the same rows; progress on stderr, one JSON object last on stdout."""
    from models.baselines import BASELINES
    from models.evaluate import EvalConfig, evaluate_quick

    skipped = set(_names(skip))
    chosen = (list(BASELINES) if baselines is None
              else [] if baselines.strip() == "none" else _names((baselines,)))
    unknown = sorted((skipped - set(_DATASETS) - set(BASELINES))
                     | (set(chosen) - set(BASELINES)))
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(unknown)}; datasets: "
                                 f"{', '.join(_DATASETS)}; baselines: {', '.join(BASELINES)}")
    wanted = tuple(d for d in _DATASETS if d not in skipped)
    names = tuple(b for b in chosen if b not in skipped)

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    try:
        report = evaluate_quick(data_dir, model_dir, steam_path=steam_path,
                                movielens_path=movielens_path,
                                config=EvalConfig(rating_datasets=wanted, baselines=names),
                                progress=progress)
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    if not as_json:
        for task in ("explicit", "implicit", "movielens", "steam"):
            if task not in report:
                continue
            click.echo(f"{task:9s} {'model':22s}   auc    acc     f1  class_acc")
            rows = [("enf", report[task])] + [(b, report["baselines"][b][task])
                                              for b in report["baselines"]
                                              if task in report["baselines"][b]]
            for name, row in rows:
                if "error" in row:
                    click.echo(f"{'':9s} {name:22s} {row['error']}")
                    continue
                ca = f"{row['class_acc']:.3f}" if "class_acc" in row else "  -"
                click.echo(f"{'':9s} {name:22s} {row['auc']:.3f}  {row['acc']:.3f}  "
                           f"{row['f1']:.3f}  {ca}")
    click.echo(json.dumps(report))


cli = eval
