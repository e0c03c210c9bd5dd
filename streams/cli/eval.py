"""``enf eval quick``: ENF and two baselines on the test splits (protocol: models/evaluate.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["cli"]


@click.group(name="eval")
def eval() -> None:  # shadows the builtin on purpose: the group is `enf eval`
    """Evaluate models on the test splits."""


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
@click.option("--skip", multiple=True, type=click.Choice(["movielens", "steam"]),
              help="Leave out a generalisation dataset (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report.")
def quick(data_dir: Path, model_dir: Path | None, steam_path: Path | None,
          movielens_path: Path | None, skip: tuple[str, ...], as_json: bool) -> None:
    """Explicit and implicit metrics on DATA's test split, MovieLens and Steam like/dislike,
    with baselines; prints one JSON object last."""
    from models.evaluate import EvalConfig, evaluate_quick

    wanted = tuple(d for d in ("movielens", "steam") if d not in skip)
    try:
        report = evaluate_quick(data_dir, model_dir, steam_path=steam_path,
                                movielens_path=movielens_path,
                                config=EvalConfig(rating_datasets=wanted))
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    if not as_json:
        for task in ("explicit", "implicit", "movielens", "steam"):
            if task not in report:
                continue
            row = report[task]
            base = {b: report["baselines"][b].get(task, {}).get("f1") for b in report["baselines"]}
            click.echo(f"{task:9s} acc {row['acc']:.3f}  f1 {row['f1']:.3f}  "
                       + (f"class_acc {row['class_acc']:.3f}  " if "class_acc" in row else "")
                       + "baselines f1 " + ", ".join(f"{b} {v:.3f}" for b, v in base.items()
                                                     if v is not None))
    click.echo(json.dumps(report))


cli = eval
