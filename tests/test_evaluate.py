"""Likelihood estimates against the exact answer of a conjugate model, and their bookkeeping."""
import math

import torch

from vae_utils import elbo, evaluate
from vae_utils import train as T
from vae_utils.models import VAEConfig


def test_importance_sampling_converges_to_exact_log_px(toy):
    x = torch.zeros(4, 1, dtype=torch.float64)
    est = evaluate.log_likelihood(toy, x, n_samples=5000, batch_size=2, chunk=700)
    assert est.shape == (4,)
    assert (est - toy.exact_log_px()).abs().max().item() < 0.02
    assert est.mean().item() > toy.exact_elbo() + 0.3  # well above the bound


def test_default_passes_cover_every_digit_and_sample(toy):
    """45 digits and K = 2050 are not multiples of the default 20 x 100 pass: nothing is lost."""
    x = torch.zeros(45, 1, dtype=torch.float64)
    est = evaluate.log_likelihood(toy, x, n_samples=2050)
    assert est.shape == (45,)
    err = est - toy.exact_log_px()
    assert err.abs().max().item() < 0.1
    assert abs(err.mean().item()) < 0.015  # a lost block of 50 samples would cost log(2000/2050) = -0.025


def test_estimate_rises_with_k_towards_log_px(toy):
    x = torch.zeros(400, 1, dtype=torch.float64)
    means = [evaluate.log_likelihood(toy, x, k, chunk=50).mean().item() for k in (1, 10, 1000)]
    assert means[0] < means[1] < means[2] <= toy.exact_log_px() + 0.01


def test_lower_bound_is_the_mean_of_estimator_b(binary_data):
    model = T.build(VAEConfig(x_dim=20, z_dim=2, hidden=(8,)))
    lb = evaluate.lower_bound(model, binary_data, batch_size=100, seed=5)
    gen = torch.Generator().manual_seed(5)
    direct = torch.cat([elbo.sgvb_b(model, xb, 1, gen) for xb in binary_data.x.split(100)]).mean()
    assert math.isclose(lb, direct.item(), rel_tol=1e-6)


def test_kl_per_dimension_adds_up_to_the_kl(binary_data):
    model = T.build(VAEConfig(x_dim=20, z_dim=3, hidden=(8,), init="default"))
    per_dim = evaluate.kl_per_dimension(model, binary_data)
    assert per_dim.shape == (3,) and (per_dim >= 0).all()
    mu, logvar = model.encode(binary_data.x)
    total = elbo.kl_to_standard_normal(mu, logvar).mean()
    torch.testing.assert_close(per_dim.sum(), total.detach())


class _FirstUnitsEncoder:
    """An encoder whose posterior mean copies x's first two coordinates; the rest stay at 0."""

    def encode(self, x):
        mu = torch.cat([x[:, :2], 0.05 * x[:, 2:3], torch.zeros(len(x), 2)], 1)
        return mu, torch.zeros_like(mu)


def test_active_units_counts_the_means_that_move_with_x():
    x = torch.randn(5000, 4, generator=torch.Generator().manual_seed(0))
    # variances 1, 1, 0.0025, 0, 0: two units above Burda et al.'s 1e-2, three with 1e-3
    assert evaluate.active_units(_FirstUnitsEncoder(), x) == 2
    assert evaluate.active_units(_FirstUnitsEncoder(), x, threshold=1e-3) == 3
