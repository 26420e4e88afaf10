#!/usr/bin/env bash
# Run the reference delivery path (../shared/peer, plain Node) on this machine:
#   bench/peer.sh N WORKERS      (env: MOCK_LATENCY_MS, MOCK_FAILURE_RATE)
# Prepares what its run.sh expects, idempotently: the system PostgreSQL cluster on
# /var/run/postgresql with a role for the current user, Redis on 127.0.0.1:6379,
# /usr/bin/time, and a copy of the peer folder in /tmp with its npm dependencies.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC="${PEER_SRC:-$HERE/../../shared/peer}"
DST=/tmp/notifq-peer

command -v /usr/bin/time >/dev/null || { apt-get update -qq; apt-get install -y -qq time >/dev/null; }
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  cluster=$(pg_lsclusters -h | head -1 | awk '{print $1, $2}')
  # shellcheck disable=SC2086
  pg_ctlcluster $cluster start
fi
me=$(id -un)
if ! runuser -u postgres -- psql -Atc "SELECT 1 FROM pg_roles WHERE rolname='$me'" | grep -q 1; then
  runuser -u postgres -- createuser --superuser "$me"
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes >/dev/null
  sleep 0.5
fi
if [[ ! -d "$DST/node_modules" ]]; then
  rm -rf "$DST"; cp -r "$SRC" "$DST"; chmod -R u+w "$DST"
  (cd "$DST" && npm ci --silent)
fi
cd "$DST" && ./run.sh "$@"
