#!/usr/bin/env bash
# The GPU checks in one call on a CUDA machine: the CUDA tests, then bench_gpu.py.
#
#   OUT=results/ GPU_SITE=/path/to/pure-python-packages bash benchmarks/gpu_run.sh [bench args]
#
# Runs from a checkout (or a copy of one) with the machine's own python3 holding torch.
# GPU_SITE: a folder with the pure-Python packages a bare CUDA image may lack
# (pytorch_grad_cam, ttach, openpyxl, et_xmlfile); without SimpleITK, an empty stand-in
# lets dlrn import and bench_gpu.py reads the synthetic PNGs with Pillow.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
stub=/tmp/dlrn_stub
if ! python3 -c "import SimpleITK" 2>/dev/null; then
  mkdir -p "$stub/SimpleITK" && : >"$stub/SimpleITK/__init__.py"
fi
export PYTHONPATH="$PWD/src:${GPU_SITE:-$PWD/src}:$stub" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/device.txt"
timeout "${TEST_TIMEOUT:-180}" python3 -m pytest -q -p no:cacheprovider \
  tests/test_deep_gpu_path.py 2>&1 | tee "$OUT/pytest_gpu.log"
timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" \
  "$@" 2>&1 | tee "$OUT/bench_gpu.log"
