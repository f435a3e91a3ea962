"""vae_utils.widgets, maps and png without a browser: the pure functions, and the widgets built headless
with a slider moved by setting .value (what a front end does when a person drags it)."""
import numpy as np
import pytest
import torch

from vae_utils import latent, maps, png
from vae_utils import widgets as W
from vae_utils.models import VAE, VAEConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = VAE(VAEConfig(z_dim=2, hidden=(16,), init="default")).eval()
    with torch.no_grad():  # make the decoder depend strongly on z, so moves are visible
        m.decoder.net[0].weight.mul_(5)
    return m


@pytest.fixture(scope="module")
def codes():
    g = np.random.default_rng(0)
    return g.normal(size=(200, 2)).astype(np.float32), g.integers(0, 10, 200)


def test_decode_point_shape_range_and_determinism(model):
    img = W.decode_point(model, 0.5, -1.0)
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    np.testing.assert_array_equal(img, W.decode_point(model, 0.5, -1.0))
    assert not np.allclose(img, W.decode_point(model, -2.0, 2.0))


def test_decode_point_matches_model_mean(model):
    with torch.no_grad():
        expected = model.mean(torch.tensor([[0.3, 0.7]])).reshape(28, 28).numpy()
    np.testing.assert_allclose(W.decode_point(model, 0.3, 0.7), expected, rtol=1e-6)


def test_interpolate_endpoints_and_midpoint():
    a, b = np.array([0.0, 2.0]), np.array([4.0, -2.0])
    np.testing.assert_allclose(W.interpolate(a, b, 0.0), a)
    np.testing.assert_allclose(W.interpolate(a, b, 1.0), b)
    np.testing.assert_allclose(W.interpolate(a, b, 0.5), [2.0, 0.0])
    path = W.interpolate(a, b, np.linspace(0, 1, 5))
    assert path.shape == (5, 2)
    np.testing.assert_allclose(np.diff(path, axis=0), np.tile([[1.0, -1.0]], (4, 1)))


def test_to_png_round_trip_and_scale():
    from io import BytesIO
    from PIL import Image

    img = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    data = png.to_png(img, scale=3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = np.asarray(Image.open(BytesIO(data)))
    assert back.shape == (84, 84)
    np.testing.assert_array_equal(back[::3, ::3], (img * 255).round().astype(np.uint8))


def test_latent_map_pixel_is_monotone_and_marker_drawn(codes):
    mu, labels = codes
    m = maps.LatentMap(mu, labels, lim=3.0)
    r0, c0 = m.pixel(0, 0)
    r1, c1 = m.pixel(1, 1)
    assert c1 > c0 and r1 < r0  # z1 to the right, z2 upwards
    marked = m.with_marker(1, 1)
    assert (marked != m.rgb).any() and tuple(marked[r1, c1]) == (220, 0, 0)


def test_latent_explorer_redraws_on_slider_move(model, codes):
    mu, labels = codes
    ex = W.LatentExplorer(model, mu, labels)
    before_img, before_map, n = ex.image.value, ex.map.value, ex.redraws
    assert before_img[:4] == b"\x89PNG"
    ex.z1.value = 2.0  # what dragging the slider does
    assert ex.redraws == n + 1
    assert ex.image.value != before_img and ex.map.value != before_map
    ex.z2.value = -1.5
    assert ex.redraws == n + 2
    assert {"vae-z1"} <= set(ex.z1._dom_classes) and "vae-decoded" in ex.image._dom_classes


def test_interpolation_explorer(model, codes):
    mu, labels = codes
    x = torch.rand(200, 784)
    ex = W.InterpolationExplorer(model, x, mu, labels, index_a=0, index_b=1)
    img, strip = ex.image.value, ex.strip.value
    ex.t.value = 1.0
    assert ex.image.value != img and ex.strip.value == strip  # t moves along a fixed path
    np.testing.assert_allclose(ex.path(2)[1], W.decode_point(model, *mu[1]), rtol=1e-5)
    ex.b.value = 5
    assert ex.strip.value != strip


def test_epoch_explorer_swaps_precomputed_frames():
    frames = {e: np.full((10, 10), e / 3, dtype=np.float32) for e in range(4)}
    ex = W.EpochExplorer(frames)
    assert ex.epoch.value == 3 and ex.image.value == ex.pngs[3]
    ex.epoch.value = 1
    assert ex.image.value == ex.pngs[1] != ex.pngs[3]


def test_manifold_frames_from_snapshots(model):
    cfg = model.config
    other = VAE(cfg)
    snaps = {1: other.state_dict(), 2: model.state_dict()}
    frames = W.manifold_frames(cfg, snaps, n=4)
    assert list(frames) == [1, 2]
    assert frames[1].shape == (4 * 29 - 1, 4 * 29 - 1)
    assert not np.allclose(frames[1], frames[2])


def test_static_figures(model, codes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mu, labels = codes
    for ex in (W.LatentExplorer(model, mu, labels),
               W.InterpolationExplorer(model, torch.rand(200, 784), mu, labels),
               W.EpochExplorer({0: np.zeros((5, 5)), 1: np.ones((5, 5))})):
        fig = ex.figure()
        assert len(fig.axes) >= 2
        plt.close(fig)


# -- the aggregate posterior and where to look (notebook 04) -----------------------------------


def test_latent_explorer_centres_and_static_figure(model, codes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mu, labels = codes
    ex = W.LatentExplorer(model, mu, labels, label_name="digit")
    points, names = ex.centres()
    medoids = latent.class_medoids(mu, labels)
    assert names == sorted(medoids) and np.allclose(points, mu[list(medoids.values())])
    fig = ex.figure()
    assert len(fig.axes) == 1 + len(names)  # the map and one decoded digit per class
    assert fig.axes[0].get_xlabel() == "$z_1$" and fig.axes[0].get_legend() is not None
    assert fig.axes[1].get_title().startswith(f"{names[0]}: (")
    plt.close(fig)
    fig = ex.figure(points=[(0.0, 0.0), (1.0, 1.0)])  # given points are numbered
    assert len(fig.axes) == 3 and fig.axes[2].get_title() == "2: (+1.00, +1.00)"
    plt.close(fig)
    # a sequential colour map gets a colour bar, titled
    ex = W.LatentExplorer(model, mu, np.linspace(0, 1, len(mu)), label_name="time", cmap="viridis")
    assert ex.centres()[1] == [1, 2, 3]
    fig = ex.figure()
    assert any(a.get_ylabel() == "time" for a in fig.axes)
    plt.close(fig)


def test_latent_map_with_legend_is_wider_and_keeps_pixels(codes):
    mu, labels = codes
    plain, legend = maps.LatentMap(mu, labels), maps.LatentMap(mu, labels, label_name="digit")
    assert plain.rgb.shape[0] == plain.rgb.shape[1] and legend.rgb.shape[1] > legend.rgb.shape[0]
    r0, c0 = legend.pixel(0, 0)
    r1, c1 = legend.pixel(1, 1)
    assert c1 > c0 and r1 < r0


def test_interpolation_figure_with_a_map(model, codes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mu, labels = codes
    ex = W.InterpolationExplorer(model, torch.rand(200, 784), mu, labels, index_a=3, index_b=8, steps=10)
    z = ex.codes()
    np.testing.assert_allclose(z[[0, -1]], mu[[3, 8]], rtol=1e-6)
    fig = ex.figure(codes=(mu, labels), label_name="digit")
    assert len(fig.axes) == 1 + 12  # map, A, 10 steps, B
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(np.c_[line.get_xdata(), line.get_ydata()], z, rtol=1e-6)
    plt.close(fig)


def test_grid_size_and_epoch_frames_with_z_ticks(model):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from io import BytesIO
    from PIL import Image

    frames = W.manifold_frames(model.config, {0: model.state_dict(), 1: model.state_dict()}, n=4)
    assert png.grid_size(frames[0]) == 4 and png.grid_size(frames[0], (28, 20)) is None
    assert png.grid_size(np.zeros((5, 5))) is None
    ex = W.EpochExplorer(frames)
    assert ex.n == 4
    w, h = Image.open(BytesIO(ex.pngs[0])).size
    assert w > frames[0].shape[1] and h > frames[0].shape[0]  # the frame plus its axes
    fig = ex.figure()
    assert fig.axes[0].get_ylabel() == "$z_2$" and fig.axes[1].get_ylabel() == ""
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["-1", "0", "1"]
    plt.close(fig)


def test_draw_density_ratio_labels():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    r = maps.draw_density_ratio(ax, np.zeros((1, 2)), np.ones((1, 2)), n=21)  # q = p: log ratio 0 everywhere
    assert r.shape == (21, 21)
    np.testing.assert_allclose(r, 0, atol=1e-12)
    assert ax.get_xlabel() == "$z_1$" and "log_{10}" in fig.axes[1].get_ylabel()
    plt.close(fig)


def test_covering_limit_reaches_every_code_in_half_steps_and_keeps_the_prior_range():
    assert W.covering_limit(np.array([[0.2, -4.3], [1.0, 2.0]])) == 4.5   # 4.3 rounds up to 4.5
    assert W.covering_limit(np.array([[5.0, 0.0]])) == 5.0                # exactly on a step
    assert W.covering_limit(np.array([[0.5, -1.0]])) == 3.0               # never under the prior's 3 sd
    assert W.covering_limit(np.array([[0.5, -1.0]]), at_least=0.0) == 1.0


def test_latent_explorer_sliders_cover_the_codes_by_default(model):
    mu = np.array([[-6.2, 0.0], [1.0, 3.9], [0.0, 0.0]], dtype=np.float32)
    ex = W.LatentExplorer(model, mu)
    assert ex.lim == 6.5 and ex.z1.min == -6.5 and ex.z2.max == 6.5  # a fixed +-3 would miss -6.2
    assert W.LatentExplorer(model, mu, lim=2.0).z1.max == 2.0          # an explicit range is kept
