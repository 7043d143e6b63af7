"""How many CPU cores this process may really use: the affinity mask and the cgroup CPU quota, whichever is smaller.

``os.cpu_count()`` counts the machine's cores, not the ones a container or ``taskset`` grants; a runtime that
starts a thread per counted core on a 2-core quota time-slices its own threads against each other (and against
every other process of the box), which is what makes latency jump on shared edge CPUs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CpuBudget:
    """``threads``: the cores this process may use; ``affinity`` and ``quota`` (None: no limit) what it came from."""

    threads: int
    affinity: int
    quota: float | None
    source: str

    def describe(self) -> str:
        quota = "no cgroup CPU limit" if self.quota is None else f"cgroup quota {self.quota:g} CPUs ({self.source})"
        return f"{self.threads} thread(s): {self.affinity} core(s) in the affinity mask, {quota}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _v2_quota(text: str | None) -> float | None:
    """``cpu.max`` of cgroup v2: ``"max 100000"`` (no limit) or ``"200000 100000"`` (2 CPUs)."""
    if not text:
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(quota_text: str | None, period_text: str | None) -> float | None:
    """``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` of cgroup v1 (quota -1: no limit)."""
    try:
        quota, period = int(quota_text or ""), int(period_text or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v2_at(d: Path) -> float | None:
    return _v2_quota(_read(d / "cpu.max"))


def _v1_at(d: Path) -> float | None:
    return _v1_quota(_read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us"))


def cgroup_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> tuple[float | None, str]:
    """(the tightest CPU quota on this process's cgroup path, in CPUs, or None; the file it came from).

    A parent's limit binds its children, so every level from the process's cgroup up to the root is read."""
    lines = (_read(proc_cgroup) or "").splitlines()
    best: tuple[float | None, str] = (None, "")
    for line in lines:
        hier, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        if not rel.startswith("/"):
            continue
        base: Path | None = None
        if hier == "0" and controllers == "":  # cgroup v2, unified
            base, read = cgroup_root, _v2_at
        elif "cpu" in controllers.split(","):  # cgroup v1, the cpu controller's own hierarchy
            names = (controllers, "cpu", "cpu,cpuacct")
            base, read = next((cgroup_root / n for n in names if (cgroup_root / n).is_dir()), None), _v1_at
        if base is None:
            continue
        parts = [p for p in rel.split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):
            d = base.joinpath(*parts[:depth])
            q = read(d)
            if q is not None and (best[0] is None or q < best[0]):
                best = (q, str(d))
    return best


def affinity_count() -> int:
    """Cores in this process's affinity mask (``os.cpu_count()`` where the platform has no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_budget(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP, affinity: int | None = None
) -> CpuBudget:
    """The cores this process may use: the affinity mask, capped by the cgroup quota (rounded up: a 1.5-CPU quota
    still runs two threads at once, part of the time)."""
    cores = affinity if affinity is not None else affinity_count()
    quota, source = cgroup_quota(cgroup_root, proc_cgroup)
    threads = cores if quota is None else min(cores, max(1, math.ceil(quota - 1e-9)))
    return CpuBudget(threads=max(1, threads), affinity=cores, quota=quota, source=source)
