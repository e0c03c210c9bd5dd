"""Helpers for integration tests: a real worker process, a producer, a consumer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.services import free_port

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``enf worker`` as a child process, the way a user runs it."""

    def __init__(self, *, kafka_url: str, redis_url: str, broker_kind: str, prefix: str,
                 env: dict[str, str] | None = None, log_path: Path) -> None:
        self.web_port = free_port()
        self.log_path = log_path
        full_env = {**os.environ, "ENF_KAFKA_URL": kafka_url, "ENF_REDIS_URL": redis_url,
                    "ENF_BROKER_KIND": broker_kind, "ENF_TOPIC_PREFIX": prefix,
                    "ENF_APP_ID": f"{prefix}-app", "ENF_WEB_PORT": str(self.web_port),
                    "ENF_METRICS_WINDOW_S": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                     cwd=ROOT, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus counters (sum over labels)."""
        import urllib.request

        url = f"http://127.0.0.1:{self.web_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            try:
                out[base] = out.get(base, 0.0) + float(value)
            except ValueError:
                continue
        return out

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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(interval_s)
    tail = worker.log_tail() if worker is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{tail}")


async def _produce(bootstrap: str, records: Sequence[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futs = [await producer.send(topic, value=value, key=key) for topic, key, value in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


def produce(bootstrap: str, records: Sequence[tuple[str, bytes | None, bytes]]) -> None:
    asyncio.run(_produce(bootstrap, records))


async def _consume(bootstrap: str, topic: str, n: int, timeout_s: float) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def consume(bootstrap: str, topic: str, n: int, *, timeout_s: float = 30.0) -> list[Any]:
    """Read at least ``n`` records (or all there are by the timeout)."""
    return asyncio.run(_consume(bootstrap, topic, n, timeout_s))


def event(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"v": 1, "type": kind, **fields})
