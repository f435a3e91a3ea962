"""Notebook 06's exercises beyond the generic checks of test_exercises.py: each reference solution
agrees with the package and with closed forms, and wrong answers written the way a reader would
write them (not the mistakes' own functions) get the message meant for them."""
import math

import numpy as np
import torch
from scipy.stats import norm

from vae_utils.elbo import log_normal
from vae_utils.exercises import CORRECT, MISTAKE
from vae_utils.exercises import nb06 as ex
from vae_utils.models import VAEConfig, build

F64 = torch.float64


def _named(fb, name):
    return fb.status == MISTAKE and fb.mistake == name


# -- 06.1 -------------------------------------------------------------------------------------

def test_decoder_log_likelihood_is_the_packages_gaussian_decoder():
    model = build(VAEConfig(x_dim=6, z_dim=2, hidden=(5,), activation="tanh", decoder="gaussian"), seed=3).double()
    first, last = model.decoder.net[0], model.decoder.net[-1]        # z -> h (tanh), h -> (mu, log sigma^2)
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(4, 2, generator=g, dtype=F64), torch.rand(4, 6, generator=g, dtype=F64)
    with torch.no_grad():
        h = torch.tanh(first(z))
        W, b = last.weight.T, last.bias                                   # (H, 2D), (2D,): the two heads side by side
        got = ex.gaussian_log_likelihood(x, h, W[:, :6], b[:6], W[:, 6:], b[6:])
        assert torch.allclose(got, model.log_likelihood(x, z), atol=1e-12)


def test_decoder_log_likelihood_is_torch_distributions_normal():
    for x, h, W4, b4, W5, b5 in ex._decoder_cases():
        mu, logvar = torch.sigmoid(h @ W4 + b4), h @ W5 + b5
        want = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(x).sum(-1)
        assert torch.allclose(ex.gaussian_log_likelihood(x, h, W4, b4, W5, b5), want, atol=1e-12)


def test_normal_with_scale_exp_logvar_is_named_log_sigma():
    # a reader's one-liner: scale = exp(logvar) reads logvar as log sigma
    def gaussian_log_likelihood(x, h, W4, b4, W5, b5):
        return torch.distributions.Normal(torch.sigmoid(h @ W4 + b4), torch.exp(h @ W5 + b5)).log_prob(x).sum(-1)
    assert _named(ex.decoder.check(gaussian_log_likelihood), "log sigma for log sigma^2")


def test_a_readers_mean_over_pixels_is_named():
    def gaussian_log_likelihood(x, h, W4, b4, W5, b5):
        mu, logvar = torch.sigmoid(h @ W4 + b4), h @ W5 + b5
        per_pixel = -0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / logvar.exp())
        return per_pixel.mean(dim=1)
    assert _named(ex.decoder.check(gaussian_log_likelihood), "averaged over pixels")


def test_a_float32_answer_is_correct():
    def gaussian_log_likelihood(x, h, W4, b4, W5, b5):
        x, h, W4, b4, W5, b5 = (t.float() for t in (x, h, W4, b4, W5, b5))
        return log_normal(x, torch.sigmoid(h @ W4 + b4), h @ W5 + b5)
    assert ex.decoder.check(gaussian_log_likelihood).status == CORRECT


# -- 06.2 -------------------------------------------------------------------------------------

def test_8bit_bound_is_exact_for_a_density_flat_in_each_bin():
    # a density constant on each bin [k/255, (k+1)/255), 255 P(k) per pixel there: dequantized,
    # the bound minus D log 255 is log P(x) exactly, whatever the noise
    g = torch.Generator().manual_seed(1)
    D = 5
    logits = torch.randn(D, 256, generator=g, dtype=F64)
    log_p = torch.log_softmax(logits, -1)                                      # P(k) per pixel

    def bound(y):
        k = torch.floor(y * 255).long().clamp(0, 255)
        return (log_p.gather(1, k.T).T + math.log(255)).sum(-1)

    x = torch.randint(0, 255, (3, D), generator=g).to(F64) / 255
    u = torch.rand(3, D, generator=g, dtype=F64) * 0.999
    exact = log_p.gather(1, torch.round(x * 255).long().T).T.sum(-1)
    assert torch.allclose(ex.bound_8bit(bound, x, u), exact, atol=1e-9)


def test_8bit_bound_is_unbiased_for_its_expectation_which_is_below_log_p():
    # Gaussian pixels N(m, s^2): log P(x) integrates the density over each bin (erf); the
    # expected dequantized bound has a closed form, E[(a + w u)^2] = a^2 + a w + w^2 / 3 for
    # u ~ U[0, 1), w = 1/255; it lies below log P (Jensen), and the draws average to it
    g = torch.Generator().manual_seed(2)
    D, n, w = 4, 20000, 1 / 255
    m, s = torch.full((D,), 0.5, dtype=F64), torch.tensor([0.003, 0.01, 0.05, 0.2], dtype=F64)
    x = torch.tensor([[128, 130, 140, 100]], dtype=F64) / 255
    lo, hi = (x - m) / s, (x + w - m) / s
    log_P = np.log(norm.cdf(hi.numpy()) - norm.cdf(lo.numpy())).sum()
    a = x - m
    expected = (-0.5 * torch.log(2 * math.pi * s**2) - (a**2 + a * w + w**2 / 3) / (2 * s**2)).sum().item() \
        - D * math.log(255)
    assert expected < log_P
    draws = ex.bound_8bit(ex._pixel_density(m, s), x.expand(n, D), torch.rand(n, D, generator=g, dtype=F64))
    assert abs(draws.mean().item() - expected) < 4 * draws.std().item() / math.sqrt(n)


def test_forgetting_the_scale_of_the_noise_is_named():
    def bound_8bit(bound, x, u):
        D = x.shape[1]
        return bound(x + u) - D * np.log(255)
    assert _named(ex.bits.check(bound_8bit), "noise of width 1")


def test_the_notebooks_dequantization_is_the_reference():
    # cell "D log 255 = ...": lower_bound(dequantized) - D log 255, with dequantized = x + noise / 255
    for bound, x, u in ex._8bit_cases():
        notebook = bound(x + u / 255) - x.shape[1] * np.log(255)
        assert torch.allclose(ex.bound_8bit(bound, x, u), notebook, atol=1e-12)


# -- 06.3 -------------------------------------------------------------------------------------

def test_choose_step_is_the_notebooks_probe_rule():
    # the notebook: late = {lr: np.mean(h.train[PROBE // 2:])}; LR = max(late, key=late.get)
    rng = np.random.default_rng(3)
    for _ in range(20):
        probe = {lr: rng.normal(500, 30, size=20) for lr in (0.01, 0.02, 0.1)}
        late = {lr: np.mean(c[10:]) for lr, c in probe.items()}
        train = {lr: torch.tensor(c) for lr, c in probe.items()}
        test = {lr: torch.full((20,), float("nan"), dtype=F64) for lr in probe}  # the probe has no test set
        assert ex.choose_step(train, test, 11, 20) == max(late, key=late.get)


def test_a_numpy_answer_is_correct_and_a_test_set_answer_is_named():
    def choose_step(train, test, first, last):
        scores = {lr: np.mean(np.asarray(c)[first - 1:last]) for lr, c in train.items()}
        return max(scores, key=scores.get)
    assert ex.step.check(choose_step).status == CORRECT

    def choose_step(train, test, first, last):
        scores = {lr: float(c[first - 1:last].mean()) for lr, c in test.items()}
        return max(scores, key=scores.get)
    assert _named(ex.step.check(choose_step), "test bound")


def test_a_constant_step_is_not_accepted():
    for lr in (0.01, 0.02, 0.1):
        assert ex.step.check(lambda train, test, first, last, lr=lr: lr).status != CORRECT


# -- 06.3: every wrong rule the review found is caught, under its own name -------------------

def test_each_wrong_rule_gets_its_own_name():
    # written the way a reader would write them, not with the mistakes' own helpers
    def window(a, b):
        return lambda train, test, first, last: max(train, key=lambda lr: float(train[lr][a(first):b(last)].mean()))
    rules = {
        "off by one": window(lambda f: f, lambda l: l + 1),
        "off by one: first epoch dropped": window(lambda f: f, lambda l: l),
        "off by one: last epoch dropped": window(lambda f: f - 1, lambda l: l - 1),
        "from epoch 1": window(lambda f: 0, lambda l: l),
        "first epoch only": lambda train, test, first, last: max(train, key=lambda lr: float(train[lr][first - 1])),
        "median": lambda train, test, first, last: max(
            train, key=lambda lr: float(torch.median(train[lr][first - 1:last]))),
        "train plus test": lambda train, test, first, last: max(
            train, key=lambda lr: float((train[lr] + test[lr])[first - 1:last].mean())),
        "test bound": lambda train, test, first, last: max(test, key=lambda lr: float(test[lr][first - 1:last].mean())),
    }
    for name, rule in rules.items():
        assert _named(ex.step.check(rule), name), name

    def majority(train, test, first, last):
        from collections import Counter
        leaders = [max(train, key=lambda lr: train[lr][e]) for e in range(first - 1, last)]
        return Counter(leaders).most_common(1)[0][0]
    assert ex.step.check(majority).status != CORRECT

    def numpy_median(train, test, first, last):   # numpy's median of an even window: the middle two's mean
        return max(train, key=lambda lr: float(np.median(train[lr][first - 1:last].numpy())))
    assert ex.step.check(numpy_median).status != CORRECT


def test_the_step_cases_tell_every_rule_apart():
    cases = ex._step_cases()
    picks = {m.name: tuple(m.answer(*c) for c in cases) for m in ex.step.mistakes}
    picks["solution"] = tuple(ex.choose_step(*c) for c in cases)
    picks["always 0.01"], picks["always 0.02"] = (0.01,) * len(cases), (0.02,) * len(cases)
    assert len(set(picks.values())) == len(picks)


# -- 06.2: the other valid dequantizations are named as valid -----------------------------------

def test_centred_and_lower_bins_are_named_valid():
    fb = ex.bits.check(lambda bound, x, u: bound(x + (u - 0.5) / 255) - x.shape[1] * math.log(255))
    assert _named(fb, "centred bins") and fb.message.startswith("valid")
    fb = ex.bits.check(lambda bound, x, u: bound(x - u / 255) - x.shape[1] * math.log(255))
    assert _named(fb, "bins below the levels") and fb.message.startswith("valid")


# -- 06.4 -------------------------------------------------------------------------------------

def test_error_term_on_the_fitted_faces_is_minus_half_d_and_not_on_held_out_ones():
    for x, mean, x_new, mean_new in ex._optimum_cases():
        _, on_fitted = ex.error_term_held_out(x, mean, x, mean)
        assert abs(on_fitted.item() + x.shape[1] / 2) < 1e-12
        _, held_out = ex.error_term_held_out(x, mean, x_new, mean_new)
        assert abs(held_out.item() + x.shape[1] / 2) > 0.2


def test_the_optimum_is_where_the_derivative_vanishes_and_a_maximum():
    x, mean, _, _ = ex._optimum_cases()[0]
    logvar, _ = ex.error_term_held_out(x, mean, x, mean)
    logvar = logvar.clone().requires_grad_(True)
    objective = log_normal(x, mean, logvar).mean()                          # average log-likelihood of the faces
    (grad,) = torch.autograd.grad(objective, logvar)
    assert grad.abs().max() < 1e-12
    for step in (-0.1, 0.1):
        assert log_normal(x, mean, logvar.detach() + step).mean() < objective.detach()


def test_a_readers_per_face_sigma_is_named():
    def error_term_held_out(x, mean, x_new, mean_new):
        var = ((x - mean) ** 2).mean(dim=1, keepdim=True)                  # one sigma per face
        return var.log().squeeze(1), (-(x_new - mean_new) ** 2 / (2 * var.mean())).sum(1).mean()
    assert _named(ex.optimum.check(error_term_held_out), "per face, not per pixel")


def test_a_hard_coded_minus_half_d_is_named():
    def error_term_held_out(x, mean, x_new, mean_new):
        return torch.log(((x - mean) ** 2).mean(0)), torch.tensor(-x.shape[1] / 2)
    assert _named(ex.optimum.check(error_term_held_out), "-D/2: the faces fitted")


def test_both_variance_forms_are_named():
    for unbiased, name in ((True, "unbiased variance, not mean square"), (False, "variance, not mean square")):
        def error_term_held_out(x, mean, x_new, mean_new, unbiased=unbiased):
            var = (x - mean).var(0, unbiased=unbiased)
            return var.log(), (-0.5 * (x_new - mean_new) ** 2 / var).sum(1).mean()
        assert _named(ex.optimum.check(error_term_held_out), name)
