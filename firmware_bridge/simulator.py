"""The treatment controller, simulated: the firmware's own Board on virtual pins, behind a pty.

The host opens the pseudo-terminal with pyserial exactly as it opens the USB CDC device of the
real board; the path the user names is a symlink to the pty's slave side (the way udev names
/dev/treatment-controller). Faults are injected on the wire, between the board and the host:
noise, dropped frames, stalls, unplug and replug (the board keeps running, as a self-powered
board does when its cable is pulled).

Two engines run the board: "python" binds firmware/board.py's Board in a thread here;
"micropython" runs the real firmware/main.py under MicroPython's unix port
(micropython_board.py), whose USB writes wait, as the RP2040's do, while the host does not read.
"""

from __future__ import annotations

import fcntl
import os
import queue
import random
import select
import termios
import threading
import time
import tty

from firmware_bridge import micropython_board, protocol
from firmware_bridge.firmware.board import Board

STEP_S = 0.001   # the board loop period here (the RP2040 loops faster; debouncing is by time either way)
ENGINES = ("python", "micropython")
HOST_BUFFER_BYTES = 2048   # unread bytes at which the board must wait (a raw pty holds 4095)


class VirtualPin:
    """A machine.Pin stand-in; output pins record every change with its monotonic time."""

    def __init__(self, level: int, on_change=None):
        self._level = level
        self._on_change = on_change

    def value(self, level: int | None = None):
        if level is None:
            return self._level
        if level != self._level and self._on_change is not None:
            self._on_change(level)
        self._level = level
        return None


class _WireTransport:
    """Board.transport: writes frames to the pty master, through the injected faults."""

    def __init__(self, simulator: "Simulator"):
        self._simulator = simulator

    def write(self, data: bytes) -> None:
        self._simulator._board_wrote(data)


class Simulator:
    """Simulator(link_path).start(); press()/release(); interlock(closed); laser(on); faults."""

    def __init__(self, link_path: str, protocol_version: int = protocol.PROTOCOL_VERSION,
                 board_id: bytes = b"SIMBOARD", seed: int | None = None, engine: str = "python"):
        self.link_path = os.path.abspath(link_path)
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._requests: queue.Queue = queue.Queue()   # unplug/replug, run by the board thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic_ns()
        self._drop_frames = 0
        self._stalled_until_ns = 0
        self.counters = {"frames_sent": 0, "frames_dropped": 0, "frames_lost_in_stall": 0,
                         "noise_bytes": 0, "overflow_drops": 0, "bytes_received": 0}
        self.last_host_bytes_ns: int | None = None
        self.output_history: list[tuple[int, str, int]] = []   # (monotonic ns, pin name, level)
        # Electrical levels: inputs are active low. At rest: released, interlock closed, no laser.
        self.pins = {
            "footswitch": VirtualPin(1),
            "interlock": VirtualPin(0),
            "laser": VirtualPin(1),
            "permissive": VirtualPin(0, lambda level: self._output_changed("permissive", level)),
            "led": VirtualPin(0, lambda level: self._output_changed("led", level)),
            "update_jumper": VirtualPin(1),   # read by main.py at boot (micropython engine)
        }
        self.engine = engine
        self.board = self.micropython = None
        if engine == "micropython":
            if protocol_version != protocol.PROTOCOL_VERSION:
                raise ValueError("the micropython engine speaks the firmware's own protocol version")
            inputs = {name: self.pins[name].value() for name in micropython_board.GPIO_OF_INPUT}
            self.micropython = micropython_board.MicroPythonBoard(board_id, inputs, self._board_output)
        elif engine == "python":
            self.board = Board(self.pins, _WireTransport(self), board_id, self._random.getrandbits(32),
                               self._now_ms(), protocol_version=protocol_version)
        else:
            raise ValueError("unknown engine %r; engines: %s" % (engine, ", ".join(ENGINES)))

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> "Simulator":
        self._plug()
        if self.micropython is not None:
            self.micropython.boot("power")
        run = self._run if self.micropython is None else self._run_micropython
        self._thread = threading.Thread(target=run, name="controller-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.micropython is not None:
            self.micropython.shut_down()
        self._unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the operator's side -------------------------------------------------------------

    def press(self) -> int:
        """Presses the footswitch; returns the monotonic time of the press in ns."""
        return self._set_input("footswitch", True)

    def release(self) -> int:
        return self._set_input("footswitch", False)

    def interlock(self, closed: bool) -> int:
        return self._set_input("interlock", closed)

    def laser(self, on: bool) -> int:
        return self._set_input("laser", on)

    def laser_on(self) -> bool:
        """Whether the laser emission line is active now (the synthetic camera draws the spot)."""
        return self.pins["laser"].value() == 0

    @property
    def permissive(self) -> bool:
        return bool(self.pins["permissive"].value())

    @property
    def led(self) -> bool:
        return bool(self.pins["led"].value())

    # -- faults on the wire --------------------------------------------------------------

    def noise(self, count: int) -> None:
        """Sends `count` random bytes to the host, between two frames."""
        with self._lock:
            if self._master is not None:
                self._write(bytes(self._random.getrandbits(8) for _ in range(count)))
                self.counters["noise_bytes"] += count

    def drop(self, count: int) -> None:
        """The next `count` frames the board sends lose a byte on the wire (the host sees them corrupt)."""
        with self._lock:
            self._drop_frames += count

    def stall(self, ms: int) -> None:
        """Nothing passes in either direction for `ms` milliseconds; the board keeps running."""
        with self._lock:
            self._stalled_until_ns = time.monotonic_ns() + ms * 1_000_000

    def unplug(self) -> None:
        """Pulls the cable: the pty disappears (and the link path with it)."""
        self._in_board_thread(self._unplug)

    def replug(self) -> None:
        """Plugs the cable back: a new pty appears at the same link path."""
        self._in_board_thread(self._replug)

    def board_time_ns(self, board_ms: int) -> int:
        """The monotonic time (ns) of a board timestamp, such as an edge's board_ms."""
        if self.micropython is not None:
            return micropython_board.board_time_ns(board_ms)
        return self._t0 + board_ms * 1_000_000

    def update_jumper(self, fitted: bool) -> None:
        """Fits or removes the firmware-update jumper; main.py reads it at its next boot."""
        self._set_input("update_jumper", fitted)

    def power_cycle(self) -> None:
        """Switches the board off and on (micropython engine: main.py boots afresh)."""
        if self.micropython is None:
            raise ValueError("power-cycle needs the micropython engine")
        self._in_board_thread(lambda: self.micropython.boot("power"))

    # -- internals -----------------------------------------------------------------------

    def _now_ms(self) -> int:
        return (time.monotonic_ns() - self._t0) // 1_000_000

    def _set_input(self, name: str, active: bool) -> int:
        with self._lock:
            at_ns = time.monotonic_ns()
            self.pins[name].value(0 if active else 1)
            if self.micropython is not None:
                self.micropython.set_input(name, 0 if active else 1)
        return at_ns

    def _board_output(self, name: str, level: int) -> None:
        if name in self.pins:
            self.pins[name].value(level)

    def _output_changed(self, name: str, level: int) -> None:
        self.output_history.append((time.monotonic_ns(), name, level))

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        temporary = "%s.%d.tmp" % (self.link_path, os.getpid())
        if os.path.lexists(self.link_path) and not os.path.islink(self.link_path):
            os.close(master)
            os.close(slave)
            raise FileExistsError("%s exists and is not a symlink; choose another link path" % self.link_path)
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(os.ttyname(slave), temporary)
        os.replace(temporary, self.link_path)
        self._master, self._slave = master, slave

    def _replug(self) -> None:
        if self._master is None:
            self._plug()

    def _in_board_thread(self, action) -> None:
        """Runs `action` in the board thread, between two loop passes, and waits for it.

        The board thread selects on the pty's descriptor; closing it from another thread
        mid-select would leave the loop watching a dead (or reused) descriptor.
        """
        if self._thread is None:
            with self._lock:
                action()
            return
        request = {"action": action, "done": threading.Event(), "error": None}
        self._requests.put(request)
        os.write(self._wake_w, b"x")
        request["done"].wait()
        if request["error"] is not None:
            raise request["error"]

    def _serve_requests(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                with self._lock:
                    request["action"]()
            except OSError as error:
                request["error"] = error
            request["done"].set()

    def _unplug(self) -> None:
        if self._master is None:
            return
        if os.path.islink(self.link_path):
            os.unlink(self.link_path)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = None

    def _stalled(self) -> bool:
        return time.monotonic_ns() < self._stalled_until_ns

    def _board_wrote(self, frame: bytes) -> None:
        # Called by the board, from the simulator thread, with the lock held.
        if self._master is None:
            return
        if self._stalled():
            self.counters["frames_lost_in_stall"] += 1
            return
        if self._drop_frames:
            self._drop_frames -= 1
            self.counters["frames_dropped"] += 1
            cut = self._random.randrange(len(frame) - 1)   # never the delimiter: one frame lost, not two
            frame = frame[:cut] + frame[cut + 1:]
        self.counters["frames_sent"] += 1
        self._write(frame)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except BlockingIOError:
            # Nobody reads the port and its buffer is full: like a USB CDC device without a host.
            self.counters["overflow_drops"] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            watched = [self._wake_r] if master is None else [self._wake_r, master]
            readable, _, _ = select.select(watched, [], [], STEP_S)
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
                self._serve_requests()
            with self._lock:
                now_ms = self._now_ms()
                if master is not None and master in readable and master == self._master:
                    self._read_host(master, now_ms)
                self.board.step(now_ms)

    def _read_host(self, master: int, now_ms: int) -> None:
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, OSError):
            return   # EIO while no host has the pty open
        if self._stalled() or not data:
            return
        self.counters["bytes_received"] += len(data)
        self.last_host_bytes_ns = time.monotonic_ns()
        if self.micropython is not None:
            self.micropython.receive(data)
        else:
            self.board.receive(data, now_ms)


    # -- the micropython engine's board thread ------------------------------------------

    def _run_micropython(self) -> None:
        board = self.micropython
        while not self._stop.is_set():
            master = self._master
            watched = [self._wake_r, board.status]
            if master is not None:
                watched.append(master)
            if master is None or self.host_unread_bytes() < HOST_BUFFER_BYTES:
                watched.append(board.usb_out)   # else the board's writes wait, as on a full CDC port
            readable, _, _ = select.select(watched, [], [], STEP_S * 10)
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
                self._serve_requests()
                continue   # a power cycle or replug replaced the descriptors just watched
            with self._lock:
                if board.status in readable:
                    board.read_status()
                elif board.usb_out in readable:
                    self._pass_board_bytes()
                if master is not None and master in readable and master == self._master:
                    self._read_host(master, None)
                board.check_watchdog()

    def host_unread_bytes(self) -> int:
        """Bytes the board sent that the host has not read yet."""
        return int.from_bytes(fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0"), "little")

    def _pass_board_bytes(self) -> None:
        frames, text = self.micropython.read_usb()
        for frame in frames:
            self._board_wrote(frame)
        if text and self._master is not None:
            self._write(text)
