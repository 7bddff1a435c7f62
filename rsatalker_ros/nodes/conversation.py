"""conversation: every participant's audio -> who speaks, the turn index, overlaps, and the relationship.

    python -m rsatalker_ros.nodes.conversation --ros-args --params-file config/conversation.yaml

A lifecycle node around rsatalker_ros.stages.conversation (parameters: ConversationConfig). Subscribes
/rsatalker/<p>/audio (sensor-data QoS) for every participant and /rsatalker/relation (SocialRelation, latched;
replaces the relation_* parameters' relationship when it arrives). Publishes /rsatalker/conversation
(ConversationState) when the speaker, turn or who is speaking changes (at once, from the audio callback) and
otherwise at ``rate_hz``, with ROS4HRI /humans/voices/<p>/is_speaking (std_msgs/Bool; hri_msgs/IdsList on
/humans/voices/tracked where hri_msgs is installed). With ``mode: external`` it runs no voice activity: it follows
the ConversationState a dialogue manager publishes on ``external_topic``, validates it, and republishes it.
Diagnostics: states per second against rate_hz, participants whose audio stopped, rejected inputs by cause.
"""

from __future__ import annotations

import time

from std_msgs.msg import Bool

from rsatalker_ros.input_limits import check_conversation, check_relation
from rsatalker_ros.msg import AudioFrame, ConversationState, SocialRelation
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import mono_audio_from_msg, ns_to_stamp, relation_from_msg, relation_to_msg, stamp_to_ns
from rsatalker_ros.ros.lifecycle_adapter import StageNode
from rsatalker_ros.ros.spin import run
from rsatalker_ros.stages import health
from rsatalker_ros.stages.conversation import ConversationConfig, ConversationStage, check_external


class ConversationNode(StageNode):
    config_class = ConversationConfig
    hardware_id = "conversation"

    def __init__(self, name: str = "conversation", **kwargs):
        super().__init__(name, **kwargs)

    def make_stage(self, cfg: ConversationConfig) -> ConversationStage:
        stage = ConversationStage(cfg)
        self.get_logger().info(f"voice activity: {stage.vad_backend}; participants {list(cfg.participants)}; "
                               f"relation {stage.relation.relation}")
        return stage

    def open(self) -> None:
        cfg = self.config
        self.pub_state = self.publisher(ConversationState, topics.CONVERSATION, qos.STATE)
        self.pub_speaking = {p: self.publisher(Bool, topics.is_speaking(p), qos.STATE) for p in cfg.participants}
        self.pub_tracked = None
        try:
            from hri_msgs.msg import IdsList  # a real ROS4HRI install
            self.pub_tracked, self._ids_list = self.publisher(IdsList, topics.VOICES_TRACKED, qos.STATE), IdsList
        except ImportError:
            pass
        self.subscription(SocialRelation, topics.RELATION, self._on_relation, qos.LATCHED)
        self.rate = health.RateCheck("states_per_s", cfg.rate_hz if cfg.mode == "vad" else 0.0)
        if cfg.mode == "vad":
            for p in cfg.participants:
                self.subscription(AudioFrame, topics.audio(p), lambda m, p=p: self._on_audio(p, m), qos.SENSOR_IN)
            self.timer(1.0 / cfg.rate_hz, self._publish_state)
        else:
            self.subscription(ConversationState, cfg.external_topic, self._on_external, qos.STATE)
            self.get_logger().info(f"following the dialogue manager on {cfg.external_topic}")

    def reconfigure(self, cfg: ConversationConfig, changed: set) -> None:
        note = self.stage.reconfigure(cfg)
        if note:
            self.get_logger().warning(note)
        elif changed & {"relation_kinship", "relation_hierarchy", "relation_senior", "relation_label"}:
            self.get_logger().info(f"relationship set by parameter: {self.stage.relation.relation}")

    # ---- input ----------------------------------------------------------------------------------------------
    def _on_relation(self, msg: SocialRelation) -> None:
        why = check_relation(msg, self.config, self.config.participants)   # bounded label (a 1 MiB one was logged)
        if why is not None:
            self.refuse(f"SocialRelation on {topics.RELATION}", why)
            return
        try:
            changed = self.stage.relation.heard(relation_from_msg(msg))
        except ValueError as err:
            self.reject("relation", f"SocialRelation: {err}")
            return
        if changed:
            self.get_logger().info(f"relationship set on {topics.RELATION}: {self.stage.relation.relation}")

    def _on_audio(self, pid: str, msg: AudioFrame) -> None:
        # stamps outside the window are refused: a frame from the far future would move the audio clock's present
        # there (the states' stamps) and hold this participant's speech decision until then
        x, why = mono_audio_from_msg(msg, pid, self.config, self.get_clock().now().nanoseconds)
        if why is not None:
            self.refuse(f"AudioFrame on {topics.audio(pid)}", why)
            return
        if self.stage.push_audio(pid, x, stamp_to_ns(msg.header.stamp), time.monotonic()):
            self._publish_state()                # a change goes out now; the timer repeats the state meanwhile

    def _on_external(self, msg: ConversationState) -> None:
        why = check_conversation(msg, self.config, self.get_clock().now().nanoseconds)
        if why is not None:
            self.refuse(f"external ConversationState on {self.config.external_topic}", why)
            return
        try:
            speaking = check_external(list(msg.participant_ids), msg.active_speaker, msg.activity,
                                      list(msg.speaking_probability),
                                      lambda: self.stage.relation.check(relation_from_msg(msg.relation)))
        except ValueError as err:
            self.reject("relation", f"external ConversationState: {err}")
            return
        self._publish(msg, speaking)

    # ---- output ---------------------------------------------------------------------------------------------
    def _publish_state(self) -> None:
        snap = self.stage.state(time.monotonic(), self.get_clock().now().nanoseconds)
        st = snap.turn
        msg = ConversationState(conversation_id=self.config.conversation_id, turn_index=st.turn_index,
                                participant_ids=list(self.config.participants), active_speaker=st.active_speaker,
                                activity=st.activity, speaking_probability=snap.probabilities,
                                relation=relation_to_msg(self.stage.relation.relation))
        ns_to_stamp(snap.stamp_ns, msg.header.stamp)
        self._publish(msg, st.speaking)

    def _publish(self, msg: ConversationState, speaking: dict) -> None:
        self.pub_state.publish(msg)
        self.rate.tick()
        for p, pub in self.pub_speaking.items():
            pub.publish(Bool(data=bool(speaking.get(p, False))))
        if self.pub_tracked is not None:
            ids = self._ids_list()
            ids.header.stamp = msg.header.stamp
            ids.ids = list(self.config.participants)
            self.pub_tracked.publish(ids)

    def status(self) -> list[health.Status]:
        rel = self.stage.relation.relation
        st = health.Status("", values={"mode": self.config.mode, "states_published": self.rate.total,
                                       "relation": rel.label or str(rel.class_index)})
        self.rate.check(st)
        if self.config.mode == "vad":
            silent = self.stage.silent_streams(time.monotonic())
            st.values["silent_streams"] = ",".join(silent)
            if silent:
                st.add(health.WARN, f"no audio from {', '.join(silent)} for {self.config.audio_timeout_s:g} s")
        return [st]


def main(args=None):
    raise SystemExit(run([ConversationNode], args))


if __name__ == "__main__":
    main()
