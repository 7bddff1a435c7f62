"""Shared test setup: DDS stays on loopback, each test run (and each pytest-xdist worker) gets its own ROS domain,
ROS tests need the build; under pytest-xdist a module's tests stay on one worker and the longest ones start first."""

import os
import random
import sys

# Under pytest-xdist (scripts/run_tests.sh runs two workers) every worker is a process of its own: "gw0", "gw1", ...
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# Before anything imports rclpy: keep DDS traffic on this machine and away from other runs on it. The workers of
# one run inherit the domain the controlling process drew (or its seed, the run's id) and add their own index, so
# two workers' DDS graphs never meet.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.environ.get("PYTEST_XDIST_TESTRUNUID") or os.getpid())
                                           .randint(1, 100)))
if XDIST_WORKER.startswith("gw"):
    os.environ["ROS_DOMAIN_ID"] = str(int(os.environ["ROS_DOMAIN_ID"]) + int(XDIST_WORKER[2:]))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
# Before torch or numba load OpenMP: threads that wait at the end of a parallel region sleep instead of spinning.
# The suite runs two workers (and their node processes) on two cores, so a spinning thread mostly burns the time
# slice of the thread it waits for; on a loaded machine that cost the stage-3 training tests 10-20 % of their CPU.
# Numerics and thread counts are unchanged.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
from rsatalker_ros.ros.dds import local_dds_defaults  # noqa: E402  (the graph's own DDS profile, as in bringup)
local_dds_defaults()

import pytest  # noqa: E402

# pytest keeps each test module's assertion-rewritten code in test/__pycache__ unless bytecode writing is off
# (PYTHONDONTWRITEBYTECODE, as on some CI machines): rewriting the ~80 test modules again cost each pytest worker
# ~3.5 s of CPU at every collection. Writing is allowed while the test modules are collected (test_*.py only, see
# pytest.ini; what they import from the source tree is cached beside it) and is set back as it was afterwards.
DONT_WRITE_BYTECODE = sys.dont_write_bytecode
sys.dont_write_bytecode = False


def pytest_collection_finish(session):
    sys.dont_write_bytecode = DONT_WRITE_BYTECODE


def _ros_missing_reason() -> str | None:
    try:
        import rclpy  # noqa: F401
        import rsatalker_ros.msg  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the machine
        return f"ROS 2 or the built interfaces are not importable ({err}); run scripts/bootstrap.sh and source scripts/env.sh"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _ros_missing_reason()
    if reason is not None:
        if os.environ.get("RSATALKER_REQUIRE_ROS") == "1":
            raise pytest.UsageError(reason + " (RSATALKER_REQUIRE_ROS=1: ROS tests may not be skipped)")
        for item in items:
            if "ros" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
    if XDIST_WORKER:
        # the units with the most slow tests first, so that no long one is left to run alone at the end
        slow = {}
        for item in items:
            unit = xdist_unit(item.nodeid)
            slow[unit] = slow.get(unit, 0) + (item.get_closest_marker("slow") is not None)
        items.sort(key=lambda item: -slow[xdist_unit(item.nodeid)])       # stable: collection order otherwise


# Under pytest-xdist with --dist loadfile (scripts/run_tests.sh), each module's tests form one unit of work that one
# worker runs (its module-scoped fixtures, a running graph or a loaded model, are built once); the modules that each
# start a whole graph of node processes form a single unit, so that one graph at a time runs on the machine.
WHOLE_GRAPH_MODULES = ("test_graph_conversation.py", "test_record_replay_display.py", "test_launch_real.py",
                       "test_launch_testing_graph.py")


def xdist_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "whole graphs" if path.rsplit("/", 1)[-1] in WHOLE_GRAPH_MODULES else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        """loadfile, the whole-graph modules as one unit, the units in the workers' collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_unit(nodeid)
    config.option.loadscopereorder = False
    return Units(config, log)


def pytest_configure(config):
    if XDIST_WORKER:
        import torch
        torch.set_num_threads(1)      # two workers on two cores: one thread each, no threads waiting on each other


# Per-test CPU time: with RSATALKER_TEST_CPU_LOG=FILE each test appends one JSON line to FILE, its set-up, call and
# tear-down together: the CPU seconds of the pytest process itself and of the child processes it waited for (the
# node processes a test starts, and what they waited for in turn), and the wall-clock seconds. scripts/run_tests.sh
# sums them up, so that where the suite's CPU goes is visible on a loaded machine, where wall time says little.
CPU_LOG = os.environ.get("RSATALKER_TEST_CPU_LOG")


def _cpu_seconds() -> tuple[float, float]:
    import resource
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not CPU_LOG:
        yield
        return
    import json
    import time
    own0, children0 = _cpu_seconds()
    wall0, start = time.monotonic(), time.time()
    yield
    own1, children1 = _cpu_seconds()
    line = json.dumps({"test": item.nodeid, "own_s": round(own1 - own0, 3),
                       "children_s": round(children1 - children0, 3), "wall_s": round(time.monotonic() - wall0, 3),
                       "worker": XDIST_WORKER, "start": round(start, 1)})
    with open(CPU_LOG, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def pytest_sessionfinish(session, exitstatus):
    """(with RSATALKER_TEST_CPU_LOG) one more line per pytest process: all its CPU, collection and start-up included."""
    if CPU_LOG:
        import json
        own, children = _cpu_seconds()
        with open(CPU_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"process": XDIST_WORKER or "main", "own_s": round(own, 3),
                                  "children_s": round(children, 3)}) + "\n")
