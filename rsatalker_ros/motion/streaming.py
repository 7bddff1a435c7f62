"""Live motion from live audio: the one way to run the motion model on a stream.

``StreamingMotion`` (one participant, what the ROS motion node wraps) and ``StreamingDyad`` (both participants,
used by evaluation and demos) take 16 kHz float audio in chunks of any size and return each 25 fps motion frame as
soon as its look-ahead has arrived (``lookahead_ms`` of audio past the end of the frame, feature extraction
included: 37.5 ms with the shipped model). Inside, both participants of the dyad are predicted together, each
conditioned on the other's *predicted* past motion, ``motion_delay`` frames at a time. The numbers equal the batch
model (``SocialMotionModel.forward``) run on the whole audio with the partner motion that the stream predicted.
The stream runs in float32 numpy (``LiveSpeechEncoder`` and ``LiveCore``, copies of the model's weights taken when
the stream is made): a live step is one or two frames, where torch's cost per small op dominates.

No input can poison the stream: samples are clamped to [-1, 1] (NaN -> 0) before feature extraction, and if the
model ever returns a non-finite frame anyway, that frame is replaced by the neutral face (zeros) and the model's
state is reset in place (frame numbering continues), so the next frames are finite again (``recoveries`` counts
this).
"""

import numpy as np
import torch

from rsatalker_ros.motion.features import FrameFeatureStream
from rsatalker_ros.motion.config import NEUTRAL_QUERY
from rsatalker_ros.motion.layout import AUDIO_RATE, SAMPLES_PER_FRAME
from rsatalker_ros.motion.live_core import LiveCore, LiveSpeechEncoder
from rsatalker_ros.motion.model import SocialMotionModel
from rsatalker_ros.social.relation import Relation


def _as_samples(x, what: str) -> np.ndarray:
    """[n] float samples -> float32 numpy copy clamped to [-1, 1] (NaN -> 0, +-inf -> +-1)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected mono 16 kHz samples of shape [n], got shape {x.shape}")
    if x.dtype.kind != "f":                       # (np.issubdtype(x.dtype, np.floating), without its Python cost)
        raise ValueError(f"{what}: expected float samples in [-1, 1], got dtype {x.dtype} (convert int16 with "
                         f"/32768)")
    x = x.astype(np.float32)   # a copy: the caller's array is left as it was
    if not np.isfinite(x).all():                  # (the check is cheaper than nan_to_num on every chunk)
        np.nan_to_num(x, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    np.maximum(x, -1.0, out=x)                    # np.clip(x, -1, 1): the ufuncs without clip's Python wrapper
    np.minimum(x, 1.0, out=x)
    return x


def query_indices_for(relation: Relation | None, a: str, b: str) -> tuple[int, int]:
    """Query-set indices of participants a and b (NEUTRAL_QUERY for both when the relationship is unknown)."""
    if relation is None:
        return NEUTRAL_QUERY, NEUTRAL_QUERY
    if relation.senior and relation.senior not in (a, b):
        raise ValueError(f"the relationship's senior participant {relation.senior!r} is neither {a!r} nor {b!r}")
    return relation.query_index_for(a), relation.query_index_for(b)


class StreamingDyad:
    """Both participants of a conversation, live. ``push(samples_a, samples_b) -> (frames_a, frames_b)``.

    Each frames list holds (frame_index, motion [D] float32 numpy) in order; frame_index counts 40 ms frames from
    the start of the stream (or the last ``reset``/``flush``). Audio chunks of the two participants may differ
    in length: audio is consumed as far as both streams have arrived. ``relation`` None = unknown relationship
    (neutral queries).
    """

    def __init__(self, model: SocialMotionModel, relation: Relation | None, participant_a: str = "a",
                 participant_b: str = "b"):
        if participant_a == participant_b:
            raise ValueError(f"the two participants need different ids, got {participant_a!r} twice")
        self.model = model.eval()
        self.cfg = model.cfg
        # model.encode_audio and model.core in numpy: the same frames at a fraction of torch's per-op cost
        self._speech = LiveSpeechEncoder(model, 2)
        self._core = LiveCore(model)
        self.participants = (participant_a, participant_b)
        self.set_relation(relation)
        self.recoveries = 0     # times a non-finite output reset the model state (see _recover)
        self.reset()

    @property
    def lookahead_ms(self) -> float:
        return self.cfg.lookahead_ms

    @property
    def samples_to_next_frame(self) -> int:
        """Samples of both participants still to push before ``push`` returns the next frame (<= 0: due now).
        Frame k comes out once 640 (k + 1) samples plus the look-ahead have been pushed, however they were chunked,
        so a caller may hold back audio until this many samples are there and push them at once: the same frames
        at the same moment, with fewer calls."""
        lookahead = int(round(self.cfg.lookahead_ms * AUDIO_RATE / 1000.0))
        return SAMPLES_PER_FRAME * (self._next_frame + 1) + lookahead - self._samples_in

    def set_relation(self, relation: Relation | None) -> None:
        """Change the relationship live (None = unknown); applies from the next computed frame on."""
        self._query_list = list(query_indices_for(relation, *self.participants))
        self.relation = relation

    @property
    def queries(self) -> torch.Tensor:
        """[2] the query-set indices of participants a and b (for the torch model)."""
        return torch.tensor(self._query_list)

    def reset(self) -> None:
        """Start a new conversation: forget all audio and motion so far."""
        self._feat = FrameFeatureStream(channels=2)                 # both participants in one pass
        self._pending = [np.zeros(0, np.float32), np.zeros(0, np.float32)]
        self._speech.reset(2)
        self._enc = np.zeros((2, 0, self.cfg.d_model), np.float32)
        self._core.reset()
        D, delay = self.cfg.motion_dim, self.cfg.motion_delay
        self._hist = np.zeros((2, delay, D), np.float32)           # last `delay` predicted frames per participant
        self._hist_known = np.zeros(delay, bool)
        self._next_frame = 0
        self._samples_in = 0                 # samples of both participants that went into the features

    def _recover(self) -> None:
        """Reset the model's state in place after a non-finite output: zero the audio encoder's context (same
        length, so frame numbering is unchanged), empty the attention caches, forget the partner's past motion."""
        self.recoveries += 1
        self._speech.clear()
        self._enc = np.nan_to_num(self._enc, nan=0.0, posinf=0.0, neginf=0.0)
        self._core.reset()
        self._hist = np.zeros_like(self._hist)
        self._hist_known = np.zeros_like(self._hist_known)

    def push(self, samples_a, samples_b=None):
        """samples_a, samples_b: [n] float32 16 kHz (b None = silence as long as a). Returns (frames_a, frames_b)."""
        a = _as_samples(samples_a, "samples_a")
        b = np.zeros_like(a) if samples_b is None else _as_samples(samples_b, "samples_b")
        self._pending = [np.concatenate([self._pending[0], a]), np.concatenate([self._pending[1], b])]
        n = min(self._pending[0].shape[0], self._pending[1].shape[0])
        if n == 0:
            return [], []
        feats = self._feat.push(np.stack([p[:n] for p in self._pending]))
        self._pending = [p[n:] for p in self._pending]
        self._samples_in += n
        return self._advance(feats, final=False)

    def flush(self):
        """End of the conversation: returns the frames still waiting for look-ahead (silence assumed after),
        then resets. Audio past the last whole 40 ms frame is dropped."""
        n = min(self._pending[0].shape[0], self._pending[1].shape[0])
        feats = np.concatenate([self._feat.push(np.stack([p[:n] for p in self._pending])), self._feat.flush()], 1)
        out = self._advance(feats, final=True)
        self.reset()
        return out

    def _advance(self, feats: np.ndarray, final: bool):
        """feats: [2, k, 320] new feature frames of both participants."""
        enc = [self._enc]
        if feats.shape[1]:
            enc.append(self._speech(feats))
        if final:
            enc.append(self._speech.flush())
        self._enc = np.concatenate(enc, 1) if len(enc) > 1 else self._enc
        out_a, out_b = [], []
        delay = self.cfg.motion_delay
        queries = self._query_list
        while self._enc.shape[1]:
            k = min(delay, self._enc.shape[1])
            a = self._enc[:, :k]
            self._enc = self._enc[:, k:]
            # participant a hears a as own audio and b as partner; b the other way round; each sees the
            # other's predicted motion `delay` frames late
            past = self._hist[::-1, :k]
            known = self._hist_known[None, :k].repeat(2, 0)                       # [2, k]
            motion = self._core(a, a[::-1], past, known, queries)                  # [2, k, D]
            if np.isfinite(motion).all():
                self._hist = np.concatenate([self._hist, motion], 1)[:, -delay:]
                self._hist_known = np.concatenate([self._hist_known, np.ones(k, bool)])[-delay:]
            else:
                motion = np.zeros_like(motion)         # the neutral face for these frames
                self._recover()
            for i in range(k):
                out_a.append((self._next_frame + i, motion[0, i].copy()))
                out_b.append((self._next_frame + i, motion[1, i].copy()))
            self._next_frame += k
        return out_a, out_b


class StreamingMotion:
    """Live motion of one participant: ``push(own_samples, partner_samples) -> [(frame_index, motion [D])]``.

    own_samples / partner_samples: 16 kHz mono float32 chunks of any size (partner None = silence). A frame is
    returned once ``lookahead_ms`` of audio after it has arrived. Speaking or listening is heard from the audio;
    the partner's motion is the model's own live prediction of it. ``relation`` None = unknown (neutral).
    """

    def __init__(self, model: SocialMotionModel, relation: Relation | None, participant: str,
                 partner: str = "partner"):
        self.participant, self.partner = participant, partner
        self._dyad = StreamingDyad(model, relation, participant, partner)
        self.last_partner_frames: list = []   # the partner frames predicted by the last push (for inspection)

    @property
    def lookahead_ms(self) -> float:
        return self._dyad.lookahead_ms

    @property
    def samples_to_next_frame(self) -> int:
        """Samples of both streams still to push before ``push`` returns the next frame (StreamingDyad's)."""
        return self._dyad.samples_to_next_frame

    @property
    def motion_dim(self) -> int:
        return self._dyad.cfg.motion_dim

    @property
    def recoveries(self) -> int:
        """Times a non-finite output reset the model state (a diagnostics counter)."""
        return self._dyad.recoveries

    def set_relation(self, relation: Relation | None) -> None:
        """Change the relationship live (None = unknown); applies from the next computed frame on."""
        self._dyad.set_relation(relation)

    def push(self, own_samples, partner_samples=None) -> list:
        own, self.last_partner_frames = self._dyad.push(own_samples, partner_samples)
        return own

    def flush(self) -> list:
        own, self.last_partner_frames = self._dyad.flush()
        return own

    def reset(self) -> None:
        self._dyad.reset()
        self.last_partner_frames = []
