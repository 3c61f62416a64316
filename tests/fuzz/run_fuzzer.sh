#!/usr/bin/env bash
# run_fuzzer.sh <fuzzer-binary> <seconds> <shared-dir> <corpus-dir>
# Seeds <corpus-dir> with the checkpoints under <shared-dir>/models (*.gguf and
# *.safetensors) and with tests/fuzz/seeds/<binary name>/, then runs the fuzzer
# for <seconds>. Exits non-zero on a crash, leak or sanitizer report (libFuzzer's
# own exit status).
set -euo pipefail
if [[ $# -ne 4 ]]; then
  echo "usage: $0 <fuzzer-binary> <seconds> <shared-dir> <corpus-dir>" >&2
  exit 2
fi
binary=$1 seconds=$2 shared=$3 corpus=$4
mkdir -p "$corpus"
if [[ -d "$shared/models" ]]; then
  find "$shared/models" -type f \( -name '*.gguf' -o -name '*.safetensors' \) -print0 |
    while IFS= read -r -d '' f; do
      cp -f "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
    done
fi
# Small hand-made seeds reach deep into a parser in few bytes.
seeds="$(dirname "$0")/seeds/$(basename "$binary")"
if [[ -d "$seeds" ]]; then cp -f "$seeds"/* "$corpus"/; fi
artifacts="$corpus/../$(basename "$binary")_artifacts/"
mkdir -p "$artifacts"
exec "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="$artifacts" "$corpus"
