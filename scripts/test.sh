#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install (scripts/setup.sh), then lint and test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
