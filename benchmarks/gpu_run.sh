#!/usr/bin/env bash
# One GPU session, in this order, every output under one folder named with the device:
#   1. the CUDA tests (fast path on the GPU against the reference path), pytest log;
#   2. the GPU optimiser benchmark (benchmarks/bench_optim_gpu.py: MirrorDescent against
#      SGD(foreach=True) and SGD(fused=True) on the ResNet-18 and ResNet-50 lists, every potential);
#   3. `python -m mirrorlib book --scale paper --device cuda`, one chapter at a time (in _toc.yml's
#      order), each timed, without the HTML build; chapter_times.csv holds name, status (the
#      exit status, 124 if the time ran out, or "skipped" once the budget is spent), seconds.
#      The whole paper-scale book does not fit in one short GPU session: run the chapters that
#      are left in the next one with --chapters.
# The paper-scale results (_build/results/paper) and the book's own timing table are copied in.
#
#   benchmarks/gpu_run.sh [BASE] [--dry-run] [--chapters "a b"] [--budget-s S]
#
# BASE defaults to $OUT (the device machine's output folder), else benchmarks/results. The folder
# is BASE/<date>-<device>, e.g. 2026-12-05-nvidia-h100-80gb-hbm3. --budget-s (default 780):
# no step starts after that many seconds, and each runs under `timeout` for what is left
# (a killed chapter is recorded with status 124). --dry-run checks everything here that needs no
# GPU (arguments, chapter list, folder, the benchmark on the CPU for one round) and prints the
# commands it would run.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
BASE=${OUT:-benchmarks/results}
DRY_RUN=0
CHAPTERS=""
BUDGET_S=780
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --chapters) CHAPTERS="$2"; shift ;;
    --budget-s) BUDGET_S="$2"; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) BASE="$1" ;;
  esac
  shift
done
case "$BUDGET_S" in ''|*[!0-9]*) echo "--budget-s needs whole seconds, got '$BUDGET_S'" >&2; exit 2 ;; esac

start=$(date +%s)
device=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')") \
  || { echo "cannot import torch with $PYTHON (set PYTHON=...)" >&2; exit 2; }
if [ "$device" = cpu ] && [ "$DRY_RUN" = 0 ]; then
  echo "no CUDA device visible to torch: nothing to run (use --dry-run to check the script)" >&2
  exit 2
fi
slug=$(printf '%s' "$device" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9' '-' | sed 's/--*/-/g; s/^-//; s/-$//')
dest="$BASE/$(date -u +%F)-$slug"
mkdir -p "$dest"
known=$(sed -n 's|^ *- file: book/\(.*\)$|\1|p' _toc.yml)
CHAPTERS=${CHAPTERS:-$known}
for name in $CHAPTERS; do
  if ! printf '%s\n' $known | grep -qx "$name"; then
    echo "unknown chapter '$name'; _toc.yml lists: $(echo $known)" >&2
    exit 2
  fi
done
{
  echo "device: $device"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "started: $(date -u +%FT%TZ)"
  echo "budget: $BUDGET_S s; chapters: $(echo $CHAPTERS)"
} | tee "$dest/session.txt"

left() { echo $(( BUDGET_S - ($(date +%s) - start) )); }

# step NAME LOG COMMAND...: run COMMAND under the time left, output to LOG and the terminal.
step() {
  local name=$1 log=$2; shift 2
  local remaining; remaining=$(left)
  if [ "$DRY_RUN" = 1 ]; then
    echo "[dry-run] $name: timeout ${remaining}s $* > $log"
    return 0
  fi
  if [ "$remaining" -le 10 ]; then
    echo "$name: skipped, budget spent" | tee -a "$dest/session.txt"
    LAST_STATUS=skipped
    return 1
  fi
  echo "== $name ($remaining s left)"
  local t0; t0=$(date +%s.%N)
  timeout "$remaining" "$@" > >(tee "$log") 2>&1
  local status=$?
  local seconds; seconds=$("$PYTHON" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  echo "$name: exit $status, $seconds s" | tee -a "$dest/session.txt"
  LAST_SECONDS=$seconds
  LAST_STATUS=$status
  return $status
}

step "CUDA tests" "$dest/pytest_cuda.txt" \
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_optim.py tests/test_stats.py tests/test_potentials.py -k cuda -rs

if [ "$DRY_RUN" = 1 ]; then  # the benchmark's own logic, on the CPU, one short round
  "$PYTHON" benchmarks/bench_optim_gpu.py --device cpu --rounds 1 --steps 1 \
    --out "$dest/bench_optim_gpu_dry_run.csv" || exit 1
fi
step "GPU optimiser benchmark" "$dest/bench_optim_gpu.txt" \
  "$PYTHON" benchmarks/bench_optim_gpu.py --device cuda --out "$dest/bench_optim_gpu.csv"

echo "chapter,status,seconds" > "$dest/chapter_times.csv"
for name in $CHAPTERS; do
  LAST_SECONDS="" LAST_STATUS=""
  step "chapter $name" "$dest/book_$name.txt" \
    "$PYTHON" -m mirrorlib book --scale paper --device cuda --no-html --chapters "$name"
  echo "$name,$LAST_STATUS,$LAST_SECONDS" >> "$dest/chapter_times.csv"
done

if [ "$DRY_RUN" = 0 ] && [ -d _build/results/paper ]; then
  cp -r _build/results/paper "$dest/results_paper"
fi
echo "finished: $(date -u +%FT%TZ), $(( $(date +%s) - start )) s" | tee -a "$dest/session.txt"
echo "outputs in $dest"
