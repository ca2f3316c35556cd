#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, then lint and test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
python3 -m pytest -q "$@"
