"""Exercises of notebook 01 (the evidence lower bound): checkers and reference solutions."""
from __future__ import annotations

import math

import torch

from . import Exercise, Mistake


# -- 1. Appendix B: the KL term in closed form ----------------------------------------------

def kl_to_prior(mu, logvar):
    """KL(N(mu, diag sigma^2) || N(0, I)) for each row: shape (B,). Appendix B:
    -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)."""
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def _kl_cases():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    return [(mu, logvar), (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64)),
            (mu[:, :1] * 3, logvar[:, :1] - 2)]


kl = Exercise(
    "01.1", "the KL term of Appendix B", kl_to_prior, _kl_cases,
    mistakes=[
        Mistake("missing half", "the factor 1/2 in front of the sum is missing: your KL is twice the true one.",
                lambda mu, logvar: -(1 + logvar - mu**2 - logvar.exp()).sum(-1)),
        Mistake("log sigma for log sigma^2",
                "you read `logvar` as log sigma, not log sigma^2: here sigma^2 = exp(logvar) and "
                "log sigma^2 = logvar itself.",
                lambda mu, logvar: -0.5 * (1 + 2 * logvar - mu**2 - (2 * logvar).exp()).sum(-1)),
        Mistake("sign", "the sign is flipped: a KL divergence is never negative; Appendix B gives -KL.",
                lambda mu, logvar: 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)),
        Mistake("mean over dimensions", "you averaged over the latent dimensions: the KL of a diagonal "
                "Gaussian is the sum of the per-dimension KLs, not their mean.",
                lambda mu, logvar: -0.5 * (1 + logvar - mu**2 - logvar.exp()).mean(-1)),
        Mistake("no sum", "one value per latent dimension: sum over the last dimension to get one KL per row.",
                lambda mu, logvar: -0.5 * (1 + logvar - mu**2 - logvar.exp())),
    ],
    hint="""
        For one dimension, KL(N(mu, s^2) || N(0, 1)) = 1/2 (mu^2 + s^2 - 1 - log s^2).
        `logvar` holds log s^2, so s^2 = logvar.exp(). The KL of a diagonal Gaussian is the
        sum of its dimensions' KLs: sum over the last dimension (`.sum(-1)`).
        Check: at mu = 0, logvar = 0 the two distributions are equal and the KL is 0.
    """,
)


# -- 2. The log-density of a diagonal Gaussian, log q(z|x) ------------------------------------

LOG_2PI = math.log(2 * math.pi)


def log_normal(z, mu, logvar):
    """log N(z; mu, diag sigma^2), summed over the last dimension: shape z.shape[:-1] (broadcast
    with mu). Per dimension: -1/2 [log 2 pi + log sigma_j^2 + (z_j - mu_j)^2 / sigma_j^2]."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def _log_normal_cases():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    z = mu + torch.randn(4, 5, 3, generator=g, dtype=torch.float64)         # 4 draws per row, broadcast against mu
    z1 = torch.randn(6, 1, generator=g, dtype=torch.float64)
    return [(z, mu, logvar), (z1, torch.full((6, 1), 0.5, dtype=torch.float64), torch.full((6, 1), -1.5, dtype=torch.float64)),
            (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64),
             torch.zeros(2, 4, dtype=torch.float64))]


log_density = Exercise(
    "01.2", "log q(z|x) of a diagonal Gaussian", log_normal, _log_normal_cases,
    mistakes=[
        Mistake("log sigma for log sigma^2",
                "you read `logvar` as log sigma, not log sigma^2: the variance is sigma^2 = exp(logvar) "
                "and the normalizing term is logvar itself, not 2 * logvar.",
                lambda z, mu, logvar: -0.5 * (LOG_2PI + 2 * logvar + (z - mu) ** 2 * torch.exp(-2 * logvar)).sum(-1)),
        Mistake("missing 2 pi", "the log 2 pi of the normalizing constant is missing: each dimension "
                "contributes -1/2 log(2 pi sigma_j^2) = -1/2 (log 2 pi + logvar_j).",
                lambda z, mu, logvar: -0.5 * (logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)),
        Mistake("missing log sigma^2", "the -1/2 log sigma_j^2 of the normalizing constant is missing: "
                "a narrower Gaussian has a higher peak, so add -1/2 * logvar per dimension.",
                lambda z, mu, logvar: -0.5 * (LOG_2PI + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)),
        Mistake("sigma for sigma^2", "the squared distance is divided by sigma, not sigma^2: "
                "use (z - mu)**2 / exp(logvar), i.e. (z - mu)**2 * exp(-logvar).",
                lambda z, mu, logvar: -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-0.5 * logvar)).sum(-1)),
        Mistake("mean over dimensions", "you averaged over the dimensions: the dimensions of a diagonal "
                "Gaussian are independent, so their log-densities add up (`.sum(-1)`), they are not averaged.",
                lambda z, mu, logvar: -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).mean(-1)),
    ],
    hint="""
        One dimension: N(z; mu, s^2) = exp(-(z - mu)^2 / (2 s^2)) / sqrt(2 pi s^2), so
        log N = -1/2 [log 2 pi + log s^2 + (z - mu)^2 / s^2]. Here log s^2 = logvar and
        s^2 = logvar.exp(). A diagonal Gaussian is a product over dimensions: sum the logs
        over the last dimension. Check: at z = mu = 0, logvar = 0 each dimension gives
        -1/2 log 2 pi = -0.919.
    """,
)


# -- 3. The bound by Monte Carlo, eq. 2's form, from given noise --------------------------

def elbo_estimate(model, x, mu, logvar, eps):
    """Monte Carlo estimate of L (eq. 2), one value per datapoint: shape (B,).

    z_l = mu + sigma * eps_l (sigma = exp(logvar / 2), eps is (L, B, J)), then
    L ~= 1/L sum_l [log p(x, z_l) - log q(z_l|x)],  log p(x, z) = log p(x|z) + log p(z).
    """
    z = mu + torch.exp(0.5 * logvar) * eps                                   # (L, B, J)
    log_joint = model.log_likelihood(x, z) + model.log_prior(z)
    return (log_joint - log_normal(z, mu, logvar)).mean(0)


def _mc_parts(model, x, mu, logvar, eps, sigma=None):
    """log p(x|z), log p(z), log q(z|x) at z = mu + sigma * eps, each (L, B): the mistakes' pieces."""
    z = mu + (torch.exp(0.5 * logvar) if sigma is None else sigma) * eps
    return model.log_likelihood(x, z), model.log_prior(z), log_normal(z, mu, logvar)


def _elbo_cases():
    from ..linear_gaussian import random_model
    cases = []
    for seed, (D, J, s, L, B) in enumerate([(5, 3, 0.7, 4, 6), (2, 1, 0.5, 1, 3), (4, 2, 1.5, 7, 2)]):
        model = random_model(D, J, s=s, seed=seed)
        g = torch.Generator().manual_seed(10 + seed)
        x, _ = model.sample(B, generator=g)
        mu = torch.randn(B, J, generator=g, dtype=torch.float64)
        logvar = torch.randn(B, J, generator=g, dtype=torch.float64) - 1
        eps = torch.randn(L, B, J, generator=g, dtype=torch.float64)
        cases.append((model, x, mu, logvar, eps))
    return cases


def _kl_sign(model, x, mu, logvar, eps):
    lik, prior, q = _mc_parts(model, x, mu, logvar, eps)
    return (lik + (q - prior)).mean(0)                                       # + KL instead of - KL


def _deterministic(model, x, mu, logvar, eps):
    lik, prior, q = _mc_parts(model, x, mu, logvar, 0 * eps)                 # z = mu
    return (lik + prior - q).mean(0)


def _no_entropy(model, x, mu, logvar, eps):
    lik, prior, _ = _mc_parts(model, x, mu, logvar, eps)
    return (lik + prior).mean(0)


def _sigma_as_exp_logvar(model, x, mu, logvar, eps):
    lik, prior, q = _mc_parts(model, x, mu, logvar, eps, sigma=logvar.exp())
    return (lik + prior - q).mean(0)


def _sum_over_samples(model, x, mu, logvar, eps):
    lik, prior, q = _mc_parts(model, x, mu, logvar, eps)
    return (lik + prior - q).sum(0)


def _closed_form_kl(model, x, mu, logvar, eps):
    lik, _, _ = _mc_parts(model, x, mu, logvar, eps)
    return lik.mean(0) - kl_to_prior(mu, logvar)


bound = Exercise(
    "01.3", "the bound L by Monte Carlo (eq. 2)", elbo_estimate, _elbo_cases,
    mistakes=[
        Mistake("KL sign", "the KL term has the wrong sign: L = log p(x|z) - [log q(z|x) - log p(z)], "
                "so subtract log q(z|x) and add log p(z); your estimate adds the KL.", _kl_sign),
        Mistake("deterministic z", "your z does not depend on `eps`: you evaluated at z = mu. L is an "
                "expectation over q: draw z_l = mu + sigma * eps_l, one per row of eps.", _deterministic),
        Mistake("no entropy term", "the -log q(z|x) term is missing: you estimated E_q[log p(x, z)] alone, "
                "which a q shrunk to a point would maximize. Subtract log N(z_l; mu, sigma^2).", _no_entropy),
        Mistake("sigma = exp(logvar)", "your z uses exp(logvar) = sigma^2 as its scale: the standard "
                "deviation is sigma = exp(logvar / 2), so z = mu + exp(0.5 * logvar) * eps.", _sigma_as_exp_logvar),
        Mistake("sum over samples", "you summed over the L samples: the Monte Carlo estimate is their "
                "average, `.mean(0)`, or it grows with L.", _sum_over_samples),
        Mistake("closed-form KL", "you used Appendix B's closed-form KL with a sampled reconstruction term: "
                "that is estimator B (eq. 7, notebook 02), a valid estimate but not the one asked for here. "
                "Sample every term: average log p(x, z_l) - log q(z_l|x).", _closed_form_kl),
    ],
    hint="""
        1. z = mu + exp(0.5 * logvar) * eps: shape (L, B, J), broadcast over the L rows of eps.
        2. log p(x, z) = model.log_likelihood(x, z) + model.log_prior(z): shape (L, B).
        3. log q(z|x) = log N(z; mu, diag exp(logvar)): your `log_normal` from 01.2 (or
           vae_utils.elbo.log_normal): shape (L, B).
        4. Average log p(x, z) - log q(z|x) over the L samples (dimension 0).
    """,
)


# -- 4. The exact posterior of pPCA: the optimal encoder is linear in x ----------------------

def exact_encoder(W, b, s):
    """The exact posterior p(z|x) = N(A x + c, S) of pPCA, as an encoder: (A, c, S), shapes
    (J, D), (J,), (J, J). S = (I + W^T W / s^2)^-1, A = S W^T / s^2, c = -A b."""
    S = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W.T @ W / s**2)
    A = S @ W.T / s**2
    return A, -A @ b, S


def _encoder_cases():
    cases = []
    for seed, (D, J, s) in enumerate([(5, 3, 0.7), (2, 1, 0.5), (6, 2, 2.0)]):
        g = torch.Generator().manual_seed(20 + seed)
        W = torch.randn(D, J, generator=g, dtype=torch.float64)
        b = torch.randn(D, generator=g, dtype=torch.float64) + 1
        cases.append((W, b, s))
    return cases


def _encoder_from(P, W, b, s2):
    """(A, c, S) built the solution's way from a precision P that may be wrong and a noise variance s2."""
    S = torch.linalg.inv(P)
    A = S @ W.T / s2
    return A, -A @ b, S


def _eye(W):
    return torch.eye(W.shape[1], dtype=W.dtype)


def _no_noise_variance(W, b, s):
    return _encoder_from(_eye(W) + W.T @ W, W, b, 1.0)


def _s_for_s2(W, b, s):
    return _encoder_from(_eye(W) + W.T @ W / s, W, b, s)


def _no_prior(W, b, s):
    return _encoder_from(W.T @ W / s**2, W, b, s**2)


def _precision_for_covariance(W, b, s):
    P = _eye(W) + W.T @ W / s**2
    A = P @ W.T / s**2
    return A, -A @ b, P


def _no_offset(W, b, s):
    A, _, S = exact_encoder(W, b, s)
    return A, torch.zeros_like(A[:, 0]), S


encoder = Exercise(
    "01.4", "the exact posterior of pPCA as a linear encoder", exact_encoder, _encoder_cases,
    mistakes=[
        Mistake("no noise variance", "the noise variance s^2 is missing: p(x|z) = N(Wz + b, s^2 I) puts "
                "W^T W / s^2 in the precision and a 1 / s^2 in A.", _no_noise_variance),
        Mistake("s for s^2", "you divided by s, the noise's standard deviation: the likelihood's precision "
                "is 1 / s^2, so use W^T W / s**2 and S W^T / s**2.", _s_for_s2),
        Mistake("no prior", "the identity from the prior p(z) = N(0, I) is missing from the precision: "
                "your mean is the least-squares code (the best-reconstructing code of section 5), not the "
                "posterior mean, which the prior shrinks towards 0. Use S = (I + W^T W / s^2)^-1.", _no_prior),
        Mistake("precision for covariance", "your S is the precision I + W^T W / s^2, not its inverse: "
                "the posterior covariance is S = (I + W^T W / s^2)^-1 (torch.linalg.inv), and A uses it.",
                _precision_for_covariance),
        Mistake("no offset", "c is 0: the posterior mean is S W^T (x - b) / s^2, so the decoder's offset b "
                "enters as c = -A b.", _no_offset),
    ],
    hint="""
        Bayes' rule: log p(z|x) = log p(x|z) + log p(z) + const
          = -1/2 z^T (I + W^T W / s^2) z + z^T W^T (x - b) / s^2 + const.
        A Gaussian N(m, S) has log-density -1/2 z^T S^-1 z + z^T S^-1 m + const: match the two.
        So S^-1 = I + W^T W / s^2 (the prior's I plus the likelihood's W^T W / s^2) and
        m = S W^T (x - b) / s^2 = A x + c. Neither A, c nor S depends on x.
        torch.eye(J, dtype=W.dtype), torch.linalg.inv, and `@` for matrix products.
    """,
)
