"""The headless appliance opening a session by accession number over the real worklist service
(dcmtk wlmscpfs as the RIS), killed mid-recording: the salvaged recording still carries the
patient's identity card; unknown accession and a stopped service are one line each; nothing of
the patient reaches the data directory, stdout or stderr in plaintext."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from appliance import vault
from appliance.storage.reader import StoreReader
from appliance.vault.identity_card import open_card
from appliance.vault.manifest import read_signed
from appliance.worklist.entries import entry_to_json
from firmware_bridge.simulator import Simulator
from tests.servers import end_process
from tests.servers.dcmtk import Wlmscpfs
from tests.servers.worklist_files import JAPANESE, STEADY_DAY_ENV, write_worklist_file
from tests.test_appliance_process import write_config
from tests.test_controller_e2e import identity, key_dir  # noqa: F401
from tests.test_session_identity import leaked_forms, plaintext_forms
from tests.test_worklist_query import MUELLER, ROOM, YAMADA
from tests.waiting import wait_for


class Headless:
    """`appliance run --headless`: JSON lines read on a thread, stderr kept in a file outside the data dir."""

    def __init__(self, config: Path, stderr: Path):
        with open(stderr, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", "run", "--headless", "--config", str(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, encoding="utf-8")
        self.replies: queue.Queue[dict] = queue.Queue()
        self.status: dict = {}
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.seen.append(line)
            document = json.loads(line)
            if "status" in document:
                self.status = document["status"]
            else:
                self.replies.put(document)

    def reply_to(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.replies.get(timeout=90)

    def state(self, name: str) -> None:
        wait_for(lambda: self.status.get("state") == name and self.status.get("link_up"), 60, f"state {name}")


def test_begin_by_accession_survives_a_kill_and_keeps_the_patient_off_the_disk(tmp_path, key_dir, identity):
    ris = Wlmscpfs().start(tmp_path / "ris")
    write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
    write_worklist_file(ris.worklists_dir, YAMADA, station_ae=ROOM, character_set=JAPANESE)
    data_dir, stderr = tmp_path / "data", tmp_path / "appliance.stderr"
    service = appliances = None
    try:
        with Simulator(str(tmp_path / "controller")) as simulator:
            config = write_config(tmp_path / "appliance.toml", data_dir, simulator.link_path, key_dir)
            with open(config, "a", encoding="utf-8") as out:
                out.write(f'[worklist]\nhost = "127.0.0.1"\nport = {ris.dicom_port}\ncalled_ae = "{ris.aet}"\n'
                          f'calling_ae = "TREATMENT1"\nstation_ae = "{ROOM}"\nrefresh_s = 3600.0\n')
            with open(stderr, "ab") as log:
                service = subprocess.Popen([sys.executable, "-m", "appliance.cli", "worklist", "run", "--config",
                                            str(config)], stdout=log, stderr=subprocess.STDOUT,
                                           env={**os.environ, **STEADY_DAY_ENV})
            wait_for(lambda: (data_dir / "run" / "worklist.sock").exists(), 60, "the worklist socket")

            first = appliances = Headless(config, stderr)
            first.state("Idle")
            unknown = first.reply_to("begin --accession ACC-404 TECH-1")
            assert not unknown["ok"] and unknown["error"] == \
                "no step with that accession number is scheduled today for this station"
            assert first.reply_to("begin --accession ACC-2 TECH-1")["ok"]
            first.state("Armed")
            simulator.press()
            first.state("Recording")
            wait_for(lambda: any(p.stat().st_size > 3 * 65536 for p in data_dir.glob("sessions/*/*.vault")), 20)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
            simulator.release()

            second = appliances = Headless(config, stderr)
            second.state("Idle")
            end_process(service)
            down = second.reply_to("begin --accession ACC-1 TECH-1")
            assert not down["ok"] and down["error"] == "worklist unreachable: the worklist service is not running"
            assert second.reply_to("quit")["ok"]
            assert second.process.wait(30) == 0
    finally:
        end_process(service)
        if appliances is not None and appliances.process.poll() is None:
            end_process(appliances.process, signal.SIGKILL)
        ris.stop()

    reader = StoreReader(data_dir)
    (summary,) = reader.sessions()
    (recording,) = reader.recordings(summary.session.uid)
    reader.close()
    assert (summary.session.subject_id, summary.session.accession_number, summary.session.study_instance_uid) == \
        (YAMADA.patient_id, "ACC-2", YAMADA.study_instance_uid)
    verification = vault.verify(recording.path, vault.keys.load_device_public(key_dir / "device.pub"))
    assert recording.state == "interrupted" and verification.ok and verification.state == "interrupted"
    card = open_card(read_signed(recording.path)[0], identity)
    assert {k: card[k] for k in entry_to_json(YAMADA)} == entry_to_json(YAMADA)
    assert (card["source"], card["operator_id"]) == ("worklist", "TECH-1")

    secrets = {"Müller", "Zoë", "Yamada", "Tarou", "山田", "太郎", "やまだ", "たろう", MUELLER.birth_date,
               YAMADA.birth_date}
    forms = {form for secret in secrets for form in plaintext_forms(secret)}
    captured = [stderr.read_bytes(), "".join(first.seen + second.seen).encode("utf-8")]
    assert b"Traceback" not in captured[0]
    for where, content in [*((path.name, path.read_bytes()) for path in data_dir.rglob("*") if path.is_file()),
                           ("stderr", captured[0]), ("stdout", captured[1])]:
        assert not leaked_forms(where, content, forms), where
