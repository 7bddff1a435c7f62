"""The shipped default avatars: load on their heads, >= 20k Gaussians, small files, every triangle covered,
and a front render looks like the painted head (PSNR against the textured-mesh image)."""

import numpy as np
import pytest
import torch

from rsatalker_ros.avatar.densify import faces_without_gaussians
from rsatalker_ros.avatar.gaussians import bind, load_avatar
from rsatalker_ros.avatar.textures import paint_head
from rsatalker_ros.avatar.avatar_io import AVATAR_DIR
from rsatalker_ros.face.head_model import DEFAULT_HEADS, load_head
from rsatalker_ros.render.api import render
from rsatalker_ros.render.mesh_raster import render_mesh
from rsatalker_ros.train.ssim import psnr
from rsatalker_ros.train.stage3 import head_center, orbit_camera


@pytest.mark.parametrize("name", DEFAULT_HEADS)
def test_shipped_avatar(name):
    path = AVATAR_DIR / f"{name}.safetensors"
    assert path.is_file(), f"missing {path}; run scripts/train_default_avatars.sh"
    assert path.stat().st_size < 5e6
    head = load_head(name)
    avatar = load_avatar(path, faces=head.faces, head=name)
    assert len(avatar) >= 20000
    assert faces_without_gaussians(avatar.parent, head.faces.shape[0]).numel() == 0
    # a new view and expression at the training image size: close to the textured-mesh image (37.3 / 36.6 dB)
    motion = torch.zeros(1, head.layout.dim)
    motion[0, head.layout.jaw.start] = 0.15
    cam = orbit_camera(head_center(head), 20.0, 5.0, 0.62, 160, 30.0)  # the training image size
    verts = head.from_motion(motion)[0]
    app = paint_head(head)
    truth = render_mesh(verts.numpy(), head.faces.numpy(), cam, albedo_fn=app.albedo, supersample=3).image
    with torch.no_grad():
        img = render(bind(avatar, verts), cam, np.ones(3, np.float32), backend="cpu").image.clamp(0, 1)
    value = float(psnr(img, torch.from_numpy(truth)))
    assert value > 30.0
