"""The wake-sleep algorithm (Hinton, Dayan, Frey & Neal 1995): the paper's baseline in Figures 2 and 3.

Same model as AEVB: a recognition model q_phi(z|x) (the encoder) and a generative model
p_theta(x|z) p(z) (the decoder and the N(0, I) prior). Two phases, two objectives:

    wake:   z ~ q_phi(z|x) for a data x;   theta <- theta + grad_theta log p_theta(x, z)
    sleep:  z ~ p(z), x ~ p_theta(x|z);     phi   <- phi   + grad_phi   log q_phi(z|x)

The wake phase is the M-step of EM with q in place of the posterior. The sleep phase fits q
to the model's own "dreams": it minimises KL(p_theta(z|x) || q_phi(z|x)) averaged over
x ~ p_theta(x), the reverse of the KL that AEVB minimises, and on fantasies rather than
data. The wake phase's gradient in theta is the bound's (q's entropy does not depend on
theta); the sleep phase's gradient in phi is not, so the pair of updates is not the gradient
of one shared objective, unlike AEVB's. What `step` returns, and so what History.train
records for wake-sleep, is the wake objective E_q[log p(x, z)]: the bound without q's entropy,
not the bound (evaluate.lower_bound gives that).

The two losses touch disjoint parameters (wake: z is sampled without gradient, so only the
decoder sees it; sleep: x and z come from the decoder without gradient, so only the encoder
does), so one backward pass of their sum runs both phases with one optimizer.
"""
from __future__ import annotations

import torch

from .elbo import log_joint, log_normal, reparameterize


def wake_loss(model, x, generator=None):
    """-(1/B) sum log p_theta(x, z), z ~ q_phi(z|x) held fixed: trains the decoder only."""
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, 1, generator)[0]
    return -log_joint(model, x, z).mean()


@torch.no_grad()
def dream(model, n: int, generator=None):
    """(x, z): n fantasies from the generative model, z ~ N(0, I), x ~ p_theta(x|z)."""
    z = model.sample_prior(n, generator)
    return model.sample_x(z, generator), z


def sleep_loss(model, n: int, generator=None):
    """-(1/n) sum log q_phi(z|x) on n dreams (x, z): trains the encoder only."""
    x, z = dream(model, n, generator)
    mu, logvar = model.encode(x)
    return -log_normal(z, mu, logvar).mean()


def step(model, opt, x, generator=None) -> torch.Tensor:
    """One wake phase and one sleep phase (as many dreams as data) with one optimizer step.

    Returns the wake objective, the minibatch's average log p_theta(x, z) (a 0-d tensor).
    """
    wake = wake_loss(model, x, generator)
    sleep = sleep_loss(model, len(x), generator)
    opt.zero_grad(set_to_none=True)
    (wake + sleep).backward()
    opt.step()
    return -wake.detach()
