"""Exercises of notebook 07 (autoencoder, denoising autoencoder and VAE side by side): checkers
and reference solutions.

07.1 reuses notebook 03's probe for logits so large that log(sigmoid) breaks, and notebook 02's
gradient probe; 07.3 adds a probe for an input changed in place (the denoising autoencoder's
target is the clean x) and reuses notebook 02's probe for noise drawn inside the answer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Exercise, Mistake
from .nb02 import _fresh_noise_probe, _grad_args, _gradient_probe
from .nb03 import _decoder_case, _saturated_logits

F64 = torch.float64


def _kl(mu, logvar):
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)                  # Appendix B


# -- 1. The plain autoencoder's loss -------------------------------------------------------

def autoencoder_loss(x, mu, decoder):
    """The plain autoencoder's loss for each row: shape (B,).

    x (B, D) grey levels in [0, 1]; mu (B, J) the encoder's code; decoder(z) -> logits (B, D).
    -log p(x | z = mu) = -sum_i [x_i log y_i + (1 - x_i) log(1 - y_i)],  y = sigmoid(logits)
    (Appendix C.1's Bernoulli decoder, evaluated at the code itself: no sample, no KL term).
    """
    logits = decoder(mu)
    return -(x * logits - F.softplus(logits)).sum(-1)    # log y = a - softplus(a), log(1 - y) = -softplus(a)


def _ae_cases():
    g = torch.Generator().manual_seed(7)
    return [_decoder_case(g, 4, 3, 6, False, noise=False), _decoder_case(g, 3, 2, 5, True, noise=False),
            _decoder_case(g, 5, 4, 8, False, noise=False)]


def _ae_sigmoid_then_log(x, mu, decoder):
    y = torch.sigmoid(decoder(mu))
    return -(x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1)


def _ae_logits_as_probabilities(x, mu, decoder):
    y = decoder(mu)                                                             # logits, read as if they were y
    return -(x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1)


def _ae_saturated_logits(answer):
    """Notebook 03's probe: at mu = 0 and zero noise, estimator B with its KL of 0 is minus this loss."""
    return _saturated_logits(lambda x, mu, logvar, eps, decoder: -answer(x, mu, decoder))


autoencoder = Exercise(
    "07.1", "the plain autoencoder's loss", autoencoder_loss, _ae_cases,
    mistakes=[
        Mistake("sign", "you returned log p(x|z = mu), the log-likelihood: the loss a training loop minimises is "
                "its negative, -log p(x|z = mu), a positive number of nats for grey levels.",
                lambda x, mu, decoder: -autoencoder_loss(x, mu, decoder)),
        Mistake("mean over pixels", "you averaged over the pixels: -log p(x|z) of an image is the sum over its "
                "D pixels (`.sum(-1)`); the mean is D times smaller and no longer in nats per image, so it "
                "cannot be compared with the VAE's bound.",
                lambda x, mu, decoder: -(x * decoder(mu) - F.softplus(decoder(mu))).mean(-1)),
        Mistake("reduction mean", "one number for the whole minibatch, averaged over its rows and pixels: that is "
                "`F.binary_cross_entropy_with_logits`'s default reduction='mean'. Use reduction='none' and sum "
                "over the pixels (`.sum(-1)`): one loss per row.",
                lambda x, mu, decoder: F.binary_cross_entropy_with_logits(decoder(mu), x)),
        Mistake("squared error", "you summed squared errors (x - y)^2: up to a scale and a constant that is "
                "-log p(x|z) of a Gaussian decoder with a fixed variance, not of this notebook's Bernoulli "
                "decoder, and its values are not nats of this model. Use the Bernoulli log-likelihood "
                "x log y + (1 - x) log(1 - y), from the logits.",
                lambda x, mu, decoder: ((x - torch.sigmoid(decoder(mu))) ** 2).sum(-1)),
        Mistake("missing 1 - x term", "only the x_i log y_i term: the Bernoulli log-likelihood also has "
                "(1 - x_i) log(1 - y_i), which charges for ink where the image has none. Without it a decoder "
                "with y_i = 1 at every pixel has a loss of 0 on every image.",
                lambda x, mu, decoder: -(x * F.logsigmoid(decoder(mu))).sum(-1)),
        Mistake("logits as probabilities", "you used the decoder's output as the probabilities y: it returns "
                "logits a, any real number, and y = sigmoid(a). Write the loss from the logits: "
                "softplus(a) - x * a, or F.binary_cross_entropy_with_logits(a, x, reduction='none').",
                _ae_logits_as_probabilities),
        Mistake("sigmoid then log", "you took log(sigmoid(logits)): right at moderate logits, but in float32, "
                "the notebook's dtype, sigmoid(a) is exactly 1 from about a = 17 and exactly 0 below about "
                "a = -89, so a confident decoder gets log 0 = -inf or nan (a clamp, as in "
                "F.binary_cross_entropy, hides it and caps the loss). Write the loss from the logits: "
                "softplus(a) - x * a, or F.binary_cross_entropy_with_logits(a, x, reduction='none').",
                _ae_sigmoid_then_log),
        Mistake("gradients blocked", "your values are right, but no gradient reaches the code mu (a `.detach()`, "
                "`torch.no_grad()`, `.item()` or numpy cut the graph): the encoder would never learn. "
                "Compute the loss with tensor operations on decoder(mu).",
                lambda *args: autoencoder_loss(*args).detach()),
    ],
    probes=[_ae_saturated_logits,
            _gradient_probe(autoencoder_loss, _grad_args(_ae_cases, wrt=(1,)), wrt=(1,),
                            names={(1,): "gradients blocked"})],
    hint="""
        Decode the code itself: the decoder gives logits a, and y = sigmoid(a). For one pixel,
        log p(x_i|z) = x_i log y_i + (1 - x_i) log(1 - y_i); both logs can be written from a
        without a sigmoid (log sigmoid(a) = a - softplus(a), log(1 - sigmoid(a)) = -softplus(a)),
        which stays finite for any logits. An image's log-likelihood adds up its pixels; the loss
        is its negative. No eps, no log sigma^2, no KL: nothing here is random.
    """,
)


# -- 2. The beta-weighted objective --------------------------------------------------------

def beta_objective(x, mu, logvar, eps, decoder, beta):
    """log p(x|z) - beta * KL(q(z|x) || p(z)) for each row: shape (B,).

    z = mu + sigma * eps (sigma = exp(logvar / 2)), one sample: eq. 10 with L = 1 and its KL term
    (Appendix B) weighted by beta (Higgins et al. 2017's beta-VAE). beta = 1 is the bound,
    beta = 0 a stochastic autoencoder. x (B, D) grey levels; decoder(z) -> logits (B, D).
    """
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = decoder(z)
    log_px = (x * logits - F.softplus(logits)).sum(-1)                        # Appendix C.1, stably
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)                  # Appendix B
    return log_px - beta * kl


def _beta_cases():
    g = torch.Generator().manual_seed(8)
    shapes = [(4, 3, 6, False, 1.0), (3, 2, 5, True, 0.5), (5, 4, 8, False, 4.0), (3, 3, 7, False, 0.0)]
    return [(*_decoder_case(g, B, J, D, binary), beta) for B, J, D, binary, beta in shapes]


def _beta_with(x, mu, logvar, eps, decoder, beta, on_rec=1.0, on_kl=None, sample=True, pixels="sum",
               sigma_power=0.5, kl_half=0.5, units="sum"):
    """One term weighted differently, no sample, sigma^2 for sigma, or Appendix B's KL without its
    1/2 or averaged over the latent units: the wrong answers of 07.2."""
    logits = decoder(mu + torch.exp(sigma_power * logvar) * eps if sample else mu)
    log_px = getattr(x * logits - F.softplus(logits), pixels)(-1)
    kl = -kl_half * getattr(1 + logvar - mu**2 - logvar.exp(), units)(-1)      # Appendix B, or a wrong copy
    return on_rec * log_px - (beta if on_kl is None else on_kl) * kl


beta_vae = Exercise(
    "07.2", "the beta-weighted objective", beta_objective, _beta_cases,
    mistakes=[
        Mistake("beta on the reconstruction", "you weighted the reconstruction term by beta: beta multiplies "
                "the KL term, log p(x|z) - beta * KL. At beta = 1 both agree, which is why only the other "
                "values of beta tell them apart; at beta = 0 yours is -KL alone, not a stochastic autoencoder.",
                lambda x, mu, logvar, eps, decoder, beta: _beta_with(x, mu, logvar, eps, decoder, beta,
                                                                     on_rec=beta, on_kl=1.0)),
        Mistake("beta divides the KL", "you divided the KL by beta: it is multiplied, log p(x|z) - beta * KL, "
                "so beta = 4 weighs the KL four times more (not four times less) and beta = 0 drops it.",
                lambda x, mu, logvar, eps, decoder, beta: _beta_with(x, mu, logvar, eps, decoder, beta,
                                                                     on_kl=1 / beta if beta else float("inf"))),
        Mistake("beta ignored", "your objective does not depend on beta: that is the bound (beta = 1) for every "
                "beta. Multiply the KL term by beta.",
                lambda x, mu, logvar, eps, decoder, beta: _beta_with(x, mu, logvar, eps, decoder, 1.0)),
        Mistake("deterministic z", "you decoded z = mu: the objective samples z = mu + sigma * eps with the given "
                "eps. Decoding mu is the plain autoencoder's reconstruction (07.1), and the encoder's variance "
                "gets no gradient from the reconstruction term.",
                lambda *a: _beta_with(*a, sample=False)),
        Mistake("sigma as exp(logvar)", "your z uses exp(logvar) as its scale, and that is sigma^2: `logvar` is "
                "log sigma^2, so the standard deviation is sigma = exp(logvar / 2). Sample "
                "z = mu + torch.exp(0.5 * logvar) * eps.",
                lambda *a: _beta_with(*a, sigma_power=1.0)),
        Mistake("KL sign", "the KL term has the wrong sign: the objective is log p(x|z) MINUS beta * KL "
                "(Appendix B's expression, with its leading 1/2 and + signs, is -KL).",
                lambda x, mu, logvar, eps, decoder, beta: _beta_with(x, mu, logvar, eps, decoder, beta,
                                                                     on_kl=-beta)),
        Mistake("KL missing half", "your KL term lacks the factor 1/2 of Appendix B, "
                "-KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2): your KL is twice the true one, so "
                "you computed the objective at 2 * beta. Put the 0.5 in front of the sum.",
                lambda *a: _beta_with(*a, kl_half=1.0)),
        Mistake("KL mean over latent units", "you averaged the KL over the J latent units: the KL of a diagonal "
                "Gaussian is the sum of the per-unit KLs (`.sum(-1)`), so your mean is the objective at "
                "beta / J, a hidden weight that changes with the size of the code.",
                lambda *a: _beta_with(*a, units="mean")),
        Mistake("loss, not objective", "you returned the loss -log p(x|z) + beta * KL, the objective's negative "
                "(what an optimizer minimises): return the objective itself, log p(x|z) - beta * KL, the bound "
                "at beta = 1, which training raises.",
                lambda *a: -beta_objective(*a)),
        Mistake("mean over pixels", "you averaged log p(x|z) over the D pixels and kept the KL a sum: that is "
                "(1/D) [log p(x|z) - D * beta * KL], a hidden beta D times yours (784 times on MNIST). "
                "Sum over the pixels (`.sum(-1)`).",
                lambda *a: _beta_with(*a, pixels="mean")),
    ],
    hint="""
        Estimator B of notebook 03 with one change. Sample z from the given eps (sigma is
        exp(logvar / 2)), decode it, and sum the Bernoulli log-likelihood over the pixels
        (from the logits, as in 07.1). The KL term is Appendix B's, summed over the latent
        units. beta weighs the KL term, and only the KL term. Check your function at beta = 0
        (no KL at all) and at beta = 1 (notebook 03's bound).
    """,
)


# -- 3. Masking noise, the denoising autoencoder's corruption --------------------------------

def masking_noise(x, u, p):
    """x~: x with the pixels where u < p set to 0, the others kept as they are; x's shape.

    Masking noise (Vincent et al. 2008) zeroes a random subset of the pixels; here u ~ U[0, 1)
    is given, one number per pixel, so each pixel is zeroed independently with probability p.
    The denoising autoencoder learns to give back the clean x from x~: x itself must stay clean.
    """
    return torch.where(u < p, torch.zeros_like(x), x)


def _mask_cases():
    g = torch.Generator().manual_seed(9)

    def case(shape, p):
        x = torch.rand(shape, generator=g, dtype=F64)
        x = torch.where(x < 0.3, torch.zeros_like(x), x)                       # blank pixels, as MNIST's border
        x = torch.where(x > 0.9, torch.ones_like(x), x)                        # and full ink
        return x, torch.rand(shape, generator=g, dtype=F64), p

    return [case((4, 10), 0.25), case((3, 12), 0.5), case((2, 4, 4), 0.75)]


def _in_place_probe(answer):
    """Names "in place" if the answer changed its input x (the clean image, the DAE's target)."""
    x, u, p = _mask_cases()[0]
    clean = x.clone()
    try:
        with torch.no_grad():
            answer(x, u, p)
    except Exception:
        return None
    return None if torch.equal(x, clean) else "in place"


def _masked_in_place(x, u, p):
    x[u < p] = 0
    return x


masking = Exercise(
    "07.3", "masking noise", masking_noise, _mask_cases,
    mistakes=[
        Mistake("mask inverted", "your mask is inverted: you kept the pixels where u < p, a fraction p of the "
                "image, and zeroed the rest. Zero the pixels where u < p and keep the others.",
                lambda x, u, p: torch.where(u < p, x, torch.zeros_like(x))),
        Mistake("dropout scaling", "you divided the kept pixels by 1 - p: that is dropout's scaling, which keeps "
                "E[x~] = x but changes the input's scale: grey levels reach 1 / (1 - p) > 1, no longer an image. "
                "Masking noise leaves the kept pixels as they are.",
                lambda x, u, p: torch.where(u < p, torch.zeros_like(x), x / (1 - p))),
        Mistake("masked to one", "you set the chosen pixels to 1 (full ink, salt noise): masking noise sets them "
                "to 0, as if they were missing.",
                lambda x, u, p: torch.where(u < p, torch.ones_like(x), x)),
        Mistake("in place", "your x~ is right, but you changed x itself (`x[...] = 0`, `x.mul_`, `x *= mask`): "
                "x is the denoising autoencoder's target, the clean image, and now it is corrupted too, so "
                "the DAE would learn to copy x~. Return a new tensor (`torch.where`, or x times a mask).",
                _masked_in_place),
        Mistake("own noise", "your x~ changes between two calls with the same u: you drew your own random "
                "numbers (`torch.rand`, `torch.bernoulli`, dropout) instead of using the `u` passed in. "
                "Zero the pixels where u < p.",
                lambda x, u, p: masking_noise(x, torch.rand_like(u), p)),
    ],
    probes=[_in_place_probe, _fresh_noise_probe(lambda: _mask_cases()[0])],
    hint="""
        u holds one uniform number per pixel, so (u < p) is True for each pixel with probability
        p: that is the mask of the pixels to zero. Keep every other pixel exactly as it is (no
        rescaling). Build a new tensor rather than writing into x: the clean x is still needed,
        as the target the denoising autoencoder reconstructs.
    """,
)


# -- 4. How much of a sampled code depends on x ---------------------------------------------

def signal_fraction(mu, logvar):
    """Per latent unit, Var_x(mu_j) / (Var_x(mu_j) + mean_x sigma_j^2): shape (J,).

    mu, logvar (B, J) of q(z|x) on B datapoints; variances over the rows, with 1/B (ddof = 0).
    By the law of total variance, a sampled code z = mu + sigma * eps over the data has
    Var(z_j) = Var_x(mu_j) + E_x[sigma_j^2]: this is the share of it that depends on x.
    """
    signal = mu.var(0, unbiased=False)                                       # Var_x(mu_j), ddof = 0
    noise = logvar.exp().mean(0)                                             # E_x[sigma_j^2], sigma^2 = exp(logvar)
    return signal / (signal + noise)


def _signal_cases():
    g = torch.Generator().manual_seed(10)

    def designed(N):
        r = lambda: torch.randn(N, generator=g, dtype=F64)                     # noqa: E731
        mu = torch.stack([2 * r(),                    # 0: moves with x, narrow q: almost all signal
                          0 * r(),                    # 1: switched off: mean 0, sigma ~ 1
                          1.5 + 0 * r(),              # 2: ignores x but sits off the prior: no signal
                          0.5 * r() + 0.3,            # 3: in between
                          0.05 * r()], dim=1)         # 4: nearly switched off
        logvar = torch.stack([-6 + 0.2 * r(), 0.1 * r(), -2 + 0.3 * r(), r() - 1, -0.1 + 0.1 * r()], dim=1)
        return mu, logvar

    def mixed(N, J):
        mu = torch.logspace(-1.5, 0.5, J, dtype=F64) * torch.randn(N, J, generator=g, dtype=F64) + 0.2
        logvar = torch.linspace(-3, 0.5, J, dtype=F64) + 0.5 * torch.randn(N, J, generator=g, dtype=F64)
        return mu, logvar

    return [designed(6), mixed(40, 3), mixed(3, 7)]


def _fraction(signal, noise):
    return signal / (signal + noise)


signal = Exercise(
    "07.4", "the share of a sampled code that depends on x", signal_fraction, _signal_cases,
    mistakes=[
        Mistake("sigma for sigma^2", "you averaged sigma_j = exp(logvar / 2), a standard deviation, where the law "
                "of total variance needs the variance sigma_j^2 = exp(logvar).",
                lambda mu, logvar: _fraction(mu.var(0, unbiased=False), (0.5 * logvar).exp().mean(0))),
        Mistake("logvar as the variance", "you used `logvar` itself as the variance: it is log sigma^2, so "
                "sigma^2 = exp(logvar).",
                lambda mu, logvar: _fraction(mu.var(0, unbiased=False), logvar.mean(0))),
        Mistake("averaged log-variance", "you averaged log sigma^2 over the data and then took exp: that is the "
                "geometric mean of sigma_j^2, smaller than the mean E_x[sigma_j^2] the law of total variance "
                "needs. Take exp(logvar) first, then the mean over the rows.",
                lambda mu, logvar: _fraction(mu.var(0, unbiased=False), logvar.mean(0).exp())),
        Mistake("unbiased variance", "your Var_x(mu_j) divides by B - 1 (torch's `.var()` default): the law of "
                "total variance over these B datapoints uses 1/B. Pass `unbiased=False` (or `correction=0`).",
                lambda mu, logvar: _fraction(mu.var(0), logvar.exp().mean(0))),
        Mistake("uncentred", "you used the mean of mu_j^2, not its variance: a unit whose mean sits at 1.5 for "
                "every x carries nothing about x, yet counts as signal. Subtract the mean over the data first "
                "(`.var(0, unbiased=False)`).",
                lambda mu, logvar: _fraction((mu**2).mean(0), logvar.exp().mean(0))),
        Mistake("over units", "you took the variance across the units of each row (one value per datapoint): "
                "Var_x is across the datapoints, the rows, one value per unit j: reduce over dimension 0.",
                lambda mu, logvar: _fraction(mu.var(-1, unbiased=False), logvar.exp().mean(-1))),
        Mistake("noise fraction", "you returned the noise's share, E_x[sigma_j^2] / Var(z_j), which is 1 minus "
                "the answer: the signal is Var_x(mu_j), the part that changes with x.",
                lambda mu, logvar: 1 - signal_fraction(mu, logvar)),
    ],
    hint="""
        Two numbers per unit j, each a reduction over the rows (the datapoints, dimension 0):
        how much the posterior mean mu_j moves from one x to another (a variance, with 1/B), and
        how wide q is on average (the mean of sigma_j^2; logvar holds log sigma^2). Their sum is
        the variance of a sampled z_j over the data (law of total variance); return the first
        one's share of it, J numbers between 0 and 1.
    """,
)
