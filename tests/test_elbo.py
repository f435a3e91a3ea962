"""The objectives of vae_utils.elbo against closed forms and torch.distributions."""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vae_utils import elbo, importance


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(elbo.kl_to_standard_normal(mu, logvar), expected)


def test_kl_is_zero_only_at_the_prior():
    zeros = torch.zeros(1, 4)
    assert elbo.kl_to_standard_normal(zeros, zeros).item() == 0.0
    assert elbo.kl_to_standard_normal(zeros + 0.1, zeros).item() > 0


def test_log_normal_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    z, mu, logvar = (torch.randn(3, 6, 4, generator=g) for _ in range(3))
    expected = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(elbo.log_normal(z, mu, logvar), expected)
    torch.testing.assert_close(elbo.log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_log_joint_is_likelihood_plus_prior(toy):
    """log p(x, z) = log N(c; z, I) + log N(z; 0, I) for the conjugate toy, at any z."""
    z = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = Normal(z, 1.0).log_prob(toy.c).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(elbo.log_joint(toy, torch.zeros(2, 1), z), expected)


def test_unknown_estimator_names_the_choices():
    assert elbo.estimator("B") is elbo.sgvb_b
    with pytest.raises(ValueError, match=r"estimator='C' is not an SGVB estimator; pass one of \['A', 'B'\]"):
        elbo.estimator("C")


def test_reparameterize_has_the_right_moments_and_gradients():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    z = elbo.reparameterize(mu, logvar, 200_000, torch.Generator().manual_seed(0))
    assert z.shape == (200_000, 2)
    torch.testing.assert_close(z.mean(0), mu.detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.02, rtol=0)
    z.mean().backward()  # z is a differentiable function of (mu, logvar)
    torch.testing.assert_close(mu.grad, torch.tensor([0.5, 0.5]))


def _mean_and_se(values):
    return values.mean().item(), values.std().item() / math.sqrt(values.numel())


def test_estimators_a_and_b_are_unbiased_for_the_exact_bound(toy):
    x = torch.zeros(20_000, 1, dtype=torch.float64)  # 20k datapoints: 20k independent estimates
    for estimator in (elbo.sgvb_a, elbo.sgvb_b):
        est = estimator(toy, x, 1, torch.Generator().manual_seed(0))
        assert est.shape == (20_000,)
        mean, se = _mean_and_se(est)
        assert abs(mean - toy.exact_elbo()) < 4 * se, estimator.__name__


def _variances(toy, n=20_000):
    x = torch.zeros(n, 1, dtype=torch.float64)
    var_a = elbo.sgvb_a(toy, x, 1, torch.Generator().manual_seed(0)).var().item()
    var_b = elbo.sgvb_b(toy, x, 1, torch.Generator().manual_seed(0)).var().item()
    return var_a, var_b


def test_estimator_b_has_lower_variance_for_a_narrow_q(toy):
    """A narrow q (as trained encoders have) makes log q(z|x) noisy; B integrates it exactly."""
    toy.logvar = torch.full_like(toy.c, -4.0)
    var_a, var_b = _variances(toy)
    assert var_b < var_a / 2


def test_estimator_a_wins_near_the_posterior(toy):
    """Not a law: near the true posterior log w is almost constant, so A's variance vanishes."""
    toy.mu, toy.logvar = toy.c / 2 + 0.05, torch.full_like(toy.c, -0.7)
    var_a, var_b = _variances(toy)
    assert var_a < var_b


def test_more_samples_shrink_the_variance_as_one_over_L(toy):
    x = torch.zeros(5000, 1, dtype=torch.float64)
    v1 = elbo.sgvb_b(toy, x, 1, torch.Generator().manual_seed(0)).var()
    v10 = elbo.sgvb_b(toy, x, 10, torch.Generator().manual_seed(0)).var()
    assert 7 < (v1 / v10).item() < 13


def test_bound_is_tight_at_the_true_posterior(toy):
    toy.mu, toy.logvar = toy.c / 2, torch.full_like(toy.c, math.log(0.5))
    assert abs(toy.exact_elbo() - toy.exact_log_px()) < 1e-12
    est = elbo.sgvb_a(toy, torch.zeros(10, 1, dtype=torch.float64), 1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(est, torch.full((10,), toy.exact_log_px(), dtype=torch.float64))


def test_iwae_bound_rises_with_k_and_stays_below_log_px(toy):
    x = torch.zeros(2000, 1, dtype=torch.float64)
    means = [importance.iwae_bound(toy, x, k, torch.Generator().manual_seed(k)).mean().item() for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2] < toy.exact_log_px()
    assert abs(means[0] - toy.exact_elbo()) < 0.1
    assert toy.exact_log_px() - means[2] < 0.1 * (toy.exact_log_px() - toy.exact_elbo())


def test_iwae_with_one_sample_is_estimator_a(toy):
    x = torch.zeros(50, 1, dtype=torch.float64)
    a = elbo.sgvb_a(toy, x, 1, torch.Generator().manual_seed(3))
    iw = importance.iwae_bound(toy, x, 1, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, iw)


def test_kl_weight_scales_only_the_kl_term(toy):
    """sgvb_b with weight beta is the reconstruction term minus beta KL, on the same draws;
    sgvb_a's beta scales the sampled log p(z) - log q(z|x). beta = 1 is the plain estimator."""
    x = torch.zeros(1000, 1, dtype=torch.float64)
    for estimator in (elbo.sgvb_a, elbo.sgvb_b):
        run = lambda beta: estimator(toy, x, 1, torch.Generator().manual_seed(0), kl_weight=beta)
        plain = estimator(toy, x, 1, torch.Generator().manual_seed(0))
        torch.testing.assert_close(run(1.0), plain)
        reconstruction, minus_kl = run(0.0), run(1.0) - run(0.0)
        torch.testing.assert_close(run(0.3), reconstruction + 0.3 * minus_kl)
    mu, logvar = toy.encode(x)
    torch.testing.assert_close(elbo.sgvb_b(toy, x, 1, torch.Generator().manual_seed(0), kl_weight=0.0)
                               - elbo.sgvb_b(toy, x, 1, torch.Generator().manual_seed(0)),
                               elbo.kl_to_standard_normal(mu, logvar))
