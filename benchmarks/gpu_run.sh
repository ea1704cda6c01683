#!/usr/bin/env bash
# One prepared GPU session: the cuda-marked tests (incl. the diffusers and transformers adapters), the quick
# spec with --device cuda, the adapters' side-by-side timings on cuda, then (T_FULL > 0) the full spec and
# (T_COMPILE > 0) eager vs torch.compile. Run from the repo root on the GPU
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

step "carried wheels (.wheels/: diffusers, torch-fidelity; the GPU image lacks them)"
for w in .wheels/*.whl; do [ -e "$w" ] && $PY -m pip install -q --no-deps --no-index "$w" 2>&1 | tail -n 1; done
$PY -c "import diffusers, transformers; print('diffusers', diffusers.__version__, 'transformers', transformers.__version__)"

step "cuda-marked tests"
timeout "${T_TESTS:-150}" $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py 2>&1 | tail -n 15

step "quick spec on cuda"
rm -rf results/baseline-quick-cuda  # a fresh baseline of the current zoo (resuming would keep stale points)
timeout "${T_QUICK:-220}" $SB run quick --device cuda --out results/baseline-quick-cuda --no-progress \
  > "$OUT/quick.log" 2>&1; echo "exit $?"; tail -n 2 "$OUT/quick.log"

step "adapters vs native on cuda"
timeout "${T_ADAPTERS:-60}" $PY benchmarks/hf_vs_native.py --device cuda --rounds 7 2>&1 | tail -n 12
timeout "${T_ADAPTERS:-60}" $PY benchmarks/diffusers_vs_native.py --device cuda --rounds 15 2>&1 | tail -n 12
timeout "${T_ADAPTERS:-60}" $PY benchmarks/diffusers_vs_native.py --device cuda --rounds 15 --channels 3 --size 32 \
  --widths 64,128 2>&1 | tail -n 12

if [ "${T_FULL:-0}" -gt 0 ]; then
  step "full spec on cuda"
  timeout "$T_FULL" $SB run full --device cuda --out results/baseline-full-cuda --no-progress \
    > "$OUT/full.log" 2>&1; echo "exit $?"; tail -n 4 "$OUT/full.log"
fi

if [ "${T_COMPILE:-0}" -gt 0 ]; then
  step "eager vs compile on cuda"
  timeout "$T_COMPILE" $PY benchmarks/eager_vs_compile.py --device cuda --json "$OUT/eager_vs_compile_cuda.json" \
    > "$OUT/compile.log" 2>&1; echo "exit $?"; grep -v DEBUG "$OUT/compile.log" | tail -n 40
fi

step "pack"
tar czf "$OUT/results-cuda.tgz" results/baseline-*-cuda 2>/dev/null; ls -la "$OUT"
