#!/usr/bin/env bash
# Build Mailpit (a local SMTP server with an HTTP API to read what it received) from
# the Go module proxy, once, into a cache outside the repository keyed by its version.
# The SMTP tests and the smtp benchmark start it (hack/testbed.py, class Mailpit).
#
# Usage: hack/build-mailpit.sh   (prints the path of the binary on stdout)
# Env:   NOTIFQ_CACHE     cache root (default: ~/.cache/notifq)
#        MAILPIT_VERSION  pinned version (default below)
set -euo pipefail

MAILPIT_VERSION="${MAILPIT_VERSION:-v1.33.1}"
CACHE="${NOTIFQ_CACHE:-$HOME/.cache/notifq}"
BIN="$CACHE/bin/mailpit-$MAILPIT_VERSION"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

if [[ -x "$BIN/mailpit" ]]; then echo "$BIN/mailpit"; exit 0; fi
if ! command -v go >/dev/null; then
  echo "[build-mailpit] go is required (Go 1.25+); install it first" >&2; exit 1
fi
mkdir -p "$BIN"
dir="$CACHE/src/mailpit-$MAILPIT_VERSION"
mkdir -p "$dir"
echo "[build-mailpit] building mailpit $MAILPIT_VERSION (a minute or two on a fresh machine)" >&2
# a wrapper module of our own: `go install` refuses modules with replace directives
cat >"$dir/go.mod" <<MOD
module notifq.dev/buildmailpit

go 1.25.0
MOD
printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/axllent/mailpit"\n' >"$dir/tools.go"
(cd "$dir" && go get "github.com/axllent/mailpit@$MAILPIT_VERSION" >&2 && go mod tidy >&2 && \
  go build -trimpath -ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" \
    -o "$BIN/mailpit.tmp.$$" github.com/axllent/mailpit)
mv "$BIN/mailpit.tmp.$$" "$BIN/mailpit"
echo "$BIN/mailpit"
