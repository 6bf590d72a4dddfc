"""The stress state a series names (``spectac serve``'s ``state = "auto"``): stress or rest, from the
words a camera or a technologist puts in its header.

DICOM has no attribute for the stress state of a myocardial perfusion acquisition that vendors fill
reliably, so the words of Series Description, Protocol Name, Image ID (NM Image module) and Image
Type are searched, upper-cased, for

- stress: STRESS, STR, EX, EXERCISE, ADENO, ADENOSINE, REGADENOSON, DIPY, DIPYRIDAMOLE;
- rest: REST, RST.

A keyword counts only as a whole word, where anything but a letter separates words: "STR_IRNC",
"REST1" and "MPI-STRESS" match, "FOREST" and "RESTORED" do not (Python's ``\\b`` would miss
"STR_IRNC", the underscore being a word character). A series naming both states, or neither, is
unknown: the caller then assumes stress and says so.
"""

from __future__ import annotations

import re
from typing import Any

STRESS_WORDS = ("STRESS", "STR", "EX", "EXERCISE", "ADENO", "ADENOSINE", "REGADENOSON", "DIPY", "DIPYRIDAMOLE")
REST_WORDS = ("REST", "RST")
#: The attributes searched, in the order a finding names them.
STATE_KEYWORDS = ("SeriesDescription", "ProtocolName", "ImageID", "ImageType")


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Z])(?:" + "|".join(sorted(words, key=len, reverse=True)) + r")(?![A-Z])")


_STRESS, _REST = _pattern(STRESS_WORDS), _pattern(REST_WORDS)


def _text(header: Any, keyword: str) -> str:
    value = header.get(keyword) if hasattr(header, "get") else None
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def series_state(header: Any) -> tuple[str | None, str]:
    """(state, where it came from) of a series' header (a pydicom Dataset or a mapping of keywords):
    "stress" or "rest" and the attribute naming it, or None and why it is unknown (both states
    named, or neither)."""
    found: dict[str, list[str]] = {"stress": [], "rest": []}
    for keyword in STATE_KEYWORDS:
        text = _text(header, keyword).strip()
        upper = text.upper()
        for state, pattern in (("stress", _STRESS), ("rest", _REST)):
            if pattern.search(upper):
                found[state].append(f"{keyword} {text!r}")
    if found["stress"] and found["rest"]:
        return None, (f"the series names both stress ({', '.join(found['stress'])}) and rest "
                      f"({', '.join(found['rest'])})")
    for state in ("stress", "rest"):
        if found[state]:
            return state, f"from the series' {', '.join(found[state])}"
    return None, f"not named in the series' {', '.join(STATE_KEYWORDS[:-1])} or {STATE_KEYWORDS[-1]}"
