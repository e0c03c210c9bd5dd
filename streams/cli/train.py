"""``enf train agents``: train the agents' students on a dataset and export them to ONNX."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

__all__ = ["cli", "policy", "train"]


@click.group(name="train")
def train() -> None:
    """Train and export the agents' students (needs the train extra: torch)."""


@train.command(name="agents")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset directory in the ENF log schema (enf data simulate / load).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model directory; a new version is published atomically (hot reload).")
@click.option("--title-encoder", type=click.Choice(["minilm", "e5"]), default="minilm",
              show_default=True)
@click.option("--epochs", type=int, default=None, help="Scorer epochs (default 8).")
@click.option("--no-students", is_flag=True, help="Only the scorer (skip video head and "
              "portrait step).")
@click.option("--threads", type=int, default=0, show_default=True,
              help="torch threads; 0 keeps torch's default.")
def agents(data_dir: Path, out_dir: Path, title_encoder: str, epochs: int | None,
           no_students: bool, threads: int) -> None:
    """Run the Video and Profile agents over DATA, train the students, export to OUT.

    Prints one JSON object last: version, metrics on valid, thresholds, timings.
    """
    from enf_core.policy import SuppressionPolicy
    from models.agents_pipeline import AgentsTrainConfig, train_agents

    c = AgentsTrainConfig(title_encoder=title_encoder, train_students=not no_students,
                          target_precision=SuppressionPolicy.from_env().target_precision)
    scorer = replace(c.scorer, threads=threads)
    if epochs is not None:
        scorer = replace(scorer, epochs=epochs)
    c = replace(c, scorer=scorer)
    t0 = time.perf_counter()
    try:
        m = train_agents(data_dir, out_dir, c)
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}), err=False)
        sys.exit(1)
    click.echo(json.dumps({"out": str(out_dir.resolve()), "name": m["name"],
                           "version": m["version"], "metrics": m["metrics"],
                           "thresholds": m["thresholds"],
                           "operating_point": m.get("operating_point"),
                           "students": m["students"],
                           "timing_s": m["timing_s"],
                           "wall_s": round(time.perf_counter() - t0, 1)}))


@train.command(name="explainer")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset with stated reasons (its train split trains, test is reported).")
@click.option("--model", "model_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model directory: its scorer picks the reasons; a new version is published.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON object.")
def explainer(data_dir: Path, model_dir: Path, as_json: bool) -> None:
    """Train the explanation student on DATA's stated reasons; publish it into MODEL.

    Prints one JSON object last: version, parent_version, keys, rouge on test
    (template, fixed_phrase, student), seconds.
    """
    from models.dataset_features import dataset_features
    from models.distill.explainer import (
        evaluate_explainers,
        explainer_rows,
        publish_explainer,
        train_explainer,
    )
    from models.runtime import ScorerRuntime

    t0 = time.perf_counter()
    try:
        runtime = ScorerRuntime(model_dir, prefer_gpu=False)
        f = dataset_features(data_dir)
        student = train_explainer(explainer_rows(f, data_dir, "train", runtime))
        rouge = evaluate_explainers(f, data_dir, runtime, student=student)
        m = publish_explainer(model_dir, student, {k: v for k, v in rouge["student"].items()
                                                   if k != "us_per_sentence"})
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    if not as_json:
        for k, v in rouge.items():
            if k != "protocol":
                click.echo(f"{k:13s} rouge1 {v['rouge1']:.3f} rouge2 {v['rouge2']:.3f} "
                           f"rougeL {v['rougeL']:.3f}", err=True)
    click.echo(json.dumps({"model": str(model_dir.resolve()), "version": m["version"],
                           "parent_version": m["parent_version"],
                           "explainer": m["files"]["explainer"]["path"],
                           "keys": len(student.bank), "rouge": rouge,
                           "seconds": round(time.perf_counter() - t0, 1)}))

@train.command(name="policy")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset in the ENF log schema: train rows from train, held-out from test.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: sft/, grpo/, sgrpo/ (each with policy/ and checkpoints/).")
@click.option("--stage", type=click.Choice(["sft", "grpo", "sgrpo"]), default=None,
              help="Run one stage (grpo/sgrpo start from OUT/sft/policy, or --from).")
@click.option("--ablation", is_flag=True, help="SFT, SFT+GRPO and SFT+S-GRPO from the same SFT "
              "checkpoint, evaluated on the same held-out rows.")
@click.option("--policy", "policy_name", type=click.Choice(["tiny", "gemma", "smollm2"]),
              default="tiny", show_default=True)
@click.option("--from", "from_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Start policy of a grpo/sgrpo stage (default OUT/sft/policy).")
@click.option("--budget-s", type=float, default=None,
              help="Wall-clock bound of the ablation (default 840 s: 15 min with the tiny "
              "policy on this 2-core CPU, unloaded).")
@click.option("--steps", type=int, default=None, help="RL steps (stage or ablation cap).")
@click.option("--rl-lr", type=float, default=None, help="RL learning rate (default 2e-4 tiny).")
@click.option("--rl-beta", type=float, default=None,
              help="KL coefficient to the SFT policy (default 0.02).")
@click.option("--rl-prompts", type=int, default=None,
              help="Prompts per RL step, each with G = 8 completions (default 2).")
@click.option("--rl-seed", type=int, default=None,
              help="Seed of the RL arms (sampling, data order; default 0).")
@click.option("--sft-epochs", type=float, default=None,
              help="SFT epochs over the train rows (default 3; the ablation's SFT also stops "
              "at its share of --budget-s).")
@click.option("--threads", type=int, default=0, show_default=True,
              help="torch threads; 0 keeps torch's default.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
def policy(data_dir: Path, out_dir: Path, stage: str | None, ablation: bool, policy_name: str,
           from_dir: Path | None, budget_s: float | None, steps: int | None,
           rl_lr: float | None, rl_beta: float | None, rl_prompts: int | None,
           rl_seed: int | None, sft_epochs: float | None, threads: int,
           as_json: bool) -> None:
    """Train the causal-LM Reason Agent: SFT -> GRPO / S-GRPO (TRL), or the ablation.

    Progress goes to stderr; the last line is one JSON object.
    """
    from models.policy.cli_run import run_policy_command

    try:
        result = run_policy_command(data_dir, out_dir, stage=stage, ablation=ablation,
                                    policy=policy_name, from_dir=from_dir, budget_s=budget_s,
                                    steps=steps, threads=threads, rl_lr=rl_lr,
                                    rl_beta=rl_beta, sft_epochs=sft_epochs,
                                    rl_prompts=rl_prompts, rl_seed=rl_seed)
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    click.echo(json.dumps(result) if as_json else json.dumps(result, indent=1))


cli = train
