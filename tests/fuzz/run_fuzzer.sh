#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a seed corpus built from the
# shared models (whole files and short prefixes of each, so the fuzzer starts
# from both valid inputs and truncations). Any crash, leak, sanitizer report
# or timeout makes the fuzzer, and so this script, exit non-zero.
#
# usage: run_fuzzer.sh <fuzzer-binary> <seconds> <shared-dir> <corpus-dir>
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 <fuzzer-binary> <seconds> <shared-dir> <corpus-dir>" >&2
  exit 2
fi
fuzzer=$1
seconds=$2
shared=$3
corpus=$4

mkdir -p "$corpus"
name=$(basename "$fuzzer")
# The file-format parsers start from the shared models; the text parsers from
# their own seeds below.
if [[ $name != fuzz_gguf && $name != fuzz_safetensors ]]; then
  :
elif [[ -d "$shared/models" ]]; then
  n=0
  while IFS= read -r -d '' model; do
    n=$((n + 1))
    base="seed${n}_$(basename "$model")"
    cp -f "$model" "$corpus/$base"
    chmod u+w "$corpus/$base"  # the shared models are read-only; reruns overwrite
    for len in 64 256 4096; do
      head -c "$len" "$model" > "$corpus/${base}.head${len}"
    done
  done < <(find "$shared/models" -type f \( -name '*.safetensors' -o -name '*.gguf' \) -print0 | sort -z)
  echo "seeded $corpus from $n model files under $shared/models"
else
  echo "warning: $shared/models not found; fuzzing from an empty corpus" >&2
fi

# Small hand-made seeds (a few hundred bytes of header each, *.seed), if the
# target has any, reach the header paths faster than mutations of
# megabyte-sized models do.
seeds="$(dirname "$0")/seeds/$name"
if [[ -d "$seeds" ]]; then
  cp -f "$seeds"/* "$corpus"/
fi
# The chat-template fuzzer starts from our templates and, when
# tools/fetch_chat_templates.sh has fetched them, real models' templates.
if [[ $name == fuzz_chat_template ]]; then
  for dir in "$(dirname "$0")/../data/chat_templates" "${RELAYOUT_CHAT_TEMPLATE_DIR:-}"; do
    if [[ -n $dir && -d $dir ]]; then
      for f in "$dir"/*.jinja; do cp -f "$f" "$corpus/$(basename "$f")"; done
    fi
  done
fi

# Inputs up to 2 MiB so the seed models (1-1.8 MB) fit whole.
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=2097152 -timeout=10 \
  -print_final_stats=1 "$corpus"
