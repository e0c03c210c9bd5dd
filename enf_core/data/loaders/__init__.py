"""Real-data loaders: each turns a public dataset into the ENF log schema.

A loader returns ``LoadedTables`` (the three Arrow tables and the sidecar
metadata); ``load_dataset`` validates and writes them with ``write_dataset``
and returns the summary. Sources and their mapping are documented in
docs/data.md and in each loader's docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from enf_core.data.loaders.common import LoadedTables
from enf_core.data.schema import write_dataset
from enf_core.data.summary import summarize

__all__ = ["LOADERS", "LoadedTables", "load_dataset", "load_tables"]


def _movielens(path: Path | None) -> LoadedTables:
    from enf_core.data.loaders.movielens import load_movielens_100k

    return load_movielens_100k(path)


def _steam(path: Path | None) -> LoadedTables:
    from enf_core.data.loaders.steam import load_steam

    return load_steam(path)


def _kuairand(path: Path | None) -> LoadedTables:
    from enf_core.data.loaders.kuairand import load_kuairand

    return load_kuairand(path)


LOADERS: dict[str, Callable[[Path | None], LoadedTables]] = {
    "movielens-100k": _movielens,
    "steam": _steam,
    "kuairand": _kuairand,
}
"""Dataset name -> loader. ``path`` is the source directory (None: the default)."""


def load_tables(name: str, path: str | Path | None = None) -> LoadedTables:
    """Run one loader; raises ValueError naming the known datasets."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(LOADERS)}")
    return LOADERS[name](Path(path) if path is not None else None)


def load_dataset(name: str, out_dir: str | Path, path: str | Path | None = None
                 ) -> dict[str, Any]:
    """Load ``name``, write it in the ENF schema under ``out_dir``; return the summary."""
    tables = load_tables(name, path)
    summary = summarize(tables.users, tables.videos, tables.interactions)
    write_dataset(out_dir, tables.users, tables.videos, tables.interactions,
                  meta={**tables.meta, "summary": summary})
    return summary
