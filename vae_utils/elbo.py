"""Objectives: the variational lower bound L(theta, phi; x) and its SGVB estimators.

    log p(x) >= L = E_q[log p(x, z) - log q(z|x)]                    (eq. 2-3)
              = -KL(q(z|x) || p(z)) + E_q[log p(x|z)]                  (eq. 3)

Every function returns one value per datapoint, in nats; average over a batch for
"nats per datapoint", the unit of the paper's figures. `model` is anything with
`encode(x) -> (mu, logvar)` and `log_likelihood(x, z) -> log p(x|z)`, e.g. models.VAE.

The densities every other module uses live here: `log_normal`, `log_standard_normal` (the
prior) and `log_joint` = log p(x, z). The importance-weighted bound and its weights live in
vae_utils.importance.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_to_standard_normal(mu, logvar):
    """KL(N(mu, diag sigma^2) || N(0, I)), summed over the last dimension.

    Appendix B: -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    """
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def log_normal(z, mu, logvar):
    """log N(z; mu, diag exp(logvar)), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def log_standard_normal(z):
    """log N(z; 0, I), summed over the last dimension: the prior log p(z)."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def log_joint(model, x, z):
    """log p(x, z) = log p(x|z) + log p(z), the prior being N(0, I): shape (..., B).

    The unnormalised log posterior: HMC's target (vae_utils.hmc), the numerator of every
    importance weight (vae_utils.importance) and Monte Carlo EM's M-step objective.
    """
    return model.log_likelihood(x, z) + log_standard_normal(z)


def reparameterize(mu, logvar, n_samples: int = 1, generator=None):
    """z = mu + sigma * eps, eps ~ N(0, I)   (section 2.4): shape (n_samples, *mu.shape).

    The randomness sits in eps, so z is a differentiable function of (mu, logvar).
    """
    eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps  # sigma = exp(log sigma^2 / 2)


def sgvb_a(model, x, n_samples: int = 1, generator=None, kl_weight: float = 1.0):
    """Estimator A (eq. 6): 1/L sum_l [log p(x, z_l) - log q(z_l|x)], z_l ~ q(z|x).

    kl_weight (beta) scales log p(z_l) - log q(z_l|x), a sample of -KL; see sgvb_b.
    """
    mu, logvar = model.encode(x)
    z = reparameterize(mu, logvar, n_samples, generator)
    log_prior_ratio = log_standard_normal(z) - log_normal(z, mu, logvar)  # log p(z_l) - log q(z_l|x)
    return (model.log_likelihood(x, z) + kl_weight * log_prior_ratio).mean(0)  # eq. 6


def sgvb_b(model, x, n_samples: int = 1, generator=None, kl_weight: float = 1.0):
    """Estimator B (eq. 7): -KL(q(z|x) || p(z)) + 1/L sum_l log p(x|z_l).

    The KL is computed exactly (Appendix B), so only the reconstruction term is sampled.
    The paper expects less variance than estimator A; for the value that holds when q is
    narrow, and for the gradients it depends on q (notebook 02 measures both).

    kl_weight (beta) multiplies the KL. Only beta = 1 is the bound; beta < 1 early in
    training is a KL warm-up (Bowman et al. 2016, Sonderby et al. 2016): latent units get
    used before the KL's pull to the prior can switch them off. beta > 1 (Higgins et al.
    2017's beta-VAE) subtracts (beta - 1) KL more: still below log p(x), a looser bound.
    """
    mu, logvar = model.encode(x)
    z = reparameterize(mu, logvar, n_samples, generator)
    return model.log_likelihood(x, z).mean(0) - kl_weight * kl_to_standard_normal(mu, logvar)  # eq. 7


ESTIMATORS = {"A": sgvb_a, "B": sgvb_b}


def estimator(name: str):
    """The estimator called `name` in ESTIMATORS ("A": eq. 6, "B": eq. 7); a clear error otherwise."""
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"estimator={name!r} is not an SGVB estimator; pass one of "
                         f"{list(ESTIMATORS)} ('A': eq. 6 of the paper, 'B': eq. 7)") from None

