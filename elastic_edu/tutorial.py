"""Helpers the notebooks share: the CI quick-mode switch, the data choice, a set-up report.

Set ``ELASTIC_EDU_QUICK=1`` to run every notebook in its quick mode (small models, few epochs:
what CI runs on a 2-core CPU). Without it, the notebooks train to the reported numbers.
"""

from __future__ import annotations

import os
import platform

import torch

from elastic_edu.data import describe_source, load_sequences
from elastic_edu.data.movielens import movielens_ready
from elastic_edu.data.sequences import SequenceData
from elastic_edu.device import choose_device, describe_device
from elastic_edu.paths import data_dir, find_atomic

QUICK_ENV = "ELASTIC_EDU_QUICK"


def quick_mode() -> bool:
    """True when ``ELASTIC_EDU_QUICK`` is set to 1/true/yes (CI's switch)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes")


def movielens_available(name: str = "ml-100k") -> bool:
    """True when MovieLens `name` is on disk (downloaded into data/, or an atomic copy)."""
    return movielens_ready(data_dir() / name, name) or find_atomic(name) is not None


def tutorial_data(name: str = "ml-100k", download: bool = False, **synthetic) -> SequenceData:
    """MovieLens `name` when it is on disk (or `download` is True), else the synthetic set.

    Prints one visible line saying which data the notebook is using and where it came from.
    """
    if download or movielens_available(name):
        data = load_sequences(name, download=download)
        print(f"Using {describe_source(name)}")
    else:
        data = load_sequences("synthetic", **synthetic)
        print(
            f"MovieLens {name} is not on this machine: using the synthetic planted-interest set "
            f"instead (call tutorial_data(download=True) to fetch MovieLens from GroupLens)."
        )
    return data


def setup_report() -> dict:
    """Versions and the chosen device, for the first cell of a notebook."""
    import einops
    import numpy
    import plotly

    device = choose_device()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "einops": einops.__version__,
        "numpy": numpy.__version__,
        "plotly": plotly.__version__,
        "device": str(device),
        "device_name": describe_device(device),
        "quick_mode": quick_mode(),
    }


def check(name: str, answer, expected, *, atol: float = 1e-6, hint: str = "") -> bool:
    """Tell a learner whether an exercise `answer` matches `expected`; prints and returns a bool.

    Numbers and arrays/tensors compare with absolute tolerance `atol`; other values with ==.
    An unanswered exercise (`answer is None`) prints a nudge rather than failing.
    """
    import numpy as np

    if answer is None:
        print(f"[{name}] not answered yet. {hint}".rstrip())
        return False
    try:
        a = answer.detach().cpu().numpy() if hasattr(answer, "detach") else answer
        e = expected.detach().cpu().numpy() if hasattr(expected, "detach") else expected
        if isinstance(e, (int, float, np.ndarray, np.generic)) and not isinstance(e, bool):
            ok = np.shape(a) == np.shape(e) and bool(np.allclose(a, e, atol=atol, rtol=0))
        else:
            ok = a == e
    except (TypeError, ValueError):
        ok = False
    print(f"[{name}] " + ("correct!" if ok else f"not quite. {hint}".rstrip()))
    return bool(ok)
