from __future__ import annotations

import os

import torch

# Progress bars off in tests; fixed thread count keeps timings and reductions stable.
os.environ.setdefault("SPECTAC_PROGRESS", "0")
torch.set_num_threads(2)
