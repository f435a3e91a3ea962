"""Importance sampling with the encoder as proposal: weights, the IWAE bound, and log p(x).

    log p(x) = log E_{q(z|x)}[w],   w = p(x, z) / q(z|x)
            ~= log 1/K sum_k w_k,   z_k ~ q(z|x)                         (the estimate)

The estimate is a log-mean-exp of K importance weights. Its expectation is the
importance-weighted bound L_K of Burda et al. (2016): L_1 is the ELBO (eq. 2 of the paper),
L_K rises with K, and L_K -> log p(x) as K -> infinity.

Pass size, the one knob. The decoder runs on `rows` (sample, datapoint) pairs per pass;
`rows=None` means `pass_rows(device)`: CPU_ROWS on a CPU, GPU_ROWS on CUDA or MPS. On a CPU
a cache-sized pass (2,000 rows: 6 MB of MNIST logits) is faster than a large one; a GPU
wants large passes to keep it busy. Set the constants to change the default everywhere.
Where the pass size only splits the same draws into pieces (`log_weights`,
`importance_log_weights`), it does not change the weights; in `log_likelihood` it also
fixes how many datapoints share a draw, so it changes which random numbers go where.

`model` is anything with `encode(x) -> (mu, logvar)` and `log_likelihood(x, z)`.
"""
from __future__ import annotations

import math
from numbers import Integral

import torch

from .elbo import log_joint, log_normal, reparameterize

CPU_ROWS = 2_000  # (sample, datapoint) rows per decoder pass on a CPU
GPU_ROWS = 100_000  # ... on CUDA or MPS


def pass_rows(device) -> int:
    """The default pass size for data on `device`: CPU_ROWS on a CPU, else GPU_ROWS."""
    return CPU_ROWS if torch.device(device).type == "cpu" else GPU_ROWS


def check_n_samples(n_samples) -> None:
    """A clear error unless n_samples is an integer >= 1 (log 1/K of K = 0 samples is undefined)."""
    if isinstance(n_samples, bool) or not (isinstance(n_samples, Integral) and n_samples >= 1):
        raise ValueError(f"n_samples={n_samples!r}: an estimate needs at least one sample per "
                         "datapoint; pass an integer n_samples >= 1 (e.g. 5000 for log p(x))")


def log_mean_exp(a, dim: int = 0):
    """log (1/K sum_k exp a_k) over `dim`, computed stably with logsumexp."""
    return torch.logsumexp(a, dim) - math.log(a.shape[dim])


def log_weights(model, x, n_samples: int, generator=None, rows: int | None = None):
    """log w_k = log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x): shape (n_samples, B).

    One draw of all n_samples * B samples; the decoder sees them in passes of about `rows`
    (sample, datapoint) pairs (None: all at once). The pass size does not change the draws.
    """
    mu, logvar = model.encode(x)
    z = reparameterize(mu, logvar, n_samples, generator)  # (n_samples, B, d)
    per_pass = n_samples if rows is None else max(1, rows // len(x))  # samples per pass
    if per_pass >= n_samples:
        log_pxz = log_joint(model, x, z)
    else:
        log_pxz = torch.cat([log_joint(model, x, zs) for zs in z.split(per_pass)])
    return log_pxz - log_normal(z, mu, logvar)  # log p(x, z_k) - log q(z_k|x)


def iwae_bound(model, x, n_samples: int, generator=None):
    """The importance-weighted bound (Burda et al. 2016), one draw: log 1/K sum_k w_k, shape (B,).

    K = 1 gives estimator A with L = 1 (eq. 6); it rises with K towards log p(x).
    """
    check_n_samples(n_samples)
    return log_mean_exp(log_weights(model, x, n_samples, generator), 0)


@torch.no_grad()
def importance_log_weights(model, x, n_samples: int, chunk: int = 500, generator=None,
                           rows: int | None = None):
    """log w_k for k = 1..n_samples, drawn `chunk` samples at a time: shape (n_samples, B).

    The same weights as one `log_weights` call per chunk; `rows` (default `pass_rows`)
    splits each chunk into decoder passes.
    """
    check_n_samples(n_samples)
    rows = rows or pass_rows(x.device)
    return torch.cat([log_weights(model, x, min(chunk, n_samples - k), generator, rows)
                      for k in range(0, n_samples, chunk)])


def iwae_bound_from_weights(log_w, k: int):
    """L_k for each datapoint, estimated from K = len(log_w) weights split into K // k disjoint blocks.

    L_k = E[log 1/k sum_{j<=k} w_j]: the log-mean-exp of each block of k weights, averaged
    over blocks (the K % k weights left over are not used). k = 1 gives the ELBO estimated
    with K samples (estimator A, eq. 6); k = K gives the single importance-sampled estimate
    of log p(x). Shape (B,).
    """
    n_weights = log_w.shape[0]
    if not (isinstance(k, Integral) and 1 <= k <= n_weights):
        raise ValueError(f"k={k!r}, but log_w holds K={n_weights} weights per datapoint: L_k needs "
                         f"an integer 1 <= k <= K; pass a smaller k, or draw at least k weights "
                         f"(importance_log_weights(model, x, n_samples={k}))")
    n = (n_weights // k) * k
    blocks = log_w[:n].reshape(n // k, k, *log_w.shape[1:])  # (K // k, k, B)
    return log_mean_exp(blocks, dim=1).mean(0)


def effective_sample_size(log_w, dim: int = 0):
    """(sum_k w_k)^2 / sum_k w_k^2: how many equally weighted samples the K weights are worth.

    K when all weights are equal, 1 when one weight carries everything: a small value means
    heavy-tailed weights, and an estimate that a few lucky samples decide.
    """
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


@torch.no_grad()
def log_likelihood(model, x, n_samples: int = 5000, rows: int | None = None, chunk: int = 100,
                   generator=None, progress: bool = False) -> torch.Tensor:
    """Importance-sampled log p(x) for each row of x (N, D), in nats: shape (N,).

        log p(x) ~= log 1/K sum_k w_k,   K = n_samples

    Datapoints go in batches of rows // chunk (default: 20 digits x 100 samples on a CPU);
    each batch draws its K weights `chunk` samples at a time and keeps only a running
    log-sum-exp, so memory stays at about `rows` decoder rows whatever K is.
    """
    from tqdm.auto import tqdm

    check_n_samples(n_samples)
    rows = rows or pass_rows(x.device)
    out = []
    for xb in tqdm(x.split(max(1, rows // chunk)), disable=not progress, desc="log p(x)"):
        acc = torch.full((len(xb),), -math.inf, device=x.device, dtype=x.dtype)  # log sum_k w_k so far
        for k0 in range(0, n_samples, chunk):
            lw = log_weights(model, xb, min(chunk, n_samples - k0), generator, rows)
            acc = torch.logaddexp(acc, torch.logsumexp(lw, 0))  # running log-sum-exp
        out.append(acc - math.log(n_samples))  # log (1/K sum_k w_k)
    return torch.cat(out)
