"""`appliance gateway run`, the service: it keeps passing, so a recording that could not be
delivered while the PACS was down arrives once the PACS is back, and SIGTERM ends it cleanly.
Its log names recordings by location only: no patient name in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.gatewaying import clinic_keys, record, write_config  # noqa: F401
from tests.servers import commitment_port  # noqa: F401  (a fixture)
from tests.servers.orthanc import Orthanc
from tests.test_gateway_end_to_end import CARD
from tests.waiting import wait_for


def test_the_service_delivers_once_the_pacs_is_back_and_stops_on_sigterm(
        tmp_path, clinic_keys, appliance_cli, commitment_port):  # noqa: F811
    usb = tmp_path / "usb"
    record(usb, clinic_keys, card=CARD)
    orthanc = Orthanc().start(tmp_path, extra_config={
        "DicomModalities": {"gateway": ["TREATMENT_GW", "127.0.0.1", commitment_port]}})
    orthanc.stop()
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port, directories=[usb],
                          retry_s=0.5, refresh_s=0.2)

    def status() -> dict:
        return json.loads(appliance_cli("gateway", "status", "--config", str(config), "--json").stdout)

    log = open(tmp_path / "service.log", "w+b")
    service = subprocess.Popen([sys.executable, "-m", "appliance.cli", "gateway", "run", "--config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        wait_for(lambda: status()["counts"]["failed"] == 1, timeout=60, what="a failed delivery while the PACS is down")
        (failed,) = status()["deliveries"]
        assert failed["state"] == "failed" and "does not answer" in failed["reason"]
        orthanc.restart()
        wait_for(lambda: status()["counts"]["delivered"] == 1, timeout=120, what="the delivery once the PACS is back")
        assert len(orthanc.rest("/instances")) == 1
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        orthanc.stop()
    log.seek(0)
    text = log.read().decode()
    assert "does not answer" in text and "delivered, 1 instance(s)" in text
    assert "Traceback" not in text
    assert "Müller" not in text and "19761105" not in text and "PID-0042" not in text
    log.close()
