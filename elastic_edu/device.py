"""Choose the compute device once (cuda > mps > cpu), never hard-code `.cuda()`."""

from __future__ import annotations

import torch


def choose_device(preference: str | None = None) -> torch.device:
    """Return `preference` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), else the best.

    Raises ValueError naming the argument when the requested device is not available.
    """
    if preference not in (None, "", "auto"):
        dev = torch.device(preference)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={preference!r}: CUDA is not available on this machine")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device={preference!r}: MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A human label for results files: GPU card name or CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return cpu_model()


def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
