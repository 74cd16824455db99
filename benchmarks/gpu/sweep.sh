#!/usr/bin/env bash
# The GPU muTransfer sweep (issue #9), split into device calls of at most 10 minutes.
# Usage on the device machine, from the repository root (results go to $OUT):
#   benchmarks/gpu/sweep.sh CALL [ARGS] [--quick]
# CALL: a  (sp, abccalc-table8, abccalc-table3, mup; widths 64,256,1024; seed 0)
#       b  (all four at width 64, seed 1: the seed noise)
#       x PARAM LO:HI  (extend one parametrization's LR grid, seed 0, all widths)
# Each call runs its parametrizations as parallel processes on the one GPU and appends a
# JSON line per finished run under $OUT, so a call cut off at its limit keeps what it did;
# pass the returned files back in runs/ (carried) to resume. Then, here:
#   python benchmarks/mutransfer.py merge runs/gpu_*.jsonl -o docs/results/mutransfer_gpu.json
# Config (issue #9): 4 layers, 4 heads, context 128, batch 32, 1500 steps, bf16 autocast.
set -euo pipefail
cd "$(dirname "$0")/../.."
call=${1:?usage: sweep.sh a|b|x [--quick]}
quick=""
for arg in "$@"; do [ "$arg" = --quick ] && quick=--quick; done
out=${OUT:-runs}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# resume from results carried back in runs/
if [ "$out" != runs ] && compgen -G "runs/gpu_*.jsonl" >/dev/null; then cp runs/gpu_*.jsonl "$out"/; fi
common=(--layers 4 --heads 4 --ctx 128 --batch 32 --steps 1500 --warmup 150 --device auto)
[ "$quick" = --quick ] && common=(--quick --device auto)
pids=()
one() {  # param, widths, LR grid, seed
  PYTHONUNBUFFERED=1 python3 benchmarks/mutransfer.py run --params "$1" --widths "$2" \
    --log2-lrs="$3" --seeds "$4" "${common[@]}" --out "$out/gpu_$1_s$4.jsonl" \
    > "$out/log_$1_s$4.txt" 2>&1 &
  pids+=($!)
}
grid() { [ "$1" = sp ] && echo -13:-5 || echo -10:-4; }
case $call in
  a) for p in sp abccalc-table8 abccalc-table3 mup; do one $p 64,256,1024 "$(grid $p)" 0; done ;;
  b) for p in sp abccalc-table8 abccalc-table3 mup; do one $p 64 "$(grid $p)" 1; done ;;
  x) one "${2:?param}" 64,256,1024 "${3:?LO:HI}" 0 ;;
  *) echo "sweep.sh: unknown call '$call' (a, b or x)" >&2; exit 2 ;;
esac
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
tail -n 2 "$out"/log_*.txt
exit $rc
