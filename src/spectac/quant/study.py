"""Quantification of one study: detect the LV, make the polar map, score it against normal limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spectac.quant.geometry import LVGeometry
from spectac.quant.lv import detect_lv
from spectac.quant.polar import PolarMap, polar_map
from spectac.quant.scores import NormalLimits, PerfusionScores, score_polar_map
from spectac.volume import Volume

if TYPE_CHECKING:
    from spectac.quant.normals import NormalDatabase


SUPINE_POSITIONS = ("HFS", "FFS")
KNOWN_POSITIONS = ("HFS", "FFS", "HFP", "FFP", "HFDR", "HFDL", "FFDR", "FFDL")
PATIENT_POSITION_TAG = "00185100"  # Patient Position (0018,5100), CS


def patient_position(series: dict | None) -> str:
    """PatientPosition (HFS, FFS, HFP, FFP, HFDR ...) from a series' attributes in DICOM JSON; ""
    when missing."""
    element = (series or {}).get(PATIENT_POSITION_TAG) or {}
    values = element.get("Value") or [""]
    return str(values[0] or "").strip().upper()


def position_note(position: str) -> str:
    """How a study's PatientPosition bears on its scores (the shipped limits are of supine studies)."""
    if not position:
        return "PatientPosition missing: assumed supine (HFS), as the normal limits are"
    if position in SUPINE_POSITIONS:
        return f"{position} (supine, as the normal limits)"
    if position in KNOWN_POSITIONS:
        return (f"{position}: WARNING, not supine; scored with supine limits (prone or decubitus imaging moves "
                "the inferior attenuation and subdiaphragmatic activity: read the scores with care)")
    return f"{position!r} is not a DICOM PatientPosition: assumed supine"


@dataclass(frozen=True)
class StudyQuantification:
    """The LV geometry, polar map and scores of one image."""

    geometry: LVGeometry
    polar_map: PolarMap
    scores: PerfusionScores


def quantify(volume: Volume, limits: NormalLimits, geometry: LVGeometry | None = None) -> StudyQuantification:
    """Quantify one perfusion image against normal limits of its method family, sex and state.

    Args:
        volume: the image (X, Y, Z) in counts.
        limits: normal limits (see :meth:`spectac.quant.normals.NormalDatabase.limits`).
        geometry: a known LV geometry; None detects it from the image (the clinical way).
    """
    geom = detect_lv(volume) if geometry is None else geometry
    pm = polar_map(volume, geom)
    return StudyQuantification(geom, pm, score_polar_map(pm, limits))


@dataclass(frozen=True)
class PatientQuantification:
    """A patient's stress study and, when given, rest study, with the reversibility scores."""

    stress: StudyQuantification
    rest: StudyQuantification | None
    family: str
    sex: str

    def summary(self) -> dict[str, float]:
        """TPD, SSS, count deficit of each study; SRS, SDS, segmental SDS, ischaemic TPD and TID
        (:func:`transient_ischemic_dilation`) with rest."""
        from spectac.quant.scores import ischemic_tpd, segmental_difference_score, summed_difference_score

        out = {
            "stress_tpd": self.stress.scores.tpd,
            "sss": float(self.stress.scores.summed_score),
            "stress_count_deficit": self.stress.scores.count_deficit,
        }
        if self.rest is not None:
            out.update(
                {
                    "rest_tpd": self.rest.scores.tpd,
                    "srs": float(self.rest.scores.summed_score),
                    "rest_count_deficit": self.rest.scores.count_deficit,
                    "sds": float(summed_difference_score(self.stress.scores, self.rest.scores)),
                    "sds_seg": float(segmental_difference_score(self.stress.scores, self.rest.scores)),
                    "ischemic_tpd": ischemic_tpd(self.stress.scores, self.rest.scores),
                    "tid": transient_ischemic_dilation(self.stress.geometry, self.rest.geometry),
                }
            )
        return out


def transient_ischemic_dilation(stress: LVGeometry, rest: LVGeometry) -> float:
    """TID: the LV cavity volume of the stress image over that of the rest image, both from the
    LV shells (:attr:`LVGeometry.cavity_ml`; fitted, or given); NaN when the rest cavity is empty.

    Clinical software computes the ratio from endocardial surfaces; a ratio above about 1.2 (the
    threshold depends on protocol and software) is a marker of severe, extensive ischaemia
    (Abidov et al., J Am Coll Cardiol 2003;42:1818-1825).
    """
    if rest.cavity_ml <= 0:
        return float("nan")
    return float(stress.cavity_ml / rest.cavity_ml)


def quantify_patient(stress: Volume, rest: Volume | None, normals: NormalDatabase, family: str,
                     sex: str) -> PatientQuantification:
    """Quantify a patient's stress (and rest) image against the limits of ``family`` ("nc" or "ac")
    and ``sex`` ("F", "M", or "all" for the pooled limits when the sex is not known)."""
    q_stress = quantify(stress, normals.limits(family, sex, "stress"))
    q_rest = None if rest is None else quantify(rest, normals.limits(family, sex, "rest"))
    return PatientQuantification(q_stress, q_rest, family, sex)
