"""Wake-sleep, Monte Carlo EM and the Figure 3 training loop: each update does what it claims."""
import pytest
import torch

from vae_utils import compare, evaluate, hmc, marginal, mcem, wake_sleep
from vae_utils import train as T
from vae_utils.models import VAEConfig

SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), init="default")


pytestmark = pytest.mark.usefixtures("one_thread")


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
    compare.fit("wake-sleep", model, binary_data, cfg)
    after = evaluate.lower_bound(model, binary_data)
    assert after > before + 4  # from about 20 log 2 = 13.9 nats towards the data's 4-5 nats


def test_m_step_raises_log_joint_at_the_fixed_sample(binary_data):
    model = T.build(SMALL)
    x = binary_data.x[:100]
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    before = hmc.log_joint(model, x, z).mean().item()
    mcem.m_step(model, opt, x, z, n_updates=5)
    assert hmc.log_joint(model, x, z).mean().item() > before + 0.5
    assert all(p.grad is None for p in model.encoder.parameters())  # MCEM has no encoder


def test_e_step_moves_chains_into_the_posterior(binary_data):
    """From the prior, HMC transitions raise log p(x, z) and tune the step for 90% acceptance."""
    model = T.build(SMALL)
    with torch.no_grad():  # a decoder with a peaked posterior
        model.decoder.net[-1].weight.mul_(5)
    x = binary_data.x[:200]
    g = torch.Generator().manual_seed(0)
    chains = mcem.init_chains(model, 200, g)
    before = hmc.log_joint(model, x, chains.z).mean().item()
    for _ in range(30):
        chains = mcem.e_step(model, x, chains, generator=g)
    assert hmc.log_joint(model, x, chains.z).mean().item() > before + 1
    assert abs(chains.accept_rate.mean().item() - 0.9) < 0.1


def test_mcem_raises_the_marginal_likelihood(binary_data):
    model = T.build(SMALL)
    g = torch.Generator().manual_seed(0)
    x = binary_data.x[:100]
    kw = dict(n_samples=50, n_chains=5, burn_in=30, n_leapfrog=5)
    before = marginal.appendix_d_log_px(model, x, generator=g, **kw).mean().item()
    compare.fit("MCEM", model, binary_data, T.TrainConfig(epochs=4, optimizer="adam", lr=3e-3))
    after = marginal.appendix_d_log_px(model, x, generator=g, **kw).mean().item()
    assert after > before + 4


def test_fit_aevb_is_algorithm_1_of_train(binary_data):
    """The shared loop's AEVB update is train.train's, bit for bit: same minibatches, same noise."""
    cfg = T.TrainConfig(epochs=2, lr=0.05)
    a, b = T.build(SMALL, seed=1), T.build(SMALL, seed=1)
    T.train(a, binary_data, cfg, progress=False)
    compare.fit("AEVB", b, binary_data, cfg)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_fit_keeps_snapshots_and_is_reproducible(binary_data):
    cfg = T.TrainConfig(epochs=3, batch_size=64)
    runs = []
    for _ in range(2):
        model = T.build(SMALL)
        h = compare.fit("MCEM", model, binary_data, cfg, snapshots=[512, 1024, 1536])
        runs.append((model, h))
    (m1, h1), (m2, h2) = runs
    assert h1.samples == [512, 1024, 1536] and sorted(h1.snapshots) == h1.samples
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    torch.testing.assert_close(h1.snapshots[1536]["decoder.net.0.weight"], m1.decoder.net[0].weight.detach())
    assert not torch.equal(h1.snapshots[512]["decoder.net.0.weight"], h1.snapshots[1536]["decoder.net.0.weight"])


def test_fit_or_load_caches(binary_data, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    cfg = T.TrainConfig(epochs=1, batch_size=128)
    m1, h1 = compare.fit_or_load("ws", "wake-sleep", SMALL, cfg, binary_data, snapshots=[256, 512])
    assert (tmp_path / "ws.pt").exists()
    m2, h2 = compare.fit_or_load("ws", "wake-sleep", SMALL, cfg, binary_data, snapshots=[256, 512])
    assert h2.samples == [256, 512] and all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    curve = compare.marginal_curve(m2, h2, binary_data.x[:20], torch.Generator().manual_seed(0),
                                   n_samples=20, n_chains=4, burn_in=10, n_leapfrog=3)
    assert curve.shape == (2, 20) and (curve < 0).all()


def test_unknown_algorithm_is_refused(binary_data):
    with pytest.raises(ValueError, match="choose one of"):
        compare.fit("EM", T.build(SMALL), binary_data, T.TrainConfig(epochs=1))


def test_snapshots_between_minibatches_are_taken_at_the_next_boundary(binary_data, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    cfg = T.TrainConfig(epochs=1, batch_size=128)
    _, h = compare.fit_or_load("a", "AEVB", SMALL, cfg, binary_data, snapshots=[200, 512])
    assert h.samples == [256, 512]
    mtime = (tmp_path / "a.pt").stat().st_mtime_ns
    compare.fit_or_load("a", "AEVB", SMALL, cfg, binary_data, snapshots=[200, 512])
    assert (tmp_path / "a.pt").stat().st_mtime_ns == mtime  # loaded, not trained again
