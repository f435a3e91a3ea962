"""How long does the training monitor (vae_utils.explore_training, notebook 03) take to redraw?

    python benchmarks/widget_redraw.py   # times these controls with every other explorer's

Trains notebook 03's watched model size (784-500-20 ReLU, Bernoulli decoder) for 5 short
epochs on 300 random "digits" (what it learns does not matter: a redraw costs the same
whatever the weights), watching 10 digits as the notebook does, then times two things:

    epoch          the slider over the epochs afterwards: a swap of prerendered PNG bytes and
                   a readout (the one control a reader moves)
    live redraw    what the training callback does after every epoch: the reconstructions of
                   the watched digits and the bound curve drawn with matplotlib, both to PNG
                   (not a control: it adds this much to every epoch of training)

`controls()` returns {control: (move, values)}, the shape benchmarks/widget_redraw.py times;
`live_redraw()` returns (move, values) for the second.
"""
from __future__ import annotations

import numpy as np
import torch

from vae_utils.data import Split
from vae_utils.explore_training import TrainingMonitor
from vae_utils.models import VAEConfig
from vae_utils.train import TrainConfig

EPOCHS = 5


def _watched(seed: int = 0, n_data: int = 300):
    """A TrainingMonitor after a short run on random data, and that Run."""
    g = torch.Generator().manual_seed(seed)
    data = Split(torch.rand(n_data, 784, generator=g), torch.arange(n_data) % 10, (28, 28))
    config = VAEConfig(z_dim=20, hidden=(500,), activation="relu", init="default")
    monitor = TrainingMonitor(config, data.x[:10])
    run = monitor.train(data, TrainConfig(epochs=EPOCHS, optimizer="adam", lr=1e-3, seed=seed,
                                          snapshot_epochs=tuple(range(1, EPOCHS + 1))), data[:100])
    return monitor, run


def controls(seed: int = 0) -> dict:
    """{control: (function that moves it, values to move it through)}: the epoch slider."""
    monitor, _ = _watched(seed)

    def set_epoch(v):
        monitor.epoch.value = int(v)

    return {"epoch": (set_epoch, np.arange(EPOCHS + 1))}


def live_redraw(seed: int = 0) -> tuple:
    """(move, values) for the callback's redraw after an epoch (not a control: it runs once per
    epoch of training): the reconstructions of the watched digits and the curve, to PNG."""
    monitor, run = _watched(seed)

    def redraw(v):
        monitor._live(run.model, monitor.curve_data, int(v))

    return redraw, np.arange(1, EPOCHS + 1)
