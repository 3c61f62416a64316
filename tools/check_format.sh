#!/usr/bin/env bash
# Checks that the C++ and CUDA sources are clang-format clean (.clang-format at
# the root). Exits 1 and names each file that is not; `--fix` reformats them.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(--dry-run --Werror)
[[ ${1:-} == --fix ]] && mode=(-i)

# Tracked and new (not ignored) files, so generated code in build/ stays out.
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
  '*.cc' '*.h' '*.cu' '*.cuh' '*.cpp' '*.hpp' | sort -u)
((${#files[@]} > 0)) || exit 0

bad=()
for f in "${files[@]}"; do
  [[ -f $f ]] || continue  # deleted in the work tree but still tracked
  clang-format "${mode[@]}" "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]} > 0)); then
  printf 'check_format: not clang-format clean (fix: tools/check_format.sh --fix):\n' >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files clean" >&2
