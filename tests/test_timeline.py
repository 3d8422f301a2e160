"""The clip timeline: emissions and laser-on totals a reviewer reads from a clip's events."""

import pytest

from appliance.timeline import ClipEvent, emissions, events_from_manifest, laser_on_total, manifest_metadata


def laser(t, level, edge):
    return ClipEvent(t, "laser", level, edge)


def test_emissions_pair_on_and_off_edges_and_ignore_other_inputs():
    events = [laser(1.0, 1, 3), ClipEvent(1.5, "footswitch", 0, 4), laser(2.5, 0, 5), laser(4.0, 1, 6), laser(4.25, 0, 7)]
    assert emissions(events, 10.0) == [(1.0, 2.5), (4.0, 4.25)]
    assert laser_on_total(events, 10.0) == pytest.approx(1.75)


def test_an_emission_still_on_at_the_end_ends_with_the_clip_and_one_on_at_the_start_begins_at_zero():
    assert emissions([laser(2.0, 0, 8), laser(5.0, 1, 9)], 6.0) == [(0.0, 2.0), (5.0, 6.0)]


def test_a_mapped_time_a_hair_outside_the_clip_clamps_to_it():
    assert emissions([laser(-0.002, 1, 1), laser(3.0, 0, 2)], 3.0) == [(0.0, 3.0)]


def test_manifest_metadata_round_trips_through_events_from_manifest():
    events = [laser(2.0, 0, 2), laser(0.5, 1, 1), ClipEvent(0.25, "interlock", 0, 0)]
    metadata = manifest_metadata(events, 3.0, 0.8)
    assert [record["edge"] for record in metadata["events"]] == [0, 1, 2]
    assert metadata["timeline"] == {"laser_on_s": 1.5, "emissions": [[0.5, 2.0]], "clock_uncertainty_ms": 0.8}
    assert events_from_manifest(metadata) == sorted(events, key=lambda event: event.t)
    assert events_from_manifest({}) == []


def test_a_malformed_event_record_is_refused():
    with pytest.raises(ValueError):
        events_from_manifest({"events": [{"t": 1.0, "input": "camera", "level": 1, "edge": 1}]})


def test_the_documented_vector_docs_vault_format_md():
    from appliance.vault.manifest import canonical

    events = [ClipEvent(1.2, "footswitch", 1, 41), ClipEvent(1.50025, "laser", 1, 42), laser(2.25, 0, 43),
              ClipEvent(3.0, "interlock", 0, 44), ClipEvent(3.1, "footswitch", 0, 45)]
    assert canonical(manifest_metadata(events, 4.0, 1.734)).decode() == (
        '{"events":[{"edge":41,"input":"footswitch","level":1,"t":1.2},'
        '{"edge":42,"input":"laser","level":1,"t":1.50025},{"edge":43,"input":"laser","level":0,"t":2.25},'
        '{"edge":44,"input":"interlock","level":0,"t":3.0},{"edge":45,"input":"footswitch","level":0,"t":3.1}],'
        '"timeline":{"clock_uncertainty_ms":1.734,"emissions":[[1.50025,2.25]],"laser_on_s":0.74975}}')
