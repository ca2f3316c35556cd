# Sourced by setup.sh and test.sh: install the Debian packages of a list that are missing.
# As root, or with sudo; `apt-get update` only when something is missing.

install_missing_packages() {
  local sudo="" missing=() p
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  # python3/python3-venv may come from elsewhere (pyenv, a source build): any working venv will do
  if python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing=("${missing[@]/python3-venv}"); missing=("${missing[@]/python3}")
  fi
  read -r -a missing <<< "${missing[*]}"
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}
