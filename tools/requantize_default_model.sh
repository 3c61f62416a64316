#!/usr/bin/env bash
# Prints the path of the default model requantized to one of llama-quantize's
# mixes, e.g. `tools/requantize_default_model.sh Q4_K_M`, making it with
# tools/requantize_gguf.py from the Q4_1 GGUF (tools/fetch_default_model.sh)
# when it is not in the cache yet. Only the path goes to stdout.
#
# The file lies next to the Q4_1 one, with a .key file beside it: the sha256 of
# the quantizer's sources that made it. When the sources change the file is
# made again (about 20 s on 2 cores), so a stale file never outlives the code;
# whether the new bytes still match the committed llama.cpp reference is the
# test's check (tests/llamacpp_parity_test.cc compares the file's sha256).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

mix=${1:?usage: tools/requantize_default_model.sh MIX (e.g. Q4_K_M)}
mix=${mix^^}
src=$("$repo/tools/fetch_default_model.sh")
dest=${src%.Q4_1.gguf}.$mix.gguf
key=$(cat "$repo/tools/requantize_gguf.py" "$repo/tools/gguf_quants.py" | sha256sum)
key=${key%% *}

if [[ -s $dest && -s $dest.key && $(<"$dest.key") == "$key" ]]; then
  echo "$dest"
  exit 0
fi

python=$repo/.venv/bin/python
[[ -x $python ]] || python=python3
tmp=$(mktemp "${dest%/*}/.requantize.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$python" "$repo/tools/requantize_gguf.py" "$src" "$tmp" --mix "$mix" >&2
# The key is written after the file is in place: an interrupted run leaves no
# key, or the old one, and the next run makes the file again.
mv "$tmp" "$dest"
echo "$key" >"$dest.key"
echo "$dest"
