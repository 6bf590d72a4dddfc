"""A generator exported to ONNX, run by onnxruntime: the torch generator's forward pass on numpy
arrays, without importing torch.

The exported graph (``scripts/export_onnx.py``) takes spatial sizes that are multiples of the
network's down-sampling factor only; the zero-padding and cropping the torch U-Net does inside its
``forward`` (:func:`spectac.nn.blocks.pad_to_multiple`) are done here, with the same rule
(:mod:`spectac.nn.padding`), so the output is the torch network's on any grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spectac.nn.padding import crop_slices, pad_widths


class OnnxGenerator:
    """An onnxruntime session standing in for a generator: ``(B, C, X, Y, Z)`` float32 network input
    -> ``(B, 1, X, Y, Z)``, as ``generator(x)`` in torch.

    Args:
        session: an ``onnxruntime.InferenceSession`` (:func:`spectac.io.onnx_model.open_onnx_session`).
        pad_multiple: the multiple each spatial axis is zero-padded to (the network's own rule).
    """

    def __init__(self, session: Any, pad_multiple: Sequence[int]) -> None:
        self.session = session
        self.pad_multiple = [int(m) for m in pad_multiple]
        self.input_name = session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        spatial = x.shape[2:]
        widths = pad_widths(spatial, self.pad_multiple)
        padded = np.pad(x, [(0, 0), (0, 0), *widths]) if any(b or a for b, a in widths) else x
        y = self.session.run(None, {self.input_name: padded})[0]
        return y[(slice(None), slice(None), *crop_slices(widths, spatial))]
