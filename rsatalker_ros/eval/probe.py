"""Relationship probe: a 4-class classifier (kinship x hierarchy) of *listener* motion.

It is trained on ground-truth listener motion and applied to generated listener motion; its accuracy on the
generated motion measures how much of the relationship the generator expresses (chance = 25%).

Features of one participant in one clip: the per-dimension mean of its motion over its listening frames
(speaking == False): the *level* of listening behaviour (smiling, gaze direction, head posture, blink and nod
amounts), which a regression model can reproduce even where it cannot know *when* an individual nod or blink
happens. Classifier: multinomial logistic regression on standardised features with L2 weight decay (full-batch
L-BFGS).
"""

from dataclasses import dataclass

import numpy as np
import torch

from rsatalker_ros.social.relation import N_RELATION_CLASSES

MIN_LISTEN_FRAMES = 25


def listener_features(motion: np.ndarray, speaking: np.ndarray) -> np.ndarray:
    """motion [T, D], speaking [T] bool -> features [D]: the mean over listening frames (over all frames when
    fewer than MIN_LISTEN_FRAMES are listening)."""
    motion = np.asarray(motion, np.float32)
    speaking = np.asarray(speaking, bool)
    if motion.ndim != 2 or speaking.shape != (motion.shape[0],):
        raise ValueError(f"expected motion [T, D] and speaking [T], got {motion.shape} and {speaking.shape}")
    listen = ~speaking
    if listen.sum() < MIN_LISTEN_FRAMES:
        listen = np.ones_like(listen)
    return motion[listen].mean(0).astype(np.float32)


@dataclass
class RelationProbe:
    mean: np.ndarray       # feature standardisation
    std: np.ndarray
    weight: np.ndarray     # [F, 4]
    bias: np.ndarray       # [4]

    @staticmethod
    def fit(features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, seed: int = 0) -> "RelationProbe":
        """features [N, F], labels [N] in 0..3."""
        x = np.asarray(features, np.float32)
        y = np.asarray(labels, np.int64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 2:
            raise ValueError(f"expected features [N, F] and labels [N] with N >= 2, got {x.shape}, {y.shape}")
        if y.min() < 0 or y.max() >= N_RELATION_CLASSES:
            raise ValueError(f"labels must be relationship classes 0..{N_RELATION_CLASSES - 1}")
        mean, std = x.mean(0), x.std(0) + 1e-6
        xt = torch.from_numpy((x - mean) / std)
        yt = torch.from_numpy(y)
        torch.manual_seed(seed)
        lin = torch.nn.Linear(x.shape[1], N_RELATION_CLASSES)
        opt = torch.optim.LBFGS(lin.parameters(), lr=0.5, max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(lin(xt), yt) + l2 * (lin.weight ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return RelationProbe(mean, std, lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy())

    def predict(self, features: np.ndarray) -> np.ndarray:
        """features [N, F] -> predicted classes [N]."""
        x = (np.asarray(features, np.float32) - self.mean) / self.std
        return np.argmax(x @ self.weight + self.bias, axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == np.asarray(labels)))


def confusion(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[4, 4] counts, rows = true class, columns = predicted class."""
    c = np.zeros((N_RELATION_CLASSES, N_RELATION_CLASSES), np.int64)
    for t, p in zip(np.asarray(labels), np.asarray(pred)):
        c[int(t), int(p)] += 1
    return c
