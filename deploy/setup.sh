#!/usr/bin/env bash
# Installs every Debian package Shoal's build, tests and runtime need. Idempotent: when all are
# present it changes nothing and touches no network; otherwise it runs `apt-get update` once and
# installs what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # Build: Bazel 4.2.3 and the compiler.
  bazel-bootstrap g++
  # Libraries (see third_party/README.md for what each is used for).
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libprotoc-dev
  libabsl-dev librocksdb-dev libboost1.81-dev libssl-dev libspdlog-dev libfmt-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libarchive-dev zlib1g-dev libjemalloc-dev
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev python3
  # Fuzzing (deploy/fuzz.sh): clang with libFuzzer and the sanitizer runtimes, and lld.
  clang libclang-rt-14-dev lld
  # Runtime of swarmd: containers, network namespaces, the routing mesh.
  runc iproute2 nftables util-linux
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
echo "setup: done"
