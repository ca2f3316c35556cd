#!/usr/bin/env bash
# The whole test suite, from a fresh machine: pyci (scripts/setup.sh), then what only the tests
# use, then lint and test (tests/test_lint.py runs ruff). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/apt-packages.sh
# a registry server and image tools for the image tests and benchmarks, busybox for test images,
# openssl and apache2-utils (htpasswd) for TLS and Basic-auth registries, iproute2 to look at
# container networks, crun and debootstrap for the container benchmarks
install_missing_packages docker-registry skopeo umoci debootstrap apache2-utils openssl \
  busybox-static iproute2 crun
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
