"""The one-line JSON summary every ``enf data`` command prints last.

Keys (always present, in this order): users, videos, interactions,
implicit_negative_rate (over rows with a known watch ratio; null when no row
has one), explicit_negative_rate, reason_counts {category: n} over explicit
negatives (all four categories, plus "" for explicit negatives without a
reason), split_counts {train, valid, test}. Producers may add keys after these
(the simulator adds ``oracle``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from enf_core.data.schema import SPLITS
from enf_core.taxonomy import REASONS

__all__ = ["summarize"]


def summarize(users: pa.Table, videos: pa.Table, interactions: pa.Table) -> dict[str, Any]:
    """Counts and rates of one dataset, in the documented key order."""
    n = interactions.num_rows
    implicit = interactions.column("implicit_negative")
    known = n - implicit.null_count
    implicit_rate = (float(pc.sum(implicit).as_py() or 0) / known) if known else None
    explicit = interactions.column("explicit_negative").to_numpy(zero_copy_only=False)
    cats = interactions.column("reason_category").to_numpy(zero_copy_only=False)
    reason_counts = {r.value: int(np.sum(explicit & (cats == r.value))) for r in REASONS}
    reason_counts[""] = int(np.sum(explicit & (cats == "")))
    split = interactions.column("split").to_numpy(zero_copy_only=False)
    return {
        "users": users.num_rows,
        "videos": videos.num_rows,
        "interactions": n,
        "implicit_negative_rate": None if implicit_rate is None else round(implicit_rate, 6),
        "explicit_negative_rate": round(float(explicit.sum()) / n, 6) if n else 0.0,
        "reason_counts": reason_counts,
        "split_counts": {s: int(np.sum(split == s)) for s in SPLITS},
    }
