"""Build a small scorer from ``models.synthetic`` in seconds (tests, bootstraps).

The scorer committed in ``models/default`` is not this one any more: it is the
``enf train agents`` output on the default simulation, because a model trained on
synthetic vectors suppressed no candidate of the simulated feed at its threshold
(its portraits look nothing like a replayed user's). Rebuild that one with

    enf data simulate --out DIR && enf train agents --data DIR --out models/default

This module stays for a quick model without a dataset:

    python -m models.default_model --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from models.export import data_hash, export_scorer
from models.synthetic import SyntheticConfig, synthetic_sample
from models.train_scorer import ScorerData, TrainConfig, evaluate_scorer, train_scorer

__all__ = ["DEFAULT_MODEL_DIR", "build_default_model"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"


def build_default_model(out_dir: str | Path = DEFAULT_MODEL_DIR, *,
                        synthetic: SyntheticConfig | None = None,
                        train: TrainConfig | None = None, versioned: bool = False
                        ) -> dict[str, Any]:
    """Train on a synthetic sample, test on a fresh one, export; returns the manifest."""
    sc = synthetic or SyntheticConfig()
    s = synthetic_sample(sc)
    data = ScorerData(s.portraits, s.videos, s.negative, s.reason, dislike=s.dislike)
    model, val = train_scorer(data, train)
    t = synthetic_sample(SyntheticConfig(**{**asdict(sc), "n": 20_000, "seed": sc.seed + 1}))
    test = evaluate_scorer(model, ScorerData(t.portraits, t.videos, t.negative, t.reason,
                                             dislike=t.dislike), val["threshold"])
    metrics = {"data": "models.synthetic", "val": val,
               "test": {k: round(v, 5) for k, v in test.items()}}
    return export_scorer(model, out_dir, name="enf-scorer-default", metrics=metrics,
                         training_data_hash=data_hash(s.portraits, s.videos, s.negative, s.reason,
                                                      s.dislike),
                         versioned=versioned,
                         extra={"threshold": val["threshold"],
                                "training": {"synthetic": asdict(sc),
                                             "train": asdict(train or TrainConfig())}})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="model dir to write (not models/default)")
    ap.add_argument("--n", type=int, default=SyntheticConfig.n)
    args = ap.parse_args(argv)
    logging.basicConfig(level="INFO")
    manifest = build_default_model(args.out, synthetic=SyntheticConfig(n=args.n))
    print(json.dumps({k: manifest[k] for k in ("name", "version", "metrics")}, indent=2))


if __name__ == "__main__":
    main()
