#!/usr/bin/env bash
# The README's first command: makes the checkout ready (tools/setup.sh), fetches
# the default model once, and runs relayoutd's main job on it. Extra arguments
# go to relayoutd, e.g. `tools/run.sh --json`.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh
model=$(tools/fetch_default_model.sh)

# The main job; it becomes `serve` once the server lands.
job=(inspect --model "$model")

echo "run: build/server/relayoutd ${job[*]}${*:+ $*}" >&2
exec build/server/relayoutd "${job[@]}" "$@"
