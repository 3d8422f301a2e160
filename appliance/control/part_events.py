"""What the parts report, carried into the machine: the board's inputs and link, the camera and
the encoder. Runs on the controller's event thread only (appliance/controller.py's command table
routes the commands here); it keeps the inputs and the link as the kiosk shows them.

A lost link, camera or encoder is a fault in every state but Idle; in Idle it only blocks the
next session (the readiness check says why), so nothing is shown that nobody can act on.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

from appliance.control import commands as c
from appliance.control.effects import Effects
from appliance.control.health import Health
from appliance.control.parts import Parts
from appliance.faults import FaultKind, make_fault
from appliance.machine import RecorderMachine
from appliance.status import Inputs, LinkView

log = logging.getLogger("appliance.controller")


class PartEvents:
    """`send(event, **arguments)` hands one event to the machine and carries out its effects."""

    def __init__(self, machine: RecorderMachine, effects: Effects, health: Health, parts: Parts, database,
                 send: Callable[..., object]):
        self._machine = machine
        self._effects = effects
        self._health = health
        self._parts = parts
        self._database = database
        self._send = send
        self.inputs = Inputs()
        self.link_view = LinkView()

    def footswitch(self, command: c.Footswitch) -> None:
        self._effects.record_edge(command.edge)
        self.inputs = replace(self.inputs, footswitch_pressed=command.pressed)
        if command.pressed:
            self._effects.press_ns = command.at_ns
        self._send("trigger_on" if command.pressed else "trigger_off")

    def interlock(self, command: c.Interlock) -> None:
        self._effects.record_edge(command.edge)
        self.inputs = replace(self.inputs, interlock_closed=command.closed)

    def laser(self, command: c.Laser) -> None:
        self._effects.record_edge(command.edge)
        self.inputs = replace(self.inputs, laser_on=command.on)

    def link_up(self, command: c.LinkUp) -> None:
        self._health.link_up = True
        self.link_view = replace(self.link_view, up=True, firmware_version=command.firmware_version)
        self._parts.drive_outputs(self._machine.state_name)

    def link_down(self, command: c.LinkDown) -> None:
        self._health.link_up = False
        self.link_view = replace(self.link_view, up=False)
        # No edges arrive while the link is down: the footswitch level is unknown, not released.
        self.inputs = Inputs()
        self._fault_unless_idle(FaultKind.LINK_LOST, command.reason)

    def board_fault(self, command: c.BoardFault) -> None:
        log.warning("treatment controller fault: %s", command.reason)
        self._database.audit("fault", kind="controller_fault", reason=command.reason)

    def camera_lost(self, command: c.CameraLost) -> None:
        self._health.camera_lost = command.reason
        self._fault_unless_idle(FaultKind.CAMERA_LOST, command.reason)

    def encoder_failed(self, command: c.EncoderFailed) -> None:
        self._fault_unless_idle(FaultKind.ENCODER_FAILURE, command.reason)

    def _fault_unless_idle(self, kind: FaultKind, reason: str) -> None:
        if self._machine.state_name == "Idle":
            log.warning("%s while idle: %s (blocks the next session)", kind.value, reason)
            return
        self._send("fault", reason=make_fault(kind, reason))
