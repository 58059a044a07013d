#!/usr/bin/env bash
# Everything to check and time on a GPU machine, in order of importance, each step under its own
# time limit so that one slow step cannot starve the rest (about 6 minutes on an H200). Usually
# run from the repository root (OUT and RUNS are relative to where it is started):
#
#     bash runners/gpu_checks.sh                 # outputs under ./gpu_out, records under ./lra_runs
#     OUT=/some/dir STEPS="kernels tests" bash runners/gpu_checks.sh
#
# Steps (STEPS picks and orders them; default all):
#   env      GPU, driver, torch / triton versions, clocks
#   kernels  lra bench kernels: correctness on the GPU, then timings against SDPA and a
#            per-kernel profile (bench_kernels.json / .md)
#   tune     lra bench kernels --tune: forward and forward+backward per KernelConfig change
#   tests    the kernel tests (tests/test_mita_triton.py) with compiled kernels on the GPU
#   attention  lra bench attention on a reduced CUDA grid (1K..64K)
#   model    lra bench model (LRA Table 2 protocol) at 1K, 2K, 4K
#   sparse   top-k and MoBA on CUDA: their fast paths (torch, compiled FlexAttention) against the
#            references, forward and gradients (tests/test_fast_paths.py), then lra bench model at 4K
#            for full, topk and moba, every backend (bench_sparse.log). Targets: the fastest path of
#            topk and of moba at >= 1.0x full attention's steps/s with <= 1.5x its memory
#   model-compile  lra bench model under torch.compile(mode="reduce-overhead") (--compile; compiles once per
#            length and attention: minutes)
#   targets  shorthand for "env kernels tests model" with MODEL_ATTENTIONS=full,mita: every MiTA kernel
#            target in one call of about 7 minutes (launch counts, eager and CUDA-graph ratios to SDPA, device time against the
#            HBM floor, Text-model training speed-ups); see attention_zoo/mita/KERNELS.md
#   attention-full, model-full
#            the full default grids (attention 1K..1M, model 1K..16K) with --resume: each call
#            measures what the earlier ones left. Together they start no new measurement after
#            FULL_MINUTES (default 7) from the start of the script; a step that would get less than
#            MIN_STEP_MINUTES (default 0.5) is left for the next call. One call takes FULL_MINUTES
#            plus the cell in progress (at most 3 x --max-call-s: 1 min attention, 3 min model). Repeat
#                STEPS="attention-full model-full" bash runners/gpu_checks.sh
#            until the tables list no "not run" cells (bench_attention_full.log / bench_model_full.log)
# Logs, summaries and the efficiency records of the bench steps are packed into $OUT/gpu_checks.tgz
# after every step (so a killed run keeps what finished); the two markdown summaries are also copied
# to $OUT. The records accumulate in $RUNS (default lra_runs/, kept between calls on the same machine;
# to continue on a fresh machine, unpack the archive's lra_runs/ there first). Nothing is installed:
# the package runs from the source tree with the machine's torch and triton.
set -uo pipefail
# OUT and RUNS are relative to where the script is started; the steps run from the repository root.
OUT=${OUT:-gpu_out}
RUNS=${RUNS:-lra_runs}
mkdir -p "$OUT" "$RUNS"
OUT=$(cd "$OUT" && pwd)
RUNS=$(cd "$RUNS" && pwd)  # absolute: pack() changes directory twice
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
STEPS=${STEPS:-env kernels tune tests attention model}
if [ "$STEPS" = targets ]; then  # about 7.5 minutes at most: env 5 s, kernels 260, tests 90, model 90
  STEPS="env kernels tests model"
  MODEL_ATTENTIONS=${MODEL_ATTENTIONS:-full,mita}
  KERNELS_TIMEOUT=${KERNELS_TIMEOUT:-260}  # the CUDA graph replays and launch counts add ~20 s
  KERNELS_PROFILE=${KERNELS_PROFILE:-4096,65536}
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # everything worth keeping is packed into $OUT

step() { echo; echo "== $(date -u +%T) $*"; }
pack() {
  if tar czf "$OUT/gpu_checks.tgz.part" -C "$WORK" . -C "$(dirname "$RUNS")" "$(basename "$RUNS")"; then
    mv "$OUT/gpu_checks.tgz.part" "$OUT/gpu_checks.tgz"
  else
    echo "WARNING: packing $OUT/gpu_checks.tgz failed; the logs are in $WORK until the script ends"
  fi
  for f in bench_kernels.md tune.md; do [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/$f"; done
  return 0
}

for name in $STEPS; do
  case $name in
    env)
      step "environment"
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw \
        --format=csv 2>&1 | tee "$WORK/env.txt"
      $PY -c "import torch, triton, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'triton', triton.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$WORK/env.txt"
      ;;
    kernels)
      step "MiTA kernels: verification, timings against SDPA, per-kernel profile"
      timeout "${KERNELS_TIMEOUT:-230}" $PY -m runners.cli bench kernels --quiet --time-anyway \
        --budget-s "${KERNELS_BUDGET:-160}" --profile "${KERNELS_PROFILE:-4096,65536,262144}" \
        --out "$WORK/bench_kernels.json" --records "$RUNS" > "$WORK/bench_kernels.log" 2>&1
      echo "exit $?"; tail -c 3500 "$WORK/bench_kernels.log"
      ;;
    tune)
      step "MiTA kernels: KernelConfig alternatives"
      timeout "${TUNE_TIMEOUT:-140}" $PY -m runners.cli bench kernels --tune "${TUNE_LENGTHS:-4096,65536,262144}" \
        --budget-s "${TUNE_BUDGET:-100}" --out "$WORK/tune.json" > "$WORK/tune.log" 2>&1
      echo "exit $?"; tail -c 2500 "$WORK/tune.log"
      ;;
    tests)
      step "kernel tests with compiled kernels"
      LRA_TEST_DEVICE=cuda timeout "${TESTS_TIMEOUT:-90}" $PY -m pytest -q -p no:cacheprovider \
        -n "${TESTS_WORKERS:-12}" -m "slow or not slow" -k "not compile_for_hopper" tests/test_mita_triton.py \
        > "$WORK/gpu_tests.log" 2>&1
      echo "exit $?"; tail -n 15 "$WORK/gpu_tests.log"
      ;;
    attention)
      step "lra bench attention, reduced CUDA grid"
      timeout "${ATTENTION_TIMEOUT:-75}" $PY -m runners.cli bench attention --quiet --lengths "${ATTENTION_LENGTHS:-1K,4K,16K,64K}" \
        --time-budget 0.5 --max-call-s 1 --out "$RUNS" > "$WORK/bench_attention.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_attention.log"
      ;;
    model)
      step "lra bench model (LRA Table 2 protocol)"
      timeout "${MODEL_TIMEOUT:-90}" $PY -m runners.cli bench model --quiet --lengths "${MODEL_LENGTHS:-1K,2K,4K}" \
        ${MODEL_ATTENTIONS:+--attentions "$MODEL_ATTENTIONS"} \
        --warmup 2 --repeats 5 --max-call-s 2 --out "$RUNS" > "$WORK/bench_model.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_model.log"
      ;;
    model-compile)
      step "lra bench model under torch.compile(mode=reduce-overhead)"
      timeout "${MODEL_COMPILE_TIMEOUT:-300}" $PY -m runners.cli bench model --quiet --lengths "${MODEL_LENGTHS:-1K,2K,4K}" \
        --attentions "${MODEL_COMPILE_ATTENTIONS:-full,mita}" --compile --warmup 3 --repeats 5 --max-call-s 2 \
        --out "$RUNS" > "$WORK/bench_model_compile.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_model_compile.log"
      ;;
    sparse)
      step "top-k and MoBA paths on CUDA: tests, then lra bench model at 4K"
      LRA_TEST_DEVICE=cuda timeout "${SPARSE_TESTS_TIMEOUT:-120}" $PY -m pytest -q -p no:cacheprovider \
        -k cuda tests/test_fast_paths.py > "$WORK/sparse_tests.log" 2>&1
      echo "exit $?"; tail -n 15 "$WORK/sparse_tests.log"
      timeout "${SPARSE_TIMEOUT:-240}" $PY -m runners.cli bench model --quiet --lengths "${SPARSE_LENGTHS:-4K}" \
        --attentions full,topk,moba --warmup 2 --repeats 5 --max-call-s 5 --out "$RUNS" > "$WORK/bench_sparse.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_sparse.log"
      ;;
    attention-full|model-full)
      bench=${name%-full}
      # what is left of FULL_MINUTES since the script started (bash counts SECONDS from its start)
      minutes=$(awk "BEGIN { print ${FULL_MINUTES:-7} - $SECONDS / 60 }")
      if awk "BEGIN { exit !($minutes < ${MIN_STEP_MINUTES:-0.5}) }"; then
        step "lra bench $bench, full grid: skipped, FULL_MINUTES is used up (the next call continues)"
        continue
      fi
      minutes=$(awk "BEGIN { print ($minutes > 0.01 ? $minutes : 0.01) }")  # --max-minutes must be > 0
      step "lra bench $bench, full grid (--resume; new measurements start for $minutes more minutes)"
      # --max-minutes only stops new cells from starting; the timeout leaves room for the cell in
      # progress: a cold call, a warm-up call and a timed one of up to --max-call-s (20 s / 60 s).
      margin=$([ "$bench" = attention ] && echo 120 || echo 240)
      timeout "$(awk "BEGIN { print int($minutes * 60 + $margin) }")" $PY -m runners.cli bench "$bench" --quiet --resume \
        --max-minutes "$minutes" --out "$RUNS" > "$WORK/bench_${bench}_full.log" 2>&1
      echo "exit $?"; tail -c 2500 "$WORK/bench_${bench}_full.log"
      ;;
    *) echo "unknown step '$name' (steps: env kernels tune tests attention model model-compile sparse attention-full" \
         "model-full, or STEPS=targets)"; exit 2 ;;
  esac
  pack
done
step "done"
