"""streams.services without starting any service: ports, config, state file, safety."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import threading
from pathlib import Path

import click
import pytest

from streams import services as svc
from streams.services import (
    EmbeddedServices,
    KafkaConfig,
    KafkaNotFetchedError,
    RedisConfig,
    Service,
    ServiceError,
    ServiceRecord,
    ServicesState,
    TansuConfig,
)


def test_free_ports_are_distinct_and_bindable_on_loopback() -> None:
    ports = svc.free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    assert 0 < svc.free_port() < 65536


@pytest.mark.parametrize(("url", "expected"), [
    ("kafka://127.0.0.1:9092", "127.0.0.1:9092"),
    ("kafka://a:1;kafka://b:2", "a:1,b:2"),
    ("a:1,b:2", "a:1,b:2"),
    ("kafka://h:9/", "h:9"),
])
def test_bootstrap_servers(url: str, expected: str) -> None:
    assert svc.bootstrap_servers(url) == expected


def test_bootstrap_servers_rejects_empty() -> None:
    with pytest.raises(ValueError):
        svc.bootstrap_servers("kafka://")


def test_configs_are_frozen_and_default_to_free_ports() -> None:
    for config in (TansuConfig(), KafkaConfig(), RedisConfig()):
        assert config.port == 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.port = 1  # type: ignore[misc]
    assert KafkaConfig().version == "3.9.1"
    assert any(opt.startswith("-Xmx") for opt in KafkaConfig().jvm_options)


def test_kafka_properties_bind_loopback_only(tmp_path: Path) -> None:
    config = KafkaConfig(partitions=6, extra_properties=(("num.io.threads", "1"),))
    text = svc._kafka_properties(config, 19092, 19093, tmp_path / "data")
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["num.partitions"] == props["offsets.topic.num.partitions"] == "6"
    assert props["num.io.threads"] == "1"  # extra properties win
    assert props["log.dirs"] == str(tmp_path / "data")
    hosts = re.findall(r"//([^:,]+):|@([^:,]+):", text)
    assert {h for pair in hosts for h in pair if h} == {"127.0.0.1"}


def test_kafka_uuid_looks_like_storage_tool_output() -> None:
    ids = {svc._kafka_uuid() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", value)
        assert not value.startswith("-")


def test_cache_dir_and_missing_kafka(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENF_CACHE", str(tmp_path))
    assert svc.cache_dir() == tmp_path
    assert svc.state_path() == tmp_path / "run" / "services.json"
    with pytest.raises(KafkaNotFetchedError, match="make kafka"):
        svc.kafka_libs_dir()
    libs = tmp_path / "kafka-3.9.1" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-3.9.1.jar").touch()
    with pytest.raises(KafkaNotFetchedError):  # no marker: an interrupted fetch
        svc.kafka_libs_dir()
    (tmp_path / "kafka-3.9.1" / ".complete").write_text("3.9.1\n")
    assert svc.kafka_libs_dir() == libs


def test_binary_overrides_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENF_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(ServiceError, match="not an executable"):
        svc.redis_server_binary()
    monkeypatch.setenv("ENF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(ServiceError, match="not an executable"):
        svc.tansu_binary()


def test_shipped_binaries_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENF_REDIS_SERVER", raising=False)
    monkeypatch.delenv("ENF_TANSU_BIN", raising=False)
    assert os.access(svc.redis_server_binary(), os.X_OK)
    assert os.access(svc.tansu_binary(), os.X_OK)


def _record(**overrides: object) -> ServiceRecord:
    base: dict[str, object] = dict(name="redis", url="redis://127.0.0.1:1/0", pid=1,
                                   start_ticks=5, log_path="/x/redis.log", temp_dir="/x")
    base.update(overrides)
    return ServiceRecord(**base)  # type: ignore[arg-type]


def test_state_round_trip(tmp_path: Path) -> None:
    state = ServicesState(broker_kind="tansu", kafka_url="kafka://127.0.0.1:1",
                          redis_url="redis://127.0.0.1:2/0",
                          services=(_record(), _record(name="tansu", temp_dir=None)),
                          created_at=12.5)
    path = tmp_path / "run" / "services.json"
    assert svc.read_state(path) is None
    assert svc.write_state(state, path) == path
    assert svc.read_state(path) == state
    assert [p.name for p in path.parent.iterdir()] == ["services.json"]  # no temp left
    assert json.loads(path.read_text())["version"] == 1
    svc.remove_state(path)
    svc.remove_state(path)  # idempotent
    assert svc.read_state(path) is None


def test_corrupt_state_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    path.write_text('{"version": 7}')
    with pytest.raises(ValueError):
        svc.read_state(path)
    path.write_text("not json")
    with pytest.raises(ValueError):
        svc.read_state(path)


def test_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A state file's pid now belongs to someone else (here: this test): stop() must
    not kill it, only clean up."""
    temp = tmp_path / "enf-svc-redis-x"
    temp.mkdir()
    me = os.getpid()
    ticks = svc._proc_start_ticks(me)
    assert ticks is not None
    stale = Service.from_record(_record(pid=me, start_ticks=ticks + 1, temp_dir=str(temp)))
    assert not stale.alive()
    stale.stop()
    assert not temp.exists()
    assert Service.from_record(_record(pid=me, start_ticks=ticks)).alive()


def test_sweep_removes_only_dead_services(tmp_path: Path) -> None:
    dead = tmp_path / "enf-svc-redis-dead"
    live = tmp_path / "enf-svc-redis-live"
    other = tmp_path / "unrelated"
    for d in (dead, live, other):
        d.mkdir()
    (dead / "service.json").write_text(json.dumps(dataclasses.asdict(
        _record(pid=2**22 + 12345, start_ticks=1))))
    (live / "service.json").write_text(json.dumps(dataclasses.asdict(
        _record(pid=os.getpid(), start_ticks=svc._proc_start_ticks(os.getpid())))))
    svc._sweep_stale_dirs(tmp_path)
    assert not dead.exists() and live.exists() and other.exists()


def test_pdeathsig_only_from_the_main_thread() -> None:
    assert svc._die_with_parent_preexec() is not None
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(svc._die_with_parent_preexec()))
    thread.start()
    thread.join()
    assert seen == [None]


class _FakeRedis(threading.Thread):
    def __init__(self, reply: bytes) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.reply = reply

    def run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(self.reply)


def test_ping_redis_checks_the_reply() -> None:
    good = _FakeRedis(b"+PONG\r\n")
    good.start()
    svc.ping_redis(good.port)
    bad = _FakeRedis(b"-NOAUTH Authentication required.\r\n")
    bad.start()
    with pytest.raises(ServiceError, match="NOAUTH"):
        svc.ping_redis(bad.port)


def test_embedded_services_validates_and_reports_unstarted() -> None:
    with pytest.raises(ValueError, match="unknown broker"):
        EmbeddedServices(broker="zookeeper")
    services = EmbeddedServices(broker="kafka", redis_url="redis://127.0.0.1:6379/3")
    assert services.broker_kind == "kafka"
    assert services.redis_url == "redis://127.0.0.1:6379/3"  # external: nothing to start
    with pytest.raises(ServiceError, match="not started"):
        _ = services.kafka_url
    services.stop()  # nothing started: a no-op


def test_start_broker_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        svc.start_broker("rabbitmq")


def test_cli_exposes_up_and_down() -> None:
    from streams.cli import main
    from streams.cli.services import down, up

    ctx = click.Context(main)
    assert main.get_command(ctx, "up") is up
    assert main.get_command(ctx, "down") is down


def test_no_wildcard_address_in_service_code() -> None:
    wildcard = ".".join(["0"] * 4)  # spelled out so this file passes its own check
    root = Path(svc.__file__).resolve().parents[1]
    for path in [Path(svc.__file__), root / "streams" / "cli" / "services.py",
                 root / "scripts" / "kafka.sh", root / "docker" / "compose.yaml",
                 root / "docker" / "Dockerfile"]:
        assert wildcard not in path.read_text(), path


def test_docker_compose_is_consistent() -> None:
    """Docker does not run here: check what a parse can — references, env, images."""
    yaml = pytest.importorskip("yaml")  # PyYAML is in requirements/dev.lock
    docker = Path(svc.__file__).resolve().parents[1] / "docker"
    compose = yaml.safe_load((docker / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "enf-worker"}
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["redis"]["image"].startswith("redis:7")
    declared_volumes = set(compose.get("volumes", {}))
    for name, spec in services.items():
        for dep in spec.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
            assert "healthcheck" in services[dep], f"{dep} needs a healthcheck"
        for volume in spec.get("volumes", []):
            assert volume.split(":", 1)[0] in declared_volumes
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"

    kafka_env = services["kafka"]["environment"]
    listeners = dict(item.split("://", 1)[::-1] for item in
                     kafka_env["KAFKA_LISTENERS"].split(","))
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    names = {v for v in listeners.values()}
    protocol_map = dict(p.split(":") for p in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                        .split(","))
    assert names <= set(protocol_map)
    assert kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"] in names
    assert kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@" + next(
        addr for addr, n in listeners.items() if n == "CONTROLLER")

    worker = services["enf-worker"]
    env = worker["environment"]
    assert f"PLAINTEXT://{svc.bootstrap_servers(env['ENF_KAFKA_URL'])}" in advertised
    redis_host = env["ENF_REDIS_URL"].split("://", 1)[1].split(":", 1)[0]
    assert redis_host in services
    assert env["ENF_BROKER_KIND"] == "kafka"
    assert int(worker["deploy"]["replicas"]) >= 1
    assert int(env["ENF_PARTITIONS"]) == int(kafka_env["KAFKA_NUM_PARTITIONS"])
    build = worker["build"]
    context = (docker / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    text = dockerfile.read_text()
    assert "FROM python:3.11-slim" in text
    assert 'ENTRYPOINT ["enf", "worker"]' in text
    for copied in ("enf_core", "models", "streams", "pyproject.toml"):
        assert (context / copied).exists()
