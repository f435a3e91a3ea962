"""Estimating the marginal likelihood log p(x): importance sampling, and the paper's Appendix D.

Importance sampling with the encoder as proposal (evaluate.log_likelihood does it for K = 5000):

    log p(x) ~= log 1/K sum_k w_k,   w_k = p(x, z_k) / q(z_k|x),   z_k ~ q(z|x)

Its expectation is the importance-weighted bound L_K of Burda et al. (2016): L_1 is the
ELBO (eq. 2), L_K rises with K, and L_K -> log p(x) as K -> infinity.

Appendix D of the paper (for a low-dimensional z) estimates p(x) from posterior samples:
  1. draw L samples z_l ~ p(z|x) with HMC (vae_utils.hmc);
  2. fit a density q_F(z) to them (here: a Gaussian with full covariance);
  3. draw L new samples z_l ~ p(z|x) and use

        1/p(x) = int q_F(z) dz / p(x) = int p(z|x) q_F(z) / p(x, z) dz
               ~= 1/L sum_l q_F(z_l) / (p(z_l) p(x|z_l))                  (Appendix D)

It is the harmonic-mean estimator made safe: q_F sits where the posterior is, so the
ratio q_F / p(x, z) stays bounded (a harmonic mean with the prior in place of q_F has
infinite variance as soon as the posterior is much narrower than the prior).
"""
from __future__ import annotations

import math

import torch

from . import hmc
from .elbo import LOG_2PI, log_weights


# -- importance sampling and the importance-weighted bound ---------------------------------

@torch.no_grad()
def importance_log_weights(model, x, n_samples: int, chunk: int = 500, generator=None,
                           rows: int = 2000):
    """log w_k = log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x): shape (n_samples, B), drawn in chunks.

    The decoder sees about `rows` (sample, datapoint) pairs per pass, a size whose activations
    stay in a CPU's cache: 6.0 s against 10.3 s with 50,000 rows per pass (784-500-20 VAE,
    100 digits x 5000 samples, one thread), with the same weights.
    """
    return torch.cat([log_weights(model, x, min(chunk, n_samples - k), generator, rows)
                      for k in range(0, n_samples, chunk)])


def log_mean_exp(a, dim: int = 0):
    """log (1/K sum_k exp a_k), computed stably with logsumexp."""
    return torch.logsumexp(a, dim) - math.log(a.shape[dim])


def iwae_bound_from_weights(log_w, k: int):
    """L_K for each datapoint, estimated from K'=len(log_w) weights split into K'/K disjoint blocks.

    L_K = E[log 1/K sum_{k<=K} w_k]: the log-mean-exp of each block of K weights, averaged
    over blocks. K = 1 gives the ELBO estimated with K' samples (estimator A, eq. 6);
    K = K' gives the single importance-sampled estimate of log p(x). Shape (B,).
    """
    n = (log_w.shape[0] // k) * k
    blocks = log_w[:n].reshape(n // k, k, *log_w.shape[1:])
    return log_mean_exp(blocks, dim=1).mean(0)


def effective_sample_size(log_w, dim: int = 0):
    """(sum_k w_k)^2 / sum_k w_k^2: how many equally weighted samples the K weights are worth.

    K when all weights are equal, 1 when one weight carries everything: a small value means
    heavy-tailed weights, and an estimate that a few lucky samples decide.
    """
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


# -- Appendix D -------------------------------------------------------------------------------

def fit_gaussian(z, jitter: float = 1e-6):
    """q_F(z): a Gaussian fitted to samples z (L, B, d) of each datapoint: (mean (B, d), Cholesky (B, d, d)).

    Maximum likelihood: the sample mean and covariance 1/L sum (z - m)(z - m)^T.
    """
    mean = z.mean(0)
    c = z - mean
    cov = torch.einsum("lbi,lbj->bij", c, c) / z.shape[0]
    cov = cov + jitter * torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    return mean, torch.linalg.cholesky(cov)


def log_gaussian(z, mean, chol):
    """log N(z; mean, C), C = chol chol^T, for z (..., B, d): shape (..., B).

    log N = -1/2 [ d log 2 pi + log det C + |r|^2 ],  chol r = z - mean,  log det C = 2 sum log chol_ii.
    """
    diff = (z - mean).unsqueeze(-1)
    r = torch.linalg.solve_triangular(chol.expand(*diff.shape[:-2], *chol.shape[-2:]), diff, upper=False)
    logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * (z.shape[-1] * LOG_2PI + logdet + (r.squeeze(-1) ** 2).sum(-1))


@torch.no_grad()
def appendix_d_from_samples(model, x, mean, chol, z):
    """Step 3 of Appendix D: log p(x) ~= -log 1/L sum_l q_F(z_l) / (p(z_l) p(x|z_l)), shape (B,).

    z (L, B, d): posterior samples drawn after (and apart from) those q_F = N(mean, chol chol^T)
    was fitted to.
    """
    return -log_mean_exp(log_gaussian(z, mean, chol) - hmc.log_joint(model, x, z), 0)


def appendix_d_log_px(model, x, n_samples: int = 100, n_chains: int = 10, burn_in: int = 100,
                      n_leapfrog: int = 10, generator=None):
    """The paper's marginal-likelihood estimator (Appendix D): log p(x) per datapoint, shape (B,).

    Step 1: HMC on p(z|x), n_samples draws; step 2: fit q_F to them; step 3: n_samples
    further draws of the same chains go into `appendix_d_from_samples`.
    """
    z, chains = hmc.posterior_samples(model, x, n_samples, n_chains, burn_in, n_leapfrog,
                                      generator=generator)  # step 1
    mean, chol = fit_gaussian(z)  # step 2: the density estimator q_F
    _, z_new = hmc.run(model, x, chains, n_samples // n_chains, n_leapfrog, adapt=False,
                       generator=generator)  # step 3: L new posterior samples
    return appendix_d_from_samples(model, x, mean, chol, z_new.flatten(0, 1))


@torch.no_grad()
def fitted_proposal_log_px(model, x, mean, chol, n_samples: int = 1000, generator=None):
    """Importance sampling with a fitted Gaussian q_F = N(mean, chol chol^T) as the proposal, shape (B,).

        log p(x) ~= log 1/K sum_k p(x, z_k) / q_F(z_k),   z_k ~ q_F

    A second opinion on Appendix D that uses the same q_F the other way round: q_F now
    proposes instead of weighting posterior samples, so the estimate is a stochastic lower
    bound again, tight when q_F is close to the posterior (exact when q_F is the posterior).
    """
    eps = torch.randn((n_samples, *mean.shape, 1), generator=generator, dtype=mean.dtype, device=mean.device)
    z = mean + (chol @ eps).squeeze(-1)
    return log_mean_exp(hmc.log_joint(model, x, z) - log_gaussian(z, mean, chol), 0)
