"""Nelder-Mead minimisation from a given initial simplex, without importing scipy.optimize.

The LV fit (:mod:`spectac.quant.lv`) minimises its shell contrast with the downhill simplex of
Nelder and Mead ("A simplex method for function minimization", The Computer Journal 7, 1965), as
``scipy.optimize.minimize(method="Nelder-Mead")`` implements it (non-adaptive coefficients: reflect
1, expand 2, contract 0.5, shrink 0.5; stop when both the simplex and its values are within
``xatol`` and ``fatol``, or after ``maxfev`` evaluations). This is that algorithm operation for
operation (SciPy's ``_minimize_neldermead``, BSD-3-Clause, for an initial simplex and no bounds),
so the fits are the same bit for bit (tests/test_onnx.py checks against scipy): importing
scipy.optimize costs about a quarter of a second of ``spectac correct``, whose out-of-distribution
check fits the LV.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RHO, CHI, PSI, SIGMA = 1, 2, 0.5, 0.5


class _TooManyCalls(Exception):
    pass


def nelder_mead(fun: Callable[[np.ndarray], float], initial_simplex: np.ndarray, *, maxfev: int,
                xatol: float, fatol: float) -> tuple[np.ndarray, float]:
    """Minimise ``fun`` from ``initial_simplex`` ((N + 1, N)); returns (best point, its value)."""
    sim = np.asarray(np.atleast_2d(initial_simplex).copy(), dtype=np.float64)
    n = sim.shape[1]
    calls = [0]

    def func(x: np.ndarray) -> float:
        if calls[0] >= maxfev:
            raise _TooManyCalls
        calls[0] += 1
        value = fun(np.copy(x))
        return value if np.isscalar(value) else np.asarray(value).item()

    fsim = np.full((n + 1,), np.inf, dtype=float)
    try:
        for k in range(n + 1):
            fsim[k] = func(sim[k])
    except _TooManyCalls:
        pass
    finally:
        ind = np.argsort(fsim)
        sim, fsim = np.take(sim, ind, 0), np.take(fsim, ind, 0)
    ind = np.argsort(fsim)
    fsim = np.take(fsim, ind, 0)
    sim = np.take(sim, ind, 0)
    while calls[0] < maxfev:
        try:
            if np.max(np.ravel(np.abs(sim[1:] - sim[0]))) <= xatol and np.max(np.abs(fsim[0] - fsim[1:])) <= fatol:
                break
            xbar = np.add.reduce(sim[:-1], 0) / n
            xr = (1 + RHO) * xbar - RHO * sim[-1]
            fxr = func(xr)
            shrink = False
            if fxr < fsim[0]:
                xe = (1 + RHO * CHI) * xbar - RHO * CHI * sim[-1]
                fxe = func(xe)
                if fxe < fxr:
                    sim[-1], fsim[-1] = xe, fxe
                else:
                    sim[-1], fsim[-1] = xr, fxr
            elif fxr < fsim[-2]:
                sim[-1], fsim[-1] = xr, fxr
            elif fxr < fsim[-1]:  # contraction outside
                xc = (1 + PSI * RHO) * xbar - PSI * RHO * sim[-1]
                fxc = func(xc)
                if fxc <= fxr:
                    sim[-1], fsim[-1] = xc, fxc
                else:
                    shrink = True
            else:  # contraction inside
                xcc = (1 - PSI) * xbar + PSI * sim[-1]
                fxcc = func(xcc)
                if fxcc < fsim[-1]:
                    sim[-1], fsim[-1] = xcc, fxcc
                else:
                    shrink = True
            if shrink:
                for j in range(1, n + 1):
                    sim[j] = sim[0] + SIGMA * (sim[j] - sim[0])
                    fsim[j] = func(sim[j])
        except _TooManyCalls:
            pass
        ind = np.argsort(fsim)
        sim, fsim = np.take(sim, ind, 0), np.take(fsim, ind, 0)
    return sim[0], float(np.min(fsim))
