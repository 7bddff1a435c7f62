"""conversation: every participant's audio -> who speaks, the turn index, overlaps, and the relationship.

    python -m rsatalker_ros.nodes.conversation --ros-args --params-file config/conversation.yaml

Subscribes /rsatalker/<p>/audio (sensor-data QoS) for every participant and /rsatalker/relation (SocialRelation,
latched; overrides the relation_* parameters when it arrives). Voice activity per participant (silero-vad from its
wheel, or the energy fallback) feeds the turn-taking logic (rsatalker_ros.ros.turn_taking).

Publishes /rsatalker/conversation (ConversationState) at ``rate_hz`` and ROS4HRI /humans/voices/<p>/is_speaking
(std_msgs/Bool; hri_msgs/IdsList on /humans/voices/tracked where hri_msgs is installed).

With ``mode: external`` it runs no voice activity detection: it follows the ConversationState a dialogue manager
publishes on ``external_topic``, validates it, and republishes it (and the ROS4HRI topics) from there.
"""

from __future__ import annotations

import time

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Bool

from rsatalker_ros.audio.voice_activity import CHUNK, VadConfig, VoiceActivityDetector
from rsatalker_ros.motion.layout import AUDIO_RATE
from rsatalker_ros.msg import AudioFrame, ConversationState, SocialRelation
from rsatalker_ros.nodes.common import (RejectLog, declare, declare_relation, diagnostic_status,
                                        make_diagnostics_publisher, publish_diagnostics, reject_parameters,
                                        relation_from_params, run)
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import (mono_audio_from_msg, ns_to_stamp, relation_from_msg, relation_to_msg,
                                       stamp_to_ns)
from rsatalker_ros.ros.turn_taking import TurnConfig, TurnTracker
from rsatalker_ros.social.relation import Relation


def check_relation(rel: Relation, participants) -> Relation:
    if rel.senior and rel.senior not in participants:
        raise ValueError(f"the relationship's senior participant {rel.senior!r} is not one of {list(participants)}")
    return rel


class ConversationNode(Node):
    def __init__(self, name: str = "conversation", **kwargs):
        super().__init__(name, **kwargs)
        self.participants = [topics.check_participant_id(p) for p in declare(
            self, "participants", ["alice", "bob"], "participant ids (ROS4HRI voice ids), in a fixed order",
            read_only=True)]
        self.conversation_id = declare(self, "conversation_id", "conversation", "ConversationState.conversation_id")
        self.mode = declare(self, "mode", "vad", "'vad': decide from the audio; 'external': follow a dialogue "
                            "manager's ConversationState on external_topic", read_only=True)
        external_topic = declare(self, "external_topic", "/dialogue_manager/conversation",
                                 "mode 'external': the ConversationState topic to follow", read_only=True)
        rate_hz = declare(self, "rate_hz", 25.0, "ConversationState publish rate [Hz] (mode 'vad')", read_only=True)
        backend = declare(self, "vad_backend", "auto", "voice activity: 'auto', 'silero' or 'energy'",
                          read_only=True)
        thr = declare(self, "vad_threshold", 0.5, "speech probability at or above which audio counts as speech "
                      "(0..1)", read_only=True)
        min_speech = declare(self, "min_speech_s", 0.1, "speech must last this long to count [s]", read_only=True)
        hang = declare(self, "hangover_s", 0.35, "silence must last this long to end speech [s]", read_only=True)
        self.rate = declare(self, "sample_rate", AUDIO_RATE, "expected AudioFrame.sample_rate [Hz]; other rates "
                            "are rejected", read_only=True)
        self.max_chunk_s = declare(self, "max_chunk_s", 1.0, "longest accepted AudioFrame [s]; longer are "
                                   "rejected", read_only=True)
        if self.mode not in ("vad", "external"):
            raise ValueError(f"mode is {self.mode!r}; expected 'vad' or 'external'")
        if len(set(self.participants)) != len(self.participants) or len(self.participants) < 1:
            raise ValueError(f"participants must be distinct ids, got {self.participants}")
        self.relation = check_relation(declare_relation(self), self.participants)
        self.add_on_set_parameters_callback(self._on_params)
        self.reject = RejectLog(self)

        self.pub_state = self.create_publisher(ConversationState, topics.CONVERSATION, qos.STATE)
        self.pub_speaking = {p: self.create_publisher(Bool, topics.is_speaking(p), qos.STATE)
                             for p in self.participants}
        self.pub_tracked = None
        try:
            from hri_msgs.msg import IdsList  # a real ROS4HRI install
            self.pub_tracked = self.create_publisher(IdsList, topics.VOICES_TRACKED, qos.STATE)
            self._ids_list = IdsList
        except ImportError:
            pass
        self.create_subscription(SocialRelation, topics.RELATION, self._on_relation, qos.LATCHED)
        self.diag = make_diagnostics_publisher(self)
        self.create_timer(1.0, self._report)
        self.states_published = 0
        if self.mode == "vad":
            vcfg = VadConfig(backend=backend, threshold=thr)
            self.vad = {p: VoiceActivityDetector(vcfg) for p in self.participants}
            self.vad_pending = {p: 0 for p in self.participants}
            self.tracker = TurnTracker(list(self.participants), TurnConfig(thr, min_speech, hang))
            self.latest_audio = {}    # pid -> (audio-clock ns at the end of the last chunk, monotonic s then)
            for p in self.participants:
                self.create_subscription(AudioFrame, topics.audio(p), lambda m, p=p: self._on_audio(p, m),
                                         qos.SENSOR_IN)
            self.create_timer(1.0 / rate_hz, self._publish_state)
            self.get_logger().info(f"voice activity: {self.vad[self.participants[0]].backend_name}; "
                                   f"participants {self.participants}; relation {self.relation}")
        else:
            self.create_subscription(ConversationState, external_topic, self._on_external, qos.STATE)
            self.get_logger().info(f"following the dialogue manager on {external_topic}")

    # ---- relationship ----------------------------------------------------------------------------------------
    def _on_params(self, params) -> SetParametersResult:
        try:
            rel, pending = relation_from_params(self, params, self.participants)
            if rel is not None:
                self.relation = rel
                self.get_logger().info(f"relationship set by parameter: {self.relation}")
            elif pending:
                self.get_logger().warn(f"relationship parameters incomplete ({pending}); keeping {self.relation}")
        except ValueError as err:
            return reject_parameters(self, str(err))
        return SetParametersResult(successful=True)

    def _on_relation(self, msg: SocialRelation) -> None:
        try:
            self.relation = check_relation(relation_from_msg(msg), self.participants)
            self.get_logger().info(f"relationship set on {topics.RELATION}: {self.relation}")
        except ValueError as err:
            self.reject("SocialRelation", err)

    # ---- voice activity --------------------------------------------------------------------------------------
    def _on_audio(self, pid: str, msg: AudioFrame) -> None:
        try:
            x = mono_audio_from_msg(msg, pid, self.rate, self.max_chunk_s)
        except ValueError as err:
            self.reject(f"AudioFrame on {topics.audio(pid)}", err)
            return
        stamp = stamp_to_ns(msg.header.stamp)
        before = self.vad_pending[pid]
        probs = self.vad[pid].push(x)
        self.vad_pending[pid] = (before + x.shape[0]) % CHUNK
        for j, prob in enumerate(probs):
            end_ns = stamp + int(((j + 1) * CHUNK - before) * 1e9 / self.rate)
            self.tracker.update(pid, float(prob), end_ns / 1e9)
        self.latest_audio[pid] = (stamp + int(x.shape[0] * 1e9 / self.rate), time.monotonic())

    def _audio_now_ns(self) -> int:
        """The audio clock now: the newest audio end time, advanced by the wall time since it arrived."""
        if not self.latest_audio:
            return self.get_clock().now().nanoseconds
        end_ns, mono = max(self.latest_audio.values())
        return end_ns + int((time.monotonic() - mono) * 1e9)

    def _publish_state(self) -> None:
        now_ns = self._audio_now_ns()
        st = self.tracker.state(now_ns / 1e9)
        msg = ConversationState(conversation_id=self.conversation_id, turn_index=st.turn_index,
                                participant_ids=list(self.participants), active_speaker=st.active_speaker,
                                activity=st.activity,
                                speaking_probability=[float(st.probability[p]) for p in self.participants],
                                relation=relation_to_msg(self.relation))
        ns_to_stamp(now_ns, msg.header.stamp)
        self._publish(msg, st.speaking)

    def _publish(self, msg: ConversationState, speaking: dict) -> None:
        self.pub_state.publish(msg)
        self.states_published += 1
        for p, pub in self.pub_speaking.items():
            pub.publish(Bool(data=bool(speaking.get(p, False))))
        if self.pub_tracked is not None:
            ids = self._ids_list()
            ids.header.stamp = msg.header.stamp
            ids.ids = list(self.participants)
            self.pub_tracked.publish(ids)

    # ---- external dialogue manager ---------------------------------------------------------------------------
    def _on_external(self, msg: ConversationState) -> None:
        try:
            n = len(msg.participant_ids)
            if n == 0 or len(msg.speaking_probability) != n:
                raise ValueError(f"{n} participant_ids but {len(msg.speaking_probability)} speaking_probability "
                                 "values; expected one per participant")
            if msg.activity not in (0, 1, 2):
                raise ValueError(f"activity is {msg.activity}; expected ACTIVITY_SILENCE/SINGLE/OVERLAP (0..2)")
            if msg.active_speaker and msg.active_speaker not in msg.participant_ids:
                raise ValueError(f"active_speaker {msg.active_speaker!r} is not in participant_ids")
            probs = np.asarray(msg.speaking_probability, np.float64)
            if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
                raise ValueError("speaking_probability must hold values in [0, 1]")
            check_relation(relation_from_msg(msg.relation), msg.participant_ids)
        except ValueError as err:
            self.reject("external ConversationState", err)
            return
        speaking = {p: pr > 0.5 for p, pr in zip(msg.participant_ids, msg.speaking_probability)}
        self._publish(msg, speaking)

    def _report(self) -> None:
        vals = {"states_published": self.states_published, "rejected_inputs": self.reject.total,
                "mode": self.mode, "relation": str(self.relation.label or self.relation.class_index)}
        publish_diagnostics(self, self.diag, [diagnostic_status(self.get_name(), "conversation", vals)])


def main(args=None):
    raise SystemExit(run([ConversationNode], args))


if __name__ == "__main__":
    main()
