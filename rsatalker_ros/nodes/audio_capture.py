"""audio_capture: microphone (PortAudio) or wav files -> one AudioFrame stream per participant.

    python -m rsatalker_ros.nodes.audio_capture --ros-args --params-file config/audio_capture.yaml

A lifecycle node (it drives hardware): configure opens and checks the source (a wrong or missing device fails
with an error that lists the input devices found), activate starts capture, deactivate stops it. With
``autostart`` true (the default) it configures and activates itself.

Publishes per participant ``p``: /rsatalker/p/audio (AudioFrame, sensor-data QoS, 16 kHz mono, stamp = capture
time of the first sample), /rsatalker/p/audio_info (std_msgs/String holding JSON: sample_rate, channels,
sample_format, coding_format, source; latched), and /diagnostics (rate, overruns, level) once a second.
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from std_msgs.msg import String

from rsatalker_ros.motion.layout import AUDIO_RATE
from rsatalker_ros.msg import AudioFrame
from rsatalker_ros.nodes.common import declare, diagnostic_status, publish_diagnostics, run
from rsatalker_ros.ros import qos, topics
from rsatalker_ros.ros.convert import audio_to_msg


class AudioCaptureNode(LifecycleNode):
    def __init__(self, name: str = "audio_capture", **kwargs):
        super().__init__(name, **kwargs)
        declare(self, "participants", ["alice", "bob"], "participant ids, one AudioFrame topic each "
                "(/rsatalker/<id>/audio); REP-144 names")
        declare(self, "source", "device", "'device' (PortAudio microphone) or 'wav' (files played in real time)")
        declare(self, "device", "", "PortAudio input device: '' = default, an index, or (part of) its name")
        declare(self, "device_sample_rate", 0, "device capture rate [Hz]; 0 = the device's default rate. "
                "Audio is resampled to 16000 Hz")
        declare(self, "channel_map", [-1], "device / wav channel of each participant (0-based), e.g. [0, 1]; "
                "[-1] = participant i reads channel i")
        declare(self, "wav_files", [""], "source 'wav': one mono file per participant, or one multichannel file "
                "read through channel_map")
        declare(self, "loop", False, "source 'wav': start again at the end (kiosks); false = stop at the end")
        declare(self, "chunk_ms", 20.0, "audio per published AudioFrame [ms] (10..100)")
        declare(self, "sample_format", "s16le", "'s16le' or 'f32le' sample format of AudioFrame.data")
        declare(self, "frame_id_suffix", "mic", "AudioFrame.header.frame_id = '<participant>/<suffix>'")
        declare(self, "diagnostics_period_s", 1.0, "period of the /diagnostics report [s]")
        declare(self, "wait_for_subscribers", 0, "source 'wav': before playing, wait until every participant's audio "
                "topic has this many matched subscriptions (or wait_timeout_s passes), so no listener misses the "
                "start of the recording; 0 = play at once")
        declare(self, "wait_timeout_s", 15.0, "longest wait for wait_for_subscribers [s]")
        declare(self, "autostart", True, "configure and activate on start (no lifecycle manager needed)")
        self.source = None
        self._pubs, self._info_pubs = {}, {}
        self._diag_pub = None
        self._diag_timer = None
        self._lock = threading.Lock()
        self._level: dict[str, list] = {}
        self._last_report = None
        self.finished = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def autostart(self) -> bool:
        if not self.get_parameter("autostart").value:
            return True
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def _params(self) -> dict:
        p = {n: self.get_parameter(n).value for n in ("participants", "source", "device", "device_sample_rate",
                                                      "channel_map", "wav_files", "loop", "chunk_ms",
                                                      "sample_format", "frame_id_suffix", "diagnostics_period_s")}
        p["participants"] = [topics.check_participant_id(x) for x in p["participants"]]
        if len(set(p["participants"])) != len(p["participants"]) or not p["participants"]:
            raise ValueError(f"participants must be distinct ids, got {p['participants']}")
        if p["source"] not in ("device", "wav"):
            raise ValueError(f"source is {p['source']!r}; expected 'device' or 'wav'")
        if not 10.0 <= p["chunk_ms"] <= 100.0:
            raise ValueError(f"chunk_ms is {p['chunk_ms']}; expected 10..100 ms")
        if p["sample_format"] not in ("s16le", "f32le"):
            raise ValueError(f"sample_format is {p['sample_format']!r}; expected 's16le' or 'f32le'")
        return p

    def on_configure(self, state) -> TransitionCallbackReturn:
        from rsatalker_ros.ros.audio_sources import DeviceSource, WavSource
        try:
            p = self._params()
            chunk = int(round(p["chunk_ms"] * AUDIO_RATE / 1000.0))
            n = len(p["participants"])
            if p["source"] == "device":
                self.source = DeviceSource(p["device"], n, p["channel_map"], chunk, p["device_sample_rate"],
                                           self._now_ns, self._on_chunk)
            else:
                self.source = WavSource(p["wav_files"], n, p["channel_map"], chunk, p["loop"], self._now_ns,
                                        self._on_chunk, on_end=self._on_end)
        except (ValueError, OSError) as err:
            self.get_logger().error(f"cannot open the audio source: {err}")
            return TransitionCallbackReturn.FAILURE
        self.participants = p["participants"]
        self.fmt = AudioFrame.FORMAT_S16LE if p["sample_format"] == "s16le" else AudioFrame.FORMAT_F32LE
        self.frame_suffix = p["frame_id_suffix"]
        for pid in self.participants:
            self._pubs[pid] = self.create_lifecycle_publisher(AudioFrame, topics.audio(pid), qos.AUDIO)
            self._info_pubs[pid] = self.create_publisher(String, topics.audio_info(pid), qos.LATCHED)
            self._level[pid] = [0.0, 0, 0.0]   # sum of squares, samples, peak (since the last report)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(p["diagnostics_period_s"], self._report)
        desc = self.source.describe()
        for i, pid in enumerate(self.participants):
            info = {"sample_rate": AUDIO_RATE, "channels": 1, "sample_format": p["sample_format"].upper(),
                    "coding_format": "wave", "participant_id": pid, "chunk_samples": chunk, **desc}
            self._info_pubs[pid].publish(String(data=json.dumps(info)))
        self.get_logger().info(f"audio source ready: {desc} -> {[topics.audio(x) for x in self.participants]}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        wait = int(self.get_parameter("wait_for_subscribers").value)
        if wait > 0 and self.get_parameter("source").value == "wav":
            threading.Thread(target=self._start_when_heard, args=(wait,), daemon=True).start()
            return ret
        try:
            self.source.start()
        except Exception as err:  # noqa: BLE001 - PortAudio raises its own error types
            self.get_logger().error(f"cannot start audio capture: {err}")
            return TransitionCallbackReturn.FAILURE
        return ret

    def _start_when_heard(self, wait: int) -> None:
        """A recording has a beginning: play it once every audio topic has ``wait`` subscribers (or on timeout)."""
        deadline = time.monotonic() + float(self.get_parameter("wait_timeout_s").value)
        counts = {}
        while time.monotonic() < deadline:
            counts = {pid: pub.get_subscription_count() for pid, pub in self._pubs.items()}
            if counts and min(counts.values()) >= wait:
                time.sleep(0.3)                       # let the subscribers' side of the match settle too
                break
            time.sleep(0.05)
        else:
            self.get_logger().warning(f"playing without waiting longer: subscriptions per audio topic {counts}, "
                                      f"expected {wait}")
        source = self.source
        if source is not None and self.context.ok():
            source.start()

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        if self.source is not None:
            self.source.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self):
        if self.source is not None:
            self.source.stop()
            self.source = None
        for pub in list(self._pubs.values()) + list(self._info_pubs.values()):
            self.destroy_publisher(pub)
        self._pubs, self._info_pubs = {}, {}
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None

    def shutdown(self):
        self._teardown()

    # ---- data path (source thread) ---------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_chunk(self, block: np.ndarray, stamp_ns: int) -> None:
        for i, pid in enumerate(self.participants):
            x = block[:, i]
            with self._lock:
                lv = self._level[pid]
                lv[0] += float(np.dot(x, x))
                lv[1] += x.shape[0]
                lv[2] = max(lv[2], float(np.abs(x).max()) if x.size else 0.0)
            pub = self._pubs.get(pid)
            if pub is None or not self.context.ok():
                return                                   # shutting down
            pub.publish(audio_to_msg(x, AUDIO_RATE, pid, stamp_ns, self.fmt, f"{pid}/{self.frame_suffix}"))

    def _on_end(self) -> None:
        self.get_logger().info("wav source finished (loop is false)")
        self.finished.set()

    def _report(self) -> None:
        if self.source is None:
            return
        st = self.source.stats
        now = self._now_ns()
        rate = 0.0
        if self._last_report is not None:
            dt = (now - self._last_report[0]) / 1e9
            rate = (st.chunks - self._last_report[1]) / dt if dt > 0 else 0.0
        self._last_report = (now, st.chunks)
        statuses = []
        for pid in self.participants:
            with self._lock:
                ss, n, peak = self._level[pid]
                self._level[pid] = [0.0, 0, 0.0]
            rms_db = 10 * math.log10(ss / n + 1e-12) if n else -120.0
            level = DiagnosticStatus.WARN if st.overruns or st.reanchors else DiagnosticStatus.OK
            statuses.append(diagnostic_status(
                f"{self.get_name()}: {pid}", self.source.describe().get("device", "wav"),
                {"chunk_rate_hz": rate, "sample_rate_hz": float(AUDIO_RATE), "overruns": st.overruns,
                 "clock_reanchors": st.reanchors, "level_rms_dbfs": rms_db,
                 "level_peak_dbfs": 20 * math.log10(peak + 1e-12)},
                level, "overruns" if st.overruns else "ok"))
        publish_diagnostics(self, self._diag_pub, statuses)


def main(args=None):
    raise SystemExit(run([AudioCaptureNode], args))


if __name__ == "__main__":
    main()
