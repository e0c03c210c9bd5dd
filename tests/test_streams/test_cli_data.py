"""``enf data`` commands end with one JSON summary line; errors exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from streams.cli import main

KEYS = ["users", "videos", "interactions", "implicit_negative_rate", "explicit_negative_rate",
        "reason_counts", "split_counts"]


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_simulate_prints_summary_with_oracle(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = CliRunner().invoke(main, ["data", "simulate", "--users", "40", "--videos", "80",
                                       "--days", "3", "--seed", "1", "--out", str(out),
                                       "--no-frames"])
    assert result.exit_code == 0, result.output
    summary = _last_json(result.stdout)
    assert list(summary)[:7] == KEYS
    assert (summary["users"], summary["videos"]) == (40, 80)
    assert set(summary["oracle"]) == {"explicit_class_acc", "implicit_f1"}
    check = CliRunner().invoke(main, ["data", "check", str(out)])
    assert check.exit_code == 0
    assert _last_json(check.stdout) == {k: summary[k] for k in KEYS}


def test_load_and_check_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["data", "load", "steam", "--out", str(tmp_path / "s"),
                                       "--path", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "user_reviews.csv" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["data", "check", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "schema.json: missing sidecar" in result.output
