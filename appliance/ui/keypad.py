"""The in-app on-screen keypad (Qt's virtual keyboard does not work under the Wayland kiosk
compositor). It types into whichever `KeypadField` is active; keys never take focus."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLineEdit, QPushButton, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from appliance.ui import theme

# Rows of keys per layout. IDs are upper case letters, digits and dash (identifiers.ID_CHARACTERS).
ID_ROWS = ("1234567890", "QWERTYUIOP", "ASDFGHJKL-", "ZXCVBNM")
PIN_ROWS = ("123", "456", "789", "0")
TEXT_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
SYMBOL_ROWS = ("!@#$%^&*()", "-_=+[]{};:", "'\",.<>/?\\|", "`~")

BACKSPACE = "⌫"
CLEAR = "Clear"
SHIFT = "Shift"
SYMBOLS = "#+="
LETTERS = "abc"
SPACE = "Space"


class KeypadField(QLineEdit):
    """A text field filled from the keypad; tapping it makes it the keypad's target."""

    tapped = Signal()

    def __init__(self, secret: bool = False, max_length: int = 64) -> None:
        super().__init__()
        self.setReadOnly(True)           # no system keyboard pops up; the keypad types
        self.setMaxLength(max_length)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        if secret:
            self.setEchoMode(QLineEdit.EchoMode.Password)
        self.setProperty("active", False)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.tapped.emit()
        super().mousePressEvent(event)

    def set_active(self, active: bool) -> None:
        self.setProperty("active", active)
        theme.restyle(self)


class Keypad(QWidget):
    """Keys in `rows`; `text=True` adds Shift, symbols and space (for passphrases).

    Every layout (letters, capitals, symbols) is built once, up front, as a page of its own:
    switching between them only shows another page, because rebuilding some forty buttons took
    the GUI thread 70-100 ms on every Shift."""

    edited = Signal()

    def __init__(self, rows: tuple[str, ...], text: bool = False) -> None:
        super().__init__()
        self._letter_rows = rows
        self._text = text
        self._shift = False
        self._symbols = False
        self.target: KeypadField | None = None
        self._pages = QStackedWidget()
        self._pages.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._pages)
        self._layouts: dict[tuple[bool, bool], tuple[QWidget, list[QPushButton]]] = {}
        for shift, symbols in ((False, False), (True, False), (False, True)) if text else ((False, False),):
            self._layouts[(shift, symbols)] = self._build(shift, symbols)
        self._show_layout()

    def attach(self, field: KeypadField) -> None:
        if self.target is not None:
            self.target.set_active(False)
        self.target = field
        field.set_active(True)

    def press(self, key: str) -> None:
        """What a tap on `key` does (also used by tests and the service trigger test)."""
        field = self.target
        if key == SHIFT:
            self._shift = not self._shift
            self._show_layout()
            return
        if key in (SYMBOLS, LETTERS):
            self._symbols = key == SYMBOLS
            self._show_layout()
            return
        if field is None:
            return
        if key == BACKSPACE:
            field.setText(field.text()[:-1])
        elif key == CLEAR:
            field.clear()
        else:
            character = " " if key == SPACE else key
            if len(field.text()) < field.maxLength():
                field.setText(field.text() + character)
            if self._shift:          # one-shot shift, as on a phone
                self._shift = False
                self._show_layout()
        self.edited.emit()

    def keys(self) -> list[QPushButton]:
        """The keys shown now."""
        return list(self._buttons)

    def _show_layout(self) -> None:
        page, self._buttons = self._layouts[(self._shift and not self._symbols, self._symbols)]
        self._pages.setCurrentWidget(page)

    def _build(self, shift: bool, symbols: bool) -> tuple[QWidget, list[QPushButton]]:
        if symbols:
            rows = [list(row) for row in SYMBOL_ROWS]
        else:
            rows = [list(row.upper() if shift else row) for row in self._letter_rows]
        specials = [BACKSPACE, CLEAR]
        if self._text:
            specials = [SHIFT, LETTERS if symbols else SYMBOLS, SPACE, BACKSPACE, CLEAR]
        rows.append(specials)
        page = QWidget()
        grid = QGridLayout(page)
        grid.setSpacing(6)
        grid.setContentsMargins(0, 0, 0, 0)
        buttons = []
        columns = max(len(row) for row in rows)
        for r, row in enumerate(rows):
            span = max(1, columns // len(row)) if r == len(rows) - 1 else 1
            offset = 0 if r == len(rows) - 1 else (columns - len(row)) // 2
            for c, key in enumerate(row):
                button = theme.button(key, "key")
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
                button.setAutoRepeat(key == BACKSPACE)
                button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
                button.clicked.connect(lambda _=False, k=key: self.press(k))
                grid.addWidget(button, r, offset + c * span, 1, span)
                buttons.append(button)
        self._pages.addWidget(page)
        return page, buttons
