"""Cue decodability: can the residual after each block tell a cue prompt from a control?
(docs/method.md §11.2)

Features are the RMS-normalised last-position residual after block k. The classifier is
a cross-frame nearest class mean: class means are fitted on every other frame and tested
on the held-out frame, each frame in turn. It has no parameters to tune, and a tie (two
equally near means) counts one half, so a residual carrying no class signal scores
exactly 0.5. The embedding stream (block 0) is left out: within a frame every prompt
ends on the same token, so its last-position state carries no cue by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ungrok.mech.prompts import MechPrompts
from ungrok.mech.rows import mech_row
from ungrok.mech.trace import trace
from ungrok.model.gpt import GPT, _norm


@dataclass(frozen=True)
class Decodability:
    """Accuracy after each block (accuracy[k - 1] is block k); NaN where no frame could be tested."""

    accuracy: tuple[float, ...]
    n_prompts: int

    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]:
        return [
            mech_row(run, step, rule, "decode", f"block{k}", "accuracy", a, prompts_sha256)
            for k, a in enumerate(self.accuracy, 1)
        ]


def nearest_mean_accuracy(features: np.ndarray, labels: Sequence[Any], frames: Sequence[Any]) -> float:
    """Cross-frame nearest-class-mean accuracy over all held-out predictions (ties count 1/2).

    A frame is tested only when the other frames hold every class; NaN if no frame is.
    """
    x = np.asarray(features, dtype=np.float64)
    lab = np.asarray(labels)
    fr = np.asarray(frames)
    classes = sorted(set(lab.tolist()))
    score, n = 0.0, 0
    for f in sorted(set(fr.tolist())):
        test, train = fr == f, fr != f
        if any(not np.any(train & (lab == c)) for c in classes):
            continue
        means = np.stack([x[train & (lab == c)].mean(0) for c in classes])  # [C, d]
        dist = ((x[test, None, :] - means[None]) ** 2).sum(-1)  # [n_test, C]
        nearest = dist == dist.min(1, keepdims=True)
        truth = np.array([classes.index(c) for c in lab[test]])
        score += float((nearest[np.arange(len(truth)), truth] / nearest.sum(1)).sum())
        n += len(truth)
    return score / n if n else float("nan")


@torch.no_grad()
def block_features(model: GPT, prompts: MechPrompts) -> list[np.ndarray]:
    """Normalised last-position residual after each block, for the class prompts: [k - 1] -> [N, d]."""
    idx, last = prompts.class_batch()
    tr = trace(model, idx, read=last)
    rows = torch.arange(idx.shape[0])
    return [_norm(r[rows, last]).double().numpy() for r in tr.resid]


def decodability(features: Sequence[np.ndarray], prompts: MechPrompts) -> Decodability:
    """Cross-frame cue-vs-control decodability of per-block features of the class prompts, read
    from any model (this package's GPT or a GPT-NeoX one)."""
    acc = tuple(nearest_mean_accuracy(f, prompts.class_labels, prompts.class_frames) for f in features)
    return Decodability(acc, len(prompts.class_prompts))


def cue_decodability(model: GPT, prompts: MechPrompts) -> Decodability:
    """Cross-frame cue-vs-control decodability after every block."""
    return decodability(block_features(model, prompts), prompts)
