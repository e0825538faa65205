"""Devices: validated against what torch offers here, the choices listed (issue 22, case 8)."""

from __future__ import annotations

import pytest
import torch

from elastic_edu.device import available_devices, choose_device


@pytest.mark.parametrize(
    "name, says",
    [
        ("tpu", "device='tpu' is not a device: choose one of auto, "),
        ("xla", "device='xla': elastic_edu runs on cpu, cuda or mps only; choose one of auto, "),
        ("meta", "device='meta': elastic_edu runs on cpu, cuda or mps only; choose one of auto, "),
        ("cuda:99", "device='cuda:99': "),
    ],
)
def test_devices_torch_does_not_offer_here_are_refused_listing_the_choices(name, says):
    with pytest.raises(ValueError) as err:
        choose_device(name)
    message = str(err.value)
    assert message.startswith(says) and message.endswith(", ".join(["auto", *available_devices()]))


def test_the_choices_are_what_this_machine_has():
    offered = available_devices()
    assert offered[-1] == "cpu" and ("cuda" in offered) == torch.cuda.is_available()
    assert choose_device() == choose_device("auto") == torch.device(offered[0])
    for name in offered:
        assert choose_device(name) == torch.device(name)


def test_an_unavailable_gpu_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda': CUDA is not available on this machine"):
        choose_device("cuda")
