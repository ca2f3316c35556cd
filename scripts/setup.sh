#!/usr/bin/env bash
# Installs pyci and everything its tests use on Debian 12+ / Ubuntu 24.04+ (as root, or with sudo).
# pyci goes into a virtual environment at .venv (Debian's python refuses system-wide pip
# installs, PEP 668); its `pyci` command is .venv/bin/pyci.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# System tools the runner and its tests use: a registry server and image tools for the image
# tests and benchmarks, busybox for test images, iproute2/iptables for container networks.
packages=(git bash python3 python3-venv busybox-static docker-registry skopeo umoci debootstrap
          apache2-utils openssl iproute2 iptables libseccomp2 crun)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# python3/python3-venv may come from elsewhere (pyenv, a source build): accept any working venv.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}"); missing=("${missing[@]/python3}")
fi
read -r -a missing <<< "${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
echo "pyci installed: $(pwd)/.venv/bin/pyci"
