"""``enf train agents``: run the agents over a dataset, train the students, export.

1. Encoders: EfficientNet-Lite0 and MiniLM exported to ONNX once (the cache).
2. The Video Agent analyses every video and the Profile Agent replays every
   interaction (``models.dataset_features``), exactly as the worker would.
3. The scorer (Reason Agent student) learns p_negative = P(quick swipe or
   dislike) and the reason from (portrait before the row, video analysis) on
   the train split; dislikes weigh ``explicit_weight`` times more (they are
   rare and the strongest signal). Thresholds are F1-optimal on valid.
4. The video head and portrait step students learn to reproduce (and, with
   element labels, to improve on) the agents.
5. Everything is exported to ONNX in MODEL_DIR with one manifest, published
   atomically so a running scorer picks the new version up without a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from enf_core.features import VIDEO_SLICES
from models.calibration import calibration_entry
from models.dataset_features import DatasetFeatures, dataset_features
from models.evaluate import explicit_rows, implicit_rows
from models.export import data_hash, export_scorer
from models.metrics import auc, best_f1_threshold, binary_metrics, class_accuracy
from models.scorer import ScorerConfig
from models.students import (
    EVENT_DIM,
    StudentConfig,
    event_features,
    export_student,
    train_portrait_step,
    train_video_head,
)
from models.train_scorer import ScorerData, TrainConfig, predict, predict_all, train_scorer

__all__ = ["AgentsTrainConfig", "scorer_data", "train_agents"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentsTrainConfig:
    """What ``enf train agents`` does (documented defaults)."""

    title_encoder: str = "minilm"  # minilm | e5: the Video Agent's title encoder
    scorer: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, batch_size=1024))
    scorer_net: ScorerConfig = field(default_factory=lambda: ScorerConfig(hidden=128))
    explicit_weight: float = 10.0  # loss weight of a dislike row (binary and reason losses)
    students: StudentConfig = field(default_factory=StudentConfig)  # the video head
    # the portrait step imitates products (rate × weight × gap): wider and longer
    # (measured test MAE 0.0034 at 128 / 6 epochs, 0.0017 at 256 / 20; no change: 0.0058)
    portrait_step: StudentConfig = field(
        default_factory=lambda: StudentConfig(hidden=256, epochs=20))
    portrait_step_rows: int = 200_000  # rows (train split) for the portrait-step student
    train_students: bool = True
    name: str = "enf-agents"
    calibration_method: str = "isotonic"  # isotonic | platt, fitted on valid (manifest)
    target_precision: float = 0.6  # the operating point's precision on valid


def scorer_data(f: DatasetFeatures, rows: np.ndarray, c: AgentsTrainConfig) -> ScorerData:
    neg = f.implicit[rows] | f.explicit[rows] | (f.dislike[rows] & f.rating_known[rows])
    reason = np.where(neg, f.reason[rows], -1)
    weight = np.where(f.explicit[rows], c.explicit_weight, 1.0).astype(np.float32)
    return ScorerData(f.portraits[rows], f.video_vectors(rows), neg.astype(np.int64), reason,
                      weight, dislike=f.explicit[rows].astype(np.int64))


def _task_metrics(model: Any, f: DatasetFeatures, rows: np.ndarray, y: np.ndarray,
                  threshold: float, *, dislike: bool = False) -> dict[str, float]:
    p, r, d = predict_all(model, f.portraits[rows], f.video_vectors(rows))
    p = d if dislike else p
    m = binary_metrics(y, p, threshold)
    m["class_acc"] = class_accuracy(np.where(y == 1, f.reason[rows], -1), r.argmax(1))
    return {k: round(float(v), 4) for k, v in m.items()}


def _video_inputs(data_dir: Path, f: DatasetFeatures, title_encoder: str
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """[mean | max frame features | title embedding] per video with frames, and their rows."""
    from enf_core.data.schema import read_dataset
    from models.encoders import load_title_encoder

    ds = read_dataset(data_dir, validate=False)
    frames = ds.frames
    if frames is None:
        return None
    rows = ds.videos.column("frames_row").to_pylist()
    have = np.array([i for i, r in enumerate(rows) if r is not None], np.int64)
    titles = ds.videos.column("title").to_pylist()
    enc = load_title_encoder(title_encoder)
    uniq = list(dict.fromkeys(titles[i] or " " for i in have))
    emb: dict[str, np.ndarray] = {}
    for s in range(0, len(uniq), 256):
        emb.update(zip(uniq[s:s + 256], enc.encode(uniq[s:s + 256]), strict=True))
    x = np.zeros((len(have), 2 * frames.shape[2] + 384), np.float32)
    for s in range(0, len(have), 1024):
        part = have[s:s + 1024]
        fr = np.asarray(frames[[rows[i] for i in part]], np.float32)
        x[s:s + len(part), :frames.shape[2]] = fr.mean(1)
        x[s:s + len(part), frames.shape[2]:2 * frames.shape[2]] = fr.max(1)
        x[s:s + len(part), 2 * frames.shape[2]:] = np.stack([emb[titles[i] or " "] for i in part])
    return x, have


def _truth_elements(data_dir: Path, video_ids: list[str]) -> np.ndarray | None:
    path = data_dir / "truth" / "videos_truth.parquet"
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["video_id", "element_intensity"])
    by_id = dict(zip(t.column("video_id").to_pylist(), t.column("element_intensity").to_pylist(),
                     strict=True))
    return np.array([[float(x > 0) for x in by_id[v]] for v in video_ids], np.float32)


def _mean_auc(y: np.ndarray, p: np.ndarray) -> float:
    cols = [auc(y[:, j], p[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    return float(np.mean(cols)) if cols else 0.5


def _train_video_head(data_dir: Path, f: DatasetFeatures, out: Path, stamp: str,
                      c: AgentsTrainConfig) -> tuple[dict[str, str], dict[str, Any]]:
    built = _video_inputs(data_dir, f, c.title_encoder)
    if built is None:
        return {}, {"skipped": "dataset has no frames"}
    x, have = built
    agent = f.videos[have]
    agent_el = agent[:, VIDEO_SLICES["elements"]]
    agent_top = agent[:, VIDEO_SLICES["topics"]]
    truth = _truth_elements(data_dir, [f.video_id_list[i] for i in have])
    rng = np.random.default_rng(c.students.seed)
    test = rng.random(len(have)) < 0.1
    model, secs = train_video_head(x[~test], agent_el[~test], agent_top[~test],
                                   None if truth is None else truth[~test], c.students)
    with torch.no_grad():
        se, st = (a.numpy() for a in model(torch.from_numpy(x[test])))
    metrics: dict[str, Any] = {
        "train_seconds": round(secs, 2), "videos": len(have), "test_videos": int(test.sum()),
        "agreement_elements": round(float(((se >= 0.5) == (agent_el[test] >= 0.5)).mean()), 4),
        "agreement_top_topic": round(float((st.argmax(1) == agent_top[test].argmax(1)).mean()),
                                     4)}
    if truth is not None:
        metrics["element_auc_student"] = round(_mean_auc(truth[test], se), 4)
        metrics["element_auc_agent"] = round(_mean_auc(truth[test], agent_el[test]), 4)
    name = f"video_head-{stamp}.onnx"
    info = export_student(model, out / name, (torch.from_numpy(x[:2]),), ["video_inputs"],
                          ["elements", "topics"])
    return {"video_head": name}, {**metrics, **info,
                                  "input": "mean(16 frame feats) | max(...) | title embedding"}


def _train_portrait_step(f: DatasetFeatures, out: Path, stamp: str, c: AgentsTrainConfig
                         ) -> tuple[dict[str, str], dict[str, Any]]:
    rng = np.random.default_rng(c.portrait_step.seed)
    train = f.rows("train")
    if len(train) > c.portrait_step_rows:
        train = rng.choice(train, c.portrait_step_rows, replace=False)
    test = f.rows("test")
    ev = event_features(f.watch_ratio, f.explicit, f.reason)
    # each row's replay's own video vectors: out of fold for train rows (their replay ran
    # on the latents fitted without their user), the whole-train ones for test rows
    model, secs = train_portrait_step(f.portraits[train], f.video_vectors(train), ev[train],
                                      f.portraits_after[train], c.portrait_step)
    with torch.no_grad():
        pred = model(torch.from_numpy(f.portraits[test]),
                     torch.from_numpy(f.videos[f.video_row[test]]),
                     torch.from_numpy(ev[test])).numpy()
    err = np.abs(pred - f.portraits_after[test])
    base = np.abs(f.portraits[test] - f.portraits_after[test])
    name = f"portrait_step-{stamp}.onnx"
    p2 = torch.from_numpy(f.portraits[:2])
    info = export_student(model, out / name, (p2, torch.from_numpy(f.video_vectors(
        np.arange(2))), torch.from_numpy(ev[:2])), ["portrait", "video", "event"],
        ["next_portrait"])
    return {"portrait_step": name}, {
        **info, "train_seconds": round(secs, 2), "train_rows": len(train),
        "test_mae": round(float(err.mean()), 6), "test_max_abs": round(float(err.max()), 4),
        "no_change_mae": round(float(base.mean()), 6), "event_dim": EVENT_DIM}


def _train_explainer(data_dir: Path, f: DatasetFeatures, out: Path, model: Any
                     ) -> tuple[dict[str, str], dict[str, Any]]:
    """The explanation student (models.distill.explainer) on the train split's stated
    reasons, the reasons picked by this scorer; ROUGE on test beside the baselines."""
    from models.distill.explainer import (
        explainer_rouge,
        explainer_rows,
        standard_explainers,
        train_explainer,
        write_explainer,
    )

    def scorer(p: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict(model, p, v)

    train = explainer_rows(f, data_dir, "train", predict=scorer)
    if not len(train):
        return {}, {"skipped": "no stated reasons in the train split"}
    student = train_explainer(train)
    test = explainer_rows(f, data_dir, "test", predict=scorer)
    rouge = explainer_rouge(test, standard_explainers(train, student)) if len(test) else {}
    meta = {k: v for k, v in student.meta.items() if k != "keys"}
    return {"explainer": write_explainer(student, out)}, {**meta, "keys": len(student.bank),
                                                          "rouge_test": rouge}


def train_agents(data_dir: str | Path, out_dir: str | Path,
                 config: AgentsTrainConfig | None = None) -> dict[str, Any]:
    """Train and export everything; returns the published manifest."""
    from models.encoder_export import build_encoders

    c = config or AgentsTrainConfig()
    data_dir, out = Path(data_dir).resolve(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_encoders()
    t_enc = time.perf_counter() - t0
    f = dataset_features(data_dir, title_encoder=c.title_encoder)
    t_feat = time.perf_counter() - t0 - t_enc
    train, valid = f.rows("train"), f.rows("valid")
    train = train[f.implicit_known[train] | f.rating_known[train]]
    valid = valid[f.implicit_known[valid] | f.rating_known[valid]]
    data, vdata = scorer_data(f, train, c), scorer_data(f, valid, c)
    model, val_metrics = train_scorer(data, c.scorer, c.scorer_net, val=vdata)
    thresholds: dict[str, float] = {"any": float(val_metrics["threshold"])}
    metrics: dict[str, Any] = {"valid_any_negative": val_metrics}
    if f.implicit_known.any():
        iv = implicit_rows(f, "valid")
        p, _ = predict(model, f.portraits[iv[0]], f.video_vectors(iv[0]))
        thresholds["implicit"] = best_f1_threshold(iv[1], p)
        metrics["valid_implicit"] = _task_metrics(model, f, iv[0], iv[1], thresholds["implicit"])
    if f.explicit.any():
        ev = explicit_rows(f, "valid", 3, 0)
        _, _, d = predict_all(model, f.portraits[ev[0]], f.video_vectors(ev[0]))
        thresholds["explicit"] = best_f1_threshold(ev[1], d)
        metrics["valid_explicit"] = _task_metrics(model, f, ev[0], ev[1], thresholds["explicit"],
                                                  dislike=True)
    # Calibrated probabilities and the product operating point, on the same valid
    # rows the scorer was validated on (raw outputs: the torch model, equal to ONNX).
    pv, _, dv = predict_all(model, vdata.portraits, vdata.videos)
    calibration = calibration_entry(pv, vdata.negative, dv, vdata.dislike,
                                    method=c.calibration_method,
                                    target_precision=c.target_precision)
    t_scorer = time.perf_counter() - t0 - t_enc - t_feat
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    files: dict[str, str] = {}
    students: dict[str, Any] = {}
    latent = f.latent_model()
    if latent is not None:
        # the stream's video latents: learned per video id, else from the content head
        files.update({"latents": f"latents-{stamp}.npz", "latent_head": f"latent_head-{stamp}.npy"})
        latent.save(out / files["latents"], out / files["latent_head"])
    if c.train_students:
        vf, vm = _train_video_head(data_dir, f, out, stamp, c)
        files.update(vf)
        students["video_head"] = vm
        pf, pm = _train_portrait_step(f, out, stamp, c)
        files.update(pf)
        students["portrait_step"] = pm
        ef, em = _train_explainer(data_dir, f, out, model)
        files.update(ef)
        students["explainer"] = em
    t_students = time.perf_counter() - t0 - t_enc - t_feat - t_scorer
    timing = {"encoders": round(t_enc, 1), "features": round(t_feat, 1),
              "scorer": round(t_scorer, 1), "students": round(t_students, 1)}
    manifest = export_scorer(
        model, out, name=c.name, metrics=metrics,
        training_data_hash=data_hash(data.portraits, data.videos, data.negative, data.reason),
        extra={"threshold": thresholds.get("implicit", thresholds["any"]),
               "thresholds": {k: round(v, 5) for k, v in thresholds.items()},
               **calibration, "students": students, "timing_s": timing,
               "training": {"data": str(data_dir), "dataset": f.name, "rows": len(train),
                            "config": asdict(c), "feature_seconds": f.seconds,
                            "title_encoder": c.title_encoder}},
        extra_files=files)
    manifest["timing_s"]["total"] = round(time.perf_counter() - t0, 1)
    log.info("trained agents in %.1fs: %s", time.perf_counter() - t0, timing)
    return manifest


