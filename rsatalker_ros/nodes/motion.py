"""motion (one per participant): own audio + partner audio + conversation state -> relationship-conditioned face
motion, the posed head mesh, an rviz2 marker and the head frame.

    python -m rsatalker_ros.nodes.motion --ros-args -r __node:=motion_alice -p participant:=alice -p partner:=bob

Subscribes /rsatalker/<participant>/audio and /rsatalker/<partner>/audio (sensor-data QoS) and
/rsatalker/conversation. The two audio streams are aligned by their stamps (rsatalker_ros.ros.stream_align) and
fed to the streaming motion model (rsatalker_ros.motion.streaming.StreamingDyad), which returns each 25 fps frame
once its look-ahead (<= 80 ms) has arrived. The relationship comes from the ConversationState
(``relation_source: conversation``, the default; the relation_* parameters apply until one arrives) or from the
relation_* parameters only (``relation_source: parameters``).

Publishes, per frame, stamped with the audio-clock time of the frame's centre (frames start at ``frame_phase_ms``
on the audio clock, plus multiples of 40 ms):
  /rsatalker/<p>/motion (SocialMotion), /rsatalker/<p>/mesh (FaceMesh, head frame "<p>/head"),
  /rsatalker/<p>/head_pose (geometry_msgs/TransformStamped world -> <p>/head; also on /tf where tf2_msgs exists);
and /rsatalker/<p>/mesh_marker (visualization_msgs/Marker TRIANGLE_LIST, at most marker_rate_hz),
/rsatalker/<p>/mesh_topology (FaceTopology, latched), /diagnostics.
"""

from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import Point, TransformStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker

from rsatalker_ros.audio.voice_activity import VadConfig, VoiceActivityDetector
from rsatalker_ros.motion.layout import AUDIO_RATE, SAMPLES_PER_FRAME
from rsatalker_ros.msg import AudioFrame, ConversationState, FaceMesh, FaceTopology, SocialMotion
from rsatalker_ros.nodes.common import (RejectLog, declare, declare_relation, diagnostic_status,
                                        make_diagnostics_publisher, publish_diagnostics, reject_parameters,
                                        relation_from_params, run)
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import (mesh_to_msg, mono_audio_from_msg, motion_to_flame_params, ns_to_stamp,
                                       relation_from_msg, relation_to_msg, stamp_to_ns, topology_to_msg)
from rsatalker_ros.ros.stream_align import AlignConfig, PairAligner
from rsatalker_ros.ros.turn_taking import SpeechGate, TurnConfig
from rsatalker_ros.social.relation import Relation


def head_rotation(yaw_deg: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of the head frame (x head's left, y up, z out of the face) in a REP-103 world
    (x forward, y left, z up), the face turned ``yaw_deg`` about world z from facing +x."""
    base = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])   # columns: head x, y, z in world
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ base
    w = math.sqrt(max(0.0, 1.0 + R[0, 0] + R[1, 1] + R[2, 2])) / 2.0
    x = math.copysign(math.sqrt(max(0.0, 1.0 + R[0, 0] - R[1, 1] - R[2, 2])) / 2.0, R[2, 1] - R[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1.0 - R[0, 0] + R[1, 1] - R[2, 2])) / 2.0, R[0, 2] - R[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1.0 - R[0, 0] - R[1, 1] + R[2, 2])) / 2.0, R[1, 0] - R[0, 1])
    return np.array([x, y, z, w])


class MotionNode(Node):
    def __init__(self, name: str = "motion", **kwargs):
        super().__init__(name, **kwargs)
        import torch

        from rsatalker_ros.face.head_model import load_head
        from rsatalker_ros.motion.checkpoint import load_model
        from rsatalker_ros.motion.streaming import StreamingDyad, query_indices_for
        self.torch, self._query_indices_for = torch, query_indices_for
        self.pid = topics.check_participant_id(declare(self, "participant", "alice", "whose face this node moves",
                                                       read_only=True))
        self.partner = topics.check_participant_id(declare(self, "partner", "bob", "the other participant of the "
                                                           "conversation", read_only=True))
        if self.partner == self.pid:
            raise ValueError(f"partner must differ from participant, both are {self.pid!r}")
        head_name = declare(self, "head", "default_older", "head model: 'default_older', 'default_younger', a "
                            "baked .npz or a FLAME .pkl", read_only=True)
        ckpt = declare(self, "checkpoint", "", "motion model checkpoint (.safetensors); '' = the shipped "
                       "motion_default", read_only=True)
        threads = declare(self, "torch_threads", 1, "CPU threads for the motion model", read_only=True)
        self.relation_source = declare(self, "relation_source", "conversation", "'conversation': follow "
                                       "ConversationState.relation (parameters until one arrives); 'parameters'")
        marker_hz = declare(self, "marker_rate_hz", 1.0, "rviz2 TRIANGLE_LIST marker rate [Hz]; 0 = no marker")
        self.marker_period = 1.0 / marker_hz if marker_hz > 0 else None
        self.publish_mesh = declare(self, "publish_mesh", True, "publish the posed mesh (FaceMesh) every frame")
        self.world_frame = declare(self, "world_frame", "world", "parent frame of the head frame on TF")
        pos = declare(self, "head_position", [0.0, 0.0, 1.2], "head frame origin in world_frame [m] (x, y, z)")
        yaw = declare(self, "head_yaw_deg", 0.0, "head heading about world z [deg]; 0 = facing +x")
        self.rate = declare(self, "sample_rate", AUDIO_RATE, "expected AudioFrame.sample_rate [Hz]", read_only=True)
        self.max_chunk_s = declare(self, "max_chunk_s", 1.0, "longest accepted AudioFrame [s]", read_only=True)
        phase = declare(self, "frame_phase_ms", 0.0, "where this node's 40 ms frames start on the audio clock [ms], "
                        "0 <= phase < 40; participants of one graph get different phases so that their frames, "
                        "and so their renders, come at different times (bringup: 40 / n ms apart)", read_only=True)
        max_lag = declare(self, "max_partner_lag_s", 0.2, "a stream lagging the other by more than this counts "
                          "as silent [s]", read_only=True)
        vad_backend = declare(self, "vad_backend", "energy", "own-voice activity for the SPEAKING / LISTENING role "
                              "when no ConversationState arrives: 'energy', 'silero' or 'auto'", read_only=True)
        frame_ms = 1000.0 * SAMPLES_PER_FRAME / AUDIO_RATE
        if not 0.0 <= phase < frame_ms:
            raise ValueError(f"frame_phase_ms is {phase}; expected 0 <= phase < {frame_ms:g} (one frame)")
        # the frame grid starts `lead` samples before the stream: that much silence goes into the model first
        self.lead = int(round(phase * self.rate / 1000.0))
        self._lead_due = True
        self.relation = self._check_relation(declare_relation(self))
        if self.relation_source not in ("conversation", "parameters"):
            raise ValueError(f"relation_source is {self.relation_source!r}; expected 'conversation' or 'parameters'")
        self.add_on_set_parameters_callback(self._on_params)
        if len(pos) != 3:
            raise ValueError(f"head_position has {len(pos)} values; expected 3 (x, y, z in metres)")
        self.head_pos, self.head_quat = [float(v) for v in pos], head_rotation(float(yaw))

        torch.set_num_threads(max(1, int(threads)))
        self.model, info = load_model(ckpt or None)
        self.head = load_head(head_name)
        if self.head.layout.dim != self.model.cfg.motion_dim or self.head.basis != self.model.cfg.basis:
            raise ValueError(f"head {head_name!r} takes {self.head.basis} motion of {self.head.layout.dim} values; "
                             f"the checkpoint predicts {self.model.cfg.basis} of {self.model.cfg.motion_dim}")
        self.layout = self.head.layout
        self.topology_id = self.head.name or head_name
        self.faces = self.head.faces.numpy().astype(np.int64)
        self.dyad = StreamingDyad(self.model, self.relation, self.pid, self.partner)
        self.aligner = PairAligner(AlignConfig(sample_rate=self.rate, max_lag_s=max_lag))
        self.vad = VoiceActivityDetector(VadConfig(backend=vad_backend))
        self.gate = SpeechGate(TurnConfig())
        self.turn_index = 0
        self._conv_speaking = None      # (speaking, monotonic time) from the last ConversationState
        self.reject = RejectLog(self)

        P = lambda leaf: topics.participant(self.pid, leaf)  # noqa: E731
        self.pub_motion = self.create_publisher(SocialMotion, P("motion"), qos.STATE)
        self.pub_mesh = self.create_publisher(FaceMesh, P("mesh"), qos.FRAMES)
        self.pub_marker = self.create_publisher(Marker, P("mesh_marker"), qos.STATE)
        self.pub_pose = self.create_publisher(TransformStamped, P("head_pose"), qos.STATE)
        self.pub_topology = self.create_publisher(FaceTopology, P("mesh_topology"), qos.LATCHED)
        self.pub_topology.publish(topology_to_msg(self.faces, self.head.n_vertices, self.topology_id))
        self.pub_tf = None
        try:
            from tf2_msgs.msg import TFMessage  # a real ROS 2 install
            self.pub_tf, self._tf_message = self.create_publisher(TFMessage, "/tf", 100), TFMessage
        except ImportError:
            pass
        self.create_subscription(AudioFrame, topics.audio(self.pid), lambda m: self._on_audio(0, m), qos.SENSOR_IN)
        self.create_subscription(AudioFrame, topics.audio(self.partner), lambda m: self._on_audio(1, m),
                                 qos.SENSOR_IN)
        self.create_subscription(ConversationState, topics.CONVERSATION, self._on_conversation, qos.STATE)
        self.diag = make_diagnostics_publisher(self)
        self.create_timer(1.0, self._report)
        self.frames_out, self._frames_reported, self._compute_ms = 0, 0, []
        self._last_marker = -1e9
        self._vad_pending = 0
        self.get_logger().info(f"{self.pid} (partner {self.partner}): head {self.topology_id} "
                               f"({self.head.n_vertices} vertices), checkpoint {ckpt or 'motion_default'} "
                               f"({info.get('stage', '?')}), look-ahead {self.dyad.lookahead_ms:.1f} ms, "
                               f"relation {self.relation}")

    # ---- relationship ----------------------------------------------------------------------------------------
    def _check_relation(self, rel: Relation) -> Relation:
        if rel.senior and rel.senior not in (self.pid, self.partner):
            raise ValueError(f"the relationship's senior participant {rel.senior!r} is neither {self.pid!r} nor "
                             f"{self.partner!r}")
        return rel

    def _set_relation(self, rel: Relation, why: str) -> None:
        if rel == self.relation:
            return
        self.relation = rel
        if hasattr(self.dyad, "set_relation"):
            self.dyad.set_relation(rel)
        else:   # streaming.py before set_relation existed: the same two attributes
            self.dyad.queries = self.torch.tensor(self._query_indices_for(rel, self.pid, self.partner))
            self.dyad.relation = rel
        self.get_logger().info(f"relationship now {rel} ({why})")

    def _on_params(self, params) -> SetParametersResult:
        try:
            rel, pending = relation_from_params(self, params, (self.pid, self.partner))
            if rel is not None:
                self._set_relation(rel, "parameter")
            elif pending:
                self.get_logger().warn(f"relationship parameters incomplete ({pending}); keeping {self.relation}")
            for p in params:
                if p.name == "relation_source" and p.value not in ("conversation", "parameters"):
                    raise ValueError(f"relation_source {p.value!r}; expected 'conversation' or 'parameters'")
                if p.name == "relation_source":
                    self.relation_source = p.value
        except ValueError as err:
            return reject_parameters(self, str(err))
        return SetParametersResult(successful=True)

    def _on_conversation(self, msg: ConversationState) -> None:
        try:
            rel = relation_from_msg(msg.relation)
            if self.relation_source == "conversation":
                rel = self._check_relation(rel)
        except ValueError as err:
            self.reject("ConversationState.relation", err)
            return
        self.turn_index = int(msg.turn_index)
        if self.pid in msg.participant_ids and len(msg.speaking_probability) == len(msg.participant_ids):
            p = float(msg.speaking_probability[list(msg.participant_ids).index(self.pid)])
            if math.isfinite(p):
                self._conv_speaking = (p > 0.5, time.monotonic())
        if self.relation_source == "conversation":
            self._set_relation(rel, "conversation state")

    # ---- audio -> motion -------------------------------------------------------------------------------------
    def _on_audio(self, stream: int, msg: AudioFrame) -> None:
        pid = self.pid if stream == 0 else self.partner
        try:
            x = mono_audio_from_msg(msg, pid, self.rate, self.max_chunk_s)
        except ValueError as err:
            self.reject(f"AudioFrame on {topics.audio(pid)}", err)
            return
        self.aligner.push(stream, x, stamp_to_ns(msg.header.stamp))
        own, par, start, restarted = self.aligner.pop()
        if restarted:
            self.get_logger().warn("audio clock jumped (a restarted source?): motion stream restarted")
            self.dyad.reset()
            self.vad.reset()
            self._vad_pending = 0
            self._lead_due = True
        if own.shape[0] == 0:
            return
        if self._lead_due:
            self._lead_due = False
            if self.lead:
                silence = np.zeros(self.lead, np.float32)
                self.dyad.push(silence, silence)
        t0 = time.perf_counter()
        for j, prob in enumerate(self.vad.push(own)):
            end = start + (j + 1) * 512 - self._vad_pending
            self.gate.update(float(prob), end / self.rate)
        self._vad_pending = (self._vad_pending + own.shape[0]) % 512
        frames, _ = self.dyad.push(own, par)
        if frames:
            self._publish_frames(frames)
            self._compute_ms.append((time.perf_counter() - t0) * 1000.0 / len(frames))

    def _publish_frames(self, frames) -> None:
        torch = self.torch
        motion = np.stack([m for _, m in frames]).astype(np.float32)
        with torch.inference_mode():
            verts = self.head.from_motion(torch.from_numpy(motion)).numpy() if self.publish_mesh else None
        role = SocialMotion.ROLE_SPEAKING if self._speaking() else SocialMotion.ROLE_LISTENING
        rel_msg = relation_to_msg(self.relation)
        head_frame = topics.head_frame(self.pid)
        for i, (k, m) in enumerate(frames):
            stamp = self.aligner.stamp_of(k * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2 - self.lead)
            msg = SocialMotion(participant_id=self.pid, role=role, params=motion_to_flame_params(m, self.layout),
                               relation=rel_msg, turn_index=self.turn_index)
            ns_to_stamp(stamp, msg.header.stamp)
            msg.header.frame_id = head_frame
            if verts is not None:   # the mesh first: the renderer waits for it, the rest is bookkeeping
                self.pub_mesh.publish(mesh_to_msg(verts[i], self.pid, self.topology_id, stamp, head_frame))
            self.pub_motion.publish(msg)
            self._publish_pose(stamp)
            self.frames_out += 1
        if verts is not None and self.marker_period is not None and \
                time.monotonic() - self._last_marker >= self.marker_period:
            self._last_marker = time.monotonic()
            self._publish_marker(verts[-1], stamp)

    def _speaking(self) -> bool:
        """This participant's role: the conversation node's decision while its states keep coming (within 0.5 s),
        else this node's own voice activity."""
        if self._conv_speaking is not None and time.monotonic() - self._conv_speaking[1] < 0.5:
            return self._conv_speaking[0]
        return self.gate.speaking

    def _publish_pose(self, stamp: int) -> None:
        t = TransformStamped()
        ns_to_stamp(stamp, t.header.stamp)
        t.header.frame_id = self.world_frame
        t.child_frame_id = topics.head_frame(self.pid)
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = self.head_pos
        (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
         t.transform.rotation.w) = (float(v) for v in self.head_quat)
        self.pub_pose.publish(t)
        if self.pub_tf is not None:
            self.pub_tf.publish(self._tf_message(transforms=[t]))

    def _publish_marker(self, verts: np.ndarray, stamp: int) -> None:
        m = Marker()
        ns_to_stamp(stamp, m.header.stamp)
        m.header.frame_id = topics.head_frame(self.pid)
        m.ns, m.id, m.type, m.action = self.pid, 0, Marker.TRIANGLE_LIST, Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 1.0
        m.color = ColorRGBA(r=0.85, g=0.7, b=0.6, a=1.0)
        tri = verts[self.faces].reshape(-1, 3).astype(float).tolist()
        m.points = [Point(x=p[0], y=p[1], z=p[2]) for p in tri]
        self.pub_marker.publish(m)

    def _report(self) -> None:
        ms = sorted(self._compute_ms)
        self._compute_ms = []
        n = self.frames_out - self._frames_reported
        self._frames_reported = self.frames_out
        vals = {"frames_per_s": float(n), "compute_ms_per_frame_p50": ms[len(ms) // 2] if ms else 0.0,
                "rejected_inputs": self.reject.total, "silence_filled_s": self.aligner.filled_samples / self.rate,
                "dropped_s": self.aligner.dropped_samples / self.rate, "relation": str(self.relation),
                "role": "speaking" if self._speaking() else "listening"}
        publish_diagnostics(self, self.diag, [diagnostic_status(self.get_name(), self.pid, vals)])


def main(args=None):
    raise SystemExit(run([MotionNode], args))


if __name__ == "__main__":
    main()
