#!/usr/bin/env bash
# One prepared GPU check (issue #14): the bench at production width on one CUDA card, within
# GPU_CHECK_CAP seconds (default 480). Batch 32, N = 1k .. 64k, inference and training step,
# SASRec with torch's flash SDPA (no padding: the causal flag) against ELASTIC-causal (k = 32,
# the recommended model, computed chunk by chunk: elastic_edu/nn/chunkwise.py) and the
# non-causal ELASTIC-bidir (k = 32). Runs, most important first, each stopped at its share:
#   bench-<card>-d256-bf16.json     d = 256, bfloat16 autocast
#   bench-<card>-d256-fp32.json     d = 256, float32
#   bench-<card>-d256-stream.json   elastic-causal per event after N = 1k, 16k streamed events
#   bench-<card>-d256-compile.json  torch.compile (CUDA graphs) against eager, bf16 inference
#   bench-<card>-d512-bf16.json     d = 512, if time is left
# and summary-<card>.txt: where each ELASTIC overtakes flash, by how much at 16k and 64k, the
# stream table.
# Everything lands in $OUT (default results/), with nvidia-smi.txt and one .log per run. Each
# JSON is rewritten after every point, so a run stopped at its share keeps what it measured.
# Usage, from anywhere:  bash scripts/gpu_checks.sh      (exit 1 if a point failed otherwise
# than out of memory or time, 3 without the Python packages, 4 without a CUDA device)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT="${OUT:-results}"
PY="${PYTHON:-python3}"
CAP="${GPU_CHECK_CAP:-480}"
START=$SECONDS
STATUS=0
mkdir -p "$OUT"

nvidia-smi | tee "$OUT/nvidia-smi.txt" || echo "nvidia-smi failed" | tee "$OUT/nvidia-smi.txt"

missing=$("$PY" - <<'EOF'
import importlib.util
names = ["torch", "numpy", "einops"]
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
EOF
)
if [[ -n "$missing" ]]; then
    echo "gpu_checks: missing Python packages: $missing" >&2
    echo "gpu_checks: carry them as wheels (.whl, see the device README) and install them with" >&2
    echo "  pip install --no-index --no-deps --target /tmp/site .whl/*.whl; PYTHONPATH=/tmp/site" >&2
    exit 3
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_checks: torch sees no CUDA device" >&2
    exit 4
fi

card=$("$PY" -c "import re, torch; print(re.sub('[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))")
echo "card: $card, torch $("$PY" -c 'import torch; print(torch.__version__)'), cap ${CAP}s"

LONG=(1024 2048 4096 8192 16384 32768 65536)
COMMON=(--device cuda --batch 32 --repeats 5 --warmup 2 --timeout 30)
MODELS=(--models sasrec-sdpa elastic-bidir-k32 elastic-causal-k32)

# bench NAME SHARE ARGS...: one bench run, stopped after SHARE seconds (or what is left)
bench() {
    local name=$1 share=$2
    shift 2
    local left=$((CAP - (SECONDS - START) - 20))  # 20 s kept for the summary
    if ((share > left)); then
        share=$left
    fi
    if ((share < 30)); then
        echo "gpu_checks: no time left for $name" >&2
        return 0
    fi
    echo "== $name: up to ${share}s =="
    set +e
    timeout --signal=INT --kill-after=10 "$share" \
        "$PY" -m elastic_edu bench "$@" --out "$OUT/bench-$card-$name.json" 2>&1 |
        tee "$OUT/bench-$card-$name.log"
    local rc=${PIPESTATUS[0]}
    set -e
    if ((rc == 1)); then
        echo "gpu_checks: $name: a point failed (see the log)" >&2
        STATUS=1
    elif ((rc != 0)); then
        echo "gpu_checks: $name stopped early (exit $rc); partial JSON kept"
    fi
}

bench d256-bf16 110 "${COMMON[@]}" "${MODELS[@]}" --dim 256 --heads 4 --dtype bfloat16 \
    --modes inference train --lengths "${LONG[@]}"
bench d256-fp32 110 "${COMMON[@]}" "${MODELS[@]}" --dim 256 --heads 4 --dtype float32 \
    --modes inference train --lengths "${LONG[@]}"
bench d256-stream 50 "${COMMON[@]}" --models elastic-causal-k32 --dim 256 --heads 4 \
    --dtype bfloat16 --modes stream --lengths 1024 16384 --timeout 60
bench d256-compile 110 "${COMMON[@]}" --models sasrec-sdpa elastic-causal-k32 elastic-bidir-k32 \
    --dim 256 --heads 4 \
    --dtype bfloat16 --modes inference --lengths 1024 16384 --compile off reduce-overhead
bench d512-bf16 200 "${COMMON[@]}" "${MODELS[@]}" --dim 512 --heads 8 --dtype bfloat16 \
    --modes inference train --lengths "${LONG[@]}"

# the summary of whatever was measured, also for runs stopped at their share
"$PY" - "$OUT" "$card" <<'EOF' | tee "$OUT/summary-$card.txt"
import sys
from pathlib import Path

from elastic_edu.bench import report

out, card = Path(sys.argv[1]), sys.argv[2]
for name in ("d256-bf16", "d256-fp32", "d256-stream", "d256-compile", "d512-bf16"):
    path = out / f"bench-{card}-{name}.json"
    if not path.exists():
        print(f"== {path.name}: missing\n")
        continue
    bench = report.load_results(path)
    print(f"== {path.name}: {len(bench['points'])} points, {bench['device_name']}, "
          f"torch {bench['torch']}")
    if name.endswith("stream"):
        print(report.format_stream(bench), "\n")
        continue
    print(report.format_crossovers(bench, at=(16384, 65536)), "\n")
EOF
echo "gpu_checks: done in $((SECONDS - START))s"
exit $STATUS
