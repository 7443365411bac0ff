#!/usr/bin/env bash
# Installs every dependency moa needs from Debian 12's apt and builds the Release binary into
# ./build (pass --no-build to only install). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config git clang-format
  libopenblas-dev libhwy-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libpcre2-dev
  coinor-libcbc-dev
  libopenmpi-dev openmpi-bin  # MPI scale-out of moa profile (mpirun -np K; optional: MOA_MPI)
  libgtest-dev libgmock-dev libbenchmark-dev
  chromium  # the report test renders report.html headless (skipped when absent)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" != "--no-build" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
  echo "setup: built ./build/moa"
fi
