"""audio_capture: microphone (PortAudio) or wav files -> one AudioFrame stream per participant.

    python -m rsatalker_ros.nodes.audio_capture --ros-args --params-file config/audio_capture.yaml

A lifecycle node around rsatalker_ros.stages.capture (parameters: CaptureConfig): configure opens and checks the
source (a wrong or missing device fails with an error that lists the input devices found), activate starts
capture, deactivate stops it. With ``autostart`` true (the default) it configures and activates itself.

Publishes per participant ``p``: /rsatalker/p/audio (AudioFrame, reliable as REP-2003 asks of drivers; subscribers
choose best effort; 16 kHz mono, stamp = capture time of the first sample), /rsatalker/p/audio_info
(std_msgs/String holding JSON: sample_rate, channels, sample_format, coding_format, source; latched), and
/diagnostics (chunk rate against its target, overruns, level).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
from std_msgs.msg import String

from rsatalker_ros.motion.layout import AUDIO_RATE
from rsatalker_ros.msg import AudioFrame
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import audio_to_msg
from rsatalker_ros.ros.lifecycle_adapter import StageNode
from rsatalker_ros.ros.spin import run
from rsatalker_ros.stages.capture import CaptureConfig, CaptureStage


class AudioCaptureNode(StageNode):
    config_class = CaptureConfig

    def __init__(self, name: str = "audio_capture", **kwargs):
        super().__init__(name, **kwargs)
        self._pubs: dict = {}
        self.finished = threading.Event()
        self._waiter: threading.Thread | None = None     # waits for subscribers, then starts playback
        self._cancel_wait = threading.Event()

    def make_stage(self, cfg: CaptureConfig) -> CaptureStage:
        stage = CaptureStage(cfg, lambda: self.get_clock().now().nanoseconds, self._on_chunk, self._on_end)
        self.fmt = AudioFrame.FORMAT_S16LE if cfg.sample_format == "s16le" else AudioFrame.FORMAT_F32LE
        self.get_logger().info(f"audio source ready: {stage.describe()} -> "
                               f"{[topics.audio(p) for p in cfg.participants]}")
        return stage

    def open(self) -> None:
        cfg = self.config
        desc = self.stage.describe()
        for pid in cfg.participants:
            info = {"sample_rate": AUDIO_RATE, "channels": 1, "sample_format": cfg.sample_format.upper(),
                    "coding_format": "wave", "participant_id": pid, "chunk_samples": cfg.chunk_samples, **desc}
            self.publisher(String, topics.audio_info(pid), qos.LATCHED).publish(String(data=json.dumps(info)))
        self._pubs = {pid: self.publisher(AudioFrame, topics.audio(pid), qos.AUDIO) for pid in cfg.participants}
        if cfg.wait_for_subscribers > 0 and cfg.source == "wav":
            # owned by this activation: close() cancels and joins it, so a deactivate during the wait stops
            # playback from starting, and quick deactivate/activate pairs never leave two players (issue #11, 4)
            self._cancel_wait = threading.Event()
            self._waiter = threading.Thread(target=self._start_when_heard,
                                            args=(cfg.wait_for_subscribers, self._cancel_wait), daemon=True)
            self._waiter.start()
        else:
            try:
                self.stage.start()
            except Exception as err:  # noqa: BLE001 - PortAudio raises its own error types
                raise OSError(f"cannot start audio capture: {err}") from err

    def close(self) -> None:
        self._cancel_wait.set()
        if self._waiter is not None:      # it may be starting playback right now: let it finish, then stop it
            self._waiter.join()
            self._waiter = None
        self._pubs = {}                   # the source thread stops publishing from here on
        if self.stage is not None:
            self.stage.stop()             # joins the playback thread

    def _start_when_heard(self, wait: int, cancel: threading.Event) -> None:
        """A recording has a beginning: play it once every audio topic has ``wait`` subscribers (or on timeout),
        unless ``cancel`` (this activation ended) is set first."""
        deadline = time.monotonic() + self.config.wait_timeout_s
        pubs, counts = self._pubs, {}
        while time.monotonic() < deadline and not cancel.is_set():
            counts = {pid: pub.get_subscription_count() for pid, pub in pubs.items()}
            if counts and min(counts.values()) >= wait:
                cancel.wait(0.3)                      # let the subscribers' side of the match settle too
                break
            cancel.wait(0.05)
        else:
            if not cancel.is_set():
                self.get_logger().warning(f"playing without waiting longer: subscriptions per audio topic {counts}, "
                                          f"expected {wait}")
        stage = self.stage
        if stage is not None and not cancel.is_set() and self.context.ok():
            stage.start()

    # ---- data path (source thread) ---------------------------------------------------------------------------
    def _on_chunk(self, block: np.ndarray, stamp_ns: int) -> None:
        pubs, suffix = self._pubs, self.config.frame_id_suffix
        for i, pid in enumerate(self.config.participants):
            pub = pubs.get(pid)
            if pub is None or not self.context.ok():
                return                                   # deactivated or shutting down
            try:
                pub.publish(audio_to_msg(block[:, i], AUDIO_RATE, pid, stamp_ns, self.fmt, f"{pid}/{suffix}"))
            except Exception:  # noqa: BLE001 - RCLError "publisher's context is invalid"
                if self.context.ok():
                    raise
                return           # Ctrl-C / SIGTERM shut the context down between the check above and the publish

    def _on_end(self) -> None:
        self.get_logger().info("wav source finished (loop is false)")
        self.finished.set()

    def status(self):
        return self.stage.report()


def main(args=None):
    raise SystemExit(run([AudioCaptureNode], args))


if __name__ == "__main__":
    main()
