"""Speech with exact phoneme timings from libespeak-ng (ctypes; Debian package libespeak-ng1).

libespeak-ng is initialised with AUDIO_OUTPUT_SYNCHRONOUS and espeakINITIALIZE_PHONEME_EVENTS; the synth callback
receives the audio (22050 Hz s16) and a list of events, each carrying the sample index where it happens. Phoneme
events give the espeak phoneme mnemonic (e.g. "h", "@", "oU", "_:" for a pause). We resample to 16 kHz and map the
indices to 16 kHz samples. The library has global state: all calls go through one ``Espeak`` instance under a lock.
That state also carries over between utterances (a few samples of timing jitter, the leading pause), so the same
sequence of calls in a fresh process gives identical audio, while one utterance repeated alone may differ slightly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field

import numpy as np

from rsatalker_ros.audio.ring_buffer import resample
from rsatalker_ros.motion.layout import AUDIO_RATE

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_EV_LIST_TERMINATED, _EV_WORD, _EV_SENTENCE, _EV_END, _EV_MSG_TERMINATED, _EV_PHONEME = 0, 1, 2, 5, 6, 7
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_WORDGAP = 1, 2, 3, 4, 7
_CHARS_UTF8 = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

PAUSE_SYMBOLS = frozenset({"_", "_:", "_!", "_^", "_|", "||", "|"})


@dataclass(frozen=True)
class Voice:
    """A voice: language voice + variant, speaking rate (words/min), pitch and pitch range (0..100).

    ``engine`` "espeak-ng" (this module) or another synthesizer of ``synthesizers.py``; for those ``language``
    names the engine's voice (e.g. "kal_diphone" for festival, "awb" for flite) and only ``rate`` applies."""
    language: str = "en-us"
    variant: str = ""          # "f1".."f5", "m1".."m7", "" for the language default
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100
    engine: str = "espeak-ng"

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


@dataclass
class Phoneme:
    symbol: str     # espeak mnemonic; pauses start with "_"
    start: int      # first 16 kHz sample
    end: int        # one past the last sample

    @property
    def is_pause(self) -> bool:
        return self.symbol in PAUSE_SYMBOLS or self.symbol.startswith("_")


@dataclass
class Utterance:
    text: str
    voice: Voice
    wave: np.ndarray                       # [N] float32 at 16 kHz
    phonemes: list[Phoneme] = field(default_factory=list)
    word_starts: list[int] = field(default_factory=list)   # 16 kHz sample of each word start


class Espeak:
    """The process-wide libespeak-ng session. Use ``Espeak.get()``."""

    _instance: "Espeak | None" = None
    _lock = threading.Lock()

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as e:
            raise RuntimeError("libespeak-ng not found; install it (Debian/Ubuntu: apt install libespeak-ng1 "
                               "espeak-ng-data)") from e
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.rate}); is espeak-ng-data installed?")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, object]] = []
        self._cb = _CALLBACK(self._on_synth)   # keep a reference: the library holds a raw pointer
        self.lib.espeak_SetSynthCallback(self._cb)

    @classmethod
    def get(cls) -> "Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = Espeak()
            return cls._instance

    def seed(self, value: int) -> None:
        """Seed the C library's rand(), which libespeak-ng uses for its noise sources.

        Note: libespeak-ng also carries a little state from one utterance to the next (the leading pause and a
        few samples of timing), so identical output needs the identical sequence of calls in a fresh process.
        """
        ctypes.CDLL(None).srand(ctypes.c_uint(int(value) & 0xFFFFFFFF))

    def _on_synth(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            if e.type == _EV_PHONEME:
                self._events.append((e.type, e.sample, bytes(e.id.string).split(b"\0")[0].decode("ascii", "replace")))
            elif e.type in (_EV_WORD, _EV_END, _EV_MSG_TERMINATED, _EV_SENTENCE):
                self._events.append((e.type, e.sample, e.id.number))
            i += 1
        return 0

    def synthesize(self, text: str, voice: Voice = Voice()) -> Utterance:
        """Speak ``text`` with ``voice``: 16 kHz float32 audio and the phoneme segments (16 kHz sample indices)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expected non-empty text to speak, got {text!r}")
        if voice.engine != "espeak-ng":
            raise ValueError(f"voice {voice} is for engine {voice.engine!r}; use data.synthesizers.synthesize")
        for what, v in (("pitch", voice.pitch), ("pitch_range", voice.pitch_range)):
            if not 0 <= v <= 100:
                raise ValueError(f"voice {what} must lie in 0..100, got {v}")
        if not 80 <= voice.rate <= 450:
            raise ValueError(f"voice rate must lie in 80..450 words per minute, got {voice.rate}")
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice.name!r} (see `espeak-ng --voices` and "
                                 f"`espeak-ng --voices=variant`)")
            self.lib.espeak_SetParameter(_P_RATE, int(voice.rate), 0)
            self.lib.espeak_SetParameter(_P_PITCH, int(voice.pitch), 0)
            self.lib.espeak_SetParameter(_P_RANGE, int(voice.pitch_range), 0)
            self.lib.espeak_SetParameter(_P_VOLUME, int(voice.volume), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8")
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with error {err}")
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        raw = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
        wave = resample(raw, self.rate, AUDIO_RATE)
        scale = AUDIO_RATE / self.rate
        n = wave.shape[0]
        to16 = lambda s: int(min(n, max(0, round(s * scale))))  # noqa: E731
        ph_events = [(to16(s), sym) for t, s, sym in events if t == _EV_PHONEME]
        phonemes = []
        for k, (s, sym) in enumerate(ph_events):
            end = ph_events[k + 1][0] if k + 1 < len(ph_events) else n
            if end > s:
                phonemes.append(Phoneme(sym, s, end))
        words = [to16(s) for t, s, _ in events if t == _EV_WORD]
        return Utterance(text, voice, wave, phonemes, words)


def synthesize(text: str, voice: Voice = Voice()) -> Utterance:
    """Module-level shortcut for ``Espeak.get().synthesize``."""
    return Espeak.get().synthesize(text, voice)


def espeak_available() -> bool:
    try:
        Espeak.get()
        return True
    except RuntimeError:
        return False


__all__ = ["Voice", "Phoneme", "Utterance", "Espeak", "synthesize", "espeak_available", "PAUSE_SYMBOLS"]
