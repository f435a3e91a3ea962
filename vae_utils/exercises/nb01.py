"""Exercises of notebook 01 (the evidence lower bound): checkers and reference solutions."""
from __future__ import annotations

import math

import torch

from ..elbo import LOG_2PI  # the mistakes' constant; solutions spell it out to be pasteable
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
                "log sigma^2 = logvar itself (torch.distributions.Normal takes the standard deviation: "
                "use (0.5 * logvar).exp()).",
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
        One dimension at a time: KL = E_q[log q(z)] - E_q[log p(z)]. Write out both
        log-densities (their log 2 pi terms cancel); each holds a squared distance, whose
        average under q you know: E_q[(z - mu)^2] = sigma^2 and E_q[z^2] = mu^2 + sigma^2.
        `logvar` holds log sigma^2, so sigma^2 is its exp. A diagonal Gaussian's KL is the
        sum of its dimensions' KLs. Check: at mu = 0, logvar = 0, q is the prior: KL = 0.
    """,
)


# -- 2. The log-density of a diagonal Gaussian, log q(z|x) ------------------------------------


def log_normal(z, mu, logvar):
    """log N(z; mu, diag sigma^2), summed over the last dimension: shape z.shape[:-1] (broadcast
    with mu). Per dimension: -1/2 [log 2 pi + log sigma_j^2 + (z_j - mu_j)^2 / sigma_j^2]."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


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
                "and the normalizing term is logvar itself, not 2 * logvar (torch.distributions.Normal "
                "takes the standard deviation: use (0.5 * logvar).exp()).",
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
        Take the log of the 1-D density in the statement: a constant, a term in sigma^2 alone,
        and the squared distance over sigma^2. `logvar` is log sigma^2: it gives the middle
        term as it is, and sigma^2 (or 1 / sigma^2) through exp. The dimensions of a diagonal
        Gaussian are independent: how do the logs of independent densities combine?
        Check: at z = mu = 0, logvar = 0 each dimension gives -1/2 log 2 pi = -0.919.
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


def _closed_form_entropy(model, x, mu, logvar, eps):
    lik, prior, _ = _mc_parts(model, x, mu, logvar, eps)                    # H[q] = 1/2 sum_j log(2 pi e sigma_j^2)
    return (lik + prior).mean(0) + 0.5 * (math.log(2 * math.pi * math.e) + logvar).sum(-1)


def _exact_bound(model, x, mu, logvar, eps):
    return model.elbo(x, mu, logvar)                                         # closed form: eps unused


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
        Mistake("closed-form entropy", "you used q's entropy in closed form, 1/2 sum_j log(2 pi e sigma_j^2), "
                "in place of the sampled -log q(z_l|x): a valid estimate of L (often with less variance), but "
                "not the one asked for here. Sample every term: average log p(x, z_l) - log q(z_l|x).",
                _closed_form_entropy),
        Mistake("exact L", "you returned the exact L (model.elbo), which ignores `eps`: right for this linear "
                "model, but the exercise asks for the Monte Carlo estimate from the given noise, the one that "
                "still works when the decoder is a neural network.", _exact_bound),
    ],
    hint="""
        Three pieces, each one you already have. A code per row of eps: which scale multiplies
        eps, sigma or sigma^2, and how do you get it from `logvar`? log p(x, z): the model's two
        methods, added. log q(z|x): exercise 01.2. Let broadcasting carry the leading L
        dimension of eps through all three, and average over it at the end (a Monte Carlo
        average, not a sum).
    """,
)


# -- 4. The exact posterior of pPCA from the joint Gaussian: the optimal encoder is linear in x --

def exact_encoder(W, b, s):
    """The exact posterior p(z|x) = N(A x + c, S) of pPCA, as an encoder: (A, c, S), shapes
    (J, D), (J,), (J, J), from the joint Gaussian of (z, x), x = W z + b + s eps:
    Cov(z, x) = W^T, Cov(x) = W W^T + s^2 I, so E[z|x] = W^T Cov(x)^-1 (x - b) and
    Cov(z|x) = I - W^T Cov(x)^-1 W. (Woodbury: the same as section 3's (I + W^T W / s^2)^-1 forms.)"""
    C = W @ W.T + s**2 * torch.eye(W.shape[0], dtype=W.dtype)                 # Cov(x), (D, D)
    A = W.T @ torch.linalg.inv(C)                                            # Cov(z, x) Cov(x)^-1
    return A, -A @ b, torch.eye(W.shape[1], dtype=W.dtype) - A @ W


def _encoder_cases():
    cases = []
    for seed, (D, J, s) in enumerate([(5, 3, 0.7), (2, 1, 0.5), (6, 2, 2.0)]):
        g = torch.Generator().manual_seed(20 + seed)
        W = torch.randn(D, J, generator=g, dtype=torch.float64)
        b = torch.randn(D, generator=g, dtype=torch.float64) + 1
        cases.append((W, b, s))
    return cases


def _encoder_from(P, W, b, s2):
    """(A, c, S) built section 3's way from a precision P that may be wrong and a noise variance s2."""
    S = torch.linalg.inv(P)
    A = S @ W.T / s2
    return A, -A @ b, S


def _eye(W):
    return torch.eye(W.shape[1], dtype=W.dtype)


def _no_noise_variance(W, b, s):
    return _encoder_from(_eye(W) + W.T @ W, W, b, 1.0)             # = the joint route with Cov(x) = W W^T + I


def _s_for_s2(W, b, s):
    return _encoder_from(_eye(W) + W.T @ W / s, W, b, s)           # = the joint route with Cov(x) = W W^T + s I


def _no_prior(W, b, s):
    return _encoder_from(W.T @ W / s**2, W, b, s**2)


def _precision_for_covariance(W, b, s):
    P = _eye(W) + W.T @ W / s**2
    A = P @ W.T / s**2
    return A, -A @ b, P


def _no_offset(W, b, s):
    A, _, S = exact_encoder(W, b, s)
    return A, torch.zeros_like(A[:, 0]), S


def _offset_sign(W, b, s):
    A, c, S = exact_encoder(W, b, s)
    return A, -c, S


def _prior_covariance(W, b, s):
    A, c, _ = exact_encoder(W, b, s)
    return A, c, _eye(W)


def _covariance_sign(W, b, s):
    A, c, _ = exact_encoder(W, b, s)
    return A, c, _eye(W) + A @ W


encoder = Exercise(
    "01.4", "the exact posterior of pPCA from the joint Gaussian", exact_encoder, _encoder_cases,
    mistakes=[
        Mistake("no noise variance", "the noise variance s^2 is missing (1 stands in its place): x = Wz + b + s eps "
                "has Cov(x) = W W^T + s^2 I (in section 3's form, W^T W / s^2 in the precision and 1 / s^2 in A).",
                _no_noise_variance),
        Mistake("s for s^2", "you used s, the noise's standard deviation, where its variance belongs: "
                "Cov(x) = W W^T + s**2 I (in section 3's form, W^T W / s**2 and S W^T / s**2).", _s_for_s2),
        Mistake("no prior", "the identity from the prior p(z) = N(0, I) is missing from the precision: "
                "your mean is the least-squares code (the best-reconstructing code of section 5), not the "
                "posterior mean, which the prior shrinks towards 0. The posterior precision is "
                "I + W^T W / s^2, the I being the prior's.", _no_prior),
        Mistake("precision for covariance", "your S is the precision I + W^T W / s^2, not its inverse: "
                "the posterior covariance is (I + W^T W / s^2)^-1 = I - A W, and section 3's A = S W^T / s^2 "
                "uses the covariance too.",
                _precision_for_covariance),
        Mistake("no offset", "c is 0: E[x] = b, so the posterior mean is A (x - b) and c = -A b.", _no_offset),
        Mistake("offset sign", "c has the wrong sign: the posterior mean is A (x - E[x]) = A x - A b, so c = -A b.",
                _offset_sign),
        Mistake("prior covariance", "your S is the prior's covariance I: observing x leaves less uncertainty "
                "about z, S = Cov(z) - Cov(z, x) Cov(x)^-1 Cov(x, z) = I - A W.", _prior_covariance),
        Mistake("covariance sign", "S = I + A W has the wrong sign: conditioning subtracts what x explains, "
                "S = I - Cov(z, x) Cov(x)^-1 Cov(x, z) = I - A W, smaller than the prior's I.", _covariance_sign),
    ],
    hint="""
        E[z] = 0 and E[x] = b. Cov(z, x) = E[z (x - b)^T] = E[z (W z + s eps)^T]: expand and
        use E[z z^T] = I and E[z eps^T] = 0 (z and eps are independent). Cov(x) is the
        covariance of section 3's p(x). Then the conditioning formulas of the statement give A
        (a (J, D) matrix: mind which side Cov(x)^-1 goes), c and S. torch.eye, torch.linalg.inv
        (or torch.linalg.solve) and `@`. Check: with D = J = 1, W = [[1]], b = 0, s = 1, the
        encoder is A = 1/2, c = 0, S = 1/2.
    """,
)
