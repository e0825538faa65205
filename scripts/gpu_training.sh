#!/usr/bin/env bash
# The GPU training checks, in one call on a lent H100/H200 (writes everything under $OUT):
# the ML-100K accuracy table (3 seeds, one process per seed, all on the one GPU) and the
# synthetic studies (planted-interest NMI, long-range recall), in parallel.
# ML-100K must be reachable as a RecBole atomic folder: ELASTIC_EDU_ATOMIC=<folder holding ml-100k/>.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" OMP_NUM_THREADS=2
OUT="${OUT:-gpu-out}"
PY="${PYTHON:-python3}"
CAP="${GPU_TRAIN_CAP:-420}"
MINUTES="${GPU_TRAIN_MINUTES:-1.2}"
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
for seed in 0 1 2; do
  timeout "$CAP" "$PY" -m elastic_edu compare --dataset ml-100k --seeds "$seed" \
    --models popularity sasrec:all sasrec:cut lda elastic --max-minutes "$MINUTES" --quiet \
    --out "$OUT/accuracy-seed$seed.json" > "$OUT/accuracy-seed$seed.log" 2>&1 &
done
timeout "$CAP" "$PY" scripts/synthetic_studies.py --device cuda --minutes 1.0 --quiet \
  --out "$OUT/synthetic.json" > "$OUT/synthetic.log" 2>&1 &
wait
tail -n 12 "$OUT"/accuracy-seed*.log "$OUT/synthetic.log"
