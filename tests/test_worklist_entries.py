"""The worklist entry type and its JSON form (the channel's payload): pure, exhaustively."""

import json

import pytest

from appliance.worklist.entries import FIELD_NAMES, WorklistEntry, entry_from_json, entry_to_json

MUELLER = WorklistEntry(patient_name="Müller^Zoë", patient_id="P-0001", birth_date="19800102", sex="F",
                        accession_number="ACC-1", study_instance_uid="1.2.826.0.1.3680043.10.1.1",
                        requested_procedure="Laser treatment, left forearm", scheduled_step_id="SPS-1",
                        scheduled_start="20261201093000")


def test_an_entry_round_trips_through_json_text_with_non_latin_names():
    yamada = WorklistEntry(**{**entry_to_json(MUELLER), "patient_name": "Yamada^Tarou=山田^太郎=やまだ^たろう"})
    for entry in (MUELLER, yamada):
        assert entry_from_json(json.loads(json.dumps(entry_to_json(entry)))) == entry


def test_the_json_form_has_exactly_the_identity_card_fields_the_worklist_provides():
    assert set(entry_to_json(MUELLER)) == {
        "patient_name", "patient_id", "birth_date", "sex", "accession_number", "study_instance_uid",
        "requested_procedure", "scheduled_step_id", "scheduled_start"} == set(FIELD_NAMES)


def test_repr_leaves_out_the_name_and_the_birth_date():
    text = repr(MUELLER)
    assert "Müller" not in text and "19800102" not in text
    assert "P-0001" in text


def test_empty_optional_values_are_allowed():
    entry = WorklistEntry(**{**entry_to_json(MUELLER), "birth_date": "", "sex": "", "scheduled_start": ""})
    assert entry_from_json(entry_to_json(entry)) == entry


@pytest.mark.parametrize("change, message", [
    ({"sex": "X"}, "sex"),
    ({"birth_date": "1980-01-02"}, "birth_date"),
    ({"birth_date": "198001"}, "birth_date"),
    ({"scheduled_start": "202612010930"}, "scheduled_start"),
    ({"patient_id": 17}, "patient_id"),
    ({"patient_name": None}, "patient_name"),
])
def test_a_malformed_value_is_refused_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        entry_from_json({**entry_to_json(MUELLER), **change})


@pytest.mark.parametrize("data, message", [
    ([], "JSON object"),
    ("Müller", "JSON object"),
    ({k: v for k, v in entry_to_json(MUELLER).items() if k != "accession_number"}, "missing accession_number"),
    ({**entry_to_json(MUELLER), "comment": "x"}, "unknown comment"),
])
def test_a_malformed_object_is_refused_naming_the_problem(data, message):
    with pytest.raises(ValueError, match=message):
        entry_from_json(data)
