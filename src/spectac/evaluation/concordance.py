"""NC beside AC: for each study and coronary territory, is a defect seen in NC, in an AC image, in both?

Readers read the AC image beside the NC one: a defect seen in both is believed, one that AC
removes is usually an attenuation artefact of NC, and one that only AC shows needs a reason. A
learned AC that invents or erases a defect shows itself here, against CT-AC and against the truth.

A territory is read as showing a defect when the summed score of its segments is at least
:data:`TERRITORY_SUMMED_SCORE`. Per study, territory and AC method (every method but NC, CT-AC
included), ``status`` is:

- ``both``: seen in NC and in the AC image;
- ``added by AC``: seen in the AC image only;
- ``removed by AC``: seen in NC only;
- ``neither``;
- ``n/a: LV not found in NC|<method>|both``: no reading possible.

The truth of a territory (``truth``: "defect", "normal" or "" when unknown) is the phantom's
(:mod:`spectac.evaluation.truth`): a defect when one of its segments loses at least
``VISIBLE_SEGMENT_LOSS`` of its counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spectac.evaluation.columns import NC
from spectac.segments import TERRITORIES, TERRITORY_SEGMENTS

#: A territory shows a defect when the summed score of its segments is >= 2 (one moderately
#: reduced segment, or two mildly reduced ones): a single equivocal segment (score 1) is not read
#: as a defect. A common per-vessel criterion of semi-quantitative reading; a convention here.
TERRITORY_SUMMED_SCORE = 2

STATUSES = ("both", "added by AC", "removed by AC", "neither")
TABLE_COLUMNS = ("case_id", "patient_id", "state", "territory", "method", "truth", "seen_nc", "seen_ac", "status")
SUMMARY_COLUMNS = ("method", "state", "territories", "both", "added", "removed", "neither", "not_read",
                   "both_defect", "both_normal", "added_defect", "added_normal", "removed_defect", "removed_normal",
                   "neither_defect", "neither_normal")


def territory_seen(row: pd.Series, territory: str) -> bool:
    """Whether a clinical.csv row (LV found) reads a defect in the territory."""
    return int(sum(row[f"seg{s}"] for s in TERRITORY_SEGMENTS[territory])) >= TERRITORY_SUMMED_SCORE


def _truth(row: pd.Series, territory: str) -> str:
    if pd.isna(row["truth_abnormal"]):
        return ""
    territories = str(row["truth_territories"]) if pd.notna(row["truth_territories"]) else ""
    return "defect" if territory in territories.split(";") else "normal"


def nc_ac_table(clinical: pd.DataFrame, nc: str = NC) -> pd.DataFrame:
    """A row per study, territory and AC method (:data:`TABLE_COLUMNS`; see the module docstring)."""
    rows = []
    by_study = {case_id: part.set_index("method") for case_id, part in clinical.groupby("case_id", sort=False)}
    for case_id, part in by_study.items():
        if nc not in part.index:
            continue
        base = part.loc[nc]
        for method in [m for m in part.index if m != nc]:
            row = part.loc[method]
            for territory in TERRITORIES:
                nc_ok, ac_ok = bool(base["lv_found"]), bool(row["lv_found"])
                seen_nc = territory_seen(base, territory) if nc_ok else None
                seen_ac = territory_seen(row, territory) if ac_ok else None
                if seen_nc is None or seen_ac is None:
                    where = "both" if not (nc_ok or ac_ok) else ("NC" if not nc_ok else method)
                    status = f"n/a: LV not found in {where}"
                else:
                    status = STATUSES[[seen_nc and seen_ac, seen_ac and not seen_nc, seen_nc and not seen_ac,
                                       True].index(True)]
                rows.append({"case_id": case_id, "patient_id": base["patient_id"], "state": base["state"],
                             "territory": territory, "method": method, "truth": _truth(base, territory),
                             "seen_nc": seen_nc, "seen_ac": seen_ac, "status": status})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def nc_ac_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Counts per AC method and state (:data:`SUMMARY_COLUMNS`): territories read, seen in both,
    added by AC, removed by AC, in neither, not read (an LV not found), and each split by the
    truth of the territory (``_defect``: the truth has a defect there; ``_normal``: it has not;
    territories of unknown truth are in the totals only)."""
    rows = []
    for (method, state), part in table.groupby(["method", "state"], sort=False):
        row: dict[str, object] = {"method": method, "state": state, "territories": len(part)}
        for status, name in zip(STATUSES, ("both", "added", "removed", "neither")):
            sel = part["status"] == status
            row[name] = int(sel.sum())
            for truth in ("defect", "normal"):
                row[f"{name}_{truth}"] = int((sel & (part["truth"] == truth)).sum())
        row["not_read"] = int(part["status"].str.startswith("n/a").sum())
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return frame.astype({c: np.int64 for c in SUMMARY_COLUMNS[2:]}) if len(frame) else frame
