"""A latent-variable model where everything is closed-form: probabilistic PCA.

    prior       p(z)   = N(z; 0, I_J)                     J latent dimensions (the paper's J)
    likelihood  p(x|z) = N(x; W z + b, s^2 I_D)          i.e. x = W z + b + s eps, eps ~ N(0, I_D)
    marginal    p(x)   = N(x; b, W W^T + s^2 I_D)        a linear map of the independent z and eps
    posterior   p(z|x) = N(z; m, S),  S = (I + W^T W / s^2)^-1,  m = S W^T (x - b) / s^2

For a Gaussian q(z|x) = N(mu, C) the ELBO (eq. 2-3 of the paper) and KL(q || p(z|x)) are
closed-form too, so every identity of the paper can be checked to machine precision:

    log p(x) = KL(q(z|x) || p(z|x)) + L(q; x)                          (eq. 1)

`theta_gradients` differentiates the three terms of eq. 1 with respect to the generative
parameters theta = (W, b, log s), q held fixed: grad L = grad log p(x) exactly when q is the
posterior, and differs from it by grad KL(q || p(z|x)) otherwise.

`LinearGaussian` also has `encode(x) -> (mu, logvar)` and `log_likelihood(x, z)`, so the
SGVB estimators of vae_utils.elbo (sgvb_a, sgvb_b) and vae_utils.importance run on it unchanged.
Every tensor a method creates has W's device and dtype; `random_model` makes float64 models
by default (identities then hold to 1e-10). q is given as (mu, logvar) for a diagonal
covariance, or as (mu, cov=C) for a full one; mu is (..., J), C is (J, J) or (..., J, J).
A diagonal q is computed from its variances alone (Appendix B's sums, no J x J matrix); a full q
through its matrix; the two code paths agree (tests), so eq. 1 with a diagonal q (L by the first,
KL(q || p(z|x)) by kl_gaussians) checks one against the other.
`s` is a float, or a 0-d tensor (then everything is differentiable in s, as in theta_gradients).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from .elbo import LOG_2PI, log_normal, log_standard_normal

DTYPE = torch.float64  # random_model's default


def _is_diagonal(logvar=None, cov=None) -> bool:
    """True for a diagonal q given by its log-variances, False for a full covariance matrix."""
    if (logvar is None) == (cov is None):
        raise ValueError("give exactly one of logvar (diagonal q) or cov (full q)")
    return cov is None


def _cov(logvar=None, cov=None):
    """A full covariance from either a diagonal log-variance or a full matrix."""
    return torch.diag_embed(logvar.exp()) if _is_diagonal(logvar, cov) else cov


def _trace(a):
    return a.diagonal(dim1=-2, dim2=-1).sum(-1)


def _log(v):
    """log of a float (math.log, as before) or of a tensor (torch.log, differentiable)."""
    return torch.log(v) if torch.is_tensor(v) else math.log(v)


def kl_gaussians(mu_q, cov_q, mu_p, cov_p):
    """KL(N(mu_q, cov_q) || N(mu_p, cov_p)), both full covariances, J = the dimension:

        1/2 [ tr(P^-1 Q) + (mu_p - mu_q)^T P^-1 (mu_p - mu_q) - J + log det P - log det Q ]
    """
    d = mu_q.shape[-1]
    chol_p = torch.linalg.cholesky(cov_p)
    p_inv_q = torch.cholesky_solve(cov_q, chol_p)
    diff = (mu_p - mu_q).unsqueeze(-1)
    maha = (diff * torch.cholesky_solve(diff, chol_p)).sum((-2, -1))
    return 0.5 * (_trace(p_inv_q) + maha - d + torch.logdet(cov_p) - torch.logdet(cov_q))


def kl_to_prior(mu, logvar=None, *, cov=None):
    """KL(q || N(0, I)) = 1/2 [ tr C + mu^T mu - J - log det C ]

    = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2) when C = diag sigma^2 (Appendix B).
    """
    if _is_diagonal(logvar, cov):
        return 0.5 * (logvar.exp().sum(-1) + (mu**2).sum(-1) - mu.shape[-1] - logvar.sum(-1))
    C = cov
    return 0.5 * (_trace(C) + (mu**2).sum(-1) - mu.shape[-1] - torch.logdet(C))


def entropy(logvar=None, *, cov=None):
    """H[q] = -E_q[log q(z)] = 1/2 [ J log(2 pi e) + log det C ]   (log det C = sum_j log sigma_j^2 if diagonal)."""
    if _is_diagonal(logvar, cov):
        return 0.5 * (logvar.shape[-1] * (LOG_2PI + 1) + logvar.sum(-1))
    C = cov
    return 0.5 * (C.shape[-1] * (LOG_2PI + 1) + torch.logdet(C))


@dataclass(frozen=True)
class LinearGaussian:
    """z ~ N(0, I_J), x|z ~ N(W z + b, s^2 I_D); W is (D, J), b is (D,), s > 0 (float or 0-d tensor).

    `q_mu`, `q_logvar` (optional, each (J,) or (B, J)) fix the q that `encode` returns;
    without them `encode` returns the exact posterior's mean and diagonal variance
    (which is the exact posterior itself when W^T W is diagonal, e.g. J = 1).
    """

    W: torch.Tensor
    b: torch.Tensor
    s: float
    q_mu: torch.Tensor | None = None
    q_logvar: torch.Tensor | None = None

    @property
    def x_dim(self) -> int:
        return self.W.shape[0]

    @property
    def z_dim(self) -> int:
        return self.W.shape[1]

    def _eye(self, n: int):
        return torch.eye(n, dtype=self.W.dtype, device=self.W.device)

    # --- the generative model -------------------------------------------------------
    def sample(self, n: int, generator=None):
        """(x, z): n draws of z ~ p(z), then x ~ p(x|z); shapes (n, D) and (n, J).

        Drawn on the generator's device (W's without one), in W's dtype, then moved to W's device.
        """
        like = {"dtype": self.W.dtype, "device": self.W.device if generator is None else generator.device}
        z = torch.randn(n, self.z_dim, generator=generator, **like).to(self.W.device)
        eps = torch.randn(n, self.x_dim, generator=generator, **like).to(self.W.device)
        return z @ self.W.T + self.b + self.s * eps, z  # x = W z + b + s eps

    def log_likelihood(self, x, z):
        """log p(x|z) = log N(x; W z + b, s^2 I), for x (B, D) and z (..., B, J): shape (..., B)."""
        logvar = torch.zeros_like(x) + 2 * _log(self.s)
        return log_normal(x, z @ self.W.T + self.b, logvar)

    def log_prior(self, z):
        """log p(z) = log N(z; 0, I)."""
        return log_standard_normal(z)

    def marginal_cov(self):
        """Cov[x] = W W^T + s^2 I: the marginal p(x) = int p(x|z) p(z) dz is N(b, W W^T + s^2 I)."""
        return self.W @ self.W.T + self.s**2 * self._eye(self.x_dim)

    def log_marginal(self, x):
        """Exact log p(x) = -1/2 [ D log 2 pi + log det K + (x - b)^T K^-1 (x - b) ],  K = W W^T + s^2 I.

        Computed with the Cholesky factor K = L L^T: log det K = 2 sum log L_ii, and
        (x - b)^T K^-1 (x - b) = |r|^2 with L r = x - b.
        """
        chol = torch.linalg.cholesky(self.marginal_cov())
        r = torch.linalg.solve_triangular(chol, (x - self.b).unsqueeze(-1), upper=False).squeeze(-1)
        logdet = 2 * chol.diagonal().log().sum()
        return -0.5 * (self.x_dim * LOG_2PI + logdet + (r**2).sum(-1))

    def posterior(self, x):
        """Exact p(z|x) = N(m, S): S = (I + W^T W / s^2)^-1, m = S W^T (x - b) / s^2.

        Bayes' rule: log p(z|x) = log p(x|z) + log p(z) + const
                                = -1/2 z^T (I + W^T W / s^2) z + z^T W^T (x - b) / s^2 + const,
        a quadratic in z, so a Gaussian with precision S^-1 and mean m (complete the square).
        Returns (m, S): m is (..., J); S is (J, J), the same for every x.
        """
        S = torch.linalg.inv(self._eye(self.z_dim) + self.W.T @ self.W / self.s**2)
        m = (x - self.b) @ self.W @ S / self.s**2  # S is symmetric, so (S W^T r)^T = r^T W S
        return m, S

    # --- the ELBO of a Gaussian q(z|x) = N(mu, C), all closed-form -------------------
    def expected_log_likelihood(self, x, mu, logvar=None, *, cov=None):
        """E_q[log p(x|z)] = -D/2 log(2 pi s^2) - ( |x - W mu - b|^2 + tr(W C W^T) ) / (2 s^2).

        The "reconstruction" term of eq. 3: a negative squared error between x and the
        decoded mean W mu + b, plus the spread tr(W C W^T) that q's noise adds to it:
        with z = mu + e, E[e] = 0, Cov e = C, the cross term averages to 0 and
        E|W e|^2 = E[e^T W^T W e] = tr(W^T W C) = tr(W C W^T),
        which for C = diag sigma^2 is sum_j sigma_j^2 |w_j|^2 (w_j the j-th column of W).
        """
        sq_err = ((x - mu @ self.W.T - self.b) ** 2).sum(-1)
        if _is_diagonal(logvar, cov):
            spread = (logvar.exp() * (self.W**2).sum(0)).sum(-1)
        else:
            spread = _trace(self.W @ cov @ self.W.T)
        return -0.5 * self.x_dim * _log(2 * math.pi * self.s**2) - (sq_err + spread) / (2 * self.s**2)

    def expected_log_joint(self, x, mu, logvar=None, *, cov=None):
        """E_q[log p(x, z)] = E_q[log p(x|z)] + E_q[log p(z)],  E_q[log p(z)] = -1/2 [J log 2 pi + tr C + |mu|^2]."""
        trace = logvar.exp().sum(-1) if _is_diagonal(logvar, cov) else _trace(cov)
        e_log_prior = -0.5 * (self.z_dim * LOG_2PI + trace + (mu**2).sum(-1))
        return self.expected_log_likelihood(x, mu, logvar, cov=cov) + e_log_prior

    def elbo(self, x, mu, logvar=None, *, cov=None):
        """L(q; x) = -KL(q(z|x) || p(z)) + E_q[log p(x|z)]   (eq. 3), exactly."""
        return self.expected_log_likelihood(x, mu, logvar, cov=cov) - kl_to_prior(mu, logvar, cov=cov)

    def elbo_eq2(self, x, mu, logvar=None, *, cov=None):
        """L(q; x) = E_q[log p(x, z) - log q(z|x)] = E_q[log p(x, z)] + H[q]   (eq. 2), exactly."""
        return self.expected_log_joint(x, mu, logvar, cov=cov) + entropy(logvar, cov=cov)

    def kl_to_posterior(self, x, mu, logvar=None, *, cov=None):
        """KL(q(z|x) || p(z|x)): the gap log p(x) - L(q; x), from the two Gaussians directly."""
        m, S = self.posterior(x)
        return kl_gaussians(mu, _cov(logvar, cov), m, S)

    # --- the interface of vae_utils.elbo ----------------------------------------------
    def encode(self, x):
        """(mu, logvar) of q(z|x), each (B, J): the fixed q if given, else the posterior's diagonal."""
        shape = (*x.shape[:-1], self.z_dim)
        if self.q_mu is not None:
            return self.q_mu.expand(shape), self.q_logvar.expand(shape)
        m, S = self.posterior(x)
        return m, S.diagonal().log().expand(shape)

    def with_q(self, mu, logvar):
        """A copy whose `encode` returns q = N(mu, diag exp(logvar)) for every x (on W's device, in W's dtype)."""
        like = {"dtype": self.W.dtype, "device": self.W.device}
        return replace(self, q_mu=torch.as_tensor(mu, **like), q_logvar=torch.as_tensor(logvar, **like))


class ThetaGradients(NamedTuple):
    """Gradients over theta = (W, b, log s), flattened in that order (D*J + D + 1 numbers).

    log_px: grad sum_x log p(x);  elbo: grad sum_x L(q; x);  kl: grad sum_x KL(q || p(z|x)).
    """

    log_px: torch.Tensor
    elbo: torch.Tensor
    kl: torch.Tensor


def theta_gradients(model: LinearGaussian, x, mu, logvar=None, *, cov=None) -> ThetaGradients:
    """The theta-gradients of the three terms of eq. 1, summed over the datapoints x (B, D).

    theta = (W, b, log s) are the generative parameters; q = N(mu, C) plays phi and is held
    fixed (detached). Differentiating eq. 1, log p(x) = KL(q || p(z|x)) + L, in theta:

        grad L = grad log p(x) - grad KL(q || p_theta(z|x)).

    When q is the exact posterior of this theta (mu, C = model.posterior(x)), the KL is 0,
    its minimum over theta, so its gradient is 0 and grad L = grad log p(x): the bound
    touches log p(x) and is tangent to it (the argument behind EM). For any other q the
    two gradients differ by grad KL. Each of the three gradients is computed by autograd from
    its own closed form (log_marginal, elbo, kl_to_posterior), so the identity above is a
    check, not an assumption.
    """
    W = model.W.detach().clone().requires_grad_(True)
    b = model.b.detach().clone().requires_grad_(True)
    log_s = torch.as_tensor(_log(model.s), dtype=W.dtype, device=W.device).detach().clone().requires_grad_(True)
    m = LinearGaussian(W, b, log_s.exp())
    C = _cov(None if logvar is None else logvar.detach(), None if cov is None else cov.detach())
    mu = mu.detach()
    params = (W, b, log_s)

    def grad(value):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value.sum(), params, retain_graph=True)])

    return ThetaGradients(log_px=grad(m.log_marginal(x)), elbo=grad(m.elbo(x, mu, cov=C)),
                          kl=grad(m.kl_to_posterior(x, mu, cov=C)))


def random_model(x_dim: int, z_dim: int, s: float = 0.5, seed: int = 0, dtype=DTYPE,
                 device=None) -> LinearGaussian:
    """A LinearGaussian with W, b ~ N(0, 1) entries, drawn from a fixed seed.

    Drawn in float64 on the CPU, then converted: the same seed gives the same model on any
    device (up to the rounding of a smaller dtype).
    """
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64)
    b = torch.randn(x_dim, generator=g, dtype=torch.float64)
    return LinearGaussian(W.to(device, dtype), b.to(device, dtype), s)
