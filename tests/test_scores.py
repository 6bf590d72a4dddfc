"""Scores on polar maps made from the shipped normal limits: the fixed-scar test (a defect seen
at stress and at rest is not ischaemia), reversibility, and the count-based severity."""

from __future__ import annotations

import numpy as np
import pytest

from spectac.quant.geometry import LVGeometry
from spectac.quant.normals import NormalDatabase
from spectac.quant.polar import PolarMap, ring_weights
from spectac.quant.scores import (
    ischemic_tpd,
    score_polar_map,
    segmental_difference_score,
    summed_difference_score,
)
from spectac.quant.segments import territory_mask

WEIGHTS = ring_weights(LVGeometry.from_axes(np.zeros(3), np.array([1.0, -1.0, -1.0]), 27.0, 62.0, 10.0))
LCX = territory_mask("LCx")


@pytest.fixture(scope="module")
def shipped() -> NormalDatabase:
    return NormalDatabase.load(None)


def normal_patient_map(db: NormalDatabase, family: str, sex: str, state: str, seed: int,
                       remaining: float = 1.0, counts: float = 1000.0) -> PolarMap:
    """A normal patient's map drawn from the limits (0.7 SD of sample noise), with the LCx territory
    at ``remaining`` of its uptake, in counts and then normalised to its 98th percentile as a
    maximal-count polar map used to be."""
    limits = db.limits(family, sex, state)
    rng = np.random.default_rng(seed)
    values = (limits.mean + 0.7 * limits.sd * rng.standard_normal(limits.mean.shape)) * counts
    values = values * np.where(LCX, remaining, 1.0)
    scale = float(np.percentile(values, 98))
    return PolarMap((values / scale).astype(np.float32), WEIGHTS, scale)


def fixed_and_reversible(db: NormalDatabase, family: str, sex: str, seed: int):
    """Scores of one patient with the same 50% LCx defect at stress and rest, and of the same stress
    map against a normal rest map (a stress-only defect of the same size)."""
    stress = score_polar_map(normal_patient_map(db, family, sex, "stress", seed, 0.5, 4000.0),
                             db.limits(family, sex, "stress"))
    rest = score_polar_map(normal_patient_map(db, family, sex, "rest", seed + 10, 0.5, 1500.0),
                           db.limits(family, sex, "rest"))
    normal_rest = score_polar_map(normal_patient_map(db, family, sex, "rest", seed + 20, 1.0, 1500.0),
                                  db.limits(family, sex, "rest"))
    return stress, rest, normal_rest


@pytest.mark.parametrize("family", ["nc", "ac"])
@pytest.mark.parametrize("sex", ["F", "M"])
def test_a_fixed_scar_is_not_ischaemia_and_a_stress_only_defect_is(shipped: NormalDatabase, family: str,
                                                                     sex: str) -> None:
    """The fixed-scar test: the same 50% LCx defect at stress and at rest gives SDS about 0; at stress
    only it gives a clearly positive SDS."""
    for seed in range(3):
        stress, rest, normal_rest = fixed_and_reversible(shipped, family, sex, seed)
        assert stress.summed_score >= 8  # the defect is there at stress ...
        assert normal_rest.tpd < 2.0 and normal_rest.summed_score <= 2
        assert summed_difference_score(stress, normal_rest) >= 4  # stress-only: reversible
        assert ischemic_tpd(stress, normal_rest) >= 0.5 * stress.tpd
        assert ischemic_tpd(stress, rest) <= 0.25 * stress.tpd  # ... and at rest: fixed
        assert abs(summed_difference_score(stress, rest)) <= 2
        assert segmental_difference_score(stress, rest) <= 2


@pytest.mark.parametrize("family", ["nc", "ac"])
@pytest.mark.parametrize("sex", ["F", "M"])
def test_a_fixed_scar_scores_far_less_sds_than_a_stress_only_defect(shipped: NormalDatabase, family: str,
                                                                      sex: str) -> None:
    """Every family and sex, men included: a fixed scar's SDS is at most 5 (the limits of spectac
    0.1.0 gave +9 to +12 with CT-AC and -4 in NC women) and under 40% of the stress-only SDS."""
    for seed in range(3):
        stress, rest, normal_rest = fixed_and_reversible(shipped, family, sex, seed)
        fixed, reversible = summed_difference_score(stress, rest), summed_difference_score(stress, normal_rest)
        assert 0 <= fixed <= 5 and reversible >= 2.5 * fixed and reversible >= 8


def test_stress_and_rest_share_the_pooled_sd_and_keep_their_own_means(shipped: NormalDatabase) -> None:
    for family in ("nc", "ac"):
        for sex in ("F", "M"):
            own = {st: shipped.limits(family, sex, st, pool_states=False) for st in ("stress", "rest")}
            pooled = {st: shipped.limits(family, sex, st) for st in ("stress", "rest")}
            np.testing.assert_array_equal(pooled["stress"].sd, pooled["rest"].sd)
            for st in ("stress", "rest"):
                np.testing.assert_array_equal(pooled[st].mean, own[st].mean)
            n_s, n_r = own["stress"].n, own["rest"].n
            expected = np.sqrt(((n_s - 1) * own["stress"].sd.astype(float) ** 2
                                + (n_r - 1) * own["rest"].sd.astype(float) ** 2) / (n_s + n_r - 2))
            np.testing.assert_allclose(pooled["stress"].sd, expected, rtol=1e-5)
            # between the two states' own SDs, sample by sample
            low = np.minimum(own["stress"].sd, own["rest"].sd)
            high = np.maximum(own["stress"].sd, own["rest"].sd)
            assert np.all(pooled["stress"].sd >= low - 1e-6) and np.all(pooled["stress"].sd <= high + 1e-6)


def test_separate_state_sds_score_a_fixed_scar_as_ischaemia(shipped: NormalDatabase) -> None:
    """Why the SDs are pooled: with each state's own SD (rest wider than stress in the shipped
    limits), the same 50% scar scores more at stress than at rest."""
    sds = []
    for seed in range(3):
        stress = score_polar_map(normal_patient_map(shipped, "ac", "F", "stress", seed, 0.5, 4000.0),
                                 shipped.limits("ac", "F", "stress", pool_states=False))
        rest = score_polar_map(normal_patient_map(shipped, "ac", "F", "rest", seed + 10, 0.5, 1500.0),
                               shipped.limits("ac", "F", "rest", pool_states=False))
        sds.append(summed_difference_score(stress, rest))
    assert min(sds) >= 4


def test_reversibility_scores_are_never_negative(shipped: NormalDatabase) -> None:
    """A defect seen only at rest (reverse redistribution) gives a negative SSS - SRS, but the
    segmental SDS stays at 0 and the ischaemic TPD about 0."""
    stress = score_polar_map(normal_patient_map(shipped, "ac", "M", "stress", 1), shipped.limits("ac", "M", "stress"))
    rest = score_polar_map(normal_patient_map(shipped, "ac", "M", "rest", 2, 0.5), shipped.limits("ac", "M", "rest"))
    assert summed_difference_score(stress, rest) < 0
    assert segmental_difference_score(stress, rest) == 0
    assert ischemic_tpd(stress, rest) < 0.1  # only the stress map's own noise


def test_count_deficit_reads_the_same_defect_alike_whatever_the_sd_of_the_limits(shipped: NormalDatabase) -> None:
    """A 50% defect over the LCx territory: count deficit about 50% x the LCx share of the LV, for NC
    and AC limits alike (their SDs differ), while a normal map has none."""
    share = float(WEIGHTS[LCX].sum() / WEIGHTS.sum())
    for family in ("nc", "ac"):
        limits = shipped.limits(family, "F", "stress")
        defect = score_polar_map(normal_patient_map(shipped, family, "F", "stress", 3, 0.5), limits)
        normal = score_polar_map(normal_patient_map(shipped, family, "F", "stress", 4), limits)
        assert defect.count_deficit == pytest.approx(50 * share, rel=0.15)
        assert normal.count_deficit < 1.0
        assert defect.factor > 0 and np.all(defect.reduction >= 0)
        reduction = defect.segment_reduction()
        assert reduction[[4, 5, 10, 11, 15]].min() > 40 and np.delete(reduction, [4, 5, 10, 11, 15]).max() < 10
