"""How fast suppression reacts to a dislike (item 4 of issue 7).

After a user's first dislike naming an element (the element the simulated
user's dislike was about), every later candidate of that user carrying the
element (by the latent truth) is a trial: did ENF suppress it? Trials are
binned by the number of the user's requests since the dislike (1 = the very
next request) and by milliseconds between the dislike being sent and the
request being sent. The same user's candidates with that element *before*
the dislike give the baseline share.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MS_EDGES", "Responsiveness"]

# Bin edges in ms: [0, 100), [100, 250), ... , [80000, inf).
MS_EDGES = (100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 40_000, 80_000)


@dataclass
class _Bin:
    n: int = 0
    suppressed: int = 0

    def add(self, hit: bool) -> None:
        self.n += 1
        self.suppressed += int(hit)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "suppressed": self.suppressed,
                "share": self.suppressed / self.n if self.n else None}


@dataclass
class Responsiveness:
    max_requests: int = 10  # bins 1..max_requests; later requests land in the last bin
    _first: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)
    _by_requests: dict[int, _Bin] = field(default_factory=dict)
    _by_ms: dict[int, _Bin] = field(default_factory=dict)
    _before: _Bin = field(default_factory=_Bin)
    _pending: dict[tuple[str, int], _Bin] = field(default_factory=dict)
    dislikes: int = 0
    _probes: dict[int, _Bin] = field(default_factory=dict)

    def has_disliked(self, user: str, element: int) -> bool:
        return (user, element) in self._first

    def probe(self, delay_ms: int, suppressed: bool) -> None:
        """A probe's carrier, sent ``delay_ms`` after the dislike (-1: just before)."""
        self._probes.setdefault(delay_ms, _Bin()).add(suppressed)

    def dislike(self, user: str, element: int, request_no: int, t_ms: float) -> None:
        """The user disliked a video naming ``element`` in request ``request_no``."""
        if element >= 0 and (user, element) not in self._first:
            self._first[(user, element)] = (request_no, t_ms)
            self.dislikes += 1
            pending = self._pending.pop((user, element), None)
            if pending is not None:
                self._before.n += pending.n
                self._before.suppressed += pending.suppressed

    def candidates(self, user: str, request_no: int, t_ms: float, intensity: np.ndarray,
                   suppressed: np.ndarray) -> None:
        """One request's candidates: ``intensity`` [n, elements] (truth), ``suppressed`` [n]."""
        carrying = intensity > 0
        for e in np.flatnonzero(carrying.any(axis=0)).tolist():
            rows = np.flatnonzero(carrying[:, e])
            first = self._first.get((user, e))
            if first is None or request_no <= first[0]:
                # Before the first dislike: counted once the user dislikes the element.
                pend = self._pending.setdefault((user, e), _Bin())
                for row in rows.tolist():
                    pend.add(bool(suppressed[row]))
                continue
            r0, t0 = first
            k = min(request_no - r0, self.max_requests)
            b = bisect.bisect_right(MS_EDGES, t_ms - t0)
            for row in rows.tolist():
                hit = bool(suppressed[row])
                self._by_requests.setdefault(k, _Bin()).add(hit)
                self._by_ms.setdefault(b, _Bin()).add(hit)

    def summary(self) -> dict[str, Any]:
        labels = ["<100"] + [f"{a}-{b}" for a, b in itertools.pairwise(MS_EDGES)] \
            + [f">={MS_EDGES[-1]}"]
        return {
            "dislikes": self.dislikes,
            "by_requests": [{"after": k, **self._by_requests[k].to_dict()}
                            for k in sorted(self._by_requests)],
            "by_ms": [{"bin": labels[b], "lo_ms": ([0, *MS_EDGES])[b], **self._by_ms[b].to_dict()}
                      for b in sorted(self._by_ms)],
            "before": self._before.to_dict(),
            "probes": [{"delay_ms": d, **self._probes[d].to_dict()} for d in sorted(self._probes)],
        }
