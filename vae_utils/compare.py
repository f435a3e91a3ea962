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

To compare methods, this module also gives what one needs to say how sure a difference is:
`mean_se` (a mean and its standard error; applied to per-datapoint differences between two
models evaluated on the same datapoints, the paired comparison), two measures of cost besides
samples, `seconds_at` (the wall-clock time at which a run had seen a number of samples: this
machine's, under its load) and `flops_per_sample` (counted operations: the same everywhere),
and `cached_chains` (the per-datapoint HMC chains, step sizes and acceptance rates an MCEM run
ended with).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import cache, hmc, marginal
from . import train as T
from .data import minibatches
from .models import VAE
from .run import History

ALGORITHMS = ("AEVB", "wake-sleep", "MCEM")  # Figure 3's three; config.ALGORITHMS also has notebook 07's autoencoder

__all__ = ["ALGORITHMS", "marginal_curve", "mean_se", "seconds_at", "flops_per_sample", "cached_chains"]


def marginal_curve(model: VAE, history: History, x, generator=None, **appendix_d) -> torch.Tensor:
    """The Appendix D estimate of log p(x) for every row of x at every snapshot, in the order
    of their sample counts: shape (snapshots, B). The model is left holding the last snapshot."""
    curve = []
    for s in sorted(history.snapshots):
        model.load_state_dict(history.snapshots[s])
        curve.append(marginal.appendix_d_log_px(model, x, generator=generator, **appendix_d))
    return torch.stack(curve)


def mean_se(values, dim: int = -1):
    """(mean, standard error of the mean) over `dim`: se = s / sqrt(n), s the sample standard
    deviation (n - 1 in its denominator).

    For a paired comparison pass the per-datapoint differences a_i - b_i of two estimates on
    the same datapoints: what the datapoints have in common (some digits are simply harder)
    cancels, and the standard error is that of the mean difference.
    """
    values = torch.as_tensor(values, dtype=torch.float64)
    n = values.shape[dim]
    if n < 2:
        raise ValueError(f"a standard error needs at least 2 values along dim {dim}, got {n}")
    return values.mean(dim), values.std(dim) / math.sqrt(n)


def seconds_at(history: History, samples) -> np.ndarray:
    """The wall-clock seconds of training at which the run had seen `samples` training samples.

    History.seconds is recorded after each evaluated epoch; in between (and from 0 samples at
    0 seconds to the first record) this interpolates linearly, i.e. assumes a constant speed
    within an epoch. The seconds are those of the machine and load the run trained under.
    """
    return np.interp(np.asarray(samples, dtype=float), [0.0, *history.samples], [0.0, *history.seconds])


class _MatmulFlops(TorchDispatchMode):
    """Adds up 2 m k n for every (m, k) x (k, n) matrix product dispatched inside it (mm, addmm,
    bmm: what linear layers and their backward passes run on); other operations are free."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm", "bmm"):
            a, b = (args[1], args[2]) if name == "addmm" else (args[0], args[1])
            self.total += 2 * a.shape[:-1].numel() * a.shape[-1] * b.shape[-1]  # (batch) m k n, times 2
        return out


def flops_per_sample(model: VAE, data, config) -> float:
    """The floating-point operations of one training step of config.algorithm, per training sample.

    Counted, not timed: every matrix product (forward and backward) of one step on a copy of
    `model` and the first minibatch of `data` adds 2 m k n; elementwise operations and the
    optimizer's update are not counted (in these networks the products are nearly all of the
    work). The count depends only on the architecture, the algorithm and the batch size, so
    it is the same on every machine, unlike seconds. For MCEM it includes the E-step's HMC
    transition (a gradient of log p(x, z) at the start and one per leapfrog step) and the
    M-step's 5 updates.
    """
    run = T.start(copy.deepcopy(model), data, config)  # MCEM: a chain per datapoint
    gen = T.epoch_generator(config.seed, 1, data.x.device)
    idx, x = next(iter(minibatches(data, config.batch_size, gen, with_index=True)))
    with _MatmulFlops() as counter:
        T.STEPS[config.algorithm](run, x, idx, gen, config.kl_weight)
    return counter.total / len(idx)


def cached_chains(name: str, model_config, train_config, data, test=None) -> hmc.Chains:
    """The HMC chains a cached MCEM run ended with: one per training datapoint, with its last
    position z, its step size, and the acceptance probability of its last transition.

    `name`, the configs and the data are those given to train.train_or_load (which returns the
    model and History only); the run must be in the model cache. An error if it is not, or if
    it is not an MCEM run.
    """
    state, reason = cache.lookup(name, T.cache_fields(model_config, train_config, data, test))
    if state is None:
        raise LookupError(f"no cached run {name!r} with these settings: {reason}")
    if state.get("chains") is None:
        raise ValueError(f"the cached run {name!r} keeps no chains: only MCEM runs do")
    return hmc.Chains(**state["chains"])
