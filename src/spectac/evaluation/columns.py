"""Names shared by the clinical evaluation modules: the reference method and the columns of
RUN/clinical.csv that hold scores."""

from __future__ import annotations

from spectac.segments import N_SEGMENTS, TERRITORIES

REFERENCE = "ac"  # CT-AC, from the dataset
NC = "nc"  # the non-corrected image, from the dataset
SEGMENT_COLUMNS = tuple(f"seg{i}" for i in range(1, N_SEGMENTS + 1))
TERRITORY_COLUMNS = tuple(f"tpd_{t}" for t in TERRITORIES)


def na(reason: str) -> str:
    """A table cell for a value that cannot be computed: says why."""
    return f"n/a: {reason}"
