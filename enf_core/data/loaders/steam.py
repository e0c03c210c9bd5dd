"""Steam reviews (shared/data/steam) in the ENF schema.

Source files: ``user_reviews.csv`` (User_Id, Posted, Item_Id, Recommend, Year,
Sentiment_Analysis; 49,186 reviews) and ``steam_games.parquet`` (app_name,
genres, ... per item_id).

Mapping: every review is an interaction; ``Recommend == False`` is an explicit
negative (5,004), and ``rating`` is 1.0 / 0.0. ``Posted`` is a date only, so
``ts`` is that day's midnight UTC plus the review's row number in the file, in
milliseconds (under a minute in all): it keeps the file's order among
same-day reviews and makes the order total and deterministic. Videos are the
2,897 reviewed items; titles and genres come from steam_games.parquet, and the
items it lacks are titled ``Steam app <id>`` with no tags. Users have no
demographics. ``Sentiment_Analysis`` is dropped on purpose: it is derived from
the review text and leaks the label.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from enf_core.data.loaders.common import (
    LoadedTables,
    anonymous_users,
    default_shared_data,
    interactions_table,
)
from enf_core.data.schema import SchemaError

__all__ = ["GAMES_FILE", "REVIEWS_FILE", "load_steam"]

REVIEWS_FILE: Final = "user_reviews.csv"
GAMES_FILE: Final = "steam_games.parquet"
_REQUIRED: Final = ("User_Id", "Posted", "Item_Id", "Recommend")


def load_steam(path: Path | None = None) -> LoadedTables:
    """Steam reviews in the ENF schema (see the module docstring for the mapping)."""
    root = Path(path) if path is not None else default_shared_data("steam")
    reviews_path = root / REVIEWS_FILE
    if not reviews_path.is_file():
        raise FileNotFoundError(f"{reviews_path}: Steam reviews not found (--path DIR)")
    reviews = pacsv.read_csv(reviews_path, convert_options=pacsv.ConvertOptions(
        column_types={"User_Id": pa.string(), "Posted": pa.string(), "Item_Id": pa.string(),
                      "Recommend": pa.string()},
        include_columns=list(_REQUIRED)))
    for name in _REQUIRED:
        row = _first_null(reviews.column(name))
        if row is not None:
            raise SchemaError(str(reviews_path), "empty value", row=row, field=name)
    recommend_raw = reviews.column("Recommend").to_numpy(zero_copy_only=False)
    lowered = np.char.lower(recommend_raw.astype(str))
    bad = np.flatnonzero(~np.isin(lowered, ["true", "false"]))
    if bad.size:
        raise SchemaError(str(reviews_path), f"expected True/False, got {recommend_raw[bad[0]]!r}",
                          row=int(bad[0]), field="Recommend")
    recommend = lowered == "true"
    try:
        days = pc.strptime(reviews.column("Posted"), format="%Y-%m-%d", unit="ms")
    except pa.ArrowInvalid:
        posted = reviews.column("Posted").to_pylist()
        for i, value in enumerate(posted):
            try:
                pc.strptime(pa.array([value]), format="%Y-%m-%d", unit="ms")
            except pa.ArrowInvalid:
                raise SchemaError(str(reviews_path), f"expected a YYYY-MM-DD date, got {value!r}",
                                  row=i, field="Posted") from None
        raise
    ts = days.cast(pa.int64()).to_numpy() + np.arange(reviews.num_rows, dtype=np.int64)
    user_ids = reviews.column("User_Id").to_numpy(zero_copy_only=False)
    item_ids = reviews.column("Item_Id").to_numpy(zero_copy_only=False)

    users = anonymous_users(user_ids)
    items = np.unique(item_ids)
    titles, tags = _game_metadata(root / GAMES_FILE, items)
    videos = pa.table({
        "video_id": pa.array(items.tolist(), pa.string()),
        "title": pa.array(titles, pa.string()),
        "duration_ms": pa.nulls(len(items), pa.int64()),
        "tags": pa.array(tags, pa.list_(pa.string())),
        "uri": pa.nulls(len(items), pa.string()),
        "frames_row": pa.nulls(len(items), pa.int32()),
    })
    interactions = interactions_table(user_id=user_ids, video_id=item_ids, ts=ts,
                                      explicit=~recommend, rating=recommend.astype(np.float32))
    meta = {"name": "steam", "source": f"{reviews_path.resolve()} + {GAMES_FILE}",
            "labels": {"like": "Recommend == True", "explicit_negative": "Recommend == False"},
            "ts_rule": "Posted (date, UTC midnight) + row number in ms",
            "dropped_columns": {"Sentiment_Analysis": "derived from the review text; leaks the "
                                                      "label", "Year": "redundant with Posted"},
            "frames": None}
    return LoadedTables(users, videos, interactions, meta)


def _first_null(column: pa.ChunkedArray) -> int | None:
    if not column.null_count:
        return None
    return int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])


def _game_metadata(path: Path, items: np.ndarray) -> tuple[list[str], list[list[str]]]:
    """Titles and genre tags for ``items``; unknown items get ``Steam app <id>``."""
    known: dict[str, tuple[str, list[str]]] = {}
    if path.is_file():
        games = pq.read_table(path, columns=["item_id", "app_name", "genres"]).to_pylist()
        for g in games:
            genres = [html.unescape(x.strip()) for x in (g["genres"] or "").split(",")
                      if x.strip()]
            known[str(g["item_id"])] = (html.unescape(g["app_name"] or ""), genres)
    titles, tags = [], []
    for item in items:
        title, genres = known.get(str(item), (f"Steam app {item}", []))
        titles.append(title)
        tags.append(genres)
    return titles, tags
