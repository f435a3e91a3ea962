"""HMC and the Appendix D estimator against the closed-form posterior and log p(x) of pPCA."""
import math

import pytest
import torch

from vae_utils import elbo, hmc, importance, linear_gaussian, marginal
from vae_utils.importance import log_weights
from vae_utils.models import VAEConfig, build


@pytest.fixture
def ppca():
    """A 3-D latent pPCA with a correlated posterior, and 8 datapoints drawn from it."""
    model = linear_gaussian.random_model(x_dim=5, z_dim=3, s=0.7, seed=0)
    x, _ = model.sample(8, generator=torch.Generator().manual_seed(1))
    return model, x


def test_leapfrog_is_reversible_and_nearly_conserves_energy(ppca):
    model, x = ppca
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 3, generator=g, dtype=torch.float64)
    r0 = torch.randn(8, 3, generator=g, dtype=torch.float64)
    eps = torch.full((8,), 0.01, dtype=torch.float64)
    lp0, g0 = hmc.log_joint_and_grad(model, x, z0)
    z1, r1, lp1, g1 = hmc.leapfrog(model, x, z0, r0, g0, eps, 50)
    z2, r2, _, _ = hmc.leapfrog(model, x, z1, -r1, g1, eps, 50)  # flip the momentum: come back
    torch.testing.assert_close(z2, z0)
    torch.testing.assert_close(-r2, r0)
    h0, h1 = -lp0 + 0.5 * (r0**2).sum(-1), -lp1 + 0.5 * (r1**2).sum(-1)
    assert (h1 - h0).abs().max() < 0.05  # the error of the integrator is O(eps^2)
    assert (z1 - z0).abs().max() > 0.1  # and it did move


def test_leapfrog_needs_at_least_one_step(ppca):
    model, x = ppca
    z = torch.zeros(8, 3, dtype=torch.float64)
    lp, grad = hmc.log_joint_and_grad(model, x, z)
    with pytest.raises(ValueError, match=r"n_steps=0: a leapfrog trajectory needs at least one step; "
                                         r"pass an integer n_steps >= 1"):
        hmc.leapfrog(model, x, z, torch.zeros_like(z), grad, torch.full((8,), 0.1, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match=r"n_leapfrog=0: .* pass an integer n_leapfrog >= 1"):
        hmc.run(model, x, hmc.init_chains(z), 5, n_leapfrog=0)


def test_log_joint_has_one_home_and_is_the_posterior_up_to_log_px(ppca):
    """elbo.log_joint is elbo.log_joint, and log p(x, z) - log p(x) = log p(z|x) for pPCA."""
    model, x = ppca
    assert elbo.log_joint is elbo.log_joint
    z = torch.randn(4, 8, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    m, S = model.posterior(x)
    torch.testing.assert_close(elbo.log_joint(model, x, z) - model.log_marginal(x),
                               torch.distributions.MultivariateNormal(m, S).log_prob(z))


def test_gradient_is_that_of_the_log_posterior(ppca):
    """grad_z log p(x, z) = grad_z log p(z|x) = -S^-1 (z - m) for the Gaussian posterior N(m, S)."""
    model, x = ppca
    z = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, grad = hmc.log_joint_and_grad(model, x, z)
    m, S = model.posterior(x)
    torch.testing.assert_close(grad, -(z - m) @ torch.linalg.inv(S))


def test_hmc_recovers_the_exact_posterior_and_reaches_the_target_acceptance(ppca):
    model, x = ppca
    z, chains = hmc.posterior_samples(model, x, n_samples=4000, n_chains=20, burn_in=100,
                                      generator=torch.Generator().manual_seed(0))
    assert z.shape == (4000, 8, 3)
    m, S = model.posterior(x)
    assert (z.mean(0) - m).abs().max() < 0.04  # posterior sd is 0.3 to 0.45; about 1000 effective samples
    c = z - z.mean(0)
    cov = torch.einsum("lbi,lbj->bij", c, c) / len(z)
    assert (cov - S).abs().max() < 0.03
    assert abs(chains.accept_rate.mean().item() - 0.9) < 0.05


def test_step_size_adapts_towards_the_target(ppca):
    model, x = ppca
    g = torch.Generator().manual_seed(0)
    for start in (1e-3, 3.0):  # far too small and far too large
        chains = hmc.init_chains(torch.zeros(4, 8, 3, dtype=torch.float64), start)
        chains, _ = hmc.run(model, x, chains, 200, n_leapfrog=5, target_accept=0.8, generator=g, keep=False)
        chains, _ = hmc.run(model, x, chains, 100, n_leapfrog=5, adapt=False, generator=g, keep=False)
        assert abs(chains.accept_rate.mean().item() - 0.8) < 0.07
        assert 0.05 < chains.step_size.median().item() < 1.0


def test_same_seed_same_chains(ppca):
    model, x = ppca
    runs = [hmc.posterior_samples(model, x, 40, n_chains=4, burn_in=10,
                                  generator=torch.Generator().manual_seed(3))[0] for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_init_from_prior_resamples_towards_the_posterior(ppca):
    model, x = ppca
    z = hmc.init_from_prior(model, x, n_chains=2000, n_candidates=2000,
                            generator=torch.Generator().manual_seed(0))
    m, _ = model.posterior(x)
    assert z.shape == (2000, 8, 3)
    err = (z.mean(0) - m).abs()  # prior sd is 1; posterior sd 0.3 to 0.45
    assert err.median() < 0.05 and err.max() < 0.5  # approximate where the prior puts few candidates


def test_fitted_gaussian_density_matches_torch():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 4, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.0, 0.0], [0.5, 0.3, 0.0], [0.2, -0.1, 0.2]], dtype=torch.float64)
    mean, chol = marginal.fit_gaussian(z, jitter=0.0)
    cov = chol @ chol.transpose(-1, -2)
    c = z - z.mean(0)
    torch.testing.assert_close(cov, torch.einsum("lbi,lbj->bij", c, c) / 500)
    ref = torch.distributions.MultivariateNormal(mean, scale_tril=chol).log_prob(z)
    torch.testing.assert_close(marginal.log_gaussian(z, mean, chol), ref)


def test_appendix_d_recovers_exact_log_px(ppca):
    model, x = ppca
    est = marginal.appendix_d_log_px(model, x, n_samples=500, n_chains=20, burn_in=100,
                                     generator=torch.Generator().manual_seed(0))
    err = est - model.log_marginal(x)
    assert err.abs().max() < 0.06 and abs(err.mean().item()) < 0.02


def test_iwae_bounds_from_weights_rise_to_exact_log_px(ppca):
    model, x = ppca  # encode() gives the posterior's diagonal: a good but imperfect proposal
    g = torch.Generator().manual_seed(0)
    lw = importance.importance_log_weights(model, x, 6000, chunk=700, generator=g)
    torch.testing.assert_close(importance.iwae_bound_from_weights(lw, 1), lw.mean(0))  # K = 1: the ELBO
    torch.testing.assert_close(importance.iwae_bound_from_weights(lw, 6000),
                               torch.logsumexp(lw, 0) - math.log(6000))
    exact = model.log_marginal(x)
    L = [importance.iwae_bound_from_weights(lw, k).mean().item() for k in (1, 10, 100, 6000)]
    assert L[0] < L[1] < L[2] < exact.mean().item() + 0.01
    assert abs(L[3] - exact.mean().item()) < 0.01
    torch.testing.assert_close(L[0], model.elbo(x, *model.encode(x)).mean().item(), atol=0.02, rtol=0)


def test_iwae_bound_from_weights_needs_k_at_most_the_number_of_weights():
    lw = torch.zeros(10, 3)
    torch.testing.assert_close(importance.iwae_bound_from_weights(lw, 10), torch.zeros(3))
    for k in (11, 0):
        with pytest.raises(ValueError, match=rf"k={k}, but log_w holds K=10 weights per datapoint: "
                                             r"L_k needs an integer 1 <= k <= K"):
            importance.iwae_bound_from_weights(lw, k)


def test_log_mean_exp():
    a = torch.tensor([[0.0, 1.0], [math.log(3.0), 1.0]], dtype=torch.float64)
    torch.testing.assert_close(importance.log_mean_exp(a), torch.tensor([math.log(2.0), 1.0], dtype=torch.float64))


@pytest.mark.parametrize("rows", [2000, 16, 1])  # one pass per chunk; 2 samples per pass; 1
def test_importance_log_weights_are_those_of_log_weights(ppca, rows):
    model, x = ppca
    a = importance.importance_log_weights(model, x, 30, chunk=7, generator=torch.Generator().manual_seed(4),
                                        rows=rows)
    g = torch.Generator().manual_seed(4)
    b = torch.cat([log_weights(model, x, n, g) for n in (7, 7, 7, 7, 2)])
    torch.testing.assert_close(a, b)


def test_importance_log_weights_of_a_vae_in_passes_are_those_of_log_weights():
    """A Bernoulli VAE, 5 digits x 300 samples in passes of 10 decoder rows: the same weights."""
    model = build(VAEConfig(x_dim=12, z_dim=3, hidden=(16,)), seed=0)
    x = (torch.rand(5, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    a = importance.importance_log_weights(model, x, 300, chunk=120, generator=torch.Generator().manual_seed(2),
                                        rows=10)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        b = torch.cat([log_weights(model, x, n, g) for n in (120, 120, 60)])
    torch.testing.assert_close(a, b)


def test_fitted_proposal_is_exact_when_it_is_the_posterior(ppca):
    """With q_F = p(z|x) every weight p(x, z) / q_F(z) equals p(x): zero variance."""
    model, x = ppca
    m, S = model.posterior(x)
    chol = torch.linalg.cholesky(S).expand(8, 3, 3)
    est = marginal.fitted_proposal_log_px(model, x, m, chol, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(est, model.log_marginal(x))
    z, _ = hmc.posterior_samples(model, x, 400, 20, 100, generator=torch.Generator().manual_seed(1))
    est = marginal.fitted_proposal_log_px(model, x, *marginal.fit_gaussian(z), 2000,
                                          torch.Generator().manual_seed(2))
    assert (est - model.log_marginal(x)).abs().max() < 0.02


def test_effective_sample_size_of_equal_and_of_one_dominant_weight():
    lw = torch.zeros(50, 2, dtype=torch.float64)
    lw[0, 1] = 100.0  # one weight e^100 times the others
    torch.testing.assert_close(importance.effective_sample_size(lw), torch.tensor([50.0, 1.0], dtype=torch.float64))
