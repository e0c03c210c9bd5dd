"""``enf distill``: a teacher's soft labels into a new scorer (+ explainer) version."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

__all__ = ["cli", "distill"]


@click.command(name="distill")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset in the ENF log schema (enf data simulate / enf logs dump).")
@click.option("--policy", "policy_dir", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The S-GRPO policy checkpoint to distil (enf train policy).")
@click.option("--teacher-model", "teacher_model", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Or another exported scorer as the teacher.")
@click.option("--model", "model_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model directory the new version is published into (hot reload).")
@click.option("--soft-weight", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Weight of the teacher's labels beside the hard labels.")
@click.option("--teacher-rows", type=click.IntRange(1), default=20_000, show_default=True,
              help="Train rows the teacher labels (every train dislike, the rest at random).")
@click.option("--epochs", type=click.IntRange(1), default=8, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON object.")
def distill(data_dir: Path, policy_dir: Path | None, teacher_model: Path | None,
            model_dir: Path, soft_weight: float, teacher_rows: int, epochs: int,
            as_json: bool) -> None:
    """Teacher-forced labels from POLICY (or a teacher scorer) into MODEL's student.

    Prints one JSON object last: version, parent_version, teacher, agreement,
    metrics, explainer ROUGE on test, seconds.
    """
    from models.distill.scorer import DistillConfig, ScorerTeacher, Teacher
    from models.distill.scorer import distill as run

    t0 = time.perf_counter()
    if (policy_dir is None) == (teacher_model is None):
        click.echo(json.dumps({"error": "give exactly one of --policy or --teacher-model"}))
        sys.exit(2)
    try:
        teacher: Teacher
        if policy_dir is not None:
            try:
                from models.policy.teacher import PolicyTeacher  # type: ignore[import-not-found]
            except ImportError as exc:
                raise RuntimeError(f"the S-GRPO policy's teacher API (models.policy.teacher) "
                                   f"is not available: {exc}") from None
            teacher = PolicyTeacher(policy_dir)
        else:
            assert teacher_model is not None
            teacher = ScorerTeacher(teacher_model)
        m = run(data_dir, model_dir, teacher, DistillConfig(
            soft_weight=soft_weight, teacher_rows=teacher_rows, epochs=epochs))
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    out = {"model": str(model_dir.resolve()), "version": m["version"],
           "parent_version": m.get("parent_version"), "teacher": m["teacher"],
           "agreement": m["distillation"]["agreement"],
           "teacher_rows": m["distillation"]["teacher_rows"],
           "metrics": m["metrics"], "operating_point": m.get("operating_point"),
           "explainers": m["students"].get("explainer", {}).get("rouge_test"),
           "seconds": round(time.perf_counter() - t0, 1)}
    if not as_json:
        click.echo(f"published {out['version']} (parent {out['parent_version']}) from "
                   f"{out['teacher']}", err=True)
    click.echo(json.dumps(out))


cli = distill
