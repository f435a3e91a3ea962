"""Notebook 07's autoencoders: masking noise, a reconstruction-only loss with no KL term, the
training loop's "autoencoder" algorithm, and the rate and distortion of a VAE."""
import math

import pytest
import torch

from vae_utils import autoencoder, train as T
from vae_utils.config import TrainConfig
from vae_utils.elbo import kl_to_standard_normal
from vae_utils.evaluate import lower_bound, rate_distortion
from vae_utils.models import VAEConfig, build


def _model(seed=0):
    return build(VAEConfig(x_dim=20, z_dim=3, hidden=(16,), activation="relu", init="default"), seed).double()


def test_masking_noise_zeroes_about_a_fraction_p_and_keeps_the_rest_unchanged():
    x = torch.rand(200, 50, generator=torch.Generator().manual_seed(0)) + 0.5  # no zeros before
    y = autoencoder.masking_noise(x, 0.3, torch.Generator().manual_seed(1))
    masked = y == 0
    p_hat, se = masked.double().mean().item(), math.sqrt(0.3 * 0.7 / x.numel())
    assert abs(p_hat - 0.3) < 4 * se  # binomial: 4 standard errors
    assert torch.equal(y[~masked], x[~masked])  # kept pixels are not rescaled (not dropout)
    assert autoencoder.masking_noise(x, 0.0) is x


def test_the_autoencoder_loss_is_the_decoders_log_likelihood_at_the_mean_code_and_has_no_kl():
    model, x = _model(), torch.rand(8, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mu, logvar = model.encode(x)
    torch.testing.assert_close(autoencoder.reconstruction(model, x), model.log_likelihood(x, mu))
    # no KL and no sampling: the encoder's log-variance head gets exactly zero gradient
    autoencoder.reconstruction(model, x).sum().backward()
    last = model.encoder.net[-1]
    z_dim = model.config.z_dim
    assert last.weight.grad[z_dim:].abs().max() == 0 and last.bias.grad[z_dim:].abs().max() == 0
    assert last.weight.grad[:z_dim].abs().max() > 0  # the mean head does learn


def test_the_denoising_loss_scores_the_clean_x_from_a_masked_input():
    model, x = _model(), torch.rand(8, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    noisy = autoencoder.masking_noise(x, 0.5, torch.Generator().manual_seed(4))
    expected = model.log_likelihood(x, model.encode(noisy)[0])
    torch.testing.assert_close(autoencoder.reconstruction(model, x, 0.5, torch.Generator().manual_seed(4)), expected)
    assert not torch.allclose(expected, autoencoder.reconstruction(model, x))  # the mask changed something


def test_training_an_autoencoder_raises_its_reconstruction_and_records_no_test_bound(binary_data):
    model = build(VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="relu", init="default"), 0)
    before = autoencoder.reconstruction(model, binary_data.x).mean().item()
    run = T.train(model, binary_data, TrainConfig(epochs=5, optimizer="adam", lr=1e-2, algorithm="autoencoder"),
                  test=binary_data, progress=False)
    after = autoencoder.reconstruction(model, binary_data.x).mean().item()
    assert after > before + 2.0  # two prototypes of 20 pixels: a code learns them
    assert all(math.isnan(t) for t in run.history.test)
    assert before < run.history.train[-1] < after  # an epoch average of a model still improving


def test_a_step_returns_the_minibatchs_reconstruction_before_its_update():
    model, x = _model(), torch.rand(8, 20, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = autoencoder.reconstruction(model, x).mean()
    got = autoencoder.step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, None, 0.0)
    torch.testing.assert_close(got, expected.detach())
    assert autoencoder.reconstruction(model, x).mean() > expected  # and the step went uphill


def test_a_denoising_run_differs_from_a_plain_one_and_each_is_reproducible(binary_data):
    def fit(p):
        model = build(VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="relu", init="default"), 0)
        T.train(model, binary_data, TrainConfig(epochs=2, optimizer="adam", lr=1e-2, algorithm="autoencoder",
                                                corruption=p), progress=False)
        return model.encoder.net[0].weight.detach().clone()

    assert torch.equal(fit(0.25), fit(0.25))
    assert not torch.equal(fit(0.25), fit(0.0))


@pytest.mark.parametrize("bad", [{"corruption": 1.0}, {"corruption": -0.1}, {"corruption": 0.2},
                                 {"algorithm": "autoencoder", "kl_weight": 0.5},
                                 {"kl_weight": -1.0}, {"kl_weight": float("inf")}])
def test_bad_autoencoder_settings_are_refused_with_the_field_named(bad):
    with pytest.raises(ValueError, match=next(iter(k for k in bad if k != "algorithm"))):
        TrainConfig(**bad)


def test_beta_above_one_is_accepted_and_corruption_in_the_cache_key():
    assert TrainConfig(kl_weight=4).kl_weight == 4.0
    assert TrainConfig(algorithm="autoencoder", corruption=0.25).to_dict()["corruption"] == 0.25


def test_rate_plus_distortion_is_minus_the_bound_with_the_same_seed(binary_data):
    model = build(VAEConfig(x_dim=20, z_dim=3, hidden=(16,), activation="relu", init="default"), 1)
    for n in (1, 3):
        rate, distortion = rate_distortion(model, binary_data, batch_size=100, n_samples=n, seed=5)
        assert -(rate + distortion) == pytest.approx(lower_bound(model, binary_data, 100, n, seed=5), rel=1e-6)
    mu, logvar = model.encode(binary_data.x)
    assert rate == pytest.approx(kl_to_standard_normal(mu, logvar).mean().item(), rel=1e-6)  # exact: no sampling
