#!/usr/bin/env bash
# Starts one Apache Kafka 4.x broker (combined broker + KRaft controller, 127.0.0.1 only) in the background
# and prints its pid once it answers.
#   start.sh [PORT] [DATADIR]     PORT defaults to 9092, DATADIR to /tmp/kafka-broker-PORT
# The controller listens on CONTROLLER_PORT (default PORT+1). Extra server.properties lines (which override
# the ones below) come from KAFKA_EXTRA_PROPERTIES, one per line. Storage is formatted only when DATADIR has
# none yet, so starting again on the same DATADIR restarts the same broker with its data.
# The broker runs with Kafka's default group settings (group.initial.rebalance.delay.ms 3000,
# group.min.session.timeout.ms 6000): those are what users' clusters have.
# Logs: DATADIR/server.log (log4j2) and DATADIR/stdout.log (the JVM). Stop it with stop.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-9092}"
data="${2:-/tmp/kafka-broker-$port}"
cport="${CONTROLLER_PORT:-$((port + 1))}"

[[ "$port" =~ ^[0-9]+$ && "$cport" =~ ^[0-9]+$ ]] || { echo "start.sh: PORT and CONTROLLER_PORT must be numbers" >&2; exit 2; }
command -v java >/dev/null || { echo "start.sh: java (17 or later) is not installed" >&2; exit 1; }
if [ ! -f "$here/lib/.resolved" ]; then
  command -v mvn >/dev/null || { echo "start.sh: mvn is not installed (needed once, to fetch the broker's jars)" >&2; exit 1; }
  (cd "$here" && rm -rf lib && mvn -q dependency:copy-dependencies -DoutputDirectory=lib && touch lib/.resolved)
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -f "$data/broker.pid" ] && kill -0 "$(cat "$data/broker.pid")" 2>/dev/null; then
  echo "start.sh: a broker from $data is already running (pid $(cat "$data/broker.pid"))" >&2
  exit 1
fi
for p in "$port" "$cport"; do
  if port_open "$p"; then echo "start.sh: port $p is already in use" >&2; exit 1; fi
done

mkdir -p "$data/logs"
props="$data/server.properties"
cat >"$props" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$cport
log.dirs=$data/logs
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=3000
group.min.session.timeout.ms=6000
${KAFKA_EXTRA_PROPERTIES:-}
PROPS

cp="$here/lib/*"
jvm=(-Xmx512m -Xms128m -XX:+UseSerialGC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.xml" "-Dkafka.logs.dir=$data")
if [ ! -f "$data/logs/meta.properties" ]; then
  java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format --standalone \
    -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)" -c "$props" >"$data/format.log" 2>&1 ||
    { cat "$data/format.log" >&2; exit 1; }
fi

: >"$data/server.log"
setsid nohup java "${jvm[@]}" -cp "$cp" kafka.Kafka "$props" >"$data/stdout.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$data/broker.pid"

# Answers = the listener accepts and the server says it started (it accepts before it can serve).
for _ in $(seq 600); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: the broker exited; the end of $data/stdout.log and server.log:" >&2
    tail -n 20 "$data/stdout.log" "$data/server.log" >&2
    exit 1
  fi
  if port_open "$port" && grep -q "Kafka Server started" "$data/server.log" 2>/dev/null; then
    echo "$pid"
    exit 0
  fi
  sleep 0.1
done
echo "start.sh: the broker (pid $pid) did not answer on 127.0.0.1:$port within 60 s; see $data/server.log" >&2
kill -9 "$pid" 2>/dev/null || true
exit 1
