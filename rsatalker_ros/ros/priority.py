"""CPU priority of the graph's processes (Linux; elsewhere only the process niceness). No ROS.

The renderers are the graph's elastic consumers: short of CPU they pick a cheaper level of detail and drop stale
frames, while audio capture, the conversation and the motion nodes must keep the audio clock. So the renderers can
run at a higher niceness (config/graph.yaml ``renderer_nice``, 0 as shipped): on a small machine the meshes then
stay on time and the renderers take what is left (and yield to any other work of the machine too). With autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled, the default of
most distributions) niceness only ranks the processes of one session; rsatalker-bringup starts each process in a
session of its own, so there the niceness of the process's autogroup (/proc/PID/autogroup) is what counts, and
``lower_priority`` sets both. ``ros2 launch`` keeps its nodes in its own session: the launch files prefix the
renderers' command with ``nice``.
"""

from __future__ import annotations

import os


def lower_priority(pid: int, nice: int) -> str | None:
    """Niceness ``nice`` (0..19) for process ``pid`` (its main thread; the threads it starts later inherit it) and,
    when ``pid`` leads its own session, for that session's autogroup. None when done, else why not (a kernel without
    autogroups only loses the second part)."""
    if not 0 <= nice <= 19:
        raise ValueError(f"nice {nice}: expected 0..19")
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as err:
        return f"setpriority({pid}, {nice}): {err}"
    try:
        if os.getsid(pid) != pid:
            return None                      # shares a session (ros2 launch): the niceness ranks it there
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except FileNotFoundError:
        return None                          # no autogroups: the niceness ranks it machine-wide
    except OSError as err:
        return f"autogroup niceness of {pid}: {err}"
    return None


def autogroup_nice(pid: int) -> int | None:
    """The niceness of process ``pid``'s autogroup (None without autogroups)."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return int(f.read().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None
