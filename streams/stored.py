"""Reading values back from Redis without trusting them.

Redis is shared: another tool, a half-finished write or a bug elsewhere can leave
a portrait or video value that is not JSON, has the wrong shape, or a vector
that is not finite or not the expected size. One such value must not fail every
batch that touches it (the old behaviour: exit 70 on every restart), so readers
parse through these helpers; a value that fails is returned as ``Quarantined``
(key, bytes, error), reported once as a dead-letter record, and the batch goes
on with a documented fallback (README, Guarantees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import Portrait

__all__ = ["Quarantined", "StoredValueError", "finite_vector", "parse_analysis",
           "parse_portrait"]


class StoredValueError(ValueError):
    """A stored value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A stored value (Redis) that cannot be used; the batch goes on without it."""

    key: str  # the Redis key
    value: bytes | None  # the stored bytes
    error: str


def parse_portrait(raw: bytes) -> Portrait:
    """A stored portrait, or StoredValueError: it must parse and give a finite vector."""
    try:
        p = Portrait.from_dict(orjson.loads(raw))
        vec = p.vector()
    except Exception as exc:  # any shape problem of a foreign value
        raise StoredValueError(f"stored portrait is unusable: {type(exc).__name__}: "
                               f"{str(exc)[:200]}") from None
    if not np.isfinite(vec).all():
        raise StoredValueError("stored portrait has non-finite values")
    return p


def parse_analysis(raw: bytes) -> VideoAnalysis:
    """A stored video analysis, or StoredValueError."""
    from enf_core.features import video_vector

    try:
        a = VideoAnalysis.from_dict(orjson.loads(raw))
        vec = video_vector(a)
    except Exception as exc:
        raise StoredValueError(f"stored video analysis is unusable: {type(exc).__name__}: "
                               f"{str(exc)[:200]}") from None
    if not np.isfinite(vec).all():
        raise StoredValueError("stored video analysis has non-finite values")
    return a


def finite_vector(raw: bytes | None, dim: int) -> np.ndarray | None:
    """A stored float32 vector: None when absent; StoredValueError when it has the
    wrong size or a value that is not finite (NaN would reach the model and make
    every row of a batch that touches it NaN)."""
    if raw is None:
        return None
    if len(raw) != 4 * dim:
        raise StoredValueError(f"stored vector has {len(raw)} bytes, expected {4 * dim}")
    v = np.frombuffer(raw, dtype=np.float32)
    if not np.isfinite(v).all():
        raise StoredValueError("stored vector has non-finite values")
    return v
