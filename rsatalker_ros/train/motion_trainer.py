"""Training loop for the motion model, stages 1 and 2 (one loop; the stage's YAML says what differs).

Stage 1: speech -> own motion; partner audio = silence, partner motion unknown, neutral social queries.
Stage 2: dyadic; partner audio, partner ground-truth motion (teacher forcing with noise and dropout) and the
relationship's query set. Loss: MSE of the normalised motion + velocity_weight x MSE of its frame differences
+ lip_closure_weight x the lip-closure loss (``lip_losses``: where the target's lips are closed, i.e. the
bilabials /p b m/ and the resting mouth, the squared inner-lip opening of the posed head beyond the target's, in mm^2;
this rewards closing at bilabials and penalises opening before the release) + lip_opening_weight x the squared error
of the inner-lip opening on every frame (mm^2: open vowels keep their size while the closure term closes the lips).
``mix_data`` adds other datasets' training clips (e.g. clean speech beside the noisy rooms).
Outputs in ``cfg.out``: model.safetensors (latest weights, loadable with rsatalker_ros.motion.checkpoint),
train_state.safetensors (resume), history.json, loss_curve.png, config.yaml.
"""

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from rsatalker_ros.motion.checkpoint import load_model, save_model
from rsatalker_ros.motion.config import NEUTRAL_QUERY, MotionModelConfig
from rsatalker_ros.motion.layout import MotionLayout
from rsatalker_ros.motion.model import SocialMotionModel
from rsatalker_ros.train.config import TrainConfig
from rsatalker_ros.train.data import (WindowSampler, fixed_batches, load_split, normalization_stats,
                                      silence_features)
from rsatalker_ros.train.state import load_train_state, save_train_state

RESHAPE_FREE = {"share_queries", "dropout"}   # model fields that may differ from the init checkpoint's


def build_model(cfg: TrainConfig, train_samples) -> tuple[SocialMotionModel, dict]:
    """A fresh model (normalisation from the training data) or the ``init`` checkpoint with overrides."""
    if cfg.init:
        model, info = load_model(cfg.init)
        bad = sorted(set(cfg.model) - RESHAPE_FREE)
        if bad:
            raise ValueError(f"model keys {bad} cannot change when starting from {cfg.init!r} "
                             f"(only {sorted(RESHAPE_FREE)} can)")
        if cfg.model:
            state = model.state_dict()
            model = SocialMotionModel(replace(model.cfg, **cfg.model))
            model.load_state_dict(state)
        if cfg.queries_from_neutral and info.get("stage") == 1:
            with torch.no_grad():
                model.queries[:NEUTRAL_QUERY] = model.queries[NEUTRAL_QUERY]
        return model, info
    D = train_samples[0].motion.shape[1]
    mcfg = MotionModelConfig.from_dict({"motion_dim": D, "basis": train_samples[0].basis, **cfg.model})
    model = SocialMotionModel(mcfg)
    st = normalization_stats(train_samples)
    model.set_normalization(st["feat_mean"], st["feat_std"], st["motion_mean"], st["motion_std"])
    return model, {}


def motion_loss(model: SocialMotionModel, pred: torch.Tensor, target: torch.Tensor, velocity_weight: float):
    """MSE of normalised motion + velocity_weight x MSE of normalised frame-to-frame differences."""
    p, t = model.normalize_motion(pred), model.normalize_motion(target)
    loss = torch.mean((p - t) ** 2)
    if velocity_weight:
        loss = loss + velocity_weight * torch.mean(((p[:, 1:] - p[:, :-1]) - (t[:, 1:] - t[:, :-1])) ** 2)
    return loss


def lip_losses(opening, pred: torch.Tensor, target: torch.Tensor, closed_mm: float,
               speech_mm: float = 3.0, context: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(closure, match) in mm^2 of the posed head's inner-lip opening.

    closure: squared opening beyond the target's where the target's lips are closed: the mean over closures inside
    running speech (the target opens beyond ``speech_mm`` within ``context`` frames: bilabials, including the frames
    before a release, so opening early costs) plus the mean over the other closed frames (rest, listening); each mean
    is 0 when there is no such frame. match: mean squared difference of the opening from the target's over every
    frame (a too-small opening costs as much as a too-large one).

    opening: ``eval.metrics.LipOpening`` of a head in the motion's layout; pred, target: [B, T, D] motion."""
    gp = opening.differentiable(pred)                    # [B, T] mm
    with torch.no_grad():
        gt = opening.differentiable(target)
        closed = gt < closed_mm
        near_open = torch.nn.functional.max_pool1d(gt[:, None], 2 * context + 1, 1, context)[:, 0] > speech_mm
        masks = (closed & near_open, closed & ~near_open)
    err = torch.relu(gp - gt) ** 2
    closure = sum((err * m).sum() / m.sum().clamp(min=1) for m in masks)
    return closure, torch.mean((gp - gt) ** 2)


def make_inputs(model, batch: dict, cfg: TrainConfig, silence: torch.Tensor, train: bool,
                gen: torch.Generator | None = None):
    """(own_feats, partner_feats, partner_motion, query_index, partner_known) for one batch."""
    own = batch["own_feats"]
    B, T, _ = own.shape
    if cfg.partner_inputs:
        partner = batch["partner_feats"]
        pm = batch["partner_motion"]
        known = torch.ones(B, T, dtype=torch.bool)
        if train:
            if cfg.partner_noise:
                pm = pm + cfg.partner_noise * model.motion_std * torch.randn(pm.shape, generator=gen)
            known &= (torch.rand(B, 1, generator=gen) >= cfg.partner_dropout)
            for i in torch.nonzero(torch.rand(B, generator=gen) < cfg.partner_span_dropout).flatten().tolist():
                n = int(torch.randint(1, max(2, T // 2), (1,), generator=gen))
                s = int(torch.randint(0, T - n + 1, (1,), generator=gen))
                known[i, s:s + n] = False
    else:
        partner = silence[:T][None].expand(B, T, -1)
        pm = torch.zeros_like(batch["partner_motion"])
        known = torch.zeros(B, T, dtype=torch.bool)
    q = batch["query_index"] if cfg.relation_queries else torch.full((B,), NEUTRAL_QUERY)
    return own, partner, pm, q, known


def plot_history(history: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    tr = [(h["step"], h["train"]) for h in history if "train" in h]
    va = [(h["step"], h["val"]) for h in history if "val" in h]
    if tr:
        ax.plot(*zip(*tr), label="train")
    if va:
        ax.plot(*zip(*va), "o-", label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (normalised MSE + velocity)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@torch.no_grad()
def validation_loss(model, batches, cfg: TrainConfig, silence) -> float:
    model.eval()
    losses = [float(motion_loss(model, model(*make_inputs(model, b, cfg, silence, train=False)), b["motion"],
                                cfg.velocity_weight)) for b in batches]
    model.train()
    return float(np.mean(losses))


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) one training stage. Returns the path of the saved model."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_samples = load_split(cfg.data, "train", limit=cfg.max_clips or None, progress=progress)
    for root in (r.strip() for r in cfg.mix_data.split(",") if r.strip()):
        train_samples += load_split(root, "train", limit=cfg.mix_clips or None, progress=progress)
    try:
        val_samples = load_split(cfg.data, "val", progress=progress)
    except ValueError:
        val_samples = []
    model, init_info = build_model(cfg, train_samples)
    layout = MotionLayout.for_basis(model.cfg.basis)
    if train_samples[0].motion.shape[1] != model.cfg.motion_dim or layout.dim != model.cfg.motion_dim:
        raise ValueError(f"data motion dim {train_samples[0].motion.shape[1]} does not match the model "
                         f"(motion_dim {model.cfg.motion_dim}, basis {model.cfg.basis!r})")
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "queries"]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and n != "queries")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sampler = WindowSampler(train_samples, cfg.window_frames, cfg.seed)
    val_batches = fixed_batches(val_samples, cfg.window_frames, cfg.batch_size) if val_samples else []
    silence = torch.from_numpy(silence_features(cfg.window_frames))
    lip_opening = None
    if cfg.lip_closure_weight or cfg.lip_opening_weight:
        from rsatalker_ros.eval.metrics import LipOpening
        from rsatalker_ros.face.head_model import load_head
        head = load_head(cfg.lip_head)
        if head.layout.dim != model.cfg.motion_dim or head.basis != model.cfg.basis:
            raise ValueError(f"lip_head {cfg.lip_head!r} uses layout {head.basis}/{head.layout.dim}, the model "
                             f"{model.cfg.basis}/{model.cfg.motion_dim}")
        lip_opening = LipOpening(head)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, history = 0, []
    state_path = out / "train_state.safetensors"
    if resume and state_path.is_file():
        extra = load_train_state(state_path, model, opt)
        step, history = int(extra["step"]), list(extra["history"])
        sampler.set_state(extra["sampler"])
        gen.manual_seed(cfg.seed + 1 + step)
    elif resume:
        raise ValueError(f"--resume: no {state_path} to resume from")
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def lr_at(s: int) -> float:
        if s < cfg.warmup_steps:
            return cfg.lr * (s + 1) / cfg.warmup_steps
        frac = (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    def save(final: bool):
        info = {"stage": cfg.stage, "step": step, "data": str(cfg.data), "train_clips": len(train_samples) // 2,
                "init": cfg.init, "init_info": init_info, "history_tail": history[-3:],
                "share_queries": model.cfg.share_queries, "final": final}
        save_model(model, out / "model.safetensors", info)
        save_train_state(state_path, model, opt, {"step": step, "history": history, "sampler": sampler.state()})
        (out / "history.json").write_text(json.dumps(history, indent=1))
        plot_history(history, out / "loss_curve.png", f"motion stage {cfg.stage}")

    if step == 0 and val_batches:
        history.append({"step": 0, "val": validation_loss(model, val_batches, cfg, silence)})
    running, running_lip, running_match, n_run, t0 = 0.0, 0.0, 0.0, 0, time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"stage {cfg.stage}", disable=not progress)
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = sampler.batch(cfg.batch_size)
        pred = model(*make_inputs(model, batch, cfg, silence, train=True, gen=gen))
        loss = motion_loss(model, pred, batch["motion"], cfg.velocity_weight)
        if lip_opening is not None:
            lip, match = lip_losses(lip_opening, pred, batch["motion"], cfg.lip_closed_mm)
            loss = loss + cfg.lip_closure_weight * lip + cfg.lip_opening_weight * match
            running_lip += float(lip.detach())
            running_match += float(match.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        running += float(loss.detach())
        n_run += 1
        bar.update(1)
        if step == 1 or step % 20 == 0 or step == cfg.steps:
            history.append({"step": step, "train": running / n_run})
            if lip_opening is not None:
                history[-1]["lip_closure_mm2"] = running_lip / n_run
                history[-1]["lip_opening_mm2"] = running_match / n_run
            bar.set_postfix(loss=f"{running / n_run:.4f}")
            running, running_lip, running_match, n_run = 0.0, 0.0, 0.0, 0
        if val_batches and (step % cfg.eval_every == 0 or step == cfg.steps):
            history.append({"step": step, "val": validation_loss(model, val_batches, cfg, silence)})
            bar.set_postfix(val=f"{history[-1]['val']:.4f}")
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save(final=False)
    bar.close()
    save(final=True)
    (out / "timing.json").write_text(json.dumps({"seconds_this_run": time.time() - t0}))
    return out / "model.safetensors"
