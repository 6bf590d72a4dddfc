"""scikit-learn's ROC, AUC and weighted kappa give the values of the hand-written versions."""

import numpy as np
import pytest

from spectac.evaluation import agreement, clinical, detection


@pytest.mark.parametrize("seed", range(20))
def test_sklearn_versions_match_the_hand_written_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    scores = np.round(rng.normal(size=n), 1)
    scores[rng.random(n) < 0.1] = np.inf
    labels = rng.random(n) < 0.4
    labels[:2] = [True, False]
    assert detection.roc_auc(scores, labels) == pytest.approx(clinical.roc_auc(scores, labels))
    fpr, tpr = detection.roc_curve(scores, labels)
    old_fpr, old_tpr = clinical.roc_curve(scores, labels)
    np.testing.assert_allclose(fpr, old_fpr)
    np.testing.assert_allclose(tpr, old_tpr)
    a = rng.integers(0, 5, size=(n, 17))
    b = np.clip(a + rng.integers(-1, 2, size=a.shape), 0, 4)
    assert agreement.weighted_kappa(a, b) == pytest.approx(clinical.weighted_kappa(a, b))
