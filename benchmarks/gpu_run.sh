#!/usr/bin/env bash
# One prepared GPU session (issue 14, item 5): the cuda-marked tests, then the full and quick specs
# with --device cuda, then eager vs torch.compile side by side. Run from the repo root on the GPU
# machine with its own python3 (torch with CUDA); each step has its own time limit so a slow one
# cannot eat the others', and results are packed into $OUT whatever happened.
#
#   OUT=/tmp/out SCALEBENCH_GIT_COMMIT=$(git rev-parse HEAD) bash benchmarks/gpu_run.sh
set -u
OUT=${OUT:-/tmp/gpu-out}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SCALEBENCH_CACHE=${SCALEBENCH_CACHE:-$PWD/.cache/scalebench}
SB="$PY -m scalebench.cli"
if [ -z "${SCALEBENCH_GIT_COMMIT:-}" ] && ! git rev-parse HEAD >/dev/null 2>&1; then
  echo "warning: SCALEBENCH_GIT_COMMIT is unset and this copy has no .git, so every record's commit will read" \
       "'unknown'; rerun as SCALEBENCH_GIT_COMMIT=<commit> bash benchmarks/gpu_run.sh" >&2
fi
step() { echo "== $1 ($(date -u +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(0))"

step "cuda-marked tests"
timeout "${T_TESTS:-100}" $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py 2>&1 | tail -n 15

step "full spec on cuda"
timeout "${T_FULL:-240}" $SB run benchmarks/full.toml --device cuda --out results/baseline-full-cuda --no-progress \
  > "$OUT/full.log" 2>&1; echo "exit $?"; tail -n 4 "$OUT/full.log"

step "eager vs compile on cuda"
timeout "${T_COMPILE:-120}" $PY benchmarks/eager_vs_compile.py --device cuda --json "$OUT/eager_vs_compile_cuda.json" \
  > "$OUT/compile.log" 2>&1; echo "exit $?"; grep -v DEBUG "$OUT/compile.log" | tail -n 40

step "quick spec on cuda"
timeout "${T_QUICK:-100}" $SB run benchmarks/quick.toml --device cuda --out results/baseline-quick-cuda --no-progress \
  > "$OUT/quick.log" 2>&1; echo "exit $?"; tail -n 2 "$OUT/quick.log"

step "pack"
tar czf "$OUT/results-cuda.tgz" results/baseline-*-cuda 2>/dev/null; ls -la "$OUT"
