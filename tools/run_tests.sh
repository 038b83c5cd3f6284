#!/usr/bin/env bash
# The whole test suite: sets up .venv (idempotent), then runs pytest.
# Extra arguments go to pytest, e.g. `tools/run_tests.sh -k weights`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
# The web demo test drives Debian's Chromium (a browser download cannot work here).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
cd "$ROOT"
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
