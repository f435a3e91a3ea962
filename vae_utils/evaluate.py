"""Evaluation: the test-set lower bound, and importance-sampled estimates of log p(x).

    log p(x) = log E_{q(z|x)}[p(x, z) / q(z|x)]
            ~= log 1/K sum_k p(x, z_k) / q(z_k|x),   z_k ~ q(z|x)

The estimate is a log-mean-exp of importance weights with the encoder as proposal. Its
expectation is itself a lower bound on log p(x) (Jensen) that rises with K towards it.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from .data import Split
from .elbo import ESTIMATORS, kl_to_standard_normal, log_weights


def _rows(data) -> torch.Tensor:
    """The data as a (N, D) tensor; a dynamically binarized split is binarized once, seeded."""
    if isinstance(data, Split):
        if data.dynamic:
            gen = torch.Generator(device=data.x.device).manual_seed(1234)
            return torch.bernoulli(data.x, generator=gen)
        return data.x
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
    """The average lower bound per datapoint, in nats (estimator B with L samples by default)."""
    x = _rows(data)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with _evaluating(model):
        total = sum(ESTIMATORS[estimator](model, xb, n_samples, gen).sum() for xb in x.split(batch_size))
    return total.item() / len(x)


# (digits, samples) per pass of log_likelihood: 2,000 decoder rows (6 MB of MNIST logits) stay
# in a CPU's cache, twice as fast as 50 x 1000 on 2 cores (benchmarks/README.md); a GPU wants
# large passes to keep it busy.
CPU_PASS, GPU_PASS = (20, 100), (100, 1000)


@torch.no_grad()
def log_likelihood(model, data, n_samples: int = 5000, batch_size: int | None = None,
                   chunk: int | None = None, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """Importance-sampled log p(x) for each datapoint, in nats: shape (N,).

    Memory stays at about batch_size * chunk * D floats whatever n_samples is: weights are
    drawn `chunk` at a time and combined with a running logsumexp. Left as None, the pass
    size suits the data's device (CPU_PASS, or GPU_PASS on CUDA or MPS).
    """
    from tqdm.auto import tqdm

    x = _rows(data)
    default_batch, default_chunk = CPU_PASS if x.device.type == "cpu" else GPU_PASS
    batch_size, chunk = batch_size or default_batch, chunk or default_chunk
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    with _evaluating(model):
        for xb in tqdm(x.split(batch_size), disable=not progress, desc="log p(x)"):
            acc = torch.full((len(xb),), -math.inf, device=x.device, dtype=x.dtype)
            for k0 in range(0, n_samples, chunk):
                lw = log_weights(model, xb, min(chunk, n_samples - k0), gen)
                acc = torch.logaddexp(acc, torch.logsumexp(lw, 0))  # running log-sum-exp
            out.append(acc - math.log(n_samples))  # log-mean-exp over the K weights
    return torch.cat(out)


@torch.no_grad()
def kl_per_dimension(model, data, batch_size: int = 1000) -> torch.Tensor:
    """Average KL(q(z_j|x) || p(z_j)) of each latent dimension j, in nats: shape (z_dim,).

    A dimension with KL near 0 is unused: q ignores x there and matches the prior.
    """
    x = _rows(data)
    total = 0
    for xb in x.split(batch_size):
        mu, logvar = model.encode(xb)
        total = total + kl_to_standard_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1)).sum(0)
    return total / len(x)


@torch.no_grad()
def active_units(model, data, threshold: float = 1e-2, batch_size: int = 1000) -> int:
    """How many latent units the data move: Var_x(E_q[z_j | x]) > threshold.

    Burda et al. (2016, section 5.2) count units this way: an inactive unit's posterior mean
    ignores x, so the decoder cannot use it. The threshold 1e-2 is theirs.
    """
    x = _rows(data)
    mu = torch.cat([model.encode(xb)[0] for xb in x.split(batch_size)])
    return int((mu.var(0) > threshold).sum())
