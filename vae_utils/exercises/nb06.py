"""Exercises of notebook 06 (Frey Face and a Gaussian decoder): checkers and reference solutions."""
from __future__ import annotations

import math

import torch

from ..elbo import LOG_2PI  # the mistakes' constant; solutions spell it out to be pasteable
from . import Exercise, Mistake

F64 = torch.float64


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
        Two heads on the same h, each of shape (B, D): one gives the means, squashed into (0, 1)
        as section 5 does for Frey Face; the other is a log-variance (log sigma^2, not log sigma).
        Each pixel's log-density is that of a normal distribution; the pixels are independent
        given z, so combine the D per-pixel values of each face into one number.
    """,
)


# -- 2. The 8-bit frames: a bound on a probability from a bound on a density ---------------------

def bound_8bit(bound, x, u):
    """A one-draw Monte Carlo estimate of a lower bound on log P(x) for 8-bit frames x (B, D)
    with pixels k/255, one value per row: shape (B,). It is an unbiased estimate of the bound
    E_u[L(x + u/255)] - D log 255, not itself a bound. bound(y) gives a lower bound on the
    log-density of pixels y (nats, shape (B,)); here y = x + u/255 lies in [0, 256/255);
    u (B, D) ~ U[0, 1) is the dequantization noise, one draw per pixel.

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
        Mistake("centred bins",
                "valid, but the exercise asks for x + u/255: bins centred on the levels, x + (u - 1/2)/255, "
                "dequantize just as well (each level still owns one bin of width 1/255); here, use the "
                "bins [k/255, (k+1)/255) that the notebook uses.",
                lambda bound, x, u: bound(x + (u - 0.5) / 255) - x.shape[-1] * math.log(255)),
        Mistake("bins below the levels",
                "valid, but the exercise asks for x + u/255: x - u/255 spreads each level over the bin "
                "below it, also of width 1/255, a dequantization as good; here, use the bins "
                "[k/255, (k+1)/255) that the notebook uses.",
                lambda bound, x, u: bound(x - u / 255) - x.shape[-1] * math.log(255)),
    ],
    hint="""
        A probability is density x bin volume. How wide is one pixel's bin on the grid k/255,
        and how many bins does one face occupy? Evaluate the density bound not at the grid
        points themselves but at points spread over each pixel's bin by the noise u.
    """,
)


# -- 3. The paper's step-size rule, as the notebook reads it -----------------------------------

def choose_step(train, test, first, last):
    """The step size the rule picks: the key of `train` whose training bound, averaged over
    epochs first to last (counted from 1, both included), is the highest.

    train, test: dicts {step size: tensor (E,)}, one value per epoch of a short probe run (E >= last),
    on the training and on the test set; in the notebook's probe, a training value is the average
    of the epoch's minibatch estimates. Section 5: the steps "were chosen from {0.01, 0.02, 0.1}
    based on performance on the training set in the first few iterations": `test` is not used.
    """
    return max(train, key=lambda lr: train[lr][first - 1:last].mean().item())


# (first, last, the curves of steps 0.01 and 0.02, the shift of 0.02's test curve): each wrong rule
# of the mistakes below picks another step than the right rule in at least one case, and no two
# rules (nor an answer that always returns 0.01 or 0.02) pick the same steps in every case.
_STEP_CURVES = [
    (2, 6, [177, 422, 461, 533, 545, 547, 549], [97, 417, 504, 532, 540, 535, 522], -20),
    (2, 7, [186, 412, 473, 482, 541, 535, 574], [101, 398, 518, 502, 506, 533, 557], -20),
    (2, 4, [134, 414, 481, 499, 511, 528], [-7, 380, 472, 503, 528, 533], 0),
    (2, 5, [21, 410, 495, 501, 552, 515], [-81, 409, 476, 535, 523, 521], 10),
    (3, 6, [51, 398, 468, 489, 529, 526], [77, 379, 479, 510, 540, 530], -20),
    (3, 5, [184, 384, 493, 491, 514, 544, 511, 558, 549], [118, 394, 478, 515, 509, 551, 551, 560, 570], -20),
    (3, 5, [11, 382, 444, 518, 521, 527], [84, 422, 474, 506, 498, 555], 0),
    (2, 5, [99, 393, 482, 491, 518, 556], [-31, 430, 463, 514, 517, 538], 0),
]


def _step_cases():
    """Probe curves (nats per datapoint, one value per epoch) for the steps 0.01, 0.02 and 0.1, which
    blows up at the start as in the notebook; the test curves lie 10 nats lower, 0.02's shifted."""
    out = []
    for first, last, c01, c02, shift in _STEP_CURVES:
        c1 = [-2e13] + [-300.0 + 10 * k for k in range(len(c01) - 1)]
        train = {lr: torch.tensor(c, dtype=F64) for lr, c in ((0.01, c01), (0.02, c02), (0.1, c1))}
        test = {lr: c - 10 for lr, c in train.items()}
        test[0.02] = test[0.02] + shift
        out.append((train, test, first, last))
    return out


def _pick(curves, score, best=max):
    return best(curves, key=lambda lr: score(curves[lr]).item())


def _majority(train, test, first, last):
    leaders = [max(train, key=lambda lr: train[lr][e].item()) for e in range(first - 1, last)]
    return max(dict.fromkeys(leaders), key=leaders.count)          # the most frequent leader (first on a tie)


_ONE_BY_ONE = ("an off-by-one window: epochs are counted from 1, so epochs first to last, both included, are "
               "the entries [first - 1 : last] of each curve (Python counts from 0 and excludes the end).")

step = Exercise(
    "06.3", "the paper's step-size rule", choose_step, _step_cases,
    mistakes=[
        Mistake("test bound",
                "you chose by the test bound: the paper chose by \"performance on the training set in the "
                "first few iterations\", and a choice that looks at the test set makes its test bound "
                "optimistic. Use `train` only.",
                lambda train, test, first, last: _pick(test, lambda c: c[first - 1:last].mean())),
        Mistake("train plus test",
                "you added the test bound to the training bound: the rule uses the training set only, "
                "and any use of the test set in the choice makes its test bound optimistic. Use `train` only.",
                lambda train, test, first, last: _pick({lr: train[lr] + test[lr] for lr in train},
                                                       lambda c: c[first - 1:last].mean())),
        Mistake("off by one",
                "your window is one epoch late (epochs first + 1 to last + 1): " + _ONE_BY_ONE,
                lambda train, test, first, last: _pick(train, lambda c: c[first:last + 1].mean())),
        Mistake("off by one: first epoch dropped",
                "your window leaves out epoch `first` (you took [first : last]): " + _ONE_BY_ONE,
                lambda train, test, first, last: _pick(train, lambda c: c[first:last].mean())),
        Mistake("off by one: last epoch dropped",
                "your window leaves out epoch `last` (you took [first - 1 : last - 1]): " + _ONE_BY_ONE,
                lambda train, test, first, last: _pick(train, lambda c: c[first - 1:last - 1].mean())),
        Mistake("the whole curve",
                "you averaged the whole curve: the rule, as the notebook reads it, averages only epochs "
                "first to last; epochs outside that window are not part of it.",
                lambda train, test, first, last: _pick(train, lambda c: c.mean())),
        Mistake("from epoch 1",
                "you averaged from epoch 1: the window starts at epoch `first`, after the first epochs, "
                "whose values (a blow-up, the climb from the initialisation) say little about the step.",
                lambda train, test, first, last: _pick(train, lambda c: c[:last].mean())),
        Mistake("last epoch only",
                "you compared the curves at epoch `last` alone: one epoch's value is one average of a few "
                "estimates taken while the weights move (18 in the notebook's probe); the rule averages "
                "epochs first to last.",
                lambda train, test, first, last: _pick(train, lambda c: c[last - 1])),
        Mistake("first epoch only",
                "you compared the curves at epoch `first` alone: the rule averages all the epochs from "
                "first to last.",
                lambda train, test, first, last: _pick(train, lambda c: c[first - 1])),
        Mistake("median",
                "you took the median of the window: the rule compares the mean training bound over epochs "
                "first to last (`.mean()`), which counts how far each epoch is ahead or behind.",
                lambda train, test, first, last: _pick(train, lambda c: c[first - 1:last].median())),
        Mistake("majority of epochs",
                "you picked the step that leads in the most epochs: the rule compares each step's mean "
                "training bound over epochs first to last, so a large lead in one epoch counts too.",
                _majority),
        Mistake("lowest bound",
                "you picked the lowest bound: the bound is to be maximized (it is not a loss), so take "
                "the step with the highest average.",
                lambda train, test, first, last: _pick(train, lambda c: c[first - 1:last].mean(), best=min)),
    ],
    hint="""
        Give each step size one score, computed from its training curve only, over the epochs
        first to last (counted from 1, both included: mind Python's 0-based, end-excluded
        slices). Return the step size (a key of the dict) whose score is the highest.
    """,
)


# -- 4. The error term on held-out faces, with sigma fitted on the training faces ------------

def error_term_held_out(x, mean, x_new, mean_new):
    """Fit one variance per pixel to N faces x (N, D) and the decoder's means for them (N, D), then
    return (log sigma_i^2 at that optimum, shape (D,); the error term on M other faces x_new (M, D)
    with means mean_new (M, D), averaged over those faces, a 0-d tensor):

        d/d log sigma_i^2 of mean_n log N(x_ni; mu_ni, sigma_i^2) = mean_n [-1/2 + (x_ni - mu_ni)^2 / (2 sigma_i^2)] = 0
        => sigma_i^2 = mean_n (x_ni - mu_ni)^2   (on the faces fitted, the error term is then -D/2),
        error term on new faces = mean_m -1/2 sum_i (x'_mi - mu'_mi)^2 / sigma_i^2.
    """
    logvar = torch.log(((x - mean) ** 2).mean(0))
    return logvar, (-0.5 * (x_new - mean_new) ** 2 * torch.exp(-logvar)).sum(-1).mean()


def _optimum_cases():
    g = torch.Generator().manual_seed(9)
    out = []
    for N, M, D, bias, spread in ((8, 4, 5, 0.05, 1.6), (20, 6, 3, 0.1, 0.7), (5, 3, 7, -0.08, 1.3)):
        x = torch.randint(0, 256, (N, D), generator=g).to(F64) / 255
        mean = (x + bias + 0.05 * torch.randn(N, D, generator=g, dtype=F64)).clamp(0.01, 0.99)
        x_new = torch.randint(0, 256, (M, D), generator=g).to(F64) / 255
        mean_new = (x_new + bias + spread * 0.05 * torch.randn(M, D, generator=g, dtype=F64)).clamp(0.01, 0.99)
        out.append((x, mean, x_new, mean_new))
    return out


def _error(sq, var):
    return (-0.5 * sq / var).sum(-1).mean()


def _held_out_with(x, mean, x_new, mean_new, fit=lambda d: (d**2).mean(0), half=0.5, reduce="sum"):
    """The answer with one thing changed: how the variance is fitted, the 1/2, the sum over pixels."""
    var = fit(x - mean)
    return torch.log(var), getattr(-half * (x_new - mean_new) ** 2 / var, reduce)(-1).mean()


def _log_sigma(x, mean, x_new, mean_new):
    var = ((x - mean) ** 2).mean(0)
    logvar = 0.5 * torch.log(var)                               # log sigma, then used as log sigma^2
    return logvar, _error((x_new - mean_new) ** 2, logvar.exp())


def _per_face(x, mean, x_new, mean_new):
    var = ((x - mean) ** 2).mean(-1)                            # one sigma per face, over its pixels
    return torch.log(var), _error((x_new - mean_new) ** 2, var.mean())


def _fitted_faces(x, mean, x_new, mean_new):
    logvar = torch.log(((x - mean) ** 2).mean(0))
    return logvar, torch.tensor(-x.shape[1] / 2, dtype=x.dtype)   # the error term on the faces fitted: -D/2


_NOT_VARIANCE = ("you took the variance of the errors about their own mean{}: the optimum is their mean "
                 "square, mean_n (x_ni - mu_ni)^2, which also counts a decoder that is off on average.")

optimum = Exercise(
    "06.4", "the error term on held-out faces at a fitted sigma", error_term_held_out, _optimum_cases,
    mistakes=[
        Mistake("log sigma for log sigma^2",
                "your log-variance is log sigma, half of log sigma^2: the optimum is sigma_i^2 = "
                "mean_n (x_ni - mu_ni)^2, so log sigma_i^2 is the log of that mean itself.", _log_sigma),
        Mistake("variance, not mean square", _NOT_VARIANCE.format(" (`unbiased=False`)"),
                lambda *a: _held_out_with(*a, fit=lambda d: d.var(0, unbiased=False))),
        Mistake("unbiased variance, not mean square", _NOT_VARIANCE.format(" (`d.var(0)`, unbiased)"),
                lambda *a: _held_out_with(*a, fit=lambda d: d.var(0))),
        Mistake("per face, not per pixel",
                "you fitted one sigma per face, averaging over its pixels: the decoder's bias b5 gives "
                "each pixel i its own sigma_i, fitted over the faces (average over dim 0).", _per_face),
        Mistake("-D/2: the faces fitted",
                "your error term is -D/2, its value on the faces sigma was fitted to (or a constant): "
                "evaluate -1/2 sum_i (x'_i - mu'_i)^2 / sigma_i^2 on the held-out faces x_new, mean_new.",
                _fitted_faces),
        Mistake("missing 1/2",
                "the 1/2 of the error term is missing: each pixel contributes -(x_i - mu_i)^2 / (2 sigma_i^2).",
                lambda *a: _held_out_with(*a, half=1.0)),
        Mistake("averaged over pixels",
                "you averaged the error term over the pixels: sum it over the D pixels, then average "
                "over the faces.", lambda *a: _held_out_with(*a, reduce="mean")),
    ],
    hint="""
        Two steps. (1) Maximize the faces' average log-likelihood over one log sigma_i^2 per pixel:
        set its derivative to zero; which statistic of the errors x - mean over the N faces
        (which dim?) is sigma_i^2? (2) Keep that sigma and evaluate the error term, one number
        per held-out face (sum over its pixels), then average over the held-out faces.
    """,
)
