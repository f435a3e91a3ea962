"""Score-function and pathwise gradient estimators against closed-form gradients."""
import math

import pytest
import torch

from vae_utils.gradients import ESTIMATORS, TEST_FUNCTIONS, pathwise_grad, score_function_grad

MU, SIGMA = 0.7, 0.8


@pytest.mark.parametrize("name", list(TEST_FUNCTIONS))
def test_closed_form_gradient_matches_autograd_of_the_expectation(name):
    t = TEST_FUNCTIONS[name]
    mu = torch.tensor(MU, dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor(SIGMA, dtype=torch.float64, requires_grad=True)
    # the closed-form expectations use math on floats; rebuild them in torch for autograd
    e = {"z": mu, "z^2": mu**2 + sigma**2, "sin z": torch.sin(mu) * torch.exp(-sigma**2 / 2),
         "exp z": torch.exp(mu + sigma**2 / 2)}[name]
    assert math.isclose(e.item(), t.expectation(MU, SIGMA), rel_tol=1e-12)
    grads = torch.autograd.grad(e, (mu, sigma), allow_unused=True)
    grads = [0.0 if g is None else g.item() for g in grads]
    assert grads == pytest.approx(t.grad(MU, SIGMA), abs=1e-12)


@pytest.mark.parametrize("name", list(TEST_FUNCTIONS))
def test_expectation_matches_monte_carlo(name):
    t = TEST_FUNCTIONS[name]
    z = MU + SIGMA * torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fz = t.f(z)
    assert abs(fz.mean().item() - t.expectation(MU, SIGMA)) < 4 * fz.std().item() / math.sqrt(len(z))


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("name", list(TEST_FUNCTIONS))
def test_estimators_are_unbiased(estimator, name):
    t = TEST_FUNCTIONS[name]
    g = ESTIMATORS[estimator](t.f, MU, SIGMA, 200_000, generator=torch.Generator().manual_seed(1))
    se = g.std(0) / math.sqrt(len(g))
    exact = torch.tensor(t.grad(MU, SIGMA), dtype=torch.float64)
    assert ((g.mean(0) - exact).abs() <= 4 * se + 1e-12).all()


def test_per_sample_formulas():
    """Score: f(z) (z - mu)/sigma^2 and f(z) ((z - mu)^2 - sigma^2)/sigma^3; pathwise: f'(z) and f'(z) eps."""
    f = lambda z: z**2
    g = score_function_grad(f, MU, SIGMA, 5, generator=torch.Generator().manual_seed(2))
    z = torch.normal(torch.full((5,), MU, dtype=torch.float64), SIGMA, generator=torch.Generator().manual_seed(2))
    expected = torch.stack([f(z) * (z - MU) / SIGMA**2, f(z) * ((z - MU) ** 2 - SIGMA**2) / SIGMA**3], -1)
    torch.testing.assert_close(g, expected)
    g = pathwise_grad(f, MU, SIGMA, 5, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = MU + SIGMA * eps
    torch.testing.assert_close(g, torch.stack([2 * z, 2 * z * eps], -1))


def test_pathwise_has_lower_variance():
    for name in ["z^2", "sin z", "exp z"]:
        t = TEST_FUNCTIONS[name]
        var = {k: est(t.f, MU, SIGMA, 10_000, generator=torch.Generator().manual_seed(4)).var(0)
               for k, est in ESTIMATORS.items()}
        assert (var["pathwise"] < var["score function"]).all(), name


def test_linear_f_has_zero_pathwise_variance():
    g = pathwise_grad(lambda z: 3 * z, MU, SIGMA, 1000, generator=torch.Generator().manual_seed(5))
    assert g[:, 0].var() < 1e-20  # d/dmu of 3 (mu + sigma eps) is exactly 3
