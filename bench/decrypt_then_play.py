"""The old design's review pipeline, for `appliance bench portal` to compare against: download
the vault, decrypt all of it to a file on tmpfs (/dev/shm: RAM, the kindest case; never a disk),
then play that file from a plain static file server (werkzeug send_file, Range, HTTP) in Debian's
chromium, measured by the portal benchmark's own page script."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path


def old_design(weed, bucket: str, uid: str, recipient_key: Path, passphrase: str, seek_script: str,
               seeks: int) -> dict:
    """Time to first frame and seek times (`seek_script`'s) of the recording `uid` played so."""
    from flask import Flask, send_file
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from appliance import vault
    from bench.served_portal import CHROMIUM, FLAGS

    client = weed.client()
    key = next(item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]
               if uid in item["Key"] and not item["Key"].endswith(".manifest"))
    identity = vault.keys.load_identity(recipient_key, passphrase.encode())
    directory = Path(tempfile.mkdtemp(prefix="bench-portal-old-", dir="/dev/shm"))
    plain = directory / "recording.mp4"
    try:
        started = time.monotonic()
        ciphertext = directory / "recording.vault"
        client.download_file(bucket, key, str(ciphertext))
        with vault.open_reader(ciphertext, identity) as reader, open(plain, "wb") as out:
            shutil.copyfileobj(reader, out, 1 << 20)
        ciphertext.unlink()
        decrypt_s = time.monotonic() - started
        app = Flask("old-design")
        app.add_url_rule("/video", "video", lambda: send_file(plain, mimetype="video/mp4", conditional=True))
        app.add_url_rule("/", "page", lambda: "<html><body></body></html>")
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                try:
                    page = browser.new_page()
                    page.set_default_timeout(300_000)
                    page.goto(f"http://127.0.0.1:{server.server_port}/")
                    measured = page.evaluate(seek_script, ["/video", seeks, 16])
                finally:
                    browser.close()
        finally:
            server.shutdown()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    play_s = measured["first"] / 1000
    return {"decrypt_to_tmpfs_s": round(decrypt_s, 3), "first_frame_from_file_s": round(play_s, 3),
            "time_to_first_frame_s": round(decrypt_s + play_s, 3), "seek_times_ms": measured["times"],
            "temp_file_on": "/dev/shm (tmpfs)"}
