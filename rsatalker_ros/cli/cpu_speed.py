"""Slower-CPU emulation for benchmarks: the processes of a CPU cgroup get ``speed`` x (cores) x period of CPU time per
CFS bandwidth period, so ``speed`` 0.5 on 2 cores stands for 2 cores half as fast (the issue's machine).

    group = CpuGroup.create(speed=0.5, cores=2, period_us=10000)  # CgroupUnavailable: says what is missing
    try:
        with group.entered():          # this process in the group while it starts the work (children inherit it)
            start_the_work()
        before = group.stat()
        ...
        print(group.describe(), format_throttling(before, group.stat()))
    finally:
        group.remove()                 # the processes left in it go back to the parent, the group is removed

What it emulates and what not: a core F times as fast does the same work in 1/F of the time. The quota gives the
group F of each period (F x cores x period of CPU time over all its processes) and nothing after that until the
next period, so work that needs C seconds of CPU takes about C / F of wall time, as on the slower cores, provided
the period is short against the times that matter (a 40 ms frame): with a 100 ms period a render either runs at
full speed or waits up to tens of milliseconds, a burst-then-stall pattern that no real slower CPU shows.
``scripts/check_cpu_speed.py`` measures the wall-time ratio of fixed work and the longest stall per period. What
is not emulated: memory bandwidth and caches (the same as the host's), and interrupts and kernel work done on
behalf of the group outside its processes' time.

Everything that would run on the slower machine belongs in the group, competitors included: a busy competitor on
the slower machine also gets its fair share of the (slower) CPU time, so inside the group it takes the same share
of the quota from the graph. Outside the group it would take its share of the host's full-speed time and leave the
graph its whole quota, a far kinder machine than the one emulated. The group's CPU weight is set to that of as
many sessions as it holds processes (``set_weight``): with autogroup scheduling each process the benchmark starts
in its own session competes as one session against the rest of the host, while inside one cgroup the processes
no longer have autogroups (they share the group's time by thread and niceness) and the group as a whole would
weigh like one session. On a busy host this is still not the same: the weight of the group's idle processes goes to
its busy ones, so the graph in the group may get more of a contended host than the same graph without it; compare
runs with and without ``--cpu-speed`` on an idle host only.

cgroup v2 (``cpu.max``, ``cpu.weight``) is used where its hierarchy has the cpu controller, else cgroup v1's cpu
controller (``cpu.cfs_period_us``, ``cpu.cfs_quota_us``, ``cpu.shares``); both need write access (root).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass

GROUP_PREFIX = "rsatalker_bench_"        # + the creating process's pid: stale groups of dead benchmarks are removed
MIN_QUOTA_US = 1000                      # the kernel refuses a CFS quota under 1 ms
MIN_PERIOD_US, MAX_PERIOD_US = 1000, 1_000_000


class CgroupUnavailable(RuntimeError):
    """No writable CPU cgroup controller; the message names each hierarchy looked at and what it lacked."""


@dataclass(frozen=True)
class Quota:
    speed: float          # fraction of the host's core speed emulated (0, 1]
    cores: int            # cores the group's processes may use (their CPU affinity)
    period_us: int        # CFS bandwidth period [us]
    quota_us: int         # CPU time the group may use per period, over all cores [us]


def cfs_quota(speed: float, cores: int, period_us: int) -> Quota:
    """The CFS bandwidth for ``cores`` cores ``speed`` times as fast: quota = speed x cores x period.
    ValueError naming the option when a value is out of range or the quota would be under the kernel's 1 ms."""
    if not (0 < speed <= 1):
        raise ValueError(f"--cpu-speed {speed:g}: expected a fraction of the host's core speed in (0, 1]")
    if cores < 1:
        raise ValueError(f"cores {cores}: expected >= 1")
    if not MIN_PERIOD_US <= period_us <= MAX_PERIOD_US:
        raise ValueError(f"--cpu-period-ms {period_us / 1000:g}: expected {MIN_PERIOD_US / 1000:g}.."
                         f"{MAX_PERIOD_US / 1000:g} ms (the kernel's range for a CFS period)")
    quota_us = round(speed * cores * period_us)
    if quota_us < MIN_QUOTA_US:
        raise ValueError(f"--cpu-speed {speed:g} x {cores} core(s) x --cpu-period-ms {period_us / 1000:g} gives a "
                         f"quota of {quota_us} us; the kernel needs >= {MIN_QUOTA_US} us: use a longer period")
    return Quota(speed, cores, period_us, quota_us)


def parse_mounts(text: str) -> list[tuple[str, str, set]]:
    """/proc/mounts text -> [(mount point, "cgroup" or "cgroup2", mount options)] of the cgroup hierarchies."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((parts[1].replace("\\040", " "), parts[2], set(parts[3].split(","))))
    return out


def own_cgroups(text: str) -> dict:
    """/proc/self/cgroup text -> {"v2": path, "cpu": path (v1 cpu controller)} (the keys present)."""
    out = {}
    for line in text.splitlines():
        hier, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hier == "0" and controllers == "":
            out["v2"] = path
        elif "cpu" in controllers.split(","):
            out["cpu"] = path
    return out


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def find_parent(mounts: list, own: dict) -> tuple[str, str, str]:
    """Where to create the group: (cgroup version "v2" or "v1", parent folder, the folder of this process's own
    group in that hierarchy, where it goes back to). Prefers cgroup v2 when its
    hierarchy offers the cpu controller. CgroupUnavailable, naming every hierarchy tried and what it lacked, when
    none is usable."""
    why = []
    for point, kind, opts in mounts:
        if kind != "cgroup2":
            continue
        ctl = os.path.join(point, "cgroup.controllers")
        try:
            controllers = _read(ctl).split()
        except OSError as err:
            why.append(f"cgroup v2 at {point}: cannot read {ctl} ({err.strerror})")
            continue
        if "cpu" not in controllers:
            why.append(f"cgroup v2 at {point}: no cpu controller in {ctl} (it has: {' '.join(controllers) or 'none'}; "
                       "the cpu controller is probably bound to a cgroup v1 hierarchy)")
            continue
        if not os.access(point, os.W_OK):
            why.append(f"cgroup v2 at {point}: not writable by this user (run as root)")
            continue
        # (under the root: a non-root group with processes in it could not enable controllers for its children)
        return "v2", point, os.path.join(point, own.get("v2", "/").lstrip("/"))
    for point, kind, opts in mounts:
        if kind != "cgroup" or "cpu" not in opts:
            continue
        parent = os.path.join(point, own.get("cpu", "/").lstrip("/"))
        missing = [f for f in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cgroup.procs")
                   if not os.path.exists(os.path.join(parent, f))]
        if missing:
            why.append(f"cgroup v1 cpu controller at {parent}: no {', '.join(missing)} (a kernel without "
                       "CONFIG_CFS_BANDWIDTH?)")
        elif not os.access(parent, os.W_OK):
            why.append(f"cgroup v1 cpu controller at {parent}: not writable by this user (run as root)")
        else:
            return "v1", parent, parent
    if not any(kind == "cgroup" and "cpu" in opts for _, kind, opts in mounts):
        why.append("cgroup v1: no hierarchy with the cpu controller is mounted")
    if not any(kind == "cgroup2" for _, kind, _ in mounts):
        why.append("cgroup v2: not mounted")
    raise CgroupUnavailable("--cpu-speed needs a writable CPU cgroup (CFS bandwidth control): "
                            + "; ".join(why))


class CpuGroup:
    def __init__(self, path: str, version: str, quota: Quota, home: str):
        self.path = path              # the group's folder
        self.version = version        # "v1" or "v2"
        self.quota = quota
        self.home = home              # the group this process came from (where processes go back)

    @classmethod
    def create(cls, speed: float, cores: int, period_us: int, mounts_text: str | None = None,
               own_text: str | None = None) -> "CpuGroup":
        """Make the group with its quota (ValueError for bad values, CgroupUnavailable when no controller is
        writable). First removes empty groups that benchmarks which died without cleaning up left behind."""
        quota = cfs_quota(speed, cores, period_us)
        mounts = parse_mounts(_read("/proc/mounts") if mounts_text is None else mounts_text)
        own = own_cgroups(_read("/proc/self/cgroup") if own_text is None else own_text)
        version, parent, home = find_parent(mounts, own)
        remove_stale_groups(parent)
        path = os.path.join(parent, f"{GROUP_PREFIX}{os.getpid()}")
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError as err:
            raise CgroupUnavailable(f"--cpu-speed: cannot create the cgroup {path}: {err.strerror}") from err
        group = cls(path, version, quota, home=home)
        try:
            if version == "v2":
                subtree = os.path.join(parent, "cgroup.subtree_control")
                if "cpu" not in _read(subtree).split():
                    _write(subtree, "+cpu")
                _write(os.path.join(path, "cpu.max"), f"{quota.quota_us} {quota.period_us}")
            else:
                _write(os.path.join(path, "cpu.cfs_period_us"), str(quota.period_us))
                _write(os.path.join(path, "cpu.cfs_quota_us"), str(quota.quota_us))
        except OSError as err:
            group.remove()
            raise CgroupUnavailable(f"--cpu-speed: cannot set the CPU quota of {path}: {err.strerror}") from err
        return group

    def add(self, pid: int) -> None:
        """Move process ``pid`` (every thread of it) into the group; the processes it starts later are born in it."""
        _write(os.path.join(self.path, "cgroup.procs"), str(pid))

    def procs(self) -> list[int]:
        try:
            return [int(x) for x in _read(os.path.join(self.path, "cgroup.procs")).split()]
        except OSError:
            return []

    @contextlib.contextmanager
    def entered(self):
        """This process in the group for the block (what it starts there stays in), back home afterwards."""
        self.add(os.getpid())
        try:
            yield self
        finally:
            _write(os.path.join(self.home, "cgroup.procs"), str(os.getpid()))

    def set_weight(self, sessions: int) -> None:
        """The group's CPU weight against the rest of the host: that of ``sessions`` sessions at niceness 0."""
        sessions = max(1, sessions)
        if self.version == "v2":
            _write(os.path.join(self.path, "cpu.weight"), str(min(10000, 100 * sessions)))
        else:
            _write(os.path.join(self.path, "cpu.shares"), str(1024 * sessions))

    def stat(self) -> dict:
        """{"periods", "throttled" (periods with throttling), "throttled_s"} so far."""
        fields = dict(ln.split()[:2] for ln in _read(os.path.join(self.path, "cpu.stat")).splitlines()
                      if len(ln.split()) >= 2)
        throttled_s = (int(fields.get("throttled_usec", 0)) / 1e6 if self.version == "v2"
                       else int(fields.get("throttled_time", 0)) / 1e9)
        return {"periods": int(fields.get("nr_periods", 0)), "throttled": int(fields.get("nr_throttled", 0)),
                "throttled_s": throttled_s}

    def describe(self) -> str:
        q = self.quota
        return (f"CPU speed {q.speed:g}: cgroup {self.version} {self.path}, quota {q.quota_us} us per "
                f"{q.period_us} us period = {q.quota_us / q.period_us:.2f} of the {q.cores} pinned core(s)")

    def remove(self, timeout_s: float = 5.0) -> None:
        """Move what is still in the group back to the parent and remove the group (quietly if already gone)."""
        if not os.path.isdir(self.path):
            return
        deadline = time.monotonic() + timeout_s
        while True:
            for pid in self.procs():
                with contextlib.suppress(OSError):
                    _write(os.path.join(self.home, "cgroup.procs"), str(pid))
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as err:      # EBUSY: a process was still being started or exiting
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def format_throttling(before: dict, after: dict, wall_s: float) -> str:
    """The group's throttling between two ``CpuGroup.stat`` readings over ``wall_s`` seconds."""
    periods = after["periods"] - before["periods"]
    throttled = after["throttled"] - before["throttled"]
    secs = after["throttled_s"] - before["throttled_s"]
    share = 100 * throttled / periods if periods else 0.0
    return (f"throttled in {throttled} of {periods} periods ({share:.0f} %), {secs:.2f} s of runnable time waiting "
            f"in {wall_s:.0f} s (cpu.stat nr_throttled, throttled time)")


def remove_stale_groups(parent: str) -> list[str]:
    """Remove empty groups of ours whose benchmark process is gone (killed before its cleanup); their names."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(GROUP_PREFIX) or not name[len(GROUP_PREFIX):].isdigit():
            continue
        pid = int(name[len(GROUP_PREFIX):])
        if os.path.exists(f"/proc/{pid}"):
            continue
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(parent, name))
            removed.append(name)
    return removed
