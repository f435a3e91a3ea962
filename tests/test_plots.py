"""vae_utils.plots: image grids, bound curves, the latent grid of Figure 4 and scatters."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.stats import norm  # noqa: E402

from vae_utils import plots  # noqa: E402
from vae_utils.models import VAE, VAEConfig  # noqa: E402
from vae_utils.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_image_grid_layout_and_padding():
    imgs = np.stack([np.full((2, 3), i, dtype=np.float32) for i in range(5)])
    g = plots.image_grid(imgs, nrow=3, pad=1)
    assert g.shape == (2 * 3 - 1, 3 * 4 - 1)
    assert g[0, 0] == 0 and g[0, 4] == 1 and g[3, 0] == 3 and g[3, 4] == 4
    assert g[2, 0] == 1 and g[3, 8] == 1  # padding and the empty sixth cell are white


def test_latent_grid_is_inverse_cdf_of_regular_grid():
    z = plots.latent_grid(4)
    assert z.shape == (16, 2)
    u = norm.cdf(z)
    np.testing.assert_allclose(np.unique(u[:, 0]), [0.125, 0.375, 0.625, 0.875], rtol=1e-5)
    assert (np.diff(z[:4, 0]) > 0).all()  # z1 grows along a row
    assert z[0, 1] > z[-1, 1]  # z2 shrinks down the rows (as on a plot's y-axis)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-6)


def test_decode_grid_decodes_the_latent_grid():
    m = VAE(VAEConfig(z_dim=2, hidden=(8,), init="default")).eval()
    out = plots.decode_grid(m, n=3)
    with torch.no_grad():
        expected = m.mean(torch.as_tensor(plots.latent_grid(3), dtype=torch.float32)).reshape(9, 28, 28)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-6)


def test_plot_bounds_log_x_and_lines():
    h = History(samples=[60000, 120000, 180000], epoch=[1, 2, 3], train=[-150, -130, -120],
                test=[-140, -125, -118])
    ax = plots.plot_bounds({"a": h, "b": h})
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 4
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), h.test)
    ax = plots.plot_bounds({"a": h}, train=False)
    assert len(ax.lines) == 1


def test_plot_kl_per_dimension_sorts():
    ax = plots.plot_kl_per_dimension(torch.tensor([0.0, 3.0, 1.0]))
    heights = [p.get_height() for p in ax.patches]
    assert heights == [3.0, 1.0, 0.0]


def test_latent_scatter_with_std_ellipses():
    g = np.random.default_rng(0)
    mu, std, y = g.normal(size=(100, 2)), np.full((100, 2), 0.2), g.integers(0, 10, 100)
    ax = plots.latent_scatter(mu, y, std=std, highlight=[0, 5])
    assert len(ax.patches) == 2
    assert ax.patches[0].width == pytest.approx(0.4)
