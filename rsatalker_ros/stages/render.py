"""Render stage: posed head meshes (or motion) -> avatar images, for one participant (the default graph: one
renderer per participant) or a list of them served by one process. Pure Python; the ROS side is
rsatalker_ros.nodes.renderer.

Frames are offered with ``put_mesh`` / ``put_motion`` (validated: ValueError says what is wrong) into one FrameQueue
per participant; a render thread (``start(emit)``) takes, each tick, the oldest fresh frame of every participant
that has one (dropping stale ones, max_frame_age_ms), renders them all in one ``ParticipantRenderer.render_tick``
(on the GPU: one batched bind per avatar file and one rasterisation per image size; on the CPU one after another)
and calls ``emit(RenderedFrame)`` once per participant, with that participant's own stamp, before the next tick
(the images may be views of a buffer the next tick reuses). A frame that cannot be rendered (NaN vertices, a
failing skinning) is counted against its participant and the others are still rendered. Participants naming the
same avatar file share one loaded avatar (bound together on the GPU). Each participant's camera looks at its first
mesh's bounding-box centre (+ camera_target_offset) from camera_distance_m along the head's +z (out of the face);
changing fov_y_deg, camera_distance_m, camera_target_offset or ipd_m re-aims it at the next frame.
``report(status)`` adds each participant's image rate and latency against their targets, drops by cause
(stale, overflow, out_of_order, too_old, render_failed) and the render time per tick (stages.health).

Deadline: every avatar is loaded once with its trained levels of detail (avatar.levels: "full", "12k", "6k" beside
the shipped avatars and those rsatalker-avatar-from-photo makes; a file without levels is its only level, "full").
Per tick a render.deadline.DeadlineController, fed with the render times measured here, picks the level (and, past
the coarsest level, a render scale: the images are upscaled to width x height) that keeps audio stamp -> publish of
the tick's oldest frame within ``latency_budget_ms`` and the render within one frame period; a participant without
that level renders its next more detailed one. Nothing waits: the queue drops a frame a newer one overtakes once
it is older than ``max_frame_age_ms`` ("stale"), and with ``too_old_ms`` set, a frame older than that when taken
("too_old"). ``level`` pins one level (fixed quality). The report carries the level, scale, budget and the
controller's p95 latency; WARN when the budget or the rate cannot be held, ERROR when frames come but none is
published (stall).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from rsatalker_ros.input_limits import InputLimits
from rsatalker_ros.render.deadline import DeadlineConfig, DeadlineController
from rsatalker_ros.ros.topics import check_participant_id
from rsatalker_ros.stages import health
from rsatalker_ros.stages.frame_queue import FrameQueue
from rsatalker_ros.stages.params import param

CAMERA_FIELDS = {"fov_y_deg", "camera_distance_m", "camera_target_offset", "ipd_m"}


@dataclass(frozen=True)
class Served:
    participant: str
    head: str
    avatar: str          # '' = the shipped avatar named like the head


@dataclass(frozen=True)
class RenderConfig(InputLimits):
    participant: str = param("alice", "whose avatar this node renders (when participants is [''])")
    participants: tuple = param(("",), "several participants rendered by this one process, each to its own "
                                "topics, all in one batched call per tick (e.g. [alice, bob]); [''] = just "
                                "participant")
    input: str = param("mesh", "mesh: render FaceMesh from the motion node; motion: skin SocialMotion with the head "
                       "model here (loads torch)", choices=("mesh", "motion"))
    head: str = param("default_older", "head model (input motion, and the avatar's topology): default_older, "
                      "default_younger, a .npz or a FLAME .pkl")
    heads: tuple = param(("",), "with participants: one head per participant, in the same order; [''] = head for "
                         "all")
    avatar: str = param("", "Gaussian avatar: a .safetensors file or a shipped avatar name; '' = the shipped avatar "
                        "named like the head")
    avatars: tuple = param(("",), "with participants: one avatar per participant, in the same order ('' = named "
                           "like its head); [''] = avatar for all. Participants naming the same file share it")
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
    target_rate_hz: float = param(25.0, "diagnostics: images per second expected per participant (the motion frame "
                                  "rate); below 80% is WARN, below 10% ERROR", units="Hz", low=0.0, high=1000.0,
                                  runtime=True)
    target_latency_ms: float = param(250.0, "diagnostics: audio stamp to image publish, p95 above this is WARN",
                                     units="ms", low=1.0, high=60000.0, runtime=True)
    latency_budget_ms: float = param(DeadlineConfig.budget_ms, "audio stamp to image publish the renderer holds "
                                     "(p95) by choosing the level of detail and render scale per frame; WARN when "
                                     "it cannot", units="ms", low=1.0, high=60000.0)
    level: str = param(DeadlineConfig.pinned_level, "pin the level of detail (full, 12k, 6k: fixed quality, the "
                       "budget is still measured and reported); '' = chosen per frame to hold latency_budget_ms")
    render_scales: tuple = param(DeadlineConfig.scales, "render scales tried in order once even the coarsest level "
                                 "does not fit (images are upscaled to width x height); [1.0] = never scale",
                                 low=0.1, high=1.0)
    too_old_ms: float = param(0.0, "a frame older than this (audio stamp to now) when the render loop takes it, "
                              "even the newest, is dropped as too_old (it cannot be published in time); 0 = off: "
                              "max_frame_age_ms alone drops frames a newer one overtakes (stamps on another clock "
                              "still render)", units="ms", low=0.0, high=60000.0)

    def __post_init__(self):
        super().__post_init__()                  # the input limits
        if len(self.camera_target_offset) != 3 or len(self.background) != 3:
            raise ValueError("camera_target_offset and background need 3 values each, got "
                             f"{list(self.camera_target_offset)} and {list(self.background)}")
        ids = [s.participant for s in self.served()]
        for pid in ids:
            check_participant_id(pid)
        if len(set(ids)) != len(ids):
            raise ValueError(f"participants must be distinct ids, got {ids}")

    def served(self) -> list[Served]:
        """The participants this renderer serves, each with its head and avatar name."""
        if self.participants == ("",):
            if self.heads != ("",) or self.avatars != ("",):
                raise ValueError(f"heads {list(self.heads)} and avatars {list(self.avatars)} go with participants; "
                                 f"participants is [''] (one renderer for participant {self.participant!r}: set "
                                 "head and avatar)")
            return [Served(self.participant, self.head, self.avatar)]
        n = len(self.participants)
        for name, values in (("heads", self.heads), ("avatars", self.avatars)):
            if values != ("",) and len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries {list(values)}; expected one per participant "
                                 f"({n}: {list(self.participants)}) or [''] for all")
        heads = self.heads if self.heads != ("",) else (self.head,) * n
        avatars = self.avatars if self.avatars != ("",) else (self.avatar,) * n
        return [Served(p, h, a) for p, h, a in zip(self.participants, heads, avatars)]


@dataclass
class RenderedFrame:
    stamp_ns: int
    views: dict          # "" (the camera), "left", "right" -> (rgb [H, W, 3] uint8, Camera)
    participant: str = ""


class Stream:
    """One served participant: its queue, head (input motion), avatar, camera and diagnostics."""

    def __init__(self, pid: str, head, levels: dict, max_age_ns: int, cfg: RenderConfig):
        self.pid, self.head = pid, head
        self.levels = levels             # level name -> GaussianAvatar, most detailed ("full") first
        self.avatar = levels["full"]
        # the head's vertices when it is known (it may have grown since the avatar was made, e.g. teeth), else the
        # avatar's own
        self.n_vertices = head.n_vertices if head is not None else int(self.avatar.faces.max()) + 1
        self.frames = FrameQueue(max_age_ns=max_age_ns)
        self.cameras = None              # eye -> Camera once aimed at the first mesh (a new dict on every re-aim)
        self.bbox_centre = None
        self.rate = health.RateCheck("images_per_s", cfg.target_rate_hz)
        self.latency = health.LatencyCheck("stamp_to_publish_ms", cfg.target_latency_ms)
        self.drops = health.Drops()
        self.path = LatencyPath()
        self.render_failed = 0
        self.too_old = 0
        self.rendered = 0

    def level_avatar(self, level: str):
        """This participant's avatar at ``level``, or at its next more detailed level when it has not that one."""
        names = list(self.levels)
        if level in self.levels:
            return self.levels[level]
        finer = [n for n in names if _level_rank(n) >= _level_rank(level)]
        return self.levels[finer[-1] if finer else names[0]]

    def report(self, st: health.Status, now_s: float | None) -> None:
        each = self.latency.take()                  # this window's images, in publish order
        s = self.frames.stats
        st.values.update({"frames_received": s.received, "frames_rendered": s.taken - self.render_failed,
                          # every image of this window, in publish order: percentiles over any span follow
                          "stamp_to_publish_ms_each": ",".join(f"{v:.1f}" for v in each)})
        st.values.update(self.path.take())
        self.rate.check(st, now_s)
        self.latency.check(st, each)
        self.drops.check(st, s.received, {"stale": s.dropped_stale, "overflow": s.dropped_overflow,
                                          "out_of_order": s.dropped_out_of_order,
                                          "too_old": self.too_old, "render_failed": self.render_failed})


class LatencyPath:
    """Where each published image's audio stamp -> publish latency went, one entry per image in publish order
    (thread-safe): the frame's arrival here (after decoding and checks), the render loop taking it (queue wait),
    the end of its render, all in ms after its stamp. ``take`` -> diagnostics values "stamp_to_<step>_ms_each"
    (comma-separated, like stamp_to_publish_ms_each, so percentiles over any span of reports follow)."""
    STEPS = ("receive", "take", "rendered")

    def __init__(self):
        self._rows: list = []
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, receive_ns: int, take_ns: int, rendered_ns: int) -> None:
        with self._lock:
            self._rows.append(tuple((t - stamp_ns) / 1e6 for t in (receive_ns, take_ns, rendered_ns)))

    def take(self) -> dict:
        with self._lock:
            rows, self._rows = self._rows, []
        return {f"stamp_to_{step}_ms_each": ",".join(f"{r[i]:.1f}" for r in rows)
                for i, step in enumerate(self.STEPS)}


def _level_rank(level: str) -> float:
    """Detail of a level name: "full" highest, then "12k" > "6k"."""
    return float("inf") if level == "full" else float(level[:-1])


def _eye_name(pid: str, eye: str) -> str:
    return f"{pid}/{eye}" if eye else pid


class RenderStage:
    def __init__(self, cfg: RenderConfig, reject, now_ns, log=print, render_clock=time.perf_counter):
        """reject(cause, err): counts a refused frame; now_ns(): the clock of the frames' stamps (the ROS clock);
        render_clock(): seconds, measures render times for the level choice (a simulated clock in tests)."""
        import torch

        from rsatalker_ros.render.participants import Participant, ParticipantRenderer
        from rsatalker_ros.render.resize import resize_bilinear_uint8
        self.resize = resize_bilinear_uint8        # scaled renders -> the output size (numba: imported here)
        self.cfg, self.reject, self.now_ns, self.render_clock = cfg, reject, now_ns, render_clock
        self.torch = torch
        self._set_threads()
        torch.set_num_threads(1)
        self.backend = self._pick_backend(cfg.backend)
        heads, avatars = {}, {}           # loaded once each; participants naming one avatar file share the object
        self.n_gaussians_file = {}        # id(avatar) -> its Gaussian count in the file (before max_gaussians)
        self.streams: dict[str, Stream] = {}
        for s in cfg.served():
            head = None
            if cfg.input == "motion":
                from rsatalker_ros.face.head_model import load_head
                if s.head not in heads:
                    heads[s.head] = load_head(s.head)
                head = heads[s.head]
            levels = self._load_levels(s.avatar or s.head, avatars)
            if head is not None:
                for avatar in levels.values():
                    avatar.check_topology(head.faces)
            self.streams[s.participant] = Stream(s.participant, head, levels, int(cfg.max_frame_age_ms * 1e6), cfg)
        level_names = sorted({lv for st in self.streams.values() for lv in st.levels}, key=_level_rank, reverse=True)
        if cfg.level and cfg.level not in level_names:
            raise ValueError(f"level {cfg.level!r}: the avatars served here have the levels {level_names}; expected "
                             "one of them, or '' to choose per frame")
        self.deadline = DeadlineController(
            DeadlineConfig(budget_ms=cfg.latency_budget_ms, rate_hz=cfg.target_rate_hz or DeadlineConfig.rate_hz,
                           levels=tuple(level_names), scales=tuple(cfg.render_scales), pinned_level=cfg.level,
                           max_age_ms=cfg.too_old_ms or float("inf")),
            costs={lv: sum(len(st.level_avatar(lv)) for st in self.streams.values()) for lv in level_names})
        self._deadline_lock = threading.Lock()    # choose/rendered in the render thread, status in the executor's
        self._forwarded = {}                       # (participant, cause) -> queue drops already told the controller
        bg = np.asarray(cfg.background, np.float32)   # rgb 0..1, as the single-participant path passed it
        self.renderers = {lv: ParticipantRenderer(     # one per level: its binders are built once, here
            [Participant(_eye_name(st.pid, eye), st.level_avatar(lv), cam, bg)
             for st in self.streams.values() for eye, cam in self._aim(np.zeros(3)).items()], backend=self.backend)
            for lv in level_names}
        self.renderer = self.renderers["full"]
        self._scale = {lv: 1.0 for lv in level_names}    # the render scale each level's cameras are set to
        self.render_ms = health.LatencyCheck("render_ms", 0.0)   # per tick (all participants)
        t0 = time.perf_counter()
        for renderer in self.renderers.values():
            self._warm_up(renderer)
        for st in self.streams.values():
            levels = ", ".join(f"{lv} {len(a)}" for lv, a in st.levels.items())
            log(f"{st.pid}: avatar {len(st.avatar)} Gaussians (of {self.n_gaussians_file[id(st.avatar)]}) on "
                f"{len(st.avatar.faces)} triangles, levels {levels}; {cfg.width} x {cfg.height} px, backend "
                f"{self.backend}, input {cfg.input}{', stereo' if cfg.stereo else ''}")
        log(f"{len(self.streams)} participant(s), {len(avatars)} avatar(s) loaded; warmed up in "
            f"{time.perf_counter() - t0:.1f} s")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def _load_levels(self, name: str, loaded: dict) -> dict:
        """name: an avatar file, head file or shipped avatar -> {level: GaussianAvatar}, "full" first (the trained
        levels found beside its file, ``avatar.levels``; without any it is its only level). Each file is loaded
        once per stage."""
        from rsatalker_ros.avatar.avatar_io import resolve_avatar
        from rsatalker_ros.avatar.gaussians import load_avatar, thin_to
        from rsatalker_ros.avatar.levels import available_levels, level_path
        path = resolve_avatar(name).resolve()
        if path not in loaded:
            levels = {}
            for lv in available_levels(name):
                avatar = load_avatar(level_path(name, lv))
                n_file = len(avatar)
                if self.cfg.max_gaussians > 0 and n_file > self.cfg.max_gaussians:
                    n_covered = len(np.unique(avatar.parent.numpy()))
                    avatar = thin_to(avatar, max(self.cfg.max_gaussians, n_covered))
                levels[lv] = avatar
                self.n_gaussians_file[id(avatar)] = n_file
            loaded[path] = levels
        return loaded[path]

    # ---- the first (or only) participant: the single-participant renderer's attributes ------------------------
    @property
    def first(self) -> Stream:
        return next(iter(self.streams.values()))

    @property
    def frames(self) -> FrameQueue:
        return self.first.frames

    @property
    def rate(self) -> health.RateCheck:
        return self.first.rate

    @property
    def latency(self) -> health.LatencyCheck:
        return self.first.latency

    @property
    def cameras(self):
        return self.first.cameras

    @property
    def avatar(self):
        return self.first.avatar

    @property
    def n_vertices(self) -> int:
        return self.first.n_vertices

    def _set_threads(self) -> None:
        """numba's thread count is per calling thread: set it in every thread that renders."""
        if self.cfg.render_threads > 0:
            import numba
            numba.set_num_threads(min(self.cfg.render_threads, numba.config.NUMBA_NUM_THREADS))

    def _warm_up(self, renderer) -> None:
        """Render once (random meshes, tiny images) so the kernels are compiled before the first real frame instead
        of stalling it (numba compiles on first use when its cache is stale)."""
        from rsatalker_ros.render.camera import Camera
        rng = np.random.default_rng(0)
        tiny = Camera.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), width=32, height=32)
        kept = {name: p.camera for name, p in renderer.participants.items()}
        for name in kept:
            renderer.set_camera(name, tiny)
        items = {}
        for st in self.streams.values():
            v = rng.normal(scale=0.1, size=(st.n_vertices, 3)).astype(np.float32)
            items.update({name: (v, 0) for name in kept if name.split("/")[0] == st.pid})
        tick = renderer.render_tick(items)
        if tick.rejected:
            raise RuntimeError(f"warm-up render failed: {tick.rejected}")
        self.resize(tick.frames[0].image, 48, 48)     # the upscale of scaled renders, compiled now too
        for name, cam in kept.items():
            renderer.set_camera(name, cam)

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
        for st in self.streams.values():
            st.frames.max_age_ns = int(cfg.max_frame_age_ms * 1e6)
            st.rate.target_hz = cfg.target_rate_hz
            st.latency.target_ms = cfg.target_latency_ms
        with self._deadline_lock:                   # the rate a frame's render must fit
            self.deadline.cfg.rate_hz = cfg.target_rate_hz or DeadlineConfig.rate_hz
        if "background" in changed:
            bg = np.asarray(cfg.background, np.float32)   # rgb 0..1, as the single-participant path passed it
            for renderer in self.renderers.values():
                for name, p in renderer.participants.items():
                    p.background = bg
                    renderer.set_camera(name, p.camera)     # drops the cached per-camera tensors (backgrounds)
        if changed & CAMERA_FIELDS:
            for st in self.streams.values():
                if st.bbox_centre is not None:
                    self._set_cameras(st, self._aim(st.bbox_centre))

    # ---- input (any thread): validate, queue --------------------------------------------------------------------
    def stream(self, participant: str | None) -> Stream:
        """The served participant named ``participant`` (None: the first); ValueError naming those served."""
        if participant is None:
            return self.first
        if participant not in self.streams:
            raise ValueError(f"participant {participant!r} is not served here; this renderer serves "
                             f"{list(self.streams)}")
        return self.streams[participant]

    def put_mesh(self, vertices: np.ndarray, stamp_ns: int, participant: str | None = None) -> None:
        """vertices [V, 3] float32 (validated by the caller: finite, this avatar's vertex count)."""
        st = self.stream(participant)
        if st.head is not None:
            raise ValueError("this renderer's input is 'motion'; it does not take meshes")
        st.frames.put((vertices, self.now_ns()), stamp_ns)     # with its arrival time (LatencyPath)
        self._wake.set()

    def put_motion(self, motion: np.ndarray, basis: str, stamp_ns: int, participant: str | None = None) -> None:
        """motion [D] float32 in the head model's layout, ``basis`` its blendshape basis."""
        st = self.stream(participant)
        if st.head is None:
            raise ValueError("this renderer's input is 'mesh'; it does not take motion")
        if basis != st.head.basis:
            raise ValueError(f"SocialMotion in basis {basis!r}; the head {st.head.name!r} takes {st.head.basis!r}")
        st.frames.put((motion, self.now_ns()), stamp_ns)
        self._wake.set()

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

    def _set_cameras(self, st: Stream, cams: dict) -> None:
        st.cameras = cams
        for lv, renderer in self.renderers.items():
            for eye, cam in cams.items():
                renderer.set_camera(_eye_name(st.pid, eye), self._scaled(cam, self._scale[lv]))

    def _scaled(self, cam, scale: float):
        if scale == 1.0:
            return cam
        return cam.with_size(max(1, round(cam.width * scale)), max(1, round(cam.height * scale)))

    def _use_scale(self, level: str, scale: float) -> None:
        """Set the cameras of ``level``'s renderer to render at ``scale`` (for the participants aimed already)."""
        if self._scale[level] == scale:
            return
        self._scale[level] = scale
        for st in self.streams.values():
            for eye, cam in (st.cameras or {}).items():
                self.renderers[level].set_camera(_eye_name(st.pid, eye), self._scaled(cam, scale))

    def _vertices(self, st: Stream, item: np.ndarray) -> np.ndarray:
        """A queued item (mesh [V, 3] or motion [D]) -> vertices [V, 3]; aims the camera at the first one."""
        verts = item
        if st.head is not None:
            with self.torch.inference_mode():
                verts = st.head.from_motion(self.torch.from_numpy(item[None]))[0].numpy()
        if st.cameras is None:
            centre = (verts.min(0) + verts.max(0)) / 2.0
            if not np.isfinite(centre).all():
                raise ValueError("vertices contain NaN or infinite values")
            st.bbox_centre = centre
            self._set_cameras(st, self._aim(centre))
        return verts

    def render_tick(self, items: dict, level: str = "", scale: float = 1.0) -> tuple[list, dict]:
        """items: {participant: (queued item, stamp_ns)} -> ([RenderedFrame per rendered participant], {participant:
        why its frame was not rendered}), rendered at ``level`` ('' = the pinned level, else full) and ``scale``
        (images upscaled to the output size). The images may be views of a buffer the next call overwrites."""
        level = level or self.cfg.level or "full"
        self._use_scale(level, scale)
        batch, failed = {}, {}
        for pid, (item, stamp) in items.items():
            try:
                st = self.stream(pid)
                verts = self._vertices(st, item)
                batch.update({_eye_name(pid, eye): (verts, stamp) for eye in st.cameras})
            except Exception as err:  # noqa: BLE001 - one participant's bad frame must not stop the others
                failed[pid] = str(err)
        try:
            tick = self.renderers[level].render_tick(batch)
        except Exception as err:  # noqa: BLE001 - a failed batch fails its frames; the next tick is tried anew
            tick = None
            failed.update({pid: f"render failed: {err}" for pid in items if pid not in failed})
        frames = {}
        if tick is not None:
            for name, why in tick.rejected.items():
                failed.setdefault(name.split("/")[0], why)
            for f in tick.frames:
                pid, _, eye = f.name.partition("/")
                cam = self.streams[pid].cameras[eye]          # the full-size camera the image is published with
                image = self.resize(f.image, cam.width, cam.height)   # bilinear, when rendered scaled
                frames.setdefault(pid, RenderedFrame(f.stamp, {}, pid)).views[eye] = (image, cam)
        out = [fr for pid, fr in frames.items() if pid not in failed]
        return out, failed

    def render(self, item: np.ndarray, stamp_ns: int, participant: str | None = None) -> RenderedFrame:
        """One queued item (mesh [V, 3] or motion [D]) -> the images of every camera; ValueError if it failed."""
        pid = self.stream(participant).pid
        frames, failed = self.render_tick({pid: (item, stamp_ns)})
        if failed:
            raise ValueError(f"{pid}: {failed[pid]}")
        return frames[0]

    def start(self, emit) -> None:
        """Render queued frames in a thread, calling ``emit(RenderedFrame)`` for each."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(emit,), name="render_" + "_".join(self.streams),
                                        daemon=True)
        self._thread.start()

    def _take(self, now: int) -> tuple[dict, dict]:
        """The next frame of every participant that has one and is not older than too_old_ms at ``now`` [ns]:
        ({participant: (item, stamp_ns)}, {participant: its arrival time [ns]}). Counts every drop (the queues' and
        too_old) with the deadline controller."""
        got, arrived = {}, {}
        too_old_ns = int(self.cfg.too_old_ms * 1e6)
        for pid, st in self.streams.items():
            taken = st.frames.take(now, timeout=0)
            if taken is not None and too_old_ns and now - taken[1] > too_old_ns:
                st.too_old += 1
                self.deadline.dropped("too_old")
            elif taken is not None:
                (item, arrived[pid]), stamp = taken
                got[pid] = (item, stamp)
            s = st.frames.stats
            for cause, total in (("stale", s.dropped_stale), ("overflow", s.dropped_overflow),
                                 ("out_of_order", s.dropped_out_of_order)):
                new = total - self._forwarded.get((pid, cause), 0)
                if new:
                    self._forwarded[(pid, cause)] = total
                    self.deadline.dropped(cause, new)
        return got, arrived

    def _loop(self, emit) -> None:
        self._set_threads()
        while not self._stop.is_set():
            self._wake.clear()               # before taking: a frame put after this wakes the wait below
            now = self.now_ns()
            with self._deadline_lock:
                got, arrived = self._take(now)
                if got:                      # the tick's oldest frame sets the time left
                    oldest_s = min(stamp for _, stamp in got.values()) / 1e9
                    choice = self.deadline.choose(now / 1e9, oldest_s)
            if not got:
                self._wake.wait(0.2)
                continue
            t0, t0_level = time.perf_counter(), self.render_clock()
            frames, failed = self.render_tick(got, choice.level, choice.scale)
            render_s = self.render_clock() - t0_level
            rendered_ns = self.now_ns()
            if self._stop.is_set():
                return
            for pid, why in failed.items():
                self.streams[pid].render_failed += 1
                self.reject("frame (render failed)", f"{pid}: {why}")
            with self._deadline_lock:
                self.deadline.dropped("render_failed", len(failed))
            for frame in frames:             # each before the next tick: the images may be views of its buffer
                try:
                    emit(frame)
                except Exception as err:  # noqa: BLE001 - one participant's publish failure must not stop the rest
                    if self._stop.is_set():
                        return
                    self.reject("frame (publish failed)", f"{frame.participant}: {err}")
                    continue
                st = self.streams[frame.participant]
                st.latency.add((self.now_ns() - frame.stamp_ns) / 1e6)
                st.path.add(frame.stamp_ns, arrived[frame.participant], now, rendered_ns)
                st.rendered += 1
                st.rate.tick()
            if frames:
                self.render_ms.add((time.perf_counter() - t0) * 1000.0)
                with self._deadline_lock:
                    self.deadline.rendered(choice, render_s, self.now_ns() / 1e9, oldest_s)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._thread = None

    # ---- diagnostics -------------------------------------------------------------------------------------------
    def report(self, st: health.Status, now_s: float | None = None) -> list[health.Status]:
        """now_s: the monotonic time of this report (default: now). One participant: everything goes into ``st``.
        Several: ``st`` gets the backend and render time per tick, and the returned list holds one status per
        participant (named and hardware_id'd by its id) with its rate, latency and drops; the worst of them
        raises ``st`` too."""
        st.values.update({"backend": self.backend, "participants": ",".join(self.streams)})
        self.render_ms.check(st)
        with self._deadline_lock:
            deadline = self.deadline.status(self.now_ns() / 1e9)
        # level, scale, budget_ms, latency_p95_ms, render_p95_ms, rate_hz, published (drops come per participant)
        chosen = {k: v for k, v in deadline.values().items() if not k.startswith("dropped_")}
        st.values.update(chosen)
        st.add(deadline.level, deadline.message)
        if len(self.streams) == 1:
            self.first.report(st, now_s)
            return []
        out = []
        for pid, stream in self.streams.items():
            s = health.Status(pid, hardware_id=pid)
            s.values.update({k: chosen[k] for k in ("level", "scale", "budget_ms")})
            stream.report(s, now_s)
            if s.level > health.OK:
                st.add(s.level, f"{pid}: {s.message}")
            out.append(s)
        return out
