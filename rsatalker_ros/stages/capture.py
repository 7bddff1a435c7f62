"""Capture stage: a microphone (PortAudio) or wav files -> one 16 kHz mono stream per participant. Pure Python; the
ROS side is rsatalker_ros.nodes.audio_capture.

``CaptureStage(cfg, now_ns, emit)`` opens and checks the source (a wrong or missing device raises ValueError listing
the input devices found); ``start`` / ``stop`` run it; the source thread calls ``emit(block [n, P] float32, stamp_ns
of block[0])``. ``report`` gives one diagnostics status per participant: chunk rate against 1000 / chunk_ms,
overruns and clock re-anchors (lost audio: WARN), and the level [dBFS].
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from rsatalker_ros.audio.sources import DeviceSource, WavSource
from rsatalker_ros.motion.layout import AUDIO_RATE
from rsatalker_ros.ros.topics import check_participant_id
from rsatalker_ros.stages import health
from rsatalker_ros.stages.params import param


@dataclass(frozen=True)
class CaptureConfig:
    participants: tuple = param(("alice", "bob"), "participant ids, one AudioFrame topic each "
                                "(/rsatalker/<id>/audio); REP-144 names")
    source: str = param("device", "device (PortAudio microphone) or wav (files played in real time)",
                        choices=("device", "wav"))
    device: str = param("", "PortAudio input device: '' = default, an index, or (part of) its name")
    device_sample_rate: int = param(0, "device capture rate; 0 = the device's default rate; resampled to 16000 Hz",
                                    units="Hz", low=0, high=384000)
    channel_map: tuple = param((-1,), "device / multichannel-wav channel of each participant (0-based), e.g. "
                               "[0, 1]; [-1] = participant i reads channel i", low=-1, high=255)
    wav_files: tuple = param(("",), "source wav: one mono file per participant, or one multichannel file read "
                             "through channel_map (absolute paths, or relative to the node's working directory)")
    loop: bool = param(False, "source wav: start again at the end (kiosks); false = stop at the end")
    chunk_ms: float = param(20.0, "audio per published AudioFrame; smaller = lower latency, more messages. 20 "
                            "gives the second participant's frame grid (frame_phase_ms 20) a chunk end of its own: "
                            "with 40 its frames waited ~20 ms longer and were computed and rendered at the same "
                            "moment as the first's (half the messages, but no less CPU in the graph)",
                            units="ms", low=10.0, high=100.0)
    sample_format: str = param("s16le", "AudioFrame.data sample format: s16le (2 bytes/sample) or f32le (4)",
                               choices=("s16le", "f32le"))
    frame_id_suffix: str = param("mic", "AudioFrame.header.frame_id = <participant>/<suffix>")
    wait_for_subscribers: int = param(0, "source wav: before playing, wait until every participant's audio topic "
                                      "has this many matched subscriptions (or wait_timeout_s passes), so no "
                                      "listener misses the start of the recording; 0 = play at once", low=0,
                                      high=1000)
    wait_timeout_s: float = param(15.0, "longest wait for wait_for_subscribers", units="s", low=0.0, high=3600.0)

    def __post_init__(self):
        for p in self.participants:
            check_participant_id(p)
        if len(set(self.participants)) != len(self.participants):
            raise ValueError(f"participants must be distinct ids, got {list(self.participants)}")

    @property
    def chunk_samples(self) -> int:
        return int(round(self.chunk_ms * AUDIO_RATE / 1000.0))


class CaptureStage:
    def __init__(self, cfg: CaptureConfig, now_ns, emit, on_end=None):
        """on_end(): a wav source without loop reached its end."""
        self.cfg, self.emit, self.on_end = cfg, emit, on_end
        n = len(cfg.participants)
        if cfg.source == "device":
            self.source = DeviceSource(cfg.device, n, cfg.channel_map, cfg.chunk_samples, cfg.device_sample_rate,
                                       now_ns, self._on_chunk)
        else:
            self.source = WavSource(list(cfg.wav_files), n, cfg.channel_map, cfg.chunk_samples, cfg.loop, now_ns,
                                    self._on_chunk, on_end=self._ended)
        self._lock = threading.Lock()
        self._level = {p: [0.0, 0, 0.0] for p in cfg.participants}   # sum of squares, samples, peak since report
        self.rate = health.RateCheck("chunk_rate_hz", 1000.0 / cfg.chunk_ms)
        self._reported = (0, 0)                                         # overruns, reanchors at the last report
        self.running = False

    def describe(self) -> dict:
        return self.source.describe()

    def start(self) -> None:
        self.source.start()
        self.running = True

    def stop(self) -> None:
        self.running = False
        self.source.stop()

    def _ended(self) -> None:
        self.running = False
        if self.on_end is not None:
            self.on_end()

    def _on_chunk(self, block: np.ndarray, stamp_ns: int) -> None:
        with self._lock:
            for i, pid in enumerate(self.cfg.participants):
                x = block[:, i]
                lv = self._level[pid]
                lv[0] += float(np.dot(x, x))
                lv[1] += x.shape[0]
                lv[2] = max(lv[2], float(np.abs(x).max()) if x.size else 0.0)
        self.rate.tick()
        self.emit(block, stamp_ns)

    def report(self) -> list[health.Status]:
        st = self.source.stats
        common = health.Status("")
        if self.running:
            self.rate.check(common)
        new = (st.overruns - self._reported[0], st.reanchors - self._reported[1])
        self._reported = (st.overruns, st.reanchors)
        if new[0] or new[1]:
            common.add(health.WARN, f"lost audio: {new[0]} overruns, {new[1]} clock re-anchors")
        hw = self.describe().get("device", "wav")
        out = []
        for pid in self.cfg.participants:
            with self._lock:
                ss, n, peak = self._level[pid]
                self._level[pid] = [0.0, 0, 0.0]
            s = health.Status(pid, common.level, common.message, dict(common.values), hw)
            s.values.update({"sample_rate_hz": float(AUDIO_RATE), "overruns": st.overruns,
                             "clock_reanchors": st.reanchors,
                             "level_rms_dbfs": 10 * math.log10(ss / n + 1e-12) if n else -120.0,
                             "level_peak_dbfs": 20 * math.log10(peak + 1e-12)})
            out.append(s)
        return out
