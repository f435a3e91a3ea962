"""Exercises of notebook 04 (the learned 2-D latent manifold): checkers and reference solutions."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..elbo import LOG_2PI  # the mistakes' constant; solutions spell it out to be pasteable
from . import Exercise, Mistake, outputs_close


def _grid_from(z, flip=True, indexing="xy"):
    """Tile 1-D values z into an (n*n, 2) grid, row-major (the mistakes below vary how)."""
    z1, z2 = torch.meshgrid(z, z.flip(0) if flip else z, indexing=indexing)
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def _safely(answer, *args):
    """answer(*args) as a float64 tensor, or None if it raises or returns no tensor."""
    try:
        return torch.as_tensor(answer(*args), dtype=torch.float64)
    except Exception:
        return None


# -- 1. Appendix A: Figure 4b's grid through the inverse CDF ---------------------------------

def phi_grid(n):
    """The (n*n, 2) latent points of Figure 4b (Appendix A): the centres u_a = (a + 1/2)/n of
    an n x n grid on the unit square, through the inverse Gaussian CDF, z = Phi^-1(u).
    Row-major: z1 grows along each row, z2 falls down the rows (as a picture's axes)."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = torch.distributions.Normal(0.0, 1.0).icdf(u)
    z1, z2 = torch.meshgrid(z, z.flip(0), indexing="xy")      # rows: z2 from high to low
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def _grid_cases():
    return [(20,), (5,), (2,)]


def _icdf(u):
    return torch.distributions.Normal(0.0, 1.0).icdf(u)


def _endpoints_probe(answer):
    """Phi^-1(0) = -inf, and Phi^-1(u) is NaN for u outside [0, 1]: a grid with NaNs took some
    u outside the unit interval, one with infinities took u = 0 or u = 1."""
    out = _safely(answer, 5)
    if out is None:
        return None
    if torch.isnan(out).any():
        return "u outside [0, 1]"
    return "endpoints included" if torch.isinf(out).any() else None


def _z2_rising(n):
    return _grid_from(phi_grid(n)[:n, 0], flip=False)


def _meshgrid_ij(n):
    return _grid_from(phi_grid(n)[:n, 0], indexing="ij")


def _sorted_rows(t):
    """The rows of an (m, 2) array in lexicographic order (rounded, so float32 sorts like float64)."""
    a = t.numpy().round(6)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def _order_probe(answer):
    """The right n^2 points in an order the named mistakes do not describe (say, columns swapped)."""
    outs, refs = [], []
    for (n,) in _grid_cases():
        out, ref = _safely(answer, n), phi_grid(n)
        if out is None or out.shape != ref.shape or not torch.isfinite(out).all():
            return None
        outs.append(out)
        refs.append(ref)
    named = [[f(n) for (n,) in _grid_cases()] for f in (phi_grid, _z2_rising, _meshgrid_ij)]
    if any(all(outputs_close(o, w) for o, w in zip(outs, ws)) for ws in named):
        return None                                   # right, or a wrong order that has a name of its own
    same_points = all(np.allclose(_sorted_rows(o), _sorted_rows(r), atol=1e-5) for o, r in zip(outs, refs))
    return "points in another order" if same_points else None


def _linear_probe(answer):
    """A grid whose distinct z1 values are evenly spaced is linear in z, not in Phi(z)."""
    out = _safely(answer, 9)
    if out is None or out.dim() != 2 or out.shape[1] != 2 or not torch.isfinite(out).all():
        return None
    values = torch.unique(out[:, 0].round(decimals=9))
    if len(values) == 9 and torch.allclose(values.diff(), values.diff().mean().expand(8), rtol=1e-4):
        return "linear in z"
    return None


grid = Exercise(
    "04.1", "Figure 4b's grid through the inverse CDF (Appendix A)", phi_grid, _grid_cases,
    mistakes=[
        Mistake("linear in z",
                "your grid is evenly spaced in z. Appendix A takes coordinates evenly spaced on the unit "
                "square, u, through the inverse Gaussian CDF, z = Phi^-1(u): evenly spaced in u, not in z. "
                "(Why it helps, in this tutorial's words: every cell then holds the same prior mass 1/n^2, "
                "dense near 0, sparse in the tails.)",
                lambda n: _grid_from(torch.linspace(_icdf(torch.tensor(0.5 / n, dtype=torch.float64)).item(),
                                                    _icdf(torch.tensor(1 - 0.5 / n, dtype=torch.float64)).item(),
                                                    n, dtype=torch.float64))),
        Mistake("endpoints included",
                "your grid holds infinities: u = 0 and u = 1 are where Phi^-1 is -inf and +inf. Take "
                "the centres of the n cells, u_a = (a + 1/2)/n for a = 0, ..., n-1.",
                lambda n: _grid_from(_icdf(torch.linspace(0, 1, n, dtype=torch.float64)))),
        Mistake("u outside [0, 1]",
                "your grid holds NaNs: some u lie outside [0, 1], where Phi^-1 is undefined (an off-by-one? "
                "the largest centre is (n - 1/2)/n). Take u_a = (a + 1/2)/n for a = 0, ..., n-1.",
                lambda n: _grid_from(_icdf((torch.arange(1, n + 1, dtype=torch.float64) + 0.5) / n))),
        Mistake("not the cell centres",
                "your u are a/(n+1): a fair reading of Appendix A, but this exercise asks for the cell "
                "centres u_a = (a + 1/2)/n, the ones `latent_grid` uses.",
                lambda n: _grid_from(_icdf(torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)))),
        Mistake("z2 rising down the rows",
                "z2 grows down the rows: in a picture row 0 is drawn at the top, so z2 must fall down "
                "the rows (use Phi^-1(u) in reverse order for z2) for the tiled images to match the axes.",
                _z2_rising),
        Mistake("meshgrid ij",
                "z1 changes down the rows and z2 along them: torch.meshgrid's default indexing='ij' "
                "puts its first argument down the rows. Pass indexing='xy', so z1 grows along each "
                "row and z2 falls down the rows.",
                _meshgrid_ij),
        Mistake("points in another order",
                "your points are right, their order is not: row k must be the k-th image of the picture, "
                "read row by row, with z1 growing along each row and z2 falling down the rows, and column 0 "
                "holding z1.",
                lambda n: phi_grid(n)[:, [1, 0]]),
    ],
    probes=[_endpoints_probe, _linear_probe, _order_probe],
    hint="""
        Three steps. (1) Which u: the centres of n equal cells of [0, 1], never 0 or 1.
        (2) From u to z: the standard normal's inverse CDF (torch.distributions.Normal has an
        `icdf` method; scipy.stats.norm has `ppf`). (3) From one axis to the grid: torch.meshgrid
        tiles two 1-D tensors; its `indexing` argument decides which one varies along a row, and
        z2 must run from high to low. Flatten each tile and make them the two columns.
        Check: phi_grid(2) is [[-0.674, 0.674], [0.674, 0.674], [-0.674, -0.674], [0.674, -0.674]].
    """,
)


# -- 2. Test 1: the aggregate posterior's second moment --------------------------------------

def aggregate_second_moment(mu, logvar):
    """E_q[z_j^2] under the aggregate posterior q(z) = (1/N) sum_i N(z; mu_i, diag sigma_i^2),
    for each latent dimension j: shape (J,). z = mu_i + sigma_i * eps has E[z^2] = mu_i^2 +
    sigma_i^2, so E_q[z_j^2] = (1/N) sum_i (mu_ij^2 + sigma_ij^2), with sigma^2 = exp(logvar).
    The prior N(0, I) has E[z_j^2] = 1."""
    return (mu**2 + logvar.exp()).mean(0)


def _moment_cases():
    g = torch.Generator().manual_seed(4)
    mu = 1.5 * torch.randn(8, 2, generator=g, dtype=torch.float64) + torch.tensor([0.7, -0.4], dtype=torch.float64)
    logvar = torch.randn(8, 2, generator=g, dtype=torch.float64) - 1
    return [(mu, logvar), (mu[:5, :1] * 0.3, logvar[:5, :1] + 1),
            (torch.randn(50, 3, generator=g, dtype=torch.float64) + 1, -3 + torch.randn(50, 3, generator=g, dtype=torch.float64))]


def _no_means_probe(answer):
    """An answer that stays the same when the means change does not use them."""
    mu, logvar = _moment_cases()[0]
    a, b = _safely(answer, mu, logvar), _safely(answer, -0.5 * mu + 2.0, logvar)
    if a is None or b is None or a.shape != b.shape or not torch.isfinite(a).all():
        return None
    return "no means" if torch.allclose(a, b, rtol=1e-6, atol=1e-9) else None


def _centred_probe(answer):
    """Shifting every mean by c changes E_q[z^2]; an answer that does not move centred the means."""
    args = _moment_cases()[0]
    a, b = _safely(answer, *args), _safely(answer, args[0] + 3.0, args[1])
    if a is None or b is None or a.shape != b.shape or not torch.isfinite(a).all():
        return None
    return "variance of the means" if torch.allclose(a, b, rtol=1e-6, atol=1e-9) else None


moment = Exercise(
    "04.2", "the aggregate posterior's second moment (test 1)", aggregate_second_moment, _moment_cases,
    mistakes=[
        Mistake("means only",
                "you left out each code's own spread: z ~ q(z|x_i) is mu_i + sigma_i * eps, whose "
                "E[z^2] is mu_i^2 + sigma_i^2, not mu_i^2. Add exp(logvar) inside the average.",
                lambda mu, logvar: (mu**2).mean(0)),
        Mistake("log sigma for log sigma^2",
                "you read `logvar` as log sigma: it is log sigma^2, so sigma^2 = exp(logvar), "
                "not exp(2 * logvar).",
                lambda mu, logvar: (mu**2 + (2 * logvar).exp()).mean(0)),
        Mistake("sigma for sigma^2",
                "you added sigma, not sigma^2: the second moment of mu_i + sigma_i * eps is "
                "mu_i^2 + sigma_i^2, and sigma^2 = exp(logvar).",
                lambda mu, logvar: (mu**2 + (0.5 * logvar).exp()).mean(0)),
        Mistake("no means",
                "your answer does not use `mu`: a code z = mu_i + sigma_i * eps has E[z^2] = mu_i^2 + "
                "sigma_i^2, so where the codes sit counts as much as how wide they are. Add mu**2 inside "
                "the average.",
                lambda mu, logvar: logvar.exp().mean(0)),
        Mistake("variance of the means",
                "your answer does not move when every code is shifted by 3: E[z^2] is a moment about the "
                "origin, not about the codes' average, so each mu must enter as mu^2.",
                lambda mu, logvar: mu.var(0) + logvar.exp().mean(0)),
        Mistake("summed over codes",
                "you summed over the N codes: q(z) weighs each code 1/N, so take the mean over "
                "dim 0, not the sum.",
                lambda mu, logvar: (mu**2 + logvar.exp()).sum(0)),
    ],
    probes=[_no_means_probe, _centred_probe],
    hint="""
        Condition on the code: E_q[z_j^2] is the average over the N codes of E[z_j^2 | i]
        (the law of total expectation). Given i, z_j = mu_ij + sigma_ij * eps_j is a Gaussian:
        its second moment is its mean squared plus its variance. Which dimension of `mu`
        runs over the codes? `logvar` is log sigma^2.
    """,
)


# -- 3. The aggregate posterior's log density, by log-sum-exp --------------------------------

def aggregate_log_density(z, mu, logvar):
    """log q(z) at points z (M, J) for the aggregate posterior of N codes (mu, logvar: (N, J)):
    q(z) = (1/N) sum_i N(z; mu_i, diag sigma_i^2), so
    log q(z) = logsumexp_i log N(z; mu_i, diag sigma_i^2) - log N. Shape (M,)."""
    d = z[:, None, :] - mu[None]                                           # (M, N, J)
    log_k = -0.5 * (math.log(2 * math.pi) + logvar + d**2 / logvar.exp()).sum(-1)        # log N(z_m; mu_i, sigma_i^2)
    return torch.logsumexp(log_k, dim=1) - math.log(mu.shape[0])


def _log_q_cases():
    g = torch.Generator().manual_seed(5)
    z = 2 * torch.randn(6, 2, generator=g, dtype=torch.float64)
    mu = 1.5 * torch.randn(5, 2, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(5, 2, generator=g, dtype=torch.float64) - 1
    return [(z, mu, logvar),
            (torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(50, 3, generator=g, dtype=torch.float64),
             torch.randn(50, 3, generator=g, dtype=torch.float64) - 2),
            (z[:3], mu[:1], logvar[:1])]


def _naive_log_q(z, mu, logvar):
    d = z[:, None, :] - mu[None]
    log_k = -0.5 * (math.log(2 * math.pi) + logvar + d**2 / logvar.exp()).sum(-1)
    return torch.log(torch.exp(log_k).mean(1))


def _underflow_probe(answer):
    """Far from every code each log density is about -1e4: exp underflows to 0 unless the
    answer uses log-sum-exp."""
    z = torch.tensor([[12.0, -9.0], [0.3, 0.2]], dtype=torch.float64)
    mu = torch.tensor([[0.0, 0.0], [0.5, 0.1], [-0.4, 0.3]], dtype=torch.float64)
    logvar = torch.full((3, 2), -5.0, dtype=torch.float64)   # sigma^2 = 0.0067: log densities near -1.8e4
    out = _safely(answer, z, mu, logvar)
    return "exp underflows" if out is not None and not torch.isfinite(out).all() else None


log_q = Exercise(
    "04.3", "log q(z) of the aggregate posterior, by log-sum-exp", aggregate_log_density, _log_q_cases,
    mistakes=[
        Mistake("exp underflows",
                "your log q(z) is -inf far from the codes: there every log N(z; mu_i, sigma_i^2) is "
                "near -1e4 and exp() of it is 0 in floating point. Never leave log space: "
                "torch.logsumexp(log_k, dim=1) - log N.",
                _naive_log_q),
        Mistake("no -log N",
                "log-sum-exp without the -log N: q(z) is the average of the N densities, not their "
                "sum, so subtract math.log(N) (N = mu.shape[0]).",
                lambda z, mu, logvar: aggregate_log_density(z, mu, logvar) + math.log(mu.shape[0])),
        Mistake("log sigma for log sigma^2",
                "you read `logvar` as log sigma: it is log sigma^2, so the variance is exp(logvar) "
                "and the normaliser has -1/2 log sigma^2 = -1/2 logvar.",
                lambda z, mu, logvar: aggregate_log_density(z, mu, 2 * logvar)),
        Mistake("mean of the log densities",
                "you averaged the log densities: log q(z) is the log of the average density, "
                "log (1/N) sum_i N(z; mu_i, sigma_i^2), which Jensen's inequality puts above the "
                "average of the logs. Use torch.logsumexp(log_k, dim=1) - log N.",
                lambda z, mu, logvar: (-0.5 * (LOG_2PI + logvar + (z[:, None] - mu[None])**2 / logvar.exp())
                                       .sum(-1)).mean(1)),
        Mistake("no 2 pi",
                "the constant -1/2 log(2 pi) per latent dimension is missing from log N(z; mu_i, "
                "sigma_i^2) = -1/2 sum_j [log 2 pi + log sigma_ij^2 + (z_j - mu_ij)^2 / sigma_ij^2].",
                lambda z, mu, logvar: aggregate_log_density(z, mu, logvar) + 0.5 * LOG_2PI * z.shape[1]),
    ],
    probes=[_underflow_probe],
    hint="""
        Every (point, code) pair: broadcast z against mu (insert a dimension in each) to get
        differences of shape (M, N, J), then each pair's log N(z_m; mu_i, sigma_i^2) by summing
        the per-dimension terms of the statement over J: shape (M, N). log q(z) is the log of
        an average of exp's of these: torch has a function that computes log sum exp without
        leaving log space, and the average's 1/N becomes a subtraction. Check: with one code
        (N = 1), log q(z) is that code's log density.
    """,
)


# -- 4. Hoffman & Johnson's split of the KL term ---------------------------------------------

def elbo_surgery(mu, logvar, eps, log_q):
    """Split the average KL term of N codes (Hoffman & Johnson 2016):
        (1/N) sum_i KL(q(z|x_i) || p(z)) = I(i; z) + KL(q(z) || p(z)).
    Returns (I, KL(q(z) || p(z))), two numbers. The average KL by Appendix B; KL(q(z) || p(z))
    by one draw z_i = mu_i + sigma_i * eps_i from each q(z|x_i), averaging log q(z_i) - log p(z_i),
    with log_q(z, mu, logvar) the aggregate posterior's log density (exercise 04.3)."""
    avg_kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)).mean()    # Appendix B
    z = mu + (0.5 * logvar).exp() * eps                                      # z_i ~ q(z|x_i)
    log_p = -0.5 * (math.log(2 * math.pi) + z**2).sum(-1)                                  # log N(z; 0, I)
    mismatch = (log_q(z, mu, logvar) - log_p).mean()
    return avg_kl - mismatch, mismatch


def _surgery_cases():
    g = torch.Generator().manual_seed(6)
    out = []
    for n, scale, shift in ((40, 1.6, 0.5), (200, 1.0, -0.3)):
        mu = scale * torch.randn(n, 2, generator=g, dtype=torch.float64) + shift
        logvar = 0.7 * torch.randn(n, 2, generator=g, dtype=torch.float64) - 2
        out.append((mu, logvar, torch.randn(n, 2, generator=g, dtype=torch.float64), aggregate_log_density))
    return out


def _surgery_with(z_of, flip_split=False, flip_ratio=False):
    """elbo_surgery with one mistake: how z is drawn, the split's sign, or the ratio's."""
    def answer(mu, logvar, eps, log_q):
        avg_kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)).mean()
        z = z_of(mu, logvar, eps)
        ratio = log_q(z, mu, logvar) + 0.5 * (LOG_2PI + z**2).sum(-1)
        mismatch = -ratio.mean() if flip_ratio else ratio.mean()
        return (avg_kl + mismatch if flip_split else avg_kl - mismatch), mismatch
    return answer


_DRAW = lambda mu, logvar, eps: mu + (0.5 * logvar).exp() * eps


def _stacked(mu, logvar, eps, log_q):
    return torch.stack(elbo_surgery(mu, logvar, eps, log_q))


def _swapped(mu, logvar, eps, log_q):
    info, mismatch = elbo_surgery(mu, logvar, eps, log_q)
    return mismatch, info


def _info_by_monte_carlo(mu, logvar, eps, log_q):
    """I(i; z) = E[log q(z_i|x_i) - log q(z_i)], estimated on the same draws: valid, but not the split asked."""
    _, mismatch = elbo_surgery(mu, logvar, eps, log_q)
    z = _DRAW(mu, logvar, eps)
    log_own = -0.5 * (LOG_2PI + logvar + eps**2).sum(-1)                      # log N(z_i; mu_i, sigma_i^2)
    return (log_own - log_q(z, mu, logvar)).mean(), mismatch


surgery = Exercise(
    "04.4", "Hoffman & Johnson's split of the KL term", elbo_surgery, _surgery_cases,
    mistakes=[
        Mistake("z = mu",
                "you scored the means mu_i, a deterministic z where a sample is meant: KL(q(z) || p(z)) "
                "is an average over z ~ q(z), so draw z_i = mu_i + sigma_i * eps_i.",
                _surgery_with(lambda mu, logvar, eps: mu)),
        Mistake("z from the prior",
                "you scored z = eps, draws from the prior p(z): KL(q(z) || p(z)) averages "
                "log q(z) - log p(z) over draws from q(z), z_i = mu_i + sigma_i * eps_i.",
                _surgery_with(lambda mu, logvar, eps: eps)),
        Mistake("log sigma for log sigma^2",
                "your draw used exp(logvar) as sigma: `logvar` is log sigma^2, so "
                "sigma = exp(logvar / 2) and z_i = mu_i + exp(logvar_i / 2) * eps_i.",
                _surgery_with(lambda mu, logvar, eps: mu + logvar.exp() * eps)),
        Mistake("ratio sign",
                "the sign of the ratio is flipped: KL(q(z) || p(z)) = E_q[log q(z) - log p(z)], "
                "log q first; your mismatch came out as minus that.",
                _surgery_with(_DRAW, flip_ratio=True)),
        Mistake("split sign",
                "the split is average KL = I + KL(q(z) || p(z)), so I = average KL - KL(q(z) || p(z)); "
                "you added the two.",
                _surgery_with(_DRAW, flip_split=True)),
        Mistake("swapped pair",
                "your two numbers are in the wrong order: return (I, KL(q(z) || p(z))), the information first.",
                _swapped),
        Mistake("one tensor",
                "you returned one tensor of shape (2,): return the two numbers as a tuple, (I, kl), so that "
                "`info, mismatch = elbo_surgery(...)` reads them.",
                _stacked),
        Mistake("I by Monte Carlo",
                "you estimated I(i; z) on its own, as the mean of log q(z_i|x_i) - log q(z_i): a valid "
                "estimator, but not the split asked for. Take I = (average KL, Appendix B) - KL(q(z) || p(z)), "
                "so that the two parts add up to the KL term exactly.",
                _info_by_monte_carlo),
    ],
    hint="""
        (1) The left side: Appendix B's KL of each code (exercise 01.1), averaged over the N
        codes. (2) KL(q(z) || p(z)) = E_{q(z)}[log q(z) - log p(z)]: a draw from q(z) is a
        draw from one code's q(z|x_i), which eps turns into a sample by the reparameterization
        (sigma or sigma^2?); score each draw under the whole mixture (log_q) and under the
        prior N(0, I), and average the difference. (3) I is what the split leaves. Return a
        tuple of the two.
    """,
)
