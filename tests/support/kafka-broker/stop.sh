#!/usr/bin/env bash
# Stops a broker start.sh started:  stop.sh [PORT] [DATADIR]  (the same arguments as start.sh).
# A clean shutdown first (SIGTERM), SIGKILL after 30 s. KILL=1 kills it at once (a crash, for tests).
set -euo pipefail
port="${1:-9092}"
data="${2:-/tmp/kafka-broker-$port}"
[ -f "$data/broker.pid" ] || { echo "stop.sh: no broker.pid in $data" >&2; exit 1; }
pid="$(cat "$data/broker.pid")"
if ! kill -0 "$pid" 2>/dev/null; then rm -f "$data/broker.pid"; exit 0; fi
if [ "${KILL:-0}" = 1 ]; then kill -9 "$pid"; else kill "$pid"; fi
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || { rm -f "$data/broker.pid"; exit 0; }
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
rm -f "$data/broker.pid"
