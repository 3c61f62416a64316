#!/usr/bin/env bash
# tools/gpu_check.sh: the one script a GPU session runs on a bare GPU machine
# (an H200 with CUDA, CMake and ninja; no gRPC, no network), writing its
# results under $OUT: summary.json (every stage's status, time and figures)
# and gpu_check.log (everything printed). A short table ends the log.
#
#   tools/gpu_check.sh [stage...]      default: every stage, in this order
#     build        configure build-gpu-check/ (server and tests off, sm_90a only,
#                  CUDA warnings as errors) and build the plugin, relayoutd,
#                  bench_forward and the gpu_check programs with ninja -j$(nproc);
#                  then the ptxas resource check (kernels/cuda/ptxas_check.py)
#     ceilings     device-to-device copy GB/s, pinned host-to-device GB/s,
#                  cuBLASLt BF16 GEMM TFLOP/s (tools/gpu_check/ceilings.cu)
#     conformance  every op of the device ABI against the CPU device, full
#                  shapes (gpu_check_conformance); then compute-sanitizer
#                  memcheck and racecheck over it at small shapes, skipped with
#                  a note where the tool or the runtime does not allow it
#     golden       the shared models' greedy texts generated on the device, each
#                  container, native and preferred layouts, equal to the
#                  reference (and to the CPU's)
#     convert      an 8B-shaped checkpoint (BF16 safetensors and Q4_0 GGUF, random,
#                  tools/gen_checkpoint.py --fill bits, in /dev/shm) converted onto
#                  the device under a 256 MiB budget, native and auto: the ledger's
#                  peak against weights + budget, the driver's used memory against
#                  the ledger, the bytes against the CPU's conversion, load-to-ready
#                  against one read of the files (gpu_check_convert); and Q4_0
#                  loaded native then moved into auto in place (the live
#                  relayout of serving while converting), its bytes against
#                  the CPU's conversion
#     decode       tokens/s at batch 1, 8 and 32, BF16 and Q4_0, native and
#                  preferred layouts, CUDA graphs on and off (bench_forward
#                  --batch), against the weight-bytes / copy-bandwidth limit
#   tools/gpu_check.sh --pack-shared   (here, before a session) copies the shared
#                  models and references the golden stage reads into
#                  .gpu_check_shared/ (ignored by git), for the device tool's
#                  carry: it sends the repository, not ../shared
#
# A second run can redo some stages: `tools/gpu_check.sh decode` reuses the
# build and the generated checkpoints while the machine is warm, and merges
# into an existing $OUT/summary.json (other stages marked from_earlier_run).
#
# Each stage runs as its own process group under `timeout`: at most its cap
# (GPU_CHECK_CAP_<STAGE>, seconds) and never past the total deadline
# (GPU_CHECK_DEADLINE, default 450 s), so a slow stage is stopped and the
# stages after it still run; a stage with too little time left is not_run.
# Exit 0 when every stage asked for passed or was skipped with a reason.
#
# Environment:
#   OUT                   results folder (default: <repo>/gpu_check_out)
#   GPU_CHECK_DEVICE      cuda (default) or hostref: a dry run of every stage that
#                         can run on the host-reference plugin, at tiny shapes, on
#                         any machine (CI runs it: tools/gpu_check/gpu_check_test.py)
#   GPU_CHECK_BUILD_DIR   build folder (default <repo>/build-gpu-check)
#   GPU_CHECK_SHARED      the shared models (default: $RELAYOUT_SHARED_DIR,
#                         <repo>/../shared, <repo>/shared, <repo>/.gpu_check_shared)
#   GPU_CHECK_MODEL_DIR   where the generated checkpoints go (default
#                         /dev/shm/relayout_gpu_check; a temporary folder for hostref)
#   GPU_CHECK_SHAPE       8b (default on cuda) or tiny (default on hostref)
#   GPU_CHECK_PYTHON      a python3 with numpy (default <repo>/.venv/bin/python or python3)
#   GPU_CHECK_JOBS        build jobs (default nproc)
#   GPU_CHECK_DECODE_STEPS, GPU_CHECK_DECODE_PROMPT   decode steps and prompt (64, 32)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/tools/gpu_check.sh"
REPORT="$ROOT/tools/gpu_check/report.py"
ALL_STAGES=(build ceilings conformance golden convert decode)

DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT=${OUT:-$ROOT/gpu_check_out}
DEADLINE=${GPU_CHECK_DEADLINE:-450}
BUILD=${GPU_CHECK_BUILD_DIR:-$ROOT/build-gpu-check}
JOBS=${GPU_CHECK_JOBS:-$(nproc)}
if [[ -n ${GPU_CHECK_PYTHON:-} ]]; then
  PY=$GPU_CHECK_PYTHON
elif [[ -x $ROOT/.venv/bin/python ]]; then
  PY=$ROOT/.venv/bin/python
else
  PY=python3
fi
if [[ $DEVICE == hostref ]]; then
  SHAPE=${GPU_CHECK_SHAPE:-tiny}
else
  SHAPE=${GPU_CHECK_SHAPE:-8b}
fi
DECODE_STEPS=${GPU_CHECK_DECODE_STEPS:-64}
DECODE_PROMPT=${GPU_CHECK_DECODE_PROMPT:-32}
BUDGET=256MiB
RESERVE=8  # seconds kept for the summary after the last stage

# Stage caps, seconds (the deadline may cut them shorter).
declare -A CAP=([build]=300 [ceilings]=60 [conformance]=180 [golden]=90 [convert]=180
                [decode]=180)
for s in "${ALL_STAGES[@]}"; do
  v=GPU_CHECK_CAP_${s^^}
  [[ -n ${!v:-} ]] && CAP[$s]=${!v}
done

usage() {
  sed -n '2,/^set -uo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---- The shared models ------------------------------------------------------

find_shared() {
  local d
  for d in "${GPU_CHECK_SHARED:-}" "${RELAYOUT_SHARED_DIR:-}" "$ROOT/../shared" "$ROOT/shared" \
           "$ROOT/.gpu_check_shared"; do
    if [[ -n $d && -d $d/models && -d $d/reference ]]; then
      (cd "$d" && pwd)
      return 0
    fi
  done
  return 1
}

# The golden cases of tests/generate_test.cc: model, prompt, max tokens, reference.
GOLDEN_CASES=(
  "stories260K|Once upon a time|60|greedy_once_upon_a_time_n64.txt"
  "stories260K||256|greedy_noprompt_n256.txt"
  "llama2xs260K|Once upon a time|60|greedy_once_upon_a_time_n64.txt"
  "llama2xs260K||256|greedy_noprompt_n256.txt"
  "aidreams260K|I dreamed|58|greedy_i_dreamed_n64.txt"
  "aidreams260K||128|greedy_noprompt_n128.txt"
)

pack_shared() {
  local src dst=$ROOT/.gpu_check_shared m f
  src=$(GPU_CHECK_SHARED=${GPU_CHECK_SHARED:-} find_shared) || {
    echo "gpu_check: no shared models found (set GPU_CHECK_SHARED)" >&2
    exit 1
  }
  [[ $src == "$dst" ]] && { echo "$dst"; exit 0; }
  rm -rf "$dst"
  for m in stories260K llama2xs260K aidreams260K; do
    mkdir -p "$dst/models/$m" "$dst/reference/$m"
    for f in config.json model.safetensors model.gguf tokenizer.model tok512.bin; do
      [[ -f $src/models/$m/$f ]] && cp "$src/models/$m/$f" "$dst/models/$m/"
    done
    cp "$src/reference/$m/"greedy_*.txt "$dst/reference/$m/"
  done
  if [[ -d $ROOT/.git ]]; then
    mkdir -p "$ROOT/.git/info"
    grep -qx '/.gpu_check_shared/' "$ROOT/.git/info/exclude" 2>/dev/null ||
      echo '/.gpu_check_shared/' >>"$ROOT/.git/info/exclude"
  fi
  echo "gpu_check: copied $(du -sh "$dst" | cut -f1) of models and references to $dst;" \
       "name .gpu_check_shared in the device tool's carry" >&2
  echo "$dst"
  exit 0
}

# ---- The generated checkpoints ------------------------------------------------

# Shape of the generated checkpoints: gen_checkpoint.py flags, and the
# embedding table's element count (for the bytes a decode step streams).
shape_flags() {
  case $SHAPE in
    8b) echo "--preset 8b" ;;
    tiny) echo "--hidden 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 --vocab 1024 --no-tie" ;;
    *) echo "gpu_check: GPU_CHECK_SHAPE $SHAPE: 8b or tiny" >&2; return 1 ;;
  esac
}
embedding_elems() {
  case $SHAPE in
    8b) echo $((128256 * 4096)) ;;
    tiny) echo $((1024 * 256)) ;;
  esac
}

model_dir() {
  if [[ -n ${GPU_CHECK_MODEL_DIR:-} ]]; then
    echo "$GPU_CHECK_MODEL_DIR"
  elif [[ $DEVICE == hostref ]]; then
    echo "$WORK/models"
  else
    # /dev/shm when it holds ~21 GB more, else the disk beside the build.
    local avail
    avail=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
    if [[ -n $avail && $avail -gt $((23 * 1024 * 1024)) ]] || [[ -f /dev/shm/relayout_gpu_check/.stamp ]]; then
      echo /dev/shm/relayout_gpu_check
    else
      echo "$BUILD/models"
    fi
  fi
}

# Generates both checkpoints (in parallel) unless the stamp says they exist.
generate_checkpoints() {
  local dir flags stamp start rc1 rc2
  dir=$(model_dir)
  flags=$(shape_flags) || return 1
  stamp="$SHAPE fill=bits seed=1 $flags"
  if [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$stamp" ]]; then
    log "checkpoints: reusing $dir"
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  start=$(now)
  log "checkpoints: generating $SHAPE BF16 safetensors and Q4_0 GGUF into $dir"
  # shellcheck disable=SC2086
  "$PY" "$ROOT/tools/gen_checkpoint.py" --out "$dir/bf16" --dtype BF16 --fill bits --seed 1 \
    $flags &
  local p1=$!
  # shellcheck disable=SC2086
  "$PY" "$ROOT/tools/gen_checkpoint.py" --out "$dir/q4_0.gguf" --format gguf --dtype Q4_0 \
    --fill bits --seed 1 $flags &
  local p2=$!
  wait $p1; rc1=$?
  wait $p2; rc2=$?
  if ((rc1 != 0 || rc2 != 0)); then
    log "checkpoints: generation failed ($rc1, $rc2)"
    return 1
  fi
  echo "$stamp" >"$dir/.stamp"
  printf '{"seconds": %s, "bytes": %s, "dir": "%s"}\n' "$(elapsed "$start")" \
    "$(du -sb "$dir" | cut -f1)" "$dir" >"$WORK/generate.json"
  log "checkpoints: done in $(elapsed "$start") s"
}

# Waits for the background generation (or runs it when none was started).
await_checkpoints() {
  if [[ -f $WORK/gen.pid ]]; then
    while [[ ! -f $WORK/gen.rc ]]; do sleep 0.5; done
    return "$(cat "$WORK/gen.rc")"
  fi
  generate_checkpoints
}

# ---- Stages (each runs in its own process: tools/gpu_check.sh --stage NAME) ----

# Seconds left to this stage (its deadline from the parent), minus `margin`.
stage_left() {
  awk -v d="$STAGE_DEADLINE" -v n="$(now)" -v m="${1:-2}" 'BEGIN { printf "%d", d - n - m }'
}

# The stage's result, for the parent (DATA: the stage's folder, from run_stage).
status() { echo "$1" >"${DATA:?}/status"; [[ -n ${2:-} ]] && echo "$2" >"$DATA/note"; }

need() {
  local f
  for f in "$@"; do
    if [[ ! -x $f && ! -f $f ]]; then
      status error "missing $f (run the build stage)"
      return 1
    fi
  done
}

stage_build() {
  local cuda=ON targets=(relayoutd bench_forward gpu_check_conformance gpu_check_convert)
  if [[ $DEVICE == hostref ]]; then
    cuda=OFF
    targets+=(relayout_hostref)
  else
    targets+=(relayout_cuda gpu_check_ceilings)
  fi
  log "build: cmake in $BUILD (cuda $cuda, sm_90a), ninja -j$JOBS ${targets[*]}"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRELAYOUT_BUILD_SERVER=OFF -DRELAYOUT_BUILD_TESTS=OFF -DRELAYOUT_SANITIZE_TWIN=OFF \
    -DRELAYOUT_TSAN_TWIN=OFF -DRELAYOUT_CUDA=$cuda -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DRELAYOUT_WERROR=OFF -DRELAYOUT_CUDA_WERROR=ON || { status fail "cmake failed"; return; }
  ninja -C "$BUILD" -j"$JOBS" "${targets[@]}" || { status fail "ninja failed"; return; }
  if [[ $DEVICE == hostref ]]; then
    status pass "ptxas check: needs nvcc (cuda device only)"
    return
  fi
  local nvcc std rc
  nvcc=$(grep -E '^CMAKE_CUDA_COMPILER:' "$BUILD/CMakeCache.txt" | cut -d= -f2)
  # The plugin's C++ standard, as the build compiled plugin.cu.
  std=$(python3 -c 'import json, re, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("plugin.cu"):
        m = re.search(r"-std=c\+\+(\d+)", e.get("command", " ".join(e.get("arguments", []))))
        print(m.group(1) if m else "")
        break' "$BUILD/compile_commands.json" 2>/dev/null)
  log "build: ptxas resource check, sm_90a"
  python3 "$ROOT/kernels/cuda/ptxas_check.py" --nvcc "$nvcc" --root "$ROOT" --arch 90a \
    --std "${std:-20}" --flag=-Xcompiler=-Wall,-Wextra,-Wno-unknown-pragmas >"$WORK/ptxas.txt" 2>&1
  rc=$?
  tail -n 30 "$WORK/ptxas.txt"
  python3 - "$WORK/ptxas.txt" "$rc" >"$DATA/ptxas.json" <<'EOF'
import json, sys
text = open(sys.argv[1]).read().splitlines()
rc = int(sys.argv[2])
fails = [l.strip() for l in text if l.startswith("  ")]
print(json.dumps({"status": "pass" if rc == 0 else "fail", "rc": rc, "failures": fails[:40],
                  "summary": text[-1] if text else ""}))
EOF
  if ((rc == 0)); then status pass; else status fail "ptxas: spills, stack frames or an uncompiled kernel"; fi
}

stage_ceilings() {
  if [[ $DEVICE != cuda ]]; then
    status skipped "needs a CUDA device"
    return
  fi
  local bin=$BUILD/tools/gpu_check/gpu_check_ceilings
  need "$bin" || return
  if "$bin" --json "$DATA/ceilings.json"; then status pass; else status error "gpu_check_ceilings failed"; fi
}

sanitizer() {  # tool
  local tool=$1 san out rc left
  san=$(command -v compute-sanitizer || true)
  [[ -z $san && -x /usr/local/cuda/bin/compute-sanitizer ]] && san=/usr/local/cuda/bin/compute-sanitizer
  if [[ $DEVICE != cuda ]]; then
    printf '{"status": "skipped", "note": "runs on the CUDA device only"}\n' >"$DATA/$tool.json"
    return 0
  fi
  if [[ -z $san ]]; then
    printf '{"status": "skipped", "note": "compute-sanitizer not found"}\n' >"$DATA/$tool.json"
    return 0
  fi
  left=$(stage_left 3)
  if ((left < 20)); then
    printf '{"status": "skipped", "note": "too little time left (%ss)"}\n' "$left" >"$DATA/$tool.json"
    return 0
  fi
  ((left > 60)) && left=60
  out=$WORK/$tool.txt
  log "conformance: compute-sanitizer --tool $tool (small shapes, at most ${left}s)"
  timeout -k 5 "$left" "$san" --tool "$tool" --error-exitcode 99 --print-limit 20 \
    "$BUILD/tools/gpu_check/gpu_check_conformance" --device cuda --scale small \
    --threads "$JOBS" >"$out" 2>&1
  rc=$?
  tail -n 12 "$out"
  python3 - "$out" "$rc" "$tool" >"$DATA/$tool.json" <<'EOF'
import json, re, sys
text = open(sys.argv[1], errors="replace").read()
rc, tool = int(sys.argv[2]), sys.argv[3]
lines = text.splitlines()
summary = [l for l in lines if "ERROR SUMMARY" in l or "RACECHECK SUMMARY" in l]
if re.search(r"Device not supported|unsupported|error 999|Target application terminated before", text) and rc not in (0, 1, 99):
    r = {"status": "skipped", "note": "the runtime refused compute-sanitizer"}
elif rc in (124, 137):
    r = {"status": "timeout", "note": "stopped at its time limit"}
elif rc == 99:
    r = {"status": "fail", "note": (summary or ["errors found"])[-1].strip()}
elif rc in (0, 1):  # 1: the conformance program's own failures (counted by that stage)
    r = {"status": "pass", "note": (summary or [""])[-1].strip()}
else:
    r = {"status": "error", "note": f"exit {rc}"}
r["tail"] = lines[-15:]
print(json.dumps(r))
EOF
}

stage_conformance() {
  local bin=$BUILD/tools/gpu_check/gpu_check_conformance scale=small rc
  need "$bin" || return
  [[ $DEVICE == cuda ]] && scale=full
  "$bin" --device "$DEVICE" --scale "$scale" --threads "$JOBS" --json "$DATA/conformance.json" \
    >"$WORK/conformance.txt" 2>&1
  rc=$?
  grep -v '^PASS' "$WORK/conformance.txt" | tail -n 60
  echo "($(grep -c '^PASS' "$WORK/conformance.txt") PASS lines in the full log)"
  if [[ $DEVICE == cuda ]] && (($(stage_left 5) > 30)); then
    # The plugin multiplies more than 8 tokens of quantized weights through a
    # BF16 GEMM; its Q8 GEMV (the ABI's numerics) at 33 tokens too.
    log "conformance: quantized matmuls on the Q8 GEMV path at every token count"
    RELAYOUT_CUDA_QUANT_GEMV_MAX_TOKENS=64 timeout -k 5 "$(stage_left 5)" "$bin" --device cuda \
      --scale "$scale" --threads "$JOBS" --only "matmul Q" --json "$DATA/conformance_q8_gemv.json" \
      >"$WORK/conformance_q8.txt" 2>&1
    local rc_q8=$?
    grep -v '^PASS' "$WORK/conformance_q8.txt" | tail -n 20
    ((rc_q8 != 0 && rc == 0)) && rc=$rc_q8
  fi
  sanitizer memcheck
  sanitizer racecheck
  local bad
  bad=$(python3 - "$DATA" <<'EOF'
import json, os, sys
bad = []
for tool in ("memcheck", "racecheck"):
    p = os.path.join(sys.argv[1], tool + ".json")
    if os.path.exists(p) and json.load(open(p)).get("status") in ("fail", "error", "timeout"):
        bad.append(tool)
print(" ".join(bad))
EOF
)
  if ((rc == 0)) && [[ -z $bad ]]; then
    status pass
  elif ((rc == 0 || rc == 1)); then
    status fail "$( ((rc == 1)) && echo "ops differ from the CPU" ) ${bad:+sanitizer: $bad}"
  else
    status error "gpu_check_conformance exit $rc"
  fi
}

stage_golden() {
  local relayoutd=$BUILD/server/relayoutd shared c model prompt max ref file layout cpu_ok
  need "$relayoutd" || return
  if ! shared=$(find_shared); then
    status skipped "no shared models (GPU_CHECK_SHARED, ../shared, or .gpu_check_shared from --pack-shared)"
    return
  fi
  local cases=$DATA/cases.jsonl fails=0 n=0
  : >"$cases"
  for c in "${GOLDEN_CASES[@]}"; do
    IFS='|' read -r model prompt max ref <<<"$c"
    for file in model.safetensors model.gguf; do
      [[ -f $shared/models/$model/$file ]] || continue
      local want=$shared/reference/$model/$ref
      # The CPU once per file (native): the binary built here agrees with CI.
      "$relayoutd" generate --model "$shared/models/$model/$file" --prompt "$prompt" \
        --max-tokens "$max" --temperature 0 --layout native --threads 4 --device cpu \
        >"$WORK/golden.cpu" 2>"$WORK/golden.err"
      cmp -s "$WORK/golden.cpu" "$want" && cpu_ok=true || cpu_ok=false
      for layout in native auto; do
        n=$((n + 1))
        local name="$model/$file/$layout/\"$prompt\"" st=pass diff=-1
        if ! "$relayoutd" generate --model "$shared/models/$model/$file" --prompt "$prompt" \
          --max-tokens "$max" --temperature 0 --layout "$layout" --threads 4 --device "$DEVICE" \
          >"$WORK/golden.out" 2>"$WORK/golden.err"; then
          st=error
          tail -n 3 "$WORK/golden.err"
        elif ! cmp -s "$WORK/golden.out" "$want"; then
          st=fail
          diff=$(cmp "$WORK/golden.out" "$want" 2>/dev/null | awk '{ print $5 + 0 }')
          [[ -z $diff ]] && diff=0
        fi
        [[ $st != pass ]] && fails=$((fails + 1))
        log "golden: $st $name"
        printf '{"case": "%s", "status": "%s", "first_differing_byte": %s, "cpu_equal": %s}\n' \
          "${name//\"/\\\"}" "$st" "$diff" "$cpu_ok" >>"$cases"
      done
    done
  done
  if ((n == 0)); then
    status skipped "no model files under $shared/models"
  elif ((fails == 0)); then
    status pass "$n texts equal"
  else
    status fail "$fails of $n texts differ"
  fi
}

stage_convert() {
  local bin=$BUILD/tools/gpu_check/gpu_check_convert dir label model layout rc worst=pass
  need "$bin" || return
  if ! await_checkpoints; then status error "checkpoint generation failed"; return; fi
  [[ -f $WORK/generate.json ]] && cp "$WORK/generate.json" "$DATA/generate.json"
  dir=$(model_dir)
  : >"$DATA/runs.jsonl"
  local live
  for label in bf16-native bf16-auto q4_0-native q4_0-auto q4_0-live; do
    case $label in
      bf16-*) model=$dir/bf16 ;;
      q4_0-*) model=$dir/q4_0.gguf ;;
    esac
    layout=${label#*-}
    live=()
    # Loaded native, then moved into auto in place while the model is up
    # (serving while converting, docs/HOT_RELAYOUT.md).
    [[ $layout == live ]] && layout=native && live=(--live-to auto)
    if (($(stage_left 2) < 10)); then
      log "convert: no time left for $label"
      worst=timeout
      break
    fi
    log "convert: $label ($model, budget $BUDGET)"
    timeout -k 5 "$(stage_left 2)" "$bin" --model "$model" --device "$DEVICE" --layout "$layout" \
      "${live[@]}" --budget "$BUDGET" >"$WORK/convert.out" 2>"$WORK/convert.err"
    rc=$?
    cat "$WORK/convert.out"
    tail -n 5 "$WORK/convert.err"
    "$PY" "$REPORT" annotate "label=$label" "exit=$rc" <"$WORK/convert.out" >>"$DATA/runs.jsonl"
    if ((rc == 1)); then
      worst=fail
    elif ((rc != 0)) && [[ $worst == pass ]]; then
      worst=error
    fi
  done
  case $worst in
    pass) status pass ;;
    fail) status fail "a bound, memory or checksum check did not hold" ;;
    timeout) status timeout "stopped at its time limit; the runs before it are kept" ;;
    *) status error "gpu_check_convert failed" ;;
  esac
}

stage_decode() {
  local bin=$BUILD/bench/bench_forward dir graphs dtype layout model emb rc worst=pass
  need "$bin" || return
  if ! await_checkpoints; then status error "checkpoint generation failed"; return; fi
  dir=$(model_dir)
  : >"$DATA/runs.jsonl"
  for graphs in on off; do
    for run in BF16:auto Q4_0:auto BF16:native Q4_0:native; do
      dtype=${run%%:*}
      layout=${run#*:}
      if [[ $dtype == BF16 ]]; then
        model=$dir/bf16
        emb=$(($(embedding_elems) * 2))
      else
        model=$dir/q4_0.gguf
        emb=$(($(embedding_elems) * 18 / 32))
      fi
      if (($(stage_left 2) < 10)); then
        log "decode: no time left for $dtype $layout graphs $graphs"
        worst=timeout
        break 2
      fi
      log "decode: $dtype $layout, graphs $graphs, batch 1,8,32"
      RELAYOUT_CUDA_GRAPHS=$([[ $graphs == on ]] && echo 1 || echo 0) \
        timeout -k 5 "$(stage_left 2)" "$bin" --model "$model" --device "$DEVICE" \
        --layout "$layout" --budget "$BUDGET" --batch 1,8,32 --prompt "$DECODE_PROMPT" \
        --decode "$DECODE_STEPS" --reps 2 >"$WORK/decode.out" 2>"$WORK/decode.err"
      rc=$?
      cat "$WORK/decode.out"
      tail -n 5 "$WORK/decode.err"
      "$PY" "$REPORT" annotate "dtype=$dtype" "layout=$layout" "graphs=$graphs" \
        "embedding_bytes=$emb" <"$WORK/decode.out" >>"$DATA/runs.jsonl"
      if ((rc == 124 || rc == 137)); then
        worst=timeout
        break 2
      elif ((rc != 0)); then
        worst=error
      fi
    done
  done
  case $worst in
    pass) status pass ;;
    timeout) status timeout "stopped at its time limit; the runs before it are kept" ;;
    *) status error "bench_forward failed" ;;
  esac
}

# ---- The parent: stages in order, under the deadline ------------------------

run_stage() {  # name
  local name=$1 left cap limit start rc st note args=()
  left=$(awk -v s="$START" -v n="$(now)" -v d="$DEADLINE" -v r="$RESERVE" \
    'BEGIN { printf "%d", d - (n - s) - r }')
  cap=${CAP[$name]}
  limit=$((left < cap ? left : cap))
  local data=$WORK/data/$name
  rm -rf "$data"
  mkdir -p "$data"
  if ((limit < 5)); then
    log "$name: not run: ${left}s left of the ${DEADLINE}s deadline"
    "$PY" "$REPORT" stage --work "$WORK" --name "$name" --status not_run \
      --note "the deadline left ${left}s"
    return
  fi
  log "== $name (at most ${limit}s)"
  start=$(now)
  STAGE_DEADLINE=$(awk -v n="$start" -v l="$limit" 'BEGIN { printf "%.2f", n + l }') DATA=$data \
    timeout -k 10 "$limit" bash "$SELF" --stage "$name"
  rc=$?
  local seconds
  seconds=$(elapsed "$start")
  if ((rc == 124 || rc == 137)); then
    st=timeout
    note="stopped at ${limit}s"
  elif [[ -f $data/status ]]; then
    st=$(cat "$data/status")
    note=$(cat "$data/note" 2>/dev/null || true)
  else
    st=error
    note="exit $rc without a result"
  fi
  local f
  for f in "$data"/*.json "$data"/*.jsonl; do
    [[ -f $f ]] || continue
    f=${f##*/}
    args+=(--data "${f%.*}=$data/$f")
  done
  "$PY" "$REPORT" stage --work "$WORK" --name "$name" --status "$st" --seconds "$seconds" \
    --note "$note" "${args[@]}"
  log "$name: $st in ${seconds}s${note:+ ($note)}"
  write_summary
}

write_meta() {
  local gpu="none" driver="" nvcc_v="" cmake_v commit
  if command -v nvidia-smi >/dev/null 2>&1; then
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1)
  fi
  local nvcc_bin=nvcc
  command -v nvcc >/dev/null || nvcc_bin=/usr/local/cuda/bin/nvcc
  nvcc_v=$("$nvcc_bin" --version 2>/dev/null | grep -o 'release [0-9.]*' | head -n1)
  cmake_v=$(cmake --version 2>/dev/null | head -n1)
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  python3 - "$WORK/meta.json" <<EOF
import json, os, sys
json.dump({"device": "$DEVICE", "gpu": "$gpu" or "none", "driver": "$driver",
           "nvcc": "$nvcc_v", "cmake": "$cmake_v", "commit": "$commit",
           "cpus": os.cpu_count(), "shape": "$SHAPE", "deadline_seconds": $DEADLINE,
           "stages_asked": "${STAGES[*]}".split(), "started": "$(date -u +%FT%TZ)",
           "total_seconds": None}, open(sys.argv[1], "w"))
EOF
}

write_summary() {
  python3 - "$WORK/meta.json" "$(elapsed "$START")" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["total_seconds"] = float(sys.argv[2])
json.dump(m, open(sys.argv[1], "w"))
EOF
  "$PY" "$REPORT" summary --work "$WORK" --out "$OUT/summary.json" --meta "$WORK/meta.json"
}

# ---- Entry ------------------------------------------------------------------

if [[ ${1:-} == --stage ]]; then  # a stage's own process (from run_stage)
  [[ -n ${RELAYOUT_PLUGIN_DIR:-} ]] || export RELAYOUT_PLUGIN_DIR=$BUILD/lib/relayoutd
  "stage_$2"
  exit 0
fi
case ${1:-} in
  -h | --help) usage ;;
  --pack-shared) pack_shared ;;
esac

STAGES=("$@")
((${#STAGES[@]} > 0)) || STAGES=("${ALL_STAGES[@]}")
for s in "${STAGES[@]}"; do
  [[ " ${ALL_STAGES[*]} " == *" $s "* ]] || { echo "gpu_check: unknown stage $s" >&2; usage; }
done
[[ $DEVICE == cuda || $DEVICE == hostref ]] || { echo "gpu_check: GPU_CHECK_DEVICE cuda or hostref" >&2; exit 2; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export ROOT SELF REPORT DEVICE OUT BUILD JOBS PY SHAPE DECODE_STEPS DECODE_PROMPT BUDGET WORK
export GPU_CHECK_MODEL_DIR=${GPU_CHECK_MODEL_DIR:-}
export RELAYOUT_PLUGIN_DIR=${RELAYOUT_PLUGIN_DIR:-$BUILD/lib/relayoutd}
GEN_PID=""
TEE_PID=""
cleanup() {
  [[ -n $GEN_PID ]] && kill "$GEN_PID" 2>/dev/null
  rm -rf "$WORK"
  if [[ -n $TEE_PID ]]; then  # let the log's writer finish its last lines
    exec 1>&- 2>&-
    wait "$TEE_PID" 2>/dev/null
  fi
}
trap cleanup EXIT
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
TEE_PID=$!

START=$(now)
log "device $DEVICE, stages: ${STAGES[*]}, deadline ${DEADLINE}s, build $BUILD, out $OUT"
write_meta

wants() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }
start_generation() {  # in the background, while the GPU-bound stages run
  if [[ -z $GEN_PID ]] && { wants convert || wants decode; }; then
    (
      trap 'kill $(jobs -p) 2>/dev/null; exit 143' TERM
      generate_checkpoints
      echo $? >"$WORK/gen.rc"
    ) &
    GEN_PID=$!
    echo "$GEN_PID" >"$WORK/gen.pid"
  fi
}

for s in "${STAGES[@]}"; do
  # The build needs every core; the checkpoints are written after it.
  [[ $s != build ]] && start_generation
  run_stage "$s"
done
if [[ -n $GEN_PID ]]; then
  # Generation outlived the stages that wanted it (they timed out): stop it.
  kill "$GEN_PID" 2>/dev/null
  wait "$GEN_PID" 2>/dev/null
  GEN_PID=""
fi
write_summary
"$PY" "$REPORT" table "$OUT/summary.json"
python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] else 1)' \
  "$OUT/summary.json"
