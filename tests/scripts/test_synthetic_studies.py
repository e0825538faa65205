"""End-to-end smoke test of scripts/synthetic_studies.py (long-context study), tiny and fast."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_long_context_study_writes_every_model_and_its_curriculum(tmp_path):
    out = tmp_path / "long.json"
    cmd = [
        sys.executable, str(ROOT / "scripts" / "synthetic_studies.py"), "--study", "long-context",
        "--device", "cpu", "--users", "8", "--distance", "20", "--elastic-len", "32",
        "--batch", "4", "--minutes", "0.01", "--curriculum", "0.25", "1", "--ablation",
        "--quiet", "--out", str(out),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    study = result["long_context"]
    assert study["distance"] == 20 and study["elastic_len"] == 32
    assert set(study) >= {"elastic", "sasrec", "elastic_no_curriculum"}
    assert study["elastic"]["curriculum"] == [0.25, 1.0]
    assert study["elastic_no_curriculum"]["curriculum"] == [1.0]
    for name in ("elastic", "sasrec", "elastic_no_curriculum"):
        run_ = study[name]
        assert run_["steps"] >= 1 and run_["train_seconds"] >= 0.6  # the budget: 0.01 min
        assert run_["chance_HR@1"] == 1 / 16 and run_["HR@1"] <= run_["test"]["HR@10"]
    assert result["device_name"] and result["settings"]["seed"] == 0
