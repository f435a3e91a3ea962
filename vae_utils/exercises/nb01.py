"""Exercises of notebook 01 (the evidence lower bound): checkers and reference solutions."""
from __future__ import annotations

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
