"""The tools of notebook 05's comparison: standard errors, wall-clock time, MCEM's chains, and
the two-sided check of an estimate of log p(x) (Appendix D against importance sampling with q_F)."""
import math

import pytest
import torch

from vae_utils import compare, linear_gaussian, marginal
from vae_utils import train as T
from vae_utils.config import TrainConfig
from vae_utils.elbo import log_joint
from vae_utils.models import VAEConfig
from vae_utils.run import History

SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), init="default")


def test_mean_se_is_the_mean_and_s_over_root_n():
    mean, se = compare.mean_se(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # s^2 = ((1.5^2 + 0.5^2) * 2) / 3 = 5/3; se = sqrt(5/3) / 2
    assert mean.item() == pytest.approx(2.5) and se.item() == pytest.approx(math.sqrt(5 / 3) / 2)
    means, ses = compare.mean_se(torch.tensor([[0.0, 2.0], [1.0, 1.0]]), dim=0)
    torch.testing.assert_close(means, torch.tensor([0.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(ses, torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 values"):
        compare.mean_se(torch.tensor([1.0]))


def test_paired_standard_error_removes_what_the_datapoints_share():
    """Two estimators that differ by 0.1 plus small noise, on datapoints whose values spread
    over 100 nats: the paired standard error sees the noise, the unpaired one the spread."""
    g = torch.Generator().manual_seed(0)
    truth = 100 * torch.randn(400, generator=g, dtype=torch.float64)
    a = truth + 0.1 + 0.01 * torch.randn(400, generator=g, dtype=torch.float64)
    b = truth + 0.01 * torch.randn(400, generator=g, dtype=torch.float64)
    diff, se = compare.mean_se(a - b)
    assert abs(diff.item() - 0.1) < 3 * se.item() and se.item() < 0.002  # sqrt(2) 0.01 / 20 = 0.0007
    assert compare.mean_se(a)[1].item() > 2  # 100 / 20 = 5


def test_seconds_at_interpolates_the_recorded_epochs():
    h = History(samples=[100, 200], epoch=[1, 2], train=[0.0, 0.0], test=[0.0, 0.0], seconds=[10.0, 30.0])
    assert compare.seconds_at(h, [0, 50, 100, 150, 200]).tolist() == [0.0, 5.0, 10.0, 20.0, 30.0]


def test_cached_chains_are_those_the_mcem_run_ended_with(binary_data, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    cfg = TrainConfig(epochs=2, batch_size=128, algorithm="MCEM")
    T.train_or_load("mcem", SMALL, cfg, binary_data, progress=False)
    chains = compare.cached_chains("mcem", SMALL, cfg, binary_data)
    run = T.train(T.build(SMALL), binary_data, cfg, progress=False)  # the same run, not cached
    assert chains.z.shape == (512, 2)
    for name in ("z", "step_size", "accept_rate"):
        torch.testing.assert_close(getattr(chains, name), getattr(run.chains, name))
    assert not torch.equal(chains.step_size, torch.full_like(chains.step_size, 0.05))  # adapted from 0.05
    with pytest.raises(LookupError, match="no cached run 'mcem'"):
        compare.cached_chains("mcem", SMALL, TrainConfig(epochs=3, batch_size=128, algorithm="MCEM"), binary_data)
    ws = TrainConfig(epochs=1, batch_size=128, algorithm="wake-sleep")
    T.train_or_load("ws", SMALL, ws, binary_data, progress=False)
    with pytest.raises(ValueError, match="only MCEM runs"):
        compare.cached_chains("ws", SMALL, ws, binary_data)


def test_fitted_proposal_in_chunks_is_the_same_sum():
    """K = 10 weights drawn 3, 3, 3, 1 at a time: the log-mean-exp of those same ten weights."""
    model = linear_gaussian.random_model(x_dim=5, z_dim=3, s=0.7, seed=0)
    x, _ = model.sample(4, generator=torch.Generator().manual_seed(1))
    mean, s = model.posterior(x)
    chol = torch.linalg.cholesky(2 * s).expand(4, 3, 3)  # a proposal twice as wide as the posterior
    est = marginal.fitted_proposal_log_px(model, x, mean, chol, 10, torch.Generator().manual_seed(2), chunk=3)
    g = torch.Generator().manual_seed(2)
    eps = torch.cat([torch.randn((n, 4, 3, 1), generator=g, dtype=x.dtype) for n in (3, 3, 3, 1)])
    z = mean + (chol @ eps).squeeze(-1)
    log_w = log_joint(model, x, z) - marginal.log_gaussian(z, mean, chol)
    torch.testing.assert_close(est, torch.logsumexp(log_w, 0) - math.log(10))


def test_bracket_holds_the_exact_log_px_of_ppca():
    """HMC, q_F, then Appendix D (errs up on average) and importance sampling with q_F (errs
    down on average): on pPCA both land within 0.02 nats of the closed form, on either side."""
    model = linear_gaussian.random_model(x_dim=5, z_dim=3, s=0.7, seed=0)
    x, _ = model.sample(50, generator=torch.Generator().manual_seed(1))
    ad, fis = marginal.bracket_log_px(model, x, n_samples=400, n_chains=20, burn_in=100, n_importance=2000,
                                      generator=torch.Generator().manual_seed(3))
    exact = model.log_marginal(x)
    assert ad.shape == fis.shape == (50,)
    assert (ad - exact).abs().max() < 0.05 and (fis - exact).abs().max() < 0.02
    assert abs((ad - exact).mean().item()) < 0.02
    d, se = compare.mean_se(fis - exact)
    assert d.item() < 3 * se.item() + 1e-4  # a lower bound on average: not above log p(x) beyond noise


@pytest.mark.parametrize("algorithm, per_sample", [
    # layers (in -> out): encoder e1 20->16, e2 16->4; decoder d1 2->16, d2 16->20. A layer's
    # forward, weight gradient and input gradient each cost 2 * in * out per sample:
    # e1 640, e2 128, d1 64, d2 640.
    # AEVB: forward and weight gradient of all four, input gradient of all but e1 (x needs none)
    ("AEVB", 2 * (640 + 128 + 64 + 640) + (640 + 64 + 128)),
    # wake: encoder forward (no gradient); decoder forward, weight gradients, input gradient of d2.
    # sleep: decoder forward to dream; encoder forward, weight gradients, input gradient of e2
    ("wake-sleep", 768 + (704 + 704 + 640) + 704 + (768 + 768 + 128)),
    # E: 11 gradients of log p(x, z) in z (1 + 10 leapfrog steps): decoder forward and input
    # gradients. M: 5 updates, each decoder forward, weight gradients, input gradient of d2
    ("MCEM", 11 * (704 + 704) + 5 * (704 + 704 + 640)),
])
def test_flops_per_sample_count_every_matrix_product_of_a_step(binary_data, algorithm, per_sample):
    model = T.build(SMALL)
    cfg = TrainConfig(batch_size=64, algorithm=algorithm)
    assert compare.flops_per_sample(model, binary_data, cfg) == per_sample
    torch.testing.assert_close(dict(model.state_dict()), dict(T.build(SMALL).state_dict()))  # a copy trained
