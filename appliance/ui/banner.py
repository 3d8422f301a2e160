"""The state banner: always visible at the top of every screen, colour and words from
`presentation.banner_for`."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QProgressBar, QVBoxLayout

from appliance.ui.presentation import BannerView


class StateBanner(QFrame):
    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("banner")
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail = QLabel()
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)   # the percentage is in the title, legible
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 10, 24, 12)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.detail)
        layout.addWidget(self.progress)
        self.view: BannerView | None = None

    def show_view(self, view: BannerView) -> None:
        if view == self.view:
            return
        self.view = view
        self.setStyleSheet(
            f"QFrame#banner, QFrame#banner QLabel {{ background: {view.background}; color: {view.foreground}; }}"
            "QFrame#banner QLabel { font-size: 26px; }"
            f"QFrame#banner QLabel#bannerTitle {{ font-size: 46px; font-weight: bold; }}"
        )
        self.title.setObjectName("bannerTitle")
        self.title.setText(view.title)
        self.detail.setText(view.detail)
        self.progress.setVisible(view.progress is not None)
        if view.progress is not None:
            self.progress.setValue(round(view.progress * 100))
