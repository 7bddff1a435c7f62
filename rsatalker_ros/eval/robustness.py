"""Robustness evaluation: noisy rooms, noise without speech, a synthesizer never trained on, closing lips.

Held-out data (``make_heldout``): synthetic conversations with exact phone timings (clip meta "phones"), clean, from
espeak-ng voices (``<root>/espeak/test``, seed ``seed`` so no clip is a training clip), from the held-out
synthesizer (``<root>/flite/test``, flite voices awb/rms: never in training) and ground-truth clips that train the
relationship probe (``<root>/espeak/train``). Every model runs live (``evaluate.generate_clip``) on each condition:

  clean                      the clean held-out audio
  <kind> <snr> dB            each noise kind of ``acoustics.NOISE_KINDS`` mixed at 20/10/0 dB SNR (against the
                             speech's active RMS), the same clips
  noise-only <kind> <level>  both participants' tracks replaced by that noise alone at -30 / -50 dBFS RMS
  flite clean / flite <kind> 10 dB   the held-out synthesizer

Figures per condition (mean over clips and participants; mouth opening = ``metrics.LipOpening`` on the default head):
  env. corr    Pearson correlation of the mouth opening with the *clean* speech envelope (RMS per frame), per track
  opening      mean opening during the participant's speaking frames (mm); ratio = / the clean condition's
  noise share  noise-only conditions: mean opening over all frames / the clean condition's speaking opening
  closure      share of /p b m/ phones whose smallest opening over the frames centred within the phone is below 25 %
               of the track's open-vowel opening (mean over open-vowel phones of their largest such opening)
  initial      mean opening (mm) over the frames of utterance-initial /p b m/ (after >= 150 ms of pause)
  LVE          clean conditions: as in ``evaluate`` (lip vertex error vs the rule-based ground truth, mm)
  rel. acc.    clean: relationship probe accuracy on the generated listener motion
Targets (issue #12) are printed beside the figures by ``targets_table``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rsatalker_ros.data.acoustics import NOISE_KINDS, make_noise, mix_at_snr
from rsatalker_ros.data.dataset import Clip, list_clips, load_clip, save_clip
from rsatalker_ros.data.visemes import visemes_for
from rsatalker_ros.eval.evaluate import DEFAULT_HEAD, generate_clip, probe_dataset
from rsatalker_ros.eval.metrics import LipOpening, RegionVertices, lve
from rsatalker_ros.eval.probe import RelationProbe
from rsatalker_ros.motion.layout import SAMPLES_PER_FRAME

SNRS_DB = (20.0, 10.0, 0.0)
NOISE_ONLY_DBFS = (-30.0, -50.0)
HELD_OUT_NOISES = ("babble", "fan")          # noise kinds also run on the held-out synthesizer at 10 dB
CLOSED_SHARE = 0.25                           # a bilabial is closed below this share of the open-vowel opening
TARGETS = {"noise_share_-30": 0.15, "corr_10dB": 0.7, "ratio_10dB": 0.8, "closure": 0.85, "rel_acc": 0.85}


@dataclass
class RobustnessConfig:
    n_clips: int = 8                  # held-out clips per synthesizer
    n_probe: int = 48                 # ground-truth clips that train the relationship probe
    seconds: float = 12.0
    seed: int = 1000                  # dataset seed of the held-out clips (training uses 0)
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    snrs_db: tuple[float, ...] = SNRS_DB
    noise_only_dbfs: tuple[float, ...] = NOISE_ONLY_DBFS


@dataclass
class RobustnessResult:
    rows: dict = field(default_factory=dict)       # model -> condition -> {figure: value}
    ground_truth: dict = field(default_factory=dict)  # condition -> figures of the rule-based targets
    n_clips: int = 0
    conditions: list = field(default_factory=list)


def make_heldout(root, cfg: RobustnessConfig, progress: bool = True) -> Path:
    """Generate (or reuse) the held-out clips under ``root``; returns ``root``."""
    from rsatalker_ros.data.synthetic import generate_clip as synth_clip
    root = Path(root)
    plan = [("espeak", "test", cfg.n_clips, ("espeak-ng",)), ("flite", "test", cfg.n_clips, ("flite",)),
            ("espeak", "train", cfg.n_probe, ("espeak-ng",))]
    for sub, split, n, engines in plan:
        have = len(list_clips(root / sub, split)) if (root / sub / split).is_dir() else 0
        for i in tqdm(range(have, n), desc=f"held-out {sub}/{split}", disable=not progress or have >= n):
            clip = synth_clip(split, i, cfg.seed, cfg.seconds, engines)
            save_clip(clip, root / sub / split / clip.clip_id)
    return root


def _phones(clip: Clip, pid: str) -> list[tuple[str, int, int]]:
    ph = clip.meta.get("phones", {}).get(pid)
    if ph is None:
        raise ValueError(f"clip {clip.clip_id!r} has no phone timings (meta 'phones'); regenerate it with "
                         f"make_heldout (generator version >= 2)")
    return [(str(s), int(a), int(b)) for s, a, b in ph]


def _frames(a: int, b: int, n: int) -> slice:
    """Frames whose centre lies in samples [a, b); the frame holding the midpoint when none does."""
    f0 = int(np.ceil(a / SAMPLES_PER_FRAME - 0.5))
    f1 = int(np.ceil(b / SAMPLES_PER_FRAME - 0.5))
    if f1 <= f0:
        f0 = (a + b) // 2 // SAMPLES_PER_FRAME
        f1 = f0 + 1
    f0 = min(max(0, f0), n - 1)
    return slice(f0, max(f0 + 1, min(n, f1)))


def closure_counts(opening: np.ndarray, phones) -> tuple[int, int]:
    """(closed, total) /p b m/ phones of one track; opening [T] mm, phones (symbol, start, end) samples."""
    n = opening.shape[0]
    vowels = [opening[_frames(a, b, n)].max() for s, a, b in phones if a < n * SAMPLES_PER_FRAME
              and visemes_for(s)[0] == "AA"]
    bil = [opening[_frames(a, b, n)].min() for s, a, b in phones if a < n * SAMPLES_PER_FRAME
           and visemes_for(s) == ("PP",)]
    if not vowels or not bil:
        return 0, 0
    ref = float(np.mean(vowels))
    return int(sum(o < CLOSED_SHARE * ref for o in bil)), len(bil)


def initial_bilabial_openings(opening: np.ndarray, phones, min_pause_s: float = 0.15) -> list[float]:
    """Mean opening (mm) over the frames of each /p b m/ that starts an utterance (after >= ``min_pause_s`` of
    pause or at the start of the track): where the 2026-11-28 check saw the lips open ~50 ms early."""
    n = opening.shape[0]
    out, last_end = [], None
    for s, a, b in phones:
        if s.startswith("_"):
            continue
        gap = a if last_end is None else a - last_end
        if visemes_for(s) == ("PP",) and gap >= min_pause_s * 16000 and a < n * SAMPLES_PER_FRAME:
            out.append(float(opening[_frames(a, b, n)].mean()))
        last_end = b
    return out


def envelope(wave: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS per motion frame: [n_frames]."""
    x = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float64)
    w = np.asarray(wave[: x.shape[0]], np.float64)
    x[: w.shape[0]] = w
    return np.sqrt((x.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(1))


def _active(clip: Clip, pid: str) -> np.ndarray:
    act = np.zeros(clip.audio[pid].shape[0], bool)
    for s, a, b in _phones(clip, pid):
        if not s.startswith("_"):
            act[a:b] = True
    return act


def condition_audio(clip: Clip, cond: tuple, seed: int) -> dict[str, np.ndarray]:
    """The clip's audio under ``cond`` = ("clean",) | ("snr", kind, snr_db) | ("noise-only", kind, dbfs)."""
    if cond[0] == "clean":
        return dict(clip.audio)
    kind, value = cond[1], float(cond[2])
    out = {}
    for k, pid in enumerate(clip.participants):
        rng = np.random.default_rng([seed, k, NOISE_KINDS.index(kind), int(abs(value) * 10), int(cond[0] == "snr")])
        babble = None
        if kind == "babble":
            from rsatalker_ros.data.conversation import _babble_speech
            babble = _babble_speech(rng)
        n = clip.audio[pid].shape[0]
        noise = make_noise(kind, rng, n, babble)
        if cond[0] == "snr":
            out[pid] = mix_at_snr(clip.audio[pid], noise, value, _active(clip, pid))
        else:
            out[pid] = (noise * 10 ** (value / 20)).astype(np.float32)
        out[pid] = np.clip(out[pid], -1.0, 1.0)
    return out


def condition_name(cond: tuple, synth: str) -> str:
    prefix = "" if synth == "espeak" else synth + " "
    if cond[0] == "clean":
        return prefix + "clean"
    if cond[0] == "snr":
        return f"{prefix}{cond[1]} {cond[2]:g} dB"
    return f"{prefix}noise-only {cond[1]} {cond[2]:g} dBFS"


def _clip_with_audio(clip: Clip, audio: dict) -> Clip:
    from dataclasses import replace
    return replace(clip, audio=audio)


def _track_figures(opening: np.ndarray, clip: Clip, pid: str) -> dict:
    env = envelope(clip.audio[pid], clip.n_frames)   # the *clean* audio of the held-out clip
    spk = clip.speaking[pid]
    corr = float(np.corrcoef(opening, env)[0, 1]) if spk.any() and opening.std() > 1e-9 else float("nan")
    closed, total = closure_counts(opening, _phones(clip, pid))
    return {"corr": corr, "speech_open": float(opening[spk].mean()) if spk.any() else float("nan"),
            "mean_open": float(opening.mean()), "closed": closed, "bilabials": total,
            "initial": initial_bilabial_openings(opening, _phones(clip, pid))}


def evaluate_robustness(models: dict, data_root, cfg: RobustnessConfig = RobustnessConfig(),
                        head: str = DEFAULT_HEAD, progress: bool = True) -> RobustnessResult:
    """Run every model on every condition of the held-out clips under ``data_root`` (see ``make_heldout``)."""
    from rsatalker_ros.face.head_model import load_head
    h = load_head(head)
    opening_of = LipOpening(h)
    lips = RegionVertices(h, regions=("lips",))
    data_root = Path(data_root)
    sets = {}
    for synth in ("espeak", "flite"):
        dirs = list_clips(data_root / synth, "test")[: cfg.n_clips]
        if not dirs:
            raise ValueError(f"no held-out clips under {data_root / synth / 'test'}; run make_heldout first")
        sets[synth] = [load_clip(d) for d in dirs]
    conds = {"espeak": [("clean",)] + [("snr", k, s) for k in cfg.noise_kinds for s in cfg.snrs_db]
             + [("noise-only", k, lv) for lv in cfg.noise_only_dbfs for k in cfg.noise_kinds],
             "flite": [("clean",)] + [("snr", k, 10.0) for k in HELD_OUT_NOISES if k in cfg.noise_kinds]}
    res = RobustnessResult(n_clips=len(sets["espeak"]))
    res.conditions = [condition_name(c, s) for s in conds for c in conds[s]]
    probe_dirs = list_clips(data_root / "espeak", "train")
    probe = RelationProbe.fit(*probe_dataset([load_clip(d) for d in probe_dirs])) if probe_dirs else None
    total = sum(len(conds[s]) * len(sets[s]) for s in conds) * len(models)
    bar = tqdm(total=total, desc="robustness", disable=not progress)
    # ground truth (the rule-based targets of the clean clips)
    for synth, clips in sets.items():
        tr = [_track_figures(opening_of(c.motion[p]), c, p) for c in clips for p in c.participants]
        res.ground_truth[condition_name(("clean",), synth)] = _summarise(tr)
    for name, model in models.items():
        rows = res.rows.setdefault(name, {})
        for synth, clips in sets.items():
            for ci_cond, cond in enumerate(conds[synth]):
                tracks, lves, gen = [], [], []
                for ci, clip in enumerate(clips):
                    audio = condition_audio(clip, cond, cfg.seed * 1000 + ci)
                    out = generate_clip(model, _clip_with_audio(clip, audio))
                    gen.append(out)
                    for p in clip.participants:
                        tracks.append(_track_figures(opening_of(out[p]), clip, p))
                        if cond[0] == "clean":
                            lves.append(lve(lips(out[p])["lips"], lips(clip.motion[p])["lips"]))
                    bar.update(1)
                row = _summarise(tracks)
                if lves:
                    row["LVE"] = float(np.mean(lves))
                    if probe is not None:
                        X, y = probe_dataset(clips, gen)
                        row["rel_acc"] = probe.accuracy(X, y)
                if cond[0] == "noise-only":      # no phones in a noise-only track
                    row["closure"], row["bilabials"] = float("nan"), 0
                    row["initial_bilabial_open"] = float("nan")
                rows[condition_name(cond, synth)] = row
        for synth in sets:       # ratios against the same synthesizer's clean condition
            clean = rows[condition_name(("clean",), synth)]["speech_open"]
            for cond in conds[synth]:
                r = rows[condition_name(cond, synth)]
                r["ratio"] = r["speech_open"] / clean if cond[0] == "snr" else float("nan")
                r["noise_share"] = r["mean_open"] / clean if cond[0] == "noise-only" else float("nan")
    bar.close()
    return res


def _summarise(tracks: list[dict]) -> dict:
    bil = sum(t["bilabials"] for t in tracks)
    initial = [v for t in tracks for v in t["initial"]]
    return {"initial_bilabial_open": float(np.mean(initial)) if initial else float("nan"),"corr": float(np.nanmean([t["corr"] for t in tracks])),
            "speech_open": float(np.nanmean([t["speech_open"] for t in tracks])),
            "mean_open": float(np.mean([t["mean_open"] for t in tracks])),
            "closure": sum(t["closed"] for t in tracks) / bil if bil else float("nan"), "bilabials": bil}


def _fmt(v, pct=False, digits=3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{100 * v:.0f}%" if pct else f"{v:.{digits}g}"


def markdown_tables(res: RobustnessResult) -> str:
    """One table per model (conditions as rows) plus the ground-truth reference rows."""
    out = []
    for name, rows in res.rows.items():
        out += [f"**{name}**", "",
                "| condition | env. corr | opening (mm) | opening / clean | noise share | closure /p b m/ | initial "
                "/p b m/ (mm) | LVE (mm) | rel. acc. |", "|---|---|---|---|---|---|---|---|---|"]
        for cond in res.conditions:
            r = rows[cond]
            out.append(f"| {cond} | {_fmt(r['corr'], digits=2)} | {_fmt(r['speech_open'])} | "
                       f"{_fmt(r['ratio'], True)} | {_fmt(r['noise_share'], True)} | "
                       f"{_fmt(r['closure'], True)} ({r['bilabials']}) | {_fmt(r['initial_bilabial_open'])} | "
                       f"{_fmt(r.get('LVE'), digits=4)} | "
                       f"{_fmt(r.get('rel_acc'), True)} |")
        out.append("")
    out += ["**ground truth** (the rule-based targets, same measures)", "",
            "| clips | env. corr | opening (mm) | closure /p b m/ | initial /p b m/ (mm) |", "|---|---|---|---|---|"]
    for cond, r in res.ground_truth.items():
        out.append(f"| {cond} | {_fmt(r['corr'], digits=2)} | {_fmt(r['speech_open'])} | "
                   f"{_fmt(r['closure'], True)} ({r['bilabials']}) | {_fmt(r['initial_bilabial_open'])} |")
    return "\n".join(out)


def target_figures(rows: dict) -> dict:
    """The figures the issue's targets name, from one model's rows."""
    def mean_of(pred, key):
        vals = [r[key] for c, r in rows.items() if pred(c)]
        return float(np.nanmean(vals)) if vals else float("nan")
    ten = lambda c: c in ("babble 10 dB", "fan 10 dB")   # noqa: E731
    return {
        "noise_share_-30": mean_of(lambda c: c.startswith("noise-only") and c.endswith("-30 dBFS"), "noise_share"),
        "noise_share_-50": mean_of(lambda c: c.startswith("noise-only") and c.endswith("-50 dBFS"), "noise_share"),
        "corr_10dB": mean_of(ten, "corr"), "ratio_10dB": mean_of(ten, "ratio"),
        "closure": rows["clean"]["closure"], "closure_flite": rows["flite clean"]["closure"],
        "LVE": rows["clean"].get("LVE", float("nan")), "rel_acc": rows["clean"].get("rel_acc", float("nan")),
    }


def targets_table(res: RobustnessResult) -> str:
    lines = ["| model | noise-only −30 dBFS (≤ 15 %) | −50 dBFS | env. corr at 10 dB babble+fan (≥ 0.7) | "
             "opening at 10 dB / clean (≥ 80 %) | closure espeak (≥ 85 %) | closure flite (≥ 85 %) | clean LVE "
             "(mm) | rel. acc. (≥ 85 %) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in res.rows.items():
        t = target_figures(rows)

        def mark(key, ok):
            return "" if not np.isfinite(t[key]) else (" ✓" if ok else " ✗")
        lines.append(
            f"| {name} | {_fmt(t['noise_share_-30'], True)}{mark('noise_share_-30', t['noise_share_-30'] <= 0.15)} "
            f"| {_fmt(t['noise_share_-50'], True)} | {_fmt(t['corr_10dB'], digits=2)}"
            f"{mark('corr_10dB', t['corr_10dB'] >= 0.7)} | {_fmt(t['ratio_10dB'], True)}"
            f"{mark('ratio_10dB', t['ratio_10dB'] >= 0.8)} | {_fmt(t['closure'], True)}"
            f"{mark('closure', t['closure'] >= 0.85)} | {_fmt(t['closure_flite'], True)}"
            f"{mark('closure_flite', t['closure_flite'] >= 0.85)} | {_fmt(t['LVE'], digits=4)} | "
            f"{_fmt(t['rel_acc'], True)}{mark('rel_acc', t['rel_acc'] >= 0.85)} |")
    return "\n".join(lines)


def plot_robustness(res: RobustnessResult, path) -> Path:
    """Four panels: envelope correlation and opening/clean per SNR and noise kind, noise-only share, closure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(res.rows)
    kinds = sorted({c.split()[0] for c in res.conditions if c.endswith(" dB") and not c.startswith("flite")},
                   key=NOISE_KINDS.index)
    snrs = sorted({float(c.split()[1]) for c in res.conditions if c.endswith(" dB") and not c.startswith("flite")},
                  reverse=True)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), dpi=100)
    styles = ["-", "--", ":", "-."]
    for mi, name in enumerate(names):
        rows = res.rows[name]
        for k in kinds:
            xs = ["clean"] + [f"{s:g}" for s in snrs]
            corr = [rows["clean"]["corr"]] + [rows[f"{k} {s:g} dB"]["corr"] for s in snrs]
            ratio = [1.0] + [rows[f"{k} {s:g} dB"]["ratio"] for s in snrs]
            lbl = f"{k}" + (f" ({name})" if len(names) > 1 else "")
            axes[0].plot(xs, corr, styles[mi % 4], marker="o", label=lbl)
            axes[1].plot(xs, [100 * r for r in ratio], styles[mi % 4], marker="o", label=lbl)
        levels = sorted({float(c.split()[-2]) for c in res.conditions if "noise-only" in c}, reverse=True)
        w = 0.8 / max(1, len(levels))
        for li, lv in enumerate(levels):
            vals = [100 * rows[f"noise-only {k} {lv:g} dBFS"]["noise_share"] for k in kinds]
            axes[2].bar(np.arange(len(kinds)) + li * w + mi * 0.05, vals, w, label=f"{lv:g} dBFS ({name})")
        cl = [("espeak", rows["clean"]["closure"]), ("flite", rows["flite clean"]["closure"])]
        axes[3].bar(np.arange(2) + mi * 0.3, [100 * v for _, v in cl], 0.3, label=name)
    gt = [100 * res.ground_truth.get(c, {}).get("closure", np.nan) for c in ("clean", "flite clean")]
    axes[3].plot(np.arange(2) + 0.15 * (len(names) - 1), gt, "k*", ms=10, label="ground truth")
    axes[0].axhline(0.7, color="k", lw=0.8, ls="--")
    axes[0].set(title="mouth opening vs clean envelope (corr.)", xlabel="SNR (dB)")
    axes[1].axhline(80, color="k", lw=0.8, ls="--")
    axes[1].set(title="speech opening / clean (%)", xlabel="SNR (dB)")
    axes[2].axhline(15, color="k", lw=0.8, ls="--")
    axes[2].set_xticks(np.arange(len(kinds)), kinds, fontsize=8)
    axes[2].set(title="noise only: opening / speech opening (%)")
    axes[3].axhline(85, color="k", lw=0.8, ls="--")
    axes[3].set_xticks(np.arange(2), ["espeak (held-out voices)", "flite (held-out synth.)"], fontsize=8)
    axes[3].set(title="/p b m/ closed (< 25% of open vowel) (%)")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"robustness on {res.n_clips} held-out clips per synthesizer (dashed: issue #12 targets)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["RobustnessConfig", "RobustnessResult", "make_heldout", "evaluate_robustness", "markdown_tables",
           "targets_table", "plot_robustness", "closure_counts", "initial_bilabial_openings", "envelope", "condition_audio", "target_figures"]
