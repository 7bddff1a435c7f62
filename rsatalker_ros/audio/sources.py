"""Where audio_capture's samples come from: a PortAudio device (sounddevice) or wav files played in real time.

No rclpy here. A source delivers ``on_chunk(chunk [n, P] float32 at 16 kHz, one column per participant,
stamp_ns of chunk[0])`` from its own thread; ``now_ns()`` is the ROS clock used to stamp capture times.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rsatalker_ros.audio.ring_buffer import StreamingResampler, resample
from rsatalker_ros.audio.wav_io import read_wav
from rsatalker_ros.motion.layout import AUDIO_RATE


@dataclass
class SourceStats:
    chunks: int = 0
    samples: int = 0            # per participant, at 16 kHz
    overruns: int = 0           # device buffer overruns reported by PortAudio
    reanchors: int = 0          # times the sample clock was re-aligned to the wall clock (lost samples)
    errors: list = field(default_factory=list)


class CaptureClock:
    """Stamps of a device's chunks: the count of samples delivered since the first chunk, anchored at that chunk's
    arrival minus its duration. The count is the truth while no sample is lost, however late a starved process gets
    the chunks (a stall delivers them in a burst of callbacks, all with nearly the same arrival time).

    The clock is pulled forward to the wall clock only when samples were lost: right after the device reported an
    overflow, or when every chunk that arrived over the last ``settle_s`` of wall clock was more than ``max_late_s``
    late (a device that dropped audio silently, or runs slower than the system clock). A burst after a stall spans
    no wall-clock time and ends with chunks on time, so it never moves the clock.
    """

    def __init__(self, max_late_s: float = 0.1, settle_s: float = 0.5):
        self.max_late_ns, self.settle_ns = int(max_late_s * 1e9), int(settle_s * 1e9)
        self.reanchors = 0                               # over the clock's life, restarts included
        self.restart()

    def restart(self) -> None:
        """A new stream: its first chunk anchors the clock (a pause between streams is not lost audio)."""
        self.anchor_ns: int | None = None
        self.n_out = 0                                   # samples stamped since the anchor, at 16 kHz
        self._late: deque = deque()                      # (arrival_ns, lateness_ns) over the last settle_s

    def stamp(self, n: int, end_arrival_ns: int, device_frames: int, device_rate: int, lost: bool = False) -> int:
        """Stamp [ns] of the first of ``n`` new 16 kHz samples, from a device block of ``device_frames`` frames at
        ``device_rate`` Hz whose callback ran at ``end_arrival_ns``; ``lost``: the device reported an overflow."""
        first_ns = end_arrival_ns - int(device_frames * 1e9 / device_rate)
        if self.anchor_ns is None:
            self.anchor_ns = first_ns
        stamp = self.anchor_ns + int(self.n_out * 1e9 / AUDIO_RATE)
        late = first_ns - stamp
        self._late.append((end_arrival_ns, late))
        while self._late[0][0] < end_arrival_ns - self.settle_ns:
            self._late.popleft()
        settled = self._late[0][0] <= end_arrival_ns - self.settle_ns // 2
        if late > self.max_late_ns and (lost or (settled and min(x for _, x in self._late) > self.max_late_ns)):
            self.anchor_ns += late
            stamp = first_ns
            self._late.clear()
            self.reanchors += 1
        self.n_out += n
        return stamp


def list_input_devices() -> list[str]:
    """'index: name (channels ch, rate Hz)' for every PortAudio device with inputs."""
    import sounddevice as sd
    out = []
    for i, d in enumerate(sd.query_devices()):
        if d["max_input_channels"] > 0:
            out.append(f"{i}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)")
    return out


def find_input_device(spec: str) -> int | None:
    """Device index for ``spec``: '' = the default input, an index, an exact name, or a unique name substring.
    Raises ValueError that lists the input devices found when nothing (or more than one) matches."""
    import sounddevice as sd
    devices = list(sd.query_devices())
    found = list_input_devices()
    listing = "; ".join(found) if found else "none (no PortAudio input device on this machine)"
    spec = str(spec).strip()
    if spec == "":
        try:
            idx = sd.default.device[0]
        except Exception:  # noqa: BLE001 - sounddevice raises various errors without devices
            idx = -1
        if idx is None or idx < 0 or idx >= len(devices) or devices[idx]["max_input_channels"] < 1:
            raise ValueError(f"no default audio input device; input devices found: {listing}")
        return int(idx)
    if spec.lstrip("-").isdigit():
        idx = int(spec)
        if 0 <= idx < len(devices) and devices[idx]["max_input_channels"] > 0:
            return idx
        raise ValueError(f"audio device index {idx} is not an input device; input devices found: {listing}")
    exact = [i for i, d in enumerate(devices) if d["name"] == spec and d["max_input_channels"] > 0]
    if exact:
        return exact[0]
    sub = [i for i, d in enumerate(devices) if spec.lower() in d["name"].lower() and d["max_input_channels"] > 0]
    if len(sub) == 1:
        return sub[0]
    why = "matches several" if sub else "matches no"
    raise ValueError(f"audio device {spec!r} {why} input device; input devices found: {listing}")


def _check_map(channel_map, n_participants: int, n_channels: int, what: str) -> list[int]:
    cmap = list(range(n_participants)) if list(channel_map) in ([], [-1]) else [int(c) for c in channel_map]
    if len(cmap) != n_participants:
        raise ValueError(f"channel_map has {len(cmap)} entries; expected one channel per participant "
                         f"({n_participants})")
    bad = [c for c in cmap if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"channel_map names channel(s) {bad}; {what} has channels 0..{n_channels - 1}")
    return cmap


class DeviceSource:
    """A PortAudio input stream: ``channel_map[i]`` is participant i's channel; native rate -> 16 kHz."""

    def __init__(self, device: str, n_participants: int, channel_map, chunk: int, rate: int, now_ns, on_chunk):
        import sounddevice as sd
        self.sd = sd
        self.index = find_input_device(device)
        info = sd.query_devices(self.index)
        self.name = info["name"]
        self.rate = int(rate) if rate else int(info["default_samplerate"])
        self.channels_available = int(info["max_input_channels"])
        self.cmap = _check_map(channel_map, n_participants, self.channels_available, f"device {self.name!r}")
        self.channels = max(self.cmap) + 1
        self.block = max(1, int(round(chunk * self.rate / AUDIO_RATE)))   # device frames per callback
        self.now_ns, self.on_chunk = now_ns, on_chunk
        self._rs = [StreamingResampler(self.rate, AUDIO_RATE) for _ in self.cmap]
        self.stats = SourceStats()
        self._q: queue.Queue = queue.Queue(maxsize=256)
        self._stream = None
        self._worker = None
        self._stop = threading.Event()
        self._clock = CaptureClock()
        self._lost = False                # an overflow since the last chunk was stamped

    def describe(self) -> dict:
        return {"source": "device", "device": self.name, "device_index": self.index, "device_rate": self.rate,
                "device_channels": self.channels, "channel_map": self.cmap}

    def _callback(self, indata, frames, time_info, status):  # PortAudio thread: copy and hand over
        if status and status.input_overflow:
            self.stats.overruns += 1
            self._lost = True
        try:
            self._q.put_nowait((indata.copy(), self.now_ns()))
        except queue.Full:
            self.stats.overruns += 1
            self._lost = True

    def _work(self, stop: threading.Event):
        while not stop.is_set():
            try:
                data, t_ns = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            x = data.astype(np.float32) / 32768.0 if data.dtype == np.int16 else data.astype(np.float32)
            cols = [self._rs[i].push(x[:, c]) for i, c in enumerate(self.cmap)]
            n = min(c.shape[0] for c in cols)
            if n == 0:
                continue
            lost, self._lost = self._lost, False
            stamp = self._clock.stamp(n, t_ns, x.shape[0], self.rate, lost)
            self.stats.reanchors = self._clock.reanchors
            self.stats.chunks += 1
            self.stats.samples += n
            self.on_chunk(np.stack([c[:n] for c in cols], 1), stamp)

    def start(self):
        if self._stream is not None:      # already capturing: one stream and one worker only
            return
        self._stop = threading.Event()
        self._clock.restart()             # a restarted stream's first chunk anchors the clock again
        self._lost = False
        self._stream = self.sd.InputStream(device=self.index, samplerate=self.rate, channels=self.channels,
                                           dtype="int16", blocksize=self.block, callback=self._callback)
        self._stream.start()
        self._worker = threading.Thread(target=self._work, args=(self._stop,), name="audio_capture_worker",
                                        daemon=True)
        self._worker.start()

    def stop(self):
        self._stop.set()
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        if self._worker is not None:
            self._worker.join(timeout=2.0)
            self._worker = None


class WavSource:
    """Wav files played in real time (kiosks, demos): one mono file per participant, or one multichannel file with
    ``channel_map``. Files are resampled to 16 kHz; shorter ones are padded with silence; ``loop`` restarts."""

    def __init__(self, files, n_participants: int, channel_map, chunk: int, loop: bool, now_ns, on_chunk,
                 on_end=None):
        files = [f for f in files if f]
        if len(files) not in (1, n_participants):
            raise ValueError(f"wav_files has {len(files)} file(s); expected one per participant ({n_participants}) "
                             "or one multichannel file")
        cols = []
        default_map = list(channel_map) in ([], [-1])
        if len(files) == n_participants and (default_map or n_participants > 1):
            for f in files:                                   # one file per participant, mixed to mono
                x, rate = read_wav(f)
                cols.append(resample(x.mean(axis=1), rate, AUDIO_RATE))
        else:                                                 # one multichannel file, one channel each
            x, rate = read_wav(files[0])
            cmap = _check_map(channel_map, n_participants, x.shape[1], f"wav file {files[0]!r}")
            cols = [resample(x[:, c], rate, AUDIO_RATE) for c in cmap]
        n = max(c.shape[0] for c in cols)
        self.audio = np.stack([np.pad(c, (0, n - c.shape[0])) for c in cols], 1).astype(np.float32)
        self.files, self.chunk, self.loop = files, int(chunk), bool(loop)
        self.now_ns, self.on_chunk, self.on_end = now_ns, on_chunk, on_end
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._thread = None

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / AUDIO_RATE

    def describe(self) -> dict:
        return {"source": "wav", "files": self.files, "seconds": round(self.seconds, 3), "loop": self.loop}

    def _play(self, stop: threading.Event):
        t0 = self.now_ns()
        mono0 = time.monotonic()
        k = 0
        n = self.audio.shape[0]
        while not stop.is_set():
            i0 = (k * self.chunk) % n if self.loop else k * self.chunk
            if not self.loop and i0 >= n:
                if self.on_end:
                    self.on_end()
                return
            idx = (np.arange(i0, i0 + self.chunk) % n) if self.loop else np.arange(i0, min(i0 + self.chunk, n))
            block = self.audio[idx]
            # the chunk is "captured" once its last sample has played: wait until then, on the monotonic clock
            due = mono0 + (k * self.chunk + block.shape[0]) / AUDIO_RATE
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            self.stats.chunks += 1
            self.stats.samples += block.shape[0]
            self.on_chunk(block, t0 + int(k * self.chunk * 1e9 / AUDIO_RATE))
            k += 1

    def start(self):
        """Play from the start in one thread; a no-op while playing (a second thread would double the frames)."""
        if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
            return
        self.stop()
        self._stop = threading.Event()   # each playback its own: a thread being stopped is never revived
        self._thread = threading.Thread(target=self._play, args=(self._stop,), name="audio_capture_wav", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()           # the playback thread checks the event at least once per chunk
        self._thread = None
