#!/usr/bin/env bash
# Installs the build and test dependencies from Debian packages, then the Python packages of the
# server tests (tests/server/requirements.txt) into the venv .venv-test. Idempotent; safe to re-run.
set -euo pipefail
pkgs=(build-essential cmake ninja-build ccache pkg-config nlohmann-json3-dev libgtest-dev libgmock-dev
      libbenchmark-dev libhwy-dev libcpp-httplib-dev libsndfile1-dev libsoxr-dev python3 python3-venv clang-format curl
      libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev libexif-dev libcurl4-openssl-dev libxxhash-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      clang libclang-rt-dev)  # clang + compiler-rt: sanitizer and libFuzzer builds
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Server tests: a venv at the repository root, refreshed when the requirements change.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-test"
reqs="$root/tests/server/requirements.txt"
if [ -f "$reqs" ]; then
  py=/usr/bin/python3
  [ -x "$py" ] || py="$(command -v python3)"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  stamp="$venv/.requirements.sha256"
  want="$(sha256sum "$reqs" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    echo "$want" >"$stamp"
  fi
fi
