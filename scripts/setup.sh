#!/usr/bin/env bash
# Installs what pyci needs to run, on Debian 12+ / Ubuntu 24.04+ (as root, or with sudo).
# pyci goes into a virtual environment at .venv (Debian's python refuses system-wide pip
# installs, PEP 668); its `pyci` command is .venv/bin/pyci. What only the tests use is
# installed by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt-packages.sh
# git: sources and snapshots of the repository; iptables: NAT for the bridge network;
# libseccomp2: Docker's default seccomp profile; util-linux (setpriv, setsid) is always there
install_missing_packages git bash python3 python3-venv iptables libseccomp2
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
echo "pyci installed: $(pwd)/.venv/bin/pyci"
