"""Where a network runs: the one parser of ``--device`` and ``--amp`` (train, predict, correct, serve).

``auto`` takes CUDA when torch sees a GPU, else Apple's MPS, else the CPU. A device asked for by
name that this machine lacks is refused in one line (the CLI exits 2), never replaced silently by
another. The CPU path is the same code as before the option existed, so ``--device cpu`` and no
``--device`` give the same bytes.

Mixed precision (``--amp``: autocast to bfloat16, or float16 where the GPU has no bfloat16; Micikevicius
et al., "Mixed precision training", ICLR 2018) is for CUDA only. On another device it is refused
in one line rather than ignored, so a command never claims a speed-up it did not get and CPU
outputs never change precision behind the user's back. Training uses no gradient scaler, which
float16's narrow range would need: train with ``--amp`` on a GPU with bfloat16. None of the CUDA
paths were run where spectac is developed (no GPU there).

torch is imported inside the functions: parsing the option must not cost the command line
torch's import time.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from spectac.errors import SpectacError

DEVICE_HELP = "Where networks run: auto (cuda if available, else mps, else cpu), cpu, cuda, cuda:N or mps."
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device_name(name: str) -> str:
    """``name`` if it is a ``--device`` value, without importing torch (a configuration file is
    checked when read; whether the device exists, when a network is placed).

    Raises:
        SpectacError: not auto, cpu, cuda, cuda:N or mps.
    """
    if not _PATTERN.match(str(name).strip().lower()):
        raise SpectacError(f"--device {name!r}: choose auto, cpu, cuda, cuda:N or mps")
    return str(name).strip().lower()


def resolve_device(name: str | None = "auto") -> Any:
    """The ``torch.device`` of a ``--device`` value (None: auto).

    Raises:
        SpectacError: an unknown device name, or cuda/mps asked for on a machine without it.
    """
    import torch

    name = "auto" if name is None else check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available(torch) else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpectacError(f"--device {name}: torch sees no CUDA GPU on this machine (use --device cpu or auto)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise SpectacError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not _mps_available(torch):
        raise SpectacError("--device mps: torch sees no Apple MPS device on this machine (use --device cpu or auto)")
    return torch.device(name)


def check_amp(device: Any, amp: bool) -> None:
    """Refuse ``--amp`` off CUDA (one line).

    Raises:
        SpectacError: amp asked for on a CPU or MPS device.
    """
    if amp and getattr(device, "type", str(device)) != "cuda":
        raise SpectacError(f"--amp is for CUDA devices only (this run is on {device}); drop --amp")


def amp_dtype(device: Any) -> Any:
    """bfloat16 where the GPU supports it, else float16."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: Any, amp: bool) -> AbstractContextManager[Any]:
    """The autocast context of a forward pass: mixed precision on CUDA with ``amp``, else nothing."""
    if not amp or getattr(device, "type", "cpu") != "cuda":
        return nullcontext()
    import torch

    return torch.autocast("cuda", dtype=amp_dtype(device))
