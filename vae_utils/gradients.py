"""Two ways to estimate the gradient of an expectation, d/d(mu, sigma) E_{z ~ N(mu, sigma^2)}[f(z)].

    score function (REINFORCE):  grad E_q[f(z)] = E_q[ f(z) grad log q(z) ]
    pathwise (reparameterized):  grad E_q[f(z)] = E_eps[ grad f(mu + sigma eps) ],  eps ~ N(0, 1)

Both are unbiased; the pathwise one (section 2.4 of the paper) uses f's own derivative
and usually has far lower variance. Each estimator returns one gradient per sample,
shape (n, 2) = (d/dmu, d/dsigma), so its mean and variance can be measured.
`TEST_FUNCTIONS` holds f's whose expectation under N(mu, sigma^2) is closed-form.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch


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
