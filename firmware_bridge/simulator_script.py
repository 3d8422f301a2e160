"""The simulator's script: one command per line, as `appliance controller sim` reads them on
standard input (a service engineer's or a test's hands on the virtual board)."""

from __future__ import annotations

import time

COMMANDS = ("press, release, interlock open|closed, laser on|off, noise N, drop N, stall MS, "
            "wait MS, unplug, replug, power-cycle, update-jumper on|off, quit")


def run_line(simulator, line: str) -> bool:
    """Runs one script command (see COMMANDS); returns False for `quit`. ValueError if unknown."""
    words = line.split()
    if not words:
        return True
    name, args = words[0].lower(), [word.lower() for word in words[1:]]
    if name == "quit" and not args:
        return False
    if name in ("press", "release", "unplug", "replug") and not args:
        getattr(simulator, name)()
    elif name == "power-cycle" and not args:
        simulator.power_cycle()
    elif name == "update-jumper" and args in (["on"], ["off"]):
        simulator.update_jumper(args[0] == "on")
    elif name == "interlock" and args in (["open"], ["closed"]):
        simulator.interlock(args[0] == "closed")
    elif name == "laser" and args in (["on"], ["off"]):
        simulator.laser(args[0] == "on")
    elif name in ("noise", "drop", "stall", "wait") and len(args) == 1 and args[0].isdigit():
        if name == "wait":
            time.sleep(int(args[0]) / 1000)
        else:
            getattr(simulator, name)(int(args[0]))
    else:
        raise ValueError("unknown command %r; commands: %s" % (line.strip(), COMMANDS))
    return True
