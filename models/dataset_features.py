"""A dataset as the agents see it: video analyses, portraits before each row, labels.

This is the one place that turns an ENF-schema dataset into model inputs, so
training, evaluation and the baselines all read the same numbers:

* every video goes through the Video Agent exactly as the worker runs it
  (``models.video_runtime`` code path: frames from ``frames.npy`` / a decoded
  ``uri`` through the ImageNet head, the title through the sentence encoder);
* every interaction, in time order, through the Profile Agent
  (``models.profile_agent.replay_portraits``), recording the portrait *before*
  the row: the scorer never sees the outcome it predicts;
* labels: ``implicit`` (watch ratio < 0.3), ``explicit`` (dislike) and, for
  rating datasets, ``dislike`` (rating <= 3 on a 1–5 scale, recommend = false on
  Steam: the Agent4Rec convention); reason labels are the stated reason of a
  dislike and, for implicit negatives, the simulator's ``implicit_cause`` from
  ``truth/`` when present — the stand-in for TVNF's LLM-drafted, human-checked
  implicit reason labels.

Rating datasets have no watch ratio; the replay reads a rating r as the watch
ratio (r − 1) / 4, so a 1–2 star rating moves the portrait like a quick swipe.

Results are cached under ``$ENF_CACHE/features`` (or ``$ENF_FEATURE_CACHE``)
keyed by the dataset's files and the code's ``FEATURES_VERSION``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from enf_core.analysis import VideoAnalysis
from enf_core.features import VIDEO_SLICES, video_vector
from enf_core.taxonomy import REASONS
from models.decode import VideoAnalysisError
from models.encoders import ImageHead, TitleEncoder
from models.latent import LatentFitConfig, LatentModel, fit_latents
from models.profile_agent import replay_portraits
from models.video_core import build_analysis, frame_cues
from models.video_runtime import VideoAnalyzer

__all__ = ["FEATURES_VERSION", "DatasetFeatures", "analyze_videos", "dataset_features"]

log = logging.getLogger(__name__)
FEATURES_VERSION = 11  # 8: latent taste, history (layout 2); 11: user folds, OOF replay
ANALYSES_VERSION = 5  # bump when the Video Agent's output changes
_REASON_INDEX = {r.value: i for i, r in enumerate(REASONS)}


@dataclass(frozen=True)
class DatasetFeatures:
    """Row-aligned model inputs and labels of one dataset (all splits)."""

    name: str
    split: np.ndarray  # [n] str: train / valid / test
    user_ids: np.ndarray  # [n] str
    video_ids: np.ndarray  # [n] str
    video_row: np.ndarray  # [n] int index into videos
    portraits: np.ndarray  # [n, PORTRAIT_DIM] portrait before the row
    portraits_after: np.ndarray  # [n, PORTRAIT_DIM] portrait after the row (same replay)
    videos: np.ndarray  # [n_videos, VIDEO_DIM] video vectors (latents from the whole train split)
    watch_ratio: np.ndarray  # [n] float, NaN where unknown (ratings read as ratios)
    implicit: np.ndarray  # [n] bool (False where unknown)
    implicit_known: np.ndarray  # [n] bool
    explicit: np.ndarray  # [n] bool
    dislike: np.ndarray  # [n] bool: rating-based binary label (rating datasets), else explicit
    rating_known: np.ndarray  # [n] bool
    reason: np.ndarray  # [n] int: explicit reason, else implicit cause (truth), else -1
    reason_source: np.ndarray  # [n] int8: 0 none, 1 stated (explicit), 2 implicit cause
    video_id_list: list[str]
    analyses: dict[str, VideoAnalysis]
    seconds: dict[str, float]
    # out of fold: a train row's video vector comes from the latent fit without its fold
    videos_oof: np.ndarray | None = None  # [folds, n_videos, VIDEO_DIM]
    fold: np.ndarray | None = None  # [n] int: fold of a train row (its user's), -1 elsewhere
    latent_head: np.ndarray | None = None  # the content → latent head (models.latent)

    def rows(self, split: str) -> np.ndarray:
        return np.nonzero(self.split == split)[0]

    def video_vectors(self, idx: np.ndarray) -> np.ndarray:
        """The video input of rows ``idx``: out of fold for train rows (their own
        label is not inside their video's latent), the whole-train fit elsewhere."""
        idx = np.asarray(idx, np.int64)
        out = self.videos[self.video_row[idx]]
        if self.videos_oof is not None and self.fold is not None and len(idx):
            k = self.fold[idx]
            m = k >= 0
            if m.any():
                out[m] = self.videos_oof[k[m], self.video_row[idx[m]]]
        return out

    def latent_model(self) -> LatentModel | None:
        """The shipped part of the latent fit: learned latents by video id, the head."""
        if self.latent_head is None:
            return None
        known = self.videos[:, VIDEO_SLICES["latent_known"].start] == 1.0
        ids = [v for v, k in zip(self.video_id_list, known, strict=True) if k]
        return LatentModel(ids, self.videos[known][:, VIDEO_SLICES["latent"]].copy(),
                           self.latent_head)


def _dataset_key(root: Path, title_encoder: str, version: str,
                 names: tuple[str, ...] = ("schema.json", "videos.parquet",
                                           "interactions.parquet", "users.parquet")) -> str:
    h = hashlib.sha256(f"v{version}:{title_encoder}".encode())
    for name in names:
        st = (root / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cache_dir() -> Path:
    return Path(os.environ.get("ENF_FEATURE_CACHE") or Path(
        os.environ.get("ENF_CACHE") or Path.home() / ".cache" / "enf-stream") / "features")


def cached_analyses(root: Path, ds: Any, title_encoder: str, *, cache: bool = True,
                    encoder: TitleEncoder | None = None,
                    analyzer: VideoAnalyzer | None = None
                    ) -> tuple[dict[str, VideoAnalysis], float]:
    """The Video Agent's analyses of every video, cached apart from the replay: they
    cost minutes and change only with the video side (``ANALYSES_VERSION``)."""
    key = _dataset_key(root, title_encoder, f"a{ANALYSES_VERSION}",
                       ("videos.parquet",) + (("frames.npy",) if (root / "frames.npy").is_file()
                                              else ()))
    cache_file = _cache_dir() / f"{root.name}-analyses-{key}.json"
    if cache and cache_file.is_file():
        return ({d["video_id"]: VideoAnalysis.from_dict(d)
                 for d in orjson.loads(cache_file.read_bytes())}, 0.0)
    t0 = time.perf_counter()
    if analyzer is None:
        from models.video_runtime import AnalyzerConfig

        analyzer = VideoAnalyzer(AnalyzerConfig(title_encoder=title_encoder, threads=0),
                                 title_encoder=encoder)
    # Through the stored form, as the stream stores them (rounded): offline == stream.
    analyses = {v: VideoAnalysis.from_dict(a.to_dict())
                for v, a in analyze_videos(ds, analyzer).items()}
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(orjson.dumps([a.to_dict() for a in analyses.values()]))
        tmp.replace(cache_file)
    return analyses, time.perf_counter() - t0


def analyze_videos(ds: Any, analyzer: VideoAnalyzer, *,
                   chunk: int = 512) -> dict[str, VideoAnalysis]:
    """Every video of a dataset through the Video Agent (frames, uri, or title only)."""
    videos = ds.videos
    ids = videos.column("video_id").to_pylist()
    titles = [t or "" for t in videos.column("title").to_pylist()]
    tags = [tuple(t or ()) for t in videos.column("tags").to_pylist()]
    durations = [d or 0 for d in videos.column("duration_ms").to_pylist()]
    uris = videos.column("uri").to_pylist() if "uri" in videos.column_names else [None] * len(ids)
    rows = (videos.column("frames_row").to_pylist() if "frames_row" in videos.column_names
            else [None] * len(ids))
    title_cues = analyzer.titles.read_many(titles, tags)
    frames = ds.frames
    head: ImageHead | None = analyzer.head
    out: dict[str, VideoAnalysis] = {}
    with_rows = [i for i, r in enumerate(rows) if r is not None and frames is not None]
    cues: dict[int, Any] = {}
    if with_rows and head is not None:
        assert frames is not None
        for s in range(0, len(with_rows), chunk):
            part = with_rows[s:s + chunk]
            feats = np.asarray(frames[[rows[i] for i in part]], np.float32)
            probs = head.probabilities(feats)
            for j, i in enumerate(part):
                cues[i] = (frame_cues(probs[j], feats[j], analyzer.config.vocab),
                           tuple(range(feats.shape[1])))
    root = Path(ds.root) if ds.root is not None else Path(".")
    for i, vid in enumerate(ids):
        fc, idx = cues.get(i, (None, ()))
        uri = uris[i]
        if fc is None and uri and analyzer.frame_encoder is not None and head is not None:
            path = uri if os.path.isabs(uri) or "://" in uri else str(root / uri)
            try:
                from models.decode import sample_frames

                d = sample_frames(path)
                feats = analyzer.frame_encoder.encode(d.frames)
                fc, idx = frame_cues(head.probabilities(feats), feats,
                                     analyzer.config.vocab), d.indices
            except VideoAnalysisError as exc:
                log.warning("video %s: %s (title only)", vid, exc)
        out[vid] = build_analysis(vid, title=titles[i], duration_ms=int(durations[i]),
                                  frames=fc, title_cues=title_cues[i], frame_indices=idx,
                                  analyzer=analyzer.name, config=analyzer.config.vocab)
    return out


def _truth_causes(root: Path, n: int, users: list[str], videos: list[str],
                  ts: np.ndarray) -> np.ndarray | None:
    path = root / "truth" / "interactions_truth.parquet"
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["user_id", "video_id", "ts", "implicit_cause"])
    key = {(u, v, int(s)): c for u, v, s, c in zip(
        t.column("user_id").to_pylist(), t.column("video_id").to_pylist(),
        t.column("ts").to_pylist(), t.column("implicit_cause").to_pylist(), strict=True)}
    out = np.full(n, -1, np.int64)
    for i in range(n):
        c = key.get((users[i], videos[i], int(ts[i])))
        if c:
            out[i] = _REASON_INDEX.get(c, -1)
    return out


def _with_latents(cols: dict[str, list[Any]], split: np.ndarray, vids: list[str],
                  vindex: dict[str, int], analyses: dict[str, VideoAnalysis],
                  config: LatentFitConfig | None
                  ) -> tuple[dict[str, VideoAnalysis], np.ndarray, np.ndarray, np.ndarray,
                             np.ndarray, list[dict[str, VideoAnalysis]]]:
    """Fit the video latents on the train split (``models.latent``) and put them into
    the analyses (through their stored form, as the stream reads them) and vectors.
    Also returns each user fold's analyses (latents fitted without that fold's users),
    for the replay of those users' train rows."""
    from enf_core.latent import USER_LATENT_DIM

    n = len(cols["user_id"])
    uindex: dict[str, int] = {}
    row_user = np.array([uindex.setdefault(x, len(uindex)) for x in cols["user_id"]], np.int64)
    users, items, target, obs_row = [], [], [], []
    for r in range(n):
        ratio = cols["watch_ratio"][r]
        known = ratio is not None and not (isinstance(ratio, float) and np.isnan(ratio))
        if not known and not cols["explicit_negative"][r]:
            continue
        u = int(row_user[r])
        it = vindex[cols["video_id"][r]]
        signals = ([min(max(float(ratio), 0.0), 1.0)] if known else []) + (
            [0.0] if cols["explicit_negative"][r] else [])
        for y in signals:
            users.append(u)
            items.append(it)
            obs_row.append(r)
            target.append(y)
    content = np.stack([video_vector(analyses[v]) for v in vids]).astype(np.float32)
    fit = fit_latents(np.asarray(users, np.int64), np.asarray(items, np.int64),
                      np.asarray(target), np.asarray(obs_row, np.int64), split == "train", n,
                      vids, content, config, row_user=row_user)
    out: dict[str, VideoAnalysis] = {}
    for j, v in enumerate(vids):
        a = replace(analyses[v], latent=tuple(float(x) for x in fit.table[j]),
                    latent_source="learned" if fit.learned[j] else "content")
        out[v] = VideoAnalysis.from_dict(a.to_dict())
    vvec = np.stack([video_vector(out[v]) for v in vids]).astype(np.float32)
    lat, flag = VIDEO_SLICES["latent"], VIDEO_SLICES["latent_known"].start
    oof = np.repeat(vvec[None], len(fit.oof), axis=0)
    # the stored form is rounded to 5 decimals: the out-of-fold tables are too
    oof[:, :, lat] = np.round(fit.oof, 5)
    oof[:, :, flag] = np.where(fit.oof_learned, 1.0, 0.5)
    assert oof.shape[2] > USER_LATENT_DIM
    per_fold = [] if len(fit.oof) < 2 else [
        {v: VideoAnalysis.from_dict(replace(
            analyses[v], latent=tuple(float(x) for x in fit.oof[k, j]),
            latent_source="learned" if fit.oof_learned[k, j] else "content").to_dict())
         for j, v in enumerate(vids)} for k in range(len(fit.oof))]
    return out, vvec, oof, fit.fold, fit.model.head, per_fold


def _replay_train_out_of_fold(cols: dict[str, list[Any]], fold: np.ndarray,
                              per_fold: list[dict[str, VideoAnalysis]],
                              users: dict[str, Any], before: np.ndarray,
                              after: np.ndarray) -> None:
    """Overwrite the train rows' portraits (``before``, and ``after`` so the pairs stay
    one replay's) with those of a replay of their user's whole log on the latents
    fitted without that user (``models.latent``): a train row's portrait then holds
    nothing fitted on its own label."""
    n = len(cols["user_id"])
    user_fold: dict[str, int] = {}
    for r in np.flatnonzero(fold >= 0):
        user_fold[cols["user_id"][r]] = int(fold[r])
    row_fold = np.array([user_fold.get(u, -1) for u in cols["user_id"]], np.int64)
    for k, analyses in enumerate(per_fold):
        rows = np.flatnonzero(row_fold == k)
        if not len(rows):
            continue
        sub = {c: [col[r] for r in rows] for c, col in cols.items()}
        rep = replay_portraits(sub, analyses, users)
        train = fold[rows] == k
        before[rows[train]] = rep.before[train]
        after[rows[train]] = rep.after[train]
    assert len(before) == n


def dataset_features(directory: str | Path, *, title_encoder: str = "minilm",
                     encoder: TitleEncoder | None = None, cache: bool = True,
                     analyzer: VideoAnalyzer | None = None,
                     latent_config: LatentFitConfig | None = None) -> DatasetFeatures:
    """Build (or load from the cache) the features of the dataset in ``directory``."""
    from enf_core.data.schema import read_dataset

    root = Path(directory).resolve()
    version = f"{FEATURES_VERSION}:{latent_config or LatentFitConfig()!r}"
    cache_file = _cache_dir() / f"{root.name}-{_dataset_key(root, title_encoder, version)}.npz"
    ds = read_dataset(root, validate=False)
    if cache and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        analyses = {d["video_id"]: VideoAnalysis.from_dict(d)
                    for d in orjson.loads(arrays.pop("analyses").tobytes())}
        seconds = orjson.loads(arrays.pop("seconds").tobytes())
        log.info("features of %s from cache %s", root, cache_file)
        return DatasetFeatures(
            name=str(ds.meta.get("name", root.name)), analyses=analyses, seconds=seconds,
            video_id_list=list(arrays.pop("video_id_list")),
            **{k: v for k, v in arrays.items()})  # type: ignore[arg-type]
    analyses, t_video = cached_analyses(root, ds, title_encoder, cache=cache, encoder=encoder,
                                        analyzer=analyzer)
    vids = ds.videos.column("video_id").to_pylist()
    vindex = {v: i for i, v in enumerate(vids)}
    inter = ds.interactions
    cols = {c: inter.column(c).to_pylist() for c in (
        "user_id", "video_id", "ts", "play_ms", "duration_ms", "watch_ratio",
        "explicit_negative", "reason_category", "split", "implicit_negative", "rating",
        "position")}
    n = len(cols["user_id"])
    rating = np.array([np.nan if r is None else float(r) for r in cols["rating"]])
    rating_known = ~np.isnan(rating)
    ratio = cols["watch_ratio"]
    if all(r is None for r in ratio) and rating_known.any():
        # rating datasets: a rating r on 1..5 (or 0/1) is read as watch ratio
        top = np.nanmax(rating)
        low = 1.0 if top > 1 else 0.0
        cols["watch_ratio"] = [None if np.isnan(r) else (r - low) / (top - low) for r in rating]
        cols["play_ms"] = [None] * n
    users = {u["user_id"]: u for u in ds.users.to_pylist()}
    t1 = time.perf_counter()
    split = np.array(cols["split"])
    analyses, vvec, oof, fold, head, per_fold = _with_latents(cols, split, vids, vindex,
                                                              analyses, latent_config)
    t_latent = time.perf_counter() - t1
    t1 = time.perf_counter()
    replay = replay_portraits(cols, analyses, users)
    # valid / test rows keep the whole-train latents, as the stream has them; train
    # rows are replayed without their user (out of fold)
    _replay_train_out_of_fold(cols, fold, per_fold, users, replay.before, replay.after)
    t_profile = time.perf_counter() - t1
    implicit_raw = cols["implicit_negative"]
    implicit_known = np.array([x is not None for x in implicit_raw])
    implicit = np.array([bool(x) for x in implicit_raw])
    explicit = np.array([bool(x) for x in cols["explicit_negative"]])
    if rating_known.any():
        top = np.nanmax(rating)
        dislike = np.where(rating_known, rating <= (3.0 if top > 1 else 0.0), explicit)
    else:
        dislike = explicit.copy()
    reason = np.array([_REASON_INDEX.get(r or "", -1) for r in cols["reason_category"]],
                      np.int64)
    source = np.where(reason >= 0, 1, 0).astype(np.int8)
    ts = np.asarray(cols["ts"], np.int64)
    causes = _truth_causes(root, n, cols["user_id"], cols["video_id"], ts)
    if causes is not None:
        use = (reason < 0) & implicit & (causes >= 0)
        reason = np.where(use, causes, reason)
        source = np.where(use, 2, source).astype(np.int8)
    seconds = {"videos": round(t_video, 2), "latents": round(t_latent, 2),
               "portraits": round(t_profile, 2)}
    feats = DatasetFeatures(
        name=str(ds.meta.get("name", root.name)), split=split,
        user_ids=np.array(cols["user_id"]), video_ids=np.array(cols["video_id"]),
        video_row=np.array([vindex[v] for v in cols["video_id"]], np.int64),
        portraits=replay.before, portraits_after=replay.after, videos=vvec,
        watch_ratio=np.array([np.nan if x is None else float(x) for x in cols["watch_ratio"]]),
        implicit=implicit, implicit_known=implicit_known, explicit=explicit,
        dislike=dislike.astype(bool), rating_known=rating_known, reason=reason,
        reason_source=source, video_id_list=vids, analyses=analyses, seconds=seconds,
        videos_oof=oof, fold=fold, latent_head=head)
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
        arrays = {k: getattr(feats, k) for k in (
            "split", "user_ids", "video_ids", "video_row", "portraits", "portraits_after",
            "videos", "watch_ratio", "implicit", "implicit_known", "explicit", "dislike",
            "rating_known", "reason", "reason_source", "videos_oof", "fold", "latent_head")}
        np.savez(tmp, **arrays, video_id_list=np.array(vids),
                 analyses=np.frombuffer(orjson.dumps([a.to_dict() for a in analyses.values()]),
                                        np.uint8),
                 seconds=np.frombuffer(orjson.dumps(seconds), np.uint8))
        tmp.replace(cache_file)
    log.info("features of %s: videos %.1fs, portraits %.1fs", root, t_video, t_profile)
    return feats
