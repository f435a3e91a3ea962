"""Notebook 06's model without the data: the Frey Face VAE (28 x 20 pixels, Gaussian decoder)
through the plots and widgets that notebook 04 uses for 28 x 28 digits."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae_utils import manifold
from vae_utils import plots as P
from vae_utils import widgets as W
from vae_utils.models import VAE, VAEConfig

SHAPE = (28, 20)


@pytest.fixture(scope="module")
def frey_model():
    torch.manual_seed(0)
    config = VAEConfig(x_dim=560, z_dim=2, hidden=(16,), decoder="gaussian", init="default")
    return VAE(config).eval()


def _png_size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size  # (width, height)


def test_gaussian_log_likelihood_is_torch_normal(frey_model):
    x = torch.rand(4, 560)
    z = torch.randn(3, 4, 2)  # (samples, batch, z_dim)
    with torch.no_grad():
        mu, logvar = frey_model.decode(z)
        expected = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
        got = frey_model.log_likelihood(x, z)
    assert got.shape == (3, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_means_in_unit_interval(frey_model):
    with torch.no_grad():
        m = frey_model.mean(10 * torch.randn(50, 2))  # far from the prior: still in (0, 1)
    assert m.shape == (50, 560) and 0 <= m.min() and m.max() <= 1


def test_manifold_of_faces(frey_model):
    grid = manifold.decode_grid(frey_model, n=4, image_shape=SHAPE)
    with torch.no_grad():
        expected = frey_model.mean(torch.as_tensor(manifold.latent_grid(4), dtype=torch.float32))
    np.testing.assert_allclose(grid, expected.reshape(16, *SHAPE).numpy(), rtol=1e-6)
    assert P.image_grid(grid, nrow=4).shape == (4 * 29 - 1, 4 * 21 - 1)


def test_widgets_take_28x20(frey_model):
    g = np.random.default_rng(0)
    mu, labels = g.normal(size=(30, 2)).astype(np.float32), g.integers(0, 10, 30)
    ex = W.LatentExplorer(frey_model, mu, labels, image_shape=SHAPE, scale=4)
    assert _png_size(ex.image.value) == (20 * 4, 28 * 4)
    before = ex.image.value
    ex.z1.value = 2.0
    assert ex.redraws == 2 and ex.image.value != before

    x = torch.rand(30, 560)
    it = W.InterpolationExplorer(frey_model, x, mu, index_a=0, index_b=5, image_shape=SHAPE, steps=5)
    path = it.path()
    np.testing.assert_allclose(path[[0, -1]], W.decode(frey_model, mu[[0, 5]], SHAPE), rtol=1e-6)  # A's and B's codes

    frames = W.manifold_frames(frey_model.config, {0: frey_model.state_dict()}, n=3, image_shape=SHAPE)
    assert frames[0].shape == (3 * 29 - 1, 3 * 21 - 1)


def test_log_variance_bias_gradient_is_the_error_calibration(frey_model):
    """Notebook 06's -D/2: d/db5_i of the average log p(x|z) is the average of
    -1/2 + 1/2 (x_i - mu_i)^2 / sigma_i^2, so where it vanishes each pixel's error term averages -1/2."""
    torch.manual_seed(1)
    x, z = torch.rand(6, 560), torch.randn(6, 2)
    frey_model.zero_grad()
    frey_model.log_likelihood(x, z).mean().backward()
    grad = frey_model.decoder.net[-1].bias.grad[560:]  # the log sigma^2 half of the last layer's bias
    with torch.no_grad():
        mu, logvar = frey_model.decode(z)
        expected = (-0.5 + 0.5 * (x - mu) ** 2 * torch.exp(-logvar)).mean(0)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    frey_model.zero_grad()


def test_decoded_box_of_faces(frey_model):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert manifold.show_decoded_box(frey_model, np.linspace(-2, -1, 3), np.linspace(0, 1, 2), SHAPE, ax=ax) is None
    img = ax.images[0].get_array()
    assert img.shape == (2 * 29 - 1, 3 * 21 - 1)  # 2 rows of 28 x 20 faces, 3 columns, 1 pixel apart
    with torch.no_grad():
        corner = frey_model.mean(torch.tensor([[-1.0, 0.0]])).reshape(SHAPE).numpy()  # largest z1, smallest z2
    np.testing.assert_allclose(img[-28:, -20:], corner, rtol=1e-6)  # sits bottom right
    plt.close("all")
