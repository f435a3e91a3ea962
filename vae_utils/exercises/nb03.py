"""Exercises of notebook 03 (AEVB on MNIST): checkers and reference solutions.

03.1 shares notebook 02's probes (the gradient through z and through the KL term; noise drawn
inside the answer) and adds one for logits so large that log(sigmoid) breaks.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from . import Exercise, Mistake, outputs_close
from .nb02 import _fresh_noise_probe, _grad_args, _path_probe

ex = sys.modules[__name__]  # solutions read as in the notebook, which imports this module as `ex`

F64 = torch.float64


# -- 1. Estimator B for a Bernoulli decoder --------------------------------------------------

def estimator_b(x, mu, logvar, eps, decoder):
    """Estimator B (eq. 10, L = 1) for each row: shape (B,).

    x (B, D) grey levels in [0, 1]; mu, logvar (B, J) of q(z|x); eps (B, J) ~ N(0, I);
    decoder(z) -> logits (B, D) of the Bernoulli decoder, y = sigmoid(logits).
    L = -KL(q(z|x) || p(z)) + log p(x|z),  z = mu + sigma * eps.
    """
    z = mu + torch.exp(0.5 * logvar) * eps                    # the reparameterized sample, sigma = exp(logvar / 2)
    logits = decoder(z)
    log_px = (x * logits - F.softplus(logits)).sum(-1)        # sum_i x_i log y_i + (1 - x_i) log(1 - y_i), stably
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)   # Appendix B
    return log_px - kl


def _linear_decoder(W, b):
    return lambda z: z @ W + b


def _decoder_case(g, B, J, D, binary, noise=True):
    """One case of a Bernoulli-decoder exercise, drawn from generator g in this order: x (B, D),
    grey levels or binary; mu (B, J); with `noise`, logvar and eps (B, J); and a linear decoder
    z -> logits (B, D). Returns (x, mu, logvar, eps, decoder), or (x, mu, decoder) without noise."""
    x = torch.rand(B, D, generator=g, dtype=F64)
    x = (x > 0.5).to(F64) if binary else x
    mu = torch.randn(B, J, generator=g, dtype=F64)
    noise_args = ()
    if noise:
        logvar = torch.randn(B, J, generator=g, dtype=F64) - 0.5
        noise_args = (logvar, torch.randn(B, J, generator=g, dtype=F64))
    W, b = 1.5 * torch.randn(J, D, generator=g, dtype=F64), torch.randn(D, generator=g, dtype=F64)
    return (x, mu, *noise_args, _linear_decoder(W, b))


def _bound_cases():
    g = torch.Generator().manual_seed(3)
    return [_decoder_case(g, 4, 3, 6, False), _decoder_case(g, 3, 2, 5, True), _decoder_case(g, 5, 4, 8, False)]


def _bound_with(x, mu, logvar, eps, decoder, pixels="sum", kl_sign=-1, sample=True, sigma_power=0.5,
                detach_z=False):
    """Estimator B with one thing changed: the wrong answers of exercise 03.1."""
    z = mu + torch.exp(sigma_power * logvar) * eps if sample else mu
    z = z.detach() if detach_z else z
    logits = decoder(z)
    log_px = getattr(x * logits - F.softplus(logits), pixels)(-1)
    return log_px + kl_sign * (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1))


def _sigmoid_then_log(x, mu, logvar, eps, decoder):
    z = mu + torch.exp(0.5 * logvar) * eps
    y = torch.sigmoid(decoder(z))
    log_px = (x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1)
    return log_px + 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def _logits_as_probabilities(x, mu, logvar, eps, decoder):
    y = decoder(mu + torch.exp(0.5 * logvar) * eps)            # logits, read as if they were y
    log_px = (x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1)
    return log_px + 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def _bce_mean(x, mu, logvar, eps, decoder):
    logits = decoder(mu + torch.exp(0.5 * logvar) * eps)
    return -F.binary_cross_entropy_with_logits(logits, x) + 0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def _z_detached(x, mu, logvar, eps, decoder):
    return _bound_with(x, mu, logvar, eps, decoder, detach_z=True)


def _kl_detached(x, mu, logvar, eps, decoder):
    logits = decoder(mu + torch.exp(0.5 * logvar) * eps)
    with torch.no_grad():
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)
    return (x * logits - F.softplus(logits)).sum(-1) - kl


def _saturated_logits(answer):
    """Logits of +-c: the bound must stay finite and keep falling as c grows (a clamp stops it).

    Only for an answer that is right at moderate logits (c = 3): any other is left to the
    comparison of outputs. Run in float32, notebook 03's dtype, where sigmoid(a) is exactly 1
    from a = 16.6 and exactly 0 below a = -88.7; c = 1000 also catches log(sigmoid(a)) +
    log(sigmoid(-a)), which float64 keeps finite up to |a| = 709.
    """
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    signs = torch.tensor([[1.0, -1.0, -1.0, 1.0]])  # the first two pixels are confidently wrong
    zeros = torch.zeros(1, 2)

    def at(fn, c, dtype=torch.float32):
        return torch.as_tensor(fn(x.to(dtype), zeros.to(dtype), zeros.to(dtype), zeros.to(dtype),
                                  lambda z: c * signs.to(dtype) + 0 * z.sum(-1, keepdim=True)), dtype=F64)
    try:
        if not outputs_close(at(answer, 3.0, F64), at(estimator_b, 3.0, F64)):
            return None
        values = [at(answer, c) for c in (100.0, 200.0, 1000.0)]
    except Exception:  # a failure here is not this probe's business
        return None
    if not all(torch.isfinite(v).all() for v in values):
        return "sigmoid then log"
    if values[0].shape == values[1].shape and torch.allclose(values[0], values[1]):
        return "sigmoid then log"  # clamped: the bound stops falling
    return None


_bound_grad_args = _grad_args(_bound_cases, wrt=(1, 2))


def _bound_without_z(args):
    """The same arguments with a decoder that ignores z (its logits at z = 0): only the KL carries a gradient."""
    x, mu, logvar, eps, decoder = args
    a0 = decoder(torch.zeros(mu.shape[-1], dtype=mu.dtype)).detach()
    return x, mu, logvar, eps, (lambda z: a0.repeat(*z.shape[:-1], 1))


bound = Exercise(
    "03.1", "estimator B for a Bernoulli decoder", estimator_b, _bound_cases,
    mistakes=[
        Mistake("mean over pixels", "you averaged log p(x|z) over the pixels: the log-likelihood of an "
                "image is the sum over its D pixels (`.sum(-1)`), and only the sum is the bound.",
                lambda *a: _bound_with(*a, pixels="mean")),
        Mistake("KL sign", "the KL term has the wrong sign: the bound is log p(x|z) MINUS the KL "
                "(Appendix B's expression, with its leading 1/2 and + signs, is -KL).",
                lambda *a: _bound_with(*a, kl_sign=+1)),
        Mistake("deterministic z", "you decoded z = mu: estimator B samples z = mu + sigma * eps, with the "
                "given eps. Decoding mu ignores sigma, and the encoder's variance gets no gradient from "
                "the reconstruction.",
                lambda *a: _bound_with(*a, sample=False)),
        Mistake("sigma as exp(logvar)", "`logvar` is log sigma^2, so sigma = exp(logvar / 2); you used "
                "exp(logvar), which is sigma^2.",
                lambda *a: _bound_with(*a, sigma_power=1.0)),
        Mistake("sigmoid then log", "you took log(sigmoid(logits)): right at moderate logits, but in float32, "
                "this notebook's dtype, sigmoid(a) is exactly 1 from about a = 17 and exactly 0 below about a = -89, so a "
                "confident decoder gets log 0 = -inf or nan (a clamp hides it and caps the loss). Write "
                "log p(x|z) from the logits: x * logits - softplus(logits), or "
                "-F.binary_cross_entropy_with_logits(logits, x, reduction='none').",
                _sigmoid_then_log),
        Mistake("logits as probabilities", "you used the decoder's output as the probabilities y: it returns "
                "logits a, any real number, and y = sigmoid(a). Write log p(x|z) from the logits: "
                "x * a - softplus(a), or -F.binary_cross_entropy_with_logits(a, x, reduction='none').",
                _logits_as_probabilities),
        Mistake("reduction mean", "one reconstruction number for the whole minibatch, averaged over its rows "
                "and pixels: that is `F.binary_cross_entropy_with_logits`'s default reduction='mean'. Use "
                "reduction='none' and sum over the pixels (`.sum(-1)`): one log p(x|z) per row.",
                _bce_mean),
        Mistake("gradients blocked", "your value is right, but no gradient (or not the right one) reaches mu "
                "or log sigma^2, neither through z nor through the KL term: a `.detach()`, `torch.no_grad()`, "
                "`.sample()`, `.item()` or numpy cut the graph.",
                lambda *args: estimator_b(*args).detach()),
        Mistake("z detached", "your value is right and the KL term's gradient reaches the encoder, but the "
                "reconstruction term's does not (or not all of it): z was cut from mu or sigma (a `.detach()`, "
                "`torch.no_grad()` or `.sample()`). Compute z = mu + sigma * eps inside the graph.",
                _z_detached),
        Mistake("KL detached", "your value is right and the reconstruction term's gradient reaches the encoder "
                "through z, but the KL term's does not: it was computed under `torch.no_grad()`, or with "
                "`.detach()`, `.item()` or numpy. Compute Appendix B's KL with tensor operations on mu and logvar.",
                _kl_detached),
        Mistake("own noise", "your bound changes between two calls with the same eps: you drew fresh noise "
                "(`torch.randn`, `.rsample()`) instead of using the `eps` passed in. z = mu + sigma * eps.",
                lambda x, mu, logvar, eps, decoder: estimator_b(x, mu, logvar, torch.randn_like(eps), decoder)),
    ],
    probes=[_saturated_logits, _path_probe(estimator_b, _bound_grad_args, wrt=(1, 2), without_z=_bound_without_z),
            _fresh_noise_probe(lambda: _bound_cases()[0])],
    hint="""
        Three lines. (1) z = mu + sigma * eps with sigma = exp(logvar / 2). (2) logits = decoder(z);
        for a Bernoulli pixel, log p(x_i|z) = x_i log y_i + (1 - x_i) log(1 - y_i) with y = sigmoid(logits),
        which equals x_i * logits_i - softplus(logits_i), finite for any logits; sum over the pixels.
        (3) The bound is that sum minus the KL of Appendix B (notebook 01's exercise).
        torch.distributions.Bernoulli refuses grey levels unless validate_args=False.
    """,
)


# -- 2. One step of Algorithm 1 -------------------------------------------------------------

def tiny_vae(params, x):
    """The tiny VAE of exercise 03.2: (mu, logvar, decoder) for x (M, D).

    params = (We, be, Wd, bd): mu, logvar = (x @ We + be) split in two halves of J columns;
    decoder(z) = z @ Wd + bd, the Bernoulli logits.
    """
    We, be, Wd, bd = params
    mu, logvar = (x @ We + be).chunk(2, dim=-1)
    return mu, logvar, lambda z: z @ Wd + bd


def aevb_step(params, x, eps, lr):
    """One step of Algorithm 1 with plain gradient ascent: the new (We, be, Wd, bd).

    g = grad of (1/M) sum_i L(x_i) (eq. 8 divided by N, estimator B with the given eps);
    theta, phi <- theta, phi + lr * g.
    """
    mu, logvar, decoder = ex.tiny_vae(params, x)
    L = estimator_b(x, mu, logvar, eps, decoder).mean()       # the minibatch average of the bound
    g = torch.autograd.grad(L, params)                        # g = grad_{theta, phi} L
    return tuple((p + lr * gp).detach() for p, gp in zip(params, g))  # ascent: the bound goes up


def _step_cases():
    g = torch.Generator().manual_seed(7)

    def case(M, D, J, lr):
        x = torch.rand(M, D, generator=g, dtype=F64)
        params = (0.5 * torch.randn(D, 2 * J, generator=g, dtype=F64), 0.3 * torch.randn(2 * J, generator=g, dtype=F64),
                  0.8 * torch.randn(J, D, generator=g, dtype=F64), 0.3 * torch.randn(D, generator=g, dtype=F64))
        eps = torch.randn(M, J, generator=g, dtype=F64)
        return tuple(p.requires_grad_() for p in params), x, eps, lr

    return [case(4, 5, 2, 0.1), case(3, 6, 3, 0.05), case(6, 4, 2, 0.2)]


def _step_with(params, x, eps, lr, objective, sign=1.0, update=(0, 1, 2, 3)):
    """A step of `sign` * lr * grad of objective(mu, logvar, z, decoder) on the chosen parameters."""
    mu, logvar, decoder = tiny_vae(params, x)
    L = objective(x, mu, logvar, eps, decoder)
    g = torch.autograd.grad(L, params, allow_unused=True)
    return tuple((p + sign * lr * gp if k in update else p).detach() for k, (p, gp) in enumerate(zip(params, g)))


def _detached_z_bound(x, mu, logvar, eps, decoder):
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)
    logits = decoder(z)
    return ((x * logits - F.softplus(logits)).sum(-1) - kl).mean()


def _no_kl_bound(x, mu, logvar, eps, decoder):
    logits = decoder(mu + torch.exp(0.5 * logvar) * eps)
    return (x * logits - F.softplus(logits)).sum(-1).mean()


def _mean_bound(*args):
    return estimator_b(*args).mean()


step = Exercise(
    "03.2", "one step of Algorithm 1", aevb_step, _step_cases,
    mistakes=[
        Mistake("minimised the bound", "you stepped down the gradient: Algorithm 1 maximises the bound, so "
                "add lr * g (or minimise the loss -L with an optimizer).",
                lambda params, x, eps, lr: _step_with(params, x, eps, lr, _mean_bound, sign=-1.0)),
        Mistake("minibatch sum", "your step is M times too large: g is the gradient of the minibatch "
                "average (1/M) sum_i L(x_i), eq. 8 divided by N; use `.mean()`, not `.sum()`.",
                lambda params, x, eps, lr: _step_with(params, x, eps, lr, lambda *a: estimator_b(*a).sum())),
        Mistake("z detached", "the encoder learns only from the KL term: z was cut from mu and sigma "
                "(`.detach()`, or a sample drawn without the reparameterization z = mu + sigma * eps), "
                "so no gradient of log p(x|z) reaches phi.",
                lambda params, x, eps, lr: _step_with(params, x, eps, lr, _detached_z_bound)),
        Mistake("no KL term", "your objective has no KL term: that is the notebook's no-KL control "
                "(kl_weight = 0), not the bound. Subtract the KL of Appendix B.",
                lambda params, x, eps, lr: _step_with(params, x, eps, lr, _no_kl_bound)),
        Mistake("decoder only", "only the decoder's parameters moved: Algorithm 1 updates theta (the "
                "decoder) and phi (the encoder, We and be) together, with one gradient.",
                lambda params, x, eps, lr: _step_with(params, x, eps, lr, _mean_bound, update=(2, 3))),
    ],
    hint="""
        Algorithm 1's three lines, with the noise given. The model: ex.tiny_vae(params, x) returns
        mu, logvar and the decoder. The objective: eq. 8 divided by N, the average over the M rows
        of estimator B (your estimator_b of 03.1, with the given eps), one number. The gradient g:
        of that number with respect to all four parameters at once (torch.autograd.grad accepts
        a tuple of tensors). The update: each parameter moves by lr times its own gradient, in the
        direction that RAISES the bound (Algorithm 1 maximises it). Return the four new tensors
        in the order (We, be, Wd, bd).
    """,
)


# -- 3. Which latent units are used? --------------------------------------------------------

def unit_counts(mu, logvar):
    """(Burda et al.'s active units, units with KL > 0.1 nats), two ints, for mu, logvar (N, J)
    of q(z|x) on N datapoints.

    active: Var_x E_q[z_j|x] = Var_x mu_j(x) > 0.01.  KL count: the average over x of
    KL(q(z_j|x) || N(0, 1)) = -1/2 (1 + log sigma_j^2 - mu_j^2 - sigma_j^2) > 0.1 nats (Appendix B).
    """
    active = int((mu.var(0) > 0.01).sum())
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).mean(0)  # one KL per unit, averaged over x
    return active, int((kl > 0.1).sum())


def _units_cases():
    g = torch.Generator().manual_seed(11)

    def designed(N):
        n = torch.randn(N, 6, generator=g, dtype=F64)
        n = (n - n.mean(0)) / n.std(0)                    # each column: mean 0, variance 1 exactly
        signs = torch.ones(N, dtype=F64)
        signs[1::2] = -1                                    # +-1, alternating: mean 0
        rare = (torch.arange(N) % 10 == 0).to(F64)          # 1 on every tenth row
        mu = torch.stack([n[:, 0],                          # 0: the data move it a lot; far from the prior
                          0.05 * n[:, 1],                   # 1: Var 0.0025, std 0.05: inactive, tiny KL
                          0.2 * n[:, 2],                    # 2: Var 0.04: active, KL 0.02 nats
                          0 * n[:, 3],                      # 3: the prior itself: posterior variance 1
                          1 + 0 * n[:, 4],                  # 4: ignores x, but off the prior: KL 1.52 nats
                          1e-3 * n[:, 5],                   # 5: ignores x, narrow posterior: KL 2.50 nats
                          0.5 * signs,                      # 6: KL 0.125 in every row; the KL of the averaged
                                                            #    parameters (mean mu 0, logvar 0) is 0
                          2 * rare], dim=1)                 # 7: KL 2 on a tenth of the rows, 0 elsewhere: 0.2
        logvar = torch.tensor([-2.0, 0.0, 0.0, 0.0, -3.0, -6.0, 0.0, 0.0], dtype=F64).expand(N, 8).clone()
        return mu, logvar

    def mixed(N, J):
        scale = torch.logspace(-2.5, 0.5, J, dtype=F64)
        mu = scale * torch.randn(N, J, generator=g, dtype=F64) + torch.linspace(-0.5, 0.5, J, dtype=F64)
        logvar = torch.linspace(-1.5, 0, J, dtype=F64).flip(0) + 0.1 * torch.randn(N, J, generator=g, dtype=F64)
        return mu, logvar

    return [designed(400), designed(50), mixed(300, 12)]


units = Exercise(
    "03.3", "active units and the KL count", unit_counts, _units_cases,
    mistakes=[
        Mistake("posterior variance", "you counted q's own variance sigma_j^2 = exp(logvar): Burda et al.'s "
                "criterion is the variance ACROSS datapoints of the posterior mean, Var_x mu_j(x) "
                "(`mu.var(0)`). A unit whose mean never moves is inactive however wide q is.",
                lambda mu, logvar: (int((logvar.exp().mean(0) > 0.01).sum()), unit_counts(mu, logvar)[1])),
        Mistake("std for variance", "you compared the standard deviation of mu_j with 0.01: the threshold is "
                "on the variance, Var_x mu_j > 0.01 (a standard deviation above 0.1).",
                lambda mu, logvar: (int((mu.std(0) > 0.01).sum()), unit_counts(mu, logvar)[1])),
        Mistake("KL summed over data", "you summed each unit's KL over the N datapoints: the threshold of "
                "0.1 nats is on the average KL per datapoint (`.mean(0)`), as `kl_per_dimension` returns it.",
                lambda mu, logvar: (unit_counts(mu, logvar)[0],
                                    int(((-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(0) > 0.1).sum()))),
        Mistake("KL of the averaged q", "you averaged mu and log sigma^2 over the datapoints first, then took "
                "the KL of that one average q: a unit whose mean is +0.5 for half the digits and -0.5 for the "
                "others then looks like the prior (KL 0), though each digit pays 0.125 nats. Average the KLs: "
                "the KL of each (datapoint, unit), then the mean over datapoints.",
                lambda mu, logvar: (unit_counts(mu, logvar)[0], int((-0.5 * (
                    1 + logvar.mean(0) - mu.mean(0) ** 2 - logvar.exp().mean(0)) > 0.1).sum()))),
        Mistake("most datapoints over 0.1", "you counted the units where most datapoints have a KL over 0.1 "
                "nats: the threshold is on the AVERAGE KL over the datapoints, so a unit that carries 2 nats "
                "for one digit in ten (0.2 on average) counts.",
                lambda mu, logvar: (unit_counts(mu, logvar)[0], int((
                    ((-0.5 * (1 + logvar - mu**2 - logvar.exp())) > 0.1).to(mu.dtype).mean(0) > 0.5).sum()))),
    ],
    hint="""
        Both counts are per unit j: reduce over the N datapoints (dimension 0) and keep J values,
        then count the units above a threshold. Active (Burda et al.): how much the posterior MEAN
        of unit j moves from datapoint to datapoint, a variance across the rows of mu; the
        threshold (0.01) is on that variance. KL count: Appendix B's KL of each (datapoint, unit)
        pair, not summed over j, then averaged over the datapoints; the threshold is 0.1 nats.
        Return two Python ints.
    """,
)
