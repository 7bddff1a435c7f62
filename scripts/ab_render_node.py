"""CPU per image of the renderer NODE process, old code against new, interleaved in one run (issue #9 items 3/4).

    python scripts/ab_render_node.py --roots /tmp/base . [--rounds 3] [--seconds 12] [--modes full 6k 6k@0.5]

Each round runs, for every mode and every root in turn (a checkout: its ``rsatalker_ros`` comes first on
PYTHONPATH), the real renderer node (``python -m rsatalker_ros.nodes.renderer``, participant alice, 512 x 512, cpu
backend, one numba thread) on its own ROS domain. This process feeds it FaceMesh messages at 25 Hz (the default
head, posed differently every frame, stamped now) and subscribes to its image_raw and camera_info as a viewer
would; after 40 images of warm-up it measures the node's user + system CPU over ``--seconds`` and the images that
arrived, and prints CPU ms per image. Modes: a pinned level ("full", "12k", "6k"), or "6k@0.5": a 1 ms latency
budget, so the deadline controller settles on its coarsest option (6k at render scale 0.5, upscaled: where the
graph's renderers ended up on 2 busy cores). Per mode it prints each root's median over the rounds and its ratio
to the first root. The machine may be shared: only the ratios of one run mean something; the load average is
printed with each run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def node_command(mode: str) -> list[str]:
    params = ["participant:=alice", "backend:=cpu", "width:=512", "height:=512", "render_threads:=1",
              "autostart:=true"]
    if mode.endswith("@0.5"):
        params += ["latency_budget_ms:=1.0", "render_scales:=[0.5]"]
    else:
        params += [f"level:={mode}"]
    cmd = [sys.executable, "-m", "rsatalker_ros.nodes.renderer", "--ros-args", "-r", "__node:=renderer_alice"]
    for p in params:
        cmd += ["-p", p]
    return cmd


def measure(root: Path, mode: str, seconds: float, domain: int, meshes: list, profile: str = "") -> dict:
    """One renderer process of ``root`` in ``mode``: CPU seconds per published image over ``seconds``."""
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image

    from rsatalker_ros.cli.bench_graph import cpu_seconds
    from rsatalker_ros.msg import FaceMesh
    from rsatalker_ros.ros import qos
    from rsatalker_ros.ros.convert import mesh_to_msg

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONPATH=f"{root}:{os.environ.get('PYTHONPATH', '')}")
    # cwd = the root: ``python -m`` puts the working directory first on sys.path, before PYTHONPATH
    proc = subprocess.Popen(node_command(mode), env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    rclpy.init()
    node = rclpy.create_node("ab_render_node_feed")
    try:
        pub = node.create_publisher(FaceMesh, "/rsatalker/alice/mesh", qos.LATEST)
        got = {"image": 0, "info": 0}
        node.create_subscription(Image, "/rsatalker/alice/image_raw",
                                 lambda m: got.__setitem__("image", got["image"] + 1), qos.FRAMES)
        node.create_subscription(CameraInfo, "/rsatalker/alice/camera_info",
                                 lambda m: got.__setitem__("info", got["info"] + 1), qos.FRAMES)
        period, i = 0.04, 0
        next_t = time.monotonic()
        start = time.monotonic()
        span = None                      # (cpu0, images0, t0) once warmed up
        spy = None
        while True:
            now = time.monotonic()
            if now >= next_t:
                pub.publish(mesh_to_msg(meshes[i % len(meshes)], "alice", "", time.time_ns(), "alice/head"))
                i += 1
                next_t += period
                if next_t < now:                     # fell behind (busy machine): do not burst
                    next_t = now + period
            rclpy.spin_once(node, timeout_sec=max(0.0, next_t - time.monotonic()))
            if proc.poll() is not None:
                raise SystemExit(f"{root} {mode}: the renderer exited: {proc.stderr.read().decode()[-2000:]}")
            if span is None and got["image"] >= 40:
                span = (cpu_seconds(proc.pid), got["image"], time.monotonic())
                if profile:              # py-spy samples the node from outside during the measured span
                    spy = subprocess.Popen([profile, "record", "--nonblocking", "--format", "raw", "--rate", "200",
                                            "--duration", str(int(seconds)), "--pid", str(proc.pid), "--output",
                                            f"/tmp/ab_render_node_{root.name}_{mode}.txt"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elif span is not None and time.monotonic() - span[2] >= seconds:
                cpu = cpu_seconds(proc.pid) - span[0]
                images = got["image"] - span[1]
                if spy is not None:
                    spy.wait()
                return {"cpu_ms_per_image": 1e3 * cpu / max(images, 1), "images_hz": images / seconds,
                        "cores": cpu / seconds}
            if span is None and time.monotonic() - start > 300:
                raise SystemExit(f"{root} {mode}: no images within 300 s")
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roots", nargs="+", required=True, help="checkouts to compare (the first is the baseline)")
    ap.add_argument("--modes", nargs="+", default=["full", "6k", "6k@0.5"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--profile", default="", help="path of py-spy: sample each measured node into "
                    "/tmp/ab_render_node_<root>_<mode>.txt (raw format)")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from rsatalker_ros.face.head_model import load_head
    from rsatalker_ros.ros.dds import local_dds_defaults
    local_dds_defaults()
    head = load_head("default_older")
    rng = np.random.default_rng(0)
    with torch.no_grad():
        neutral = head.neutral().numpy().astype(np.float32)
    wobble = rng.normal(scale=0.002, size=neutral.shape).astype(np.float32)
    meshes = [neutral + np.float32(np.sin(i / 5.0)) * wobble for i in range(50)]

    roots = [Path(r).resolve() for r in args.roots]
    results = {(str(r), m): [] for r in roots for m in args.modes}
    domain = 150 + os.getpid() % 50
    runs = [(k, m, r) for k in range(args.rounds) for m in args.modes for r in roots]
    for k, mode, root in tqdm(runs, desc="renderer runs"):
        res = measure(root, mode, args.seconds, domain, meshes, args.profile)
        results[(str(root), mode)].append(res)
        tqdm.write(f"round {k} {mode:>7} {root}: {res['cpu_ms_per_image']:.2f} ms CPU/image, "
                   f"{res['images_hz']:.1f} images/s, {res['cores']:.2f} cores; load {os.getloadavg()[0]:.1f}")
    print("\nmedian over rounds: CPU ms per image (ratio to the first root)")
    for mode in args.modes:
        base = None
        for root in roots:
            med = float(np.median([r["cpu_ms_per_image"] for r in results[(str(root), mode)]]))
            hz = float(np.median([r["images_hz"] for r in results[(str(root), mode)]]))
            base = base or med
            print(f"  {mode:>7} {root}: {med:6.2f} ms/image at {hz:4.1f} images/s  ({med / base:.2f}x)")


if __name__ == "__main__":
    main()
