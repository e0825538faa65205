#!/usr/bin/env bash
# One prepared GPU check: nvidia-smi, then the complexity bench (elastic_edu.bench) on CUDA in
# float32 and bfloat16, for SASRec (naive, SDPA), ELASTIC (k = 16, 32, 64) and LDA-only at
# N = 128 .. 16384, batch 4. Everything lands in $OUT (default ./gpu-out):
#   nvidia-smi.txt, bench-<card>-fp32.json/.log, bench-<card>-bf16.json/.log, summary.txt
# The whole script stays within GPU_CHECK_CAP seconds (default 360): each bench run gets a share
# of what is left and is stopped at it; the JSON is rewritten after every point, so a stopped run
# still leaves every point it measured. Usage, from anywhere:  bash scripts/gpu_checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT="${OUT:-gpu-out}"
PY="${PYTHON:-python3}"
CAP="${GPU_CHECK_CAP:-360}"
START=$SECONDS
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

runs=(fp32:float32 bf16:bfloat16)
for i in "${!runs[@]}"; do
    tag=${runs[$i]%%:*}
    dtype=${runs[$i]#*:}
    left=$((CAP - (SECONDS - START) - 15))
    share=$((left / (${#runs[@]} - i)))
    if ((share < 20)); then
        echo "gpu_checks: no time left for $tag" >&2
        continue
    fi
    echo "== bench $dtype, up to ${share}s =="
    timeout --signal=INT --kill-after=10 "$share" \
        "$PY" -m elastic_edu bench --device cuda --dtype "$dtype" \
        --models sasrec-naive sasrec-sdpa elastic lda --k 16 32 64 \
        --lengths 128 256 512 1024 2048 4096 8192 16384 --batch 4 \
        --repeats 10 --warmup 3 --timeout 30 \
        --out "$OUT/bench-$card-$tag.json" 2>&1 | tee "$OUT/bench-$card-$tag.log" || \
        echo "gpu_checks: bench $dtype stopped early (exit ${PIPESTATUS[0]}); partial JSON kept"
done

# the summary of whatever was measured, also for a run stopped at its share of the cap
"$PY" - "$OUT" "$card" <<'EOF' | tee "$OUT/summary.txt"
import sys
from pathlib import Path
from elastic_edu.bench import format_summary, load_results, summarise
out, card = Path(sys.argv[1]), sys.argv[2]
for tag in ("fp32", "bf16"):
    path = out / f"bench-{card}-{tag}.json"
    if not path.exists():
        print(f"{path.name}: missing")
        continue
    bench = load_results(path)
    print(f"== {path.name}: {len(bench['points'])} points ==")
    print(format_summary(summarise(bench)), "\n")
EOF
echo "gpu_checks: done in $((SECONDS - START))s"
