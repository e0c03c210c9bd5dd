"""The scorer at run time: onnxruntime sessions, CUDA when present, hot reload.

The worker imports this module and nothing from torch: numpy, onnxruntime and
the standard library only. One ``ScorerRuntime`` owns the current model (an
immutable ``_Loaded`` snapshot swapped in one assignment, so a reload never
shows a scorer half-switched between versions) and answers batched calls.

GPU: with ``onnxruntime-gpu`` (the ``gpu`` extra) the CUDA execution provider is
used and calls go through IO binding. ``set_video_table`` puts every video's
vector on the device once; ``score_indexed`` then sends only portraits and
indices across PCIe, which is where GPU.md found the speed. Without CUDA the
same calls run on CPU and ``fallback_reason`` says why (logged at WARNING).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from enf_core.features import FEATURE_LAYOUT_VERSION, PORTRAIT_DIM, VIDEO_DIM
from enf_core.taxonomy import REASONS
from models.calibration import apply_calibration, check_calibration
from models.manifest import MANIFEST_NAME, ModelError, file_sha256, read_manifest

__all__ = ["DEFAULT_MODEL_DIR", "FeatureLayoutError", "ModelError", "ScorerRuntime"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
MAX_BATCH = 262_144  # rows per onnxruntime call: bounds the activations' memory
_N_R = len(REASONS)


class FeatureLayoutError(ModelError):
    """The model was built for another ``enf_core.features`` layout."""


@dataclass(frozen=True)
class _Loaded:
    manifest: dict[str, Any]
    session: ort.InferenceSession
    indexed: ort.InferenceSession | None
    signature: tuple[int, int]  # manifest (mtime_ns, size) when read
    explainer: Any = None  # enf_core.explainer.ExplainerStudent when files.explainer exists
    latents: Any = None  # models.latent.LatentModel: the videos' latents, when the model has them


def _choose_providers(prefer_gpu: bool) -> tuple[list[Any], str | None]:
    if not prefer_gpu:
        return [CPU], "prefer_gpu=False"
    available = ort.get_available_providers()
    if CUDA not in available:
        return [CPU], (f"onnxruntime {ort.__version__} has no {CUDA} (available: "
                       f"{', '.join(available)}); install the 'gpu' extra (onnxruntime-gpu)")
    return [(CUDA, {"device_id": int(os.environ.get("ENF_CUDA_DEVICE", "0"))}), CPU], None


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


class ScorerRuntime:
    """Batched p_negative and reason probabilities from the current model version.

    ``model_dir=None`` uses the default model shipped in ``models/default``.
    Construction raises ``ModelError`` (or ``FeatureLayoutError``) with a clear
    message when the directory cannot be used; ``maybe_reload`` never raises.
    """

    def __init__(self, model_dir: str | Path | None = None, *, prefer_gpu: bool = True,
                 intra_op_threads: int = 0) -> None:
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.prefer_gpu = prefer_gpu
        self.intra_op_threads = intra_op_threads
        self._requested, self.fallback_reason = _choose_providers(prefer_gpu)
        self._lock = threading.Lock()  # serialises reloads, not scoring
        self._failed: tuple[tuple[int, int], str] | None = None
        self._video_table: ort.OrtValue | None = None
        self._video_rows = 0
        self._state = self._load()
        self.providers: list[str] = list(self._state.session.get_providers())
        if self.fallback_reason is None and CUDA not in self.providers:
            self.fallback_reason = f"{CUDA} failed to initialise; onnxruntime fell back to CPU"
        if self.fallback_reason and prefer_gpu:
            log.warning("scorer runs on CPU: %s", self.fallback_reason)
        elif self.fallback_reason:
            log.info("scorer runs on CPU: %s", self.fallback_reason)
        log.info("scorer %s %s loaded from %s on %s", self.manifest.get("name"), self.version,
                 self.model_dir, self.providers)

    # ------------------------------------------------------------------ state

    @property
    def manifest(self) -> dict[str, Any]:
        return self._state.manifest

    @property
    def version(self) -> str:
        return str(self._state.manifest["version"])

    @property
    def on_gpu(self) -> bool:
        return CUDA in self.providers

    @property
    def latents(self) -> Any:
        """The model's video latents (``models.latent.LatentModel``), or None: the video
        handler attaches them to each analysis it stores."""
        return self._state.latents

    @property
    def threshold(self) -> float | None:
        """The F1-optimal threshold found at training time (benchmarks only; on the
        uncalibrated p), if the manifest has one."""
        t = self._state.manifest.get("threshold")
        return float(t) if t is not None else None

    @property
    def calibrated(self) -> bool:
        """Whether ``score`` returns calibrated probabilities (manifest ``calibration``)."""
        return "p_negative" in (self._state.manifest.get("calibration") or {})

    @property
    def operating_point(self) -> dict[str, Any] | None:
        """The product operating point on the calibrated p (manifest), if any."""
        op = self._state.manifest.get("operating_point")
        return dict(op) if isinstance(op, dict) else None

    def calibrate(self, output: str, p: np.ndarray) -> np.ndarray:
        """Map a raw output (``p_negative`` or ``p_dislike``) to its calibrated p."""
        return apply_calibration((self._state.manifest.get("calibration") or {}).get(output), p)

    def _session(self, path: Path) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        # Idle intra-op threads spin by default, burning the cores the event loop,
        # numpy and the broker need between two runs; a worker must not spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        return ort.InferenceSession(str(path), sess_options=opts, providers=self._requested)

    def _load(self) -> _Loaded:
        path = self.model_dir / MANIFEST_NAME
        try:
            signature = _signature(path)
        except OSError as exc:
            raise ModelError(f"no model at {self.model_dir}: {exc.strerror or exc}") from None
        manifest = read_manifest(self.model_dir)
        if "calibration" in manifest:
            try:
                check_calibration(manifest["calibration"])
            except ValueError as exc:
                raise ModelError(f"model {manifest['version']}: {exc}") from None
        layout = manifest["feature_layout_version"]
        if layout != FEATURE_LAYOUT_VERSION:
            dims = [i.get("shape", ["?", "?"])[-1] for i in manifest.get("inputs", [])]
            raise FeatureLayoutError(
                f"model {manifest['name']} {manifest['version']} in {self.model_dir} was built "
                f"for feature layout {layout} (portrait, video widths {dims}), this code uses "
                f"layout {FEATURE_LAYOUT_VERSION} ({PORTRAIT_DIM}, {VIDEO_DIM}: "
                f"enf_core/features.py); retrain it (enf train agents) or use a matching release")
        sessions: dict[str, ort.InferenceSession] = {}
        for role in ("scorer", "scorer_indexed"):
            entry = manifest["files"].get(role)
            if entry is None:
                continue
            file = self.model_dir / entry["path"]
            if not file.is_file():
                raise ModelError(f"model {manifest['version']}: {file} is missing")
            digest = entry.get("sha256")
            if digest and file_sha256(file) != digest:
                raise ModelError(f"model {manifest['version']}: {file} does not match its "
                                 f"sha256 (incomplete copy?)")
            try:
                sessions[role] = self._session(file)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelError(f"onnxruntime cannot load {file}: {exc}") from exc
        names = [i.name for i in sessions["scorer"].get_inputs()]
        outs = [o.name for o in sessions["scorer"].get_outputs()]
        if names != ["portrait", "video"] or outs[:2] != ["p_negative", "reason_probs"]:
            raise ModelError(f"model {manifest['version']}: expected inputs [portrait, video] "
                             f"and outputs [p_negative, reason_probs, ...], got {names} -> {outs}")
        latents = None
        if "latents" in manifest["files"] and "latent_head" in manifest["files"]:
            from models.latent import load_latent_model

            paths = []
            for role in ("latents", "latent_head"):
                entry = manifest["files"][role]
                file = self.model_dir / entry["path"]
                if not file.is_file() or file_sha256(file) != entry.get("sha256", ""):
                    raise ModelError(f"model {manifest['version']}: {file} is missing or does "
                                     f"not match its sha256")
                paths.append(file)
            latents = load_latent_model(paths[0], paths[1])
        loaded = _Loaded(manifest, sessions["scorer"], sessions.get("scorer_indexed"), signature,
                         self._load_explainer(manifest), latents)
        self._smoke_test(loaded)
        return loaded

    def _load_explainer(self, manifest: dict[str, Any]) -> Any:
        """The explanation student named by ``files.explainer`` (JSON, no torch), or None.

        It is part of the version: a missing or corrupt file refuses the whole
        version, as a bad scorer file does, so explanations never lag the scorer.
        """
        entry = manifest["files"].get("explainer")
        if entry is None:
            return None
        from enf_core.explainer import ExplainerStudent

        file = self.model_dir / entry["path"]
        if not file.is_file():
            raise ModelError(f"model {manifest['version']}: {file} is missing")
        digest = entry.get("sha256")
        if digest and file_sha256(file) != digest:
            raise ModelError(f"model {manifest['version']}: {file} does not match its sha256")
        try:
            return ExplainerStudent.load(file)
        except ValueError as exc:
            raise ModelError(f"model {manifest['version']}: {exc}") from None

    @property
    def explainer(self) -> Any:
        """The current version's explanation student (None: the template explains)."""
        return self._state.explainer

    @staticmethod
    def _smoke_test(loaded: _Loaded) -> None:
        p, r, *_ = loaded.session.run(
            None, {"portrait": np.full((2, PORTRAIT_DIM), 0.5, np.float32),
                   "video": np.full((2, VIDEO_DIM), 0.1, np.float32)})
        if p.shape != (2,) or r.shape != (2, _N_R) or not np.isfinite(p).all():
            raise ModelError(f"model {loaded.manifest['version']}: smoke test gave shapes "
                             f"{p.shape}, {r.shape}")

    def maybe_reload(self) -> bool:
        """Load a new version if ``manifest.json`` names one; True when switched.

        Cheap when nothing changed (one stat). A broken or half-copied new model
        is logged once and skipped; the current model keeps serving.
        """
        path = self.model_dir / MANIFEST_NAME
        try:
            signature = _signature(path)
        except OSError as exc:
            log.warning("model manifest %s unreadable, keeping %s: %s", path, self.version, exc)
            return False
        if signature == self._state.signature:
            return False
        with self._lock:
            if signature == self._state.signature:
                return False
            try:
                new = self._load()
            except Exception as exc:
                if self._failed is None or self._failed[0] != signature:
                    log.warning("new model in %s not loaded, keeping %s: %s", self.model_dir,
                                self.version, exc)
                self._failed = (signature, str(exc))
                return False
            old_version = self.version
            if new.manifest["version"] == old_version:
                self._state = new  # same model re-written: adopt the new signature quietly
                return False
            self._state = new
            self.providers = list(new.session.get_providers())
            self._failed = None
        log.info("scorer reloaded: %s -> %s", old_version, self.version)
        return True

    # ------------------------------------------------------------------ scoring

    def _run_all(self, session: ort.InferenceSession, feeds: dict[str, Any],
                 outputs: list[str] | None = None) -> list[np.ndarray]:
        if not self.on_gpu:
            return list(session.run(outputs, feeds))
        binding = session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, value)
        for name in outputs or [o.name for o in session.get_outputs()]:
            binding.bind_output(name, "cuda")
        session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def _run(self, session: ort.InferenceSession, feeds: dict[str, Any]
             ) -> tuple[np.ndarray, np.ndarray]:
        p, r = self._run_all(session, feeds, ["p_negative", "reason_probs"])
        return self.calibrate("p_negative", p), r

    @staticmethod
    def _check(name: str, a: np.ndarray, width: int) -> np.ndarray:
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != width:
            raise ValueError(f"{name} must be [B, {width}] float32, got shape {a.shape}")
        return a

    def score(self, portraits: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """portraits [B, 34], videos [B, 33] -> p_negative [B] (calibrated when the
        manifest has a calibration), reason_probs [B, 4]."""
        portraits = self._check("portraits", portraits, PORTRAIT_DIM)
        videos = self._check("videos", videos, VIDEO_DIM)
        if len(portraits) != len(videos):
            raise ValueError(f"{len(portraits)} portraits for {len(videos)} videos")
        n = len(portraits)
        if n == 0:
            return np.zeros(0, np.float32), np.zeros((0, _N_R), np.float32)
        session = self._state.session
        if n <= MAX_BATCH:
            return self._run(session, {"portrait": portraits, "video": videos})
        parts = [self._run(session, {"portrait": portraits[i:i + MAX_BATCH],
                                     "video": videos[i:i + MAX_BATCH]})
                 for i in range(0, n, MAX_BATCH)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([r for _, r in parts])

    def score_outputs(self, portraits: np.ndarray, videos: np.ndarray, *, raw: bool = False
                      ) -> dict[str, np.ndarray]:
        """Every output of the model by name (``p_dislike`` too, when the model has it);
        ``p_negative`` and ``p_dislike`` calibrated unless ``raw``."""
        portraits = self._check("portraits", portraits, PORTRAIT_DIM)
        videos = self._check("videos", videos, VIDEO_DIM)
        if len(portraits) != len(videos):
            raise ValueError(f"{len(portraits)} portraits for {len(videos)} videos")
        session = self._state.session
        names = [o.name for o in session.get_outputs()]
        parts = [self._run_all(session, {"portrait": portraits[i:i + MAX_BATCH],
                                         "video": videos[i:i + MAX_BATCH]})
                 for i in range(0, max(len(portraits), 1), MAX_BATCH)]
        out = {n: np.concatenate([p[k] for p in parts]) for k, n in enumerate(names)}
        if not raw:
            for name in ("p_negative", "p_dislike"):
                if name in out:
                    out[name] = self.calibrate(name, out[name])
        return out

    def score_user(self, portrait: np.ndarray, videos: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """One portrait [P] against many videos [N, V] (one candidates request)."""
        portrait = np.asarray(portrait, np.float32).reshape(1, -1)
        videos = self._check("videos", videos, VIDEO_DIM)
        return self.score(np.broadcast_to(portrait, (len(videos), portrait.shape[1])), videos)

    # ------------------------------------------------- device-resident video table

    def set_video_table(self, videos: np.ndarray) -> None:
        """Keep every video's vector [N, 33] on the scorer's device for score_indexed."""
        table = self._check("videos", videos, VIDEO_DIM)
        device = "cuda" if self.on_gpu else "cpu"
        self._video_table = ort.OrtValue.ortvalue_from_numpy(table, device, 0)
        self._video_rows = len(table)

    def score_indexed(self, portraits: np.ndarray, portrait_index: np.ndarray,
                      video_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score rows (portraits[portrait_index[i]], table[video_index[i]]).

        Only ``portraits`` [U, 34] and the two index vectors [B] cross to the
        device; the video table stays there between calls.
        """
        indexed = self._state.indexed
        if indexed is None or self._video_table is None:
            raise ModelError("score_indexed needs a model with scorer_indexed and a video "
                             "table (set_video_table)")
        portraits = self._check("portraits", portraits, PORTRAIT_DIM)
        pi = np.ascontiguousarray(portrait_index, dtype=np.int64)
        vi = np.ascontiguousarray(video_index, dtype=np.int64)
        if pi.shape != vi.shape or pi.ndim != 1:
            raise ValueError("portrait_index and video_index must be [B] and equal in length")
        if len(pi) and (pi.min() < 0 or pi.max() >= len(portraits)
                        or vi.min() < 0 or vi.max() >= self._video_rows):
            raise IndexError("index out of range of the portraits or the video table")
        return self._run(indexed, {"portrait": portraits, "portrait_index": pi,
                                   "video_table": self._video_table, "video_index": vi})
