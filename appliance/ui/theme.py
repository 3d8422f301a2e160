"""Look of the kiosk: high contrast, large type, touch targets of at least 48 px for gloved hands."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

MIN_TOUCH_PX = 56          # above the 48 px minimum, gloves are clumsy
BACKGROUND = "#101214"
PANEL = "#1d2126"
TEXT = "#ffffff"
MUTED = "#c9d1d9"
ACCENT = "#4fa3ff"
DANGER = "#ff6b6b"
LASER = "#ff3d3d"          # laser emission marks on the review seek bar

STYLESHEET = f"""
QWidget {{ background: {BACKGROUND}; color: {TEXT}; font-size: 22px; }}
QLabel[role="title"] {{ font-size: 34px; font-weight: bold; }}
QLabel[role="muted"] {{ color: {MUTED}; }}
QLabel[role="message"] {{ color: {DANGER}; font-weight: bold; }}
QLabel[role="value"] {{ font-size: 28px; font-weight: bold; }}
QLabel[role="identity"] {{ font-size: 40px; font-weight: bold; }}
QPushButton {{
    background: #2b3340; color: {TEXT}; border: 2px solid #5b6b80; border-radius: 10px;
    min-height: {MIN_TOUCH_PX}px; min-width: {MIN_TOUCH_PX}px; padding: 4px 14px; font-size: 24px;
}}
QPushButton:pressed {{ background: #44546a; }}
QPushButton:disabled {{ color: #8a949e; border-color: #3a424c; }}
QPushButton[role="primary"] {{ background: #1565c0; border-color: #90caf9; font-weight: bold; }}
QPushButton[role="danger"] {{ background: #b71c1c; border-color: #ff8a80; font-weight: bold; }}
QPushButton[role="key"] {{ font-size: 28px; font-weight: bold; padding: 0; }}
QLineEdit {{
    background: {PANEL}; color: {TEXT}; border: 2px solid #5b6b80; border-radius: 8px;
    min-height: {MIN_TOUCH_PX}px; font-size: 30px; padding: 0 12px;
}}
QLineEdit[active="true"] {{ border: 3px solid {ACCENT}; }}
QListWidget {{ background: {PANEL}; font-size: 22px; }}
QListWidget::item {{ min-height: {MIN_TOUCH_PX}px; }}
QSlider::groove:horizontal {{ height: 14px; background: #3a424c; border-radius: 7px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: {MIN_TOUCH_PX}px; margin: -21px 0; border-radius: 10px; }}
QSlider {{ min-height: {MIN_TOUCH_PX}px; }}
QProgressBar {{ border: 2px solid #ffffff; border-radius: 6px; background: #0d2a55; height: 22px; color: white; text-align: center; }}
QProgressBar::chunk {{ background: #ffffff; }}
"""


def apply(app: QApplication) -> None:
    font = QFont("DejaVu Sans")
    font.setPixelSize(22)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)


def restyle(widget) -> None:
    """Re-applies the stylesheet after a dynamic property change (Qt does not do it by itself)."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def button(text: str, role: str | None = None) -> QPushButton:
    """A touch button; `role` picks its look from the stylesheet (primary, danger, key)."""
    widget = QPushButton(text)
    if role:
        widget.setProperty("role", role)
    return widget


def label(text: str = "", role: str | None = None) -> QLabel:
    """Kiosk text, wrapped so that nothing is cut off; `role`: title, muted, message or value."""
    widget = QLabel(text)
    widget.setWordWrap(True)
    if role:
        widget.setProperty("role", role)
    return widget


def form_column(*widgets: QWidget, buttons: tuple[QPushButton, ...]) -> QVBoxLayout:
    """A page's column: `widgets` from the top, then space, then `buttons` in a row along the
    bottom edge, where a technician's thumbs find them."""
    column = QVBoxLayout()
    for widget in widgets:
        column.addWidget(widget)
    column.addStretch(1)
    row = QHBoxLayout()
    for widget in buttons:
        row.addWidget(widget)
    column.addLayout(row)
    return column


def stacked_pages(screen: QWidget, *pages: QWidget) -> QStackedWidget:
    """The screen's pages (entry, confirmation, ...), one shown at a time, filling the screen."""
    stack = QStackedWidget()
    for page in pages:
        stack.addWidget(page)
    layout = QVBoxLayout(screen)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(stack)
    return stack
