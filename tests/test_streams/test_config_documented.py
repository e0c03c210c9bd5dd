"""Every worker setting is documented: the README's configuration table names
each ``WorkerConfig`` field as its ``ENF_`` variable."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from streams.config import WorkerConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    missing = [f"ENF_{f.name.upper()}" for f in fields(WorkerConfig)
               if f.name != "extra" and f"`ENF_{f.name.upper()}`" not in text]
    assert not missing, f"add these to the README's configuration table: {missing}"
