"""Exercises of notebook 02 (the reparameterization trick, the SGVB estimators): checkers and
reference solutions.

Probes recognise what output comparisons cannot: a gradient that does not reach a parameter
(`.sample()`, `.detach()`, `torch.no_grad()`, `.item()` or numpy in the way), named by the
parameter it misses (or, for estimator B, by the term, KL or reconstruction, whose path is
cut), and noise drawn inside the answer instead of the noise passed in (two calls with the
same inputs disagree).
"""
from __future__ import annotations

import math

import torch

from . import Exercise, Mistake, outputs_close

F64 = torch.float64


GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-5  # looser than the values' 1e-5: a right float32 answer's gradient differs by ~1e-5


def _plain(x):
    return x.detach() if torch.is_tensor(x) else x


def _grads(fn, args, wrt):
    """fn(*args) and the gradients of its sum with respect to args[i], i in wrt (None where none flows)."""
    out = fn(*args)
    if not (torch.is_tensor(out) and out.requires_grad):
        return out, [None] * len(wrt)
    return out, list(torch.autograd.grad(out.sum(), [args[i] for i in wrt], allow_unused=True))


def _as_grad(g, like):
    """A gradient that did not flow (None) is a zero gradient."""
    return torch.zeros_like(like) if g is None else g.to(like.dtype)


def _same_grad(g, w):
    return torch.allclose(_as_grad(g, w), w, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def _call(answer, args, wrt):
    """_grads for the reader's answer: numpy on a tensor that requires grad means a cut graph
    (returns None); any other failure propagates (check() reports it, e.g. an in-place operation)."""
    try:
        return _grads(answer, args, wrt)
    except RuntimeError as err:
        if "numpy" in str(err):
            return None
        raise


def _grad_args(cases, wrt):
    """make_args for the probes: the first case, fresh, its arguments at `wrt` leaves requiring grad."""
    def make_args():
        return tuple(a.requires_grad_(True) if i in wrt else a for i, a in enumerate(cases()[0]))
    return make_args


def _gradient_probe(reference, make_args, wrt, names):
    """A probe: which of the arguments `wrt` (indices) the answer's gradient misses.

    names maps a tuple of indices (those whose gradient is missing or not the reference's) to a
    mistake's name; the tuple of all of `wrt` is "nothing reaches them". An answer whose output
    carries no gradient at all gets that name whatever its value; otherwise a value that is not
    the reference's is left to the comparison of outputs. make_args() returns fresh arguments
    whose entries at `wrt` are leaves requiring grad.
    """
    def probe(answer):
        args, ref_args = make_args(), make_args()
        answered = _call(answer, args, wrt)
        if answered is None or not (torch.is_tensor(answered[0]) and answered[0].requires_grad):
            return names[tuple(wrt)]
        (got, g_got), (want, g_want) = answered, _grads(reference, ref_args, wrt)
        if not outputs_close(_plain(got), want.detach()):
            return None  # a wrong value: the comparison of outputs says which
        bad = tuple(i for i, g, w in zip(wrt, g_got, g_want) if not _same_grad(g, w))
        return names[bad] if bad else None
    return probe


def _path_probe(reference, make_args, wrt, without_z):
    """A probe for estimator B, whose gradient reaches mu and log sigma^2 by two paths: through
    z (the reconstruction term) and through the KL term. without_z(args) swaps in a decoder that
    ignores z, so that only the KL term carries a gradient; the reconstruction's part is the rest.

    "gradients blocked": no gradient at all; "KL detached": the KL term's part is missing or
    wrong; "z detached": the reconstruction's part is; None if both are right, or if the value
    is not the reference's (the comparison of outputs says which).
    """
    def probe(answer):
        args, ref_args = make_args(), make_args()
        answered = _call(answer, args, wrt)
        if answered is None or not (torch.is_tensor(answered[0]) and answered[0].requires_grad):
            return "gradients blocked"
        (got, g_got), (want, g_want) = answered, _grads(reference, ref_args, wrt)
        if not outputs_close(_plain(got), want.detach()):
            return None
        kl_only = _call(answer, without_z(make_args()), wrt)
        if kl_only is None:
            return "gradients blocked"
        k_got, k_want = kl_only[1], _grads(reference, without_z(make_args()), wrt)[1]
        kl_ok = all(_same_grad(g, w) for g, w in zip(k_got, k_want))
        rec_ok = all(_same_grad(_as_grad(g, w) - _as_grad(k, w), w - kw)
                     for g, k, w, kw in zip(g_got, k_got, g_want, k_want))
        if not (kl_ok or rec_ok):
            return "gradients blocked"
        return None if kl_ok and rec_ok else ("z detached" if kl_ok else "KL detached")
    return probe


def _fresh_noise_probe(make_args, name="own noise"):
    """A probe: `name` if two calls on the same inputs disagree (the answer draws its own noise)."""
    def probe(answer):
        try:
            with torch.no_grad():
                a, b = answer(*make_args()), answer(*make_args())
        except Exception:
            return None
        return None if outputs_close(a, b, rtol=0, atol=0) else name
    return probe


# -- 1. The reparameterized sample, section 2.4 -------------------------------------------------

def reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps with sigma = exp(logvar / 2) (the paper's section 2.4; eq. 10's z^(i,l)):
    the same shape as eps; eps ~ N(0, I) is given, so z is a differentiable function of (mu, logvar)."""
    return mu + torch.exp(0.5 * logvar) * eps


def _reparam_cases():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64) - 0.5
    eps = torch.randn(5, 3, generator=g, dtype=F64)
    return [(mu, logvar, eps),
            (torch.full((4, 1), 2.0, dtype=F64), torch.full((4, 1), -3.0, dtype=F64), torch.randn(4, 1, generator=g, dtype=F64))]


_reparam_grad_args = _grad_args(_reparam_cases, wrt=(0, 1))


reparam = Exercise(
    "02.1", "the reparameterized sample z = mu + sigma * eps", reparameterize, _reparam_cases,
    mistakes=[
        Mistake("gradients blocked",
                "no gradient reaches mu or log sigma^2 through your z: `.sample()`, `.detach()`, "
                "`torch.no_grad()`, `.item()` or numpy cut the graph. Compute z = mu + sigma * eps with "
                "tensor operations on mu and logvar (what `.rsample()` does).",
                lambda mu, logvar, eps: (mu + torch.exp(0.5 * logvar) * eps).detach()),
        Mistake("no gradient to log sigma^2",
                "mu gets its gradient, but log sigma^2 does not (or not the right one): sigma was cut from "
                "`logvar` (a `.detach()`, `.item()`, or sigma computed outside the graph). Compute "
                "sigma = exp(logvar / 2) from logvar itself, or the encoder's variance never learns.",
                lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar.detach()) * eps),
        Mistake("no gradient to mu",
                "log sigma^2 gets its gradient, but mu does not (or not the right one): mu was cut from the "
                "graph (a `.detach()`, `.item()` or numpy). Add mu itself: z = mu + sigma * eps.",
                lambda mu, logvar, eps: mu.detach() + torch.exp(0.5 * logvar) * eps),
        Mistake("own noise",
                "your z changes between two calls with the same eps: you drew fresh noise (`torch.randn`, "
                "`.rsample()`) instead of using the `eps` passed in. Use eps itself.",
                lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * torch.randn_like(eps)),
        Mistake("sigma = exp(logvar)",
                "your scale is exp(logvar) = sigma^2, the variance: the standard deviation is "
                "sigma = exp(logvar / 2), so z = mu + exp(0.5 * logvar) * eps.",
                lambda mu, logvar, eps: mu + torch.exp(logvar) * eps),
        Mistake("deterministic z",
                "you returned z = mu: no sample at all, so the expectation over q becomes one point and no "
                "gradient reaches log sigma^2. Add sigma * eps.",
                lambda mu, logvar, eps: mu),
        Mistake("missing mu",
                "your z is sigma * eps, centred at 0: the location mu is missing. z = mu + sigma * eps.",
                lambda mu, logvar, eps: torch.exp(0.5 * logvar) * eps),
    ],
    probes=[_gradient_probe(reparameterize, _reparam_grad_args, wrt=(0, 1),
                            names={(0, 1): "gradients blocked", (1,): "no gradient to log sigma^2",
                                   (0,): "no gradient to mu"}),
            _fresh_noise_probe(lambda: _reparam_cases()[0])],
    hint="""
        The noise is given: eps ~ N(0, I), the same shape as mu. Scale it by the standard
        deviation and shift it by the mean. `logvar` is log sigma^2, so sigma = exp(logvar / 2).
        Do not call .sample() or torch.randn: the point is that z is a plain differentiable
        function of (mu, logvar) at fixed eps, so autograd can reach the encoder.
    """,
)


# -- 2. An inverse-CDF rsample: the Laplace distribution ----------------------------------------

def laplace_rsample(loc, scale, u):
    """z = F^{-1}(u) for Laplace(loc, scale), u ~ U(0, 1) given (the paper's section 2.4, the inverse-CDF approach):

        F(z) = 1/2 exp((z - loc) / scale)          for z < loc
               1 - 1/2 exp(-(z - loc) / scale)     for z >= loc
        F^{-1}(u) = loc - scale * sign(u - 1/2) * log(1 - 2 |u - 1/2|)

    Broadcasts loc, scale and u; E[z] = loc and Var[z] = 2 scale^2.
    """
    return loc - scale * torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())


def _laplace_cases():
    g = torch.Generator().manual_seed(1)
    loc, scale = torch.tensor([0.5, -1.0, 2.0], dtype=F64), torch.tensor([0.5, 2.0, 1.7], dtype=F64)
    u = torch.rand(6, 3, generator=g, dtype=F64) * 0.98 + 0.01
    u[0] = torch.tensor([0.02, 0.5, 0.97], dtype=F64)
    return [(loc, scale, u), (torch.tensor(0.3, dtype=F64), torch.tensor(0.7, dtype=F64),
                              torch.linspace(0.05, 0.95, 7, dtype=F64))]


_laplace_grad_args = _grad_args(_laplace_cases, wrt=(0, 1))


laplace = Exercise(
    "02.2", "an inverse-CDF rsample for the Laplace distribution", laplace_rsample, _laplace_cases,
    mistakes=[
        Mistake("gradients blocked",
                "no gradient reaches loc or scale through your z (`.detach()`, `.item()`, numpy or scipy "
                "in the way): an rsample is only useful if z is a differentiable function of the parameters. "
                "Write F^{-1}(u) with torch operations.",
                lambda loc, scale, u: laplace_rsample(loc, scale, u).detach()),
        Mistake("no gradient to scale",
                "loc gets its gradient, but scale does not (or not the right one): scale was cut from the "
                "graph (a `.detach()`, `.item()` or numpy). Multiply by the `scale` tensor itself.",
                lambda loc, scale, u: laplace_rsample(loc, scale.detach(), u)),
        Mistake("no gradient to loc",
                "scale gets its gradient, but loc does not (or not the right one): loc was cut from the "
                "graph (a `.detach()`, `.item()` or numpy). Add the `loc` tensor itself.",
                lambda loc, scale, u: laplace_rsample(loc.detach(), scale, u)),
        Mistake("own noise",
                "your z changes between two calls with the same u: you drew fresh noise (`torch.rand`, "
                "`.rsample()`) instead of transforming the `u` passed in.",
                lambda loc, scale, u: laplace_rsample(loc, scale, torch.rand_like(u))),
        Mistake("missing minus",
                "your z decreases as u grows: log(1 - 2|u - 1/2|) is never positive, so F^{-1} needs the minus sign, "
                "z = loc - scale * sign(u - 1/2) * log(1 - 2|u - 1/2|). (Your draws are the mirror image about loc: "
                "still Laplace-distributed by symmetry, but not F^{-1}(u).)",
                lambda loc, scale, u: loc + scale * torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())),
        Mistake("one-sided",
                "your z never falls below loc: loc - scale * log(1 - u) is the Exponential's inverse CDF, shifted. "
                "The Laplace is two-sided: invert each half of its CDF, split at u = 1/2.",
                lambda loc, scale, u: loc - scale * torch.log1p(-u)),
        Mistake("scale as rate",
                "you divided by scale: the Exponential's rate divides, but the Laplace's scale multiplies "
                "(Var[z] = 2 scale^2). z = loc - scale * sign(u - 1/2) * log(1 - 2|u - 1/2|).",
                lambda loc, scale, u: loc - torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs()) / scale),
        Mistake("missing 2",
                "the factor 2 inside the log is missing: 1 - |u - 1/2| never drops below 1/2, so your z stays "
                "within scale * log 2 of loc. It is log(1 - 2|u - 1/2|), which runs from 0 at u = 1/2 to -inf at the ends.",
                lambda loc, scale, u: loc - scale * torch.sign(u - 0.5) * torch.log1p(-(u - 0.5).abs())),
    ],
    probes=[_gradient_probe(laplace_rsample, _laplace_grad_args, wrt=(0, 1),
                            names={(0, 1): "gradients blocked", (1,): "no gradient to scale",
                                   (0,): "no gradient to loc"}),
            _fresh_noise_probe(lambda: _laplace_cases()[0])],
    hint="""
        Solve u = F(z) for z on each half of the CDF: u < 1/2 is the half z < loc, u >= 1/2 the
        half z >= loc; each is a log after one rearrangement. The two solutions are mirror images
        about loc, so one expression in sign(u - 1/2) and |u - 1/2| covers both, with no Python
        `if` (u is a tensor). Check your formula: u = 1/2 must give loc, u -> 0 and u -> 1 must
        give -inf and +inf, and with u = torch.rand(100_000) the mean should be about loc and the
        variance about 2 scale^2.
    """,
)


# -- 3. Estimator B (eq. 7) with the Bernoulli decoder of Appendix C.1 ----------------------------

def estimator_b(decoder, x, mu, logvar, eps):
    """Estimator B (eq. 7), one value per datapoint: shape (B,).

        L^B = -KL(q(z|x) || N(0, I)) + 1/L sum_l log p(x | z_l),   z_l = mu + sigma * eps_l,
        -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)                        (Appendix B)
        log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i),  y = decoder(z)       (Appendix C.1)

    x is (B, D) binary, mu and logvar (B, J), eps (L, B, J); decoder maps (L, B, J) to (L, B, D).
    """
    z = mu + torch.exp(0.5 * logvar) * eps                                  # (L, B, J)
    y = decoder(z)                                                          # (L, B, D)
    log_lik = (x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1)       # summed over the D pixels
    neg_kl = 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)
    return neg_kl + log_lik.mean(0)


def _bernoulli_decoder(z_dim, x_dim, hidden, seed):
    """Appendix C.1's decoder y = sigmoid(W2 tanh(W1 z + b1) + b2), with fixed random weights."""
    g = torch.Generator().manual_seed(seed)
    W1, b1 = torch.randn(hidden, z_dim, generator=g, dtype=F64), torch.randn(hidden, generator=g, dtype=F64)
    W2, b2 = torch.randn(x_dim, hidden, generator=g, dtype=F64), torch.randn(x_dim, generator=g, dtype=F64)

    def decoder(z):
        """Bernoulli means y, one per pixel: (..., J) -> (..., D)."""
        return torch.sigmoid(torch.tanh(z @ W1.T + b1) @ W2.T + b2)
    return decoder


def _b_cases():
    cases = []
    for seed, (D, J, L, B) in enumerate([(6, 2, 3, 4), (5, 3, 1, 3), (8, 1, 2, 2)]):
        g = torch.Generator().manual_seed(20 + seed)
        x = (torch.rand(B, D, generator=g, dtype=F64) < 0.4).to(F64)
        mu = torch.randn(B, J, generator=g, dtype=F64)
        logvar = torch.randn(B, J, generator=g, dtype=F64) - 1
        eps = torch.randn(L, B, J, generator=g, dtype=F64)
        cases.append((_bernoulli_decoder(J, D, 5, seed), x, mu, logvar, eps))
    return cases


_b_grad_args = _grad_args(_b_cases, wrt=(2, 3))


def _b_without_z(args):
    """The same arguments with a decoder that ignores z (its output at z = 0): only the KL carries a gradient."""
    decoder, x, mu, logvar, eps = args
    y0 = decoder(torch.zeros(mu.shape[-1], dtype=mu.dtype)).detach()
    return (lambda z: y0.repeat(*z.shape[:-1], 1)), x, mu, logvar, eps


def _b_parts(decoder, x, mu, logvar, eps, sigma_power=0.5):
    """Per-pixel log p(x_i|z_l), (L, B, D), and KL, (B,): the mistakes' pieces."""
    y = decoder(mu + torch.exp(sigma_power * logvar) * eps)
    return x * torch.log(y) + (1 - x) * torch.log(1 - y), -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def _b_kl_sign(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, eps)
    return per_pixel.sum(-1).mean(0) + kl


def _b_pixel_mean(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, eps)
    return per_pixel.mean(-1).mean(0) - kl


def _b_reduction_mean(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, eps)
    return per_pixel.mean() - kl                        # F.binary_cross_entropy's default reduction="mean"


def _b_deterministic(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, 0 * eps)
    return per_pixel.sum(-1).mean(0) - kl


def _b_sum_over_samples(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, eps)
    return per_pixel.sum(-1).sum(0) - kl


def _b_sigma_as_variance(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, eps, sigma_power=1.0)
    return per_pixel.sum(-1).mean(0) - kl


def _b_no_kl(decoder, x, mu, logvar, eps):
    return _b_parts(decoder, x, mu, logvar, eps)[0].sum(-1).mean(0)


def _b_reduction_sum(decoder, x, mu, logvar, eps):
    per_pixel, kl = _b_parts(decoder, x, mu, logvar, eps)
    return per_pixel.sum() - kl                         # F.binary_cross_entropy(..., reduction="sum")


def _b_kl_detached(decoder, x, mu, logvar, eps):
    per_pixel, _ = _b_parts(decoder, x, mu, logvar, eps)
    with torch.no_grad():
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)
    return per_pixel.sum(-1).mean(0) - kl


def _b_detached(decoder, x, mu, logvar, eps):
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    y = decoder(z)
    return (x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1).mean(0) - _b_parts(decoder, x, mu, logvar, eps)[1]


sgvb_b = Exercise(
    "02.3", "estimator B (eq. 7) with a Bernoulli decoder", estimator_b, _b_cases,
    mistakes=[
        Mistake("gradients blocked",
                "no gradient reaches mu or log sigma^2 (or not the right one), neither through z nor "
                "through the KL term: a `.detach()`, `torch.no_grad()`, `.sample()`, `.item()` or numpy cut "
                "the graph. Compute the whole estimate with tensor operations on mu and logvar.",
                lambda *args: estimator_b(*args).detach()),
        Mistake("z detached",
                "your value is right and the KL term's gradient reaches the encoder, but the reconstruction "
                "term's does not (or not all of it): z was cut from mu or sigma (a `.detach()`, "
                "`torch.no_grad()` or `.sample()`). Compute z = mu + sigma * eps inside the graph.", _b_detached),
        Mistake("KL detached",
                "your value is right and the reconstruction term's gradient reaches the encoder through z, "
                "but the KL term's does not: it was computed under `torch.no_grad()`, or with `.detach()`, "
                "`.item()` or numpy. Compute Appendix B's KL with tensor operations on mu and logvar: its "
                "gradient is what pulls q towards the prior.", _b_kl_detached),
        Mistake("KL sign", "the KL term has the wrong sign: eq. 7 is -KL + reconstruction, and the KL "
                "(Appendix B) is never negative; your estimate adds it.", _b_kl_sign),
        Mistake("mean over pixels",
                "you averaged log p(x|z) over the D pixels: Appendix C.1 sums them, log p(x|z) = sum_i "
                "[x_i log y_i + (1 - x_i) log(1 - y_i)]. The mean shrinks the reconstruction term D times "
                "next to the KL.", _b_pixel_mean),
        Mistake("reduction mean",
                "one reconstruction number for the whole batch, averaged over samples, datapoints and pixels: "
                "that is `F.binary_cross_entropy`'s default reduction='mean'. Use reduction='none' (or write "
                "the log-likelihood), sum over pixels, average over the L samples.", _b_reduction_mean),
        Mistake("deterministic z",
                "your reconstruction term does not depend on eps: you decoded z = mu. Eq. 7 averages "
                "log p(x|z_l) over samples z_l = mu + sigma * eps_l.", _b_deterministic),
        Mistake("sum over samples",
                "you summed log p(x|z_l) over the L samples: eq. 7 averages them, 1/L sum_l, or the "
                "reconstruction term grows with L.", _b_sum_over_samples),
        Mistake("sigma = exp(logvar)",
                "your z uses exp(logvar) = sigma^2, the variance, as its scale: the standard deviation is "
                "sigma = exp(logvar / 2), so z = mu + exp(0.5 * logvar) * eps.", _b_sigma_as_variance),
        Mistake("no KL term",
                "your estimate has no KL term: eq. 7 is -KL(q(z|x) || N(0, I)) + the reconstruction term. "
                "Subtract Appendix B's KL (exercise 01.1), one per datapoint.", _b_no_kl),
        Mistake("reduction sum",
                "one reconstruction number for the whole batch, summed over samples, datapoints and pixels: "
                "that is `F.binary_cross_entropy(..., reduction='sum')`. Use reduction='none' (or write the "
                "log-likelihood), sum over the pixels (the last dimension), average over the L samples (dim 0): "
                "one value per datapoint.", _b_reduction_sum),
        Mistake("own noise",
                "your estimate changes between two calls with the same eps: you drew fresh noise (`torch.randn`, "
                "`.rsample()`) instead of using the `eps` passed in. Build z from eps itself.",
                lambda decoder, x, mu, logvar, eps: estimator_b(decoder, x, mu, logvar, torch.randn_like(eps))),
    ],
    probes=[_path_probe(estimator_b, _b_grad_args, wrt=(2, 3), without_z=_b_without_z),
            _fresh_noise_probe(lambda: _b_cases()[0])],
    hint="""
        Eq. 7 in three steps; watch the shapes. (1) The L samples z^(l) from the given eps, as in
        exercise 02.1: (L, B, J). (2) Appendix C.1's Bernoulli log-likelihood of each pixel under
        the decoder's means y, (L, B, D); an image's log p(x|z) is the SUM over its pixels, and eq. 7
        AVERAGES over the L samples: (B,). (3) Appendix B's KL of each q(z|x) from N(0, I),
        summed over the J latent dimensions (exercise 01.1): (B,). Eq. 7 subtracts it.
        Every step must stay a tensor operation on mu and logvar, so the gradient reaches them.
    """,
)


# -- 4. Section 2.2's score-function estimator, with a baseline (a control variate) -------------

def score_grad_baseline(fz, z, mu, sigma):
    """Per-sample score-function estimates of (d/dmu, d/dsigma) E_{N(mu, sigma^2)}[f(z)], shape (n, 2):
    section 2.2's estimator, with a leave-one-out baseline (a control variate) b_i, the mean of
    f over the other n - 1 samples. (The paper's section 2.2 has only the plain f(z) grad log q;
    control variates appear in its related work, section 4.)

        g_i = (f(z_i) - b_i) * grad log N(z_i; mu, sigma^2)
        d/dmu log N = (z - mu) / sigma^2,   d/dsigma log N = ((z - mu)^2 - sigma^2) / sigma^3

    fz = f(z_i) and z are (n,) with z_i ~ N(mu, sigma^2); b_i does not depend on z_i, so
    E[b_i grad log N(z_i)] = 0: the baseline adds no bias.
    """
    n = fz.shape[0]
    b = (fz.sum() - fz) / (n - 1)
    score = torch.stack([(z - mu) / sigma**2, ((z - mu) ** 2 - sigma**2) / sigma**3], dim=-1)
    return (fz - b)[:, None] * score


def _baseline_cases():
    g = torch.Generator().manual_seed(3)
    cases = []
    for n, mu, sigma, f in [(6, 0.5, 1.5, lambda z: z**2 + 100), (4, -1.0, 0.6, torch.sin), (9, 2.0, 0.8, torch.exp)]:
        z = mu + sigma * torch.randn(n, generator=g, dtype=F64)
        cases.append((f(z), z, mu, sigma))
    return cases


def _loo(fz):
    return (fz.sum() - fz) / (fz.shape[0] - 1)


def _scores(z, mu, sigma):
    return torch.stack([(z - mu) / sigma**2, ((z - mu) ** 2 - sigma**2) / sigma**3], dim=-1)


baseline = Exercise(
    "02.4", "the score-function estimator with a leave-one-out baseline", score_grad_baseline, _baseline_cases,
    mistakes=[
        Mistake("no baseline",
                "no baseline: you multiplied f(z_i) itself by the score. Subtract b_i, the mean of f over "
                "the other n - 1 samples, (sum_j f(z_j) - f(z_i)) / (n - 1).",
                lambda fz, z, mu, sigma: fz[:, None] * _scores(z, mu, sigma)),
        Mistake("own sample in baseline",
                "your baseline is the mean of all n values, f(z_i) included: it then depends on z_i, and "
                "f(z_i) - mean = (n - 1)/n (f(z_i) - b_i) shrinks the gradient by (n - 1)/n, a bias. "
                "Leave sample i out: b_i = (sum_j f(z_j) - f(z_i)) / (n - 1).",
                lambda fz, z, mu, sigma: (fz - fz.mean())[:, None] * _scores(z, mu, sigma)),
        Mistake("baseline added",
                "you added the baseline: (f(z_i) + b_i) doubles the offset instead of removing it. "
                "Subtract it: (f(z_i) - b_i) * score.",
                lambda fz, z, mu, sigma: (fz + _loo(fz))[:, None] * _scores(z, mu, sigma)),
        Mistake("mu-score over sigma",
                "your d/dmu column divides by sigma, not sigma^2: d/dmu log N(z; mu, sigma^2) = (z - mu) / sigma^2.",
                lambda fz, z, mu, sigma: (fz - _loo(fz))[:, None] * torch.stack(
                    [(z - mu) / sigma, ((z - mu) ** 2 - sigma**2) / sigma**3], dim=-1)),
        Mistake("sigma-score without -1/sigma",
                "your d/dsigma column misses the normalizer's term: log N contains -log sigma, so "
                "d/dsigma log N = (z - mu)^2 / sigma^3 - 1/sigma = ((z - mu)^2 - sigma^2) / sigma^3.",
                lambda fz, z, mu, sigma: (fz - _loo(fz))[:, None] * torch.stack(
                    [(z - mu) / sigma**2, (z - mu) ** 2 / sigma**3], dim=-1)),
        Mistake("score for log sigma",
                "your second column is the score with respect to log sigma, ((z - mu)^2 - sigma^2) / sigma^2: "
                "the exercise asks for d/dsigma, which is that divided by sigma, ((z - mu)^2 - sigma^2) / sigma^3.",
                lambda fz, z, mu, sigma: (fz - _loo(fz))[:, None] * torch.stack(
                    [(z - mu) / sigma**2, ((z - mu) ** 2 - sigma**2) / sigma**2], dim=-1)),
        Mistake("baseline over n",
                "your baseline divides the sum of the other n - 1 values by n: it is then (n - 1)/n times "
                "their mean, and the offset is not removed. b_i = (sum_j f(z_j) - f(z_i)) / (n - 1).",
                lambda fz, z, mu, sigma: (fz - (fz.sum() - fz) / fz.shape[0])[:, None] * _scores(z, mu, sigma)),
    ],
    hint="""
        Two pieces, then a product. The baseline b_i is the mean of the OTHER n - 1 values of f:
        no loop is needed, since "all but i" is the total minus the i-th term. The score: write
        log N(z; mu, sigma^2) = -log sigma - (z - mu)^2 / (2 sigma^2) + const and differentiate it
        with respect to mu and to sigma (this notebook's section 1 gives both). Each row i of the
        (n, 2) result is (f(z_i) - b_i) times the two scores at z_i. Use whole-tensor operations:
        the measurement after the check calls your function on 20,000 samples.
    """,
)


class Report:
    """Printed lines (the text of a measurement), shown as is in a notebook."""

    def __init__(self, lines):
        self.lines = list(lines)

    def __repr__(self) -> str:
        return "\n".join(self.lines)


def variance_drop(answer, n: int = 20_000, mu: float = 0.5, sigma: float = 1.0, offset: float = 100.0,
                  seed: int = 0) -> Report:
    """Measure what a baseline buys on notebook 02's section 3a f(z) = z^2 + offset, once `answer` passes 02.4.

    Draws n samples z ~ N(mu, sigma^2) (fixed seed) and compares the single-sample variance of
    the score-function estimate without a baseline and with `answer`'s, and the mean of
    `answer`'s with the exact gradient (2 mu, 2 sigma). Never raises.
    """
    fb = baseline.check(answer)
    if not fb.passed:
        return Report([f"The measurement waits for 02.4 to pass. Now: {fb!r}"])
    z = mu + sigma * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    fz = z**2 + offset
    try:
        with_b = answer(fz, z, mu, sigma)
    except Exception as err:
        return Report([f"`{getattr(answer, '__name__', 'your function')}` raised {type(err).__name__}: {err}"])
    without = fz[:, None] * _scores(z, mu, sigma)
    exact = (2 * mu, 2 * sigma)
    lines = [f"f(z) = z^2 + {offset:g}, mu = {mu}, sigma = {sigma}, n = {n:,} samples"]
    for k, name in enumerate(["mu", "sigma"]):
        se = with_b[:, k].std().item() / math.sqrt(n)
        v0, v1 = without[:, k].var().item(), with_b[:, k].var().item()
        lines.append(f"d/d{name:<5}: exact {exact[k]:.3f}; with your baseline {with_b[:, k].mean().item():.3f} "
                     f"± {se:.3f}; variance {v0:,.1f} without a baseline, {v1:,.2f} with: {v0 / v1:,.0f}x lower")
    return Report(lines)
