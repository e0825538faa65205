"""Choose the compute device once (cuda > mps > cpu), never hard-code `.cuda()`."""

from __future__ import annotations

import torch


def choose_device(preference: str | None = None) -> torch.device:
    """Return `preference` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), else the best.

    Raises ValueError naming the argument and listing this machine's devices when the requested
    one is not a device, not one this package runs on (tpu, xla, meta), or not available here.
    """
    if preference in (None, "", "auto"):
        return torch.device(available_devices()[0])
    choices = ", ".join(["auto", *available_devices()])
    try:
        dev = torch.device(preference)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device={preference!r} is not a device: choose one of {choices}"
        ) from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={preference!r}: elastic_edu runs on cpu, cuda or mps only; "
                         f"choose one of {choices}")  # fmt: skip
    one = dev.type != "cuda" and dev.index in (None, 0)  # cpu:0 is cpu, mps:0 is mps
    if (dev.type if one else str(dev)) not in available_devices():
        what = {"cuda": "CUDA", "mps": "MPS"}.get(dev.type, str(dev))
        if dev.type == "cuda" and torch.cuda.is_available():
            what = f"GPU {dev.index} (this machine has {torch.cuda.device_count()})"
        raise ValueError(f"device={preference!r}: {what} is not available on this machine; "
                         f"choose one of {choices}")  # fmt: skip
    return dev


def available_devices() -> list[str]:
    """The devices this machine offers, the best first: cuda and cuda:i per GPU, mps, cpu."""
    out = []
    if torch.cuda.is_available():
        out += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return [*out, "cpu"]


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
