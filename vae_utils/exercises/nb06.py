"""Exercises of notebook 06 (Frey Face and a Gaussian decoder): checkers and reference solutions."""
from __future__ import annotations

import math

import torch

from . import Exercise, Mistake

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


# -- 1. The Gaussian MLP decoder's log-likelihood (Appendix C.2, with section 5's sigmoid) ----

def gaussian_log_likelihood(x, h, W4, b4, W5, b5):
    """log p(x|z) of the Gaussian MLP decoder for each row: shape (B,).

    h (B, H) is the decoder's hidden layer tanh(W3 z + b3); W4, W5 (H, D); b4, b5 (D,).
        mu = sigmoid(h W4 + b4)   (section 5: means in (0, 1)),   log sigma^2 = h W5 + b5,
        log p(x|z) = sum_i log N(x_i; mu_i, sigma_i^2)
                   = -1/2 sum_i [log 2 pi + log sigma_i^2 + (x_i - mu_i)^2 / sigma_i^2].
    """
    mu = torch.sigmoid(h @ W4 + b4)
    logvar = h @ W5 + b5
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def _decoder_cases():
    g = torch.Generator().manual_seed(6)

    def case(B, H, D, log_sigma2):
        x = torch.randint(0, 256, (B, D), generator=g).to(F64) / 255            # grey levels k/255, as Frey's
        h = torch.tanh(torch.randn(B, H, generator=g, dtype=F64))
        W4, b4 = torch.randn(H, D, generator=g, dtype=F64), torch.randn(D, generator=g, dtype=F64)
        W5 = 0.5 * torch.randn(H, D, generator=g, dtype=F64)
        b5 = log_sigma2 + 0.5 * torch.randn(D, generator=g, dtype=F64)         # sigma far from 1, as after training
        return x, h, W4, b4, W5, b5

    return [case(4, 3, 6, -4.0), case(3, 5, 10, -6.0), case(2, 2, 3, 1.0)]


def _decoder_with(x, h, W4, b4, W5, b5, squash=True, var_power=1.0, scale_power=1.0, two_pi=True, reduce="sum"):
    """The log-likelihood with one thing changed: the wrong answers of exercise 06.1.
    var_power: sigma^2 = exp(var_power * logvar); scale_power: the squared error is divided by
    exp(scale_power * logvar)."""
    a = h @ W4 + b4
    mu = torch.sigmoid(a) if squash else a
    logvar = h @ W5 + b5
    terms = (LOG_2PI if two_pi else 0.0) + var_power * logvar + (x - mu) ** 2 * torch.exp(-scale_power * var_power * logvar)
    return -0.5 * getattr(terms, reduce)(-1)


decoder = Exercise(
    "06.1", "the Gaussian decoder's log p(x|z)", gaussian_log_likelihood, _decoder_cases,
    mistakes=[
        Mistake("log sigma for log sigma^2",
                "you read the log-variance head as log sigma: h @ W5 + b5 is log sigma^2, so the normalizing "
                "term is that value itself and sigma^2 = exp(h @ W5 + b5), not exp(2 (h @ W5 + b5)).",
                lambda *a: _decoder_with(*a, var_power=2.0)),
        Mistake("missing 2 pi",
                "the log 2 pi of the normalizing constant is missing: each pixel contributes "
                "-1/2 log(2 pi sigma_i^2) = -1/2 (log 2 pi + log sigma_i^2); without it the log-density is "
                "(D/2) log 2 pi too high, 0.92 nats per pixel.",
                lambda *a: _decoder_with(*a, two_pi=False)),
        Mistake("averaged over pixels",
                "you averaged over the pixels: the pixels are independent given z, so their log-densities "
                "add up (`.sum(-1)`). A mean is the bound divided by D, and no longer a log-density of the face.",
                lambda *a: _decoder_with(*a, reduce="mean")),
        Mistake("sigma for sigma^2",
                "the squared error is divided by sigma, not sigma^2: use (x - mu)**2 / exp(logvar), "
                "i.e. (x - mu)**2 * exp(-logvar), with logvar = h W5 + b5.",
                lambda *a: _decoder_with(*a, scale_power=0.5)),
        Mistake("no sigmoid on the means",
                "your means are h W4 + b4 as Appendix C.2 writes them: for Frey Face, section 5 passes "
                "them through a sigmoid, mu = sigmoid(h W4 + b4), to keep them in (0, 1).",
                lambda *a: _decoder_with(*a, squash=False)),
    ],
    hint="""
        Two heads on the same h: mu = torch.sigmoid(h @ W4 + b4) and logvar = h @ W5 + b5
        (log sigma^2, so sigma^2 = logvar.exp()). Then each pixel's log-density
        -1/2 [log 2 pi + logvar + (x - mu)^2 / sigma^2], summed over the pixels (`.sum(-1)`).
        Check: a pixel with x = mu and logvar = 0 contributes -1/2 log 2 pi = -0.919 nats.
    """,
)


# -- 2. The 8-bit frames: a bound on a probability from a bound on a density ---------------------

def bound_8bit(bound, x, u):
    """A lower bound on log P(x) for 8-bit frames x (B, D) with pixels k/255, one value per
    row: shape (B,). bound(y) gives a lower bound on the log-density of pixels y in [0, 1]
    (nats, shape (B,)); u (B, D) ~ U[0, 1) is the dequantization noise, one draw per pixel.

        log P(x) >= E_u[ L(x + u/255) ] - D log 255   (Jensen; each bin has width 1/255, volume 255^-D)
    """
    return bound(x + u / 255) - x.shape[-1] * math.log(255)


def _pixel_density(m, s):
    """A density bound of a toy model: independent Gaussians N(m_i, s_i^2) per pixel."""
    return lambda y: (-0.5 * (LOG_2PI + 2 * torch.log(s) + ((y - m) / s) ** 2)).sum(-1)


def _8bit_cases():
    g = torch.Generator().manual_seed(7)
    out = []
    for B, D, s in ((4, 6, 0.004), (3, 10, 0.02), (2, 3, 0.1)):            # s near the grid spacing 1/255 = 0.0039
        x = torch.randint(10, 246, (B, D), generator=g).to(F64) / 255
        m = x[0] + s * torch.randn(D, generator=g, dtype=F64)
        sd = s * torch.exp(0.3 * torch.randn(D, generator=g, dtype=F64))
        out.append((_pixel_density(m, sd), x, torch.rand(B, D, generator=g, dtype=F64)))
    return out


bits = Exercise(
    "06.2", "a bound on the probability of 8-bit frames (dequantization)", bound_8bit, _8bit_cases,
    mistakes=[
        Mistake("sign of the bin volume",
                "the bin-volume term has the wrong sign: a probability is the density times the bin's "
                "volume (1/255)^D, so log P = log-density - D log 255. Subtract it.",
                lambda bound, x, u: bound(x + u / 255) + x.shape[-1] * math.log(255)),
        Mistake("log 256",
                "you used log 256: there are 256 levels, but the pixels are k/255, so neighbouring levels "
                "are 1/255 apart and each bin has width 1/255: subtract D log 255.",
                lambda bound, x, u: bound(x + u / 255) - x.shape[-1] * math.log(256)),
        Mistake("forgot D",
                "you subtracted log 255 once: every one of the D pixels has its own bin of width 1/255, "
                "so the volume is 255^-D and the term is D log 255 (D = x.shape[-1]).",
                lambda bound, x, u: bound(x + u / 255) - math.log(255)),
        Mistake("on the grid points",
                "you evaluated the density bound at the grid points x themselves: that is only the same "
                "number in other units, and a density may spike there. Dequantize first: evaluate at "
                "x + u/255, spreading each pixel over its bin.",
                lambda bound, x, u: bound(x) - x.shape[-1] * math.log(255)),
        Mistake("noise of width 1",
                "your noise spans [0, 1), the whole pixel range, not one bin: scale it to the bin, "
                "x + u/255.",
                lambda bound, x, u: bound(x + u) - x.shape[-1] * math.log(255)),
    ],
    hint="""
        Two steps. (1) Spread each pixel over its bin: y = x + u / 255, then L = bound(y).
        (2) A probability is density x volume: each pixel's bin has width 1/255, the D pixels
        together volume 255^-D, so subtract D * log(255), with D = x.shape[-1].
    """,
)


# -- 3. The paper's step-size rule, as the notebook reads it -----------------------------------

def choose_step(train, test, first, last):
    """The step size the rule picks: the key of `train` whose training bound, averaged over
    epochs first to last (counted from 1, both included), is the highest.

    train, test: dicts {step size: tensor (E,)} of the bound after each of E epochs (E >= last),
    on the training and on the test set. Section 5: the steps "were chosen from {0.01, 0.02,
    0.1} based on performance on the training set in the first few iterations": `test` is
    not used.
    """
    return max(train, key=lambda lr: train[lr][first - 1:last].mean().item())


def _step_cases():
    """Probe curves (nats per datapoint after each epoch) for the steps 0.01, 0.02 and 0.1, which
    blows up at the start as in the notebook. Each case tells the right rule from one wrong one:
    1. the test bound prefers another step; 2. a step that is behind in the window leads later
    (the whole curve); 3. the epoch after the window flips the choice (off by one); 4. one noisy
    epoch at the window's end (the last epoch only); 5. step 0.02 is the right choice."""
    def case(first, last, c01, c02, shift=None):
        train = {0.01: c01, 0.02: c02, 0.1: [-2e13] + [-300.0 + 10 * k for k in range(len(c01) - 1)]}
        train = {lr: torch.tensor(c, dtype=F64) for lr, c in train.items()}
        test = {lr: c - 10 for lr, c in train.items()}
        if shift is not None:
            test[0.02] = test[0.02] + shift
        return train, test, first, last

    return [case(3, 5, [60, 400, 500, 520, 540, 560], [-90, 380, 480, 505, 530, 550], shift=40),
            case(2, 4, [100, 400, 450, 480, 490, 495, 500, 502, 503, 504],
                 [50, 380, 440, 470, 480, 560, 590, 610, 620, 630]),
            case(2, 4, [200, 500, 520, 530, 535, 540, 545], [140, 490, 510, 525, 600, 545, 548]),
            case(3, 6, [80, 450, 500, 520, 530, 520, 540, 545], [-50, 430, 480, 500, 510, 560, 500, 520]),
            case(1, 3, [10, 300, 400, 450], [50, 350, 450, 500])]


def _pick(curves, score, best=max):
    return best(curves, key=lambda lr: score(curves[lr]).item())


step = Exercise(
    "06.3", "the paper's step-size rule", choose_step, _step_cases,
    mistakes=[
        Mistake("test bound",
                "you chose by the test bound: the paper chose by \"performance on the training set in the "
                "first few iterations\", and a choice that looks at the test set makes its test bound "
                "optimistic. Use `train`.",
                lambda train, test, first, last: _pick(test, lambda c: c[first - 1:last].mean())),
        Mistake("off by one",
                "your window is one epoch late: epochs are counted from 1, so epochs first to last are "
                "the entries [first - 1 : last] of each curve (Python counts from 0).",
                lambda train, test, first, last: _pick(train, lambda c: c[first:last + 1].mean())),
        Mistake("the whole curve",
                "you averaged the whole curve: the rule looks only at the first iterations, here "
                "epochs first to last; the epochs after `last` are the run the choice is for.",
                lambda train, test, first, last: _pick(train, lambda c: c.mean())),
        Mistake("last epoch only",
                "you compared the curves at one epoch: one epoch's bound is noisy (one minibatch can set "
                "the model back, as the notebook shows); average epochs first to last.",
                lambda train, test, first, last: _pick(train, lambda c: c[last - 1])),
        Mistake("lowest bound",
                "you picked the lowest bound: the bound is to be maximized (it is not a loss), so take "
                "the step with the highest average.",
                lambda train, test, first, last: _pick(train, lambda c: c[first - 1:last].mean(), best=min)),
    ],
    hint="""
        For each step size lr, the score is train[lr][first - 1:last].mean() (epoch e is entry
        e - 1). Return the lr with the highest score: max(train, key=lambda lr: ...).
        `test` is there to tempt you: the paper chose on the training set.
    """,
)


# -- 4. The error term at a learned sigma's optimum: -D/2 ------------------------------------

def error_term_at_optimum(x, mean):
    """For N faces x (N, D) and the decoder's means for them (N, D): the per-pixel log sigma_i^2
    that maximizes the average log-likelihood, shape (D,), and the error term at it, averaged
    over the faces (a 0-d tensor):

        d/d log sigma_i^2 of mean_n log N(x_ni; mu_ni, sigma_i^2) = mean_n [-1/2 + (x_ni - mu_ni)^2 / (2 sigma_i^2)] = 0
        => sigma_i^2 = mean_n (x_ni - mu_ni)^2,
        error term = mean_n -1/2 sum_i (x_ni - mu_ni)^2 / sigma_i^2   (= -D/2 there).
    """
    sq = (x - mean) ** 2
    logvar = torch.log(sq.mean(0))
    return logvar, (-0.5 * sq * torch.exp(-logvar)).sum(-1).mean()


def _optimum_cases():
    g = torch.Generator().manual_seed(9)
    out = []
    for N, D, bias in ((8, 5, 0.05), (20, 3, 0.1), (5, 7, -0.08)):
        x = torch.randint(0, 256, (N, D), generator=g).to(F64) / 255
        mean = (x + bias + 0.05 * torch.randn(N, D, generator=g, dtype=F64)).clamp(0.01, 0.99)
        out.append((x, mean))
    return out


def _error(sq, var):
    return (-0.5 * sq / var).sum(-1).mean()


def _log_sigma(x, mean):
    sq = (x - mean) ** 2
    logvar = 0.5 * torch.log(sq.mean(0))                         # log sigma, then used as log sigma^2
    return logvar, _error(sq, logvar.exp())


def _variance(x, mean):
    d = x - mean
    logvar = torch.log(d.var(0, unbiased=False))                 # the errors' variance about their mean
    return logvar, _error(d**2, logvar.exp())


def _per_face(x, mean):
    sq = (x - mean) ** 2
    logvar = torch.log(sq.mean(-1))                              # one sigma per face, over its pixels
    return logvar, _error(sq, logvar.exp()[:, None])


def _no_half(x, mean):
    sq = (x - mean) ** 2
    logvar = torch.log(sq.mean(0))
    return logvar, 2 * _error(sq, logvar.exp())


def _pixel_mean(x, mean):
    sq = (x - mean) ** 2
    logvar = torch.log(sq.mean(0))
    return logvar, (-0.5 * sq / logvar.exp()).mean(-1).mean()


optimum = Exercise(
    "06.4", "the error term at a learned sigma's optimum", error_term_at_optimum, _optimum_cases,
    mistakes=[
        Mistake("log sigma for log sigma^2",
                "your log-variance is log sigma, half of log sigma^2: the optimum is sigma_i^2 = "
                "mean_n (x_ni - mu_ni)^2, so log sigma_i^2 is the log of that mean itself.", _log_sigma),
        Mistake("variance, not mean square",
                "you took the variance of the errors about their own mean: the optimum is their mean "
                "square, mean_n (x_ni - mu_ni)^2, which also counts a decoder that is off on average.",
                _variance),
        Mistake("per face, not per pixel",
                "you fitted one sigma per face, averaging over its pixels: the decoder's bias b5 gives "
                "each pixel i its own sigma_i, fitted over the faces (average over dim 0).", _per_face),
        Mistake("missing 1/2",
                "the 1/2 of the error term is missing: each pixel contributes -(x_i - mu_i)^2 / (2 sigma_i^2), "
                "so at the optimum the error term is -D/2, not -D.", _no_half),
        Mistake("averaged over pixels",
                "you averaged the error term over the pixels: sum it over the D pixels (each contributes "
                "-1/2 at the optimum, -D/2 in all), then average over the faces.", _pixel_mean),
    ],
    hint="""
        Set the derivative of mean_n [-1/2 log sigma_i^2 - (x_ni - mu_ni)^2 / (2 sigma_i^2)] with
        respect to log sigma_i^2 to zero: sigma_i^2 = mean_n (x_ni - mu_ni)^2, one per pixel
        (mean over dim 0). Its log is the first result. The error term of face n is
        -1/2 sum_i (x_ni - mu_ni)^2 / sigma_i^2; average it over the faces for the second.
    """,
)
