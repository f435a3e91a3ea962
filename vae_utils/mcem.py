"""Monte Carlo EM with an HMC E-step: the paper's second baseline in Figure 3.

EM alternates between the posterior and the parameters. When p_theta(z|x) is intractable,
the E-step draws a sample from it instead (Monte Carlo EM, Wei & Tanner 1990):

    E-step: z_i ~ p_theta(z|x_i) by HMC (the paper's appendix on MCEM: 10 leapfrog steps, the
            step size tuned automatically for a 90% acceptance rate; vae_utils.hmc)
    M-step: 5 updates of theta ascending log p_theta(x_i, z_i) = log p_theta(x_i|z_i) + log p(z_i)
            with the sample held fixed (the same appendix: "followed by 5 weight updates")

There is no encoder: every datapoint keeps its own Markov chain (its z and step size), which
only moves when that datapoint is in a minibatch. On a large training set each chain moves
rarely and lags behind the changing model: this is why the paper (Figure 3's caption) calls
MCEM not an on-line algorithm. The model's encoder is left untouched.
"""
from __future__ import annotations

import torch

from . import hmc
from .elbo import log_joint


def init_chains(model, n: int, generator=None, step_size: float = 0.05) -> hmc.Chains:
    """One chain per training datapoint, started from the prior: z_i ~ N(0, I)."""
    p = next(model.parameters())
    z = torch.randn(n, model.config.z_dim, generator=generator, dtype=p.dtype, device=p.device)
    return hmc.init_chains(z, step_size)


def e_step(model, x, chains: hmc.Chains, n_iter: int = 1, n_leapfrog: int = 10,
           target_accept: float = 0.9, generator=None) -> hmc.Chains:
    """Move each datapoint's chain n_iter HMC transitions under the current theta, adapting its step."""
    chains, _ = hmc.run(model, x, chains, n_iter, n_leapfrog, target_accept, adapt=True,
                        generator=generator, keep=False)
    return chains


def m_step(model, opt, x, z, n_updates: int = 5) -> torch.Tensor:
    """n_updates optimizer steps on -(1/B) sum log p_theta(x, z) at fixed z; returns the last
    average log p(x, z) (a 0-d tensor)."""
    if n_updates < 1:
        raise ValueError(f"n_updates={n_updates}: the M-step needs at least one update (the paper: 5)")
    for _ in range(n_updates):
        log_pxz = log_joint(model, x, z).mean()
        opt.zero_grad(set_to_none=True)
        (-log_pxz).backward()
        opt.step()
    return log_pxz.detach()


def step(model, opt, x, idx, chains: hmc.Chains, generator=None, n_leapfrog: int = 10,
         n_updates: int = 5) -> torch.Tensor:
    """One E-step on the chains of datapoints `idx` (updated in place), then the M-step."""
    sub = hmc.Chains(chains.z[idx], chains.step_size[idx], chains.accept_rate[idx])
    sub = e_step(model, x, sub, n_leapfrog=n_leapfrog, generator=generator)
    chains.z[idx], chains.step_size[idx], chains.accept_rate[idx] = sub.z, sub.step_size, sub.accept_rate
    return m_step(model, opt, x, sub.z, n_updates)
