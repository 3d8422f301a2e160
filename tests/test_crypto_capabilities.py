"""`mlkem_supported()`: the post-quantum algorithms vault v2 needs are checked by running them, and
a library without them is named in one line at start-up and by `appliance doctor`.

This machine has them (cryptography's wheel bundles OpenSSL 3.5+), so the "missing" outcome is
exercised through the probes seam: a probe standing for an algorithm the library refuses."""

from __future__ import annotations

import logging

import pytest
from cryptography.exceptions import UnsupportedAlgorithm

from appliance.commands import doctor
from appliance.controller import Controller
from appliance.vault import capabilities
from tests.test_controller_e2e import key_dir, small_settings  # noqa: F401


def refused() -> bool:
    raise UnsupportedAlgorithm("ML-KEM is not supported by this backend")


def without_mlkem() -> dict:
    return {**capabilities.PROBES, "ML-KEM-768": refused}


def test_this_machine_has_mlkem_x25519_their_hpke_hybrid_and_mldsa():
    assert capabilities.missing_algorithms() == []
    assert capabilities.mlkem_supported()


def test_an_algorithm_the_library_refuses_is_named_as_missing():
    assert capabilities.missing_algorithms(without_mlkem()) == ["ML-KEM-768"]
    assert not capabilities.mlkem_supported(without_mlkem())
    # A probe whose round trip disagrees counts as missing as well as one that raises.
    assert not capabilities.mlkem_supported({"X25519": lambda: False})


def test_the_missing_line_names_the_algorithm_the_library_and_the_fix():
    line = capabilities.unsupported_line(["ML-KEM-768", "ML-DSA-65"])
    assert "\n" not in line
    assert "lacks ML-KEM-768, ML-DSA-65" in line
    assert "cryptography 50." in line and "OpenSSL" in line and "cryptography >= 48" in line


def test_doctor_reports_the_cryptography_ok_with_its_versions():
    check = doctor.check_cryptography()
    assert check.outcome == doctor.OK
    assert "ML-KEM-768" in check.finding and "ML-DSA-65" in check.finding and "OpenSSL" in check.finding


def test_doctor_blocks_recording_when_mlkem_is_missing():
    check = doctor.check_cryptography(without_mlkem())
    assert check.outcome == doctor.FAIL
    assert "lacks ML-KEM-768" in check.finding and check.fix


@pytest.mark.parametrize("probes, logged", [(None, False), ("without ML-KEM", True)])
def test_start_up_says_in_one_line_when_mlkem_is_missing(tmp_path, key_dir, caplog, monkeypatch,  # noqa: F811
                                                         probes, logged):
    if probes:
        monkeypatch.setattr(capabilities, "PROBES", without_mlkem())
    controller = Controller(small_settings(tmp_path / "data", key_dir))
    with caplog.at_level(logging.ERROR, logger="appliance.controller"):
        controller.start()
        controller.stop()
    lines = [record.getMessage() for record in caplog.records if "post-quantum" in record.getMessage()]
    assert len(lines) == (1 if logged else 0)
    if logged:
        assert "lacks ML-KEM-768;" in lines[0]
