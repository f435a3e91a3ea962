"""vae_utils.widgets without a browser: the pure functions, and the widgets built headless
with a slider moved by setting .value (what a front end does when a person drags it)."""
import numpy as np
import pytest
import torch

from vae_utils.models import VAE, VAEConfig
from vae_utils import widgets as W


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
    png = W.to_png(img, scale=3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    back = np.asarray(Image.open(BytesIO(png)))
    assert back.shape == (84, 84)
    np.testing.assert_array_equal(back[::3, ::3], (img * 255).round().astype(np.uint8))


def test_encode_means_equal_the_encoder_in_batches(model):
    x = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    mu, std = W.encode_means(model, x, batch_size=16)  # 16 + 16 + 16 + 2 rows
    with torch.no_grad():
        mu_ref, logvar_ref = model.encode(x)
    np.testing.assert_allclose(mu, mu_ref.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, torch.exp(0.5 * logvar_ref).numpy(), rtol=1e-6)


def test_latent_map_pixel_is_monotone_and_marker_drawn(codes):
    mu, labels = codes
    m = W.LatentMap(mu, labels, lim=3.0)
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
