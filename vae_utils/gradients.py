"""Gradient estimators, measured against closed-form gradients.

Part 1: two ways to estimate d/d(mu, sigma) E_{z ~ N(mu, sigma^2)}[f(z)] for a scalar z.

    score function (REINFORCE):  grad E_q[f(z)] = E_q[ f(z) grad log q(z) ]
    pathwise (reparameterized):  grad E_q[f(z)] = E_eps[ grad f(mu + sigma eps) ],  eps ~ N(0, 1)

Both are unbiased; the pathwise one (section 2.4 of the paper) uses f's own derivative
and usually has lower variance, though not for every f (a fast-oscillating f reverses it). Each estimator returns one gradient per sample,
shape (n, 2) = (d/dmu, d/dsigma), so its mean and variance can be measured.
`TEST_FUNCTIONS` holds f's whose expectation under N(mu, sigma^2) is closed-form.

Part 2: single-sample (L = 1) estimates of the gradient of the ELBO L(q; x) with respect to
q's parameters phi = (mu, log sigma^2), q = N(mu, diag sigma^2), on the closed-form model
`linear_gaussian.LinearGaussian` (where the exact gradient is known). `ELBO_GRADIENTS`:

    "A"               autograd of SGVB estimator A (eq. 6), vae_utils.elbo.sgvb_a
    "B"               autograd of SGVB estimator B (eq. 7), vae_utils.elbo.sgvb_b
    "score function"  (log p(x, z) - log q(z)) grad_phi log q(z),  z ~ q drawn without gradient
    "path (STL)"      A without its score term ("sticking the landing", Roeder, Wu & Duvenaud 2017)

A's gradient splits into a path part and a score term (same eps, exactly):

    grad_phi [log p(x, z) - log q(z|x)] = (d/dz [log p(x, z) - log q(z|x)]) dz/dphi  -  grad_phi log q(z|x)|_z fixed
                                         = "path (STL)"                              -  `score_term`

The score term has mean zero. At the exact posterior d/dz [log p(x, z) - log q(z|x)] = 0, so A's
gradient there is minus the score term: zero on average, not zero sample by sample.
Each function returns one gradient per sample, shape (n, 2, d): [:, 0] is d/dmu, [:, 1] d/dlogvar.

Part 3: the gradient of the minibatch estimator (eq. 8) with respect to a generative parameter,
the decoder bias b of `LinearGaussian` (`minibatch_bias_grad`), and its closed forms
(`bias_grad_closed_form`), to check that eq. 8's split of a budget M L works for the gradient
training follows, not only for the value.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, NamedTuple

import torch

from .elbo import log_joint, log_normal, reparameterize, sgvb_a, sgvb_b


def _leaves(mu, sigma, n):
    """n independent copies of (mu, sigma) that require grad: one per sample, for per-sample gradients."""
    mus = torch.full((n,), float(mu), dtype=torch.float64, requires_grad=True)
    sigmas = torch.full((n,), float(sigma), dtype=torch.float64, requires_grad=True)
    return mus, sigmas


def score_function_grad(f, mu, sigma, n: int, generator=None):
    """Per-sample f(z) grad log N(z; mu, sigma^2), z ~ N(mu, sigma^2): shape (n, 2).

        d/dmu    log N(z; mu, sigma^2) = (z - mu) / sigma^2
        d/dsigma log N(z; mu, sigma^2) = ((z - mu)^2 - sigma^2) / sigma^3

    Autograd computes these from the "surrogate" f(z) * log q(z): z is drawn without
    gradient, so f(z) is a constant to autograd and only log q(z) is differentiated in (mu, sigma).
    """
    mus, sigmas = _leaves(mu, sigma, n)
    with torch.no_grad():
        z = torch.normal(mus, sigmas, generator=generator)
    log_q = torch.distributions.Normal(mus, sigmas).log_prob(z)
    surrogate = (f(z) * log_q).sum()
    return torch.stack(torch.autograd.grad(surrogate, (mus, sigmas)), dim=-1)


def pathwise_grad(f, mu, sigma, n: int, generator=None):
    """Per-sample grad f(mu + sigma eps), eps ~ N(0, 1): shape (n, 2).

        d/dmu    f(mu + sigma eps) = f'(z)
        d/dsigma f(mu + sigma eps) = f'(z) eps

    z is a differentiable function of (mu, sigma); the randomness sits in eps.
    """
    mus, sigmas = _leaves(mu, sigma, n)
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    z = mus + sigmas * eps  # the reparameterization trick, section 2.4
    return torch.stack(torch.autograd.grad(f(z).sum(), (mus, sigmas)), dim=-1)


ESTIMATORS = {"score function": score_function_grad, "pathwise": pathwise_grad}


class TestFunction(NamedTuple):
    """f, its closed-form E_{N(mu, sigma^2)}[f(z)], and that expectation's gradient (d/dmu, d/dsigma)."""

    name: str
    f: Callable
    expectation: Callable
    grad: Callable


TEST_FUNCTIONS = {
    t.name: t
    for t in [
        TestFunction(
            "z",
            lambda z: z,
            lambda mu, s: mu,  # E[z] = mu
            lambda mu, s: (1.0, 0.0),
        ),
        TestFunction(
            "z^2",
            lambda z: z**2,
            lambda mu, s: mu**2 + s**2,  # E[z^2] = mu^2 + sigma^2
            lambda mu, s: (2 * mu, 2 * s),
        ),
        TestFunction(
            "sin z",
            torch.sin,
            lambda mu, s: math.sin(mu) * math.exp(-s**2 / 2),  # Im E[e^{iz}] = Im e^{i mu - sigma^2/2}
            lambda mu, s: (math.cos(mu) * math.exp(-s**2 / 2), -s * math.sin(mu) * math.exp(-s**2 / 2)),
        ),
        TestFunction(
            "exp z",
            torch.exp,
            lambda mu, s: math.exp(mu + s**2 / 2),  # the log-normal mean
            lambda mu, s: (math.exp(mu + s**2 / 2), s * math.exp(mu + s**2 / 2)),
        ),
    ]
}
TestFunction.__test__ = False  # not a pytest test class


# --- Part 2: gradients of the ELBO with respect to phi = (mu, log sigma^2) --------------------------

def _q_leaves(mu, logvar, n):
    """n independent copies of (mu, logvar), each (d,) or (1, d): shape (n, d), requiring grad (per-sample gradients)."""
    mus = mu.detach().reshape(1, -1).expand(n, -1).clone().requires_grad_(True)
    lvs = logvar.detach().reshape(1, -1).expand(n, -1).clone().requires_grad_(True)
    return mus, lvs


def _rows(x, n):
    """The datapoint x, (D,) or (1, D), repeated as n rows: (n, D)."""
    return x.reshape(1, -1).expand(n, -1)


def _per_sample_grad(values, mus, lvs):
    """Row i of `values` (n,) depends only on row i of (mus, lvs): grad of the sum gives per-sample gradients."""
    return torch.stack(torch.autograd.grad(values.sum(), (mus, lvs)), dim=1)  # (n, 2, d)


def _sgvb_grad(estimator, model, x, mu, logvar, n, generator):
    mus, lvs = _q_leaves(mu, logvar, n)
    values = estimator(model.with_q(mus, lvs), _rows(x, n), 1, generator)  # L = 1
    return _per_sample_grad(values, mus, lvs)


def grad_a(model, x, mu, logvar, n: int, generator=None):
    """Per-sample grad_phi of estimator A (eq. 6, vae_utils.elbo.sgvb_a), L = 1: shape (n, 2, d).

    A = log p(x, z) - log q(z|x) with z = mu + sigma * eps, and
    -log q(z|x) = const + sum_j (logvar_j + eps_j^2) / 2: the 1/2 sum eps^2 that makes A's value
    noisy does not depend on phi at fixed eps, so it adds nothing to A's gradient.
    """
    return _sgvb_grad(sgvb_a, model, x, mu, logvar, n, generator)


def grad_b(model, x, mu, logvar, n: int, generator=None):
    """Per-sample grad_phi of estimator B (eq. 7, vae_utils.elbo.sgvb_b), L = 1: shape (n, 2, d).

    B = -KL(q(z|x) || p(z)) + log p(x|z): the KL and its gradient are exact (Appendix B);
    the gradient's noise is that of grad_phi log p(x|z).
    """
    return _sgvb_grad(sgvb_b, model, x, mu, logvar, n, generator)


def score_function_elbo_grad(model, x, mu, logvar, n: int, generator=None):
    """Per-sample (log p(x, z) - log q(z|x)) grad_phi log q(z|x), z ~ q: shape (n, 2, d).

        grad_phi L = E_q[(log p(x, z) - log q(z|x)) grad_phi log q(z|x)] + E_q[-grad_phi log q(z|x)]

    (section 2.2's estimator with f = log p(x, z) - log q(z|x), which itself depends on phi); the
    second expectation is zero (the score has mean zero) and is dropped. z carries no gradient:
    only the values of log p(x, z) are used, never its derivative.
    """
    mus, lvs = _q_leaves(mu, logvar, n)
    z = reparameterize(mus, lvs, 1, generator).detach()       # a draw from q, cut off from phi
    log_q = log_normal(z, mus, lvs)                             # differentiable in phi at fixed z
    f = (log_joint(model, _rows(x, n), z) - log_q).detach()
    return _per_sample_grad((f * log_q)[0], mus, lvs)          # surrogate: its gradient is f grad log q


def score_term(model, x, mu, logvar, n: int, generator=None):
    """Per-sample grad_phi log q(z|x) at fixed z ~ q: shape (n, 2, d). Its mean is zero:

        E_q[grad_phi log q] = int grad_phi q dz = grad_phi int q dz = grad_phi 1 = 0.

    For q = N(mu, diag sigma^2): d/dmu_j = eps_j / sigma_j, d/dlogvar_j = (eps_j^2 - 1) / 2.
    `model` and `x` are unused (kept so that every estimator has the same signature).
    """
    mus, lvs = _q_leaves(mu, logvar, n)
    z = reparameterize(mus, lvs, 1, generator).detach()
    return _per_sample_grad(log_normal(z, mus, lvs)[0], mus, lvs)


def path_grad(model, x, mu, logvar, n: int, generator=None):
    """Per-sample path part of A's gradient ("sticking the landing", Roeder, Wu & Duvenaud 2017): (n, 2, d).

        (d/dz [log p(x, z) - log q(z|x)]) dz/dphi  =  grad_a - score_term   (same eps)

    Computed as A with q's density parameters detached: z = mu + sigma * eps carries the
    gradient, log q(.|x) is a fixed function. Zero for every eps when q is the exact posterior.
    """
    mus, lvs = _q_leaves(mu, logvar, n)
    z = reparameterize(mus, lvs, 1, generator)
    values = log_joint(model, _rows(x, n), z) - log_normal(z, mus.detach(), lvs.detach())
    return _per_sample_grad(values[0], mus, lvs)


ELBO_GRADIENTS = {"A": grad_a, "B": grad_b, "score function": score_function_elbo_grad, "path (STL)": path_grad}


def exact_elbo_grad(model, x, mu, logvar):
    """grad_phi L(q; x) in closed form on `linear_gaussian.LinearGaussian`, shape (2, d):

        dL/dmu     = W^T (x - W mu - b) / s^2 - mu
        dL/dlogvar = 1/2 (1 - sigma^2 (1 + diag(W^T W) / s^2))

    from L = -|x - W mu - b|^2 / (2 s^2) - sum_j sigma_j^2 |W_j|^2 / (2 s^2) - KL(q || N(0, I)) + const.
    Both are zero at the exact posterior when W^T W is diagonal (e.g. d = 1).
    """
    x, mu, logvar = x.reshape(-1), mu.reshape(-1), logvar.reshape(-1)
    s2 = model.s**2
    var = logvar.exp()
    d_mu = (x - mu @ model.W.T - model.b) @ model.W / s2 - mu
    d_lv = 0.5 * (1 - var * (1 + (model.W**2).sum(0) / s2))
    return torch.stack([d_mu, d_lv])


def gradient_variance_closed_form(model, x, mu, logvar, estimator: str):
    """Per-coordinate variance of the single-sample gradient of estimator "A" or "B": shape (2, d).

    With u = sigma * eps ~ N(0, Sigma), Sigma = diag sigma^2, c = W^T (x - b) / s^2, and
    P = I + W^T W / s^2 (A: the posterior precision, grad_z log p(x, z) = c - P z) or
    P = W^T W / s^2     (B: grad_z log p(x|z) = c - P z), a = c - P mu:

        grad_mu      = const - P u                     Var = diag(P Sigma P)
        grad_logvar_j = const + u_j (a - P u)_j / 2    Var = sigma_j^2 (a_j^2 + sum_k P_jk^2 sigma_k^2 + P_jj^2 sigma_j^2) / 4

    (the last by Isserlis' theorem; odd moments of u vanish).
    """
    if estimator not in ("A", "B"):
        raise ValueError(f"closed form only for 'A' and 'B', not {estimator!r}")
    x, mu, logvar = x.reshape(-1), mu.reshape(-1), logvar.reshape(-1)
    d = mu.shape[-1]
    P = model.W.T @ model.W / model.s**2
    if estimator == "A":
        P = P + torch.eye(d, dtype=P.dtype, device=P.device)
    var = logvar.exp()
    a = (x - model.b) @ model.W / model.s**2 - P @ mu
    var_mu = (P**2 * var).sum(1)                                      # diag(P Sigma P)_j = sum_k P_jk^2 sigma_k^2
    var_lv = var * (a**2 + var_mu + P.diagonal() ** 2 * var) / 4
    return torch.stack([var_mu, var_lv])


def mean_squared_error(grads, exact):
    """E ||g - grad L||^2 over the samples, per parameter group: shape (2,) = (mu, logvar).

    The estimators are unbiased, so this is the total variance (the trace of the covariance)
    of each group; it is measured against the exact gradient, not the sample mean.
    """
    return ((grads - exact) ** 2).sum(-1).mean(0)


# --- Part 3: the gradient of eq. 8 with respect to the decoder bias b -------------------------------

def minibatch_bias_grad(model, x, mu, logvar, n_data: int, n_samples: int = 1, generator=None):
    """grad_b of eq. 8 with estimator B, (N / M) sum_i L^B(x_i), for R minibatches at once: shape (R, D).

    x is (R, M, D): R minibatches of M datapoints; mu, logvar (R, M, J) are each datapoint's q,
    held fixed (an encoder's output does not depend on the decoder's b). b enters only
    log p(x|z) = log N(x; W z + b, s^2 I), so, with z_il = mu_i + sigma_i * eps_il (eq. 7, 8),

        grad_b = (N / M) sum_i 1/L sum_l (x_i - W z_il - b) / s^2.

    Computed by autograd, with one copy of b per datapoint (per-datapoint gradients in one call).
    """
    R, M, D = x.shape
    b_rows = model.b.detach().expand(R * M, D).clone().requires_grad_(True)
    m = replace(model, b=b_rows).with_q(mu.detach().reshape(R * M, -1), logvar.detach().reshape(R * M, -1))
    values = sgvb_b(m, x.reshape(R * M, D), n_samples, generator)
    g = torch.autograd.grad(values.sum(), b_rows)[0]
    return n_data / M * g.reshape(R, M, D).sum(1)


def bias_grad_closed_form(model, x, mu, logvar):
    """(exact, mc_var) for datapoints x (B, D) with q's (mu, logvar) (B, J):

        exact  = grad_b L(x_i) = (x_i - W mu_i - b) / s^2                   shape (B, D)
        mc_var = tr Cov[single-sample grad_b L^B(x_i)]                      shape (B,)
               = E|W (sigma_i * eps)|^2 / s^4 = sum_j sigma_ij^2 |W_:j|^2 / s^4

    since the single-sample gradient is exact - W (sigma_i * eps) / s^2.
    """
    s2 = model.s**2
    exact = (x - mu @ model.W.T - model.b) / s2
    mc_var = (logvar.exp() * (model.W**2).sum(0)).sum(-1) / s2**2
    return exact, mc_var
