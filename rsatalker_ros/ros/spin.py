"""``run``: one node per process (``ros2 run`` style) or several in one process (a component container), until
Ctrl-C / SIGTERM, then a quiet shutdown: exit code 0, no tracebacks.

rclpy's signal handlers shut the context down on SIGINT / SIGTERM, which ends ``spin``; from then on further signals
are ignored (Ctrl-C in a terminal reaches every process of the group, and ``ros2 launch`` forwards it once more:
a second SIGINT must not interrupt the teardown with a KeyboardInterrupt traceback); the nodes' own threads are
stopped (``shutdown``) before any node is destroyed, so nothing publishes through a destroyed publisher.

A stop is bounded (``StopWatchdog``): rclpy's signal thread shuts the context down at once, but the main thread
only notices when its current callback returns, and a KeyboardInterrupt raised inside a ctypes callback (numba's
compiler, llvmlite's object cache) is printed and swallowed. A node busy for seconds in one callback (a first
numba kernel load on a loaded machine: 7 s seen) then ignored Ctrl-C, and SIGTERM too (it only shuts the context
down again), until launch's SIGKILL 15 s later. Now: STOP_LIMIT_S after the stop request the process says on
stderr what did not finish, dumps every thread's stack and exits (code 0: it was asked to stop). The DDS
participant is deleted in the teardown (the context destroyed), not by a C++ static destructor at exit, and the
process then ends with ``os._exit`` (``exit_process``): the interpreter's finalisation would spend seconds of CPU
freeing a multi-GB heap and running C++ static destructors, with signals still ignored, and nothing is left that
the operating system does not release.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import signal
import sys
import threading
import time

import rclpy
import rclpy.task
from rclpy.exceptions import ParameterException


STOP_LIMIT_S = 4.0      # from the stop request (context shut down) to the end of the process; launch sends SIGTERM
                        # 5 s after SIGINT, SIGKILL 10 s later. RSATALKER_STOP_LIMIT_S overrides it.


STOP_RACE_S = 2.0       # an exception out of the spin within this long before the context goes down is part of the
                        # stop (the signal thread shuts the context down a moment after the executor saw the signal)


def context_ok(context) -> bool:
    """``context.ok()``, and False for a context already destroyed (its handle gone: no longer ok either)."""
    try:
        return context.ok()
    except Exception:  # noqa: BLE001 - a context already destroyed is no longer ok
        return False


def stopping(context, within_s: float, poll_s: float = 0.01) -> bool:
    """True when ``context`` is shut down now or within ``within_s`` (a stop request already under way): the
    signal thread and the executor's own signal handling race, so an error raised by the stop itself can reach
    the main thread just before the context says it is down. Bounded: only an error path waits."""
    end = time.monotonic() + within_s
    while True:
        if not context_ok(context):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(poll_s)


def stop_limit_s() -> float:
    """STOP_LIMIT_S, or the environment's RSATALKER_STOP_LIMIT_S [s] (a bad value is said and ignored)."""
    text = os.environ.get("RSATALKER_STOP_LIMIT_S", "")
    if text:
        try:
            value = float(text)
            if 0.0 < value < 3600.0:
                return value
        except ValueError:
            pass
        print(f"[WARN] RSATALKER_STOP_LIMIT_S={text!r}: expected seconds in (0, 3600); using {STOP_LIMIT_S:g}",
              file=sys.stderr, flush=True)
    return STOP_LIMIT_S


def flush_all() -> None:
    """Python's and C's buffered output (rcutils logging, libraries' printf), before an ``os._exit``."""
    import ctypes
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)


class StopWatchdog:
    """Bounds the time from a stop request to the end of the process (a daemon thread; ``step`` says what the main
    thread is doing, for the message). Polls the context every ``poll_s`` (a C call): the request is the context
    shutting down, which rclpy's signal thread does whatever the main thread is busy with."""

    def __init__(self, context, what: str, limit_s: float, poll_s: float = 0.2):
        self.context, self.what, self.limit_s, self.poll_s = context, what, limit_s, poll_s
        self.step = "starting"
        self.requested_at: float | None = None
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="stop_watchdog", daemon=True).start()

    def arm_backstop(self) -> None:
        """From the stop request on, a second bound that needs no Python: faulthandler's own C thread dumps every
        thread's stack and ends the process (exit code 1) ``limit_s`` + 2 s after it is armed, should this watchdog
        itself never run again (the main thread blocked in a C call while it holds the interpreter lock: then no
        Python thread, no Python signal handler and no second Ctrl-C can act). ``done`` disarms it."""
        if not self._done.is_set():
            faulthandler.dump_traceback_later(self.limit_s + 2.0, exit=True, file=sys.stderr)

    def _watch(self) -> None:
        while context_ok(self.context):
            if self._done.wait(self.poll_s):
                return
        self.requested_at = time.monotonic()
        self.arm_backstop()
        if self._done.wait(self.limit_s):
            return
        print(f"[ERROR] [{self.what}]: still running {self.limit_s:g} s after the stop request (Ctrl-C / SIGTERM): "
              f"{self.step} did not finish; exiting without it. Every thread's stack:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        flush_all()
        os._exit(0)

    def done(self) -> None:
        self._done.set()
        faulthandler.cancel_dump_traceback_later()


EXECUTOR_ENV = "RSATALKER_EXECUTOR"


def make_executor(n_nodes: int, multithreaded: bool, kind: str | None = None):
    """MultiThreadedExecutor for several nodes in one process (a component container), else single-threaded:
    ``kind`` (default: the RSATALKER_EXECUTOR environment variable, else "events") "events" is
    rclpy.experimental.EventsExecutor (entities and timers handled in C++: cheaper per callback than the Python
    wait-set loop, for the motion node's ~100 audio chunks a second), "single" rclpy's SingleThreadedExecutor.
    rclpy 9.1.2's EventsExecutor hands a subscription callback that takes (message, MessageInfo) one tuple: a node
    with such callbacks says EVENTS_EXECUTOR_OK = False. Spin it with ``spin_forever``."""
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
    while rclpy.ok():
        # a fresh future each slice: each call adds a done-callback to the future it is given, and one future kept
        # for the life of the process would gather one callback a second
        ex.spin_until_future_complete(rclpy.task.Future(), timeout_sec=1.0)


def run(node_classes, args=None, multithreaded: bool | None = None, exit_process: bool = True) -> int:
    """Construct the nodes, autostart the lifecycle ones (their ``autostart`` parameter), spin until shutdown.
    The exit code: 1 when a node failed to start (its error is logged), else 0 (also after a signal); with
    ``exit_process`` (a node's ``main``) the process ends with it once the teardown is done, else it is returned."""
    rclpy.init(args=args)
    context = rclpy.get_default_context()
    nodes = []
    code = 0
    watchdog = StopWatchdog(context, os.path.basename(sys.argv[0]) or "node", stop_limit_s())
    try:
        for cls in node_classes:
            watchdog.step = f"constructing {getattr(cls, '__name__', cls)}"
            nodes.append(cls())
        watchdog.what = ", ".join(n.get_name() for n in nodes)
        for n in nodes:
            watchdog.step = f"{n.get_name()}: autostart (configure, activate)"
            if hasattr(n, "autostart") and not n.autostart() and rclpy.ok():
                code = 1                 # (not ok: a signal during startup ended it; that is no failure)
        if code == 0 and rclpy.ok():
            # everything built so far (torch, models, avatars: millions of objects) lives as long as the process:
            # move it out of the garbage collector's sight, so that a full collection does not stall the stream
            # for 100+ ms every few seconds
            gc.collect()
            gc.freeze()
            # a node class may need rclpy's own executor (EVENTS_EXECUTOR_OK = False: callbacks with MessageInfo)
            ex = make_executor(len(nodes), len(nodes) > 1 if multithreaded is None else multithreaded,
                               None if all(getattr(n, "EVENTS_EXECUTOR_OK", True) for n in nodes) else "single")
            for n in nodes:
                ex.add_node(n)
            watchdog.step = "a callback of the executor (spin)"
            try:
                spin_forever(ex)
            except Exception:  # noqa: BLE001
                if not stopping(context, STOP_RACE_S):
                    raise
                # a signal shut the context down while the executor was building its wait set (RCLError "context
                # is not valid") or taking a message (the EventsExecutor: RuntimeError "Unable to convert call
                # argument" from a subscription being torn down): that is the normal end of the spin, not a failure
            finally:
                watchdog.step = "executor shutdown (callbacks still running on its threads)"
                ex.shutdown(timeout_sec=2.0)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as err:   # a bad parameter at construction: say what and stop
        print(f"[ERROR] {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):   # the teardown below is bounded: let it finish
            signal.signal(sig, signal.SIG_IGN)
        watchdog.arm_backstop()          # (the teardown's C calls hold the interpreter lock)
        for n in nodes:                  # threads first: nothing may publish through a destroyed publisher
            if hasattr(n, "shutdown"):
                watchdog.step = f"{n.get_name()}: shutdown() (its threads)"
                n.shutdown()
        for n in nodes:
            watchdog.step = f"{n.get_name()}: destroy_node()"
            try:
                n.destroy_node()
            except Exception:  # noqa: BLE001 - the context is already gone after a signal: nothing left to free
                pass
        watchdog.step = "rclpy shutdown (context, DDS participant)"
        rclpy.try_shutdown()
        try:
            context.destroy()            # the DDS participant goes now, not in a C++ static destructor at exit
        except Exception:  # noqa: BLE001 - still in use somewhere: then it goes at exit as before
            pass
        watchdog.done()                  # (an uncaught exception then ends the process with its own exit code)
    if exit_process:                     # (not after an uncaught exception: that one propagates, traceback and all)
        flush_all()
        os._exit(code)
    return code
