"""Many participants per renderer: one batched bind and rasterisation per tick (ROS-free; a renderer node that
serves a list of participants calls ``render_tick`` from its render thread and publishes what comes back).

    loop = ParticipantRenderer([Participant("alice", avatar_a, camera_a, (1, 1, 1)), ...], backend="auto")
    tick = loop.render_tick({"alice": (vertices [V, 3], stamp), "bob": (vertices, stamp)})
    for f in tick.frames:   publish(f.name, f.image (uint8 [H, W, 3] rgb), f.stamp, f.camera)
    for name, why in tick.rejected.items():   log it (the other participants were still rendered)

On the GPU (backend "gsplat"), participants that share one GaussianAvatar object are bound together (one
``TorchBinder`` call on [b, V, 3] vertices) and all participants whose cameras share an image size are rasterised
in one ``render_batch_uint8`` call, with the per-camera tensors and a page-locked host buffer built once per set of
participants. On the CPU (backend "cpu", or "auto" without CUDA and gsplat) each participant is bound by the numba
``FastBinder`` and drawn by the CPU rasteriser, one after another. Stamps are carried through untouched.

Wiring into a renderer node that serves a list of participants: load each avatar file once (participants naming
the same file share the GaussianAvatar object, so they are bound together); keep one ``ros.latest.FrameQueue`` per
participant; in the render thread, per tick, ``take(now, timeout=0)`` from every queue, pass what came to
``render_tick`` and publish each RenderedFrame on that participant's topics with its own stamp (before the next
tick: the images are views of a reused buffer); ``set_camera`` when a participant's camera is framed from its
first mesh.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..avatar.gaussians import FastBinder, GaussianAvatar, TorchBinder
from .api import render_uint8
from .batch import camera_batch, host_buffer, render_batch_uint8
from .camera import Camera


@dataclass
class Participant:
    name: str                  # unique per renderer (the participant id of its topics)
    avatar: GaussianAvatar     # participants may share one avatar object (bound together on the GPU)
    camera: Camera             # the view its images are rendered from
    background: tuple = (0.0, 0.0, 0.0)  # rgb 0..1


@dataclass
class RenderedFrame:
    name: str
    image: np.ndarray   # uint8 [H, W, 3] rgb; on the GPU path a view of a buffer the next tick overwrites
    stamp: object       # the caller's stamp, untouched
    camera: Camera


@dataclass
class TickResult:
    frames: list = field(default_factory=list)    # RenderedFrame, grouped by image size
    rejected: dict = field(default_factory=dict)  # participant name -> why its frame was not rendered


class ParticipantRenderer:
    """Renders the latest frame of each of several participants per tick (see module docstring).

    backend: "auto" | "cpu" | "gsplat"; device: the GPU for "gsplat" (default "cuda"); compile: TorchBinder's
    ``torch.compile`` switch (off by default: one bind call serves a whole group, so launches are few already,
    and a live renderer should not stall compiling when the set of participants changes)."""

    def __init__(self, participants, backend: str = "auto", device=None, compile=False):
        participants = list(participants)
        names = [p.name for p in participants]
        if not participants or len(set(names)) != len(names):
            raise ValueError(f"participants must be a non-empty list with unique names, got {names}")
        if backend not in ("auto", "cpu", "gsplat"):
            raise ValueError(f"backend must be 'auto', 'cpu' or 'gsplat', got {backend!r}")
        from .gsplat_backend import gsplat_available
        if backend == "gsplat" and not gsplat_available():
            raise ValueError("backend 'gsplat' needs CUDA and the gsplat package; use 'cpu' or 'auto'")
        self.backend = "gsplat" if backend == "gsplat" or (backend == "auto" and gsplat_available()) else "cpu"
        self.device = torch.device(device or "cuda") if self.backend == "gsplat" else torch.device("cpu")
        self.participants = {p.name: p for p in participants}
        self._binders = {}  # id(avatar) -> binder, one per distinct avatar object
        for p in participants:
            if id(p.avatar) not in self._binders:
                self._binders[id(p.avatar)] = (TorchBinder(p.avatar, self.device, compile) if self.backend == "gsplat"
                                               else FastBinder(p.avatar))
        self._batches = {}  # names in render order -> (CameraBatch, host buffer)

    def set_camera(self, name: str, camera: Camera) -> None:
        """Move a participant's camera (the cached per-camera tensors are rebuilt on the next tick)."""
        self.participants[name].camera = camera
        self._batches.clear()

    def _vertices(self, name: str, vertices) -> np.ndarray:
        binder = self._binders[id(self.participants[name].avatar)]
        v = np.asarray(vertices, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < binder.num_vertices:
            raise ValueError(f"vertices has shape {v.shape}; expected [V >= {binder.num_vertices}, 3]")
        if not np.isfinite(v).all():
            raise ValueError("vertices contain NaN or infinite values")
        return v[:binder.num_vertices]

    def render_tick(self, frames: dict) -> TickResult:
        """frames: {participant name: (vertices [V, 3], stamp)} for the participants that have a new frame ->
        TickResult(frames: one RenderedFrame per accepted participant, rejected: name -> reason)."""
        out = TickResult()
        ready = {}
        for name, item in frames.items():
            try:
                if name not in self.participants:
                    raise ValueError(f"unknown participant; this renderer serves {sorted(self.participants)}")
                vertices, stamp = item
                ready[name] = (self._vertices(name, vertices), stamp)
            except (ValueError, TypeError) as err:
                out.rejected[name] = str(err)
        if self.backend == "cpu":
            for name, (v, stamp) in ready.items():
                p = self.participants[name]
                img = render_uint8(self._binders[id(p.avatar)](v), p.camera, p.background, backend="cpu")
                out.frames.append(RenderedFrame(name, img, stamp, p.camera))
            return out
        by_size = {}
        for name in ready:  # same size -> one rasterisation; same avatar -> one bind, adjacent in the batch
            p = self.participants[name]
            by_size.setdefault((p.camera.width, p.camera.height), {}).setdefault(id(p.avatar), []).append(name)
        for groups in by_size.values():
            order = tuple(n for names in groups.values() for n in names)
            if order not in self._batches:
                if len(self._batches) > 64:  # participants come and go: keep the cache bounded
                    self._batches.clear()
                ps = [self.participants[n] for n in order]
                cams = camera_batch([p.camera for p in ps], [p.background for p in ps], self.device)
                self._batches[order] = (cams, host_buffer(cams))
            cams, buffer = self._batches[order]
            scenes = [self._binders[key](torch.from_numpy(np.stack([ready[n][0] for n in names])))
                      for key, names in groups.items()]
            images = render_batch_uint8(scenes, cams, backend="gsplat", out=buffer)
            for i, name in enumerate(order):
                out.frames.append(RenderedFrame(name, images[i], ready[name][1], cams.cameras[i]))
        return out
