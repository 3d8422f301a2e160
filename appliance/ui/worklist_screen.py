"""Session entry from the day's worklist: tap the patient, check name, birth date and ID against
the wristband, type the operator ID, start. Manual entry (session_entry.py) stays behind its
button, and is what the screen points to when the worklist is empty or unreachable.

The worklist is asked for on a worker thread (the worklist service answers over its Unix
socket, which may be slow or stalled); the answer comes back by a queued signal, so the GUI
thread never waits. Names and birth dates are only painted, never logged."""

from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QSizePolicy, QVBoxLayout, QWidget

from appliance.ui import theme
from appliance.ui.calls import OffThread
from appliance.ui.identifiers import MAX_ID_LENGTH, id_problem
from appliance.ui.keypad import ID_ROWS, Keypad, KeypadField
from appliance.ui.worklist_listing import (answer_line, day_order, display_birth_date, display_name, display_sex,
                                           display_time, list_row)
from appliance.worklist.protocol import WorklistAnswer

ASKING = "Asking the worklist service…"

log = logging.getLogger(__name__)


class WorklistScreen(QWidget):
    cancelled = Signal()
    manual_entry = Signal()

    def __init__(self, controller, calls, fetch: Callable[..., WorklistAnswer]) -> None:
        """`fetch(refresh=bool)` returns the worklist service's answer: its last one, or a new
        query of the RIS when `refresh` (WorklistClient.fetch; called off the GUI thread)."""
        super().__init__()
        self._controller = controller
        self._calls = calls
        self._fetch = fetch
        self.background = OffThread(self)
        self._asked = 0                 # answers to an older question are dropped
        self.entries: list = []
        self.selected = None

        self.status_line = theme.label(ASKING, "muted")
        self.entry_list = QListWidget()
        self.entry_list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.entry_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)   # a tap opens the check
        self.entry_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.entry_list.setSpacing(4)
        self.entry_list.itemClicked.connect(self._tapped)
        self.cancel_button = theme.button("Cancel")
        self.manual_button = theme.button("Manual entry")
        self.refresh_button = theme.button("Refresh")
        listing = QWidget()
        column = QVBoxLayout(listing)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(theme.label("Today's worklist", "title"))
        column.addWidget(self.status_line)
        column.addWidget(self.entry_list, 1)
        row = QHBoxLayout()
        for button in (self.cancel_button, self.manual_button, self.refresh_button):
            row.addWidget(button)
        column.addLayout(row)

        self.name = theme.label("", "identity")
        self.birth_date = theme.label("", "identity")
        self.patient_id = theme.label("", "identity")
        self.details = theme.label("", "muted")
        self.operator = KeypadField(max_length=MAX_ID_LENGTH)
        self.keypad = Keypad(ID_ROWS)
        self.keypad.attach(self.operator)
        self.message = theme.label("", "message")
        for label in (self.name, self.birth_date, self.patient_id, self.details, self.message):
            # Whatever the RIS sends wraps within the column: a long word must not widen the
            # window past the screen and push the keypad off it.
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.back_button = theme.button("Back")
        self.confirm_button = theme.button("Start session", "primary")
        identity = QWidget()
        identity.setLayout(theme.form_column(
            theme.label("Check against the wristband", "title"), theme.label("Name", "muted"), self.name,
            theme.label("Born", "muted"), self.birth_date, theme.label("Patient ID", "muted"), self.patient_id,
            self.details, self.message, buttons=(self.back_button, self.confirm_button)))
        operator = QWidget()
        operator_column = QVBoxLayout(operator)
        operator_column.setContentsMargins(0, 0, 0, 0)
        operator_column.addWidget(theme.label("Operator ID"))
        operator_column.addWidget(self.operator)
        operator_column.addWidget(self.keypad, 1)
        confirmation = QWidget()
        halves = QHBoxLayout(confirmation)
        halves.setContentsMargins(0, 0, 0, 0)
        halves.addWidget(identity, 3)
        halves.addWidget(operator, 2)

        self.pages = theme.stacked_pages(self, listing, confirmation)
        self.cancel_button.clicked.connect(self._cancel)
        self.manual_button.clicked.connect(self.manual_entry.emit)
        self.refresh_button.clicked.connect(lambda: self.refresh(ask_the_ris=True))
        self.back_button.clicked.connect(self._back)
        self.confirm_button.clicked.connect(self._confirm)
        self.operator.tapped.connect(lambda: self.keypad.attach(self.operator))
        self.keypad.edited.connect(lambda: self.message.setText(""))

    @property
    def confirming(self) -> bool:
        return self.pages.currentIndex() == 1

    def open(self) -> None:
        """What "New session" does: the list page, emptied, and a fresh question."""
        self._forget_selection()
        self.operator.clear()
        self.pages.setCurrentIndex(0)
        self.refresh(ask_the_ris=False)

    def refresh(self, *, ask_the_ris: bool) -> None:
        """Asks the service for the list: the one it holds (it asks the RIS every refresh_s),
        or, for the Refresh button, a new query of the RIS."""
        self._asked += 1
        asked = self._asked
        self.refresh_button.setEnabled(False)
        self._show_line(ASKING, problem=False)
        self.background.run(lambda: self._fetch(refresh=ask_the_ris), done=lambda answer: self._answered(asked, answer),
                            failed=lambda error: self._failed(asked, error))

    def _failed(self, asked: int, error: Exception) -> None:
        # The client answers every failure it knows with a line; this is a bug. Its traceback
        # names the code, not the patient: the entries never reach an exception's message.
        log.error("reading the worklist failed unexpectedly", exc_info=error)
        self._answered(asked, error)

    def _answered(self, asked: int, answer) -> None:
        if asked != self._asked:
            return
        self.refresh_button.setEnabled(True)
        line, problem = answer_line(answer)
        self._show_line(line, problem)
        self.entries = day_order(getattr(answer, "entries", None) or ())
        self.entry_list.clear()
        for entry in self.entries:
            self.entry_list.addItem(QListWidgetItem(list_row(entry)))
        # With nothing to tap, manual entry is the way on: it gets the primary look.
        self.manual_button.setProperty("role", "primary" if not self.entries else None)
        theme.restyle(self.manual_button)

    def _show_line(self, line: str, problem: bool) -> None:
        self.status_line.setText(line)
        self.status_line.setProperty("role", "message" if problem else "muted")
        theme.restyle(self.status_line)

    def _tapped(self, item: QListWidgetItem) -> None:
        self.select(self.entries[self.entry_list.row(item)])

    def select(self, entry) -> None:
        """The confirmation page for `entry`, big enough to read against a wristband."""
        self.selected = entry
        self.name.setText(display_name(entry.patient_name))
        self.birth_date.setText(f"{display_birth_date(entry.birth_date)}   ({display_sex(entry.sex)})")
        self.patient_id.setText(entry.patient_id or "not given")
        self.details.setText(" · ".join(part for part in (
            display_time(entry.scheduled_start), entry.requested_procedure,
            f"accession {entry.accession_number}" if entry.accession_number else "") if part))
        self.message.setText("")
        self.keypad.attach(self.operator)
        self.pages.setCurrentIndex(1)

    def _confirm(self) -> None:
        problem = id_problem("operator ID", self.operator.text())
        if problem:
            self.message.setText(problem)
            return
        self.confirm_button.setEnabled(False)
        self.back_button.setEnabled(False)
        self.message.setText("Opening the session…")
        # The entry's patient ID is the session's subject ID; the entry itself is sealed into
        # each recording (the controller keeps it in memory only).
        self._calls.run(self._controller.begin_session, self.selected.patient_id, self.operator.text(), self.selected,
                        done=self._opened)

    def _opened(self, refusal: str | None) -> None:
        self.confirm_button.setEnabled(True)
        self.back_button.setEnabled(True)
        if refusal:                       # a guard refused: say why, keep the selection
            self.message.setText(refusal)
            return
        self._forget_list()               # the session is open: the live view takes over
        self.pages.setCurrentIndex(0)

    def _back(self) -> None:
        self._forget_selection()
        self.pages.setCurrentIndex(0)

    def _cancel(self) -> None:
        self.forget()
        self.cancelled.emit()

    def forget(self) -> None:
        """Drops the day's list, the selection and any answer still on its way: the patients'
        names stay on screen (and in memory) only while this screen is in use. The window calls
        it when a session or a fault takes over, whichever way the session was opened."""
        self._asked += 1
        self.refresh_button.setEnabled(True)
        if self.entries or self.selected is not None:
            self._forget_list()

    def _forget_list(self) -> None:
        self._forget_selection()
        self.entries = []
        self.entry_list.clear()

    def _forget_selection(self) -> None:
        """The confirmation's labels hold the patient's name: cleared as soon as they are not shown."""
        self.selected = None
        for widget in (self.name, self.birth_date, self.patient_id, self.details, self.message):
            widget.setText("")
