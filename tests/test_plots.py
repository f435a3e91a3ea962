"""vae_utils.plots: image grids, bound curves, the latent grid of Figure 4 and scatters."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.stats import norm  # noqa: E402

from vae_utils import manifold, plots  # noqa: E402
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
    z = manifold.latent_grid(4)
    assert z.shape == (16, 2)
    u = norm.cdf(z)
    np.testing.assert_allclose(np.unique(u[:, 0]), [0.125, 0.375, 0.625, 0.875], rtol=1e-5)
    assert (np.diff(z[:4, 0]) > 0).all()  # z1 grows along a row
    assert z[0, 1] > z[-1, 1]  # z2 shrinks down the rows (as on a plot's y-axis)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-6)


def test_decode_grid_decodes_the_latent_grid():
    m = VAE(VAEConfig(z_dim=2, hidden=(8,), init="default")).eval()
    out = manifold.decode_grid(m, n=3)
    with torch.no_grad():
        expected = m.mean(torch.as_tensor(manifold.latent_grid(3), dtype=torch.float32)).reshape(9, 28, 28)
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


def test_plot_bounds_panels_one_panel_per_run_on_shared_axes():
    runs = {f"J = {j}": History(samples=[1000, 2000, 4000], epoch=[1, 2, 4], train=[10.0 * j, 20.0 * j, 30.0 * j],
                                test=[9.0 * j, 18.0 * j, 27.0 * j]) for j in (1, 2, 3)}
    fig, axes = plots.plot_bounds_panels(runs, ncols=2)
    assert axes.shape == (2, 2) and not axes[1, 1].get_visible()
    for ax, (label, h) in zip(axes.flat, runs.items()):
        assert ax.get_title() == label and ax.get_xscale() == "log"
        test_line, train_line = ax.lines
        np.testing.assert_array_equal(test_line.get_ydata(), h.test)
        np.testing.assert_array_equal(train_line.get_ydata(), h.train)
        assert test_line.get_linestyle() == "-" and train_line.get_linestyle() == "--"
    assert axes[0, 0].get_ylim() == axes[1, 0].get_ylim()  # shared y: J = 3's 90 shows on J = 1's panel
    assert axes[0, 0].get_ylim()[1] >= 90
    assert axes[0, 0].get_ylabel() and axes[1, 0].get_xlabel()  # outer panels carry the labels


SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.2, 0.3], [-0.5, 0.1]])


def test_inside_hull_of_a_square():
    g = np.random.default_rng(0)
    p = g.uniform(-2, 2, size=(2000, 2))
    p = p[np.abs(np.abs(p).max(1) - 1) > 1e-6]  # none on the boundary
    np.testing.assert_array_equal(manifold.inside_hull(p, SQUARE), np.abs(p).max(1) < 1)


def test_inside_hull_counts_the_grid_cells_of_the_square():
    n = 12
    z = norm.ppf((np.arange(n) + 0.5) / n)
    k = int((np.abs(z) < 1).sum())  # (i + 1/2) / 12 in (Phi(-1), Phi(1)) = (0.159, 0.841): i = 2..9
    assert manifold.inside_hull(manifold.latent_grid(n), SQUARE).sum() == k * k == 64


def test_hull_outline_runs_along_the_boundary():
    out = manifold.hull_outline(SQUARE, per_edge=10)
    assert out.shape == (4 * 10 + 1, 2)
    np.testing.assert_array_equal(out[0], out[-1])
    np.testing.assert_allclose(np.abs(out).max(1), 1.0)  # every point on the square's edge
    assert {tuple(c) for c in SQUARE[:4]} <= {tuple(p) for p in out}  # the interior codes are not corners


def test_mark_data_on_manifold_washes_out_cells_outside_the_codes():
    n, shape = 6, (4, 3)
    _, ax = plt.subplots()
    plots.show_images(np.zeros((n * n, *shape)), nrow=n, ax=ax)
    inside = manifold.mark_data_on_manifold(ax, SQUARE, n, shape, wash=0.6)
    np.testing.assert_array_equal(inside, manifold.inside_hull(manifold.latent_grid(n), SQUARE))
    overlay = ax.images[-1].get_array()
    for k in range(n * n):
        r, c = divmod(k, n)
        alpha = overlay[r * 5:r * 5 + 4, c * 4:c * 4 + 3, 3]
        assert np.all(alpha == (0.0 if inside[k] else 0.6))
    dots = ax.collections[-1].get_offsets()  # the codes, on the Phi scale: z = 0 at the centre
    cols, rows = manifold.manifold_tick_positions(n, SQUARE[:, 0], shape)[0], manifold.manifold_tick_positions(n, SQUARE[:, 1], shape)[1]
    np.testing.assert_allclose(dots, np.stack([cols, rows], 1))
    centre = manifold.manifold_tick_positions(n, [0.0], shape)
    assert centre[0][0] == pytest.approx((n * 4 - 1 - 1) / 2) and centre[1][0] == pytest.approx((n * 5 - 1 - 1) / 2)


def test_box_grid_rows_run_down_z2():
    z = manifold.box_grid([0.0, 1.0, 2.0], [5.0, -1.0])
    np.testing.assert_array_equal(z, [[0, 5], [1, 5], [2, 5], [0, -1], [1, -1], [2, -1]])


def test_show_decoded_box_centres_each_image_on_its_code():
    torch.manual_seed(0)
    m = VAE(VAEConfig(x_dim=12, z_dim=2, hidden=(8,), init="default")).eval()
    shape, z1, z2 = (4, 3), np.linspace(-1, 1, 5), np.linspace(0, 2, 3)
    _, ax = plt.subplots()
    inside = manifold.show_decoded_box(m, z1, z2, shape, codes=SQUARE, ax=ax)
    np.testing.assert_array_equal(inside, manifold.inside_hull(manifold.box_grid(z1, z2), SQUARE))
    img = ax.images[0]
    left, right, bottom, top = img.get_extent()
    grid = img.get_array()
    sx, sy = (right - left) / grid.shape[1], (top - bottom) / grid.shape[0]  # z per pixel
    # the centre of cell (row r, column k) is at pixel (r * 5 + 1.5, k * 4 + 1): there z = (z1[k], z2[-1 - r])
    for r in range(3):
        for k in range(5):
            x = left + (k * 4 + 1 + 0.5) * sx
            y = top - (r * 5 + 1.5 + 0.5) * sy
            assert x == pytest.approx(z1[k]) and y == pytest.approx(z2[::-1][r])
    with torch.no_grad():
        first = m.mean(torch.tensor([[-1.0, 2.0]])).reshape(shape).numpy()
    np.testing.assert_allclose(grid[:4, :3], first, rtol=1e-6)  # top left: the smallest z1, the largest z2
    assert ax.images[1].get_array()[0, 0, 3] == (0.0 if inside[0] else 0.6)
    assert ax.get_aspect() == pytest.approx(sx / sy)  # square image pixels: faces keep their shape
