"""Coordinate frames of the graph (REP-103 / REP-105), without rclpy.

  world_frame (parameter, default "world")   REP-103 body axes: x forward, y left, z up; metres.
  <participant>/head                          the face model's own axes, in which FaceMesh vertices are given:
                                              x = the head's left, y = up, z = out of the face (forward from the
                                              face), origin = the head model's origin. This is NOT the REP-103 body
                                              convention (x forward, y left, z up); the rotation from it is fixed:
                                              head x = world y, head y = world z, head z = world x for a head facing
                                              +x (yaw 0), then the heading yaw about world z (``head_rotation``).
  <participant>/camera_optical_frame          the renderer's camera, REP-103 optical axes (x right, y down,
  <participant>/camera_{left,right}_optical_frame   z forward), child of <participant>/head (``camera_pose``).
Quaternions are (x, y, z, w) as in geometry_msgs.
"""

from __future__ import annotations

import math

import numpy as np

#: columns = the head frame's x, y, z axes in a world frame whose head faces +x (yaw 0)
HEAD_AXES_IN_WORLD = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """R [3, 3] rotation (columns: child axes in the parent frame) -> quaternion [4] (x, y, z, w), w >= 0."""
    R = np.asarray(R, np.float64)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:                                    # Shepperd: divide by the largest of w, x, y, z
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.array(q)
    q = q / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def head_rotation(yaw_deg: float) -> np.ndarray:
    """Quaternion [4] of <participant>/head in world_frame: the face turned ``yaw_deg`` about world z from
    facing +x."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return quaternion_from_matrix(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ HEAD_AXES_IN_WORLD)


def camera_pose(world_to_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A camera's optical frame in the frame its ``world_to_cam`` [4, 4] maps from (the head frame):
    (origin [3] metres, quaternion [4])."""
    R = np.asarray(world_to_cam, np.float64)[:3, :3]
    t = np.asarray(world_to_cam, np.float64)[:3, 3]
    return -R.T @ t, quaternion_from_matrix(R.T)
