"""The ENF log schema: three Parquet tables and a JSON sidecar, validated on read.

Every dataset the project touches — simulated, MovieLens, Steam, KuaiRand or a
user's own logs — has this one shape, so that the trainer, the evaluator and
the replayer never special-case a source. The schema is data (``TABLES``), so
the validator, the sidecar and ``docs/data.md`` cannot disagree.

A dataset directory holds::

    users.parquet  videos.parquet  interactions.parquet  schema.json
    frames.npy     (optional: float16 [n_videos, 16, dim] frame features)
    truth/         (simulator only: latent truth, never read by read_dataset)

Validation errors are ``SchemaError`` and always name the file, and where it
applies the row and the field, because the person who reads one is fixing a
file by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from enf_core.taxonomy import REASONS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IMPLICIT_THRESHOLD",
    "SIDECAR",
    "SPLITS",
    "TABLES",
    "TABLE_FILES",
    "Column",
    "Dataset",
    "SchemaError",
    "read_dataset",
    "read_sidecar",
    "sidecar_columns",
    "validate_dataset",
    "validate_table",
    "write_dataset",
    "write_sidecar",
]

FORMAT: Final = "enf-log"
FORMAT_VERSION: Final = 1
SIDECAR: Final = "schema.json"
IMPLICIT_THRESHOLD: Final = 0.3
"""A watch ratio below this is an implicit negative (a quick swipe), as in the paper."""
SPLITS: Final = ("train", "valid", "test")
_RATIO_TOL: Final = 1e-6
_REASON_VALUES: Final = frozenset(r.value for r in REASONS)


class SchemaError(ValueError):
    """A dataset file that breaks the schema; names the file, row and field."""

    def __init__(self, file: str, message: str, *, row: int | None = None,
                 field: str | None = None) -> None:
        self.file = file
        self.row = row
        self.field = field
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class Column:
    """One column: canonical Arrow type, nullability, and whether it may be absent."""

    name: str
    type: pa.DataType
    nullable: bool
    doc: str
    optional: bool = False  # an optional column may be left out; it reads as all-null


_STR = pa.string()
_TAGS = pa.list_(pa.string())

TABLES: Final[dict[str, tuple[Column, ...]]] = {
    "users": (
        Column("user_id", _STR, False, "Unique user id (string; integer ids are written as text)."),
        Column("age", pa.int16(), True, "Age in years; null when the source has none."),
        Column("gender", _STR, True, "As the source writes it (M / F / ...); null if unknown."),
        Column("occupation", _STR, True, "Occupation; null if unknown."),
        Column("interest_tags", _TAGS, False,
               "Declared interest tags (taxonomy.TOPICS for simulated data); may be empty."),
    ),
    "videos": (
        Column("video_id", _STR, False, "Unique video (item) id."),
        Column("title", _STR, False, "Title as shown to users; may be empty."),
        Column("duration_ms", pa.int64(), True, "Length in milliseconds; null if unknown."),
        Column("tags", _TAGS, False, "Tags or genres; may be empty."),
        Column("uri", _STR, True, "Path of a real video file (relative paths are relative to "
               "the dataset directory); null when none."),
        Column("frames_row", pa.int32(), True,
               "Row of frames.npy holding this video's 16 frames of image features; null "
               "when the dataset has no frames file or the video carries a uri instead."),
    ),
    "interactions": (
        Column("user_id", _STR, False, "User; must exist in users.parquet."),
        Column("video_id", _STR, False, "Video; must exist in videos.parquet."),
        Column("ts", pa.int64(), False, "Event time, milliseconds since the Unix epoch (UTC)."),
        Column("play_ms", pa.int64(), True, "How long the video played; null if unknown."),
        Column("duration_ms", pa.int64(), True, "Video length at play time; null if unknown."),
        Column("watch_ratio", pa.float64(), True,
               "play_ms / duration_ms (may exceed 1 on replays); null if unknown."),
        Column("implicit_negative", pa.bool_(), True,
               "watch_ratio < 0.3 (a quick swipe); null exactly when watch_ratio is null."),
        Column("explicit_negative", pa.bool_(), False, "The user disliked the video."),
        Column("reason_category", _STR, False,
               "One of taxonomy.REASONS for an explicit negative with a known reason, else ''."),
        Column("reason_text", _STR, False, "The user's stated reason, else ''."),
        Column("split", _STR, False, "train / valid / test, per user in time order (split.py)."),
        Column("request_id", _STR, True, "Feed request (page) the impression belonged to; "
               "null when the source has no pages.", optional=True),
        Column("position", pa.int16(), True, "Position on the feed page, 0-based; null if "
               "unknown.", optional=True),
        Column("rating", pa.float32(), True, "The source's explicit rating (MovieLens 1-5, "
               "Steam 1 recommended / 0 not); null elsewhere.", optional=True),
    ),
}

TABLE_FILES: Final[dict[str, str]] = {name: f"{name}.parquet" for name in TABLES}


def sidecar_columns(name: str) -> list[dict[str, Any]]:
    """The columns of one table as the sidecar describes them."""
    return [{"name": c.name, "type": str(c.type), "nullable": c.nullable,
             "optional": c.optional, "description": c.doc} for c in TABLES[name]]


# ----------------------------------------------------------------- validation


def _first(mask: pa.Array | pa.ChunkedArray | np.ndarray) -> int | None:
    """Index of the first True in a boolean mask (nulls count as False)."""
    arr = np.asarray(mask.to_numpy(zero_copy_only=False) if not isinstance(mask, np.ndarray)
                     else mask)
    if arr.dtype == object:
        arr = np.array([bool(x) for x in arr])
    hits = np.flatnonzero(arr)
    return int(hits[0]) if hits.size else None


def _cast_column(column: pa.ChunkedArray, col: Column, file: str) -> pa.ChunkedArray:
    if column.type == col.type:
        return column
    try:
        return column.cast(col.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # Find the first value that does not cast, so the message names a row.
        values = column.to_pylist()
        for i, value in enumerate(values):
            if value is None:
                continue
            try:
                pa.array([value]).cast(col.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise SchemaError(file, f"cannot read {value!r} as {col.type}", row=i,
                                  field=col.name) from None
        raise SchemaError(file, f"column of type {column.type} cannot be read as {col.type}: "
                          f"{exc}", field=col.name) from None


def _check(mask: Any, file: str, field: str, message: str) -> None:
    row = _first(mask)
    if row is not None:
        raise SchemaError(file, message, row=row, field=field)


def validate_table(name: str, table: pa.Table, file: str | None = None) -> pa.Table:
    """Check one table against ``TABLES[name]``; return it with canonical types.

    Optional columns that are absent come back as all-null columns; columns the
    schema does not know are kept as they are (a user's logs may carry more).
    Raises ``SchemaError`` naming ``file`` (default ``<name>.parquet``), the
    first offending row and the field.
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    file = file or TABLE_FILES[name]
    columns: dict[str, pa.ChunkedArray] = {}
    for col in TABLES[name]:
        if col.name not in table.column_names:
            if not col.optional:
                raise SchemaError(file, "missing required column", field=col.name)
            columns[col.name] = pa.chunked_array([pa.nulls(table.num_rows, col.type)])
            continue
        data = _cast_column(table.column(col.name), col, file)
        if not col.nullable:
            _check(pc.is_null(data), file, col.name, "null in a non-nullable column")
        if pa.types.is_list(col.type):
            flat = pc.list_flatten(data)
            if flat.null_count:
                parents = pc.list_parent_indices(data).to_numpy()
                row = int(parents[_first(pc.is_null(flat)) or 0])
                raise SchemaError(file, "null inside a list", row=row, field=col.name)
        columns[col.name] = data
    extra = [c for c in table.column_names if c not in columns]
    out = pa.table({**columns, **{c: table.column(c) for c in extra}})
    _CHECKS[name](out, file)
    return out


def _unique_ids(table: pa.Table, field: str, file: str) -> None:
    ids = table.column(field)
    _check(pc.equal(pc.utf8_length(ids), 0), file, field, "empty id")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        values = ids.to_numpy(zero_copy_only=False)
        _, first, counts = np.unique(values, return_index=True, return_counts=True)
        dup_value = values[first[np.flatnonzero(counts > 1)[0]]]
        rows = np.flatnonzero(values == dup_value)
        raise SchemaError(file, f"duplicate id {dup_value!r} (first at row {int(rows[0])})",
                          row=int(rows[1]), field=field)


def _check_users(t: pa.Table, file: str) -> None:
    _unique_ids(t, "user_id", file)
    age = t.column("age")
    _check(pc.or_(pc.less(age, 0), pc.greater(age, 130)), file, "age", "age outside 0..130")


def _check_videos(t: pa.Table, file: str) -> None:
    _unique_ids(t, "video_id", file)
    _check(pc.less_equal(t.column("duration_ms"), 0), file, "duration_ms",
           "duration must be positive")
    _check(pc.less(t.column("frames_row"), 0), file, "frames_row", "negative frames row")


def _check_interactions(t: pa.Table, file: str) -> None:
    for name in ("user_id", "video_id"):
        _check(pc.equal(pc.utf8_length(t.column(name)), 0), file, name, "empty id")
    _check(pc.less(t.column("ts"), 0), file, "ts", "negative timestamp")
    _check(pc.less(t.column("play_ms"), 0), file, "play_ms", "negative play time")
    dur = t.column("duration_ms")
    _check(pc.less_equal(dur, 0), file, "duration_ms", "duration must be positive")
    ratio = t.column("watch_ratio")
    ratio_np = ratio.to_numpy(zero_copy_only=False).astype(np.float64)
    known = ~np.isnan(ratio_np) & ~pc.is_null(ratio).to_numpy(zero_copy_only=False)
    _check(known & ~np.isfinite(np.where(known, ratio_np, 0.0)), file, "watch_ratio",
           "not a finite number")
    _check(known & (np.where(known, ratio_np, 0.0) < 0), file, "watch_ratio", "negative ratio")
    play = t.column("play_ms").to_numpy(zero_copy_only=False)
    durs = dur.to_numpy(zero_copy_only=False)
    both = (~pc.is_null(t.column("play_ms")).to_numpy(zero_copy_only=False)
            & ~pc.is_null(dur).to_numpy(zero_copy_only=False) & known)
    if both.any():
        expect = np.where(both, play.astype(np.float64) / np.where(both, durs, 1).astype(
            np.float64), 0.0)
        bad = both & (np.abs(expect - np.where(both, ratio_np, 0.0))
                      > _RATIO_TOL * np.maximum(1.0, expect))
        _check(bad, file, "watch_ratio", "differs from play_ms / duration_ms")
    implicit = t.column("implicit_negative")
    imp_known = ~pc.is_null(implicit).to_numpy(zero_copy_only=False)
    _check(imp_known != known, file, "implicit_negative",
           "must be null exactly when watch_ratio is null")
    imp = implicit.to_numpy(zero_copy_only=False)
    expected = np.where(known, ratio_np, 1.0) < IMPLICIT_THRESHOLD
    _check(known & (np.where(known, imp, False).astype(bool) != expected), file,
           "implicit_negative", f"must equal watch_ratio < {IMPLICIT_THRESHOLD}")
    cats = t.column("reason_category")
    valid = pc.is_in(cats, value_set=pa.array(["", *sorted(_REASON_VALUES)]))
    _check(pc.invert(valid), file, "reason_category",
           f"expected '' or one of {', '.join(r.value for r in REASONS)}")
    explicit = t.column("explicit_negative")
    has_reason = pc.or_(pc.not_equal(cats, ""), pc.not_equal(t.column("reason_text"), ""))
    _check(pc.and_(has_reason, pc.invert(explicit)), file, "reason_category",
           "a reason on a row that is not an explicit negative")
    split = t.column("split")
    _check(pc.invert(pc.is_in(split, value_set=pa.array(list(SPLITS)))), file, "split",
           f"expected one of {', '.join(SPLITS)}")
    _check(pc.less(t.column("position"), 0), file, "position", "negative position")
    _check_split_order(t, file)


def _check_split_order(t: pa.Table, file: str) -> None:
    """Per user, every train row precedes every valid row, which precedes every test row."""
    if t.num_rows == 0:
        return
    users = t.column("user_id").to_numpy(zero_copy_only=False)
    _, user_codes = np.unique(users, return_inverse=True)
    split_rank = np.zeros(len(users), dtype=np.int8)
    split_vals = t.column("split").to_numpy(zero_copy_only=False)
    for i, s in enumerate(SPLITS):
        split_rank[split_vals == s] = i
    ts = t.column("ts").to_numpy()
    order = np.lexsort((split_rank, ts, user_codes))
    same_user = user_codes[order][1:] == user_codes[order][:-1]
    back = same_user & (split_rank[order][1:] < split_rank[order][:-1])
    hit = _first(back)
    if hit is not None:
        row = int(order[hit + 1])
        raise SchemaError(file, f"split {split_vals[row]!r} at ts {int(ts[row])} comes after a "
                          f"later split of the same user; splits must be chronological per user",
                          row=row, field="split")


_CHECKS = {"users": _check_users, "videos": _check_videos, "interactions": _check_interactions}


def validate_dataset(users: pa.Table, videos: pa.Table, interactions: pa.Table, *,
                     frames_rows: int | None = None,
                     files: Mapping[str, str] = TABLE_FILES) -> tuple[pa.Table, pa.Table,
                                                                      pa.Table]:
    """Validate the three tables and the references between them."""
    users = validate_table("users", users, files["users"])
    videos = validate_table("videos", videos, files["videos"])
    interactions = validate_table("interactions", interactions, files["interactions"])
    for name, table in (("user_id", users), ("video_id", videos)):
        known = pc.is_in(interactions.column(name), value_set=table.column(name))
        row = _first(pc.invert(known))
        if row is not None:
            value = interactions.column(name)[row].as_py()
            target = files["users" if name == "user_id" else "videos"]
            raise SchemaError(files["interactions"], f"{value!r} is not in {target}", row=row,
                              field=name)
    if frames_rows is not None:
        _check(pc.greater_equal(videos.column("frames_row"), frames_rows), files["videos"],
               "frames_row", f"beyond the {frames_rows} rows of the frames file")
    return users, videos, interactions


# ----------------------------------------------------------------- sidecar


def write_sidecar(directory: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``schema.json``: the format, the column docs, and the dataset's metadata."""
    path = Path(directory) / SIDECAR
    tables: dict[str, dict[str, Any]] = {
        name: {"file": TABLE_FILES[name], "columns": sidecar_columns(name)} for name in TABLES}
    doc: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "tables": tables,
                           "implicit_threshold": IMPLICIT_THRESHOLD}
    for key, value in meta.items():
        if key == "tables":
            for name, extra in value.items():
                tables[name].update(extra)
        else:
            doc[key] = value
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if not math.isfinite(obj) else float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to the sidecar")


def read_sidecar(directory: str | Path) -> dict[str, Any]:
    """Read and check ``schema.json``; raises SchemaError naming it."""
    path = Path(directory) / SIDECAR
    if not path.is_file():
        raise SchemaError(str(path), "missing sidecar (write_dataset writes one)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SchemaError(str(path), f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SchemaError(str(path), f"expected format {FORMAT!r}", field="format")
    if doc.get("version") != FORMAT_VERSION:
        raise SchemaError(str(path), f"unsupported version {doc.get('version')!r}; this code "
                          f"reads version {FORMAT_VERSION}", field="version")
    return doc


# ----------------------------------------------------------------- dataset


@dataclass
class Dataset:
    """A validated dataset: three Arrow tables, the sidecar, and lazy frames.

    ``frames`` memory-maps ``frames.npy`` on first use, so that reading a
    dataset never loads its (large) frame features unless asked.
    """

    users: pa.Table
    videos: pa.Table
    interactions: pa.Table
    meta: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None
    _frames: np.ndarray | None = field(default=None, repr=False)

    @property
    def frames_path(self) -> Path | None:
        info = self.meta.get("frames")
        if not info or self.root is None:
            return None
        return (self.root / info["file"]).resolve()

    @property
    def frames(self) -> np.ndarray | None:
        """float16 [n_videos, n_frames, dim], memory-mapped; None when there are none."""
        if self._frames is None:
            path = self.frames_path
            if path is None:
                return None
            self._frames = np.load(path, mmap_mode="r")
        return self._frames

    def video_uri(self, row: int) -> str:
        """The uri a replayed video record carries; see docs/data.md for ``frames://``."""
        return self._uri(self.videos.column("uri")[row].as_py(),
                         self.videos.column("frames_row")[row].as_py(), self.frames_path)

    def video_uris(self) -> list[str]:
        """``video_uri`` of every video, in table order (one pass, for replay)."""
        frames_path = self.frames_path
        return [self._uri(uri, row, frames_path) for uri, row in zip(
            self.videos.column("uri").to_pylist(), self.videos.column("frames_row").to_pylist(),
            strict=True)]

    def _uri(self, uri: str | None, frames_row: int | None, frames_path: Path | None) -> str:
        if uri:
            path = Path(uri)
            if not path.is_absolute() and self.root is not None:
                path = (self.root / path).resolve()
            return str(path)
        if frames_row is not None and frames_path is not None:
            return f"frames://{frames_path}#{frames_row}"
        return ""


def read_dataset(directory: str | Path, *, validate: bool = True) -> Dataset:
    """Read a dataset directory (never ``truth/``), validating it by default."""
    root = Path(directory)
    if not root.is_dir():
        raise SchemaError(str(root), "not a directory")
    meta = read_sidecar(root)
    tables: dict[str, pa.Table] = {}
    for name, fname in TABLE_FILES.items():
        path = root / fname
        if not path.is_file():
            raise SchemaError(str(path), "missing file")
        try:
            tables[name] = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(str(path), f"not a readable Parquet file: {exc}") from None
    frames_rows = None
    info = meta.get("frames")
    if info:
        fpath = root / info["file"]
        if not fpath.is_file():
            raise SchemaError(str(fpath), "frames file named in the sidecar is missing")
        frames_rows = int(info["shape"][0])
    if validate:
        files = {name: str(root / fname) for name, fname in TABLE_FILES.items()}
        users, videos, interactions = validate_dataset(
            tables["users"], tables["videos"], tables["interactions"],
            frames_rows=frames_rows, files=files)
    else:
        users, videos, interactions = tables["users"], tables["videos"], tables["interactions"]
    return Dataset(users, videos, interactions, meta, root.resolve())


def write_dataset(directory: str | Path, users: pa.Table, videos: pa.Table,
                  interactions: pa.Table, *, meta: Mapping[str, Any] | None = None,
                  frames_rows: int | None = None) -> Dataset:
    """Validate and write the three tables and the sidecar; return the Dataset.

    Interactions are written in time order (ts, user_id, position), which is
    the order replay and the splitter assume. Frames, when a dataset has them,
    are written by the producer (they are large); name them in
    ``meta["frames"]`` = {"file", "shape", "dtype", ...}.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    users, videos, interactions = validate_dataset(users, videos, interactions,
                                                   frames_rows=frames_rows)
    interactions = interactions.sort_by([("ts", "ascending"), ("user_id", "ascending"),
                                         ("position", "ascending")])
    meta = dict(meta or {})
    tables_meta = {"users": {"rows": users.num_rows}, "videos": {"rows": videos.num_rows},
                   "interactions": {"rows": interactions.num_rows}}
    for name, table in (("users", users), ("videos", videos), ("interactions", interactions)):
        pq.write_table(table, root / TABLE_FILES[name], compression="zstd")
    write_sidecar(root, {**meta, "tables": tables_meta})
    return Dataset(users, videos, interactions, dict(read_sidecar(root)), root.resolve())
