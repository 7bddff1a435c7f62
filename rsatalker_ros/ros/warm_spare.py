"""A warm spare for respawns: a process that has already imported what the nodes need (torch, numba, rclpy and the
node modules: most of a node's start-up on a busy machine) and waits for the command line of the process group it
is to become. rsatalker-bringup keeps one; a dead node's group is started again in it, so a respawned motion node or
renderer only loads its model / avatar, warms up and joins DDS.

    spare = WarmSpare.start(env, folder)          # in the supervisor: python -m rsatalker_ros.ros.warm_spare
    proc = spare.become(argv, log_path)           # the same process, now running argv (a container command line)

Before that it also runs a small renderer and motion stage once (``warm_up``: numba kernels loaded, torch set up).
``compile_render_kernels`` alone is what scripts/bootstrap.sh runs (``compile_kernels_main``), failing loudly.
The spare reads one line from stdin: JSON {"argv": [...], "log": path or null}; with a log path it appends its
stdout and stderr there, then runs ``python -m <module> <args>`` (argv[1] == "-m") in this process. End of input
without a line: it exits with code 0 at once, also while it is still importing or warming up (the supervisor
stopped a spare it no longer needs: the rest of the start-up would be CPU spent for nothing).
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import subprocess
import sys
import threading
import time
import traceback

PRELOAD = ("rsatalker_ros.nodes.motion", "rsatalker_ros.nodes.renderer")   # (not the container: runpy runs it)


class WarmSpare:
    """The supervisor's handle on one spare process (a subprocess.Popen that is not yet any node)."""

    def __init__(self, proc: subprocess.Popen, ready_path: str):
        self.proc, self.ready_path = proc, ready_path

    @classmethod
    def start(cls, env: dict, folder: str) -> "WarmSpare":
        """A new spare; it creates a file in ``folder`` once it has imported and warmed up (``ready``)."""
        ready_path = os.path.join(folder, f"warm_spare_{time.monotonic_ns()}.ready")
        proc = subprocess.Popen([sys.executable, "-m", "rsatalker_ros.ros.warm_spare", ready_path], env=env,
                                stdin=subprocess.PIPE, start_new_session=True)
        return cls(proc, ready_path)

    def usable(self) -> bool:
        """Alive and not yet any node (an order given before it is ready waits for its warm-up)."""
        return self.proc.poll() is None and self.proc.stdin is not None

    def ready(self) -> bool:
        """Imported and warmed up."""
        return self.usable() and os.path.exists(self.ready_path)

    def become(self, argv: list[str], log_path: str | None) -> subprocess.Popen:
        """Hand the spare a process group's command line (argv[0] the Python executable, then -m module args);
        returns its Popen, now that group's process. ValueError for a command line the spare cannot run."""
        check_argv(argv)
        self.proc.stdin.write((json.dumps({"argv": argv, "log": log_path}) + "\n").encode())
        self.proc.stdin.close()
        self.proc.stdin = None
        return self.proc

    def stop(self) -> None:
        """An unused spare: end it (closing its stdin ends it at once; killed if it has not ended after 5 s)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
            self.proc.stdin = None
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def check_argv(argv) -> None:
    """ValueError unless ``argv`` is a command line a spare can become: [python, "-m", module, args...] (strings)."""
    if not isinstance(argv, list) or len(argv) < 3 or argv[1] != "-m" or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"a warm spare runs 'python -m module ...' command lines (a list of strings), got "
                         f"{argv!r:.200}")


def parse_order(line: str) -> tuple[list[str], str | None]:
    """The supervisor's order, one JSON line {"argv": [...], "log": path or null} -> (argv, log path); ValueError
    naming what is wrong."""
    try:
        order = json.loads(line)
    except ValueError as err:
        raise ValueError(f"order is not JSON ({err}): {line!r:.200}") from None
    if not isinstance(order, dict) or "argv" not in order:
        raise ValueError(f'order must be a JSON object {{"argv": [...], "log": path or null}}, got {line!r:.200}')
    check_argv(order["argv"])
    log = order.get("log")
    if log is not None and not isinstance(log, str):
        raise ValueError(f"order's log must be a file path or null, got {log!r:.200}")
    return list(order["argv"]), log


def compile_render_kernels(backend: str = "cpu") -> None:
    """numba's CPU render kernels (tile rasteriser, Gaussian binding) compiled into their on-disk cache, or loaded
    from it when current: a 32 x 32 render stage with the shipped avatars renders each level once. ``backend``
    "auto" (the spare's warm-up): whatever the renderers will use (gsplat where CUDA is). Raises what went wrong
    (scripts/bootstrap.sh runs it through ``compile_kernels_main``: a failure stops the bootstrap)."""
    from rsatalker_ros.stages.render import RenderConfig, RenderStage
    refused = []
    RenderStage(RenderConfig(width=32, height=32, backend=backend), reject=lambda *why: refused.append(why),
                now_ns=time.time_ns, log=lambda *a: None)
    if refused:
        raise RuntimeError(f"the warm-up render refused frames: {refused}")


def compile_cpu_fallback() -> None:
    """The CPU rasteriser's numba kernels compiled into their on-disk cache: the path where the C++ kernel cannot be
    built or loaded, and the projection of SH colours above degree 0. The live path (``compile_render_kernels``)
    no longer reaches them where the C++ kernel loads, so without this the first such render (or the tests that
    compare the two paths) paid ~30 s of compilation. One tiny render per output kind, both paths."""
    import numpy as np

    from rsatalker_ros.render.camera import Camera
    from rsatalker_ros.render.cpu_tiles import render_cpu
    rng = np.random.default_rng(0)
    n = 64
    means, quats = rng.uniform(-0.1, 0.1, (n, 3)), rng.normal(size=(n, 4))
    scales, opacities = np.full((n, 3), 0.02), np.full(n, 0.5)
    cam = Camera.look_at(eye=[0.0, 0.0, 0.6], target=[0.0, 0.0, 0.0], width=32, height=32, fov_y_deg=40.0)
    background = np.ones(3, np.float32)
    for sh in (rng.normal(size=(n, 1, 3)), rng.normal(size=(n, 4, 3))):     # degree 0 and degree 1 colours
        for use_c in (False, True):
            render_cpu(means, quats, scales, opacities, sh, cam, background, use_c=use_c)
            render_cpu(means, quats, scales, opacities, sh, cam, background, uint8=True, use_c=use_c)


def compile_kernels_main() -> int:
    """``compile_render_kernels``, the numba fallback of the CPU rasteriser (``compile_cpu_fallback``) and the motion
    node's kernels (the model's live step: live_core.compile_kernels; the skinning: live_skin.compile_kernels) for
    scripts/bootstrap.sh: exit code 0, or 1 with the reason on stderr."""
    try:
        from rsatalker_ros.face import live_skin
        from rsatalker_ros.motion.live_core import compile_kernels
        compile_render_kernels()
        compile_cpu_fallback()
        compile_kernels()
        live_skin.compile_kernels()
    except Exception as err:  # noqa: BLE001 - said (traceback, then the reason), and the bootstrap fails
        traceback.print_exc()
        print(f"compiling the numba kernels failed: {type(err).__name__}: {err}\n(the renderers and motion nodes "
              "would fail the same way when they start; check the numba / llvmlite versions against "
              "requirements.txt)", file=sys.stderr)
        return 1
    return 0


def warm_up() -> None:
    """Once, before any order: the render kernels (``compile_render_kernels``) and a motion stage built once (it
    runs frames of silence through its model and skinning as it is built, ``MotionStage._warm_up``), so numba's
    compiled kernels (and its compiler, which loading them from the cache needs) and torch's first-call set-up are
    in memory; then drop them. A failure only costs the respawn that time: said on stderr."""
    from rsatalker_ros.stages.motion import MotionConfig, MotionStage
    try:
        compile_render_kernels(backend="auto")
        MotionStage(MotionConfig(marker_rate_hz=0.0))
    except Exception as err:  # noqa: BLE001 - an optimisation; the node itself reports real problems
        print(f"warm spare: warm-up failed ({type(err).__name__}: {err}); respawns load everything", file=sys.stderr)


def main() -> None:
    # the order is read while the spare imports and warms up (an early one waits for the warm-up below); end of
    # input ends the process at once
    order: list[str] = []
    given = threading.Event()

    def read_order() -> None:
        line = sys.stdin.readline()
        if not line:
            os._exit(0)                # nothing to finish: not yet any node, nothing written
        order.append(line)
        given.set()
    threading.Thread(target=read_order, name="warm_spare_order", daemon=True).start()
    for name in PRELOAD:
        importlib.import_module(name)
    warm_up()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w"):
            pass
    given.wait()
    line = order[0]
    try:
        argv, log = parse_order(line)
    except ValueError as err:
        print(f"warm spare: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    os.environ["RSATALKER_BECAME_AT"] = repr(time.monotonic())     # the node's start-up is timed from here
    sys.stdout.flush()                 # what the spare itself printed stays out of the group's log
    sys.stderr.flush()
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.argv = [argv[2]] + argv[3:]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
