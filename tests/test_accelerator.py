"""The package on an accelerator (CUDA or Apple's MPS), when vae_utils.device() finds one.

Each test runs a piece of the package on that device and checks it against the CPU or a
known answer. On a machine without an accelerator the whole module is skipped, saying so.
"""
import pytest
import torch

import vae_utils
from vae_utils import evaluate, hmc, train as T
from vae_utils.data import Split
from vae_utils.models import VAEConfig, build

DEV = vae_utils.device()
pytestmark = [pytest.mark.accelerator,
              pytest.mark.skipif(DEV.type == "cpu", reason="no CUDA or MPS device: vae_utils.device() is the CPU")]
SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), init="default")


@pytest.fixture
def data(binary_data):
    return Split(binary_data.x.to(DEV), binary_data.y.to(DEV), binary_data.image_shape)


def test_one_epoch_trains_on_the_device(data):
    model = build(SMALL, seed=0, device=DEV)
    before = evaluate.lower_bound(model, data)
    run = T.train(model, data, T.TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=1e-2), progress=False)
    assert next(model.parameters()).device.type == DEV.type and run.step == 3 * 16
    assert evaluate.lower_bound(model, data) > before + 1


def test_bound_and_log_likelihood_agree_with_the_cpu(data):
    model = build(SMALL, seed=0, device=DEV)
    cpu = build(SMALL, seed=0)
    ll = evaluate.log_likelihood(model, data.x[:50], n_samples=2000, seed=0).cpu()
    ll_cpu = evaluate.log_likelihood(cpu, data.x[:50].cpu(), n_samples=2000, seed=0)
    assert abs(ll.mean() - ll_cpu.mean()) < 0.05  # different random streams, same estimate
    assert abs(evaluate.lower_bound(model, data, n_samples=50) - evaluate.lower_bound(cpu, data.x.cpu(), n_samples=50)) < 0.2


def test_hmc_and_an_mcem_fit_run_on_the_device(data):
    model = build(SMALL, seed=0, device=DEV)
    g = torch.Generator(device=DEV).manual_seed(0)
    z, chains = hmc.posterior_samples(model, data.x[:20], n_samples=20, n_chains=4, burn_in=20, n_leapfrog=3, generator=g)
    assert z.device.type == DEV.type and torch.isfinite(z).all() and (chains.accept_rate > 0.3).all()
    run = T.train(model, data, T.TrainConfig(epochs=1, batch_size=128, algorithm="MCEM"), progress=False)
    assert run.chains.z.device.type == DEV.type


def test_widget_decoding_on_the_device(data):
    from vae_utils import widgets

    model = build(SMALL, seed=0, device=DEV)
    img = widgets.decode_point(model, 0.5, -1.0, image_shape=(4, 5))
    cpu = widgets.decode_point(build(SMALL, seed=0), 0.5, -1.0, image_shape=(4, 5))
    assert abs(img - cpu).max() < 1e-4
