"""The CT number to attenuation model (physics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spectac.physics import hu_to_mu, mu_to_hu


def test_hu_to_mu_model():
    assert hu_to_mu(np.array([-1000.0]))[0] == pytest.approx(0.0, abs=1e-6)
    assert hu_to_mu(np.array([0.0]))[0] == pytest.approx(0.1537, rel=1e-4)
    assert hu_to_mu(np.array([1900.0]))[0] == pytest.approx(0.2830, rel=1e-4)
    mu = np.linspace(0, 0.3, 31, dtype=np.float32)
    np.testing.assert_allclose(hu_to_mu(mu_to_hu(mu)), mu, atol=1e-6)
    assert np.all(np.diff(hu_to_mu(np.linspace(-1200, 3000, 100))) >= 0)

