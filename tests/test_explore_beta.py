"""vae_utils.explore_beta without a browser: what a beta change shows (the projected map, the
shared prior draws, the highlighted (R, D) point, the readout's values), and the widget built
headless with its slider moved by setting .value (what a front end does)."""
import re

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("agg")

from vae_utils import explore_beta as X  # noqa: E402
from vae_utils.models import VAEConfig, build  # noqa: E402
from vae_utils.widgets import decode  # noqa: E402


def _plane(n=4000, J=20, seed=0):
    """Codes lying exactly on a known plane of R^J: centre + a u + b v, u and v orthonormal,
    a and b of mean 0 and uncorrelated in the sample (so u and v are its principal
    directions), Var(a) about 9 > Var(b) about 1."""
    g = np.random.default_rng(seed)
    q, _ = np.linalg.qr(g.normal(size=(J, J)))
    u, v, centre = q[:, 0], q[:, 1], g.normal(size=J) * 5
    a, b = 3 * g.normal(size=n), g.normal(size=n)
    a, b = a - a.mean(), b - b.mean()
    b = b - (a @ b) / (a @ a) * a
    return centre + a[:, None] * u + b[:, None] * v, a, b, u, v, centre


def test_project_codes_recovers_the_plane_the_codes_lie_on():
    codes, a, b, u, v, centre = _plane()
    p = X.project_codes(codes)
    assert p.points.shape == (len(codes), 2) and p.axes.shape == (2, codes.shape[1])
    # the axes are +-u then +-v (the larger variance first), orthonormal
    np.testing.assert_allclose(np.abs(p.axes @ u), [1, 0], atol=1e-8)
    np.testing.assert_allclose(np.abs(p.axes @ v), [0, 1], atol=1e-8)
    # the coordinates are the centred a and b, up to each axis's sign
    sign = np.sign(p.axes @ u)[0], np.sign(p.axes @ v)[1]
    np.testing.assert_allclose(sign[0] * p.points[:, 0], a, atol=1e-8)
    np.testing.assert_allclose(sign[1] * p.points[:, 1], b, atol=1e-8)
    np.testing.assert_allclose(p.centre, codes.mean(0), atol=1e-9)
    # all the variance lies on the plane, split as Var(a) : Var(b)
    np.testing.assert_allclose(p.explained, [a.var() / (a.var() + b.var()), b.var() / (a.var() + b.var())],
                               rtol=1e-8)


def test_off_plane_variance_is_what_the_map_does_not_show():
    codes, *_ = _plane()
    g = np.random.default_rng(1)
    noisy = codes + g.normal(size=codes.shape) * np.sqrt(0.5)  # adds 0.5 * 20 = 10 of variance off (and on) the plane
    p = X.project_codes(noisy)
    total = noisy.var(0, ddof=1).sum()
    np.testing.assert_allclose(p.explained.sum(), p.points.var(0, ddof=1).sum() / total, rtol=1e-8)
    assert 0.45 < p.explained.sum() < 0.6  # (9 + 1 + 2 * 0.5) / (9 + 1 + 10) = 0.55


def test_the_prior_circle_is_drawn_around_the_image_of_z0_and_holds_95_percent_of_the_prior():
    from matplotlib.figure import Figure

    codes, *_ = _plane()
    codes = codes + 5.0  # off-centre codes: their mean, the map's origin, is far from z = 0
    p = X.project_codes(codes)
    image_of_0 = (np.zeros(codes.shape[1]) - codes.mean(0)) @ p.axes.T  # z = 0 mapped as the codes are
    assert np.linalg.norm(image_of_0) > 3  # so a circle at the map's origin would be far off
    np.testing.assert_allclose(X.prior_origin(p), image_of_0, atol=1e-9)

    ax = Figure().add_subplot()
    X.draw_map(ax, p, None, lim=20.0, title="t")
    dashed = [l for l in ax.lines if l.get_linestyle() == "--"]
    assert len(dashed) == 1
    x, y = dashed[0].get_xdata(), dashed[0].get_ydata()
    np.testing.assert_allclose(np.hypot(x - image_of_0[0], y - image_of_0[1]), X.PRIOR_95_RADIUS, rtol=1e-9)
    np.testing.assert_allclose(X.PRIOR_95_RADIUS, 2.4477, atol=1e-4)
    plus = [l for l in ax.lines if l.get_marker() == "+"]
    assert len(plus) == 1
    np.testing.assert_allclose([plus[0].get_xdata()[0], plus[0].get_ydata()[0]], image_of_0, atol=1e-9)

    # z ~ N(0, I), projected as the codes are, falls inside the drawn circle 95% of the time
    z = np.random.default_rng(2).standard_normal((200_000, codes.shape[1]))
    on_map = (z - p.centre) @ p.axes.T
    centre = np.array([x.min() + x.max(), y.min() + y.max()]) / 2  # the drawn circle's centre
    inside = (np.hypot(*(on_map - centre).T) < X.PRIOR_95_RADIUS).mean()
    assert abs(inside - 0.95) < 0.003  # binomial sd 0.0005


def test_sampled_code_variance_is_the_law_of_total_variance():
    g = np.random.default_rng(4)
    n, J = 4000, 3
    mu = g.normal(size=(n, J)) @ np.array([[1.0, 0.8, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.3]])  # correlated means
    sd = np.exp(g.normal(-0.5, 0.3, size=(n, J)))
    u = np.array([[1.0, 0.0, 0.0], [0.6, -0.8, 0.0]])  # a unit and a diagonal with a negative component
    # per unit: Var_x(mu_j) + E_x sd_j^2 (ddof=0)
    np.testing.assert_allclose(X.sampled_code_variance(mu, sd, np.eye(J)), mu.var(0) + (sd**2).mean(0), rtol=1e-12)
    # against the variance of sampled codes z = mu + sd * eps, 100 draws of eps per digit
    z = mu[None] + sd[None] * g.standard_normal((100, n, J))
    sampled = (z.reshape(-1, J) @ u.T).var(0)
    np.testing.assert_allclose(X.sampled_code_variance(mu, sd, u), sampled, rtol=0.01)
    # the noise term alone: sum_j u_j^2 sd_j^2, averaged (0.36 sd_1^2 + 0.64 sd_2^2 along the diagonal)
    np.testing.assert_allclose(X.sampled_code_variance(np.zeros_like(mu), sd, u)[1],
                               (0.36 * sd[:, 0]**2 + 0.64 * sd[:, 1]**2).mean(), rtol=1e-12)


def test_map_radius_is_the_rms_radius_of_the_pca_map():
    g = np.random.default_rng(3)
    sd = np.array([3.0, 2.0, 1.0, 0.5, 0.5])
    codes = g.normal(size=(20_000, 5)) * sd + 7.0
    p = X.project_codes(codes)
    np.testing.assert_allclose(X.map_radius(codes), np.sqrt(p.points.var(0, ddof=1).sum()), rtol=1e-9)
    np.testing.assert_allclose(X.map_radius(codes), np.sqrt(9 + 4), rtol=0.02)  # the two largest variances


def test_map_limits_share_one_scale_but_give_an_outlier_its_own():
    extents = {0.0: 16.2, 0.1: 4.3, 0.5: 3.4, 1.0: 3.0, 2.0: 2.7, 4.0: 2.5}
    points = {b: np.array([[e, 0.0], [0.0, -e / 2]]) for b, e in extents.items()}
    lims = X.map_limits(points, quantile=1.0)
    assert lims == {0.0: 16.5, 0.1: 4.5, 0.5: 4.5, 1.0: 4.5, 2.0: 4.5, 4.0: 4.5}
    # all within twice the median: one scale for all, the largest extent rounded up
    assert X.map_limits({k: v for k, v in points.items() if k > 0}, quantile=1.0) == {
        0.1: 4.5, 0.5: 4.5, 1.0: 4.5, 2.0: 4.5, 4.0: 4.5}
    assert X.map_limits({1: np.array([[3.0, 0.0]])}, quantile=1.0) == {1: 3.0}  # a multiple stays
    # an extent that must show (the prior's circle) widens a map whose points do not reach it
    assert X.map_limits({1: np.array([[1.0, 0.0]]), 2: np.array([[1.2, 0.0]])}, quantile=1.0,
                        must_show={1: 2.6, 2: 0.5}) == {1: 3.0, 2: 3.0}


def test_prior_draws_are_seeded_standard_normal():
    z = X.prior_draws(50_000, 4, seed=5)
    assert z.shape == (50_000, 4) and z.dtype == np.float32
    np.testing.assert_array_equal(z, X.prior_draws(50_000, 4, seed=5))
    assert not np.array_equal(z, X.prior_draws(50_000, 4, seed=6))
    np.testing.assert_allclose(z.mean(0), 0, atol=0.02)
    np.testing.assert_allclose(z.std(0), 1, atol=0.02)


@pytest.fixture(scope="module")
def models():
    """Three small untrained VAEs (J = 3), a different one per beta, with decoders that depend
    strongly on z."""
    out = {}
    for k, b in enumerate((0.0, 1.0, 4.0)):
        m = build(VAEConfig(z_dim=3, hidden=(16,), init="default"), seed=k).eval()
        with torch.no_grad():
            m.decoder.net[0].weight.mul_(5)
        out[b] = m
    return out


def test_decode_draws_uses_the_same_draws_for_every_model(models):
    z = X.prior_draws(9, 3)
    m = models[1.0]
    same = X.decode_draws({"a": m, "b": m}, z)
    np.testing.assert_array_equal(same["a"], same["b"])
    np.testing.assert_array_equal(same["a"], decode(m, z))
    images = X.decode_draws(models, z)
    for b, model in models.items():
        np.testing.assert_array_equal(images[b], decode(model, z))


RD = {0.0: (359.3, 68.9), 1.0: (25.0, 82.1), 4.0: (9.0, 116.4)}
UNITS = {0.0: 3, 1.0: 3, 4.0: 2}
PROBE = {0.0: np.array([0.80, 0.81, 0.79]), 1.0: np.array([0.74, 0.75, 0.76]), 4.0: np.array([0.78, 0.78, 0.79])}


def test_readout_values_are_the_given_results_and_the_bound_is_minus_r_plus_d():
    v = X.readout_values(1.0, RD, UNITS, PROBE)
    assert (v["beta"], v["rate"], v["distortion"], v["active_units"]) == (1.0, 25.0, 82.1, 3)
    np.testing.assert_allclose(v["bound"], -(25.0 + 82.1))
    np.testing.assert_allclose([v["probe_mean"], v["probe_sd"]], [75.0, 1.0])  # sd with ddof=1
    assert X.highlighted_point(RD, 4.0) == (9.0, 116.4)
    v4 = X.readout_values(4.0, RD, UNITS, PROBE)
    np.testing.assert_allclose([v4["bound"], v4["active_units"]], [-125.4, 2])


def test_readout_html_shows_each_value_in_its_span():
    html = X.readout_html(X.readout_values(4.0, RD, UNITS, PROBE), 3, "linear probe, 100 labels")
    shown = dict(re.findall(r'class="vae-beta-(\w+)">([^<]+)<', html))
    assert shown == {"beta": "4", "rate": "9.0", "distortion": "116.4", "bound": "-125.4", "units": "2",
                     "probe": "78.3"}
    assert "of 3" in html and "linear probe, 100 labels: " in html
    assert "78.3</b> ± 0.6 % (sd over 3 labelled sets)" in html  # sd (ddof=1) of 0.78, 0.78, 0.79


def test_draw_rd_rings_the_current_point_and_draws_its_equal_bound_line():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    X.draw_rd(ax, RD, 1.0)
    ring = [l for l in ax.lines if l.get_markeredgecolor() == "red"]
    assert len(ring) == 1
    np.testing.assert_allclose([ring[0].get_xdata()[0], ring[0].get_ydata()[0]], RD[1.0])
    dashed = [l for l in ax.lines if l.get_linestyle() == "--"]
    assert len(dashed) == 1
    np.testing.assert_allclose(dashed[0].get_xdata() + dashed[0].get_ydata(), sum(RD[1.0]))
    curve = ax.lines[0]  # every beta's point, in order of beta
    np.testing.assert_allclose(curve.get_xdata(), [359.3, 25.0, 9.0])
    np.testing.assert_allclose(curve.get_ydata(), [68.9, 82.1, 116.4])


def test_draw_rd_labels_no_minor_ticks_on_a_narrow_span():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    X.draw_rd(ax, {1.0: (20.0, 80.0), 2.0: (25.0, 85.0)}, 1.0)  # R from 13 to 38: no decade inside
    FigureCanvasAgg(fig).draw()
    assert len(ax.xaxis.get_minorticklabels()) > 0
    assert [t.get_text() for t in ax.xaxis.get_minorticklabels()] == [""] * len(ax.xaxis.get_minorticklabels())


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(0)
    return torch.rand(300, 784, generator=g), torch.randint(0, 10, (300,), generator=g).numpy()


@pytest.fixture(scope="module")
def explorer(models, digits):
    return X.BetaExplorer(models, *digits, RD, UNITS, PROBE, n_map=200, n_samples=9)


def test_explorer_precomputes_what_each_beta_shows(explorer, models, digits):
    from vae_utils.latent import encode_means

    assert explorer.beta.value == 1.0 and [v for _, v in explorer.beta.options] == [0.0, 1.0, 4.0]
    assert [label for label, _ in explorer.beta.options] == ["0", "1", "4"]
    for b, m in models.items():
        np.testing.assert_array_equal(explorer.codes[b], encode_means(m, digits[0])[0])  # each beta's own encoder
        np.testing.assert_array_equal(explorer.images[b], decode(m, explorer.z))  # the same z at every beta
        np.testing.assert_allclose(explorer.projections[b].points,
                                   X.project_codes(explorer.codes[b]).points)
        p = explorer.projections[b]  # the prior's circle fits on the map
        assert np.abs(X.prior_origin(p)).max() + X.PRIOR_95_RADIUS <= explorer.limits[b]
    assert not np.allclose(explorer.codes[0.0], explorer.codes[1.0])
    assert not np.allclose(explorer.codes[1.0], explorer.codes[4.0])
    assert explorer.values[4.0] == X.readout_values(4.0, RD, UNITS, PROBE)
    assert len({explorer.pngs[b][0] for b in models}) == 3 and len({explorer.pngs[b][2] for b in models}) == 3


def test_moving_the_slider_swaps_every_panel(explorer):
    before = (explorer.map.value, explorer.samples.value, explorer.rd_plot.value, explorer.readout.value)
    n = explorer.redraws
    explorer.beta.value = 4.0  # what a keyboard step to the right does
    try:
        assert explorer.redraws == n + 1
        after = (explorer.map.value, explorer.samples.value, explorer.rd_plot.value, explorer.readout.value)
        assert after == explorer.pngs[4.0]
        assert all(a != b for a, b in zip(after, before))
        assert 'class="vae-beta-rate">9.0<' in explorer.readout.value
    finally:
        explorer.beta.value = 1.0


def test_static_figure_has_a_map_and_samples_per_beta_and_the_rd_plot(explorer):
    import matplotlib.pyplot as plt

    fig = explorer.figure(n_points=100)
    try:
        assert len(fig.axes) == 2 * 3 + 1
        maps = [ax for ax in fig.axes if ax.get_xlabel().startswith("PC 1")]
        assert len(maps) == 3 and sum(ax.get_title().endswith("samples") for ax in fig.axes) == 3
        assert any(ax.get_xlabel().startswith("rate R") for ax in fig.axes)
        explained = explorer.projections[0.0].explained
        assert maps[0].get_xlabel() == f"PC 1 ({explained[0]:.0%})"
        assert maps[0].get_ylabel() == f"PC 2 ({explained[1]:.0%})"
        assert maps[0].get_xlim() == pytest.approx((-explorer.limits[0.0], explorer.limits[0.0]))
        # each map's title: its beta, active units and probe mean (PROBE's 80.0, 75.0, 78.3 %)
        assert [ax.get_title().split("\n")[1] for ax in maps] == [
            "3 active units, probe 80.0%", "3 active units, probe 75.0%", "2 active units, probe 78.3%"]
        assert len(maps[0].collections[0].get_offsets()) == 100
    finally:
        plt.close(fig)


def test_a_map_on_wider_axes_says_so(explorer):
    from matplotlib.figure import Figure

    kept = explorer.limits
    explorer.limits = {0.0: 16.5, 1.0: 4.5, 4.0: 4.5}
    try:
        titles = {b: explorer._draw_map(Figure().add_subplot(), b).get_title() for b in kept}
    finally:
        explorer.limits = kept
    assert "wider axes" in titles[0.0] and not any("wider" in titles[b] for b in (1.0, 4.0))
