"""KuaiRand-Pure sample (shared/data/kuairand) in the ENF schema.

Source files: ``kuairand_sample_200.csv`` (200 log rows: user_id, video_id,
play_time_ms, duration_ms, user and video features) and
``kuairand_pure_video_features_basic.csv`` (7,583 videos: type, upload
type, duration, tag ids, ...).

Mapping: watch ratio = play_time_ms / duration_ms; the 18 rows whose
duration_ms is 0 (videos 6614 and 6735, also without a duration in the features
table) have an unknown watch ratio, so their implicit flag is null. The sample
has no time column: ``ts`` is 2022-04-08 00:00 UTC (the start of KuaiRand's log
period) plus the row number in seconds, i.e. the file's order. There are no
dislikes in the sample. Videos are the whole features table (a catalogue for
candidate requests); they have no titles (empty), their tags are
``tag:<id>`` for each tag id plus the video and upload types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from enf_core.data.loaders.common import (
    LoadedTables,
    anonymous_users,
    default_shared_data,
    interactions_table,
)
from enf_core.data.schema import SchemaError

__all__ = ["FEATURES_FILE", "LOG_FILE", "START_TS_MS", "load_kuairand"]

LOG_FILE: Final = "kuairand_sample_200.csv"
FEATURES_FILE: Final = "kuairand_pure_video_features_basic.csv"
START_TS_MS: Final = 1_649_376_000_000  # 2022-04-08T00:00:00Z


def _read(path: Path, columns: list[str]) -> pa.Table:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KuaiRand file not found (--path DIR)")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=columns))
    return table


def load_kuairand(path: Path | None = None) -> LoadedTables:
    """The KuaiRand sample in the ENF schema (see the module docstring for the mapping)."""
    root = Path(path) if path is not None else default_shared_data("kuairand")
    log_path = root / LOG_FILE
    log = _read(log_path, ["user_id", "video_id", "play_time_ms", "duration_ms"])
    feats = _read(root / FEATURES_FILE, ["video_id", "video_type", "upload_type",
                                         "video_duration", "tag"])
    for name in log.column_names:
        column = log.column(name)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise SchemaError(str(log_path), "empty value", row=row, field=name)
    users_ids = log.column("user_id").to_numpy().astype(str)
    video_ids = log.column("video_id").to_numpy().astype(str)
    play = log.column("play_time_ms").to_numpy().astype(np.float64)
    dur = log.column("duration_ms").to_numpy().astype(np.float64)
    dur = np.where(dur > 0, dur, np.nan)
    ts = START_TS_MS + np.arange(log.num_rows, dtype=np.int64) * 1000
    interactions = interactions_table(user_id=users_ids, video_id=video_ids, ts=ts,
                                      play_ms=play, duration_ms=dur,
                                      explicit=np.zeros(log.num_rows, dtype=bool))
    users = anonymous_users(users_ids)
    vids = [str(v) for v in feats.column("video_id").to_pylist()]
    durations = feats.column("video_duration").to_pylist()
    tags = []
    for tag, vtype, utype in zip(feats.column("tag").to_pylist(),
                                 feats.column("video_type").to_pylist(),
                                 feats.column("upload_type").to_pylist(), strict=True):
        video_tags = [f"tag:{t.strip()}" for t in str(tag or "").split(",") if t.strip()]
        video_tags += [str(x) for x in (vtype, utype) if x]
        tags.append(video_tags)
    videos = pa.table({
        "video_id": pa.array(vids, pa.string()),
        "title": pa.array([""] * len(vids), pa.string()),
        "duration_ms": pa.array([int(d) if d is not None and d > 0 else None for d in durations],
                                pa.int64()),
        "tags": pa.array(tags, pa.list_(pa.string())),
        "uri": pa.nulls(len(vids), pa.string()),
        "frames_row": pa.nulls(len(vids), pa.int32()),
    })
    meta = {"name": "kuairand", "source": f"{log_path.resolve()} + {FEATURES_FILE}",
            "ts_rule": "2022-04-08T00:00Z + row number in seconds (the sample has no time)",
            "labels": {"implicit_negative": "play_time_ms / duration_ms < 0.3",
                       "explicit_negative": "none in the sample"},
            "frames": None}
    return LoadedTables(users, videos, interactions, meta)
