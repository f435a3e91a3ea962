"""Score-function and pathwise gradient estimators against closed-form gradients."""
import math
from dataclasses import replace

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


# --- gradients of the ELBO with respect to phi = (mu, log sigma^2), on the closed-form model ---

from vae_utils import elbo, linear_gaussian  # noqa: E402
from vae_utils.gradients import (  # noqa: E402
    ELBO_GRADIENTS, exact_elbo_grad, grad_a, gradient_variance_closed_form, mean_squared_error, path_grad,
    score_term,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _model_and_q(kind):
    """(model, x (1, D), mu (d,), logvar (d,)): a 3-D model with a random q, or a 1-D model with a
    q narrower than the posterior, or the same 1-D model with q = the exact posterior."""
    if kind == "random":
        model = linear_gaussian.random_model(x_dim=5, z_dim=3, s=0.7, seed=0)
        x, _ = model.sample(1, generator=_gen(1))
        return model, x, torch.randn(3, generator=_gen(2), dtype=torch.float64), \
            torch.randn(3, generator=_gen(3), dtype=torch.float64) - 1
    model = linear_gaussian.random_model(x_dim=2, z_dim=1, s=0.5, seed=0)
    x, _ = model.sample(1, generator=_gen(1))
    m, S = model.posterior(x)
    logvar = S.diagonal().log() + (math.log(0.01) if kind == "narrow" else 0.0)
    return model, x, m[0], logvar


@pytest.mark.parametrize("kind", ["random", "narrow", "posterior"])
def test_exact_elbo_grad_is_autograd_of_the_closed_form_elbo(kind):
    model, x, mu, logvar = _model_and_q(kind)
    mu_, lv_ = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    g = torch.stack(torch.autograd.grad(model.elbo(x, mu_, lv_).sum(), (mu_, lv_)))
    torch.testing.assert_close(exact_elbo_grad(model, x, mu, logvar), g, rtol=0, atol=1e-10)
    assert exact_elbo_grad(model, x[0], mu, logvar).shape == (2, mu.shape[-1])


def test_exact_elbo_grad_is_zero_at_the_exact_posterior():
    model, x, mu, logvar = _model_and_q("posterior")
    assert exact_elbo_grad(model, x, mu, logvar).abs().max() < 1e-12
    model, x, mu, logvar = _model_and_q("narrow")
    assert exact_elbo_grad(model, x, mu, logvar)[1].abs().max() > 0.1  # too narrow: d/dlogvar pushes it wider


@pytest.mark.parametrize("kind", ["random", "narrow", "posterior"])
@pytest.mark.parametrize("name", list(ELBO_GRADIENTS))
def test_elbo_gradient_estimators_are_unbiased(name, kind):
    model, x, mu, logvar = _model_and_q(kind)
    g = ELBO_GRADIENTS[name](model, x, mu, logvar, 100_000, generator=_gen(4))
    assert g.shape == (100_000, 2, mu.shape[-1])
    se = g.std(0) / math.sqrt(len(g))
    assert ((g.mean(0) - exact_elbo_grad(model, x, mu, logvar)).abs() <= 4 * se + 1e-10).all()


@pytest.mark.parametrize("kind", ["random", "narrow", "posterior"])
@pytest.mark.parametrize("name", ["A", "B"])
def test_gradient_variance_closed_form_matches_monte_carlo(name, kind):
    model, x, mu, logvar = _model_and_q(kind)
    g = ELBO_GRADIENTS[name](model, x, mu, logvar, 200_000, generator=_gen(5))
    closed = gradient_variance_closed_form(model, x, mu, logvar, name)
    torch.testing.assert_close(g.var(0), closed, rtol=0.03, atol=0)   # sampling error of a variance: ~1% here
    torch.testing.assert_close(mean_squared_error(g, exact_elbo_grad(model, x, mu, logvar)), closed.sum(-1),
                               rtol=0.03, atol=0)


def test_gradient_variance_closed_form_refuses_other_estimators():
    model, x, mu, logvar = _model_and_q("random")
    with pytest.raises(ValueError, match="closed form only"):
        gradient_variance_closed_form(model, x, mu, logvar, "score function")


def test_a_and_b_mu_gradients_differ_by_the_prior_term_only():
    """Var_A / Var_B of d/dmu in 1-D is (P / (P - 1))^2, P = 1 + |W|^2 / s^2, wherever q is."""
    model, x, _, _ = _model_and_q("posterior")
    P = 1 + (model.W**2).sum().item() / model.s**2
    for mu, logvar in [(0.0, 0.0), (2.0, -6.0), (-1.0, 1.0)]:
        mu, logvar = torch.tensor([mu], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64)
        ratio = (gradient_variance_closed_form(model, x, mu, logvar, "A")
                 / gradient_variance_closed_form(model, x, mu, logvar, "B"))
        assert ratio[0].item() == pytest.approx((P / (P - 1)) ** 2, rel=1e-12)


@pytest.mark.parametrize("kind", ["random", "narrow"])
def test_score_term_has_mean_zero_and_its_closed_form(kind):
    model, x, mu, logvar = _model_and_q(kind)
    g = score_term(model, x, mu, logvar, 100_000, generator=_gen(6))
    assert (g.mean(0).abs() <= 4 * g.std(0) / math.sqrt(len(g))).all()
    eps = torch.randn(1, 100_000, mu.shape[-1], generator=_gen(6), dtype=torch.float64)[0]  # the same eps
    sigma = (0.5 * logvar).exp()
    torch.testing.assert_close(g, torch.stack([eps / sigma, (eps**2 - 1) / 2], dim=1))


@pytest.mark.parametrize("kind", ["random", "narrow", "posterior"])
def test_a_is_its_path_part_minus_the_score_term_sample_by_sample(kind):
    model, x, mu, logvar = _model_and_q(kind)
    a = grad_a(model, x, mu, logvar, 1000, generator=_gen(7))
    path = path_grad(model, x, mu, logvar, 1000, generator=_gen(7))
    score = score_term(model, x, mu, logvar, 1000, generator=_gen(7))
    torch.testing.assert_close(a, path - score, rtol=0, atol=1e-9)
    assert (score.abs() > 1e-3).any()                           # a non-trivial identity


def test_the_half_sum_of_eps_squared_has_no_reparameterized_gradient():
    """-log q(z|x) at z = mu + sigma eps is const + sum_j (logvar_j + eps_j^2) / 2: its gradient is (0, 1/2) for every eps."""
    mu = torch.randn(1000, 4, generator=_gen(8), dtype=torch.float64).requires_grad_(True)
    logvar = torch.randn(1000, 4, generator=_gen(9), dtype=torch.float64).requires_grad_(True)
    z = elbo.reparameterize(mu, logvar, 1, _gen(10))
    neg_log_q = -elbo.log_normal(z, mu, logvar)
    g_mu, g_lv = torch.autograd.grad(neg_log_q.sum(), (mu, logvar))
    assert neg_log_q.var() > 0.1                                  # the value is noisy ...
    assert g_mu.abs().max() < 1e-12 and (g_lv - 0.5).abs().max() < 1e-12  # ... its gradient is not


def test_at_the_exact_posterior_a_is_constant_but_its_gradient_is_not():
    model, x, mu, logvar = _model_and_q("posterior")
    n = 100_000
    m = model.with_q(mu.expand(n, 1), logvar.expand(n, 1))
    values = elbo.sgvb_a(m, x.expand(n, -1), 1, _gen(11))
    assert (values - model.log_marginal(x)).abs().max() < 1e-10       # A = log p(x) for every eps
    a = grad_a(model, x, mu, logvar, n, generator=_gen(11))
    assert (path_grad(model, x, mu, logvar, n, generator=_gen(11)).abs().max() < 1e-10)  # the path part is 0
    torch.testing.assert_close(a, -score_term(model, x, mu, logvar, n, generator=_gen(11)), rtol=0, atol=1e-10)
    # Var of minus the score: 1 / sigma^2 (the posterior precision) for d/dmu, Var[(eps^2 - 1) / 2] = 1/2 for d/dlogvar
    torch.testing.assert_close(a.var(0)[:, 0], torch.stack([1 / logvar.exp()[0], torch.tensor(0.5)]), rtol=0.03, atol=0)


def test_mean_squared_error_is_per_group_and_against_the_given_gradient():
    g = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[3.0, 2.0], [0.0, 2.0]]])   # (n=2, 2 groups, d=2)
    exact = torch.tensor([[2.0, 2.0], [0.0, 1.0]])
    torch.testing.assert_close(mean_squared_error(g, exact), torch.tensor([1.0, 1.0]))


# --- the gradient of eq. 8 with respect to the decoder bias b ---

from vae_utils.gradients import bias_grad_closed_form, minibatch_bias_grad  # noqa: E402


def _data_and_q():
    model = linear_gaussian.random_model(x_dim=6, z_dim=3, s=0.8, seed=1)
    x, _ = model.sample(40, generator=_gen(12))
    mu, logvar = model.encode(x)                                  # the posterior's diagonal, per datapoint
    return model, x, mu, logvar


def test_minibatch_bias_grad_is_autograd_of_the_exact_bound_on_average_and_its_closed_form():
    model, x, mu, logvar = _data_and_q()
    exact, mc_var = bias_grad_closed_form(model, x, mu, logvar)
    b = model.b.clone().requires_grad_(True)                      # the closed form against autograd of L(x_i)
    auto = torch.autograd.grad(replace(model, b=b).elbo(x, mu, logvar).sum(), b)[0]
    torch.testing.assert_close(exact.sum(0), auto, rtol=0, atol=1e-10)
    # one minibatch = the whole dataset (M = N), L = 1, repeated R times: mean -> sum_i exact_i,
    # total variance -> sum_i mc_var_i (no data term when M = N)
    R, N = 20_000, len(x)
    g = minibatch_bias_grad(model, x.expand(R, -1, -1), mu.expand(R, -1, -1), logvar.expand(R, -1, -1), N, 1, _gen(13))
    assert g.shape == (R, x.shape[1])
    se = g.std(0) / math.sqrt(R)
    assert ((g.mean(0) - exact.sum(0)).abs() <= 4 * se).all()
    assert g.var(0).sum().item() == pytest.approx(mc_var.sum().item(), rel=0.03)


def test_minibatch_bias_grad_is_the_per_sample_formula():
    """(N / M) sum_i 1/L sum_l (x_i - W z_il - b) / s^2 with z_il = mu_i + sigma_i eps_il, the same eps."""
    model, x, mu, logvar = _data_and_q()
    xs, mus, lvs = x[:10].reshape(2, 5, -1), mu[:10].reshape(2, 5, -1), logvar[:10].reshape(2, 5, -1)
    g = minibatch_bias_grad(model, xs, mus, lvs, 40, 3, _gen(14))
    z = elbo.reparameterize(mus.reshape(10, -1), lvs.reshape(10, -1), 3, _gen(14))      # (L, R*M, J)
    per = ((x[:10] - z @ model.W.T - model.b) / model.s**2).mean(0)                     # (R*M, D)
    torch.testing.assert_close(g, 40 / 5 * per.reshape(2, 5, -1).sum(1), rtol=1e-12, atol=1e-10)
