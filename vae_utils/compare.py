"""Figure 3 of the paper: AEVB, wake-sleep and Monte Carlo EM, trained side by side.

All three train the same models.VAE (the paper: 3 latent variables, 100 hidden units) in the
same loop (vae_utils.train, TrainConfig(algorithm=...)), on the same minibatches (M = 100),
with the same optimizer (Adagrad) and prior on theta (weight decay 1/N); only the step differs:

    AEVB        ascend the SGVB estimate of the bound, eq. 7, in theta and phi together (Algorithm 1)
    wake-sleep  wake: ascend log p(x, z), z ~ q(z|x), in theta; sleep: ascend log q(z|x) on dreams, in phi
    MCEM        E: one HMC transition per datapoint's chain; M: 5 steps on log p(x, z) in theta

Training is recorded as the paper plots it, against the number of training samples seen,
with a copy of the weights at chosen sample counts (TrainConfig.snapshot_samples);
`marginal_curve` then estimates log p(x) at each copy with the Appendix D estimator.
"""
from __future__ import annotations

import torch

from . import marginal
from .models import VAE
from .run import History


def marginal_curve(model: VAE, history: History, x, generator=None, **appendix_d) -> torch.Tensor:
    """The Appendix D estimate of log p(x) for every row of x at every snapshot, in the order
    of their sample counts: shape (snapshots, B). The model is left holding the last snapshot."""
    curve = []
    for s in sorted(history.snapshots):
        model.load_state_dict(history.snapshots[s])
        curve.append(marginal.appendix_d_log_px(model, x, generator=generator, **appendix_d))
    return torch.stack(curve)
