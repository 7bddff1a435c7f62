"""Speech from more than one synthesizer, each with exact phone timings, all returning ``espeak.Utterance``.

Engines (``Voice.engine``):
  espeak-ng  libespeak-ng through ctypes (``espeak.py``): phoneme events with sample positions.
  festival   Festival 2.5 (Debian ``festival`` + ``festvox-kallpc16k`` + ``festvox-us-slt-hts``), one persistent
             ``festival --pipe`` process per voice; the phone end times come from the utterance's Segment
             relation (the durations the waveform was generated with).
  flite      Flite 2.2 (Debian ``flite``), one process per utterance with ``-psdur`` (phone end times).
Festival and Flite use the CMU/radio phone set; phones are mapped to the espeak mnemonics that ``visemes`` knows
(``CMU_TO_ESPEAK``), so the motion targets are built the same way for every engine. Speaking rate: espeak-ng takes
words/min; Festival and Flite stretch durations by ``REFERENCE_RATE / rate``. ``Voice.pitch`` / ``pitch_range``
only apply to espeak-ng. All output is 16 kHz float32; every engine is deterministic for a given text and voice.

``HELD_OUT_ENGINE`` (flite, voices ``awb`` and ``rms``: other speakers than any training voice) never appears in
training data; the evaluation reports on it separately.
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from rsatalker_ros.audio.ring_buffer import resample
from rsatalker_ros.audio.wav_io import read_wav
from rsatalker_ros.data.espeak import Phoneme, Utterance, Voice, synthesize as espeak_synthesize
from rsatalker_ros.motion.layout import AUDIO_RATE

ENGINES = ("espeak-ng", "festival", "flite")
TRAINING_ENGINES = ("espeak-ng", "festival")
HELD_OUT_ENGINE = "flite"
FESTIVAL_VOICES = ("kal_diphone", "cmu_us_slt_arctic_hts")
FLITE_VOICES = ("awb", "rms")
REFERENCE_RATE = 165          # words/min that Festival and Flite speak at duration stretch 1

CMU_TO_ESPEAK = {
    "aa": "A:", "ae": "a", "ah": "V", "ao": "O:", "aw": "aU", "ax": "@", "axr": "3", "ay": "aI", "ch": "tS",
    "dh": "D", "dx": "t#", "eh": "E", "el": "@L", "em": "m", "en": "n", "er": "3:", "ey": "eI", "hh": "h",
    "hv": "h", "ih": "I", "iy": "i:", "jh": "dZ", "ng": "N", "nx": "n", "ow": "oU", "oy": "OI", "sh": "S",
    "th": "T", "uh": "U", "uw": "u:", "y": "j", "zh": "Z", "pau": "_", "h#": "_", "brth": "_",
    **{p: p for p in ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z")},
}


def _check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected non-empty text to speak, got {text!r}")
    if len(text) > 2000:
        raise ValueError(f"text to speak must be at most 2000 characters, got {len(text)}")
    return text


def _stretch(voice: Voice) -> float:
    if not 80 <= voice.rate <= 450:
        raise ValueError(f"voice rate must lie in 80..450 words per minute, got {voice.rate}")
    return REFERENCE_RATE / float(voice.rate)


def utterance_from_phone_ends(text: str, voice: Voice, wave: np.ndarray, rate: int,
                              phones: list[tuple[str, float]]) -> Utterance:
    """A 16 kHz ``Utterance`` from a waveform at ``rate`` Hz and CMU phones with end times (s), in order."""
    wave = resample(np.asarray(wave, np.float32), rate, AUDIO_RATE) if rate != AUDIO_RATE else wave
    n = wave.shape[0]
    out, start = [], 0
    for sym, end_s in phones:
        end = int(min(n, max(0, round(end_s * AUDIO_RATE))))
        if end > start:
            out.append(Phoneme(CMU_TO_ESPEAK.get(sym, sym), start, end))
        start = max(start, end)
    words = []
    for k, p in enumerate(out):   # no word events from these engines: a word starts after each pause
        if not p.is_pause and (k == 0 or out[k - 1].is_pause):
            words.append(p.start)
    return Utterance(text, voice, wave.astype(np.float32), out, words)


class Festival:
    """One ``festival --pipe`` process per voice (line-buffered through ``stdbuf``). Use ``Festival.get()``."""

    _instance: "Festival | None" = None
    _lock = threading.Lock()
    _END = "@@RSATALKER_END"

    def __init__(self):
        if shutil.which("festival") is None or shutil.which("stdbuf") is None:
            raise RuntimeError("festival not found; install it (Debian/Ubuntu: apt install festival "
                               "festvox-kallpc16k festvox-us-slt-hts)")
        self.procs: dict[str, subprocess.Popen] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="rsatalker_festival_"))
        atexit.register(self.close)

    @classmethod
    def get(cls) -> "Festival":
        with cls._lock:
            if cls._instance is None:
                cls._instance = Festival()
            return cls._instance

    def _proc(self, name: str) -> subprocess.Popen:
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            p = subprocess.Popen(["stdbuf", "-oL", "festival", "--pipe"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
            self.procs[name] = p
            lines = self._run(p, f"(voice_{name})")
            if any("not defined" in s or "SIOD ERROR" in s for s in lines):
                raise ValueError(f"festival has no voice {name!r} (installed: {FESTIVAL_VOICES} via apt "
                                 f"festvox-kallpc16k festvox-us-slt-hts)")
        return p

    def _run(self, p: subprocess.Popen, scheme: str) -> list[str]:
        p.stdin.write(scheme + f'\n(format t "{self._END}\\n")\n')
        p.stdin.flush()
        lines = []
        while True:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError("festival exited unexpectedly: " + "".join(lines[-5:]))
            if line.strip() == self._END:
                return lines
            lines.append(line)

    def synthesize(self, text: str, voice: Voice) -> Utterance:
        text = _check_text(text)
        stretch = _stretch(voice)
        safe = re.sub(r'[\\"]', " ", text)
        with self._lock:
            p = self._proc(voice.language)
            wav = self.tmp / f"{voice.language}.wav"
            lines = self._run(p, (
                f"(Parameter.set 'Duration_Stretch {stretch:.4f})\n"
                f'(set! rsat_u (utt.synth (Utterance Text "{safe}")))\n'
                f"(utt.save.wave rsat_u \"{wav}\" 'riff)\n"
                '(mapcar (lambda (s) (format t "@@PH %s %f\\n" (item.name s) (item.feat s "end"))) '
                "(utt.relation.items rsat_u 'Segment))"))
            wave, rate = read_wav(wav)
        wave = wave.mean(axis=1)
        phones = [(ln.split()[1], float(ln.split()[2])) for ln in lines if ln.startswith("@@PH ")]
        if not phones:
            raise RuntimeError(f"festival produced no phones for {text!r}: {''.join(lines[-5:])}")
        return utterance_from_phone_ends(text, voice, wave, rate, phones)

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.stdin.close()
                p.wait(timeout=10)
        self.procs = {}
        shutil.rmtree(self.tmp, ignore_errors=True)


def flite_synthesize(text: str, voice: Voice) -> Utterance:
    """Speak ``text`` with Flite voice ``voice.language`` (e.g. "awb", "rms")."""
    text = _check_text(text)
    if shutil.which("flite") is None:
        raise RuntimeError("flite not found; install it (Debian/Ubuntu: apt install flite)")
    stretch = _stretch(voice)
    with tempfile.TemporaryDirectory(prefix="rsatalker_flite_") as tmp:
        wav = Path(tmp) / "u.wav"
        r = subprocess.run(["flite", "-voice", voice.language, "-psdur", "--setf", f"duration_stretch={stretch:.4f}",
                            "-t", text, "-o", str(wav)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or not wav.is_file():
            raise ValueError(f"flite failed for voice {voice.language!r} (see `flite -lv`): {r.stderr.strip()}")
        wave, rate = read_wav(wav)
    wave = wave.mean(axis=1)
    phones = []
    for tok in r.stdout.split():
        sym, _, end = tok.rpartition(":")
        try:
            phones.append((sym, float(end)))
        except ValueError:
            continue
    if not phones:
        raise RuntimeError(f"flite printed no phone timings for {text!r}")
    return utterance_from_phone_ends(text, voice, wave, rate, phones)


def synthesize(text: str, voice: Voice = Voice()) -> Utterance:
    """Speak ``text`` with ``voice`` on its engine: 16 kHz audio and phone segments in espeak mnemonics."""
    if voice.engine == "espeak-ng":
        return espeak_synthesize(text, voice)
    if voice.engine == "festival":
        return Festival.get().synthesize(text, voice)
    if voice.engine == "flite":
        return flite_synthesize(text, voice)
    raise ValueError(f"unknown speech engine {voice.engine!r}; expected one of {ENGINES}")


def engine_available(engine: str) -> bool:
    if engine == "espeak-ng":
        from rsatalker_ros.data.espeak import espeak_available
        return espeak_available()
    return shutil.which({"festival": "festival", "flite": "flite"}.get(engine, engine)) is not None


__all__ = ["ENGINES", "TRAINING_ENGINES", "HELD_OUT_ENGINE", "FESTIVAL_VOICES", "FLITE_VOICES", "CMU_TO_ESPEAK",
           "Festival", "flite_synthesize", "synthesize", "engine_available", "utterance_from_phone_ends"]
