"""Gaussian avatars: 3D Gaussians bound to head-mesh triangles, their binding and their files."""

from .gaussians import (FastBinder, GaussianAvatar, WorldGaussians, bind, load_avatar, save_avatar, select,
                        thin_to)

__all__ = ["FastBinder", "GaussianAvatar", "WorldGaussians", "bind", "load_avatar", "save_avatar", "select",
           "thin_to"]
