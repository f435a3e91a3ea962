"""The paper's MLPs (Appendix C): shapes, initialisation, likelihoods, configuration errors."""
import pytest
import torch
from torch.distributions import Bernoulli, Normal

from vae_utils.models import VAE, VAEConfig


def test_shapes_for_both_decoders():
    for decoder in ("bernoulli", "gaussian"):
        m = VAE(VAEConfig(x_dim=12, z_dim=3, hidden=(7, 5), decoder=decoder))
        x = torch.rand(4, 12)
        mu, logvar = m.encode(x)
        assert mu.shape == logvar.shape == (4, 3)
        z = torch.randn(6, 4, 3)  # L = 6 samples per datapoint
        assert m.log_likelihood(x, z).shape == (6, 4)
        assert m.mean(z[0]).shape == (4, 12)


def test_paper_init_is_normal_with_std_001():
    torch.manual_seed(0)
    m = VAE(VAEConfig(hidden=(500,), z_dim=20))
    params = torch.cat([p.flatten() for p in m.parameters()])
    assert abs(params.mean().item()) < 1e-4
    assert abs(params.std().item() - 0.01) < 1e-4


def test_default_init_keeps_pytorch_init():
    torch.manual_seed(0)
    m = VAE(VAEConfig(hidden=(400,), activation="relu", init="default"))
    w = m.encoder.net[0].weight
    assert w.abs().max().item() <= 1 / 784**0.5 + 1e-6  # kaiming-uniform bound of nn.Linear
    assert isinstance(m.encoder.net[1], torch.nn.ReLU)


def test_paper_architecture_is_one_tanh_layer_of_500():
    m = VAE(VAEConfig())
    layers = [type(l).__name__ for l in m.encoder.net]
    assert layers == ["Linear", "Tanh", "Linear"]
    assert m.encoder.net[0].out_features == 500 and m.encoder.net[2].out_features == 2 * 20


def test_bernoulli_log_likelihood_matches_torch_distributions():
    torch.manual_seed(0)
    m = VAE(VAEConfig(x_dim=10, z_dim=2, hidden=(8,), init="default"))
    x, z = (torch.rand(5, 10) > 0.5).float(), torch.randn(3, 5, 2)
    expected = Bernoulli(logits=m.decode(z)).log_prob(x.expand(3, 5, 10)).sum(-1)
    torch.testing.assert_close(m.log_likelihood(x, z), expected)


def test_gaussian_decoder_has_sigmoid_means_and_matching_likelihood():
    torch.manual_seed(0)
    m = VAE(VAEConfig(x_dim=10, z_dim=2, hidden=(8,), decoder="gaussian", init="default"))
    x, z = torch.rand(5, 10), 5 * torch.randn(3, 5, 2)
    mean, logvar = m.decode(z)
    assert ((mean > 0) & (mean < 1)).all()
    expected = Normal(mean, (0.5 * logvar).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(m.log_likelihood(x, z), expected)


@pytest.mark.parametrize("bad, word", [({"activation": "gelu"}, "activation"),
                                       ({"decoder": "poisson"}, "decoder"),
                                       ({"init": "xavier"}, "init")])
def test_bad_config_names_the_field(bad, word):
    with pytest.raises(ValueError, match=word):
        VAEConfig(**bad)


def test_config_round_trips_through_a_dict():
    c = VAEConfig(hidden=[200, 100], z_dim=5)
    assert VAEConfig(**{**c.to_dict(), "hidden": tuple(c.to_dict()["hidden"])}) == c
