#!/usr/bin/env bash
# Everything to check and time on a GPU machine, in order of importance, each step under its own
# time limit so that one slow step cannot starve the rest (about 6 minutes on an H200). Usually
# run from the repository root (OUT and RUNS are relative to where it is started):
#
#     bash scripts/gpu_checks.sh                 # outputs under ./gpu_out, records under ./lra_runs
#     OUT=/some/dir STEPS="kernels tests" bash scripts/gpu_checks.sh
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
#                STEPS="attention-full model-full" bash scripts/gpu_checks.sh
#            until the tables list no "not run" cells (bench_attention_full.log / bench_model_full.log)
#   lra-measure, lra-generated
#            the LRA-scale leaderboard: `lra suite --preset pytorch` on generated `lra` data for
#            ListOps (2K tokens), Pathfinder-32 and Path-X (16K), in that order (LRA_TASKS), over
#            every registered attention at its default parameters, LRA_STEPS_<TASK> optimizer steps
#            each (the same for every attention). Nothing survives between calls on fresh machines,
#            so the committed records in LRA_RECORDS (default results/measured/h200-lra-generated,
#            laid out like a suite's output) are copied into the suite's output (LRA_OUT, default
#            lra_generated_runs) first: the suite skips the finished runs (same configuration hash)
#            and the call continues where the last one stopped. No new run starts after
#            LRA_MINUTES (default 5) from the start of the script (`lra suite --max-minutes`); the
#            run in progress gets LRA_RUN_MINUTES (default 3.5) more, so one call takes about
#            LRA_MINUTES + LRA_RUN_MINUTES + 1 minutes. Runs that ran out of memory are recorded as
#            such (listed as OOM, LRA's FAIL) and left out of later calls; delete their folders to
#            retry them. The archive's lra-generated/ holds exactly what gets committed: each
#            finished run's result.json, config.json and log.txt (no checkpoints), leaderboard.md /
#            .csv, `lra compare` tables per task, `lra plot` figures, README.md (commands, budget,
#            machine, wall time of every call) and calls.md. Repeat, committing after each call,
#            until the leaderboard has no missing runs:
#                STEPS=lra-generated bash scripts/gpu_checks.sh
#                mkdir -p /tmp/x && tar xzf gpu_out/gpu_checks.tgz -C /tmp/x ./lra-generated \
#                  && rm -rf results/measured/h200-lra-generated/runs \
#                  && cp -R /tmp/x/lra-generated/. results/measured/h200-lra-generated/
#            (results/measured/README.md: the expected output, and how to read the tables).
#            lra-measure first: a short timed suite (LRA_PROBE_STEPS = 200 steps per run, into
#            LRA_PROBE_OUT, not committed) gives each attention's steps/s at the task's length and
#            the minutes its LRA_STEPS_<TASK> would take (lra_measure.md), and times the generators
#            on all cores; choose the budget from it (`STEPS="env lra-measure" ...`).
#            Budget and data (defaults; the published PyTorch-lineage protocol is 5000 steps of
#            batch 32 for ListOps and 62400 of batch 256 for Pathfinder and Path-X):
#              ListOps     LRA_STEPS_LISTOPS=5000, the published budget, on the full generated
#                          `lra` set (96K/2K/2K expressions, about 30 s on 16 cores per call)
#              Pathfinder  LRA_STEPS_PATHFINDER=5000 (8% of the published), on a smaller
#                          generated set, LRA_SET_PATHFINDER="data.n_train=10000 data.n_val=1000
#                          data.n_test=2000": the generator took 0.35-0.43 s per 32x32 image on
#                          one (shared) CPU core, so the 200K images of the LRA size would take
#                          far longer than a call even on 16 cores; check lra_measure.md's
#                          generator speed, since 13K images must leave time for the runs
#              Path-X      LRA_STEPS_PATHX=2000 on LRA_SET_PATHX="data.n_train=2000 data.n_val=250
#                          data.n_test=500" (1.6 s per 128x128 image on that core): every
#                          mechanism of the LRA paper failed it; this table says which fit at all
#            The data are generated on the GPU machine in every call that has runs of the task
#            left (deterministic: the same data on every call, whatever the number of cores).
#            LRA_PRESET (pytorch), LRA_GENERATOR (lra) and LRA_ATTENTIONS (default: every
#            registered attention) exist for the CPU tests and for other grids.
# Logs, summaries and the efficiency records of the bench steps are packed into $OUT/gpu_checks.tgz
# after every step (so a killed run keeps what finished); the markdown summaries (bench_kernels.md,
# tune.md, lra_measure.md, lra_leaderboard.md) are also copied to $OUT. The records accumulate in $RUNS (default lra_runs/, kept between calls on the same machine;
# to continue on a fresh machine, unpack the archive's lra_runs/ there first). Nothing is installed:
# the packages run from the source tree (`python cli.py` is the `lra` command, scripts/lra_generated.py
# its bookkeeping) with the machine's torch and triton.
set -uo pipefail
# OUT and RUNS are relative to where the script is started; the steps run from the repository root.
OUT=${OUT:-gpu_out}
RUNS=${RUNS:-lra_runs}
mkdir -p "$OUT" "$RUNS"
OUT=$(cd "$OUT" && pwd)
RUNS=$(cd "$RUNS" && pwd)  # absolute: pack() changes directory twice
LRA_OUT=${LRA_OUT:-lra_generated_runs}
LRA_PROBE_OUT=${LRA_PROBE_OUT:-lra_probe_runs}
case $LRA_OUT in /*) ;; *) LRA_OUT=$PWD/$LRA_OUT ;; esac  # relative to where the script is started,
case $LRA_PROBE_OUT in /*) ;; *) LRA_PROBE_OUT=$PWD/$LRA_PROBE_OUT ;; esac  # as OUT and RUNS
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout's packages, for scripts/lra_generated.py too
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
minutes_left() {  # what is left of $1 minutes since the script started (bash counts SECONDS from its start)
  awk "BEGIN { print $1 - $SECONDS / 60 }"
}

# The LRA-scale leaderboard (lra-measure, lra-generated): settings of each task's suite.
LRA_TASKS=${LRA_TASKS:-listops pathfinder pathx}
LRA_PRESET=${LRA_PRESET:-pytorch}
LRA_GENERATOR=${LRA_GENERATOR:-lra}
LRA_MINUTES=${LRA_MINUTES:-5}
LRA_RUN_MINUTES=${LRA_RUN_MINUTES:-3.5}
LRA_PROBE_STEPS=${LRA_PROBE_STEPS:-200}
LRA_RECORDS=${LRA_RECORDS:-results/measured/h200-lra-generated}  # relative to the repository root
lra_steps() {
  case $1 in
    listops) echo "${LRA_STEPS_LISTOPS:-5000}" ;;
    pathfinder) echo "${LRA_STEPS_PATHFINDER:-5000}" ;;
    pathx) echo "${LRA_STEPS_PATHX:-2000}" ;;
    *) echo "${LRA_STEPS:-5000}" ;;
  esac
}
lra_sets() {  # --set options of task $1: generated data and its sizes
  local sets
  case $1 in
    listops) sets=${LRA_SET_LISTOPS-} ;;
    pathfinder) sets=${LRA_SET_PATHFINDER-data.n_train=10000 data.n_val=1000 data.n_test=2000} ;;
    pathx) sets=${LRA_SET_PATHX-data.n_train=2000 data.n_val=250 data.n_test=500} ;;
    *) sets= ;;
  esac
  echo "--set data.source=generated --set data.generator=$LRA_GENERATOR"
  for s in $sets; do echo "--set $s"; done
}
lra_attentions() {  # every registered attention (or LRA_ATTENTIONS) but those that ran out of memory on task $1
  local all oom
  all=${LRA_ATTENTIONS:-$($PY -c "import attention_zoo; print(','.join(attention_zoo.names()))")}
  oom=$($PY scripts/lra_generated.py out-of-memory "$LRA_OUT" "$1")
  echo "$all" | tr ',' '\n' | grep -vxF -f <(echo "$oom" | tr ',' '\n' | grep .) | paste -sd, -
}
pack() {
  if tar czf "$OUT/gpu_checks.tgz.part" -C "$WORK" . -C "$(dirname "$RUNS")" "$(basename "$RUNS")"; then
    mv "$OUT/gpu_checks.tgz.part" "$OUT/gpu_checks.tgz"
  else
    echo "WARNING: packing $OUT/gpu_checks.tgz failed; the logs are in $WORK until the script ends"
  fi
  for f in bench_kernels.md tune.md lra_measure.md lra_leaderboard.md; do [ -f "$WORK/$f" ] && cp "$WORK/$f" "$OUT/$f"; done
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
      timeout "${KERNELS_TIMEOUT:-230}" $PY cli.py bench kernels --quiet --time-anyway \
        --budget-s "${KERNELS_BUDGET:-160}" --profile "${KERNELS_PROFILE:-4096,65536,262144}" \
        --out "$WORK/bench_kernels.json" --records "$RUNS" > "$WORK/bench_kernels.log" 2>&1
      echo "exit $?"; tail -c 3500 "$WORK/bench_kernels.log"
      ;;
    tune)
      step "MiTA kernels: KernelConfig alternatives"
      timeout "${TUNE_TIMEOUT:-140}" $PY cli.py bench kernels --tune "${TUNE_LENGTHS:-4096,65536,262144}" \
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
      timeout "${ATTENTION_TIMEOUT:-75}" $PY cli.py bench attention --quiet --lengths "${ATTENTION_LENGTHS:-1K,4K,16K,64K}" \
        --time-budget 0.5 --max-call-s 1 --out "$RUNS" > "$WORK/bench_attention.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_attention.log"
      ;;
    model)
      step "lra bench model (LRA Table 2 protocol)"
      timeout "${MODEL_TIMEOUT:-90}" $PY cli.py bench model --quiet --lengths "${MODEL_LENGTHS:-1K,2K,4K}" \
        ${MODEL_ATTENTIONS:+--attentions "$MODEL_ATTENTIONS"} \
        --warmup 2 --repeats 5 --max-call-s 2 --out "$RUNS" > "$WORK/bench_model.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_model.log"
      ;;
    model-compile)
      step "lra bench model under torch.compile(mode=reduce-overhead)"
      timeout "${MODEL_COMPILE_TIMEOUT:-300}" $PY cli.py bench model --quiet --lengths "${MODEL_LENGTHS:-1K,2K,4K}" \
        --attentions "${MODEL_COMPILE_ATTENTIONS:-full,mita}" --compile --warmup 3 --repeats 5 --max-call-s 2 \
        --out "$RUNS" > "$WORK/bench_model_compile.log" 2>&1
      echo "exit $?"; tail -c 2000 "$WORK/bench_model_compile.log"
      ;;
    sparse)
      step "top-k and MoBA paths on CUDA: tests, then lra bench model at 4K"
      LRA_TEST_DEVICE=cuda timeout "${SPARSE_TESTS_TIMEOUT:-120}" $PY -m pytest -q -p no:cacheprovider \
        -n 0 -k cuda tests/test_fast_paths.py > "$WORK/sparse_tests.log" 2>&1
      echo "exit $?"; tail -n 15 "$WORK/sparse_tests.log"
      timeout "${SPARSE_TIMEOUT:-240}" $PY cli.py bench model --quiet --lengths "${SPARSE_LENGTHS:-4K}" \
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
      timeout "$(awk "BEGIN { print int($minutes * 60 + $margin) }")" $PY cli.py bench "$bench" --quiet --resume \
        --max-minutes "$minutes" --out "$RUNS" > "$WORK/bench_${bench}_full.log" 2>&1
      echo "exit $?"; tail -c 2500 "$WORK/bench_${bench}_full.log"
      ;;
    lra-measure)
      step "LRA-scale leaderboard: steps/s per attention ($LRA_PROBE_STEPS steps per run) and generator speed"
      gen="$WORK/generator_speed"; rm -rf "$gen"
      for task in $LRA_TASKS; do
        images=$([ "$task" = pathx ] && echo "${LRA_MEASURE_IMAGES_PATHX:-160}" || echo "${LRA_MEASURE_IMAGES:-640}")
        [ "$task" = listops ] && images=${LRA_MEASURE_EXPRESSIONS:-8000}
        start=$SECONDS
        $PY cli.py data generate --task "$task" --generator "$LRA_GENERATOR" --n-train "$images" --n-val 0 \
          --n-test 0 --out "$gen/$task" > /dev/null 2>> "$WORK/lra_measure.log"
        echo "$task: generated $images examples in $((SECONDS - start)) s on $(nproc) cores" | tee -a "$WORK/lra_generator_speed.txt"
      done
      rm -rf "$gen"
      pairs=
      for task in $LRA_TASKS; do
        minutes=$(minutes_left "$LRA_MINUTES")
        if awk "BEGIN { exit !($minutes < ${MIN_STEP_MINUTES:-0.5}) }"; then
          echo "$task: skipped, LRA_MINUTES is used up"; continue
        fi
        minutes=$(awk "BEGIN { print ($minutes > 0.01 ? $minutes : 0.01) }")  # --max-minutes must be > 0
        pairs="$pairs $task=$(lra_steps "$task")"
        # shellcheck disable=SC2046  # lra_sets prints one option per word
        timeout "$(awk "BEGIN { print int($minutes * 60 + $LRA_RUN_MINUTES * 60 + 60) }")" $PY cli.py suite \
          --tasks "$task" --preset "$LRA_PRESET" --attentions "$(lra_attentions "$task")" $(lra_sets "$task") \
          --max-steps "$LRA_PROBE_STEPS" --set train.eval_every=$((LRA_PROBE_STEPS / 4 > 0 ? LRA_PROBE_STEPS / 4 : 1)) \
          --max-minutes "$minutes" --out "$LRA_PROBE_OUT" >> "$WORK/lra_measure.log" 2>&1
        echo "$task: suite exit $?"
      done
      # shellcheck disable=SC2086
      { echo "# Steps/s per attention, $LRA_PROBE_STEPS steps per run ($(date -u +%F), $(nvidia-smi --query-gpu=name \
          --format=csv,noheader 2>/dev/null | head -n1 || echo no GPU))"; echo;
        sed 's/^/- /' "$WORK/lra_generator_speed.txt"; echo;
        [ -n "$pairs" ] && $PY scripts/lra_generated.py probe-table "$LRA_PROBE_OUT" --steps $pairs --run-minutes "$LRA_RUN_MINUTES"
      } > "$WORK/lra_measure.md"
      cat "$WORK/lra_measure.md"
      ;;
    lra-generated)
      step "LRA-scale leaderboard: lra suite --preset $LRA_PRESET on generated $LRA_GENERATOR data ($LRA_TASKS)"
      keep="$WORK/lra-generated"
      mkdir -p "$keep"
      records=$LRA_RECORDS
      [ -d "$records/runs" ] && $PY scripts/lra_generated.py restore "$records" "$LRA_OUT"
      [ -f "$records/calls.md" ] && cp "$records/calls.md" "$keep/calls.md"
      commands=
      for task in $LRA_TASKS; do
        minutes=$(minutes_left "$LRA_MINUTES")
        if awk "BEGIN { exit !($minutes < ${MIN_STEP_MINUTES:-0.5}) }"; then
          echo "$task: skipped, LRA_MINUTES is used up (the next call continues)"; continue
        fi
        minutes=$(awk "BEGIN { print ($minutes > 0.01 ? $minutes : 0.01) }")
        attentions=$(lra_attentions "$task")
        if [ -z "$attentions" ]; then echo "$task: every attention ran out of memory"; continue; fi
        # shellcheck disable=SC2046
        args=(suite --tasks "$task" --preset "$LRA_PRESET" --attentions "$attentions" $(lra_sets "$task")
              --max-steps "$(lra_steps "$task")" --out "$LRA_OUT" --max-minutes "$minutes")
        commands="$commands"$'\n'"    lra ${args[*]}"
        echo "lra ${args[*]}"
        timeout "$(awk "BEGIN { print int($minutes * 60 + $LRA_RUN_MINUTES * 60 + 60) }")" $PY cli.py "${args[@]}" \
          > "$WORK/lra_generated_$task.log" 2>&1
        echo "$task: suite exit $?"; grep -E "^runs:|runs not started" "$WORK/lra_generated_$task.log"
      done
      $PY scripts/lra_generated.py collect "$LRA_OUT" "$keep"
      if ls "$keep"/runs/*/*/*/result.json > /dev/null 2>&1; then
        $PY cli.py leaderboard --runs "$keep" --csv "$keep/leaderboard.csv" --markdown "$keep/leaderboard.md" \
          > /dev/null 2>> "$WORK/lra_generated_tables.log"
        for task in $LRA_TASKS; do
          [ -d "$keep/runs/$task" ] && $PY cli.py compare --task "$task" --runs "$keep" \
            --markdown "$keep/compare_$task.md" --csv "$keep/compare_$task.csv" > /dev/null 2>> "$WORK/lra_generated_tables.log"
        done
        rm -rf "$keep/plots"
        $PY cli.py plot --runs "$keep" --out "$keep/plots" > /dev/null 2>> "$WORK/lra_generated_tables.log"
      fi
      machine=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)
      {
        echo "## $(date -u +'%F %T') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        echo
        echo "Machine: ${machine:-no GPU}; $(nproc) cores; $($PY -c "import torch; print('torch', torch.__version__)")."
        echo "Budget: LRA_MINUTES=$LRA_MINUTES, LRA_RUN_MINUTES=$LRA_RUN_MINUTES; wall time $SECONDS s."
        echo "Commands:"
        echo "${commands:-"    (none: LRA_MINUTES was used up)"}"
        echo
        for task in $LRA_TASKS; do
          [ -f "$WORK/lra_generated_$task.log" ] && echo "- $task: $(grep -E '^runs:' "$WORK/lra_generated_$task.log" | tail -n1)"
        done
        echo
      } >> "$keep/calls.md"
      {
        echo "# LRA-scale leaderboard on generated data"
        echo
        echo "Written by \`STEPS=lra-generated bash scripts/gpu_checks.sh\` (repeated, one call per few minutes"
        echo "of a GPU machine, committing this folder after each); \`lra leaderboard --runs <this folder>\`"
        echo "redraws the tables from the records. Preset \`$LRA_PRESET\`$([ "$LRA_PRESET" = pytorch ] && echo \
          " (the Nystromformer / Skyformer lineage: 2 layers, 64-d, 2 heads, mean pooling, AdamW 1e-4, linear schedule)"),"
        echo "generated \`$LRA_GENERATOR\` data, every attention at its registry defaults, one seed (0). Steps per run,"
        echo "the same for every attention:"
        echo
        for task in $LRA_TASKS; do
          echo "- $task: $(lra_steps "$task") steps; data: $(lra_sets "$task" | sed 's/--set //g' | paste -sd' ' -)"
        done
        echo
        echo "## Leaderboard"
        echo
        if [ -f "$keep/leaderboard.md" ]; then sed 's/^#/##/' "$keep/leaderboard.md"; else echo "no finished runs yet"; fi
        echo
        echo "## Runs that ran out of memory (LRA: FAIL)"
        echo
        $PY scripts/lra_generated.py oom "$keep"
        echo
        echo "## Calls"
        echo
        cat "$keep/calls.md"
      } > "$keep/README.md"
      [ -f "$keep/leaderboard.md" ] && cp "$keep/leaderboard.md" "$WORK/lra_leaderboard.md"
      echo "collected into lra-generated/ of the archive: $(find "$keep/runs" -name result.json 2>/dev/null | wc -l) runs"
      ;;
    *) echo "unknown step '$name' (steps: env kernels tune tests attention model model-compile sparse attention-full" \
         "model-full lra-measure lra-generated, or STEPS=targets)"; exit 2 ;;
  esac
  pack
done
step "done"
