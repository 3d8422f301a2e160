"""Session entry: subject and operator IDs on the keypad, validated, then confirmed before the
session opens (a wrong subject ID files a treatment video under the wrong patient)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QWidget

from appliance.ui import theme
from appliance.ui.identifiers import MAX_ID_LENGTH, id_problem
from appliance.ui.keypad import ID_ROWS, Keypad, KeypadField


class SessionEntryScreen(QWidget):
    cancelled = Signal()

    def __init__(self, controller, calls) -> None:
        super().__init__()
        self._controller = controller
        self._calls = calls
        self.subject = KeypadField(max_length=MAX_ID_LENGTH)
        self.operator = KeypadField(max_length=MAX_ID_LENGTH)
        self.keypad = Keypad(ID_ROWS)
        self.message = theme.label("", "message")
        self.continue_button = theme.button("Continue", "primary")
        self.cancel_button = theme.button("Cancel")
        self.confirm_button = theme.button("Start session", "primary")
        self.back_button = theme.button("Back")
        self.confirm_text = theme.label("", "value")
        self.message_on_confirm = theme.label("", "message")

        entry = QWidget()
        form = QWidget()
        form.setLayout(theme.form_column(theme.label("New treatment session", "title"), theme.label("Subject ID"),
                                         self.subject, theme.label("Operator ID"), self.operator, self.message,
                                         buttons=(self.cancel_button, self.continue_button)))
        form.setMinimumWidth(400)
        row = QHBoxLayout(entry)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(form, 2)
        row.addWidget(self.keypad, 3)

        confirm = QWidget()
        confirm.setLayout(theme.form_column(
            theme.label("Check before starting", "title"), self.confirm_text,
            theme.label("The footswitch will start recording as soon as the session is open.", "muted"),
            self.message_on_confirm, buttons=(self.back_button, self.confirm_button)))

        self.pages = theme.stacked_pages(self, entry, confirm)

        self.subject.tapped.connect(lambda: self.keypad.attach(self.subject))
        self.operator.tapped.connect(lambda: self.keypad.attach(self.operator))
        self.keypad.edited.connect(lambda: self.message.setText(""))
        self.continue_button.clicked.connect(self._continue)
        self.cancel_button.clicked.connect(self._cancel)
        self.back_button.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        self.confirm_button.clicked.connect(self._confirm)
        self.reset()

    @property
    def confirming(self) -> bool:
        return self.pages.currentIndex() == 1

    def reset(self) -> None:
        self.subject.clear()
        self.operator.clear()
        self.message.setText("")
        self.message_on_confirm.setText("")
        self.pages.setCurrentIndex(0)
        self.keypad.attach(self.subject)

    def _continue(self) -> None:
        for label, field in (("subject ID", self.subject), ("operator ID", self.operator)):
            problem = id_problem(label, field.text())
            if problem:
                self.message.setText(problem)
                self.keypad.attach(field)
                return
        self.confirm_text.setText(f"Subject ID:  {self.subject.text()}\nOperator ID:  {self.operator.text()}")
        self.message_on_confirm.setText("")
        self.pages.setCurrentIndex(1)

    def _confirm(self) -> None:
        self.confirm_button.setEnabled(False)
        self.back_button.setEnabled(False)
        self.message_on_confirm.setText("Opening the session…")
        self._calls.run(self._controller.begin_session, self.subject.text(), self.operator.text(),
                        done=self._opened)

    def _opened(self, refusal: str | None) -> None:
        self.confirm_button.setEnabled(True)
        self.back_button.setEnabled(True)
        if refusal:                  # a guard refused: say why, keep what was typed
            self.message_on_confirm.setText(refusal)
            return
        self.reset()

    def _cancel(self) -> None:
        self.reset()
        self.cancelled.emit()
