"""Where the appliance's log goes: stderr, which systemd files in the journal (and, in the
kiosk, the service screen's recent lines too).

INFO and above, filtered on each handler and not only on the root logger: a library that sets
DEBUG on its own logger (vmbpy logs every library load and call) would otherwise pass straight
through. Messages never carry subject IDs or key material.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def send_logs_to(*handlers: logging.Handler) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in handlers:
        handler.setLevel(logging.INFO)
        if handler.formatter is None:
            handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
