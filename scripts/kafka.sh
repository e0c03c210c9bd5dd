#!/usr/bin/env bash
# Apache Kafka for tests and `enf up --broker kafka`, from Maven Central (no tarball,
# no Docker). The jars are resolved once into the cache shared by every clone:
#
#   scripts/kafka.sh fetch   download kafka_2.13 3.9.1 + deps (idempotent); prints the libs dir
#   scripts/kafka.sh start   run a single KRaft node on 127.0.0.1:${KAFKA_PORT:-9092} (background)
#   scripts/kafka.sh stop    stop the node started by `start`
#   scripts/kafka.sh status  print "running <pid>" or "stopped"
#
# Kafka 3.9 rather than 4.x: Kafka 4 removed the old protocol versions that aiokafka
# (and so Faust) still speak. Python code finds the jars via streams.services.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${KAFKA_VERSION:-3.9.1}
cache=${ENF_CACHE:-$HOME/.cache/enf-stream}
home="$cache/kafka-$version"
libs="$home/libs"
marker="$home/.complete"
run="$cache/run/kafka-sh"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [ -f "$marker" ] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
    echo "$libs"
    return
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven, or put Maven on PATH)"
  command -v java >/dev/null || die "java not found (Kafka $version needs Java 11+; 17 is tested)"
  mkdir -p "$home"
  # Resolve into a temp dir and rename, so an interrupted fetch never looks complete.
  tmp=$(mktemp -d "$home/.libs.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "kafka.sh: resolving org.apache.kafka:kafka_2.13:$version from Maven Central" >&2
  mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" -Dkafka.version="$version" \
    dependency:copy-dependencies -DoutputDirectory="$tmp/libs" -DincludeScope=runtime >&2 \
    || die "mvn dependency:copy-dependencies failed"
  compgen -G "$tmp/libs/kafka_2.13-$version.jar" >/dev/null || die "kafka_2.13-$version.jar missing after fetch"
  rm -rf "$libs"
  mv "$tmp/libs" "$libs"
  cp "$here/kafka/log4j.properties" "$home/log4j.properties"
  echo "$version" > "$marker"
  trap - EXIT
  rm -rf "$tmp"
  echo "kafka.sh: $(ls "$libs" | wc -l) jars in $libs" >&2
  echo "$libs"
}

pid_alive() { [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null; }

start() {
  fetch >/dev/null
  if pid_alive; then echo "kafka.sh: already running (pid $(cat "$run/pid"))" >&2; return; fi
  port=${KAFKA_PORT:-9092}
  cport=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
  for p in "$port" "$cport"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "127.0.0.1:$p is already in use (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    fi
  done
  rm -rf "$run"; mkdir -p "$run/data"
  cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  log4j="-Dlog4j.configuration=file:$home/log4j.properties"
  java "$log4j" -cp "$libs/*" kafka.tools.StorageTool format \
    -t "$(java "$log4j" -cp "$libs/*" kafka.tools.StorageTool random-uuid)" -c "$run/server.properties" \
    >"$run/format.log" 2>&1 || { cat "$run/format.log" >&2; die "storage format failed"; }
  nohup java -Xmx512m -Xms128m -cp "$libs/*" "$log4j" \
    kafka.Kafka "$run/server.properties" >"$run/kafka.log" 2>&1 &
  echo $! > "$run/pid"
  for _ in $(seq 1 120); do
    pid_alive || { tail -n 30 "$run/kafka.log" >&2; die "Kafka exited during start-up"; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka.sh: Apache Kafka $version on 127.0.0.1:$port (pid $(cat "$run/pid"), log $run/kafka.log)" >&2
      echo "kafka://127.0.0.1:$port"
      return
    fi
    sleep 0.25
  done
  tail -n 30 "$run/kafka.log" >&2
  die "Kafka did not listen on 127.0.0.1:$port within 30 s"
}

stop() {
  if ! pid_alive; then echo "kafka.sh: not running" >&2; rm -rf "$run"; return; fi
  pid=$(cat "$run/pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$run"
  echo "kafka.sh: stopped (pid $pid)" >&2
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if pid_alive; then echo "running $(cat "$run/pid")"; else echo "stopped"; fi ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
