"""Scatter fraction and the TEW/DEW bias of spectac's scatter model over simulated patients.

Run: python benchmarks/scatter_calibration.py [--patients 12]
Noise-free: for each patient (the default population, one stress study), the photopeak scatter
fraction (scatter / all photopeak counts), and the TEW and DEW estimates of the photopeak scatter
(unsmoothed) divided by the true photopeak scatter, in total. The window table's amplitudes were
set so the median SF is about 32% and both ratios are about 1 on average (docs/simulation.md).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from spectac.acquisition.acquire import scale_to_counts, window_components
from spectac.acquisition.projector import SpectProjector
from spectac.phantom.anatomy import build_phantom
from spectac.reconstruction.scatter_windows import dew_estimate, tew_estimate
from spectac.simulate import SimulationConfig, patient_params


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SimulationConfig()
    protocol = config.protocol
    width = {w.name: w.width_kev for w in protocol.windows}
    rows = []
    for i in range(args.patients):
        params = patient_params(7, i, 0.0)
        phantom = build_phantom(params, "stress", config.shape, config.spacing_mm)
        truth, mu = scale_to_counts(phantom.activity, phantom.mu_map, 4e6, protocol, config.spacing_mm)
        projector = SpectProjector(truth.shape, config.spacing_mm, protocol, mu_map=mu, psf=True)
        c = {k: (p.numpy(), s.numpy()) for k, (p, s) in window_components(truth, projector, protocol).items()}
        total = {k: p + s for k, (p, s) in c.items()}
        scatter = c["photopeak"][1].sum()
        sf = scatter / total["photopeak"].sum()
        tew = tew_estimate(total["tew_lower"], width["tew_lower"], total["tew_upper"], width["tew_upper"],
                           width["photopeak"]).sum() / scatter
        dew = dew_estimate(total["dew_lower"]).sum() / scatter
        rows.append((params.bmi, params.sex, sf, tew, dew))
        print(f"BMI {params.bmi:5.1f} {params.sex}  SF {sf:.3f}  TEW/true {tew:.3f}  DEW/true {dew:.3f}", flush=True)
    arr = np.array([r[2:] for r in rows])
    print(f"median SF {np.median(arr[:, 0]):.3f}; mean TEW/true {arr[:, 1].mean():.3f}; mean DEW/true {arr[:, 2].mean():.3f}")
    bmi = np.array([r[0] for r in rows])
    print(f"correlation of SF with BMI: {np.corrcoef(bmi, arr[:, 0])[0, 1]:.2f}")


if __name__ == "__main__":
    main()
