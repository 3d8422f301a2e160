"""The worklist service process (`appliance worklist run`) over real worklist servers: entries
with non-Latin names reach the kiosk's side intact; down, empty and refusing RIS each arrive as
one line, and a RIS going down leaves today's list; the service writes nothing but its socket
and logs no patient data; `worklist query` for service engineers. In process, against every
kind of peer: tests/test_worklist_channel.py."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from appliance.worklist.client import WorklistClient
from appliance.worklist.protocol import decode_answer
from tests.servers import end_process
from tests.servers.dcmtk import Wlmscpfs
from tests.servers.orthanc import Orthanc
from tests.servers.worklist_files import JAPANESE, STEADY_DAY_ENV, write_worklist_file
from tests.test_worklist_query import MUELLER, ROOM, YAMADA
from tests.waiting import wait_for

# What must never reach the appliance's disk, in the encodings a careless writer might use.
SECRETS = [MUELLER.patient_name, "Müller", "Zoë", "山田", "やまだ", MUELLER.birth_date, YAMADA.birth_date]


def secret_bytes():
    for text in SECRETS:
        for encoding in ("utf-8", "latin-1", "utf-16-le", "iso2022_jp", "unicode_escape"):
            try:
                yield text.encode(encoding)
            except UnicodeEncodeError:
                pass
        yield json.dumps(text).encode()   # \u escapes as JSON writes them


@pytest.fixture(params=["wlmscpfs", "orthanc"])
def ris(request, tmp_path):
    if request.param == "wlmscpfs":
        server = Wlmscpfs().start(tmp_path / "ris")
    else:
        (tmp_path / "worklists").mkdir()
        server = Orthanc().start(tmp_path / "ris", worklists_dir=tmp_path / "worklists")
    yield server
    server.stop()


def write_config(tmp_path, server, **worklist) -> os.PathLike:
    values = {"host": "127.0.0.1", "port": server.dicom_port, "called_ae": server.aet,
              "calling_ae": "TREATMENT1", "station_ae": ROOM, "refresh_s": 3600.0, "timeout_s": 20.0,
              **worklist}
    lines = [f'{key} = {json.dumps(value)}' for key, value in values.items()]
    config = tmp_path / "appliance.toml"
    config.write_text('[data]\ndir = "data"\n[worklist]\n' + "\n".join(lines) + "\n")
    return config


@pytest.fixture
def service_process(tmp_path):
    """Starts `appliance worklist run --config F` and yields a function doing so; stops it by PID."""
    started = []

    def start(config):
        log = open(tmp_path / "service.log", "wb")   # the test's capture of its stderr, not the appliance's disk
        process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "worklist", "run", "--config",
                                    str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **STEADY_DAY_ENV})
        log.close()
        started.append(process)
        socket_path = tmp_path / "data" / "run" / "worklist.sock"
        wait_for(lambda: socket_path.exists() or process.poll() is not None, 60, "the worklist socket")
        # Generous: before its first answer the service queries the RIS, on a busy machine.
        return process, WorklistClient(socket_path, query_timeout_s=20, answer_timeout_s=60)

    yield start
    for process in started:
        end_process(process)


def test_the_kiosk_side_gets_todays_entries_intact_and_nothing_else_touches_the_disk(
        ris, tmp_path, service_process):
    write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
    process, client = service_process(write_config(tmp_path, ris))

    answer = client.fetch()
    assert (answer.status, answer.entries) == ("ok", (MUELLER,))
    write_worklist_file(ris.worklists_dir, YAMADA, station_ae=ROOM, character_set=JAPANESE)
    assert client.fetch().entries == (MUELLER,)                     # the last answer, from memory
    assert client.fetch(refresh=True).entries == (MUELLER, YAMADA)  # asked anew
    assert client.fetch().entries == (MUELLER, YAMADA)

    socket_path = tmp_path / "data" / "run" / "worklist.sock"
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    assert [p for p in (tmp_path / "data").rglob("*")] == [socket_path.parent, socket_path]

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not socket_path.exists()
    log = (tmp_path / "service.log").read_bytes()
    assert b"worklist: ok: 1 step scheduled today for ROOM1" in log
    assert b"Traceback" not in log
    assert [secret for secret in secret_bytes() if secret in log] == []


def test_ris_down_then_back_is_one_line_then_the_entries(tmp_path, service_process):
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
        ris.stop()
        _, client = service_process(write_config(tmp_path, ris))
        answer = client.fetch()
        assert answer.status == "unreachable" and answer.entries == ()
        assert answer.line.startswith(f"cannot reach the RIS WLMSCP at 127.0.0.1:{ris.dicom_port}")
        ris.restart()
        assert client.fetch(refresh=True).entries == (MUELLER,)
    finally:
        ris.stop()


def test_an_empty_worklist_is_one_line(tmp_path, service_process):
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        _, client = service_process(write_config(tmp_path, ris))
        answer = client.fetch()
    finally:
        ris.stop()
    assert (answer.status, answer.line, answer.entries) == ("empty", "nothing scheduled today for ROOM1 (XC)", ())


def test_a_refusing_ris_is_an_error_in_one_line(tmp_path, service_process):
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        _, client = service_process(write_config(tmp_path, ris, called_ae="NOT-THE-RIS"))
        answer = client.fetch()
    finally:
        ris.stop()
    assert answer.status == "error", (answer.line, (tmp_path / "service.log").read_text())
    assert answer.line == f"RIS NOT-THE-RIS at 127.0.0.1:{ris.dicom_port} refused the association: " \
                          f"Called AE title not recognised"


def test_a_second_service_on_the_same_socket_is_refused_in_one_line(tmp_path, service_process, appliance_cli):
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        config = write_config(tmp_path, ris)
        service_process(config)
        second = appliance_cli("worklist", "run", "--config", str(config), timeout=60)
        assert second.returncode == 2
        assert second.stderr.decode().strip().splitlines() == [
            f"appliance: worklist: another worklist service already serves {tmp_path / 'data/run/worklist.sock'}"]
    finally:
        ris.stop()


# --- worklist query, for service engineers ----------------------------------------------------

def test_query_prints_todays_steps_and_json(ris, tmp_path, appliance_cli):
    write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
    config = write_config(tmp_path, ris)
    shown = appliance_cli("worklist", "query", "--config", str(config), timeout=60, env=STEADY_DAY_ENV)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.decode().splitlines() == [
        "ok: 1 step scheduled today for ROOM1",
        "09:00  ACC-1  P-0001  Müller^Zoë  19800102  F  Laser, left forearm"]
    as_json = appliance_cli("worklist", "query", "--json", "--config", str(config), timeout=60, env=STEADY_DAY_ENV)
    assert decode_answer(as_json.stdout).entries == (MUELLER,)


def test_query_of_a_stopped_ris_is_one_line_and_exit_1(ris, tmp_path, appliance_cli):
    config = write_config(tmp_path, ris, timeout_s=5.0)
    ris.stop()
    shown = appliance_cli("worklist", "query", "--config", str(config), timeout=60)
    assert shown.returncode == 1
    assert shown.stdout.decode().startswith(f"unreachable: cannot reach the RIS {ris.aet} at 127.0.0.1:")
    assert len(shown.stdout.decode().splitlines()) == 1 and shown.stderr == b""


def test_query_without_a_host_or_with_a_bad_ae_title_is_one_line_and_exit_2(tmp_path, appliance_cli):
    (tmp_path / "a.toml").write_text('[worklist]\nport = 104\n')
    (tmp_path / "b.toml").write_text('[worklist]\nhost = "ris"\ncalling_ae = "MUCH-TOO-LONG-AE-TITLE"\n')
    for name, expected in [("a.toml", "worklist.host is not set"), ("b.toml", "worklist.calling_ae must be")]:
        shown = appliance_cli("worklist", "query", "--config", str(tmp_path / name))
        assert shown.returncode == 2
        lines = shown.stderr.decode().splitlines()
        assert len(lines) == 1 and expected in lines[0]


# --- a RIS going down does not take today's list ------------------------------------------------

def test_a_ris_going_down_leaves_the_list_it_answered_today_with_the_kiosk(tmp_path, service_process):
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
        _, client = service_process(write_config(tmp_path, ris))
        listed = client.fetch()
        assert listed.status == "ok"
        ris.stop()
        answer = client.fetch(refresh=True)
    finally:
        ris.stop()
    assert answer.status == "unreachable" and answer.line.startswith("cannot reach the RIS WLMSCP")
    assert (answer.entries, answer.queried_at) == ((MUELLER,), listed.queried_at)
    assert client.find_accession("ACC-1")[0] == MUELLER      # a barcode still finds today's patient
    entry, line = client.find_accession("ACC-9")
    assert entry is None and line.startswith("worklist unreachable: cannot reach the RIS WLMSCP")
