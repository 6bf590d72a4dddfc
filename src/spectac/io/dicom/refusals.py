"""Why a series must not be attenuation-corrected (again), from what its header says."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydicom.dataset import Dataset

# What descriptions say (Series Description, Image Type values): an attenuation map, an
# attenuation-corrected image, a non-corrected one.
MU_TEXT = re.compile(r"mu.?map|\u00b5.?map|attenuation map|\bmu\b|\bumap\b", re.IGNORECASE)
AC_TEXT = re.compile(r"\bAC\b|IRAC|CTAC|\bAC_|_AC\b|attenuation corrected", re.IGNORECASE)
NC_TEXT = re.compile(r"\bNC\b|IRNC|NOAC|\bNAC\b|\bNC_|_NC\b|non.?corrected|uncorrected", re.IGNORECASE)
MU_UNITS = {"1/CM", "CM-1", "/CM", "1/MM", "MM-1", "/MM", "CM^-1", "MM^-1"}
#: Image Comments of an output corrected with ``force``: an input already corrected.
FORCED_NOTE = "forced: input"
#: Series Description of ``spectac correct --method nc``: a copy of the NC image.
NC_COPY_DESCRIPTION = "spectac NC (no correction)"


def _texts(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple, Sequence)) and not isinstance(value, str) else [value]
    return [str(v).strip() for v in values if v is not None]


def correction_refusal(ds: Dataset) -> str | None:
    """Why a series must not be attenuation-corrected (again), from its header; None: it may be.

    Refused: an attenuation map (a CT is refused by modality already): Image Type value 4
    TRANSMISSION or any value naming a mu-map, a description naming a mu-map or attenuation map,
    Units or Rescale Type of 1/cm; an image already corrected: Corrected Image (0028,0051) holding
    ATTN or SCAT; a series spectac wrote as a correction (Manufacturer "spectac" with Image Type
    DERIVED, or a description or Derivation Description starting "spectac", except the "nc" copy
    of an NC image); a description that says attenuation-corrected (IRAC, CTAC, AC) and not NC.
    """
    description = " ".join(_texts(ds, "SeriesDescription"))
    image_type = [t.upper() for t in _texts(ds, "ImageType")]
    units = {t.upper().replace(" ", "") for t in _texts(ds, "Units") + _texts(ds, "RescaleType")}
    if len(image_type) > 3 and image_type[3] == "TRANSMISSION":
        return "is an attenuation map (Image Type TRANSMISSION), not an NC emission study"
    for text in [description, *image_type]:
        if MU_TEXT.search(text):
            return f"is an attenuation map ({text!r} names a mu-map), not an NC emission study"
    if units & MU_UNITS:
        return f"is an attenuation map (values in {sorted(units & MU_UNITS)[0]}), not an NC emission study"
    comments = " ".join(_texts(ds, "ImageComments"))
    derivation = " ".join(_texts(ds, "DerivationDescription"))
    manufacturer = " ".join(_texts(ds, "Manufacturer")).lower()
    by_spectac = (
        (manufacturer == "spectac" and image_type[:1] == ["DERIVED"])
        or derivation.lower().startswith("spectac")
        or description.lower().startswith("spectac")
    )
    if by_spectac and (description != NC_COPY_DESCRIPTION or FORCED_NOTE in comments):
        return f"is a series spectac wrote ({description or derivation!r}): already corrected"
    corrected = {t.upper() for t in _texts(ds, "CorrectedImage")}
    for flag, what in (("ATTN", "attenuation"), ("SCAT", "scatter")):
        if flag in corrected:
            return f"is already {what}-corrected (Corrected Image (0028,0051) lists {flag})"
    if AC_TEXT.search(description) and not NC_TEXT.search(description):
        return f"is already attenuation-corrected (Series Description {description!r})"
    return None
