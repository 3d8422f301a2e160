"""Peak resident memory of the current process, for benchmarks that run their work in a child.

VmHWM from /proc, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent
across fork and exec, so a child started by a large benchmark process would report the
parent's peak instead of its own.
"""


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("/proc/self/status has no VmHWM line")
