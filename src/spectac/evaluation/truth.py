"""The defect truth a reader could see, from the phantom's per-segment true count loss.

The simulator writes, in each study's lv.json, ``segment_defect``: for each of the 17 AHA segments
the mean fractional count reduction the defects cause in that segment's myocardium (0 = normal;
:mod:`spectac.phantom.heart`). A nominal defect of the phantom (cases.csv ``defect_type``,
``defect_territory``, ``defect_severity``, ``defect_extent``) can be so small or so mild that no
segment loses more than a few percent, which no reader and no score can tell from normal
variation; and a defect centred on one territory spills into segments of another. So:

- a study is **abnormal** when at least one segment's true loss is >= :data:`VISIBLE_SEGMENT_LOSS`;
- its **territories** are the coronary territories (``TERRITORY_SEGMENTS``) holding such segments.

Where no per-segment truth exists (lv.json without ``segment_defect``), the nominal truth of
cases.csv is used and ``source`` says so; imported clinical data (empty defect fields) have no
truth and are left out of detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spectac.io.dataset import Case
from spectac.segments import N_SEGMENTS, SEGMENT_TERRITORY

#: A segment counts as diseased when its true mean count loss is at least 10%. Why 10%: the SD of
#: the normal limits per polar sample is about 0.07 of the LV maximum (CT-AC stress 0.066, rest
#: 0.076; docs/quantification.md), so a loss under 10% is within about 1.5 SD of the normal
#: variation between patients, and it is less than one step of the usual 10%-step colour scales:
#: below it neither a reader nor the scores can tell a defect from normal. The
#: audit found nominal defects whose largest segment loss was 7-9%: with this threshold they are
#: normal studies. A convention of spectac, not a published standard: change it here and the
#: detection results change with it (detection.csv records the value).
VISIBLE_SEGMENT_LOSS = 0.10


@dataclass(frozen=True)
class StudyTruth:
    """The defect truth of one study.

    Attributes:
        abnormal: a visible defect (None: unknown, imported data).
        territories: territories holding a diseased segment.
        segments: the diseased segments (1-17; empty for the nominal truth).
        max_loss: the largest true segment loss (fraction; None without per-segment truth).
        source: "segments" (lv.json segment_defect), "nominal" (cases.csv) or "unknown".
    """

    abnormal: bool | None
    territories: frozenset[str]
    segments: tuple[int, ...]
    max_loss: float | None
    source: str


def study_truth(case: Case, lv: dict[str, Any] | None, threshold: float = VISIBLE_SEGMENT_LOSS) -> StudyTruth:
    """The truth of a study from its lv.json (``segment_defect``), else from cases.csv."""
    losses = (lv or {}).get("segment_defect")
    if losses:
        loss = {int(s): float(v) for s, v in losses.items()}
        if set(loss) != set(range(1, N_SEGMENTS + 1)):
            raise ValueError(f"{case.case_id}: lv.json segment_defect has segments {sorted(loss)}, not 1-17")
        segments = tuple(s for s in sorted(loss) if loss[s] >= threshold)
        return StudyTruth(bool(segments), frozenset(SEGMENT_TERRITORY[s] for s in segments), segments,
                          max(loss.values()), "segments")
    if case.has_defect is None:
        return StudyTruth(None, frozenset(), (), None, "unknown")
    territories = frozenset(case.defect_territory.split("+")) if case.has_defect and case.defect_territory else frozenset()
    return StudyTruth(bool(case.has_defect), territories, (), None, "nominal")
