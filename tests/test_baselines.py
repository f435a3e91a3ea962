"""Wake-sleep, Monte Carlo EM and the Figure 3 training loop: each update does what it claims."""
import dataclasses

import pytest
import torch

from vae_utils import compare, elbo, evaluate, marginal, mcem, wake_sleep
from vae_utils import train as T
from vae_utils.models import VAEConfig

SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), init="default")


def _grads(model):
    return {name: p.grad is not None and p.grad.abs().sum().item() > 0 for name, p in model.named_parameters()}


def test_wake_trains_only_the_decoder_and_sleep_only_the_encoder(binary_data):
    model = T.build(SMALL)
    g = torch.Generator().manual_seed(0)
    wake_sleep.wake_loss(model, binary_data.x[:50], g).backward()
    assert all(v == name.startswith("decoder") for name, v in _grads(model).items())
    model.zero_grad(set_to_none=True)
    wake_sleep.sleep_loss(model, 50, g).backward()
    assert all(v == name.startswith("encoder") for name, v in _grads(model).items())


def test_dreams_are_draws_from_the_decoder():
    model = T.build(SMALL)
    x, z = wake_sleep.dream(model, 20000, torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= {0.0, 1.0} and z.shape == (20000, 2)
    torch.testing.assert_close(x.mean(0), model.mean(z).mean(0), atol=0.02, rtol=0)
    assert abs(z.std().item() - 1) < 0.02


def test_sleep_phase_fits_q_to_the_models_posterior(binary_data):
    """With the decoder frozen, sleep steps raise E[log q(z|x)] over dreams (x, z) ~ p(x, z)."""
    model = T.build(SMALL)
    with torch.no_grad():  # a decoder whose posteriors are much narrower than the prior
        model.decoder.net[-1].weight.mul_(5)
    for p in model.decoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.encoder.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    before = -wake_sleep.sleep_loss(model, 5000, torch.Generator().manual_seed(9)).item()
    for _ in range(200):
        loss = wake_sleep.sleep_loss(model, 100, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = -wake_sleep.sleep_loss(model, 5000, torch.Generator().manual_seed(9)).item()
    assert after > before + 1


def test_wake_sleep_learns_the_data(binary_data):
    model = T.build(SMALL)
    cfg = T.TrainConfig(epochs=15, optimizer="adam", lr=3e-3)
    before = evaluate.lower_bound(model, binary_data)
    T.train(model, binary_data, dataclasses.replace(cfg, algorithm="wake-sleep"), progress=False)
    after = evaluate.lower_bound(model, binary_data)
    assert after > before + 4  # from about 20 log 2 = 13.9 nats towards the data's 4-5 nats


def test_m_step_raises_log_joint_at_the_fixed_sample(binary_data):
    model = T.build(SMALL)
    x = binary_data.x[:100]
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    before = elbo.log_joint(model, x, z).mean().item()
    mcem.m_step(model, opt, x, z, n_updates=5)
    assert elbo.log_joint(model, x, z).mean().item() > before + 0.5
    assert all(p.grad is None for p in model.encoder.parameters())  # MCEM has no encoder


def test_e_step_moves_chains_into_the_posterior(binary_data):
    """From the prior, HMC transitions raise log p(x, z) and tune the step for 90% acceptance."""
    model = T.build(SMALL)
    with torch.no_grad():  # a decoder with a peaked posterior
        model.decoder.net[-1].weight.mul_(5)
    x = binary_data.x[:200]
    g = torch.Generator().manual_seed(0)
    chains = mcem.init_chains(model, 200, g)
    before = elbo.log_joint(model, x, chains.z).mean().item()
    for _ in range(30):
        chains = mcem.e_step(model, x, chains, generator=g)
    assert elbo.log_joint(model, x, chains.z).mean().item() > before + 1
    assert abs(chains.accept_rate.mean().item() - 0.9) < 0.1


def test_mcem_raises_the_marginal_likelihood(binary_data):
    model = T.build(SMALL)
    g = torch.Generator().manual_seed(0)
    x = binary_data.x[:100]
    kw = dict(n_samples=50, n_chains=5, burn_in=30, n_leapfrog=5)
    before = marginal.appendix_d_log_px(model, x, generator=g, **kw).mean().item()
    T.train(model, binary_data, T.TrainConfig(epochs=4, optimizer="adam", lr=3e-3, algorithm="MCEM"), progress=False)
    after = marginal.appendix_d_log_px(model, x, generator=g, **kw).mean().item()
    assert after > before + 4


def test_mcem_keeps_one_chain_per_datapoint_and_moves_only_the_minibatchs(binary_data):
    model = T.build(SMALL)
    cfg = T.TrainConfig(epochs=1, batch_size=512, algorithm="MCEM")
    run = T.start(model, binary_data, cfg)
    before = run.chains.z.clone()
    idx = torch.arange(0, 512, 2)
    T.mcem_step(run, binary_data.x[idx], idx, torch.Generator().manual_seed(0), 1.0)
    moved = (run.chains.z != before).any(-1)
    assert run.chains.z.shape == (512, 2) and not moved[1::2].any() and moved[::2].float().mean() > 0.5


def test_marginal_curve_follows_the_snapshots(binary_data, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    cfg = T.TrainConfig(epochs=1, batch_size=128, algorithm="wake-sleep", snapshot_samples=(256, 512))
    model, h = T.train_or_load("ws", SMALL, cfg, binary_data, progress=False)
    curve = compare.marginal_curve(model, h, binary_data.x[:20], torch.Generator().manual_seed(0),
                                   n_samples=20, n_chains=4, burn_in=10, n_leapfrog=3)
    assert curve.shape == (2, 20) and (curve < 0).all()
    model.load_state_dict(h.snapshots[256])
    first = marginal.appendix_d_log_px(model, binary_data.x[:20], generator=torch.Generator().manual_seed(0),
                                       n_samples=20, n_chains=4, burn_in=10, n_leapfrog=3)
    torch.testing.assert_close(curve[0], first)
