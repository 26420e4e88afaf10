#!/usr/bin/env bash
# Install everything notifq's tests, demo and benchmarks need on a Debian machine.
# Idempotent: a second run only checks. Called by `make test`, `make demo`, `make bench`.
#   1. apt: PostgreSQL, Redis, openssl (servers are started per run by hack/testbed.py),
#      Chromium for the dashboard's browser tests (never a test tool's own browser),
#      and the one-node cluster's runtime and image tools (hack/cluster.py: containerd,
#      runc, CNI plugins, iptables, ipset for kube-router; buildah, podman, debootstrap for hack/images.py),
#      and wrk (the HTTP load generator of bench/api_load.py and the api-1m case)
#   2. a virtualenv in .venv: the locked dependencies (requirements/dev.txt) and notifq editable
#   3. etcd, kube-apiserver, kubectl and helm built from the Go module proxy into a cache,
#      and Mailpit (the SMTP tests' server; hack/build-mailpit.sh), likewise
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[setup] $*" >&2; }

APT_PACKAGES=(postgresql redis-server openssl procps chromium fonts-dejavu-core wrk
  containerd runc containernetworking-plugins iptables ipset conntrack buildah podman debootstrap)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} from apt"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the packaged servers; we run our own instances per test run instead
# (hack/cluster.py runs its own containerd on a socket of its own, too).

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.notifq-installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" || requirements/dev.txt -nt "$stamp" ]]; then
  # Exactly the versions the tests ran with (requirements/dev.txt, hashes checked);
  # `make lock` refreshes it from pyproject.toml.
  log "installing Python dependencies from requirements/dev.txt"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --require-hashes -r requirements/dev.txt
  .venv/bin/pip install -q --no-deps -e .
  touch "$stamp"
fi

# The dev tools import each other by module name (testbed, harness): put hack/ and tests/
# on the virtualenv's path (what pytest's `pythonpath` does for the tests).
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n' "$PWD/hack" "$PWD/tests" >"$site/notifq-dev-tools.pth"

hack/build-control-plane.sh >/dev/null
# here, not on first use: two pytest processes would otherwise build it at once
hack/build-mailpit.sh >/dev/null
log "ready"
