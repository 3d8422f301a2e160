"""`appliance controller sim|monitor` and `appliance bench controller`, run as an operator runs them."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest
import serial

DEADLINE_S = 15


class Process:
    """A CLI subprocess whose stdout lines are read with deadlines."""

    def __init__(self, *args):
        self.popen = subprocess.Popen([sys.executable, "-m", "appliance.cli", *args], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.popen.stdout:
            self.lines.put(line)

    def line(self, timeout=DEADLINE_S):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output line within %d s" % timeout) from None

    def event(self, name):
        deadline = time.monotonic() + DEADLINE_S
        while True:
            record = json.loads(self.line(max(0.1, deadline - time.monotonic())))
            if record["event"] == name:
                return record

    def send(self, command):
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()

    def finish(self):
        try:
            return self.popen.wait(timeout=DEADLINE_S)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()


@pytest.fixture(params=["python", "micropython"])
def simulator_process(tmp_path, request):
    link = str(tmp_path / "controller")
    process = Process("controller", "sim", "--link", link, "--engine", request.param)
    assert process.line().startswith("simulator ready: %s -> /dev/pts/" % link)
    yield process, link
    if process.popen.poll() is None:
        process.send("quit")
        process.finish()


def test_monitor_prints_each_edge_as_a_flushed_json_line(simulator_process):
    simulator, link = simulator_process
    monitor = Process("controller", "monitor", "--port", link, "--seconds", "30")
    try:
        up = monitor.event("LinkUp")
        assert up["firmware_version"] == "2.0.0"
        simulator.send("drop 2")
        simulator.send("press")
        pressed = monitor.event("FootswitchPressed")   # arrives while the monitor still runs: flushed
        simulator.send("noise 30")
        simulator.send("release")
        simulator.send("interlock open")
        simulator.send("laser on")
        assert monitor.event("FootswitchReleased")["edge_number"] == pressed["edge_number"] + 1
        assert monitor.event("InterlockOpened")["edge_number"] == pressed["edge_number"] + 2
        assert monitor.event("LaserOn")["edge_number"] == pressed["edge_number"] + 3
        simulator.send("unplug")
        assert "disconnected" in monitor.event("LinkDown")["reason"]
        simulator.send("replug")
        monitor.event("LinkUp")
    finally:
        monitor.popen.terminate()
        monitor.finish()
    simulator.send("quit")
    assert simulator.finish() == 0
    assert not os.path.lexists(link)


def test_a_terminated_simulator_removes_its_link(simulator_process):
    simulator, link = simulator_process
    simulator.popen.terminate()
    assert simulator.finish() == 0
    assert not os.path.lexists(link)


def test_simulator_rejects_an_unknown_command_with_one_line_and_keeps_running(simulator_process):
    simulator, link = simulator_process
    simulator.send("jump")
    simulator.send("stall 20")
    simulator.send("quit")
    assert simulator.finish() == 0
    stderr = simulator.popen.stderr.read().strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("appliance: unknown command 'jump'; commands: press")


def test_monitor_on_a_busy_port_is_one_line_and_exit_2(appliance_cli, simulator_process):
    _, link = simulator_process
    with serial.Serial(link, exclusive=True):
        result = appliance_cli("controller", "monitor", "--port", link)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and lines == [
        "appliance: controller port %s is busy: another program has it open" % link]


@pytest.mark.parametrize("port, message", [
    ("/nonexistent/treatment-controller", "controller port /nonexistent/treatment-controller does not exist"),
    ("/etc/hostname", "/etc/hostname is not a serial port"),
])
def test_monitor_on_an_unusable_port_is_one_line_and_exit_2(appliance_cli, port, message):
    result = appliance_cli("controller", "monitor", "--port", port)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0]


def test_monitor_on_a_silent_device_is_one_line_and_exit_2(appliance_cli, tmp_path):
    master, slave = os.openpty()
    link = tmp_path / "silent"
    link.symlink_to(os.ttyname(slave))
    try:
        result = appliance_cli("controller", "monitor", "--port", str(link), "--connect-timeout", "5")
    finally:
        os.close(master)
        os.close(slave)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert "no answer from %s" % link in lines[0] and result.stdout == b""


def test_simulator_refuses_to_replace_a_regular_file(appliance_cli, tmp_path):
    victim = tmp_path / "important"
    victim.write_text("keep me")
    result = appliance_cli("controller", "sim", "--link", str(victim), input=b"quit\n")
    assert result.returncode == 2 and "exists and is not a symlink" in result.stderr.decode()
    assert victim.read_text() == "keep me"


def test_bench_controller_prints_latency_and_loss_figures(appliance_cli):
    result = appliance_cli("bench", "controller", "--presses", "20", "--stalls", "1")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["presses"] == 20 and set(report["engines"]) == {"python", "micropython"}
    for figures in report["engines"].values():
        assert figures["edges_delivered"] == 40
        for key in ("p50", "p99", "max"):
            assert figures["press_to_host_callback_ms"][key] >= figures["debounce_ms"] - 1
        loss = figures["link_loss_detection_ms"]["from_last_frame"]
        assert loss["p50"] >= 500
        assert set(figures["ratios"]) == {"press_p99_over_budget", "loss_max_over_budget"}
    assert set(report["ratios"]) == {"micropython_over_python_press_p50", "micropython_over_python_press_p99"}
