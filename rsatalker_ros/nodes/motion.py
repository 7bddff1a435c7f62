"""motion (one per participant): own + partner audio + conversation state -> relationship-conditioned face
motion, the posed head mesh, an rviz2 marker and the head frame.

    python -m rsatalker_ros.nodes.motion --ros-args -r __node:=motion_alice -p participant:=alice -p partner:=bob

A lifecycle node around rsatalker_ros.stages.motion (parameters: MotionConfig). Subscribes
/rsatalker/<participant>/audio and /rsatalker/<partner>/audio (best effort, 0.5 s deep: qos.AUDIO_IN; ~100 chunks a
second in all, taken serialized and read by convert.audio_frame_from_cdr, then checked like any AudioFrame) and
/rsatalker/conversation. The relationship comes from the ConversationState (``relation_source: conversation``; the relation_* parameters until
one arrives) or from the relation_* parameters only (``relation_source: parameters``).

Publishes, per 40 ms frame, stamped with the audio-clock time of the frame's centre:
  /rsatalker/<p>/motion (SocialMotion), /rsatalker/<p>/mesh (FaceMesh in frame "<p>/head"),
  /rsatalker/<p>/head_pose (geometry_msgs/TransformStamped world_frame -> <p>/head);
and /rsatalker/<p>/mesh_marker (visualization_msgs/Marker TRIANGLE_LIST, at most marker_rate_hz, while subscribed),
/rsatalker/<p>/mesh_topology (FaceTopology, latched), /tf_static (world_frame -> <p>/head, where tf2_msgs exists;
frame conventions in rsatalker_ros.stages.frames), /diagnostics (frame rate, latency, compute time, audio gaps,
frames skipped because their audio arrived more than max_lag_ms later than the most punctual frame: counted as
dropped_late_audio, WARN while it skips).
"""

from __future__ import annotations

import time

from geometry_msgs.msg import TransformStamped
from rclpy.serialization import deserialize_message
from visualization_msgs.msg import Marker

from rsatalker_ros.input_limits import Rejection, check_conversation
from rsatalker_ros.msg import AudioFrame, ConversationState, FaceMesh, FaceTopology, SocialMotion
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import (MeshMarker, SerializedMessage, audio_frame_from_cdr, face_mesh_fields,
                                       mesh_to_msg, mono_audio_from_msg, motion_to_flame_params, ns_to_stamp,
                                       relation_from_msg, relation_to_msg, social_motion_fields, stamp_to_ns,
                                       topology_to_msg, transform_fields)
from rsatalker_ros.ros.lifecycle_adapter import StageNode
from rsatalker_ros.ros.spin import run
from rsatalker_ros.ros.tf import StaticFrames, transform_msg
from rsatalker_ros.stages import health
from rsatalker_ros.stages.motion import FRAME_MS, MotionConfig, MotionStage

PLACEMENT = {"world_frame", "head_position", "head_yaw_deg"}


class MotionNode(StageNode):
    config_class = MotionConfig

    def __init__(self, name: str = "motion", **kwargs):
        super().__init__(name, **kwargs)

    def make_stage(self, cfg: MotionConfig) -> MotionStage:
        stage = MotionStage(cfg)
        self.hardware_id = cfg.participant
        self.get_logger().info(f"{cfg.participant} (partner {cfg.partner}): head {stage.topology_id} "
                               f"({stage.head.n_vertices} vertices), checkpoint {cfg.checkpoint or 'motion_default'} "
                               f"({stage.checkpoint_info.get('stage', '?')}), look-ahead {stage.lookahead_ms:.1f} ms, "
                               f"relation {stage.relation.relation}")
        return stage

    def open(self) -> None:
        cfg, stage = self.config, self.stage
        P = lambda leaf: topics.participant(cfg.participant, leaf)  # noqa: E731
        self.pub_motion = self.publisher(SocialMotion, P("motion"), qos.STATE)
        self.pub_mesh = self.publisher(FaceMesh, P("mesh"), qos.FRAMES)
        self.pub_marker = self.publisher(Marker, P("mesh_marker"), qos.STATE)
        self.marker = MeshMarker(stage.faces, stage.head.n_vertices, topics.head_frame(cfg.participant),
                                 cfg.participant)
        self.pub_pose = self.publisher(TransformStamped, P("head_pose"), qos.STATE)
        self.publisher(FaceTopology, P("mesh_topology"), qos.LATCHED).publish(
            topology_to_msg(stage.faces, stage.head.n_vertices, stage.topology_id))
        self.tf = StaticFrames(self, self.publisher)
        self._publish_placement()
        self.rate = health.RateCheck("frames_per_s", 1000.0 / FRAME_MS)
        self.latency = health.LatencyCheck("stamp_to_publish_ms", cfg.target_latency_ms)
        self.compute = health.LatencyCheck("compute_ms_per_frame", FRAME_MS)
        self._recoveries_reported = stage.stream.recoveries
        self.skips = health.Drops(warn_fraction=0.0)     # WARN while any frame is skipped
        self.messages = SerializedFrames()
        self.clock = self.get_clock()
        # ~100 audio chunks a second: taken serialized and read by audio_frame_from_cdr (no message object built)
        self.subscription(AudioFrame, topics.audio(cfg.participant), lambda m: self._on_audio(0, m), qos.AUDIO_IN,
                          raw=True)
        self.subscription(AudioFrame, topics.audio(cfg.partner), lambda m: self._on_audio(1, m), qos.AUDIO_IN,
                          raw=True)
        self.subscription(ConversationState, topics.CONVERSATION, self._on_conversation, qos.STATE)

    def reconfigure(self, cfg: MotionConfig, changed: set) -> None:
        note = self.stage.reconfigure(cfg)
        if note:
            self.get_logger().warning(note)
        if "target_latency_ms" in changed and self.active:
            self.latency.target_ms = cfg.target_latency_ms
        if changed & PLACEMENT and self.active:
            self.config = cfg
            self._publish_placement()

    def _publish_placement(self) -> None:
        pos, quat = self.stage.head_pose()
        self.tf.set(transform_msg(self.config.world_frame, topics.head_frame(self.config.participant), pos, quat,
                                  self.get_clock().now().nanoseconds))

    # ---- input ----------------------------------------------------------------------------------------------
    def _on_conversation(self, msg: ConversationState) -> None:
        why = check_conversation(msg, self.config, self.get_clock().now().nanoseconds)
        if why is not None:
            self.refuse(f"ConversationState on {topics.CONVERSATION}", why)
            return
        try:
            changed = self.stage.on_conversation(msg.turn_index, list(msg.participant_ids),
                                                 list(msg.speaking_probability), relation_from_msg(msg.relation),
                                                 time.monotonic())
        except ValueError as err:
            self.reject("relation", f"ConversationState.relation: {err}")
            return
        if changed:
            self.get_logger().info(f"relationship now {self.stage.relation.relation} (conversation state)")

    def _on_audio(self, stream: int, raw: bytes) -> None:
        """raw: a serialized AudioFrame."""
        cfg = self.config
        pid = cfg.participant if stream == 0 else cfg.partner
        try:
            msg = audio_frame_from_cdr(raw) or deserialize_message(raw, AudioFrame)   # (another CDR encoding)
        except Exception as err:  # noqa: BLE001 - bytes that are no AudioFrame: refused, the node goes on
            self.refuse(f"AudioFrame on {topics.audio(pid)}", Rejection("format", f"unreadable message: {err}"))
            return
        # stamps outside the window are refused: one frame from the far future would restart the stream's clock
        # there and hold every newer frame back as a straggler (stages/stream_align.py)
        now_ns = self.clock.now().nanoseconds
        x, why = mono_audio_from_msg(msg, pid, cfg, now_ns)
        if why is not None:       # e.g. F32LE samples of 1e18 (issue #11, failure 1): refused before the model
            self.refuse(f"AudioFrame on {topics.audio(pid)}", why)
            return
        t0 = time.perf_counter()
        skipped = self.stage.skipped["late_audio"]
        frames, restarted = self.stage.push_audio(stream, x, stamp_to_ns(msg.header.stamp), now_ns)
        if restarted:
            self.get_logger().warning(f"motion stream restarted: {self.stage.aligner.restart_reason}")
        if self.stage.skipped["late_audio"] > skipped:
            self.get_logger().warning(
                f"skipping frames: their audio arrived up to {self.stage.last_skip_lag_ms:.0f} ms late (max_lag_ms "
                f"{cfg.max_lag_ms:g}); the model still steps through them, skinning and publishing wait until it "
                f"has caught up ({self.stage.skipped['late_audio']} skipped so far)", throttle_duration_sec=5.0)
        if frames:
            ms = (time.perf_counter() - t0) * 1000.0 / len(frames)
            for _ in frames:
                self.compute.add(ms)
            self._publish_frames(frames)

    # ---- output ---------------------------------------------------------------------------------------------
    def _publish_frames(self, frames) -> None:
        stage = self.stage
        now_mono = time.monotonic()
        serialized = self.messages.serialized
        for f, (mesh, motion, pose) in zip(frames, self.messages(self.config, stage, frames,
                                                                 stage.speaking(now_mono))):
            if mesh is not None:         # the mesh first: the renderer waits for it, the rest is bookkeeping
                self.pub_mesh.publish(mesh)
            self.pub_motion.publish(motion)
            self.pub_pose.publish(pose)
            self.rate.tick()
            self.latency.add((self.clock.now().nanoseconds - f.stamp_ns) / 1e6)
        if serialized and not self.messages.serialized:
            self.get_logger().warning("this rmw serializes the frame messages in a layout SerializedMessage does not "
                                      "know: publishing message objects (more CPU per frame)")
        last = frames[-1]
        # the marker (~0.1 s of CPU each) only while someone shows it (rviz2, a bag recorder); the subscriber count
        # is asked only when a marker is due (marker_rate_hz), not on every frame
        if last.vertices is not None and stage.marker_due(now_mono) and self.pub_marker.get_subscription_count():
            self._publish_marker(last.vertices, last.stamp_ns)

    def _publish_marker(self, verts, stamp: int) -> None:
        self.pub_marker.publish(self.marker.pose(verts, stamp))

    def status(self) -> list[health.Status]:
        stage = self.stage
        al = stage.aligner
        st = health.Status("", values={
            "silence_filled_s": al.filled_samples / self.config.sample_rate,
            "dropped_audio_s": al.dropped_samples / self.config.sample_rate,
            "late_audio_s": al.late_samples / self.config.sample_rate, "relation": str(stage.relation.relation),
            "role": "speaking" if stage.speaking(time.monotonic()) else "listening"})
        self.rate.check(st)
        self.skips.check(st, stage.frames_computed, stage.skipped)
        self.latency.check(st)
        self.compute.check(st)
        recoveries = stage.stream.recoveries      # the model state reset itself after a non-finite output
        st.values["recoveries"] = recoveries
        if recoveries > self._recoveries_reported:
            st.add(health.WARN, f"motion state reset {recoveries - self._recoveries_reported} time(s) after a "
                                "non-finite output")
        self._recoveries_reported = recoveries
        return [st]


def placement_key(cfg: MotionConfig, stage: MotionStage) -> tuple:
    """What the head_pose message is built from (frames and placement parameters): it is built again when this
    changes."""
    return (cfg.world_frame, topics.head_frame(cfg.participant), tuple(stage.cfg.head_position),
            stage.cfg.head_yaw_deg)


class FrameMessages:
    """The messages of each MotionFrame: (FaceMesh or None without vertices, SocialMotion, head_pose
    TransformStamped), stamped with the frame's audio-clock time. The same message objects are filled again for
    every frame (a new set per frame cost about twice the CPU; the relation and pose parts are built again only
    when they change): publish a frame's messages before asking for the next frame's (a publisher serialises a
    message in ``publish``)."""

    def __init__(self):
        self.mesh, self.motion = FaceMesh(), SocialMotion()
        self._relation = self._pose = None          # (what it was built from, message)

    def __call__(self, cfg: MotionConfig, stage: MotionStage, frames, speaking: bool):
        head_frame = topics.head_frame(cfg.participant)
        msg = self.motion
        msg.participant_id, msg.header.frame_id, msg.turn_index = cfg.participant, head_frame, stage.turn_index
        msg.role = SocialMotion.ROLE_SPEAKING if speaking else SocialMotion.ROLE_LISTENING
        relation = stage.relation.relation
        if self._relation is None or self._relation[0] != relation:
            self._relation = (relation, relation_to_msg(relation))
            msg.relation = self._relation[1]
        placement = placement_key(cfg, stage)
        if self._pose is None or self._pose[0] != placement:
            pos, quat = stage.head_pose()
            self._pose = (placement, transform_msg(cfg.world_frame, head_frame, pos, quat, 0))
        pose = self._pose[1]
        for f in frames:
            motion_to_flame_params(f.motion, stage.layout, reuse=msg.params)
            ns_to_stamp(f.stamp_ns, msg.header.stamp)
            ns_to_stamp(f.stamp_ns, pose.header.stamp)
            mesh = None if f.vertices is None else mesh_to_msg(f.vertices, cfg.participant, stage.topology_id,
                                                                f.stamp_ns, head_frame, reuse=self.mesh)
            yield mesh, msg, pose


class SerializedFrames:
    """FrameMessages' messages of each frame as serialized bytes for ``Publisher.publish`` (the same bytes rclpy
    would serialize): each kind of message is serialized once from FrameMessages and then only its per-frame
    fields are overwritten (header stamp; role, face parameters and turn index; vertices), until something else
    in it changes (the relationship, the placement, an id). ``serialized`` False (this rmw's bytes have another
    layout): it yields FrameMessages' message objects from then on."""

    def __init__(self):
        self.messages = FrameMessages()
        self.serialized = True
        self._mesh = self._motion = self._pose = None           # (what it was built from, SerializedMessage)

    def __call__(self, cfg: MotionConfig, stage: MotionStage, frames, speaking: bool):
        if not self.serialized:
            yield from self.messages(cfg, stage, frames, speaking)
            return
        head_frame = topics.head_frame(cfg.participant)
        lay = stage.layout
        motion_key = (cfg.participant, head_frame, stage.relation.relation, lay.basis, lay.dim)
        pose_key = placement_key(cfg, stage)
        role = SocialMotion.ROLE_SPEAKING if speaking else SocialMotion.ROLE_LISTENING
        for k, f in enumerate(frames):
            mesh_key = None if f.vertices is None else (cfg.participant, head_frame, stage.topology_id,
                                                        f.vertices.shape[0])
            if (self._motion is None or self._motion[0] != motion_key or self._pose[0] != pose_key or
                    (mesh_key is not None and (self._mesh is None or self._mesh[0] != mesh_key))):
                mesh, motion, pose = next(self.messages(cfg, stage, [f], speaking))
                built = [(motion_key, SerializedMessage(motion, *social_motion_fields(motion))),
                         (pose_key, SerializedMessage(pose, *transform_fields(pose)))]
                if mesh is not None:
                    built.append((mesh_key, SerializedMessage(mesh, *face_mesh_fields(mesh))))
                if not all(m.ok for _, m in built):
                    self.serialized = False
                    yield from self.messages(cfg, stage, frames[k:], speaking)
                    return
                self._motion, self._pose = built[:2]
                self._mesh = built[2] if mesh is not None else self._mesh
            motion, pose = self._motion[1], self._pose[1]
            m = f.motion
            motion.stamp(f.stamp_ns)
            motion.field("role")[0] = role
            motion.field("expression")[:] = m[lay.expression]
            motion.field("jaw_pose")[:] = m[lay.jaw]
            motion.field("neck_pose")[:] = m[lay.neck]
            motion.field("eye_pose")[:] = m[lay.eyes]
            motion.field("turn_index")[0] = stage.turn_index
            pose.stamp(f.stamp_ns)
            mesh = None
            if mesh_key is not None:
                mesh = self._mesh[1]
                mesh.stamp(f.stamp_ns)
                mesh.field("vertices")[:] = f.vertices.reshape(-1)
                mesh = mesh.bytes()
            yield mesh, motion.bytes(), pose.bytes()


def main(args=None):
    raise SystemExit(run([MotionNode], args))


if __name__ == "__main__":
    main()
