#!/usr/bin/env bash
# Installs pyci and everything its tests use on Debian/Ubuntu (run as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Only reach for apt when something is missing, so repeated runs cost nothing.
packages=(git bash busybox-static docker-registry skopeo umoci debootstrap apache2-utils
          iproute2 iptables libseccomp2 crun)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
