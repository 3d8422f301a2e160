"""The uploader's CPU budget: the pure calculator (every case, and a property over any run), the
budget object with injected clocks (no real waiting), the setting's range, and the uploader
checking it while it hashes and sends (against a real SeaweedFS); the unit's kernel cap matches."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from appliance.archive import s3
from appliance.archive.pacing import BUDGET_BURST_CPU_S, Backoff, BudgetLedger, CpuBudget, budget_step
from appliance.archive.settings import ArchiveSettings
from appliance.archive.uploader import Uploader
from appliance.config import load
from appliance.errors import BadInput
from tests.servers.seaweedfs import unique_bucket

MIB = 1024 * 1024


def test_under_budget_no_pause_and_the_unused_share_is_credit():
    ledger, pause = budget_step(BudgetLedger(10.0, 100.0, 0.0), cpu_s=10.02, wall_s=100.1, share=0.5, burst_s=1.0)
    assert pause == 0
    assert ledger == BudgetLedger(10.02, 100.1, pytest.approx(0.03))


def test_over_budget_pauses_until_the_average_is_back_at_the_share():
    # 0.3 s of CPU in 0.2 s of wall at half a core: 0.2 s owed, paid by 0.4 s of pause
    ledger, pause = budget_step(BudgetLedger(0.0, 0.0, 0.0), cpu_s=0.3, wall_s=0.2, share=0.5)
    assert pause == pytest.approx(0.4)
    assert ledger.credit_s == pytest.approx(-0.2)
    # the pause is wall time the next check pays the debt with, not before
    ledger, pause = budget_step(ledger, cpu_s=0.3, wall_s=0.6, share=0.5)
    assert pause == 0 and ledger.credit_s == pytest.approx(0.0)   # 0.3 s of CPU in 0.6 s: half a core


def test_hours_of_idling_save_only_the_burst():
    ledger, _ = budget_step(BudgetLedger(0.0, 0.0, 0.0), cpu_s=0.0, wall_s=7200.0, share=0.5)
    assert ledger.credit_s == BUDGET_BURST_CPU_S
    # a second of full-speed work right after: everything past the burst is owed
    _, pause = budget_step(ledger, cpu_s=1.0, wall_s=7201.0, share=0.5)
    assert pause == pytest.approx((1.0 - 0.5 - BUDGET_BURST_CPU_S) / 0.5)


def test_a_share_above_one_core_lets_threads_use_several():
    _, pause = budget_step(BudgetLedger(0.0, 0.0, 0.0), cpu_s=1.5, wall_s=1.0, share=1.5, burst_s=0.0)
    assert pause == 0
    _, pause = budget_step(BudgetLedger(0.0, 0.0, 0.0), cpu_s=1.8, wall_s=1.0, share=1.5, burst_s=0.0)
    assert pause == pytest.approx(0.2)


def test_clocks_that_do_not_advance_earn_and_cost_nothing():
    start = BudgetLedger(5.0, 50.0, -0.1)
    ledger, pause = budget_step(start, cpu_s=5.0, wall_s=50.0, share=0.25)
    assert ledger == start and pause == pytest.approx(0.4)
    ledger, _ = budget_step(start, cpu_s=4.0, wall_s=49.0, share=0.25)   # never earns from a clock going back
    assert ledger.credit_s == pytest.approx(-0.1)


@pytest.mark.parametrize("share, burst", [(0.0, 0.1), (-0.5, 0.1), (0.5, -0.1)])
def test_a_share_of_nothing_or_a_negative_burst_is_a_mistake(share, burst):
    with pytest.raises(ValueError):
        budget_step(BudgetLedger(0.0, 0.0, 0.0), 1.0, 1.0, share=share, burst_s=burst)


@given(share=st.floats(0.05, 4.0),
       steps=st.lists(st.tuples(st.floats(0.0, 2.0), st.floats(0.0, 2.0)), min_size=1, max_size=60))
def test_a_process_that_pauses_when_told_never_uses_more_than_its_share_plus_the_burst(share, steps):
    """Any run of work (CPU spent) and idling (wall passing), each followed by a check whose
    pause is taken: over the whole run, CPU <= share * wall + burst."""
    cpu = wall = 0.0
    ledger = BudgetLedger(cpu, wall, 0.0)
    for spent, idle in steps:
        cpu, wall = cpu + spent, wall + idle + spent / 4.0   # work takes wall time on 4 cores at most
        ledger, pause = budget_step(ledger, cpu, wall, share)
        wall += pause
    assert cpu <= share * wall + BUDGET_BURST_CPU_S + 1e-6


class MeteredProcess:
    """Injected clocks: every budget check costs `cost_s` of CPU; wall time passes only by
    pausing, so all the CPU time is above any share and every check must be paid for."""

    def __init__(self, cost_s: float):
        self.cost_s, self.cpu, self.wall, self.checks, self.pauses = cost_s, 0.0, 0.0, 0, []
        self.lock = threading.Lock()

    def cpu_clock(self) -> float:
        with self.lock:
            self.checks += 1
            self.cpu += self.cost_s
            return self.cpu

    def clock(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.pauses.append(seconds)
            self.wall += seconds


def test_the_budget_object_pauses_the_checking_thread_by_the_debt():
    process = MeteredProcess(cost_s=0.01)
    budget = CpuBudget(25, cpu_clock=process.cpu_clock, clock=process.clock, sleep=process.sleep)
    for _ in range(100):
        budget.check()
    assert process.cpu <= 0.25 * process.wall + BUDGET_BURST_CPU_S + 0.01


def test_no_budget_never_reads_a_clock_or_pauses():
    process = MeteredProcess(cost_s=1.0)
    budget = CpuBudget(0, cpu_clock=process.cpu_clock, clock=process.clock, sleep=process.sleep)
    process.checks = 0
    for _ in range(100):
        budget.check()
    assert process.checks == 0 and process.pauses == []
    with pytest.raises(ValueError, match="cpu_percent must not be negative"):
        CpuBudget(-1)


def test_the_setting_defaults_to_half_a_core_and_is_checked_against_the_cores(tmp_path):
    assert ArchiveSettings().cpu_percent == 50
    cores = os.cpu_count() or 1
    assert ArchiveSettings(cpu_percent=100 * cores).cpu_percent == 100 * cores
    assert ArchiveSettings(cpu_percent=0).cpu_percent == 0
    for wrong in (-1, 100 * cores + 1):
        config = tmp_path / "appliance.toml"
        config.write_text(f"[archive]\ncpu_percent = {wrong}\n")
        with pytest.raises(BadInput, match=rf"archive\.cpu_percent must be between 0 and {100 * cores} "
                                            rf"\({cores} cores\), got {wrong}"):
            load(config)


@pytest.mark.parametrize("size", [3 * MIB, 20 * MIB + 5], ids=["one PUT", "multipart"])
def test_the_uploader_holds_its_budget_while_it_hashes_and_sends(seaweedfs, tmp_path, size):
    """With every check costing CPU, the upload still lands and the process never used more
    than its share of the wall time: the uploader checks at least once per MiB it hashes
    (the whole file, then each part), so no long stretch of hashing goes unpaid."""
    settings = ArchiveSettings(endpoint=seaweedfs.endpoint, bucket=seaweedfs.create_bucket(unique_bucket()),
                               credentials=seaweedfs.write_credentials(tmp_path / "s3-credentials"),
                               retention_days=1, cpu_percent=20)
    process = MeteredProcess(cost_s=0.05)
    budget = CpuBudget(settings.cpu_percent, cpu_clock=process.cpu_clock, clock=process.clock, sleep=process.sleep)
    path = tmp_path / "rec.mp4.vault"
    path.write_bytes(os.urandom(size))
    uploader = Uploader(s3.connect(settings), settings, tmp_path / "uploads", budget=budget,
                        backoff=Backoff(max_attempts=3, sleep=lambda s: None))
    process.checks = 0
    confirmed = uploader.upload_file(path, "5e1f0c2a9b7d4e31/s/r.mp4.vault", {"recording-state": "sealed"})
    assert confirmed.size == size
    mib_hashed = 2 * -(-size // MIB) if size > settings.part_size else -(-size // MIB)
    assert process.checks >= mib_hashed
    assert process.cpu <= 0.2 * process.wall + BUDGET_BURST_CPU_S + process.cost_s


def test_the_archive_unit_caps_the_cpu_at_the_default_budget_and_yields_to_the_recorder():
    """The unit's kernel cap is the same half core the process keeps itself to, so neither one
    is a surprise to the other; its weights are low so the recorder wins any contest."""
    unit = Path(__file__).resolve().parents[1] / "systemd" / "appliance-archive.service"
    service = dict(line.split("=", 1) for line in unit.read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    assert service["CPUQuota"] == f"{ArchiveSettings().cpu_percent:g}%"
    assert int(service["CPUWeight"]) <= 20 and int(service["IOWeight"]) <= 20
    assert service["IOSchedulingClass"] == "idle" and int(service["Nice"]) >= 10
    assert service["CPUSchedulingPolicy"] == "idle"


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="the idle scheduling class is Linux's")
def test_the_archive_process_and_every_thread_it_starts_run_only_on_cpu_time_nobody_else_wants():
    """What `appliance archive run` (and the benchmark's uploader) does first, in a process of
    its own: the idle CPU scheduling class, inherited by the part threads, and nice 10."""
    probe = ("import os, threading\n"
             "from appliance.archive.service import lower_priority\n"
             "lower_priority()\n"
             "seen = []\n"
             "thread = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))\n"
             "thread.start(); thread.join()\n"
             "print(os.sched_getscheduler(0), seen[0], os.getpriority(os.PRIO_PROCESS, 0))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    process_policy, thread_policy, niceness = (int(value) for value in result.stdout.split())
    assert process_policy == thread_policy == os.SCHED_IDLE
    assert niceness >= 10
