"""The stress state a series names (``spectac serve``'s ``state = "auto"``): read from Series
Description, Protocol Name, Image ID and Image Type as whole words; both or neither is unknown."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from spectac.errors import SpectacError
from spectac.io.dicom import series_state
from spectac.node.config import config_from_dict
from spectac.node.worker import Worker

NM_IMAGE_TYPE = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]


def header(**attributes) -> Dataset:
    ds = Dataset()
    ds.ImageType = NM_IMAGE_TYPE
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(("attributes", "state", "named"), [
    ({"SeriesDescription": "STRESS IRNC"}, "stress", "SeriesDescription 'STRESS IRNC'"),
    ({"SeriesDescription": "Stress_IRNC"}, "stress", "SeriesDescription"),
    ({"SeriesDescription": "STR_IRNC"}, "stress", "SeriesDescription"),
    ({"SeriesDescription": "MPI EX TOMO"}, "stress", "SeriesDescription"),
    ({"ProtocolName": "Regadenoson 1-day"}, "stress", "ProtocolName 'Regadenoson 1-day'"),
    ({"ProtocolName": "ADENO/MIBI"}, "stress", "ProtocolName"),
    ({"ProtocolName": "Dipyridamole SPECT"}, "stress", "ProtocolName"),
    ({"ImageID": "DIPY"}, "stress", "ImageID 'DIPY'"),
    ({"SeriesDescription": "REST IRNC"}, "rest", "SeriesDescription 'REST IRNC'"),
    ({"SeriesDescription": "rst1_tomo"}, "rest", "SeriesDescription"),
    ({"ImageID": "RST"}, "rest", "ImageID"),
    ({"ImageType": [*NM_IMAGE_TYPE, "REST"]}, "rest", "ImageType 'ORIGINAL\\\\PRIMARY\\\\RECON TOMO\\\\EMISSION\\\\REST'"),
    ({"SeriesDescription": "STRESS IRNC", "ProtocolName": "Myocardial perfusion"}, "stress", "SeriesDescription"),
])
def test_a_series_naming_one_state_gives_it_and_where(attributes, state, named):
    found, source = series_state(header(**attributes))
    assert found == state
    assert named in source


@pytest.mark.parametrize("attributes", [
    {},  # nothing but the NM Image Type: EMISSION, RECON TOMO name no state
    {"SeriesDescription": "IRNC"},
    {"SeriesDescription": "FOREST RESTORED EXTRA STRONG"},  # keywords inside words do not count
    {"SeriesDescription": "ADENOMA INDEX"},
])
def test_a_series_naming_no_state_is_unknown(attributes):
    found, source = series_state(header(**attributes))
    assert found is None and "not named" in source and "ImageType" in source


@pytest.mark.parametrize("attributes", [
    {"SeriesDescription": "STRESS/REST"},
    {"SeriesDescription": "STRESS IRNC", "ProtocolName": "REST-STRESS 1 day"},
    {"SeriesDescription": "EX", "ImageID": "RST"},
])
def test_a_series_naming_both_states_is_unknown(attributes):
    found, source = series_state(header(**attributes))
    assert found is None and "both stress" in source


def test_the_serve_state_setting_fixes_or_reads_the_state_and_says_when_it_is_assumed(tmp_path):
    base = {"ae_title": "A", "port": 104, "work": str(tmp_path)}
    assert config_from_dict(base).state == "auto"
    with pytest.raises(SpectacError, match="state is auto, stress, rest, not 'Stress'"):
        config_from_dict({**base, "state": "Stress"})
    auto = Worker(config_from_dict(base), store=None)
    assert auto.state_of(header(SeriesDescription="REST IRNC")) == ("rest", "from the series' SeriesDescription 'REST IRNC'")
    state, source = auto.state_of(header(SeriesDescription="IRNC"))
    assert state is None and source.endswith('stress assumed (state = "rest" in the serve configuration for rest studies)')
    fixed = Worker(config_from_dict({**base, "state": "rest"}), store=None)
    assert fixed.state_of(header(SeriesDescription="STRESS IRNC")) == (
        "rest", 'set in the serve configuration (state = "rest")')
