"""Hybrid Monte Carlo (HMC, Duane et al. 1987) on the posterior p(z|x), many datapoints at once.

    p(z|x) ∝ p(x, z) = p(x|z) p(z),    U(z) = -log p(x, z)                  (the potential)
    grad_z log p(z|x) = grad_z log p(z) + grad_z log p(x|z)                   (Appendix D, step 1)

One HMC transition: draw a momentum r ~ N(0, I), follow Hamilton's equations for
H(z, r) = U(z) + |r|^2 / 2 with `n_leapfrog` leapfrog steps of size eps,

    r <- r + eps/2 grad log p(x, z);   z <- z + eps r;   r <- r + eps/2 grad log p(x, z)

and accept the end point with probability min(1, exp(H_start - H_end)) (Metropolis).
p(x) never appears: HMC needs log p(x, z) only up to a constant.

Every tensor carries a batch of chains: z is (..., B, d) for B datapoints x (B, D), and each
chain has its own step size, nudged after each transition towards a target acceptance rate
(for its MCEM E-step the paper tuned it "automatically" to about 90%, Appendix E):   log eps <- log eps + rate (a - target).
Adapt during burn-in only if you need exact samples: a step size that keeps changing
breaks detailed balance. `model` is anything with `log_likelihood(x, z)` (models.VAE,
linear_gaussian.LinearGaussian); the prior is N(0, I) as everywhere in this package, and
log p(x, z) is vae_utils.elbo.log_joint.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import torch

from .elbo import log_joint

__all__ = ["log_joint_and_grad", "leapfrog", "Chains", "init_chains", "run",
           "init_from_prior", "posterior_samples"]


def _check_steps(n_steps, name: str) -> None:
    """A clear error unless n_steps is an integer >= 1 (zero steps would leave no end point)."""
    if not (isinstance(n_steps, Integral) and n_steps >= 1):
        raise ValueError(f"{name}={n_steps!r}: a leapfrog trajectory needs at least one step; "
                         f"pass an integer {name} >= 1 (the paper uses 10)")


def log_joint_and_grad(model, x, z):
    """(log p(x, z), grad_z log p(x, z)); gradients flow to z only, never to the model."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        lp = log_joint(model, x, z)
        (grad,) = torch.autograd.grad(lp.sum(), z)  # chains are independent: sum, then grad
    return lp.detach(), grad


def leapfrog(model, x, z, r, grad, eps, n_steps):
    """Hamilton's equations for H = -log p(x, z) + |r|^2/2, integrated with n_steps leapfrog steps.

    Volume-preserving and reversible, so the Metropolis test below only needs H.
    Returns (z, r, log p(x, z), grad) at the end point.
    """
    _check_steps(n_steps, "n_steps")
    eps = eps.unsqueeze(-1)
    r = r + 0.5 * eps * grad  # half step for the momentum
    for step in range(n_steps):
        z = z + eps * r  # full step for the position
        lp, grad = log_joint_and_grad(model, x, z)
        r = r + (eps if step < n_steps - 1 else 0.5 * eps) * grad  # full steps, half at the end
    return z, r, lp, grad


@dataclass
class Chains:
    """The state of a batch of HMC chains: positions, step sizes, and acceptance statistics."""

    z: torch.Tensor  # (..., B, d)
    step_size: torch.Tensor  # (..., B): one eps per chain
    accept_rate: torch.Tensor  # (..., B): mean acceptance probability of the last `run`


def init_chains(z, step_size: float = 0.05) -> Chains:
    """Chains starting at z, with step size `step_size` each."""
    return Chains(z.detach().clone(), torch.full(z.shape[:-1], step_size, dtype=z.dtype, device=z.device),
                  torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device))


def run(model, x, chains: Chains, n_iter: int, n_leapfrog: int = 10, target_accept: float = 0.9,
        adapt: bool = True, adapt_rate: float = 0.5, jitter: float = 0.5, generator=None,
        keep: bool = True):
    """n_iter HMC transitions of every chain; returns (chains, samples).

    samples: (n_iter, ..., B, d), the position after each transition (None if not keep).
    With `adapt`, each chain's step size moves towards `target_accept` after each transition.
    Each transition uses eps * u, u ~ Uniform(1 - jitter, 1 + jitter): a fixed trajectory
    length eps * n_leapfrog can be close to a period of the dynamics and bring a chain back
    near where it started, every time; a random one does not (Neal 2011, "MCMC using
    Hamiltonian dynamics", on choosing the trajectory length).
    """
    _check_steps(n_leapfrog, "n_leapfrog")
    if not (isinstance(n_iter, Integral) and n_iter >= 1):
        raise ValueError(f"n_iter={n_iter!r}: run at least one HMC transition (an integer >= 1)")
    z, eps = chains.z, chains.step_size.clone()
    lp, grad = log_joint_and_grad(model, x, z)
    samples, accept_sum = [], torch.zeros_like(eps)
    for _ in range(n_iter):
        r = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        u = torch.rand(eps.shape, generator=generator, dtype=z.dtype, device=z.device)
        z_new, r_new, lp_new, grad_new = leapfrog(model, x, z, r, grad, eps * (1 + jitter * (2 * u - 1)),
                                                  n_leapfrog)
        h_start = -lp + 0.5 * (r**2).sum(-1)  # H(z, r) = -log p(x, z) + |r|^2 / 2
        h_end = -lp_new + 0.5 * (r_new**2).sum(-1)
        a = torch.exp(torch.clamp(h_start - h_end, max=0.0)).nan_to_num(0.0)  # min(1, e^{-dH})
        u = torch.rand(a.shape, generator=generator, dtype=z.dtype, device=z.device)
        ok = (u < a).unsqueeze(-1)  # accept with probability a (Metropolis)
        z, grad = torch.where(ok, z_new, z), torch.where(ok, grad_new, grad)
        lp = torch.where(ok.squeeze(-1), lp_new, lp)
        if adapt:
            eps = eps * torch.exp(adapt_rate * (a - target_accept))  # log eps += rate (a - target)
        accept_sum += a
        if keep:
            samples.append(z)
    chains = Chains(z.detach(), eps, accept_sum / max(n_iter, 1))
    return chains, (torch.stack(samples) if keep else None)


def _z_dim(model) -> int:
    return model.config.z_dim if hasattr(model, "config") else model.z_dim


def init_from_prior(model, x, n_chains: int = 1, n_candidates: int = 100, generator=None):
    """Starting points near the posterior: sampling/importance resampling from the prior.

    Draw n_candidates z ~ p(z), weight each by p(x|z), and pick n_chains of them with
    probabilities proportional to the weights. Needs no encoder, so it also starts the
    chains of a model trained without one (Monte Carlo EM). Shape (n_chains, B, d).
    """
    d, b = _z_dim(model), x.shape[0]
    z = torch.randn(n_candidates, b, d, generator=generator, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        logw = model.log_likelihood(x, z)  # (n_candidates, B)
    idx = torch.multinomial(torch.softmax(logw.T, -1), n_chains, replacement=True, generator=generator)
    return z.permute(1, 0, 2).gather(1, idx.unsqueeze(-1).expand(-1, -1, d)).permute(1, 0, 2)


def posterior_samples(model, x, n_samples: int, n_chains: int = 10, burn_in: int = 100,
                      n_leapfrog: int = 10, step_size: float = 0.05, target_accept: float = 0.9,
                      generator=None):
    """n_samples draws from p(z|x) per datapoint: shape (n_samples, B, d), and the chains.

    n_chains chains per datapoint start from `init_from_prior`, adapt their step sizes during
    `burn_in` transitions, then run with fixed step sizes for n_samples / n_chains
    transitions, every position kept.
    """
    if not (n_chains >= 1 and n_samples >= 1 and n_samples % n_chains == 0):
        raise ValueError(f"n_samples={n_samples}, n_chains={n_chains}: use n_chains >= 1 and a "
                         "positive multiple of it as n_samples (e.g. 100 and 10)")
    chains = init_chains(init_from_prior(model, x, n_chains, generator=generator), step_size)
    chains, _ = run(model, x, chains, burn_in, n_leapfrog, target_accept, adapt=True,
                    generator=generator, keep=False)
    chains, z = run(model, x, chains, n_samples // n_chains, n_leapfrog, adapt=False, generator=generator)
    return z.reshape(n_samples, *z.shape[2:]), chains
