"""Review: a clinician unlocks the recipient key with its passphrase (on the keypad), lists the
sessions and their recordings, and plays one decrypted in memory with a seek bar that marks
its laser emissions (emission_bar.py). The key is
held only while the screen is unlocked: leaving the screen or a few minutes without a tap lock
it again. Playback in progress counts as activity (a clinician watching a long recording does not
touch the screen): the inactivity timer counts afresh when playback ends or is paused. Unlocks, failed unlocks and every recording opened go to the audit trail."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPixmap
from PySide6.QtWidgets import (QApplication, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QSizePolicy,
                               QVBoxLayout, QWidget)

from appliance import vault
from appliance.config import KioskSettings
from appliance.errors import BadInput
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.ui import theme
from appliance.ui.calls import OffThread, failure_message
from appliance.ui.emission_bar import EmissionControls, EmissionSeekBar
from appliance.ui.keypad import TEXT_ROWS, Keypad, KeypadField
from appliance.ui.player import Opened, Player, Shown, Stopped
from appliance.ui.presentation import format_duration
from appliance.ui.review_listing import RecordingRow, recording_rows

REVIEWER = "clinician"        # the kiosk knows the role that unlocked, not the person
INTERRUPTED_COLOUR = "#ffb300"
USER_INPUT = (QEvent.Type.MouseButtonPress, QEvent.Type.TouchBegin, QEvent.Type.KeyPress)


class ReviewScreen(QWidget):
    closed = Signal()

    def __init__(self, reader: StoreReader, database: DatabaseWriter, identity_path: Path,
                 auto_lock_s: float = KioskSettings.review_autolock_s) -> None:
        super().__init__()
        self._reader = reader          # read off the GUI thread only
        self._database = database      # audit entries, never waited for
        self.background = OffThread(self)
        self._identity_path = identity_path
        self._identity = None
        self.player = Player(self)
        self.player.opened.connect(self.show_opened)
        self.player.stopped.connect(self._stopped)
        self.player.frames.delivered.connect(self.show_frame)
        self.auto_lock = QTimer(self)
        self.auto_lock.setSingleShot(True)
        self.auto_lock.setInterval(int(auto_lock_s * 1000))
        self.auto_lock.timeout.connect(self.lock)

        # Locked page
        self.passphrase = KeypadField(secret=True, max_length=128)
        self.keypad = Keypad(TEXT_ROWS, text=True)
        self.keypad.attach(self.passphrase)
        self.unlock_button = theme.button("Unlock", "primary")
        self.unlock_button.clicked.connect(self._unlock)
        self.back_button = theme.button("Back")
        self.back_button.clicked.connect(self.closed)
        self.message = theme.label("", "message")
        title = theme.label("Review recordings — enter the review key passphrase", "title")
        entry_row = QHBoxLayout()
        entry_row.addWidget(self.back_button)
        entry_row.addWidget(self.passphrase, 1)
        entry_row.addWidget(self.unlock_button)
        locked = QWidget()
        locked_layout = QVBoxLayout(locked)
        locked_layout.setContentsMargins(0, 0, 0, 0)
        locked_layout.addWidget(title)
        locked_layout.addLayout(entry_row)
        locked_layout.addWidget(self.message)
        locked_layout.addWidget(self.keypad, 1)

        # Unlocked page
        self.recordings = QListWidget()
        self.recordings.setWordWrap(True)
        self.recordings.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.recordings.itemClicked.connect(self._play_item)
        self.video = QLabel("Choose a recording")
        self.video.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.video.setStyleSheet("background: #000000; color: #c9d1d9;")
        self.video.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.notice = theme.label()
        self.play_button = theme.button("Pause")
        self.play_button.setEnabled(False)
        self.play_button.clicked.connect(self._toggle_pause)
        self.seek_bar = EmissionSeekBar()
        self.seek_bar.setEnabled(False)
        self.seek_bar.sliderReleased.connect(lambda: self.player.seek(self.seek_bar.value() / 1000))
        self.emission_controls = EmissionControls()
        self.emission_controls.seek_requested.connect(self.player.seek)
        self.position = QLabel("0:00 / 0:00")
        self.lock_button = theme.button("Lock")
        self.lock_button.clicked.connect(self.lock)
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.seek_bar, 1)
        controls.addWidget(self.position)
        viewer = QVBoxLayout()
        viewer.addWidget(self.video, 1)
        viewer.addWidget(self.notice)
        viewer.addLayout(controls)
        viewer.addWidget(self.emission_controls)
        side = QVBoxLayout()
        side.addWidget(self.recordings, 1)
        side.addWidget(self.lock_button)
        unlocked = QWidget()
        unlocked_layout = QHBoxLayout(unlocked)
        unlocked_layout.setContentsMargins(0, 0, 0, 0)
        unlocked_layout.addLayout(side, 2)
        unlocked_layout.addLayout(viewer, 3)

        self.pages = theme.stacked_pages(self, locked, unlocked)
        self._paused = False
        self._playing = False
        self._rows: dict[int, RecordingRow] = {}
        self._row: RecordingRow | None = None      # the recording playing

    @property
    def unlocked(self) -> bool:
        return self._identity is not None

    # -- lock / unlock ------------------------------------------------------------------------

    def _unlock(self) -> None:
        passphrase = self.passphrase.text().encode()
        self.passphrase.clear()
        self.unlock_button.setEnabled(False)
        self.message.setText("Unlocking…")
        # PBKDF2 with 600,000 rounds takes a noticeable moment: never on the GUI thread.
        self.background.run(vault.keys.load_identity, self._identity_path, passphrase, done=self._unlocked,
                            failed=self._unlock_failed)

    def _unlocked(self, identity) -> None:
        self.unlock_button.setEnabled(True)
        if not self.isVisible():         # left the screen while the key was being unlocked
            self.message.setText("")
            return
        self.unlock_with(identity)

    def _unlock_failed(self, error: Exception) -> None:
        self.unlock_button.setEnabled(True)
        if isinstance(error, BadInput):
            self.refuse_unlock(str(error))
        else:                            # not the passphrase: a bug, said as one and logged
            self.message.setText(failure_message("load_identity", error))

    def refuse_unlock(self, reason: str) -> None:
        """The passphrase did not open the key: say so, audit it, stay locked."""
        self.message.setText("Wrong passphrase. Try again." if "wrong passphrase" in reason else reason)
        self._database.audit("login_failed", REVIEWER, role="review")

    def unlock_with(self, identity) -> None:
        """Holds the unlocked key, audits the login and lists the recordings."""
        self._identity = identity
        self._database.audit("login", REVIEWER, role="review")
        self.message.setText("")
        self._fill_list()
        self.pages.setCurrentIndex(1)
        QApplication.instance().installEventFilter(self)
        self.auto_lock.start()

    def lock(self) -> None:
        self.player.close()
        self._playing = False
        self._identity = None
        self.auto_lock.stop()
        QApplication.instance().removeEventFilter(self)
        self.recordings.clear()
        self._rows.clear()
        self.video.setPixmap(QPixmap())
        self.video.setText("Choose a recording")
        self.notice.setText("")
        self._row = None
        self._show_emissions(None, 0.0)
        self.pages.setCurrentIndex(0)
        self.passphrase.clear()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() in USER_INPUT and self.unlocked and not self._playing:
            self.auto_lock.start()       # any tap anywhere counts as activity
        return False

    def _set_playing(self, playing: bool) -> None:
        """While a recording plays the screen is in use; when it ends or pauses, inactivity counts from then."""
        self._playing = playing
        if playing:
            self.auto_lock.stop()
        elif self.unlocked:
            self.auto_lock.start()

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self.unlocked:
            self.lock()
        self.message.setText("")
        super().hideEvent(event)

    # -- listing and playback -----------------------------------------------------------------

    def _fill_list(self) -> None:
        self.recordings.clear()
        self._rows.clear()
        self.recordings.addItem(QListWidgetItem("Reading the recordings…"))
        self.background.run(recording_rows, self._reader, done=self._show_rows, failed=self._rows_unreadable)

    def _rows_unreadable(self, error: Exception) -> None:
        if self.unlocked:
            self.recordings.clear()
            self.recordings.addItem(QListWidgetItem(f"Cannot read the recordings: {error}"))

    def _show_rows(self, listing) -> None:
        if not self.unlocked:            # locked while the list was being read
            return
        self.recordings.clear()
        for heading, rows in listing:
            header = QListWidgetItem(heading)
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            header.setForeground(QBrush(QColor("#c9d1d9")))
            self.recordings.addItem(header)
            for row in rows:
                item = QListWidgetItem(f"   {row.label}")
                if row.interrupted:
                    item.setForeground(QBrush(QColor(INTERRUPTED_COLOUR)))
                if not row.playable:
                    item.setFlags(Qt.ItemFlag.NoItemFlags)
                self.recordings.addItem(item)
                self._rows[self.recordings.row(item)] = row
        if not self._rows:
            self.recordings.addItem(QListWidgetItem("No recordings yet"))

    def _play_item(self, item: QListWidgetItem) -> None:
        row = self._rows.get(self.recordings.row(item))
        if row is None or not row.playable or self._identity is None:
            return
        self._database.audit("key_used", REVIEWER, recording=row.uid, purpose="review playback")
        self.notice.setText("INTERRUPTED recording: it ends where the appliance stopped." if row.interrupted else "")
        self.notice.setStyleSheet(f"color: {INTERRUPTED_COLOUR}; font-weight: bold;" if row.interrupted else "")
        self.video.setText("Opening…")
        self._row = row
        self._show_emissions(None, 0.0)
        self._paused = False
        self.play_button.setText("Pause")
        self.player.open(row.path, self._identity, (max(320, self.video.width()), max(200, self.video.height())))
        self._set_playing(True)

    def show_opened(self, opened: Opened) -> None:
        self.seek_bar.setRange(0, int(opened.duration_s * 1000))
        self.seek_bar.setEnabled(True)
        self.play_button.setEnabled(True)
        self._duration = opened.duration_s
        self._show_emissions(self._row, opened.duration_s)
        if not opened.finalized and not self.notice.text():
            self.notice.setText("This recording was not closed by the appliance: it ends early.")

    _duration = 0.0

    def show_frame(self, shown: Shown) -> None:
        if self._identity is None:
            return
        self.video.setPixmap(QPixmap.fromImage(shown.image))
        if not self.seek_bar.isSliderDown():
            self.seek_bar.setValue(int(shown.position_s * 1000))
        self.position.setText(f"{format_duration(shown.position_s)} / {format_duration(self._duration)}")
        self.emission_controls.position_s = shown.position_s

    def _show_emissions(self, row: RecordingRow | None, duration_s: float) -> None:
        """The clip's emissions on the seek bar and beside the buttons, once its length is known."""
        intervals = row.emissions(duration_s) if row is not None and row.events is not None else None
        self.seek_bar.set_emissions(intervals or ())
        self.emission_controls.show_clip(intervals)

    def _stopped(self, stopped: Stopped) -> None:
        self._set_playing(False)
        if stopped.reason == "end":
            self._paused = True
            self.play_button.setText("Play")
            return
        self.video.setPixmap(QPixmap())
        self.video.setText(f"Cannot play this recording: {stopped.reason}")
        self.play_button.setEnabled(False)
        self.seek_bar.setEnabled(False)

    def _toggle_pause(self) -> None:
        self._paused = not self._paused
        self.player.set_paused(self._paused)
        self.play_button.setText("Play" if self._paused else "Pause")
        self._set_playing(not self._paused)
