"""kiosk: serves the kiosk / telepresence page (rsatalker_ros/display/kiosk.html) with each participant's avatar,
who is speaking, the relationship, and each participant's voice played in the browser in sync with the images.

    python -m rsatalker_ros.nodes.kiosk --ros-args -p participants:="[alice, bob]" -p port:=8080
    # then open http://127.0.0.1:8080/ (kiosk browsers: chromium --kiosk --autoplay-policy=no-user-gesture-required)

Subscribes /rsatalker/<p>/audio (AudioFrame), /rsatalker/<p>/image_raw (encoded to JPEG here) or
/rsatalker/<p>/image_raw/compressed (``images: compressed``), and /rsatalker/conversation. Serves on ``host``
(loopback by default) and ``port``. The page measures its own audio-video offset and shows it; /diagnostics
reports frames, audio chunks and states forwarded, browsers connected and frames dropped for slow browsers.
"""

from __future__ import annotations

import io

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from rsatalker_ros.display.kiosk import NODE_NAME, KioskConfig, KioskServer
from rsatalker_ros.msg import AudioFrame, ConversationState
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import audio_from_msg, image_from_msg, relation_from_msg, stamp_to_ns
from rsatalker_ros.ros.lifecycle_adapter import StageNode
from rsatalker_ros.ros.spin import run
from rsatalker_ros.stages.health import Status

ACTIVITY = {ConversationState.ACTIVITY_SILENCE: "silence", ConversationState.ACTIVITY_SINGLE: "single",
            ConversationState.ACTIVITY_OVERLAP: "overlap"}


def conversation_state(msg: ConversationState) -> dict:
    """A ConversationState as the page's JSON state (ValueError for a bad relation or mismatched lists)."""
    if len(msg.speaking_probability) != len(msg.participant_ids):
        raise ValueError(f"ConversationState has {len(msg.speaking_probability)} speaking probabilities for "
                         f"{len(msg.participant_ids)} participants; expected one each")
    rel = relation_from_msg(msg.relation)
    return {"stamp_ms": stamp_to_ns(msg.header.stamp) / 1e6, "active_speaker": msg.active_speaker,
            "activity": ACTIVITY.get(msg.activity, "silence"), "turn_index": int(msg.turn_index),
            "speaking": {p: float(v) for p, v in zip(msg.participant_ids, msg.speaking_probability)},
            "relation": {"kinship": rel.kinship.name.lower(), "hierarchy": rel.hierarchy.name.lower(),
                         "senior": rel.senior, "label": rel.label}}


class KioskNode(StageNode):
    config_class = KioskConfig
    hardware_id = "kiosk"

    def __init__(self, name: str = NODE_NAME, **kwargs):
        super().__init__(name, **kwargs)

    def make_stage(self, cfg: KioskConfig) -> KioskServer:
        for pid in cfg.participants:
            topics.check_participant_id(pid)
        if len(set(cfg.participants)) != len(cfg.participants) or not 1 <= len(cfg.participants) <= 8:
            raise ValueError(f"participants {list(cfg.participants)}: expected 1..8 distinct ids")
        return KioskServer(cfg)

    def open(self) -> None:
        self.stage.start()
        self.get_logger().info(f"kiosk page: {self.stage.url} (participants {', '.join(self.config.participants)})")
        for i, pid in enumerate(self.config.participants):
            self.subscription(AudioFrame, topics.audio(pid), lambda m, i=i: self._on_audio(i, m), qos.SENSOR_IN)
            if self.config.images == "raw":
                self.subscription(Image, topics.participant(pid, "image_raw"), lambda m, i=i: self._on_image(i, m),
                                  qos.FRAMES)
            else:
                self.subscription(CompressedImage, topics.participant(pid, "image_raw/compressed"),
                                  lambda m, i=i: self._on_jpeg(i, m), qos.FRAMES)
        self.subscription(ConversationState, topics.CONVERSATION, self._on_state, qos.STATE)

    def close(self) -> None:
        if self.stage is not None:
            self.stage.stop()

    def reconfigure(self, cfg: KioskConfig, changed: set) -> None:
        if self.stage is not None:
            self.stage.set_config(cfg)

    def _on_audio(self, index: int, msg: AudioFrame) -> None:
        pid = self.config.participants[index]
        try:
            if msg.participant_id != pid:
                raise ValueError(f"AudioFrame.participant_id is {msg.participant_id!r} on the topic of {pid!r}")
            x = audio_from_msg(msg, max_samples=msg.sample_rate * 2 if msg.sample_rate > 0 else 0)
        except ValueError as err:
            self.reject("audio", err)
            return
        mono = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        s16 = (np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self.stage.send_audio(index, stamp_to_ns(msg.header.stamp), int(msg.sample_rate), s16)

    def _on_image(self, index: int, msg: Image) -> None:
        try:
            rgb = image_from_msg(msg)
        except ValueError as err:
            self.reject("image", err)
            return
        from PIL import Image as PILImage
        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format="JPEG", quality=int(self.config.jpeg_quality))
        self.stage.send_image(index, stamp_to_ns(msg.header.stamp), buf.getvalue())

    def _on_jpeg(self, index: int, msg: CompressedImage) -> None:
        data = bytes(msg.data)
        if "jpeg" not in msg.format.lower() or data[:2] != b"\xff\xd8":
            self.reject("compressed image", f"CompressedImage.format is {msg.format!r} (data starts "
                        f"{data[:2].hex()}); expected JPEG")
            return
        self.stage.send_image(index, stamp_to_ns(msg.header.stamp), data)

    def _on_state(self, msg: ConversationState) -> None:
        try:
            self.stage.send_state(conversation_state(msg))
        except ValueError as err:
            self.reject("conversation state", err)

    def status(self) -> list[Status]:
        s = self.stage
        return [Status("", values={"url": s.url, "browsers": s.clients, "frames_sent": s.sent["frames"],
                                   "audio_chunks_sent": s.sent["audio"], "states_sent": s.sent["states"],
                                   "frames_dropped_slow_browser": s.dropped})]


def main(args=None):
    raise SystemExit(run([KioskNode], args))


if __name__ == "__main__":
    main()
