"""An ``enf worker`` child process: how the demo, the benchmarks and the
integration tests run a real worker, exactly as a user would."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["WorkerProcess", "wait_until"]

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """Starts ``python -m streams.cli worker`` with ENF_* settings in its own
    process group, scrapes its ``/metrics`` and ``/enf/status``, stops it."""

    def __init__(self, *, kafka_url: str, redis_url: str, broker_kind: str, prefix: str,
                 log_path: Path, env: dict[str, str] | None = None, app_id: str = "",
                 partitions: int = 4) -> None:
        from streams.services import free_port

        self.web_port = free_port()
        self.log_path = log_path
        # The token its state-changing routes take (POST /enf/reset-latency).
        self.admin_token = (env or {}).get("ENF_ADMIN_TOKEN") or secrets.token_urlsafe(16)
        full_env = {**os.environ, "ENF_ADMIN_TOKEN": self.admin_token,
                    "ENF_KAFKA_URL": kafka_url, "ENF_REDIS_URL": redis_url,
                    "ENF_BROKER_KIND": broker_kind, "ENF_TOPIC_PREFIX": prefix,
                    "ENF_APP_ID": app_id or f"{prefix}-app", "ENF_WEB_PORT": str(self.web_port),
                    "ENF_PARTITIONS": str(partitions), "ENF_METRICS_WINDOW_S": "1",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = open(log_path, "ab")
        # Its own session (a clean group kill), but it dies with us: a benchmark or
        # demo that is itself killed must not leave a worker consuming behind it.
        from streams.services import _die_with_parent_preexec

        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                     cwd=ROOT, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent_preexec())

    def _get(self, path: str, *, post: bool = False) -> bytes | None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}{path}", method="POST" if post else "GET",
            headers={"Authorization": f"Bearer {self.admin_token}"} if post else {})
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:  # noqa: S310 (http://127.0.0.1)
                return resp.read()  # type: ignore[no-any-return]
        except OSError:
            return None

    def samples(self) -> dict[str, float]:
        """The worker's Prometheus samples by full name, labels included."""
        text = self._get("/metrics")
        out: dict[str, float] = {}
        for line in (text or b"").decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
        return out

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus samples, summed over labels."""
        out: dict[str, float] = {}
        for name, value in self.samples().items():
            base = name.split("{", 1)[0]
            out[base] = out.get(base, 0.0) + value
        return out

    def handler_seconds(self) -> dict[str, float]:
        """Seconds each agent's handler has spent, from the batch histogram."""
        out = {}
        for name, value in self.samples().items():
            if name.startswith("enf_batch_seconds_sum{"):
                agent = name.split('agent="', 1)[1].split('"', 1)[0]
                out[agent] = round(value, 3)
        return out

    def status(self) -> dict[str, Any]:
        raw = self._get("/enf/status")
        return orjson.loads(raw) if raw else {}

    def reset_latency(self) -> None:
        self._get("/enf/reset-latency", post=True)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        wait_until(lambda: self._get("/metrics") is not None, timeout_s=timeout_s,
                   what="worker web endpoint", worker=self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, what: str,
               worker: WorkerProcess | None = None, interval_s: float = 0.2) -> Any:
    """Poll ``predicate`` until truthy; fail with the worker's log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and not worker.alive():
            raise RuntimeError(f"worker died while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(interval_s)
    tail = worker.log_tail() if worker is not None else ""
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}\n{tail}")
