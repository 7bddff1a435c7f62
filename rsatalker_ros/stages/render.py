"""Render stage (one per participant): posed head meshes (or motion) -> avatar images. Pure Python; the ROS side is
rsatalker_ros.nodes.renderer.

Frames are offered with ``put_mesh`` / ``put_motion`` (validated: ValueError says what is wrong) into a FrameQueue;
a render thread (``start(emit)``) takes them oldest first, drops stale ones (max_frame_age_ms), renders the camera
(and a stereo pair) and calls ``emit(RenderedFrame)``. The camera looks at the first mesh's bounding-box centre
(+ camera_target_offset) from camera_distance_m along the head's +z (out of the face); changing fov_y_deg,
camera_distance_m, camera_target_offset or ipd_m re-aims it at the next frame. ``report(status)`` adds the
window's image rate and latency against their targets, render time and drops by cause (stages.health).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np

from rsatalker_ros.input_limits import InputLimits
from rsatalker_ros.ros.topics import check_participant_id
from rsatalker_ros.stages import health
from rsatalker_ros.stages.frame_queue import FrameQueue
from rsatalker_ros.stages.params import param

CAMERA_FIELDS = {"fov_y_deg", "camera_distance_m", "camera_target_offset", "ipd_m"}


@dataclass(frozen=True)
class RenderConfig(InputLimits):
    participant: str = param("alice", "whose avatar this node renders")
    input: str = param("mesh", "mesh: render FaceMesh from the motion node; motion: skin SocialMotion with the head "
                       "model here (loads torch)", choices=("mesh", "motion"))
    head: str = param("default_older", "head model (input motion, and the avatar's topology): default_older, "
                      "default_younger, a .npz or a FLAME .pkl")
    avatar: str = param("", "Gaussian avatar: a .safetensors file or a shipped avatar name; '' = the shipped avatar "
                        "named like the head")
    backend: str = param("auto", "cpu (numba tiles), gsplat (CUDA), auto (gsplat when available, else cpu)",
                         choices=("auto", "cpu", "gsplat"))
    width: int = param(512, "image width", units="px", low=16, high=4096)
    height: int = param(512, "image height", units="px", low=16, high=4096)
    fov_y_deg: float = param(30.0, "vertical field of view", units="deg", low=1.0, high=170.0, runtime=True)
    camera_distance_m: float = param(0.6, "camera distance in front of the face", units="m", low=0.05, high=100.0,
                                     runtime=True)
    camera_target_offset: tuple = param((0.0, 0.0, 0.0), "look-at point relative to the centre of the first mesh's "
                                        "bounding box, head frame", units="m", low=-10.0, high=10.0, runtime=True)
    background: tuple = param((1.0, 1.0, 1.0), "background colour rgb", low=0.0, high=1.0, runtime=True)
    publish_compressed: bool = param(False, "also publish image_raw/compressed (JPEG)", runtime=True)
    jpeg_quality: int = param(85, "JPEG quality", low=1, high=100, runtime=True)
    stereo: bool = param(False, "also render a stereo pair for VR (stereo/left, stereo/right)")
    ipd_m: float = param(0.063, "stereo eye separation", units="m", low=0.01, high=0.5, runtime=True)
    render_threads: int = param(1, "numba threads for the CPU rasteriser; 0 = all cores (1: two renderers share 2 "
                                "cores without contention)", low=0, high=1024)
    max_frame_age_ms: float = param(200.0, "frames render in order while fresh; one older than this (audio stamp to "
                                    "now) is dropped as stale when a newer one is waiting; 0 = only ever the newest",
                                    units="ms", low=0.0, high=60000.0, runtime=True)
    max_gaussians: int = param(0, "thin the avatar to at most this many Gaussians at load (each triangle keeps "
                               "one; faster CPU renders, blotchier skin); 0 = all", low=0, high=100_000_000)
    target_rate_hz: float = param(25.0, "diagnostics: images per second expected (the motion frame rate); below "
                                  "80% is WARN, below 10% ERROR", units="Hz", low=0.0, high=1000.0, runtime=True)
    target_latency_ms: float = param(250.0, "diagnostics: audio stamp to image publish, p95 above this is WARN",
                                     units="ms", low=1.0, high=60000.0, runtime=True)

    def __post_init__(self):
        super().__post_init__()                  # the input limits
        check_participant_id(self.participant)
        if len(self.camera_target_offset) != 3 or len(self.background) != 3:
            raise ValueError("camera_target_offset and background need 3 values each, got "
                             f"{list(self.camera_target_offset)} and {list(self.background)}")


@dataclass
class RenderedFrame:
    stamp_ns: int
    views: dict          # "" (the camera), "left", "right" -> (rgb [H, W, 3] uint8, Camera)


class RenderStage:
    def __init__(self, cfg: RenderConfig, reject, now_ns, log=print):
        """reject(cause, err): counts a refused frame; now_ns(): the clock of the frames' stamps (the ROS clock)."""
        import torch

        from rsatalker_ros.avatar.avatar_io import resolve_avatar
        from rsatalker_ros.avatar.gaussians import FastBinder, bind, load_avatar, thin_to
        from rsatalker_ros.render.api import render_uint8
        self.cfg, self.reject, self.now_ns = cfg, reject, now_ns
        self.torch, self.render_uint8, self.bind = torch, render_uint8, bind
        self._set_threads()
        torch.set_num_threads(1)
        self.head = None
        if cfg.input == "motion":
            from rsatalker_ros.face.head_model import load_head
            self.head = load_head(cfg.head)
        self.avatar = load_avatar(resolve_avatar(cfg.avatar or cfg.head))
        self.n_gaussians_file = len(self.avatar)
        if cfg.max_gaussians > 0:
            n_covered = len(np.unique(self.avatar.parent.numpy()))
            self.avatar = thin_to(self.avatar, max(cfg.max_gaussians, n_covered))
        self.n_vertices = int(self.avatar.faces.max()) + 1
        if self.head is not None:
            self.avatar.check_topology(self.head.faces)
        self.backend = self._pick_backend(cfg.backend)
        if self.backend == "gsplat":
            self.avatar_dev = dataclasses.replace(self.avatar, **{
                f.name: getattr(self.avatar, f.name).cuda() for f in dataclasses.fields(self.avatar)
                if f.name != "head"})
        else:
            self.binder = FastBinder(self.avatar)
        self.cameras = None
        self._bbox_centre = None
        t0 = time.perf_counter()
        self._warm_up()
        log(f"{cfg.participant}: avatar {len(self.avatar)} Gaussians (of {self.n_gaussians_file}) on "
            f"{len(self.avatar.faces)} triangles, {cfg.width} x {cfg.height} px, backend {self.backend}, input "
            f"{cfg.input}{', stereo' if cfg.stereo else ''}; warmed up in {time.perf_counter() - t0:.1f} s")
        self.frames = FrameQueue(max_age_ns=int(cfg.max_frame_age_ms * 1e6))
        self.rate = health.RateCheck("images_per_s", cfg.target_rate_hz)
        self.latency = health.LatencyCheck("stamp_to_publish_ms", cfg.target_latency_ms)
        self.render_ms = health.LatencyCheck("render_ms", 0.0)
        self.drops = health.Drops()
        self.rendered = 0
        self._stop = threading.Event()
        self._thread = None

    def _set_threads(self) -> None:
        """numba's thread count is per calling thread: set it in every thread that renders."""
        if self.cfg.render_threads > 0:
            import numba
            numba.set_num_threads(min(self.cfg.render_threads, numba.config.NUMBA_NUM_THREADS))

    def _warm_up(self) -> None:
        """Render once (random mesh, tiny image) so the kernels are compiled before the first real frame instead
        of stalling it (numba compiles on first use when its cache is stale)."""
        from rsatalker_ros.render.camera import Camera
        v = np.random.default_rng(0).normal(scale=0.1, size=(self.n_vertices, 3)).astype(np.float32)
        self._render(v, Camera.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), width=32, height=32))

    def _pick_backend(self, backend: str) -> str:
        if backend == "cpu":
            return "cpu"
        from rsatalker_ros.render.gsplat_backend import gsplat_available
        ok = self.torch.cuda.is_available() and gsplat_available()
        if backend == "gsplat" and not ok:
            raise ValueError("backend 'gsplat' needs CUDA and the gsplat package; use 'cpu' or 'auto'")
        return "gsplat" if ok else "cpu"

    # ---- parameters ---------------------------------------------------------------------------------------------
    def reconfigure(self, cfg: RenderConfig, changed: set) -> None:
        self.cfg = cfg
        self.frames.max_age_ns = int(cfg.max_frame_age_ms * 1e6)
        self.rate.target_hz = cfg.target_rate_hz
        self.latency.target_ms = cfg.target_latency_ms
        if changed & CAMERA_FIELDS and self._bbox_centre is not None:
            self.cameras = self._aim(self._bbox_centre)

    # ---- input (any thread): validate, queue --------------------------------------------------------------------
    def put_mesh(self, vertices: np.ndarray, stamp_ns: int) -> None:
        """vertices [V, 3] float32 (validated by the caller: finite, this avatar's vertex count)."""
        if self.head is not None:
            raise ValueError("this renderer's input is 'motion'; it does not take meshes")
        self.frames.put(vertices, stamp_ns)

    def put_motion(self, motion: np.ndarray, basis: str, stamp_ns: int) -> None:
        """motion [D] float32 in the head model's layout, ``basis`` its blendshape basis."""
        if self.head is None:
            raise ValueError("this renderer's input is 'mesh'; it does not take motion")
        if basis != self.head.basis:
            raise ValueError(f"SocialMotion in basis {basis!r}; the head {self.head.name!r} takes {self.head.basis!r}")
        self.frames.put(motion, stamp_ns)

    # ---- rendering ----------------------------------------------------------------------------------------------
    def _aim(self, centre: np.ndarray) -> dict:
        from rsatalker_ros.render.camera import Camera, stereo_pair
        cfg = self.cfg
        target = centre + np.asarray(cfg.camera_target_offset, float)
        cam = Camera.look_at(target + np.array([0.0, 0.0, cfg.camera_distance_m]), target, (0.0, 1.0, 0.0),
                             cfg.width, cfg.height, cfg.fov_y_deg)
        cams = {"": cam}
        if cfg.stereo:
            cams["left"], cams["right"] = stereo_pair(cam, cfg.ipd_m)
        return cams

    def _render(self, verts: np.ndarray, cam) -> np.ndarray:
        bg = np.asarray(self.cfg.background, np.float32)
        if self.backend == "gsplat":
            g = self.bind(self.avatar_dev, self.torch.from_numpy(verts).cuda())
            return self.render_uint8(g, cam, bg, backend="gsplat")
        return self.render_uint8(self.binder(verts), cam, bg, backend="cpu")

    def render(self, item: np.ndarray, stamp_ns: int) -> RenderedFrame:
        """One queued item (mesh [V, 3] or motion [D]) -> the images of every camera."""
        verts = item
        if self.head is not None:
            with self.torch.inference_mode():
                verts = self.head.from_motion(self.torch.from_numpy(item[None]))[0].numpy()
        if self.cameras is None:
            self._bbox_centre = (verts.min(0) + verts.max(0)) / 2.0
            self.cameras = self._aim(self._bbox_centre)
        cams = self.cameras
        return RenderedFrame(stamp_ns, {eye: (self._render(verts, cam), cam) for eye, cam in cams.items()})

    def start(self, emit) -> None:
        """Render queued frames in a thread, calling ``emit(RenderedFrame)`` for each."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(emit,), name=f"render_{self.cfg.participant}",
                                        daemon=True)
        self._thread.start()

    def _loop(self, emit) -> None:
        self._set_threads()
        while not self._stop.is_set():
            got = self.frames.take(self.now_ns(), timeout=0.2)
            if got is None:
                continue
            item, stamp = got
            t0 = time.perf_counter()
            try:
                frame = self.render(item, stamp)
                if self._stop.is_set():
                    return
                emit(frame)
            except Exception as err:  # noqa: BLE001 - keep rendering the next frame; say what went wrong
                if self._stop.is_set():
                    return
                self.reject("frame (render failed)", err)
                continue
            self.render_ms.add((time.perf_counter() - t0) * 1000.0)
            self.latency.add((self.now_ns() - stamp) / 1e6)
            self.rendered += 1
            self.rate.tick()

    def stop(self) -> None:
        self._stop.set()
        self.frames.wake()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._thread = None

    # ---- diagnostics -------------------------------------------------------------------------------------------
    def report(self, st: health.Status, now_s: float | None = None) -> None:
        """now_s: the monotonic time of this report (default: now)."""
        each = self.latency.take()                  # this window's images, in publish order
        s = self.frames.stats
        st.values.update({"backend": self.backend, "frames_received": s.received, "frames_rendered": s.taken,
                          # every image of this window, in publish order: percentiles over any span follow
                          "stamp_to_publish_ms_each": ",".join(f"{v:.1f}" for v in each)})
        self.rate.check(st, now_s)
        self.latency.check(st, each)
        self.render_ms.check(st)
        self.drops.check(st, s.received, {"stale": s.dropped_stale, "overflow": s.dropped_overflow,
                                          "out_of_order": s.dropped_out_of_order})
