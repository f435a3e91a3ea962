"""Notebook 01's exercises beyond the generic checks of test_exercises.py: each reference
solution agrees with the package's own implementation and with the closed forms, and a few
wrong answers the checker does not name get a useful message instead of an exception."""
import math

import torch

import vae_utils.exercises as E
from vae_utils import elbo, linear_gaussian
from vae_utils.exercises import nb01


def test_kl_and_log_normal_solutions_match_the_package():
    for mu, logvar in nb01._kl_cases():
        assert torch.allclose(nb01.kl_to_prior(mu, logvar), elbo.kl_to_standard_normal(mu, logvar), atol=1e-12)
    for z, mu, logvar in nb01._log_normal_cases():
        assert torch.allclose(nb01.log_normal(z, mu, logvar), elbo.log_normal(z, mu, logvar), atol=1e-12)
    z, mu, logvar = nb01._log_normal_cases()[0]           # and torch.distributions, an independent implementation
    ref = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(nb01.log_normal(z, mu, logvar), ref, atol=1e-12)


def test_elbo_estimate_is_estimator_a_on_the_same_noise():
    model, x, mu, logvar, _ = nb01._elbo_cases()[0]
    n = 5
    eps = torch.randn((n, *mu.shape), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = elbo.sgvb_a(model.with_q(mu, logvar), x, n, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(nb01.elbo_estimate(model, x, mu, logvar, eps), want, atol=1e-12)


def test_elbo_estimate_is_unbiased_for_the_closed_form_bound():
    model, x, mu, logvar, _ = nb01._elbo_cases()[0]
    n = 200_000
    eps = torch.randn(n, *mu.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * eps
    per_sample = model.log_likelihood(x, z) + model.log_prior(z) - elbo.log_normal(z, mu, logvar)
    se = per_sample.std(0) / math.sqrt(n)
    est = nb01.elbo_estimate(model, x, mu, logvar, eps)
    assert ((est - model.elbo(x, mu, logvar)).abs() < 4 * se).all()


def test_elbo_estimate_at_the_exact_posterior_is_log_px_for_every_sample():
    model = linear_gaussian.random_model(2, 1, s=0.5, seed=0)   # J = 1: the posterior is a diagonal Gaussian
    x, _ = model.sample(4, generator=torch.Generator().manual_seed(1))
    m, S = model.posterior(x)
    eps = torch.randn(3, 4, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for k in range(3):                                           # one sample at a time: no averaging needed
        est = nb01.elbo_estimate(model, x, m, S.log().expand_as(m), eps[k:k + 1])
        assert torch.allclose(est, model.log_marginal(x), atol=1e-12)


def test_exact_encoder_is_the_models_posterior():
    for W, b, s in nb01._encoder_cases():
        model = linear_gaussian.LinearGaussian(W, b, s)
        x, _ = model.sample(7, generator=torch.Generator().manual_seed(3))
        A, c, S = nb01.exact_encoder(W, b, s)
        m_ref, S_ref = model.posterior(x)
        assert torch.allclose(x @ A.T + c, m_ref, atol=1e-12) and torch.allclose(S, S_ref, atol=1e-12)


def test_a_transposed_w_is_reported_not_raised():
    def transposed(W, b, s):                                     # W W^T is (D, D): shapes do not fit
        S = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W @ W.T / s**2)
        A = S @ W.T / s**2
        return A, -A @ b, S
    fb = nb01.encoder.check(transposed)
    assert fb.status == E.ERROR and "RuntimeError" in fb.message


def test_an_unnamed_wrong_bound_is_told_where_it_differs():
    fb = nb01.bound.check(lambda model, x, mu, logvar, eps: nb01.elbo_estimate(model, x, mu, logvar, eps) - 1)
    assert fb.status == E.WRONG and "test input 1 of 3" in fb.message


# -- added with the fresh reader's review of the exercises ----------------------------------

def test_normal_given_the_variance_as_its_scale_is_named_and_told_what_normal_takes():
    N = torch.distributions.Normal

    def kl_to_prior(mu, logvar):                                 # Normal's 2nd argument is the std, not sigma^2
        return torch.distributions.kl_divergence(N(mu, logvar.exp()), N(0.0, 1.0)).sum(-1)

    def log_normal(z, mu, logvar):
        return N(mu, logvar.exp()).log_prob(z).sum(-1)

    for ex, answer in ((nb01.kl, kl_to_prior), (nb01.log_density, log_normal)):
        fb = ex.check(answer)
        assert fb.mistake == "log sigma for log sigma^2", fb
        assert "Normal takes the standard deviation" in fb.message


def test_the_closed_form_entropy_variant_is_unbiased_too():
    # named as "valid, but not the one asked": check that it is valid (its mean is the exact L)
    model, x, mu, logvar, _ = nb01._elbo_cases()[0]
    n = 200_000
    eps = torch.randn(n, *mu.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * eps
    per_sample = model.log_likelihood(x, z) + model.log_prior(z)
    se = per_sample.std(0) / math.sqrt(n)
    est = nb01._closed_form_entropy(model, x, mu, logvar, eps)
    assert ((est - model.elbo(x, mu, logvar)).abs() < 4 * se).all()


def test_section_3s_completed_square_passes_the_joint_gaussian_exercise():
    def exact_encoder(W, b, s):                                  # the J x J route of section 3 (Woodbury)
        S = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W.T @ W / s**2)
        A = S @ W.T / s**2
        return A, -A @ b, S
    assert nb01.encoder.check(exact_encoder).passed


def test_the_joint_route_with_the_wrong_noise_term_gets_the_named_messages():
    def with_noise(noise):
        def exact_encoder(W, b, s):
            A = W.T @ torch.linalg.inv(W @ W.T + noise(s) * torch.eye(W.shape[0], dtype=W.dtype))
            return A, -A @ b, torch.eye(W.shape[1], dtype=W.dtype) - A @ W
        return exact_encoder
    assert nb01.encoder.check(with_noise(lambda s: s)).mistake == "s for s^2"
    assert nb01.encoder.check(with_noise(lambda s: 1.0)).mistake == "no noise variance"


def test_the_hint_s_check_of_exercise_01_4_is_true():
    A, c, S = nb01.exact_encoder(torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), 1.0)
    assert torch.allclose(A, torch.tensor([[0.5]], dtype=torch.float64)) and c.abs().max() == 0
    assert torch.allclose(S, torch.tensor([[0.5]], dtype=torch.float64))
