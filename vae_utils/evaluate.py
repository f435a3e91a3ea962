"""Evaluating a model on a data set: the lower bound, log p(x), and how the latent units are used.

These are the entry points the notebooks and benchmarks call. Each one takes a data.Split or
an (N, D) tensor, runs without gradients with an nn.Module in eval mode (its mode is
restored afterwards), and is reproducible from `seed`: one generator, seeded with it,
first binarizes a dynamically binarized split (once, x ~ Bernoulli(grey levels)) and then
draws the estimator's samples. A split that is already binary draws nothing for itself.

The estimators live elsewhere: the SGVB bounds in vae_utils.elbo (eq. 6-7 of the paper),
importance sampling in vae_utils.importance.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from . import importance
from .data import Split, draw_binary
from .elbo import estimator as _estimator
from .elbo import kl_to_standard_normal, reparameterize


def _generator(data, seed: int) -> torch.Generator:
    """A generator on the data's device, seeded with `seed`."""
    x = data.x if isinstance(data, Split) else data
    return torch.Generator(device=x.device).manual_seed(seed)


def _rows(data, generator: torch.Generator) -> torch.Tensor:
    """The data as an (N, D) tensor; a dynamically binarized split is binarized with `generator`."""
    if isinstance(data, Split):
        return draw_binary(data.x, generator) if data.dynamic else data.x
    return data


@contextmanager
def _evaluating(model):
    """Eval mode for an nn.Module, restored afterwards; any other model is left alone."""
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        yield
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)


@torch.no_grad()
def lower_bound(model, data, batch_size: int = 1000, n_samples: int = 1, estimator: str = "B",
                seed: int = 0) -> float:
    """The average lower bound per datapoint, in nats: estimator "B" (eq. 7) or "A" (eq. 6), L = n_samples."""
    sgvb = _estimator(estimator)
    importance.check_n_samples(n_samples)
    gen = _generator(data, seed)
    x = _rows(data, gen)
    with _evaluating(model):
        total = sum(sgvb(model, xb, n_samples, gen).sum() for xb in x.split(batch_size))
    return total.item() / len(x)


@torch.no_grad()
def rate_distortion(model, data, batch_size: int = 1000, n_samples: int = 1, seed: int = 0) -> tuple[float, float]:
    """(rate, distortion), each averaged per datapoint, in nats:

        rate       R = KL(q(z|x) || p(z))        exact (Appendix B)
        distortion D = -E_q[log p(x|z)]          L = n_samples samples of z per datapoint

    The bound (eq. 7 and 10) is -(R + D): with the same seed, lower_bound(...) returns
    -(R + D) up to rounding. A beta-weighted objective is -(beta R + D), so beta slides a model
    along the rate-distortion curve (Alemi et al. 2018, "Fixing a broken ELBO").
    """
    importance.check_n_samples(n_samples)
    gen = _generator(data, seed)
    x = _rows(data, gen)
    rate = distortion = 0.0
    with _evaluating(model):
        for xb in x.split(batch_size):  # the same random stream as lower_bound's estimator B
            mu, logvar = model.encode(xb)
            z = reparameterize(mu, logvar, n_samples, gen)
            distortion = distortion - model.log_likelihood(xb, z).mean(0).sum()
            rate = rate + kl_to_standard_normal(mu, logvar).sum()
    return float(rate) / len(x), float(distortion) / len(x)


@torch.no_grad()
def log_likelihood(model, data, n_samples: int = 5000, *, seed: int = 0, rows: int | None = None,
                   chunk: int = 100, progress: bool = False) -> torch.Tensor:
    """Importance-sampled log p(x) for each datapoint, in nats: shape (N,).

        log p(x) ~= log 1/K sum_k p(x, z_k) / q(z_k|x),   z_k ~ q(z|x),   K = n_samples

    vae_utils.importance.log_likelihood does the work: `rows` is its pass size (None: 2,000
    decoder rows on a CPU, i.e. 20 datapoints x `chunk` = 100 samples), and it keeps a running
    log-sum-exp, so memory does not grow with K. On a CPU, with the default rows and chunk,
    this returns, bit for bit, what this function returned before that module existed
    (tests/test_evaluate.py checks it against a frozen copy).
    """
    gen = _generator(data, seed)
    x = _rows(data, gen)
    with _evaluating(model):
        return importance.log_likelihood(model, x, n_samples, rows, chunk, gen, progress)


@torch.no_grad()
def kl_per_dimension(model, data, batch_size: int = 1000, seed: int = 0) -> torch.Tensor:
    """Average KL(q(z_j|x) || p(z_j)) of each latent dimension j, in nats: shape (z_dim,).

    A dimension with KL near 0 is unused: q ignores x there and matches the prior.
    """
    x = _rows(data, _generator(data, seed))
    total = 0
    with _evaluating(model):
        for xb in x.split(batch_size):
            mu, logvar = model.encode(xb)
            total = total + kl_to_standard_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1)).sum(0)  # Appendix B, per j
    return total / len(x)


@torch.no_grad()
def active_units(model, data, threshold: float = 1e-2, batch_size: int = 1000, seed: int = 0) -> int:
    """How many latent units the data move: Var_x(E_q[z_j | x]) > threshold.

    Burda et al. (2016, section 5.2) count units this way: an inactive unit's posterior mean
    ignores x, so the decoder cannot use it. The threshold 1e-2 is theirs.
    """
    x = _rows(data, _generator(data, seed))
    with _evaluating(model):
        mu = torch.cat([model.encode(xb)[0] for xb in x.split(batch_size)])  # E_q[z | x] = mu(x)
    return int((mu.var(0) > threshold).sum())
