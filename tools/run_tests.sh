#!/usr/bin/env bash
# The whole test suite: sets up .venv (idempotent), then runs pytest.
# Extra arguments go to pytest, e.g. `tools/run_tests.sh -k weights`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
