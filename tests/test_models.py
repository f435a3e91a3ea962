"""The paper's MLPs (Appendix C): the decoders' distributions, initialisation, build, pictures, config errors."""
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal

from vae_utils.elbo import log_normal
from vae_utils.models import (VAE, BernoulliParams, GaussianParams, VAEConfig, build, reconstruct,
                              sample)

SMALL = {"x_dim": 10, "z_dim": 2, "hidden": (8,), "init": "default"}


def small(decoder="bernoulli", seed=0):
    return build(VAEConfig(**SMALL, decoder=decoder), seed=seed)


def test_bernoulli_decoder_is_torch_bernoulli():
    m = small("bernoulli")
    x, z = (torch.rand(5, 10) > 0.5).float(), torch.randn(3, 5, 2)  # L = 3 samples per datapoint
    params = m.decode(z)
    assert isinstance(params, BernoulliParams)
    dist = Bernoulli(logits=params.logits)
    torch.testing.assert_close(m.log_likelihood(x, z), dist.log_prob(x.expand(3, 5, 10)).sum(-1))
    torch.testing.assert_close(m.mean(z), dist.probs)


def test_gaussian_decoder_is_torch_normal_with_sigmoid_means():
    m = small("gaussian")
    x, z = torch.rand(5, 10), 5 * torch.randn(3, 5, 2)
    params = m.decode(z)
    assert isinstance(params, GaussianParams)
    mean, logvar = params  # a tuple: unpacks as before
    assert ((mean > 0) & (mean < 1)).all()
    expected = Normal(mean, (0.5 * logvar).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(m.log_likelihood(x, z), expected)
    torch.testing.assert_close(m.mean(z), mean)


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_log_likelihood_is_bit_identical_to_the_formula_it_replaced(decoder):
    """The training hot path: the same floating-point operations as before the decoders
    owned their log_prob (a frozen copy of that code), so training runs do not change."""
    m = build(VAEConfig(x_dim=30, z_dim=4, hidden=(16, 8), decoder=decoder), seed=2)
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(6, 30, generator=g), torch.randn(2, 6, 4, generator=g)
    out = m.decoder.net(z)
    if decoder == "bernoulli":
        before = -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)
    else:
        mu, logvar = out.chunk(2, dim=-1)
        before = log_normal(x, torch.sigmoid(mu), logvar)
    assert torch.equal(m.log_likelihood(x, z), before)


def test_sample_x_draws_from_p_x_given_z():
    m = small("bernoulli")
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    x = m.sample_x(z.expand(20_000, 4, 2), torch.Generator().manual_seed(2))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(x.mean(0), m.mean(z), atol=0.015, rtol=0)  # sd of the mean <= 0.0035
    m = small("gaussian")
    x = m.sample_x(z, torch.Generator().manual_seed(3))
    mean, logvar = m.decode(z)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(x, mean + (0.5 * logvar).exp() * eps)  # x = mu + sigma eps


def test_sample_prior_is_seeded_standard_normal_in_the_models_dtype():
    m = small().double()
    z = m.sample_prior(5, torch.Generator().manual_seed(4))
    assert z.dtype == torch.float64
    assert torch.equal(z, torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    many = m.sample_prior(100_000, torch.Generator().manual_seed(5))
    assert many.mean(0).abs().max() < 0.02 and (many.std(0) - 1).abs().max() < 0.02


def test_reconstruct_and_sample_are_the_notebooks_pictures():
    """What notebook 03 defined for itself: E[x|z] at z = mu(x), and at z ~ N(0, I) from a seeded CPU generator."""
    m = small()
    x = (torch.rand(7, 10, generator=torch.Generator().manual_seed(6)) > 0.5).float()
    mu, _ = m.encode(x)
    assert torch.equal(reconstruct(m, x), m.mean(mu).detach())
    z = torch.randn(9, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample(m, 9, seed=3), m.mean(z).detach())
    assert not sample(m, 9, seed=3).requires_grad and not torch.equal(sample(m, 9, seed=4), sample(m, 9, seed=3))


def test_build_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    build(VAEConfig(**SMALL), seed=7)
    assert torch.equal(torch.rand(5), expected)


def test_build_same_seed_same_parameters_as_seeding_by_hand():
    """Same seed, same parameters; and the parameters `torch.manual_seed(seed); VAE(config)` gave
    (train.build before it moved here), so cached models and notebooks keep their numbers."""
    config = VAEConfig(x_dim=12, z_dim=3, hidden=(16,))
    a, b, c = build(config, seed=3), build(config, seed=3), build(config, seed=4)
    torch.manual_seed(3)
    by_hand = VAE(config)
    for name, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[name]) and torch.equal(p, by_hand.state_dict()[name])
    assert not torch.equal(a.decoder.net[0].weight, c.decoder.net[0].weight)


def test_paper_init_is_normal_with_std_001():
    m = build(VAEConfig(hidden=(500,), z_dim=20), seed=0)
    params = torch.cat([p.flatten() for p in m.parameters()])
    assert abs(params.mean().item()) < 1e-4
    assert abs(params.std().item() - 0.01) < 1e-4


def test_default_init_keeps_pytorch_init():
    m = build(VAEConfig(hidden=(400,), activation="relu", init="default"), seed=0)
    w = m.encoder.net[0].weight
    assert w.abs().max().item() <= 1 / 784**0.5 + 1e-6  # kaiming-uniform bound of nn.Linear
    assert isinstance(m.encoder.net[1], torch.nn.ReLU)


def test_paper_architecture_is_one_tanh_layer_of_500():
    m = VAE(VAEConfig())
    layers = [type(l).__name__ for l in m.encoder.net]
    assert layers == ["Linear", "Tanh", "Linear"]
    assert m.encoder.net[0].out_features == 500 and m.encoder.net[2].out_features == 2 * 20


@pytest.mark.parametrize("bad, word", [({"activation": "gelu"}, "activation"),
                                       ({"decoder": "poisson"}, "decoder"),
                                       ({"init": "xavier"}, "init")])
def test_bad_config_names_the_field(bad, word):
    with pytest.raises(ValueError, match=word):
        VAEConfig(**bad)


def test_config_round_trips_through_a_dict():
    c = VAEConfig(hidden=[200, 100], z_dim=5)
    assert VAEConfig(**{**c.to_dict(), "hidden": tuple(c.to_dict()["hidden"])}) == c


@pytest.mark.parametrize("bad, word", [({"z_dim": 0}, "z_dim=0"), ({"x_dim": -3}, "x_dim=-3"),
                                       ({"hidden": (0,)}, r"hidden=\(0,\)"), ({"hidden": 500}, "hidden=500"),
                                       ({"activation": "gelu"}, "activation"), ({"decoder": "poisson"}, "decoder")])
def test_bad_model_config_is_refused_naming_the_field(bad, word):
    with pytest.raises(ValueError, match=word):
        VAEConfig(**bad)
