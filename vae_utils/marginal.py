"""The paper's marginal-likelihood estimator (Appendix D), and importance sampling with its q_F.

Appendix D (for a low-dimensional z) estimates p(x) from posterior samples:
  1. draw L samples z_l ~ p(z|x) with HMC (vae_utils.hmc);
  2. fit a density q_F(z) to them (here: a Gaussian with full covariance);
  3. draw L new samples z_l ~ p(z|x) and use

        1/p(x) = int q_F(z) dz / p(x) = int p(z|x) q_F(z) / p(x, z) dz
               ~= 1/L sum_l q_F(z_l) / (p(z_l) p(x|z_l))                  (Appendix D)

It is the harmonic-mean estimator made safer: q_F sits where the posterior is, so the ratio
q_F / p(x, z) stays moderate where the samples fall (a harmonic mean with the prior in place
of q_F has infinite variance as soon as the posterior is much narrower than the prior). Its
variance is finite only if q_F's tails are lighter than the posterior's, which a Gaussian
fitted to the samples does not guarantee. With exact posterior samples the estimate of 1/p(x)
is unbiased, so log p(x) is overestimated on average; HMC's samples are only approximately
exact. `bracket_log_px` pairs it with importance sampling from the same q_F, which errs the
other way.

The paper's own evaluation setting is in Appendix E (its last paragraph): the first 1000
training and test datapoints, 50 posterior samples each, HMC with 4 leapfrog steps. It
states no acceptance target for these chains (its 90% is MCEM's, Appendix E); vae_utils.hmc
uses 90% here too.

Importance sampling with the encoder as proposal lives in vae_utils.importance.
"""
from __future__ import annotations

import math

import torch

from . import hmc
from .elbo import LOG_2PI, log_joint
from .importance import check_n_samples, log_mean_exp

__all__ = ["fit_gaussian", "log_gaussian", "appendix_d_from_samples", "appendix_d_log_px",
           "fitted_proposal_log_px", "bracket_log_px"]


def fit_gaussian(z, jitter: float = 1e-6):
    """q_F(z): a Gaussian fitted to samples z (L, B, d) of each datapoint: (mean (B, d), Cholesky (B, d, d)).

    Maximum likelihood: the sample mean and covariance 1/L sum (z - m)(z - m)^T.
    """
    mean = z.mean(0)
    c = z - mean
    cov = torch.einsum("lbi,lbj->bij", c, c) / z.shape[0]  # 1/L sum_l (z_l - m)(z_l - m)^T
    cov = cov + jitter * torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    return mean, torch.linalg.cholesky(cov)


def log_gaussian(z, mean, chol):
    """log N(z; mean, C), C = chol chol^T, for z (..., B, d): shape (..., B).

    log N = -1/2 [ d log 2 pi + log det C + |r|^2 ],  chol r = z - mean,  log det C = 2 sum log chol_ii.
    """
    diff = (z - mean).unsqueeze(-1)
    # r = chol^-1 (z - mean), so |r|^2 = (z - mean)^T C^-1 (z - mean)
    r = torch.linalg.solve_triangular(chol.expand(*diff.shape[:-2], *chol.shape[-2:]), diff, upper=False)
    logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * (z.shape[-1] * LOG_2PI + logdet + (r.squeeze(-1) ** 2).sum(-1))


@torch.no_grad()
def appendix_d_from_samples(model, x, mean, chol, z):
    """Step 3 of Appendix D: log p(x) ~= -log 1/L sum_l q_F(z_l) / (p(z_l) p(x|z_l)), shape (B,).

    z (L, B, d): posterior samples drawn after (and apart from) those q_F = N(mean, chol chol^T)
    was fitted to.
    """
    return -log_mean_exp(log_gaussian(z, mean, chol) - log_joint(model, x, z), 0)  # log q_F(z_l) - log p(x, z_l)


def appendix_d_log_px(model, x, n_samples: int = 100, n_chains: int = 10, burn_in: int = 100,
                      n_leapfrog: int = 10, generator=None):
    """The paper's marginal-likelihood estimator (Appendix D): log p(x) per datapoint, shape (B,).

    Step 1: HMC on p(z|x), n_samples draws; step 2: fit q_F to them; step 3: n_samples
    further draws of the same chains go into `appendix_d_from_samples`.
    """
    return _appendix_d(model, x, n_samples, n_chains, burn_in, n_leapfrog, generator)[0]


def _appendix_d(model, x, n_samples, n_chains, burn_in, n_leapfrog, generator):
    """Appendix D's three steps: (the estimate (B,), q_F's mean, q_F's Cholesky factor)."""
    z, chains = hmc.posterior_samples(model, x, n_samples, n_chains, burn_in, n_leapfrog,
                                      generator=generator)  # step 1
    mean, chol = fit_gaussian(z)  # step 2: the density estimator q_F
    _, z_new = hmc.run(model, x, chains, n_samples // n_chains, n_leapfrog, adapt=False,
                       generator=generator)  # step 3: L new posterior samples
    return appendix_d_from_samples(model, x, mean, chol, z_new.flatten(0, 1)), mean, chol


@torch.no_grad()
def fitted_proposal_log_px(model, x, mean, chol, n_samples: int = 1000, generator=None, chunk: int = 500):
    """Importance sampling with a fitted Gaussian q_F = N(mean, chol chol^T) as the proposal, shape (B,).

        log p(x) ~= log 1/K sum_k p(x, z_k) / q_F(z_k),   z_k ~ q_F,   K = n_samples

    A second opinion on Appendix D that uses the same q_F the other way round: q_F now
    proposes instead of weighting posterior samples, so the estimate is a stochastic lower
    bound again (E[estimate] <= log p(x) for any q_F, by Jensen's inequality), tight when
    q_F is close to the posterior (exact when q_F is the posterior). The K samples are
    drawn `chunk` at a time and only a running log-sum-exp is kept, so memory does not grow
    with K.
    """
    check_n_samples(n_samples)
    acc = torch.full(mean.shape[:-1], -math.inf, dtype=mean.dtype, device=mean.device)  # log sum_k w_k so far
    for k0 in range(0, n_samples, chunk):
        eps = torch.randn((min(chunk, n_samples - k0), *mean.shape, 1), generator=generator,
                          dtype=mean.dtype, device=mean.device)
        z = mean + (chol @ eps).squeeze(-1)  # z = mean + chol eps ~ N(mean, chol chol^T)
        log_w = log_joint(model, x, z) - log_gaussian(z, mean, chol)  # log p(x, z_k) - log q_F(z_k)
        acc = torch.logaddexp(acc, torch.logsumexp(log_w, 0))
    return acc - math.log(n_samples)  # log 1/K sum_k w_k


def bracket_log_px(model, x, n_samples: int = 200, n_chains: int = 10, burn_in: int = 100,
                   n_leapfrog: int = 10, n_importance: int = 5000, generator=None):
    """Two estimates of log p(x) from one fitted q_F, one erring up and one down: (appendix_d, fitted_is).

    Steps 1-2 of Appendix D (HMC samples, q_F fitted to them), then both uses of q_F:
    Appendix D's step 3 on n_samples new posterior samples, and importance sampling with
    q_F as the proposal (`fitted_proposal_log_px`, n_importance samples). Appendix D
    estimates 1/p(x) without bias, so its log errs upwards on average; importance sampling
    estimates p(x) without bias, so its log errs downwards on average:

        E[fitted_is] <= log p(x) <= E[appendix_d]     (the right half: with exact posterior samples)

    The left inequality holds for any q_F; the right one needs exact, independent posterior
    samples, which HMC only approaches. Run with more samples and leapfrog steps than the
    estimate to be checked, this is a reference for it. Each output has shape (B,).
    """
    appendix_d, mean, chol = _appendix_d(model, x, n_samples, n_chains, burn_in, n_leapfrog, generator)
    return appendix_d, fitted_proposal_log_px(model, x, mean, chol, n_importance, generator)
