#!/usr/bin/env bash
# Makes this checkout ready to run and test on Debian bookworm: installs the
# missing Debian packages, creates .venv with tools/requirements.txt and
# .venv-deploy with tools/requirements-deploy.txt (the deploy checks) and
# .venv-clients with tools/requirements-clients.txt (openai, tritonclient,
# jinja2: the API clients the tests drive) and .venv-loadgen with
# tools/requirements-loadgen.txt (aiperf, a load generator), then
# configures and builds the one build directory, build/. The container images
# (deploy/docker/) build with this same script.
#
# Idempotent and quick when nothing changed: each step checks before it acts.
# Progress goes to stderr so that callers can keep stdout for their own output.
#
# Environment:
#   RELAYOUT_SKIP_BUILD=1   stop after packages and .venv (no configure, no build)
#   RELAYOUT_SKIP_APT=1     do not check or install Debian packages
#   RELAYOUT_SKIP_VENV=1    do not create the Python venvs (image builds)
#   RELAYOUT_BUILD_TARGETS  targets to build instead of all, e.g. "relayoutd"
#   RELAYOUT_CMAKE_ARGS     extra configure arguments, e.g. "-DRELAYOUT_CUDA=OFF"
#   RELAYOUT_PYTHON         the interpreter that creates .venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian's libsentencepiece is deliberately absent: it bundles its own protobuf,
# which aborts at start-up next to gRPC's. The tokenizers are our own code.
# prometheus provides promtool, which checks the /metrics exposition in
# tests/server; openssl makes those tests' throwaway certificates.
packages=(
  ca-certificates cmake ninja-build ccache clang libclang-rt-14-dev clang-format
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libboost-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  python3-venv
  prometheus openssl
)

install_packages() {
  if ! command -v dpkg-query >/dev/null; then
    say "not a Debian system: make sure these are installed: ${packages[*]}"
    return
  fi
  local installed missing=() p
  # One query for all: lines "name ii " for the installed ones; unknown names
  # only complain on stderr.
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null |
    awk '$2 == "ii" { print $1 }') || true
  for p in "${packages[@]}"; do
    grep -qxF "$p" <<<"$installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "Debian packages: all ${#packages[@]} present"
  else
    local sudo=()
    if ((EUID != 0)); then
      if command -v sudo >/dev/null; then
        sudo=(sudo)
      else
        say "missing Debian packages and not root (no sudo): ${missing[*]}"
        exit 1
      fi
    fi
    say "installing ${#missing[@]} Debian packages: ${missing[*]}"
    local log
    log=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      say "apt-get failed (its output is above)"
      exit 1
    fi
    rm -f "$log"
  fi
  if dpkg-query -W -f='${db:Status-Abbrev}' libsentencepiece0 2>/dev/null | grep -q '^ii'; then
    say "warning: Debian's libsentencepiece0 is installed; relayoutd must never link it (see README)"
  fi
}

# setup_venv DIR REQUIREMENTS: DIR holds exactly the pinned REQUIREMENTS;
# reinstalled only when the file or the interpreter changed.
setup_venv() {
  local venv=$1 req=$2 stamp=$1/.requirements.sha256 want
  if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    say "creating $venv"
    rm -rf "$venv"
    "${RELAYOUT_PYTHON:-python3}" -m venv "$venv"
  fi
  want=$({ sha256sum "$req"; "$venv/bin/python" -V; } | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    say "$venv: up to date"
    return
  fi
  say "$venv: installing $req"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
  echo "$want" >"$stamp"
}

# kubectl renders the Kubernetes manifests (kubectl kustomize) in the deploy
# checks. No registry this project reaches has a usable one: Debian bookworm's
# kubernetes-client is 1.20, whose kustomize (v2.0.3) predates components and
# `patches`. The machine images carry it; without it those checks skip.
check_kubectl() {
  if ! command -v kubectl >/dev/null; then
    say "warning: no kubectl on PATH: the deploy checks that render deploy/k8s will skip"
  fi
}

configure_and_build() {
  # ccache shares objects between checkouts (CI builds a fresh clone each run):
  # paths under the checkout are hashed relative to it.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
  export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
  local args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAYOUT_WERROR=ON)
  # Word splitting is the point here: a list of -D flags in one variable.
  # shellcheck disable=SC2206
  args+=(${RELAYOUT_CMAKE_ARGS:-})
  local stamp=build/.configure-args want="CC=clang CXX=clang++ ${args[*]}"
  if [[ -f build/CMakeCache.txt ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' build/CMakeCache.txt; then
    say "build/ was configured with another generator: starting it afresh"
    rm -rf build
  fi
  if [[ -f build/build.ninja && -f $stamp && $(<"$stamp") == "$want" ]]; then
    say "build/: configured"
  else
    say "configuring build/"
    CC=clang CXX=clang++ cmake -S . -B build "${args[@]}" >&2
    echo "$want" >"$stamp"
  fi
  local targets=()
  # shellcheck disable=SC2206
  [[ -n ${RELAYOUT_BUILD_TARGETS:-} ]] && targets=(--target ${RELAYOUT_BUILD_TARGETS})
  say "building build/ (-j$(nproc)) ${targets[*]}"
  cmake --build build -j"$(nproc)" "${targets[@]}" >&2
  say "build/: up to date"
}

[[ ${RELAYOUT_SKIP_APT:-0} == 1 ]] || install_packages
if [[ ${RELAYOUT_SKIP_VENV:-0} != 1 ]]; then
  setup_venv .venv tools/requirements.txt
  setup_venv .venv-deploy tools/requirements-deploy.txt
  setup_venv .venv-clients tools/requirements-clients.txt
  setup_venv .venv-loadgen tools/requirements-loadgen.txt
  check_kubectl
fi
if [[ ${RELAYOUT_SKIP_BUILD:-0} == 1 ]]; then
  say "RELAYOUT_SKIP_BUILD=1: not building"
else
  configure_and_build
fi
