"""Cameras and the functional renderer: ``render(gaussians, camera, background, backend)``."""

from .api import RenderResult, render, render_uint8
from .camera import Camera, stereo_pair

__all__ = ["Camera", "RenderResult", "render", "render_uint8", "stereo_pair"]
