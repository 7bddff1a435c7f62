"""When a dead node is started again, for both ways of running the graph: the launch files
(rsatalker_ros.ros.launch_respawn) and rsatalker-bringup (rsatalker_ros.cli.bringup). Pure logic, no ROS.

A node is respawned only when it died: a non-zero exit code (1: it failed to start, e.g. a bad parameter; an
uncaught exception) or a signal other than SIGINT / SIGTERM (SIGKILL from the OOM killer, SIGSEGV, SIGABRT). A node
that exits with code 0 (a finished wav, or a node that stopped on Ctrl-C / SIGTERM: ``ros.spin.run`` exits 0 then)
or that is ended by SIGINT / SIGTERM before its handlers are installed was asked to stop and stays stopped
(as systemd's ``Restart=on-failure``). The first respawn comes ``graph.RESPAWN_DELAY_S`` after the death, each
further one within a minute after twice the delay before; a node that dies more than ``max_restarts`` times within
a minute is given up on.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from rsatalker_ros.ros.graph import RESPAWN_DELAY_S

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)      # a request to stop: the process is not respawned


def died(returncode: int) -> bool:
    """True when a process that ended with ``returncode`` (subprocess/asyncio style: -N for signal N) died, so it
    is to be respawned; False for exit code 0 and for SIGINT / SIGTERM."""
    if not isinstance(returncode, int):
        raise TypeError(f"returncode must be the int exit status of an ended process, got {returncode!r}")
    return returncode != 0 and -returncode not in STOP_SIGNALS


def describe_exit(returncode: int) -> str:
    """'exit code 3', 'signal SIGKILL' (for log lines)."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Respawn:
    """When a dead process starts again: ``delay_s`` after its first death, doubled for each further death within
    ``window_s`` (at most ``max_delay_s``); more than ``max_restarts`` deaths within ``window_s``: give up (None)."""
    max_restarts: int = 5
    delay_s: float = RESPAWN_DELAY_S
    max_delay_s: float = 30.0
    window_s: float = 60.0
    deaths: dict = field(default_factory=dict)        # process (group / node name) -> monotonic times of deaths

    def after_death(self, name: str, now: float) -> float | None:
        """Record a death of ``name`` at monotonic time ``now`` [s]; the delay before its respawn [s], or None."""
        recent = [t for t in self.deaths.get(name, []) if now - t < self.window_s] + [now]
        self.deaths[name] = recent
        if len(recent) > self.max_restarts:
            return None
        return min(self.max_delay_s, self.delay_s * 2 ** (len(recent) - 1))
