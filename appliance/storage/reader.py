"""A read-only view of the records for the kiosk and the read-only commands.

The connection is opened with `mode=ro`, so it cannot write even by mistake, and the database is
in WAL mode, so a read never waits for the writer's transaction (it sees the last commit). One
connection, guarded by a lock: any thread may read, one at a time; never from the GUI thread,
which takes its figures from the controller's snapshots or reads off-thread.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from appliance.errors import BadInput
from appliance.storage.database import MIGRATIONS, damaged_database, too_new
from appliance.storage.layout import DataLayout
from appliance.storage.queries import RecordQueries


class StoreReader(RecordQueries):
    def __init__(self, data_dir: Path):
        self.layout = DataLayout(Path(data_dir))
        if not self.layout.database.is_file():
            raise BadInput(f"no appliance database in {self.layout.root}")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(f"{self.layout.database.absolute().as_uri()}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise damaged_database(self.layout.database, error) from None
        if version != len(MIGRATIONS):
            self._db.close()
            if version > len(MIGRATIONS):
                raise too_new(self.layout.database, version)
            raise BadInput(f"the database {self.layout.database} has schema version {version}; "
                           "start the appliance once to bring it up to date")

    def _rows(self, sql: str, params=()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
