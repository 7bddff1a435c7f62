"""renderer (one per participant): the posed head (FaceMesh, or SocialMotion skinned here) -> Gaussian avatar
images.

    python -m rsatalker_ros.nodes.renderer --ros-args -r __node:=renderer_alice -p participant:=alice

Subscribes /rsatalker/<p>/mesh (``input: mesh``, the default) or /rsatalker/<p>/motion (``input: motion``; the
head model skins it here). Frames are rendered in order while they are fresh; a stale frame (older than
``max_frame_age_ms`` while a newer one is already waiting) is dropped, never worked through as a backlog, and
counted in /diagnostics (``ros/latest.py``).

Publishes, stamped with the incoming frame's stamp (the audio clock), reliable QoS:
  /rsatalker/<p>/image_raw (sensor_msgs/Image rgb8) and /rsatalker/<p>/camera_info;
  /rsatalker/<p>/image_raw/compressed (JPEG) when ``publish_compressed``;
  /rsatalker/<p>/stereo/{left,right}/image_raw + camera_info when ``stereo`` (a VR headset's eye pair).
Backends: 'cpu' (numba tile rasteriser), 'gsplat' (CUDA), 'auto' (gsplat where CUDA and gsplat exist, else cpu).
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from rsatalker_ros.avatar.avatar_io import resolve_avatar
from rsatalker_ros.msg import FaceMesh, FaceTopology, SocialMotion
from rsatalker_ros.nodes.common import (RejectLog, declare, diagnostic_status, make_diagnostics_publisher,
                                        publish_diagnostics, run)
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import (camera_info_to_msg, compressed_image_to_msg, flame_params_to_motion,
                                       image_to_msg, mesh_from_msg, stamp_to_ns, topology_from_msg)
from rsatalker_ros.ros.latest import FrameQueue


class RendererNode(Node):
    def __init__(self, name: str = "renderer", **kwargs):
        super().__init__(name, **kwargs)
        self.pid = topics.check_participant_id(declare(self, "participant", "alice", "whose avatar this node "
                                                       "renders", read_only=True))
        self.input = declare(self, "input", "mesh", "'mesh': render FaceMesh; 'motion': skin SocialMotion with "
                             "the head model here", read_only=True)
        head_name = declare(self, "head", "default_older", "head model (input 'motion' and the avatar's "
                            "topology): 'default_older', 'default_younger', a .npz or a FLAME .pkl", read_only=True)
        avatar = declare(self, "avatar", "", "Gaussian avatar: a .safetensors file or a shipped avatar name; '' = "
                         "the shipped avatar named like the head", read_only=True)
        backend = declare(self, "backend", "auto", "'cpu' (numba), 'gsplat' (CUDA) or 'auto'", read_only=True)
        w = declare(self, "width", 512, "image width [px]", read_only=True)
        h = declare(self, "height", 512, "image height [px]", read_only=True)
        fov = declare(self, "fov_y_deg", 30.0, "vertical field of view [deg]", read_only=True)
        dist = declare(self, "camera_distance_m", 0.6, "camera distance in front of the face [m]", read_only=True)
        offset = declare(self, "camera_target_offset", [0.0, 0.0, 0.0], "look-at point relative to the centre of "
                         "the first mesh's bounding box, head frame [m]", read_only=True)
        bg = declare(self, "background", [1.0, 1.0, 1.0], "background colour rgb 0..1", read_only=True)
        self.compressed = declare(self, "publish_compressed", False, "also publish image_raw/compressed (JPEG)")
        self.jpeg_quality = declare(self, "jpeg_quality", 85, "JPEG quality 1..100")
        self.stereo = declare(self, "stereo", False, "also render a stereo pair for VR (stereo/left, stereo/right)",
                              read_only=True)
        self.ipd = declare(self, "ipd_m", 0.063, "stereo eye separation [m]", read_only=True)
        threads = declare(self, "render_threads", 0, "numba threads for the CPU rasteriser; 0 = all cores",
                          read_only=True)
        max_age = declare(self, "max_frame_age_ms", 200.0, "a waiting frame older than this (audio stamp to now) "
                          "is dropped when a newer one is waiting [ms]; 0 = always render only the newest",
                          read_only=True)
        max_gaussians = declare(self, "max_gaussians", 0, "thin the avatar to at most this many Gaussians at "
                                "load (every triangle keeps at least one; faster CPU renders); 0 = all",
                                read_only=True)
        if self.input not in ("mesh", "motion"):
            raise ValueError(f"input is {self.input!r}; expected 'mesh' or 'motion'")
        if backend not in ("auto", "cpu", "gsplat"):
            raise ValueError(f"backend is {backend!r}; expected 'auto', 'cpu' or 'gsplat'")
        if len(offset) != 3 or len(bg) != 3:
            raise ValueError("camera_target_offset and background need 3 values each")
        if max_age < 0:
            raise ValueError(f"max_frame_age_ms is {max_age}; expected >= 0 (0 = only the newest frame)")
        if max_gaussians < 0:
            raise ValueError(f"max_gaussians is {max_gaussians}; expected 0 (all) or a positive count")
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise ValueError(f"image size {w} x {h} px; expected 16..4096 each")
        import torch

        from rsatalker_ros.avatar.gaussians import FastBinder, bind, load_avatar, thin_to
        from rsatalker_ros.render.api import render_uint8
        self.torch, self.render_uint8, self.bind = torch, render_uint8, bind
        self.render_threads = int(threads)
        self._set_threads()
        torch.set_num_threads(1)
        self.head = None
        if self.input == "motion":
            from rsatalker_ros.face.head_model import load_head
            self.head = load_head(head_name)
        self.avatar = load_avatar(resolve_avatar(avatar or head_name))
        self.n_gaussians_file = len(self.avatar)
        if max_gaussians > 0:
            n_covered = len(np.unique(self.avatar.parent.numpy()))
            self.avatar = thin_to(self.avatar, max(int(max_gaussians), n_covered))
        self.n_vertices = int(self.avatar.faces.max()) + 1
        if self.head is not None:
            self.avatar.check_topology(self.head.faces)
        self.backend = self._pick_backend(backend)
        if self.backend == "gsplat":
            self.avatar_dev = dataclasses.replace(self.avatar, **{
                f.name: getattr(self.avatar, f.name).cuda() for f in dataclasses.fields(self.avatar)
                if f.name != "head"})
        else:
            self.binder = FastBinder(self.avatar)
        self.size, self.fov, self.dist = (int(w), int(h)), float(fov), float(dist)
        self.offset, self.bg = np.asarray(offset, float), np.asarray(bg, np.float32)
        self.cameras = None
        self._warm_up()
        self.reject = RejectLog(self)
        self.frames = FrameQueue(max_age_ns=int(max_age * 1e6))

        P = lambda leaf: topics.participant(self.pid, leaf)  # noqa: E731
        self.pub_image = self.create_publisher(Image, P("image_raw"), qos.FRAMES)
        self.pub_info = self.create_publisher(CameraInfo, P("camera_info"), qos.FRAMES)
        self.pub_jpeg = self.create_publisher(CompressedImage, P("image_raw/compressed"), qos.FRAMES)
        self.pub_stereo = {}
        if self.stereo:
            for eye in ("left", "right"):
                self.pub_stereo[eye] = (self.create_publisher(Image, P(f"stereo/{eye}/image_raw"), qos.FRAMES),
                                        self.create_publisher(CameraInfo, P(f"stereo/{eye}/camera_info"), qos.FRAMES))
        if self.input == "mesh":
            self.create_subscription(FaceMesh, P("mesh"), self._on_mesh, qos.LATEST)
            self.create_subscription(FaceTopology, P("mesh_topology"), self._on_topology, qos.LATCHED)
        else:
            self.create_subscription(SocialMotion, P("motion"), self._on_motion, qos.LATEST)
        self.diag = make_diagnostics_publisher(self)
        self.create_timer(1.0, self._report)
        self.rendered, self._rendered_reported, self._render_ms, self._latency_ms = 0, 0, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"render_{self.pid}", daemon=True)
        self._thread.start()
        self.get_logger().info(f"{self.pid}: avatar {len(self.avatar)} Gaussians (of {self.n_gaussians_file}) on {len(self.avatar.faces)} "
                               f"triangles, {w} x {h} px, backend {self.backend}, input {self.input}"
                               f"{', stereo' if self.stereo else ''}")

    def _set_threads(self) -> None:
        """numba's thread count is per calling thread: set it in every thread that renders."""
        if self.render_threads > 0:
            import numba
            numba.set_num_threads(min(self.render_threads, numba.config.NUMBA_NUM_THREADS))

    def _warm_up(self) -> None:
        """Render once at start (random mesh, tiny image) so the kernels are compiled before the first real frame
        instead of stalling it (numba compiles on first use when its cache is stale)."""
        from rsatalker_ros.render.camera import Camera
        t0 = time.perf_counter()
        v = np.random.default_rng(0).normal(scale=0.1, size=(self.n_vertices, 3)).astype(np.float32)
        cam = Camera.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), width=32, height=32)
        self._render(v, cam)
        self.get_logger().info(f"renderer warmed up in {time.perf_counter() - t0:.1f} s")

    def _pick_backend(self, backend: str) -> str:
        if backend == "cpu":
            return "cpu"
        from rsatalker_ros.render.gsplat_backend import gsplat_available
        ok = self.torch.cuda.is_available() and gsplat_available()
        if backend == "gsplat" and not ok:
            raise ValueError("backend 'gsplat' needs CUDA and the gsplat package; use 'cpu' or 'auto'")
        return "gsplat" if ok else "cpu"

    # ---- input (executor thread): validate, keep only the newest -------------------------------------------
    def _on_topology(self, msg: FaceTopology) -> None:
        try:
            self.avatar.check_topology(topology_from_msg(msg))
        except ValueError as err:
            self.reject(f"FaceTopology {msg.topology_id!r}", err)

    def _on_mesh(self, msg: FaceMesh) -> None:
        try:
            if msg.participant_id != self.pid:
                raise ValueError(f"FaceMesh.participant_id is {msg.participant_id!r}; expected {self.pid!r}")
            v = mesh_from_msg(msg, self.n_vertices)
        except ValueError as err:
            self.reject("FaceMesh", err)
            return
        self.frames.put(v, stamp_to_ns(msg.header.stamp))

    def _on_motion(self, msg: SocialMotion) -> None:
        try:
            m, layout = flame_params_to_motion(msg.params)
            if layout.basis != self.head.basis:
                raise ValueError(f"SocialMotion in basis {layout.basis!r}; the head {self.head.name!r} takes "
                                 f"{self.head.basis!r}")
        except ValueError as err:
            self.reject("SocialMotion", err)
            return
        self.frames.put(m, stamp_to_ns(msg.header.stamp))

    # ---- render loop (own thread) ----------------------------------------------------------------------------
    def _setup_cameras(self, verts: np.ndarray) -> None:
        from rsatalker_ros.render.camera import Camera, stereo_pair
        target = (verts.min(0) + verts.max(0)) / 2.0 + self.offset
        cam = Camera.look_at(target + np.array([0.0, 0.0, self.dist]), target, (0.0, 1.0, 0.0),
                             self.size[0], self.size[1], self.fov)
        self.cameras = {"": cam}
        if self.stereo:
            self.cameras["left"], self.cameras["right"] = stereo_pair(cam, self.ipd)

    def _render(self, verts: np.ndarray, cam) -> np.ndarray:
        if self.backend == "gsplat":
            g = self.bind(self.avatar_dev, self.torch.from_numpy(verts).cuda())
            return self.render_uint8(g, cam, self.bg, backend="gsplat")
        return self.render_uint8(self.binder(verts), cam, self.bg, backend="cpu")

    def _loop(self) -> None:
        self._set_threads()
        while not self._stop.is_set():
            got = self.frames.take(self.get_clock().now().nanoseconds, timeout=0.2)
            if got is None:
                continue
            item, stamp = got
            t0 = time.perf_counter()
            try:
                if self.head is not None:
                    with self.torch.inference_mode():
                        item = self.head.from_motion(self.torch.from_numpy(item[None]))[0].numpy()
                if self.cameras is None:
                    self._setup_cameras(item)
                self._publish(item, stamp)
            except Exception as err:  # noqa: BLE001 - keep rendering the next frame; say what went wrong
                if not self.context.ok():
                    return                      # shutting down: the publishers are gone
                self.reject("frame (render failed)", err)
                continue
            self._render_ms.append((time.perf_counter() - t0) * 1000.0)
            self._latency_ms.append((self.get_clock().now().nanoseconds - stamp) / 1e6)
            self.rendered += 1

    def _publish(self, verts: np.ndarray, stamp: int) -> None:
        cam = self.cameras[""]
        img = self._render(verts, cam)
        frame = topics.camera_frame(self.pid)
        self.pub_image.publish(image_to_msg(img, stamp, frame))
        self.pub_info.publish(camera_info_to_msg(cam.to_camera_info_dict(), stamp, frame))
        if self.compressed:
            self.pub_jpeg.publish(compressed_image_to_msg(img, stamp, frame, self.jpeg_quality))
        for eye, (pub_img, pub_info) in self.pub_stereo.items():
            c = self.cameras[eye]
            # CameraInfo convention: both eyes share the left optical frame; the right P carries Tx
            f = topics.camera_frame(self.pid, eye)
            pub_img.publish(image_to_msg(self._render(verts, c), stamp, f))
            pub_info.publish(camera_info_to_msg(c.to_camera_info_dict(), stamp, f))

    def _report(self) -> None:
        each, self._latency_ms = self._latency_ms, []        # this window's images, in publish order
        ms, self._render_ms = sorted(self._render_ms), []
        lat = sorted(each)
        n = self.rendered - self._rendered_reported
        self._rendered_reported = self.rendered
        s = self.frames.stats
        pct = lambda a, q: a[min(len(a) - 1, int(q * len(a)))] if a else 0.0  # noqa: E731
        vals = {"images_per_s": float(n), "render_ms_p50": pct(ms, 0.5), "render_ms_p95": pct(ms, 0.95),
                "stamp_to_publish_ms_p50": pct(lat, 0.5), "stamp_to_publish_ms_p95": pct(lat, 0.95),
                # every image of this window, in publish order: percentiles over any span can be computed from these
                "stamp_to_publish_ms_each": ",".join(f"{v:.1f}" for v in each),
                "frames_received": s.received, "frames_rendered": s.taken, "dropped_stale": s.dropped_stale,
                "dropped_overflow": s.dropped_overflow, "dropped_out_of_order": s.dropped_out_of_order,
                "rejected_inputs": self.reject.total, "backend": self.backend}
        publish_diagnostics(self, self.diag, [diagnostic_status(self.get_name(), self.pid, vals)])

    def shutdown(self) -> None:
        self._stop.set()
        self.frames.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)


def main(args=None):
    raise SystemExit(run([RendererNode], args))


if __name__ == "__main__":
    main()
