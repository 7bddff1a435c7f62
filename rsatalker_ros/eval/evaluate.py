"""Evaluate motion models on a held-out split: vertex metrics, DualTalk parameter metrics, social awareness.

Every model runs live, as deployed: ``StreamingDyad`` over both participants' audio, each participant conditioned on
the relationship and on the *predicted* motion of the other. Compared in one run: the models given (typically the
shipped model and the no-relationship ablation) and the mean-motion baseline (the training data's mean frame,
stored in the first model's normalisation statistics).

Social awareness: a relationship probe (rsatalker_ros.eval.probe) is trained on ground-truth listener motion of the
training split and applied to each model's generated listener motion on the held-out split (4 classes, chance 25%);
its accuracy on held-out ground truth is the ceiling.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rsatalker_ros.data.dataset import Clip, list_clips, load_clip
from rsatalker_ros.eval.metrics import RegionVertices, fdd, lve, parameter_metrics
from rsatalker_ros.eval.probe import RelationProbe, confusion, listener_features
from rsatalker_ros.motion.layout import MotionLayout
from rsatalker_ros.motion.model import SocialMotionModel
from rsatalker_ros.motion.streaming import StreamingDyad
from rsatalker_ros.social.relation import CLASS_NAMES

METRIC_KEYS = ("LVE", "FDD", "FD-exp", "FD-jaw", "FD-pose", "MSE-exp", "MSE-jaw", "MSE-pose")
LOWER_IS_BETTER = set(METRIC_KEYS)
DEFAULT_HEAD = "default_older"


def generate_clip(model: SocialMotionModel, clip: Clip, relation=None, chunk: int = 0) -> dict[str, np.ndarray]:
    """Both participants' motion {pid: [T, D]} for a clip, generated live from its audio (``relation``: the
    clip's when None). ``chunk`` > 0 pushes the audio in chunks of that many samples (same result)."""
    a, b = clip.participants
    dyad = StreamingDyad(model, clip.relation if relation is None else relation, a, b)
    wa, wb = clip.audio[a], clip.audio[b]
    step = chunk or len(wa)
    fa, fb = [], []
    for i in range(0, len(wa), step):
        x, y = dyad.push(wa[i:i + step], wb[i:i + step])
        fa += x
        fb += y
    x, y = dyad.flush()
    fa += x
    fb += y
    T = clip.n_frames
    out = {a: np.stack([m for _, m in fa])[:T], b: np.stack([m for _, m in fb])[:T]}
    if out[a].shape[0] != T:
        raise RuntimeError(f"streaming produced {out[a].shape[0]} frames for a {T}-frame clip")
    return out


@dataclass
class EvalResult:
    metrics: dict = field(default_factory=dict)      # method -> metric -> mean over clips
    relation_acc: dict = field(default_factory=dict)  # method -> probe accuracy on listener motion
    confusions: dict = field(default_factory=dict)    # method -> [4, 4]
    n_clips: int = 0
    examples: dict = field(default_factory=dict)      # method -> {pid: [T, D]} of the first clip (for plots)
    example_clip: Clip | None = None


def probe_dataset(clips: list[Clip], motions: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Listener features [2 N, F] and relationship classes [2 N] of both participants of every clip (ground-truth
    speaking flags select the listening frames; ``motions`` replaces the ground-truth motion)."""
    X, y = [], []
    for i, c in enumerate(clips):
        for pid in c.participants:
            m = c.motion[pid] if motions is None else motions[i][pid]
            X.append(listener_features(m, c.speaking[pid]))
            y.append(c.relation.class_index)
    return np.stack(X), np.array(y)


def evaluate(models: dict[str, SocialMotionModel], data_root, split: str = "test", probe_split: str = "train",
             max_clips: int = 0, head: str = DEFAULT_HEAD, progress: bool = True) -> EvalResult:
    """Metrics of each named model and of the mean-motion baseline on ``split`` of ``data_root``."""
    if not models:
        raise ValueError("give at least one model to evaluate")
    from rsatalker_ros.face.head_model import load_head
    first = next(iter(models.values()))
    layout = MotionLayout.for_basis(first.cfg.basis)
    for name, m in models.items():
        if m.cfg.motion_dim != layout.dim or m.cfg.basis != layout.basis:
            raise ValueError(f"model {name!r} has layout {m.cfg.basis}/{m.cfg.motion_dim}, expected "
                             f"{layout.basis}/{layout.dim} like the first model")
    dirs = list_clips(data_root, split)[:max_clips or None]
    if not dirs:
        raise ValueError(f"no clips in split {split!r} under {str(data_root)!r}")
    probe_dirs = list_clips(data_root, probe_split)
    if not probe_dirs:
        raise ValueError(f"no clips in split {probe_split!r} under {str(data_root)!r} to train the relationship probe")
    heads = {}

    def regions_for(name: str) -> RegionVertices:
        name = name or head
        if name not in heads:
            h = load_head(name)
            if h.layout.dim != layout.dim:
                raise ValueError(f"head {name!r} uses layout {h.basis}, the models {layout.basis}")
            rv = RegionVertices(h)
            heads[name] = (rv, rv(np.zeros((1, layout.dim), np.float32)))
        return heads[name]

    clips = [load_clip(d) for d in tqdm(dirs, desc=f"loading {split}", disable=not progress, leave=False)]
    mean_motion = first.motion_mean.detach().cpu().numpy()
    methods = list(models) + ["mean motion"]
    per_clip = {m: {k: [] for k in METRIC_KEYS} for m in methods}
    generated = {m: [] for m in methods}
    result = EvalResult(n_clips=len(clips), example_clip=clips[0])
    for ci, clip in enumerate(tqdm(clips, desc="evaluating", disable=not progress)):
        outs = {name: generate_clip(model, clip) for name, model in models.items()}
        outs["mean motion"] = {p: np.repeat(mean_motion[None], clip.n_frames, 0) for p in clip.participants}
        gt_regions = {p: regions_for(clip.heads.get(p, ""))[0](clip.motion[p]) for p in clip.participants}
        for name in methods:
            generated[name].append(outs[name])
            if ci == 0:
                result.examples[name] = outs[name]
            for p in clip.participants:
                rv, neutral = regions_for(clip.heads.get(p, ""))
                pr = rv(outs[name][p])
                vals = parameter_metrics(outs[name][p], clip.motion[p], layout)
                vals["LVE"] = lve(pr["lips"], gt_regions[p]["lips"])
                vals["FDD"] = fdd(pr["upper_face"], gt_regions[p]["upper_face"], neutral["upper_face"][0])
                for k in METRIC_KEYS:
                    per_clip[name][k].append(vals[k])
    result.metrics = {m: {k: float(np.mean(v)) for k, v in per_clip[m].items()} for m in methods}
    # relationship probe: trained on ground-truth listener motion of the probe split
    probe_clips = [load_clip(d) for d in tqdm(probe_dirs, desc=f"probe data ({probe_split})",
                                              disable=not progress, leave=False)]
    probe = RelationProbe.fit(*probe_dataset(probe_clips))
    Xg, y = probe_dataset(clips)
    result.relation_acc["ground truth"] = probe.accuracy(Xg, y)
    result.confusions["ground truth"] = confusion(probe.predict(Xg), y)
    for name in methods:
        X, _ = probe_dataset(clips, generated[name])
        result.relation_acc[name] = probe.accuracy(X, y)
        result.confusions[name] = confusion(probe.predict(X), y)
    return result


def markdown_table(res: EvalResult, units: dict | None = None) -> str:
    """The results as a markdown table (best value per column in bold)."""
    units = units or {"LVE": "mm", "FDD": "mm²"}
    cols = list(METRIC_KEYS) + ["Rel. acc."]
    head = "| method | " + " | ".join(f"{c} ({units[c]})" if c in units else c for c in cols) + " |"
    sep = "|" + "---|" * (len(cols) + 1)
    methods = list(res.metrics)
    best = {k: min(res.metrics[m][k] for m in methods) for k in METRIC_KEYS}
    best_acc = max(res.relation_acc[m] for m in methods)
    rows = [head, sep]
    for m in methods:
        cells = []
        for k in METRIC_KEYS:
            v = res.metrics[m][k]
            s = f"{v:.4g}"
            cells.append(f"**{s}**" if v == best[k] else s)
        acc = f"{100 * res.relation_acc[m]:.1f}%"
        cells.append(f"**{acc}**" if res.relation_acc[m] == best_acc else acc)
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    rows.append(f"| ground truth (probe ceiling) | " + " | ".join("–" for _ in METRIC_KEYS)
                + f" | {100 * res.relation_acc['ground truth']:.1f}% |")
    return "\n".join(rows)


def plot_results(res: EvalResult, out_dir, layout: MotionLayout, prefix: str = "motion_") -> list[Path]:
    """Bar charts of the metrics, an example trajectory and the probe's confusion matrices. Returns the files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rsatalker_ros.face.arkit import ARKIT52_INDEX
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    methods = list(res.metrics)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # metrics
    keys = list(METRIC_KEYS) + ["Rel. acc."]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.0 * len(keys), 3.0), dpi=100)
    for ax, k in zip(axes, keys):
        vals = [res.relation_acc[m] * 100 if k == "Rel. acc." else res.metrics[m][k] for m in methods]
        ax.bar(range(len(methods)), vals, color=colors[:len(methods)])
        ax.set_title(k + (" (%)" if k == "Rel. acc." else ""), fontsize=9)
        ax.set_xticks([])
        if k == "Rel. acc.":
            ax.axhline(25, color="k", lw=0.8, ls="--")
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=colors[i]) for i in range(len(methods))], methods,
               loc="lower center", ncol=len(methods), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    files.append(out_dir / f"{prefix}metrics.png")
    fig.savefig(files[-1])
    plt.close(fig)
    # example trajectories (first participant of the first clip)
    clip = res.example_clip
    pid = clip.participants[0]
    t = np.arange(clip.n_frames) / clip.fps
    traces = [("jaw opening (jaw x, rad)", layout.jaw.start)]
    if layout.basis == "arkit52":
        traces += [("mouthSmileLeft", ARKIT52_INDEX["mouthSmileLeft"])]
    traces += [("head pitch (neck x, rad)", layout.neck.start)]
    fig, axes = plt.subplots(len(traces), 1, figsize=(9, 2.0 * len(traces)), dpi=100, sharex=True)
    for ax, (label, dim) in zip(axes, traces):
        ax.plot(t, clip.motion[pid][:, dim], "k", lw=1.2, label="ground truth")
        for i, m in enumerate(methods):
            ax.plot(t, res.examples[m][pid][:, dim], color=colors[i], lw=0.9, label=m)
        spk = clip.speaking[pid]
        ax.fill_between(t, *ax.get_ylim(), where=spk, color="0.9", zorder=0, step="mid")
        ax.set_ylabel(label, fontsize=8)
    axes[0].legend(fontsize=7, ncol=len(methods) + 1, loc="upper right")
    axes[0].set_title(f"clip {clip.clip_id}, participant {pid} ({clip.relation.label or CLASS_NAMES[clip.relation.class_index]}); "
                      f"grey = speaking", fontsize=9)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    files.append(out_dir / f"{prefix}example.png")
    fig.savefig(files[-1])
    plt.close(fig)
    # confusion matrices
    names = ["ground truth"] + methods
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 3.2), dpi=100)
    short = ["B/E", "B/U", "N/E", "N/U"]
    for ax, m in zip(axes, names):
        c = res.confusions[m]
        ax.imshow(c, cmap="Blues")
        for i in range(4):
            for j in range(4):
                ax.text(j, i, str(c[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(4), short, fontsize=7)
        ax.set_yticks(range(4), short, fontsize=7)
        ax.set_title(f"{m}: {100 * res.relation_acc[m]:.0f}%", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
    axes[0].set_ylabel("true relationship", fontsize=7)
    fig.tight_layout()
    files.append(out_dir / f"{prefix}relation_confusion.png")
    fig.savefig(files[-1])
    plt.close(fig)
    return files


def load_models(specs: list[str]) -> dict[str, SocialMotionModel]:
    """["name=path", "path", ...] -> {name: model} (name defaults to the file's parent folder name)."""
    from rsatalker_ros.motion.checkpoint import load_model
    out = {}
    for s in specs:
        name, path = s.split("=", 1) if "=" in s else (Path(s).parent.name, s)
        if name in out:
            raise ValueError(f"two models named {name!r}; name them with NAME=PATH")
        out[name] = load_model(path)[0]
    return out


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, int(n)))
