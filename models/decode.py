"""Frames for the Video Agent: 16 uniformly sampled frames of a file, or the
simulator's precomputed features (``frames://<path>#<row>``).

Errors are ``VideoAnalysisError`` with the URI and the cause, so the stream can
record the failure beside a neutral analysis and carry on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

__all__ = ["DecodedFrames", "VideoAnalysisError", "load_feature_row", "sample_frames",
           "uniform_indices"]

N_FRAMES = 16
FRAME_SIZE = 224


class VideoAnalysisError(RuntimeError):
    """A video that cannot be analysed: missing, unreadable, corrupt or empty."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"{uri}: {reason}")


@dataclass(frozen=True)
class DecodedFrames:
    frames: np.ndarray  # uint8 [n, 224, 224, 3]
    indices: tuple[int, ...]  # positions in the video
    duration_ms: int


def uniform_indices(n_total: int, n: int = N_FRAMES) -> np.ndarray:
    """``n`` frame numbers spread evenly from the first frame to the last."""
    return np.linspace(0, n_total - 1, n).round().astype(np.int64)


def _local_path(uri: str) -> str:
    """Only local files: a URL handed to decord/ffmpeg would make them connect
    anywhere (the stream fetches allowed http(s) media itself: streams.media)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme in ("", ) or len(parsed.scheme) == 1:  # plain path (or C:\ on Windows)
        return uri
    raise VideoAnalysisError(uri, f"scheme {parsed.scheme!r} is not a local file")


def sample_frames(uri: str, *, n: int = N_FRAMES, size: int = FRAME_SIZE) -> DecodedFrames:
    """Decode ``n`` uniformly spaced frames resized to ``size``×``size`` RGB.

    The whole frame is resized (not cropped): the measured classes were more
    confident than with a centre crop or aspect-preserving resize (docs/agents.md).
    """
    path = _local_path(uri)
    if not Path(path).is_file():  # a regular file: never a device or a fifo
        raise VideoAnalysisError(uri, "video file not found")
    try:
        import decord
    except Exception as exc:  # pragma: no cover - decord is a run-time dependency
        raise VideoAnalysisError(uri, f"decord unavailable: {exc}") from exc
    try:
        reader = decord.VideoReader(path, width=size, height=size, num_threads=1)
        total = len(reader)
        if total <= 0:
            raise VideoAnalysisError(uri, "video has no frames")
        idx = uniform_indices(total, n)
        frames = reader.get_batch(list(idx)).asnumpy()
        fps = float(reader.get_avg_fps() or 0.0)
    except VideoAnalysisError:
        raise
    except Exception as exc:  # decord raises DECORDError / RuntimeError on corrupt input
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VideoAnalysisError(uri, f"cannot decode video ({msg[:200]})") from exc
    if frames.shape != (n, size, size, 3) or frames.dtype != np.uint8:
        raise VideoAnalysisError(uri, f"decoder returned {frames.dtype} {frames.shape}")
    duration = int(total / fps * 1000) if fps > 0 else 0
    return DecodedFrames(np.ascontiguousarray(frames), tuple(int(i) for i in idx), duration)


_ARRAYS: OrderedDict[str, np.ndarray] = OrderedDict()
_ARRAYS_LOCK = threading.Lock()


def _feature_array(path: str) -> np.ndarray:
    with _ARRAYS_LOCK:
        arr = _ARRAYS.get(path)
        if arr is None:
            arr = np.load(path, mmap_mode="r")
            _ARRAYS[path] = arr
            while len(_ARRAYS) > 8:
                _ARRAYS.popitem(last=False)
        else:
            _ARRAYS.move_to_end(path)
        return arr


def load_feature_row(uri: str) -> np.ndarray:
    """``frames://<dataset dir or frames.npy>#<row>`` -> float32 [16, 1280] features."""
    parsed = urlparse(uri)
    if parsed.scheme != "frames" or not parsed.fragment:
        raise VideoAnalysisError(uri, "expected frames://<path>#<row>")
    path = unquote(parsed.netloc + parsed.path)
    if Path(path).is_dir():
        path = str(Path(path) / "frames.npy")
    try:
        row = int(parsed.fragment)
    except ValueError:
        raise VideoAnalysisError(uri, f"row {parsed.fragment!r} is not an integer") from None
    if not Path(path).is_file():
        raise VideoAnalysisError(uri, f"feature file {path} not found")
    try:
        arr = _feature_array(path)
    except Exception as exc:
        raise VideoAnalysisError(uri, f"cannot read {path}: {exc}") from exc
    if arr.ndim != 3 or not 0 <= row < arr.shape[0]:
        raise VideoAnalysisError(uri, f"row {row} outside {path} of shape {arr.shape}")
    return np.asarray(arr[row], np.float32)
