"""Laser emissions in review: a seek bar that marks every emission (a red span from laser on to
laser off, never over the handle), and the "previous/next emission" buttons with the clip's laser-on
total between them. The seek rules are Qt-free (review_listing.py)."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QRegion
from PySide6.QtWidgets import QHBoxLayout, QSlider, QStyle, QStyleOptionSlider, QWidget

from appliance.ui import theme
from appliance.ui.review_listing import emission_summary, next_emission, previous_emission

MARK_HEIGHT_PX = 26          # taller than the groove, so a mark reads at arm's length
MARK_MIN_WIDTH_PX = 4        # a 50 ms pulse on an hour-long clip is still a visible mark


class EmissionSeekBar(QSlider):
    """A horizontal seek bar in milliseconds that draws the clip's laser emissions."""

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.emissions: tuple[tuple[float, float], ...] = ()

    def set_emissions(self, intervals) -> None:
        self.emissions = tuple(intervals)
        self.update()

    def _sub_control(self, part) -> QRect:
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        return self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option, part, self)

    def marker_x(self, seconds: float) -> int:
        """The x of the handle's centre when the bar is at `seconds`."""
        groove = self._sub_control(QStyle.SubControl.SC_SliderGroove)
        handle = self._sub_control(QStyle.SubControl.SC_SliderHandle)
        value = min(self.maximum(), max(self.minimum(), round(seconds * 1000)))
        offset = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), value,
                                                groove.width() - handle.width())
        return groove.x() + handle.width() // 2 + offset

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if not self.emissions or self.maximum() <= self.minimum():
            return
        painter = QPainter(self)
        # Never over the handle: where playback is must stay visible.
        painter.setClipRegion(QRegion(self.rect()).subtracted(
            QRegion(self._sub_control(QStyle.SubControl.SC_SliderHandle))))
        top = (self.height() - MARK_HEIGHT_PX) // 2
        for start, end in self.emissions:
            left = self.marker_x(start)
            width = max(MARK_MIN_WIDTH_PX, self.marker_x(end) - left)
            painter.fillRect(QRect(left, top, width, MARK_HEIGHT_PX), QColor(theme.LASER))
        painter.end()


class EmissionControls(QWidget):
    """"◀ Previous emission", the clip's laser-on total, "Next emission ▶". `seek_requested`
    carries the emission's start in seconds; `position_s` follows the frame on screen."""

    seek_requested = Signal(float)

    def __init__(self) -> None:
        super().__init__()
        self.previous_button = theme.button("◀ Previous emission")
        self.next_button = theme.button("Next emission ▶")
        self.summary = theme.label("", "muted")
        self.summary.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.previous_button.clicked.connect(lambda: self._step(previous_emission))
        self.next_button.clicked.connect(lambda: self._step(next_emission))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.previous_button)
        row.addWidget(self.summary, 1)
        row.addWidget(self.next_button)
        self.position_s = 0.0
        self.show_clip(None)

    def show_clip(self, intervals: list[tuple[float, float]] | None) -> None:
        """A clip's emissions; None for no clip, or one recorded before emissions were."""
        self.emissions = list(intervals or ())
        self.position_s = 0.0
        self.summary.setText("" if intervals is None else emission_summary(self.emissions))
        self.previous_button.setEnabled(bool(self.emissions))
        self.next_button.setEnabled(bool(self.emissions))

    def _step(self, rule) -> None:
        target = rule(self.emissions, self.position_s)
        if target is not None:
            self.position_s = target
            self.seek_requested.emit(target)
