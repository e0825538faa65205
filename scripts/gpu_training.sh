#!/usr/bin/env bash
# The converged ML-100K comparison on a lent GPU (issue: GPU accuracy), one process per seed on
# the one card, every model early-stopped on validation NDCG@10 (patience 20), never cut by a
# clock; then merged into one comparison named for the card. Also the synthetic studies.
# ML-100K must be reachable as a RecBole atomic folder: ELASTIC_EDU_ATOMIC=<folder holding ml-100k/>.
#   bash scripts/gpu_training.sh        (writes under $OUT, default results/gpu-training)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" OMP_NUM_THREADS=2
OUT="${OUT:-results/gpu-training}"
PY="${PYTHON:-python3}"
CAP="${GPU_TRAIN_CAP:-480}"
MODELS=(popularity gru4rec sasrec elastic-causal lda-causal elastic-bidir:cloze elastic-bidir:cut
        lda-bidir:cloze lda-bidir:cut)
mkdir -p "$OUT"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | tr ' ' '-' | tr 'A-Z' 'a-z')
nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
for seed in 0 1 2; do
  timeout --signal=INT "$CAP" "$PY" -m elastic_edu compare --dataset ml-100k --seeds "$seed" \
    --models "${MODELS[@]}" --patience 20 --quiet \
    --out "$OUT/accuracy-seed$seed.json" > "$OUT/accuracy-seed$seed.log" 2>&1 &
done
timeout --signal=INT "$CAP" "$PY" scripts/synthetic_studies.py --study planted --device cuda \
  --minutes 1.0 --quiet --out "$OUT/synthetic-planted.json" > "$OUT/synthetic.log" 2>&1 &
wait
"$PY" scripts/merge_accuracy.py "$OUT"/accuracy-seed*.json --out "results/accuracy-ml-100k-$card.json"
tail -n 12 "$OUT"/accuracy-seed*.log "$OUT/synthetic.log"
