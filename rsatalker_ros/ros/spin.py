"""``run``: one node per process (``ros2 run`` style) or several in one process (a component container), until
Ctrl-C / SIGTERM, then a quiet shutdown: exit code 0, no tracebacks.

rclpy's signal handlers shut the context down on SIGINT / SIGTERM, which ends ``spin``; from then on further signals
are ignored (Ctrl-C in a terminal reaches every process of the group, and ``ros2 launch`` forwards it once more:
a second SIGINT must not interrupt the teardown with a KeyboardInterrupt traceback); the nodes' own threads are
stopped (``shutdown``) before any node is destroyed, so nothing publishes through a destroyed publisher.
"""

from __future__ import annotations

import gc
import os
import signal
import sys

import rclpy
import rclpy.task
from rclpy.exceptions import ParameterException


EXECUTOR_ENV = "RSATALKER_EXECUTOR"


def make_executor(n_nodes: int, multithreaded: bool, kind: str | None = None):
    """MultiThreadedExecutor for several nodes in one process (a component container), else single-threaded:
    ``kind`` (default: the RSATALKER_EXECUTOR environment variable, else "events") "events" is
    rclpy.experimental.EventsExecutor (entities and timers handled in C++: the motion node's ~100 audio callbacks
    a second cost about half the CPU of the Python wait-set loop), "single" rclpy's SingleThreadedExecutor.
    Spin it with ``spin_forever``."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    kind = kind or os.environ.get(EXECUTOR_ENV, "") or "events"
    if kind not in ("single", "events"):
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}; expected 'single' or 'events'")
    if multithreaded:
        return MultiThreadedExecutor(num_threads=max(2, 2 * n_nodes))
    if kind == "events":
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    return SingleThreadedExecutor()


def spin_forever(ex) -> None:
    """Spin until the context shuts down (a signal, rclpy.shutdown). rclpy 9.1.2's EventsExecutor busy-waits in
    ``spin()`` and in ``spin_until_future_complete`` without a timeout (a whole core for an idle node, and
    SIGINT / SIGTERM never end it); with a timeout it sleeps until the next event, so it runs in 1 s slices."""
    from rclpy.executors import Executor
    if isinstance(ex, Executor):
        ex.spin()
        return
    never = rclpy.task.Future()
    while rclpy.ok():
        ex.spin_until_future_complete(never, timeout_sec=1.0)


def run(node_classes, args=None, multithreaded: bool | None = None) -> int:
    """Construct the nodes, autostart the lifecycle ones (their ``autostart`` parameter), spin until shutdown.
    Returns the exit code: 1 when a node failed to start (its error is logged), else 0 (also after a signal)."""
    rclpy.init(args=args)
    nodes = []
    code = 0
    try:
        for cls in node_classes:
            nodes.append(cls())
        for n in nodes:
            if hasattr(n, "autostart") and not n.autostart() and rclpy.ok():
                code = 1                 # (not ok: a signal during startup ended it; that is no failure)
        if code == 0 and rclpy.ok():
            # everything built so far (torch, models, avatars: millions of objects) lives as long as the process:
            # move it out of the garbage collector's sight, so that a full collection does not stall the stream
            # for 100+ ms every few seconds
            gc.collect()
            gc.freeze()
            ex = make_executor(len(nodes), len(nodes) > 1 if multithreaded is None else multithreaded)
            for n in nodes:
                ex.add_node(n)
            try:
                spin_forever(ex)
            except Exception:  # noqa: BLE001
                if rclpy.ok():
                    raise
                # a signal shut the context down while the executor was building its wait set (RCLError "context
                # is not valid"): that is the normal end of the spin, not a failure
            finally:
                ex.shutdown(timeout_sec=2.0)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as err:   # a bad parameter at construction: say what and stop
        print(f"[ERROR] {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):   # the teardown below is bounded: let it finish
            signal.signal(sig, signal.SIG_IGN)
        for n in nodes:                  # threads first: nothing may publish through a destroyed publisher
            if hasattr(n, "shutdown"):
                n.shutdown()
        for n in nodes:
            try:
                n.destroy_node()
            except Exception:  # noqa: BLE001 - the context is already gone after a signal: nothing left to free
                pass
        rclpy.try_shutdown()
    return code
