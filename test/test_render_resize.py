"""The renderer's upscale of scaled renders: the image torch's bilinear interpolation gives, without torch."""

import numpy as np
import pytest
import torch

from rsatalker_ros.render.resize import resize_bilinear_uint8


def _torch_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """What the render stage used before: torch bilinear (align_corners=False) on the float image, rounded."""
    t = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    t = torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    return t[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


@pytest.mark.parametrize("small, big", [((48, 64), (96, 128)), ((72, 96), (96, 128)), ((96, 128), (96, 128))])
def test_upscale_at_the_controllers_scales_equals_torch_bit_for_bit(small, big):
    # render scales 0.5, 0.75 and 1 (the deadline controller's defaults); a smooth image plus noise, like a render
    rng = np.random.default_rng(1)
    h, w = small
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.2, 1, h)[:, None, None]
    img = np.clip(ramp + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    out = resize_bilinear_uint8(img, big[1], big[0])
    assert out.shape == big + (3,) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _torch_bilinear(img, big[1], big[0]))


def test_any_other_size_is_within_one_level_of_torch_and_odd_inputs_are_refused():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    for width, height in ((100, 71), (50, 40), (11, 9)):
        diff = np.abs(resize_bilinear_uint8(img, width, height).astype(int) - _torch_bilinear(img, width, height))
        assert diff.max() <= 1 and diff.mean() < 0.01
    # a view that is not contiguous (every other column) gives the same image as its copy
    view = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)[:, ::2]
    np.testing.assert_array_equal(resize_bilinear_uint8(view, 32, 32),
                                  resize_bilinear_uint8(np.ascontiguousarray(view), 32, 32))
    with pytest.raises(ValueError, match="uint8"):
        resize_bilinear_uint8(img.astype(np.float32), 64, 64)
    with pytest.raises(ValueError, match="positive"):
        resize_bilinear_uint8(img, 0, 64)
