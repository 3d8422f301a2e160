"""Driving kiosk widgets the way a gloved hand does: taps at the centre of visible controls."""

from PySide6.QtCore import Qt


def tap(qtbot, widget):
    assert widget.isVisible() and widget.isEnabled(), f"{widget!r} cannot be tapped"
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=widget.rect().center())


def type_on_keypad(qtbot, keypad, text, tap=tap):
    """Types `text` on the in-app keypad, switching to letters, capitals or symbols as a user would
    (`tap` may be one that also lets the event loop run between taps)."""
    def keys():
        return {button.text(): button for button in keypad.keys()}
    for character in text:
        if character not in keys() and "abc" in keys():
            tap(qtbot, keys()["abc"])
        if character not in keys():
            tap(qtbot, keys()["Shift" if character.isalpha() else "#+="])
        tap(qtbot, keys()[character])


def start_button(window, label):
    """The start screen's secondary button with this label (Review recordings, Service)."""
    layout = window.start_screen.secondary
    return next(button for button in (layout.itemAt(i).widget() for i in range(layout.count()))
                if button.text() == label)
