"""Pinhole cameras that match sensor_msgs/CameraInfo.

Conventions (ROS REP 103 optical frame, OpenCV):
- camera/optical frame: x right, y down, z forward (out of the lens);
- ``world_to_cam`` [4, 4] maps homogeneous world points to that frame: X_cam = world_to_cam @ [X_world, 1];
- pixel coordinates (u, v) = (column, row), with the centre of pixel (0, 0) at u = v = 0 (OpenCV / CameraInfo);
  u = fx X/Z + cx, v = fy Y/Z + cy;
- no distortion ("plumb_bob" with D = 0); rectification R = identity;
- P = [fx 0 cx Tx; 0 fy cy 0; 0 0 1 0]. Tx = 0 for a monocular or left camera; the right camera of a stereo pair
  has Tx = -fx * baseline and its P projects points given in the LEFT camera's frame (CameraInfo convention).
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class Camera:
    """Pinhole camera. width, height in pixels; fx, fy, cx, cy in pixels; world_to_cam [4, 4] float64 (metres).

    tx: P[0, 3] in pixels*metres (CameraInfo Tx; non-zero only for the right camera of a stereo pair).
    """
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    world_to_cam: np.ndarray = field(default_factory=lambda: np.eye(4))
    tx: float = 0.0

    def __post_init__(self):
        self.world_to_cam = np.asarray(self.world_to_cam, dtype=np.float64)
        if self.world_to_cam.shape != (4, 4):
            raise ValueError(f"world_to_cam has shape {self.world_to_cam.shape}; expected (4, 4)")
        if not np.isfinite(self.world_to_cam).all():
            raise ValueError("world_to_cam contains NaN or infinite values")
        Rm = self.world_to_cam[:3, :3]
        if not np.allclose(Rm @ Rm.T, np.eye(3), atol=1e-5) or np.linalg.det(Rm) < 0:
            raise ValueError("world_to_cam[:3, :3] must be a rotation matrix (orthonormal, det +1)")
        if int(self.width) != self.width or int(self.height) != self.height or self.width < 1 or self.height < 1:
            raise ValueError(f"width and height must be positive integers, got {self.width} x {self.height}")
        self.width, self.height = int(self.width), int(self.height)
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"fx and fy must be positive, got fx={self.fx}, fy={self.fy}")

    # ---------------------------------------------------------------------------------------------------------
    @staticmethod
    def look_at(eye, target, up=(0.0, 1.0, 0.0), width: int = 512, height: int = 512,
                fov_y_deg: float = 30.0) -> "Camera":
        """Camera at ``eye`` [3] looking at ``target`` [3]; ``up`` [3] is the world direction that appears up in
        the image. Square pixels, principal point at the image centre ((width-1)/2, (height-1)/2)."""
        eye = np.asarray(eye, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        up = np.asarray(up, dtype=np.float64)
        if not 0.0 < fov_y_deg < 180.0:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {fov_y_deg}")
        z = target - eye
        if np.linalg.norm(z) < 1e-12:
            raise ValueError("eye and target coincide")
        z = z / np.linalg.norm(z)
        x = np.cross(z, up)
        if np.linalg.norm(x) < 1e-9:
            raise ValueError("up is parallel to the viewing direction")
        x = x / np.linalg.norm(x)
        y = np.cross(z, x)  # down in the image
        R_c2w = np.stack([x, y, z], axis=1)
        w2c = np.eye(4)
        w2c[:3, :3] = R_c2w.T
        w2c[:3, 3] = -R_c2w.T @ eye
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
        return Camera(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0, w2c)

    @property
    def K(self) -> np.ndarray:
        """Intrinsics [3, 3]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def P(self) -> np.ndarray:
        """Projection [3, 4] as in CameraInfo."""
        return np.array([[self.fx, 0.0, self.cx, self.tx], [0.0, self.fy, self.cy, 0.0], [0.0, 0.0, 1.0, 0.0]])

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates [3]."""
        R = self.world_to_cam[:3, :3]
        return -R.T @ self.world_to_cam[:3, 3]

    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """World points [N, 3] -> (uv [N, 2] pixels, depth z [N] metres in the optical frame)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        c = p @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]
        z = c[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * c[:, 0] / z + self.cx, self.fy * c[:, 1] / z + self.cy], axis=1)
        return uv, z

    def to_camera_info_dict(self, frame_id: str = "camera_optical_frame") -> dict:
        """The fields of a ROS 2 sensor_msgs/msg/CameraInfo (lower-case names), as plain Python values."""
        return {
            "header": {"frame_id": frame_id},
            "height": self.height,
            "width": self.width,
            "distortion_model": "plumb_bob",
            "d": [0.0] * 5,
            "k": [float(x) for x in self.K.reshape(-1)],
            "r": [float(x) for x in np.eye(3).reshape(-1)],
            "p": [float(x) for x in self.P.reshape(-1)],
            "binning_x": 0,
            "binning_y": 0,
            "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
        }

    def with_size(self, width: int, height: int) -> "Camera":
        """The same camera rendering at another resolution (intrinsics scaled with the image)."""
        sx, sy = width / self.width, height / self.height
        return replace(self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy,
                       cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5, tx=self.tx * sx)


def stereo_pair(center_camera: Camera, ipd_m: float = 0.063) -> tuple[Camera, Camera]:
    """Left and right eye cameras for a VR headset: parallel optical axes, ``ipd_m`` metres apart along the centre
    camera's x axis (each eye ipd/2 from the centre). The right camera's P carries Tx = -fx * ipd_m."""
    if not ipd_m > 0:
        raise ValueError(f"ipd_m must be positive, got {ipd_m}")
    half = ipd_m / 2.0
    left_w2c = center_camera.world_to_cam.copy()
    left_w2c[0, 3] += half   # the left eye sits at -half along x: X_left = X_center + half
    right_w2c = center_camera.world_to_cam.copy()
    right_w2c[0, 3] -= half
    left = replace(center_camera, world_to_cam=left_w2c, tx=0.0)
    right = replace(center_camera, world_to_cam=right_w2c, tx=-center_camera.fx * ipd_m)
    return left, right
