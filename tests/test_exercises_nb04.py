"""Notebook 04's exercises beyond the generic tests: the references agree with the package, and
the probes name a mistake however it is written (another range, numpy, float32, another order)."""
import math

import numpy as np
import torch
from scipy.stats import norm

from vae_utils import latent
from vae_utils.exercises import CORRECT, MISTAKE
from vae_utils.exercises import nb04 as ex
from vae_utils.manifold import latent_grid


# -- 04.1 -------------------------------------------------------------------------------------

def test_phi_grid_is_the_grid_the_notebook_decodes():
    for n in (2, 5, 20):
        assert np.allclose(ex.phi_grid(n).numpy(), latent_grid(n), atol=1e-6)


def test_a_numpy_float32_grid_is_correct():
    def phi_grid(n):
        z = norm.ppf((np.arange(n) + 0.5) / n)
        z1, z2 = np.meshgrid(z, z[::-1])
        return np.stack([z1.ravel(), z2.ravel()], 1).astype(np.float32)
    assert ex.grid.check(phi_grid).status == CORRECT


def test_any_linear_grid_is_named_linear_whatever_its_range_or_order():
    for lo, hi, order in ((-3.0, 3.0, "xy"), (-2.0, 2.0, "ij"), (-1.5, 1.5, "xy")):
        def phi_grid(n, lo=lo, hi=hi, order=order):
            z = torch.linspace(lo, hi, n)
            z1, z2 = torch.meshgrid(z, z.flip(0), indexing=order)
            return torch.stack([z1.reshape(-1), z2.reshape(-1)], 1)
        fb = ex.grid.check(phi_grid)
        assert fb.status == MISTAKE and fb.mistake == "linear in z", fb


def test_any_grid_with_infinities_is_named_endpoints_included():
    def phi_grid(n):   # u = 0, 1/n, ..., (n-1)/n: only the left endpoint, and the other order
        z = torch.distributions.Normal(0.0, 1.0).icdf(torch.arange(n, dtype=torch.float64) / n)
        z1, z2 = torch.meshgrid(z, z, indexing="ij")
        return torch.stack([z1.reshape(-1), z2.reshape(-1)], 1)
    fb = ex.grid.check(phi_grid)
    assert fb.status == MISTAKE and fb.mistake == "endpoints included", fb


# -- 04.2 -------------------------------------------------------------------------------------

def test_second_moment_matches_the_notebooks_test_1():
    g = np.random.default_rng(0)
    mu, std = g.normal(size=(30, 2)) + 0.5, np.exp(g.normal(size=(30, 2)) - 2)
    got = ex.aggregate_second_moment(torch.tensor(mu), torch.tensor(2 * np.log(std))).numpy()
    assert np.allclose(got, (mu**2 + std**2).mean(0))


def test_a_biased_variance_is_named_centred_too():
    fb = ex.moment.check(lambda mu, logvar: mu.var(0, unbiased=False) + logvar.exp().mean(0))
    assert fb.status == MISTAKE and fb.mistake == "variance of the means", fb


def test_codes_matched_to_the_prior_have_second_moment_one():
    std = np.full((20000, 2), 0.1)
    mu = latent.prior_matched_codes(std, seed=0)
    m2 = ex.aggregate_second_moment(torch.tensor(mu), torch.tensor(2 * np.log(std))).numpy()
    assert np.all(np.abs(m2 - 1) < 3 * math.sqrt(2 / len(mu)))


# -- 04.3 -------------------------------------------------------------------------------------

def test_log_q_agrees_with_the_package():
    for z, mu, logvar in ex._log_q_cases():
        want = latent.aggregate_log_density(z.numpy(), mu.numpy(), (0.5 * logvar).exp().numpy())
        assert np.allclose(ex.aggregate_log_density(z, mu, logvar).numpy(), want, rtol=1e-10)


def test_log_q_is_finite_with_log_densities_near_minus_1e4():
    z = torch.tensor([[12.0, -9.0]], dtype=torch.float64)
    mu, logvar = torch.zeros(3, 2, dtype=torch.float64), torch.full((3, 2), -5.0, dtype=torch.float64)
    out = ex.aggregate_log_density(z, mu, logvar)
    assert torch.isfinite(out).all() and out.item() < -1e4


def test_a_numpy_naive_log_q_is_named_underflow():
    def aggregate_log_density(z, mu, logvar):
        z, mu, logvar = (np.asarray(a) for a in (z, mu, logvar))
        log_k = -0.5 * (np.log(2 * np.pi) + logvar + (z[:, None] - mu[None]) ** 2 / np.exp(logvar)).sum(-1)
        with np.errstate(divide="ignore"):
            return np.log(np.exp(log_k).mean(1))
    fb = ex.log_q.check(aggregate_log_density)
    assert fb.status == MISTAKE and fb.mistake == "exp underflows", fb


# -- 04.4 -------------------------------------------------------------------------------------

def test_the_split_adds_up_to_appendix_b_and_agrees_with_the_package():
    for mu, logvar, eps, log_q in ex._surgery_cases():
        info, mismatch = ex.elbo_surgery(mu, logvar, eps, log_q)
        std = (0.5 * logvar).exp().numpy()
        assert np.isclose(float(info + mismatch), latent.gaussian_kl_per_code(mu.numpy(), std).mean())
        z = (mu + (0.5 * logvar).exp() * eps).numpy()
        assert np.isclose(float(mismatch), latent.log_density_ratio(z, mu.numpy(), std).mean())


def test_the_mismatch_is_near_zero_for_codes_matched_to_the_prior():
    g = torch.Generator().manual_seed(1)
    std = np.full((3000, 2), 0.3)
    mu = torch.tensor(latent.prior_matched_codes(std, seed=2))
    logvar = torch.tensor(2 * np.log(std))
    wide = 2 * mu                                      # spread twice as wide as the prior
    eps = torch.randn(3000, 2, generator=g, dtype=torch.float64)
    _, matched = ex.elbo_surgery(mu, logvar, eps, ex.aggregate_log_density)
    _, mismatched = ex.elbo_surgery(wide, logvar, eps, ex.aggregate_log_density)
    assert abs(float(matched)) < 0.1 and float(mismatched) > 0.5


# -- added with the fresh reader's review of the exercises ----------------------------------

def test_u_outside_the_unit_interval_is_named_by_its_nans():
    def phi_grid(n):   # scipy, u = (a + 1.5)/n: the last u is above 1
        z = norm.ppf((np.arange(n) + 1.5) / n)
        z1, z2 = np.meshgrid(z, z[::-1])
        return np.stack([z1.ravel(), z2.ravel()], 1)
    fb = ex.grid.check(phi_grid)
    assert fb.status == MISTAKE and fb.mistake == "u outside [0, 1]", fb
    assert "outside [0, 1]" in fb.message


def test_unnamed_orders_of_the_right_points_are_told_the_order_is_wrong():
    def swapped(n):
        return ex.phi_grid(n)[:, [1, 0]]

    def ij_without_flip(n):
        z = ex.phi_grid(n)[:n, 0]
        z1, z2 = torch.meshgrid(z, z, indexing="ij")
        return torch.stack([z1.reshape(-1), z2.reshape(-1)], 1)

    def shuffled(n):
        return ex.phi_grid(n)[torch.randperm(n * n, generator=torch.Generator().manual_seed(n))]

    for answer in (swapped, ij_without_flip, shuffled):
        fb = ex.grid.check(answer)
        assert fb.status == MISTAKE and fb.mistake == "points in another order", (answer.__name__, fb)
        assert "your points are right, their order is not" in fb.message


def test_the_named_orders_keep_their_own_messages():
    for name, f in (("z2 rising down the rows", ex._z2_rising), ("meshgrid ij", ex._meshgrid_ij)):
        assert ex.grid.check(f).mistake == name


def test_any_answer_that_ignores_mu_is_told_it_does_not_use_the_means():
    for answer in (lambda mu, logvar: np.exp(np.asarray(logvar)).mean(0),
                   lambda mu, logvar: torch.ones(mu.shape[1], dtype=torch.float64)):
        fb = ex.moment.check(answer)
        assert fb.status == MISTAKE and fb.mistake == "no means", fb


def test_log_q_reproduces_the_package_on_float32_codes_as_the_notebook_suggests():
    g = np.random.default_rng(3)       # the notebook's mu, std are float32 arrays from encode_means
    mu, std = g.normal(size=(300, 2)).astype(np.float32), np.exp(g.normal(size=(300, 2)) - 2).astype(np.float32)
    z = g.standard_normal((5, 2))
    got = ex.aggregate_log_density(torch.tensor(z), torch.tensor(mu, dtype=torch.float64),
                                   torch.tensor(2 * np.log(std), dtype=torch.float64)).numpy()
    assert np.allclose(got, latent.aggregate_log_density(z, mu, std), rtol=1e-5)


def test_a_list_pair_is_accepted_and_the_monte_carlo_information_is_consistent():
    assert ex.surgery.check(lambda *a: list(ex.elbo_surgery(*a))).passed
    # the "I by Monte Carlo" variant is a valid estimator: on many codes it agrees with the split's I
    g = torch.Generator().manual_seed(4)
    mu = 1.5 * torch.randn(2000, 2, generator=g, dtype=torch.float64)
    logvar = torch.full((2000, 2), -1.0, dtype=torch.float64)
    eps = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    i_split, _ = ex.elbo_surgery(mu, logvar, eps, ex.aggregate_log_density)
    i_mc, _ = ex._info_by_monte_carlo(mu, logvar, eps, ex.aggregate_log_density)
    assert abs(float(i_split) - float(i_mc)) < 0.1
