"""renderer (one per participant, or one for a list of them): the posed head -> Gaussian-splatted avatar images.

    python -m rsatalker_ros.nodes.renderer --ros-args -r __node:=renderer_alice -p participant:=alice
    python -m rsatalker_ros.nodes.renderer --ros-args -r __node:=renderer -p "participants:=[alice, bob]" \
        -p "heads:=[default_older, default_younger]"

A lifecycle node around rsatalker_ros.stages.render (parameters: RenderConfig). For each participant <p> it serves
(``participant``, or the list ``participants``: all rendered in one batched call per tick, each with its own
stamps) it subscribes /rsatalker/<p>/mesh (FaceMesh; ``input: mesh``, the default) and /rsatalker/<p>/mesh_topology,
or /rsatalker/<p>/motion (SocialMotion; ``input: motion``: skinned here), and publishes /rsatalker/<p>/image_raw
(sensor_msgs/Image rgb8), camera_info, image_raw/compressed (JPEG, ``publish_compressed``), with ``stereo`` also
stereo/{left,right}/image_raw + camera_info; every image is stamped with its frame's audio-clock stamp, in frame
<p>/camera_optical_frame (stereo: <p>/camera_{left,right}_optical_frame), placed on /tf_static relative to <p>/head
once the camera is aimed. /diagnostics: images per second and stamp-to-publish latency against their targets,
frames dropped by cause, per participant (one status each when several), and render time per tick (WARN when the
renderer is starved or falls behind).
Deadline: the avatars' trained levels of detail (full, 12k, 6k for the shipped ones) are loaded at configure; per
frame the stage picks the level (then a render scale) that keeps audio stamp -> publish within
``latency_budget_ms`` from the render times it measures, and never queues (``max_frame_age_ms``, ``too_old_ms``).
/diagnostics carries ``level``, ``scale``, ``budget_ms``, ``latency_p95_ms`` and ``dropped_too_old``; WARN when the
budget or the rate cannot be held, ERROR when frames arrive but none is published. ``level`` pins one level.
Backends: 'cpu' (numba tile rasteriser), 'gsplat' (CUDA), 'auto' (gsplat where CUDA and gsplat exist, else cpu).
"""

from __future__ import annotations

from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from rsatalker_ros.input_limits import check_mesh, check_motion, check_topology
from rsatalker_ros.msg import FaceMesh, FaceTopology, SocialMotion
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import (camera_info_to_msg, compressed_image_to_msg, flame_params_to_motion,
                                       image_to_msg, mesh_from_msg, ns_to_stamp, stamp_to_ns, topology_from_msg)
from rsatalker_ros.ros.lifecycle_adapter import StageNode
from rsatalker_ros.ros.spin import run
from rsatalker_ros.ros.tf import StaticFrames, transform_msg
from rsatalker_ros.stages import health
from rsatalker_ros.stages.frames import camera_pose
from rsatalker_ros.stages.render import RenderConfig, RenderedFrame, RenderStage


class RendererNode(StageNode):
    config_class = RenderConfig

    def __init__(self, name: str = "renderer", **kwargs):
        super().__init__(name, **kwargs)

    def make_stage(self, cfg: RenderConfig) -> RenderStage:
        self.hardware_id = ",".join(s.participant for s in cfg.served())
        return RenderStage(cfg, self.reject, lambda: self.get_clock().now().nanoseconds, self.get_logger().info)

    def open(self) -> None:
        self.outputs = {pid: self._open_participant(pid) for pid in self.stage.streams}
        self.tf = StaticFrames(self, self.publisher)
        self._tf_cameras = {}                    # participant -> the cameras last put on /tf_static
        self._image_msgs = {}                    # (participant, eye) -> its Image, refilled every frame
        self._info_msgs = {}                     # (participant, eye) -> (Camera, its CameraInfo)
        self.stage.start(self._publish)

    def _open_participant(self, pid: str) -> dict:
        """One participant's subscriptions and publishers -> {"image", "info", "jpeg", "stereo": {eye: (image,
        info)}}."""
        cfg = self.config
        P = lambda leaf: topics.participant(pid, leaf)  # noqa: E731
        out = {"image": self.publisher(Image, P("image_raw"), qos.FRAMES),
               "info": self.publisher(CameraInfo, P("camera_info"), qos.FRAMES),
               "jpeg": self.publisher(CompressedImage, P("image_raw/compressed"), qos.FRAMES), "stereo": {}}
        if cfg.stereo:
            for eye in ("left", "right"):
                out["stereo"][eye] = (self.publisher(Image, P(f"stereo/{eye}/image_raw"), qos.FRAMES),
                                      self.publisher(CameraInfo, P(f"stereo/{eye}/camera_info"), qos.FRAMES))
        if cfg.input == "mesh":
            self.subscription(FaceMesh, P("mesh"), lambda m: self._on_mesh(pid, m), qos.LATEST)
            self.subscription(FaceTopology, P("mesh_topology"), lambda m: self._on_topology(pid, m), qos.LATCHED)
        else:
            self.subscription(SocialMotion, P("motion"), lambda m: self._on_motion(pid, m), qos.LATEST)
        return out

    def close(self) -> None:
        if self.stage is not None:
            self.stage.stop()

    def reconfigure(self, cfg: RenderConfig, changed: set) -> None:
        self.stage.reconfigure(cfg, changed)

    # ---- input (executor thread): validate, queue ---------------------------------------------------------------
    def _on_topology(self, pid: str, msg: FaceTopology) -> None:
        why = check_topology(msg, self.config)
        if why is not None:
            self.refuse("FaceTopology", why)
            return
        try:
            self.stage.streams[pid].avatar.check_topology(topology_from_msg(msg))
        except ValueError as err:
            self.reject("topology", f"FaceTopology: {err}")

    def _on_mesh(self, pid: str, msg: FaceMesh) -> None:
        # stamps within the window of this node's clock: a frame from the future would block newer ones, and no
        # image is stamped 1970 or 2038 (issue #11, failure 2); only participants this renderer serves
        n_vertices = self.stage.streams[pid].n_vertices
        why = check_mesh(msg, self.config, pid, n_vertices, now_ns=self.get_clock().now().nanoseconds)
        if why is not None:
            self.refuse("FaceMesh", why)
            return
        try:
            self.stage.put_mesh(mesh_from_msg(msg, n_vertices), stamp_to_ns(msg.header.stamp), pid)
        except ValueError as err:
            self.reject("format", f"FaceMesh: {err}")

    def _on_motion(self, pid: str, msg: SocialMotion) -> None:
        # only this participant's motion (another's SocialMotion was accepted), stamp window as for meshes
        why = check_motion(msg, self.config, pid, self.get_clock().now().nanoseconds)
        if why is not None:
            self.refuse("SocialMotion", why)
            return
        try:
            m, layout = flame_params_to_motion(msg.params)
            self.stage.put_motion(m, layout.basis, stamp_to_ns(msg.header.stamp), pid)
        except ValueError as err:
            self.reject("format", f"SocialMotion: {err}")

    # ---- output (render thread) ---------------------------------------------------------------------------------
    def _publish(self, frame: RenderedFrame) -> None:
        cfg, pid, stamp = self.config, frame.participant, frame.stamp_ns
        out = self.outputs[pid]
        img, cam = frame.views[""]
        optical = topics.camera_frame(pid)
        self._publish_view(out["image"], out["info"], (pid, ""), img, cam, stamp, optical)
        # JPEG encoding costs milliseconds: only when someone listens
        if cfg.publish_compressed and out["jpeg"].get_subscription_count() > 0:
            out["jpeg"].publish(compressed_image_to_msg(img, stamp, optical, cfg.jpeg_quality))
        for eye, (pub_img, pub_info) in out["stereo"].items():
            eye_img, eye_cam = frame.views[eye]
            self._publish_view(pub_img, pub_info, (pid, eye), eye_img, eye_cam, stamp, topics.camera_frame(pid, eye))
        cams = self.stage.streams[pid].cameras  # a new dict whenever the camera is (re-)aimed
        if cams is not self._tf_cameras.get(pid):
            self._tf_cameras[pid] = cams
            head = topics.head_frame(pid)        # StaticFrames keeps the other participants' frames on /tf_static
            self.tf.set(*(transform_msg(head, topics.camera_frame(pid, eye), *camera_pose(c.world_to_cam), stamp)
                          for eye, c in cams.items()))

    def _publish_view(self, pub_image, pub_info, key: tuple, img, cam, stamp: int, frame_id: str) -> None:
        """One camera's Image and CameraInfo. Both messages are kept per view and filled again each frame (the
        publishers serialise them in publish): the image's data buffer is overwritten in place, and the
        CameraInfo is rebuilt only when the camera changed (re-aimed, another render size); only its stamp moves."""
        image_msg = self._image_msgs.get(key)
        self._image_msgs[key] = image_msg = image_to_msg(img, stamp, frame_id, reuse=image_msg)
        pub_image.publish(image_msg)
        kept = self._info_msgs.get(key)
        if kept is None or kept[0] is not cam:
            kept = self._info_msgs[key] = (cam, camera_info_to_msg(cam.to_camera_info_dict(), stamp, frame_id))
        info = kept[1]
        ns_to_stamp(stamp, info.header.stamp)
        pub_info.publish(info)

    def status(self) -> list[health.Status]:
        st = health.Status("")
        return [st] + self.stage.report(st)


def main(args=None):
    raise SystemExit(run([RendererNode], args))


if __name__ == "__main__":
    main()
