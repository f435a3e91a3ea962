"""z ticks on a decoded latent_grid (vae_utils.manifold.manifold_tick_positions and friends,
appended for notebook 04): positions checked against the grid's cell centres."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from vae_utils import manifold  # noqa: E402


def test_tick_positions_hit_the_cell_centres():
    n, shape = 5, (28, 20)
    z = np.sort(np.unique(manifold.latent_grid(n)[:, 0])).astype(np.float64)  # the grid's values, increasing
    cols, rows = manifold.manifold_tick_positions(n, z, shape)
    np.testing.assert_allclose(cols, np.arange(n) * 21 + 9.5, rtol=1e-5)  # image a's centre column
    np.testing.assert_allclose(rows, (n - 1 - np.arange(n)) * 29 + 13.5, rtol=1e-5)  # z2 upwards
    # the grid itself agrees: the first row holds the largest z2
    assert manifold.latent_grid(n)[0, 1] == z.max()


def test_tick_positions_are_linear_in_phi():
    c = manifold.manifold_tick_positions(20, [-1.0, 0.0, 1.0])[0]
    np.testing.assert_allclose(c[2] - c[1], (norm.cdf(1) - 0.5) * 20 * 29, rtol=1e-9)
    np.testing.assert_allclose(c[1], (20 * 29 - 2) / 2)  # z = 0: the middle pixel of 579


def test_tick_values_in_range_and_apart():
    for n in (6, 12, 20, 40):
        v = manifold.manifold_tick_values(n)
        u = norm.cdf(v)
        assert 0.0 in v and np.all(np.diff(v) > 0)
        assert u.min() >= 0.5 / n - 1e-12 and u.max() <= (n - 0.5) / n + 1e-12
        assert np.all(np.diff(u) >= 0.09 - 1e-12)
    assert list(manifold.manifold_tick_values(20)) == [-1.5, -1, -0.5, 0, 0.5, 1, 1.5]
    assert list(manifold.manifold_tick_values(12, min_sep=0.14)) == [-1, -0.5, 0, 0.5, 1]


def test_label_manifold_axes():
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((20 * 29 - 1, 20 * 29 - 1)))
    ax.set_axis_off()
    manifold.label_manifold_axes(ax, 20)
    assert ax.axison and "z_1" in ax.get_xlabel() and "z_2" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-1.5", "-1", "-0.5", "0", "0.5", "1", "1.5"]
    np.testing.assert_allclose(ax.get_xticks(), manifold.manifold_tick_positions(20, manifold.manifold_tick_values(20))[0])
    assert len(ax.get_xticks(minor=True)) == 20
    plt.close(fig)
