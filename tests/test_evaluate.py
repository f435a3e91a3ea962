"""Likelihood estimates against the exact answer of a conjugate model, and their bookkeeping."""
import math

import pytest
import torch

from vae_utils import elbo, evaluate, importance
from vae_utils.data import Split, draw_binary
from vae_utils.models import VAEConfig, build

LOG_2PI = math.log(2 * math.pi)


def _log_likelihood_before(model, x, n_samples, seed):
    """A frozen copy of evaluate.log_likelihood as it was at commit 4d8377f, with its CPU defaults
    (passes of 20 digits x 100 samples) and elbo.log_weights inlined: the published k = 5000
    result came from this code. Do not "improve" it: it is the reference."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for xb in x.split(20):
            acc = torch.full((len(xb),), -math.inf, dtype=x.dtype)
            for k0 in range(0, n_samples, 100):
                mu, logvar = model.encode(xb)
                eps = torch.randn((min(100, n_samples - k0), *mu.shape), generator=gen, dtype=mu.dtype)
                z = mu + torch.exp(0.5 * logvar) * eps
                log_prior = -0.5 * (LOG_2PI + z**2).sum(-1)
                log_q = -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)
                lw = model.log_likelihood(xb, z) + log_prior - log_q
                acc = torch.logaddexp(acc, torch.logsumexp(lw, 0))
            out.append(acc - math.log(n_samples))
    return torch.cat(out)


def _binary(n, d, seed):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


@pytest.mark.parametrize("n, k, seed", [(45, 5000, 0), (45, 250, 3), (13, 7, 1)])
def test_log_likelihood_is_bit_identical_to_the_published_implementation(n, k, seed):
    """Default passes on a CPU: the same draws, the same operations, the same bits; 45 digits
    and K = 250 are not multiples of a pass, K = 7 is less than one."""
    model = build(VAEConfig(x_dim=20, z_dim=3, hidden=(16,), init="default"), seed=1)
    x = _binary(n, 20, seed=2)
    expected = _log_likelihood_before(model, x, k, seed)
    assert torch.equal(evaluate.log_likelihood(model, x, k, seed=seed), expected)
    assert torch.equal(evaluate.log_likelihood(model, Split(x, None, (4, 5)), k, seed=seed), expected)


def test_log_likelihood_is_bit_identical_for_a_gaussian_decoder_and_float64(toy):
    model = build(VAEConfig(x_dim=30, z_dim=3, hidden=(16, 8), decoder="gaussian", activation="relu"), seed=5)
    x = torch.rand(23, 30, generator=torch.Generator().manual_seed(3))
    assert torch.equal(evaluate.log_likelihood(model, x, 1030, seed=4), _log_likelihood_before(model, x, 1030, 4))
    x = torch.zeros(45, 1, dtype=torch.float64)
    assert torch.equal(evaluate.log_likelihood(toy, x, 2050, seed=2), _log_likelihood_before(toy, x, 2050, 2))


def test_zero_samples_is_a_clear_error(toy):
    with pytest.raises(ValueError, match=r"n_samples=0: an estimate needs at least one sample"):
        evaluate.log_likelihood(toy, torch.zeros(3, 1, dtype=torch.float64), n_samples=0)


def test_unknown_estimator_is_a_clear_error(binary_data):
    model = build(VAEConfig(x_dim=20, z_dim=2, hidden=(8,)))
    with pytest.raises(ValueError, match=r"estimator='C' is not an SGVB estimator; pass one of \['A', 'B'\]"):
        evaluate.lower_bound(model, binary_data, estimator="C")


def test_importance_sampling_converges_to_exact_log_px(toy):
    x = torch.zeros(4, 1, dtype=torch.float64)
    est = evaluate.log_likelihood(toy, x, n_samples=5000, rows=1400, chunk=700)  # 2 points x 700 samples
    assert (est - toy.exact_log_px()).abs().max().item() < 0.02
    assert est.mean().item() > toy.exact_elbo() + 0.3  # well above the bound


def test_default_passes_cover_every_digit_and_sample(toy):
    """45 digits and K = 2050 are not multiples of the default 20 x 100 pass: nothing is lost."""
    x = torch.zeros(45, 1, dtype=torch.float64)
    err = evaluate.log_likelihood(toy, x, n_samples=2050) - toy.exact_log_px()
    assert err.abs().max().item() < 0.1
    assert abs(err.mean().item()) < 0.015  # a lost block of 50 samples would cost log(2000/2050) = -0.025


def test_pass_size_is_one_knob_per_device():
    assert importance.pass_rows("cpu") == importance.CPU_ROWS == 2000
    assert importance.pass_rows(torch.device("cuda", 0)) == importance.pass_rows("mps") == importance.GPU_ROWS


def test_estimate_rises_with_k_towards_log_px(toy):
    x = torch.zeros(400, 1, dtype=torch.float64)
    means = [evaluate.log_likelihood(toy, x, k, chunk=50).mean().item() for k in (1, 10, 1000)]
    assert means[0] < means[1] < means[2] <= toy.exact_log_px() + 0.01


def _grey(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, 20, generator=g), None, (4, 5), dynamic=True)


def test_a_dynamic_split_is_binarized_with_the_callers_seed():
    """One generator seeded with `seed` binarizes the split, then draws the estimator's samples."""
    model = build(VAEConfig(x_dim=20, z_dim=3, hidden=(8,), init="default"), seed=0)
    grey = _grey()
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        x = draw_binary(grey.x, g)
        expected = importance.log_likelihood(model, x, 30, generator=g)
        assert torch.equal(evaluate.log_likelihood(model, grey, 30, seed=seed), expected)
        g = torch.Generator().manual_seed(seed)
        x = draw_binary(grey.x, g)
        bound = torch.cat([elbo.sgvb_b(model, xb, 1, g) for xb in x.split(100)]).sum().item() / len(x)
        assert math.isclose(evaluate.lower_bound(model, grey, batch_size=100, seed=seed), bound, rel_tol=1e-6)
        mu, logvar = model.encode(draw_binary(grey.x, torch.Generator().manual_seed(seed)))
        kl = elbo.kl_to_standard_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1)).mean(0).detach()
        torch.testing.assert_close(evaluate.kl_per_dimension(model, grey, seed=seed), kl)
    assert not torch.equal(evaluate.kl_per_dimension(model, grey, seed=0),
                           evaluate.kl_per_dimension(model, grey, seed=1))


def test_lower_bound_is_the_mean_of_estimator_b(binary_data):
    model = build(VAEConfig(x_dim=20, z_dim=2, hidden=(8,)))
    lb = evaluate.lower_bound(model, binary_data, batch_size=100, seed=5)
    gen = torch.Generator().manual_seed(5)
    direct = torch.cat([elbo.sgvb_b(model, xb, 1, gen) for xb in binary_data.x.split(100)]).mean()
    assert math.isclose(lb, direct.item(), rel_tol=1e-6)


def test_kl_per_dimension_is_each_dimensions_kl(binary_data):
    model = build(VAEConfig(x_dim=20, z_dim=3, hidden=(8,), init="default"))
    per_dim = evaluate.kl_per_dimension(model, binary_data, batch_size=100)
    mu, logvar = (t.detach() for t in model.encode(binary_data.x))
    for j in range(3):  # Appendix B for one dimension: -1/2 (1 + log s^2 - m^2 - s^2)
        expected = (-0.5 * (1 + logvar[:, j] - mu[:, j] ** 2 - logvar[:, j].exp())).mean()
        torch.testing.assert_close(per_dim[j], expected)
    torch.testing.assert_close(per_dim.sum(), elbo.kl_to_standard_normal(mu, logvar).mean())


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


def test_lower_bound_needs_a_sample():
    model = build(VAEConfig(x_dim=6, z_dim=2, hidden=(4,)))
    with pytest.raises(ValueError, match="n_samples=0"):
        evaluate.lower_bound(model, torch.rand(5, 6), n_samples=0)
