"""What the worker accepts at its edge: one frozen dataclass, documented defaults.

Each field is also an ``ENF_<FIELD>`` setting (``streams.config.WorkerConfig``
carries them and builds the ``InputLimits`` the handlers pass to
``enf_core.events.decode_events``). A message outside a limit is a dead letter
with the reason, never a crash and never silently stored.

Timestamps: the future side is strict (a clock more than ``max_future_skew_ms``
ahead of the worker's is a producer bug: year 9999 or 2^62 used to be stored as
``last_ts``); the past side is generous by default (``max_past_skew_ms = 0``:
only the 2000-01-01 floor), because replaying a retained log or a dataset
(``enf replay``, the demo, the benchmarks) sends events from the past on purpose.
A deployment that only ever sees live traffic can bound the past side too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["ID_CHARSETS", "TS_FLOOR_MS", "InputLimits"]

TS_FLOOR_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
# "printable": any printable Unicode (no control, format or separator characters
# such as NUL, newline, tab, \x1f); "ascii": letters, digits and ``._:@#/+=~-``.
ID_CHARSETS: Final = {"printable": None, "ascii": re.compile(r"[A-Za-z0-9._:@#/+=~-]+")}


@dataclass(frozen=True)
class InputLimits:
    """Limits and meaning checks of input records (defaults documented in the README)."""

    max_message_bytes: int = 1 << 20  # one Kafka message value
    max_page_events: int = 10_000  # records in one JSON array message
    max_candidates: int = 2000  # video ids in one candidates request (after collapsing)
    max_id_len: int = 128  # characters of any id
    id_charset: str = "printable"  # see ID_CHARSETS
    min_ts_ms: int = TS_FLOOR_MS  # no event before 2000-01-01
    max_future_skew_ms: int = 5 * 60_000  # ts at most this far ahead of the worker's clock
    max_past_skew_ms: int = 0  # ts at most this far behind it; 0: only the min_ts_ms floor
    max_play_ratio: float = 10.0  # play_ms ≤ this × duration_ms (loops, replays)
    check_keys: bool = True  # the Kafka key must be the record's user_id / video_id

    def __post_init__(self) -> None:
        if self.id_charset not in ID_CHARSETS:
            raise ValueError(f"id_charset must be one of {', '.join(ID_CHARSETS)}, "
                             f"not {self.id_charset!r}")
        for name in ("max_message_bytes", "max_page_events", "max_candidates", "max_id_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def ts_window(self, now_ms: int) -> tuple[int, int]:
        """The accepted [lo, hi] of ``ts`` at ``now_ms``."""
        lo = self.min_ts_ms
        if self.max_past_skew_ms > 0:
            lo = max(lo, now_ms - self.max_past_skew_ms)
        return lo, now_ms + self.max_future_skew_ms
