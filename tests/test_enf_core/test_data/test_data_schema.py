"""Schema validation: every error names the file, the row and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from enf_core.data.schema import (
    TABLES,
    SchemaError,
    read_dataset,
    validate_dataset,
    validate_table,
    write_dataset,
)
from enf_core.data.summary import summarize


def _users() -> pa.Table:
    return pa.table({"user_id": ["u1", "u2"], "age": [30, None], "gender": ["F", None],
                     "occupation": ["nurse", None], "interest_tags": [["food"], []]})


def _videos() -> pa.Table:
    return pa.table({"video_id": ["v1", "v2"], "title": ["a", ""], "duration_ms": [10_000, None],
                     "tags": [["food"], []], "uri": [None, None], "frames_row": [None, None]},
                    schema=pa.schema([("video_id", pa.string()), ("title", pa.string()),
                                      ("duration_ms", pa.int64()),
                                      ("tags", pa.list_(pa.string())), ("uri", pa.string()),
                                      ("frames_row", pa.int32())]))


def _interactions(**overrides: list) -> pa.Table:
    cols = {"user_id": ["u1", "u1", "u1", "u2"], "video_id": ["v1", "v2", "v1", "v2"],
            "ts": [1, 2, 3, 4], "play_ms": [1000, None, 9000, None],
            "duration_ms": [10_000, None, 10_000, None],
            "watch_ratio": [0.1, None, 0.9, None],
            "implicit_negative": [True, None, False, None],
            "explicit_negative": [True, False, False, False],
            "reason_category": ["boring", "", "", ""], "reason_text": ["dull", "", "", ""],
            "split": ["train", "valid", "test", "train"]}
    cols.update(overrides)
    return pa.table(cols)


def test_valid_dataset_round_trips(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path, _users(), _videos(), _interactions(), meta={"name": "tiny"})
    back = read_dataset(tmp_path)
    assert back.interactions.num_rows == 4
    assert back.meta["name"] == "tiny"
    assert back.meta["tables"]["interactions"]["rows"] == 4
    # optional columns absent in the input read as all-null columns
    assert back.interactions.column("request_id").null_count == 4
    sidecar = json.loads((tmp_path / "schema.json").read_text())
    assert [c["name"] for c in sidecar["tables"]["users"]["columns"]] == [
        c.name for c in TABLES["users"]]
    assert summarize(ds.users, ds.videos, ds.interactions)["reason_counts"]["boring"] == 1


@pytest.mark.parametrize(("overrides", "row", "field"), [
    ({"reason_category": ["boring", "", "scary", ""]}, 2, "reason_category"),
    ({"implicit_negative": [False, None, False, None]}, 0, "implicit_negative"),
    ({"watch_ratio": [0.1, None, 0.5, None]}, 2, "watch_ratio"),
    ({"split": ["train", "valid", "later", "train"]}, 2, "split"),
    ({"split": ["test", "valid", "train", "train"]}, 1, "split"),
    ({"reason_text": ["dull", "meh", "", ""]}, 1, "reason_category"),
    ({"ts": [1, 2, -3, 4]}, 2, "ts"),
    ({"play_ms": [1000, None, -5, None]}, 2, "play_ms"),
    ({"user_id": ["u1", None, "u1", "u2"]}, 1, "user_id"),
    ({"ts": ["1", "2", "x3", "4"]}, 2, "ts"),
])
def test_errors_name_file_row_field(overrides: dict, row: int, field: str) -> None:
    with pytest.raises(SchemaError) as info:
        validate_table("interactions", _interactions(**overrides), "logs/interactions.parquet")
    err = info.value
    assert (err.file, err.row, err.field) == ("logs/interactions.parquet", row, field)
    assert str(err).startswith(f"logs/interactions.parquet, row {row}, field '{field}': ")


def test_missing_column_names_the_field() -> None:
    with pytest.raises(SchemaError, match=r"users.parquet, field 'interest_tags': missing"):
        validate_table("users", _users().drop_columns(["interest_tags"]))


def test_duplicate_and_dangling_ids() -> None:
    users = pa.table({"user_id": ["u1", "u1"], "age": [1, 2], "gender": ["F", "M"],
                      "occupation": ["a", "b"], "interest_tags": [[], []]})
    with pytest.raises(SchemaError, match=r"row 1, field 'user_id': duplicate id 'u1'"):
        validate_table("users", users)
    inter = _interactions(video_id=["v1", "v2", "v9", "v2"])
    with pytest.raises(SchemaError, match=r"interactions.parquet, row 2, field 'video_id': "
                                          r"'v9' is not in videos.parquet"):
        validate_dataset(_users(), _videos(), inter)


def test_null_inside_tag_list_names_row() -> None:
    users = _users().set_column(4, "interest_tags", pa.array([["a"], ["b", None]]))
    with pytest.raises(SchemaError, match=r"row 1, field 'interest_tags': null inside a list"):
        validate_table("users", users)


def test_read_dataset_names_the_file_on_disk(tmp_path: Path) -> None:
    write_dataset(tmp_path, _users(), _videos(), _interactions())
    bad = pq.read_table(tmp_path / "videos.parquet").set_column(
        2, "duration_ms", pa.array([10_000, 0], pa.int64()))
    pq.write_table(bad, tmp_path / "videos.parquet")
    with pytest.raises(SchemaError) as info:
        read_dataset(tmp_path)
    assert info.value.file == str(tmp_path / "videos.parquet")
    assert (info.value.row, info.value.field) == (1, "duration_ms")


def test_missing_sidecar_and_files(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"schema\.json: missing sidecar"):
        read_dataset(tmp_path)
    write_dataset(tmp_path, _users(), _videos(), _interactions())
    (tmp_path / "users.parquet").unlink()
    with pytest.raises(SchemaError, match=r"users\.parquet: missing file"):
        read_dataset(tmp_path)
