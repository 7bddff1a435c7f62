"""Per-relationship behaviour priors of the synthetic conversation generator.

One ``SocialPriors`` per (kinship, direction) -- the 6 query sets of the motion model. They are *our documented
choice*, loosely following the social-signal literature (listeners in a subordinate role backchannel and nod more
and smile politely -- mouth-only smiles; superiors gaze less at the partner while listening, nod and smile less;
kin smile more warmly -- Duchenne smiles with cheek and eye squint -- move the head more freely and overlap turns
more; subordinates leave longer gaps before taking the turn and rarely interrupt). They are not fitted to data.

Units: rates per minute, angles in radians, times in seconds, smile amplitudes in ARKit weight (0..1).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsatalker_ros.social.relation import Direction, Kinship, Relation


@dataclass(frozen=True)
class SocialPriors:
    # listening
    nod_rate: float               # spontaneous nods per minute while listening
    backchannel_prob: float       # probability of a nod at each pause of the partner (>= 0.2 s)
    verbal_backchannel_prob: float  # probability of a spoken "mm-hmm"/"yeah" at a partner's pause (>= 0.35 s)
    nod_amplitude: float          # neck pitch of one nod (rad)
    nod_cycles: float             # mean number of down-up cycles per nod
    listen_smile_rate: float      # smiles per minute while listening
    smile_amplitude: float        # mouthSmile weight of a smile
    duchenne: float               # 0..1: how much cheekSquint/eyeSquint join a smile (warmth)
    baseline_smile: float         # resting mouthSmile weight
    listen_gaze_at_partner: float  # fraction of listening time looking at the partner
    head_std: float               # free head motion, std of neck rotation (rad)
    blink_rate: float             # blinks per minute
    # speaking
    speak_gaze_at_partner: float  # fraction of speaking time looking at the partner
    speak_smile_rate: float       # smiles per minute while speaking
    speak_head_std: float         # speech-related head motion (rad)
    brow_raise_prob: float        # probability of a brow raise on an accented word
    # turn taking (applies when this participant takes the turn)
    gap_mean: float               # mean silence before taking the turn (s)
    gap_std: float
    overlap_prob: float           # probability of starting before the partner has finished
    turn_sentences: float         # mean sentences per turn


PRIORS: dict[tuple[Kinship, Direction], SocialPriors] = {
    # kin, equal (siblings, cousins): warm, animated, overlapping
    (Kinship.BLOOD, Direction.PEER): SocialPriors(
        nod_rate=5.0, backchannel_prob=0.45, verbal_backchannel_prob=0.25, nod_amplitude=0.09, nod_cycles=2.0,
        listen_smile_rate=4.0, smile_amplitude=0.55, duchenne=0.85, baseline_smile=0.08,
        listen_gaze_at_partner=0.62, head_std=0.055, blink_rate=17.0,
        speak_gaze_at_partner=0.50, speak_smile_rate=3.0, speak_head_std=0.07, brow_raise_prob=0.35,
        gap_mean=0.15, gap_std=0.15, overlap_prob=0.30, turn_sentences=1.8),
    # kin, this participant senior (parent, grandparent)
    (Kinship.BLOOD, Direction.SENIOR): SocialPriors(
        nod_rate=2.5, backchannel_prob=0.25, verbal_backchannel_prob=0.15, nod_amplitude=0.07, nod_cycles=1.5,
        listen_smile_rate=3.0, smile_amplitude=0.50, duchenne=0.75, baseline_smile=0.06,
        listen_gaze_at_partner=0.50, head_std=0.045, blink_rate=14.0,
        speak_gaze_at_partner=0.55, speak_smile_rate=2.0, speak_head_std=0.06, brow_raise_prob=0.30,
        gap_mean=0.20, gap_std=0.15, overlap_prob=0.25, turn_sentences=2.2),
    # kin, this participant junior (child, grandchild)
    (Kinship.BLOOD, Direction.JUNIOR): SocialPriors(
        nod_rate=6.0, backchannel_prob=0.55, verbal_backchannel_prob=0.25, nod_amplitude=0.10, nod_cycles=2.0,
        listen_smile_rate=3.5, smile_amplitude=0.50, duchenne=0.65, baseline_smile=0.06,
        listen_gaze_at_partner=0.70, head_std=0.060, blink_rate=18.0,
        speak_gaze_at_partner=0.45, speak_smile_rate=2.5, speak_head_std=0.065, brow_raise_prob=0.35,
        gap_mean=0.25, gap_std=0.15, overlap_prob=0.15, turn_sentences=1.5),
    # non-kin, equal (friends, colleagues): friendly but more restrained
    (Kinship.NON_BLOOD, Direction.PEER): SocialPriors(
        nod_rate=4.0, backchannel_prob=0.45, verbal_backchannel_prob=0.20, nod_amplitude=0.08, nod_cycles=1.8,
        listen_smile_rate=2.5, smile_amplitude=0.40, duchenne=0.45, baseline_smile=0.03,
        listen_gaze_at_partner=0.65, head_std=0.040, blink_rate=16.0,
        speak_gaze_at_partner=0.45, speak_smile_rate=1.8, speak_head_std=0.055, brow_raise_prob=0.30,
        gap_mean=0.25, gap_std=0.15, overlap_prob=0.12, turn_sentences=1.7),
    # non-kin, this participant senior (boss, teacher): few nods and smiles, looks away more while listening
    (Kinship.NON_BLOOD, Direction.SENIOR): SocialPriors(
        nod_rate=1.5, backchannel_prob=0.15, verbal_backchannel_prob=0.10, nod_amplitude=0.05, nod_cycles=1.3,
        listen_smile_rate=1.0, smile_amplitude=0.30, duchenne=0.30, baseline_smile=0.0,
        listen_gaze_at_partner=0.40, head_std=0.030, blink_rate=13.0,
        speak_gaze_at_partner=0.60, speak_smile_rate=0.8, speak_head_std=0.050, brow_raise_prob=0.20,
        gap_mean=0.30, gap_std=0.20, overlap_prob=0.12, turn_sentences=2.4),
    # non-kin, this participant junior (employee, student): frequent backchannels, polite (mouth-only) smiles,
    # attentive gaze, restrained head motion, long gaps, hardly interrupts
    (Kinship.NON_BLOOD, Direction.JUNIOR): SocialPriors(
        nod_rate=7.0, backchannel_prob=0.70, verbal_backchannel_prob=0.30, nod_amplitude=0.08, nod_cycles=1.6,
        listen_smile_rate=3.0, smile_amplitude=0.35, duchenne=0.10, baseline_smile=0.04,
        listen_gaze_at_partner=0.80, head_std=0.025, blink_rate=20.0,
        speak_gaze_at_partner=0.35, speak_smile_rate=1.5, speak_head_std=0.040, brow_raise_prob=0.25,
        gap_mean=0.50, gap_std=0.20, overlap_prob=0.03, turn_sentences=1.3),
}


def priors_for(relation: Relation, participant: str) -> SocialPriors:
    """The priors of ``participant`` under ``relation`` (by kinship and the participant's direction)."""
    return PRIORS[(relation.kinship, relation.direction_for(participant))]


__all__ = ["SocialPriors", "PRIORS", "priors_for"]
