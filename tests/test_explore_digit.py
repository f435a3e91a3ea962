"""vae_utils.explore_digit without a browser: the pure functions for values (closed forms,
brute force, hand-computed cases), the pad's checks, and the explorer built headless with its
controls moved by setting .value, as a front end does."""
import sys
import types

import numpy as np
import pytest
import torch
import traitlets

from vae_utils import explore_digit as D
from vae_utils import maps
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
def digits():
    """Ten 'digits' (10, 784) in [0, 1], ink in the middle rows; their codes and labels."""
    g = np.random.default_rng(0)
    x = np.zeros((10, 28, 28), dtype=np.float32)
    x[:, 4:24, 8:20] = g.uniform(0, 1, (10, 20, 12))
    return x.reshape(10, 784), g.normal(size=(10, 2)).astype(np.float32), np.arange(10)


class FixedEncoder(torch.nn.Module):
    """q(z|x) = N(m, diag s^2) whatever x is, and log p(x|z) = -1/2 |z - a|^2: every term has a
    closed form (the stub needs one parameter for bound_split to find the device)."""

    def __init__(self, m, s, a):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.m, self.logvar, self.a = torch.tensor(m), torch.log(torch.tensor(s) ** 2), torch.tensor(a)

    def encode(self, x):
        return self.m.expand(len(x), -1), self.logvar.expand(len(x), -1)

    def log_likelihood(self, x, z):
        return -0.5 * ((z - self.a) ** 2).sum(-1)


# -- the drawing: checks -----------------------------------------------------------------------


def test_check_pixels_accepts_a_drawing_and_refuses_anything_else():
    ok = D.check_pixels([0.0] * 783 + [1.0])
    assert ok.dtype == np.float32 and ok.shape == (784,) and ok[-1] == 1.0
    with pytest.raises(ValueError, match="784 numbers"):
        D.check_pixels([0.5] * 783)
    with pytest.raises(ValueError, match="finite"):
        D.check_pixels([np.nan] + [0.0] * 783)
    with pytest.raises(ValueError, match=r"\[0, 1\].*from 0 to 1.5"):
        D.check_pixels([1.5] + [0.0] * 783)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        D.check_pixels([-0.01] + [0.0] * 783)
    with pytest.raises(ValueError, match="784 numbers"):
        D.check_pixels("not a drawing")


def test_pad_validates_what_arrives_and_keeps_the_drawing():
    pad = D.DrawPad()
    assert pad.is_blank() and pad.image.shape == (28, 28)
    drawing = np.zeros(784)
    drawing[100:110] = 0.75
    pad.pixels = drawing.tolist()
    assert not pad.is_blank() and pad.image[3, 16] == 0.75
    for bad in ([2.0] * 784, [0.0] * 10, [float("inf")] + [0.0] * 783):
        with pytest.raises(traitlets.TraitError, match="DrawPad.pixels"):
            pad.pixels = bad
    np.testing.assert_array_equal(pad.image.ravel(), drawing.astype(np.float32))  # unchanged


class FakeComm:
    """What the kernel sends to the front end: the messages, in order (no kernel needed)."""

    comm_id, kernel = "fake-comm", True

    def __init__(self):
        self.sent = []

    def on_msg(self, callback):
        pass

    def send(self, data=None, buffers=None, **kwargs):
        self.sent.append(data)

    def close(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("echo", [True, False])
def test_a_stroke_from_the_front_end_is_not_sent_back(monkeypatch, echo):
    # A mid-stroke snapshot as the front end rounds it (3 decimals). If the kernel answered with
    # an 'update' (e.g. the float32 copy: 0.123 -> 0.12300000339746475), the canvas would be
    # reset to this snapshot and lose what was drawn during the round trip. ipywidgets 8 answers
    # with an 'echo_update' only; ipywidgets 7 (echo off) sends nothing.
    monkeypatch.setattr("ipywidgets.widgets.widget.JUPYTER_WIDGETS_ECHO", echo)
    pad, comm = D.DrawPad(), FakeComm()
    pad.comm = comm
    snapshot = [0.0] * 784
    snapshot[100:105] = [0.123, 0.5, 0.987, 1, 0.001]        # 1: JSON may bring an int
    pad.set_state({"pixels": snapshot})
    assert [m["method"] for m in comm.sent] == (["echo_update"] if echo else [])
    assert pad.pixels == snapshot and pad.image[3, 16] == np.float32(0.123)


# -- the posterior and its ellipse -------------------------------------------------------------


def test_posterior_is_the_encoders_output_for_one_image_and_a_batch(model, digits):
    x, _, _ = digits
    with torch.no_grad():
        m, logvar = model.encode(torch.as_tensor(x))
    mu, sigma = D.posterior(model, x[3])
    assert mu.shape == sigma.shape == (2,)
    np.testing.assert_allclose(mu, m[3].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, torch.exp(0.5 * logvar[3]).numpy(), rtol=1e-5)
    mu2, sigma2 = D.posterior(model, x[3].reshape(28, 28))  # an image as drawn: (28, 28)
    np.testing.assert_array_equal(mu2, mu)
    mus, sigmas = D.posterior(model, x)
    assert mus.shape == sigmas.shape == (10, 2)
    np.testing.assert_allclose(mus[3], mu, rtol=1e-5, atol=1e-6)


def test_ellipse_points_lie_at_one_sigma_on_the_axes():
    mu, sigma = np.array([1.0, -2.0]), np.array([0.3, 0.05])
    pts = D.ellipse(mu, sigma, n=8)
    assert pts.shape == (8, 2)
    np.testing.assert_allclose(np.hypot(*((pts - mu) / sigma).T), 1.0)          # Mahalanobis radius 1
    np.testing.assert_allclose(pts[0], [1.3, -2.0])                              # t = 0: +sigma_1 on z1
    np.testing.assert_allclose(pts[2], [1.0, -1.95])                             # t = pi/2: +sigma_2 on z2
    np.testing.assert_allclose(pts.max(0) - pts.min(0), 2 * sigma)               # axis-aligned extent


# -- the bound split ---------------------------------------------------------------------------


def test_fixed_eps_is_deterministic_and_standard_normal():
    a, b = D.fixed_eps(5, 2, seed=3), D.fixed_eps(5, 2, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, torch.randn(5, 2, generator=torch.Generator().manual_seed(3)).numpy())
    assert not np.allclose(a, D.fixed_eps(5, 2, seed=4))
    assert a.shape == (5, 2) and a.dtype == np.float32 and D.fixed_eps(5, 3).shape == (5, 3)
    np.testing.assert_array_equal(D.fixed_eps(3, 2, seed=3), a[:3])       # more draws extend the same sequence


def test_kl_is_appendix_b_on_a_case_computed_by_hand():
    # mu = (1, -2), sigma = (0.5, 2): KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
    #   = 1/2 [(1 + 0.25 - 1 - log 0.25) + (4 + 4 - 1 - log 4)] = 1/2 (0.25 + 7) = 3.625
    stub = FixedEncoder([1.0, -2.0], [0.5, 2.0], [0.0, 0.0])
    split = D.bound_split(stub, np.zeros(784), D.fixed_eps(8))
    assert split.kl == pytest.approx(3.625, abs=1e-6)


def test_reconstruction_term_is_the_mean_over_the_fixed_draws_and_its_expectation():
    # log p(x|z) = -1/2 |z - a|^2 has E_q = -1/2 (|mu - a|^2 + |sigma|^2): here -1/2 (1 + 1 + 4.25) = -3.125
    stub = FixedEncoder([1.0, -2.0], [0.5, 2.0], [0.0, -1.0])
    eps = D.fixed_eps(7, seed=1)
    z = np.array([1.0, -2.0]) + np.array([0.5, 2.0]) * eps
    by_hand = np.mean([-0.5 * np.sum((zs - [0.0, -1.0]) ** 2) for zs in z])
    split = D.bound_split(stub, np.zeros(784), eps)
    assert split.rec == pytest.approx(by_hand, rel=1e-5)
    assert split.bound == pytest.approx(split.rec - split.kl)
    many = D.bound_split(stub, np.zeros(784), D.fixed_eps(40000, seed=2))
    assert many.rec == pytest.approx(-3.125, abs=0.05)  # Monte Carlo error ~ 0.01


def test_bound_split_of_a_vae_against_a_brute_force_loop(model, digits):
    x, _, _ = digits
    eps = D.fixed_eps(5, seed=0)
    split = D.bound_split(model, x[2], eps)
    mu, logvar = model.encode(torch.as_tensor(x[2:3]))
    with torch.no_grad():
        logs = [model.log_likelihood(torch.as_tensor(x[2:3]), mu + torch.exp(0.5 * logvar) * torch.as_tensor(e)).item()
                for e in eps]
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum().item()
    assert split.rec == pytest.approx(np.mean(logs), rel=1e-5)
    assert split.kl == pytest.approx(kl, rel=1e-5)
    again = D.bound_split(model, x[2], eps)
    assert again == split                                           # the same eps: the same numbers
    assert D.bound_split(model, x[2], D.fixed_eps(5, seed=1)).rec != split.rec
    batch = D.bound_split(model, x, eps)
    assert batch.rec.shape == (10,) and batch.rec[2] == pytest.approx(split.rec, rel=1e-5)


def test_posterior_samples_decode_the_fixed_draws(model, digits):
    x, _, _ = digits
    mu, sigma = D.posterior(model, x[0])
    eps = D.fixed_eps(4)
    s = D.posterior_samples(model, mu, sigma, eps)
    assert s.shape == (4, 28, 28)
    np.testing.assert_allclose(s[1], W.decode_point(model, *(mu + sigma * eps[1])), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(s, D.posterior_samples(model, mu, sigma, eps))
    assert not np.allclose(s[0], s[1])


def test_explain_is_posterior_split_and_decodes_in_one_pass_each(model, digits):
    x, _, _ = digits
    eps = D.fixed_eps(6, seed=2)
    calls = {"encoder": 0, "decoder": 0}
    nets = {"encoder": model.encoder, "decoder": model.decoder.net}      # decoder.net: log_prob and mean both call it
    hooks = [net.register_forward_hook(lambda *a, part=part: calls.__setitem__(part, calls[part] + 1))
             for part, net in nets.items()]
    try:
        got = D.explain(model, x[4], eps, n_shown=3)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"encoder": 1, "decoder": 1}                        # one pass each, for 1 + S codes
    mu, sigma = D.posterior(model, x[4])
    np.testing.assert_allclose(got.mu, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sigma, sigma, rtol=1e-5)
    split = D.bound_split(model, x[4], eps)
    assert got.split.rec == pytest.approx(split.rec, rel=1e-5) and got.split.kl == pytest.approx(split.kl, rel=1e-5)
    assert got.split.bound == pytest.approx(got.split.rec - got.split.kl)
    np.testing.assert_allclose(got.reconstruction, W.decode(model, mu[None])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.samples, D.posterior_samples(model, mu, sigma, eps[:3]), rtol=1e-5, atol=1e-6)


# -- occlusion ---------------------------------------------------------------------------------


def test_occlude_hides_the_bottom_rows_only():
    img = np.arange(784, dtype=np.float32).reshape(28, 28) / 784
    out = D.occlude(img, 10)
    assert out.shape == (28, 28) and (out[18:] == 0).all()
    np.testing.assert_array_equal(out[:18], img[:18])
    assert img[27, 0] > 0                                            # the input is not changed
    np.testing.assert_array_equal(D.occlude(img, 0), img)
    assert (D.occlude(img, 28) == 0).all()
    flat = D.occlude(img.ravel(), 1)
    assert flat.shape == (784,) and (flat[-28:] == 0).all() and flat[-29] == img[26, 27]
    with pytest.raises(ValueError, match="between 0 and 28"):
        D.occlude(img, 29)


def test_occlusion_sweep_is_posterior_and_bound_of_each_occluded_image(model, digits):
    x, _, _ = digits
    eps = D.fixed_eps(3)
    sweep = D.occlusion_sweep(model, x[:4], (0, 14), eps)
    assert list(sweep) == [0, 14]
    mu, sigma, split = sweep[14]
    m1, s1 = D.posterior(model, D.occlude(x[1], 14))
    np.testing.assert_allclose(mu[1], m1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma[1], s1, rtol=1e-5)
    assert split.bound[1] == pytest.approx(D.bound_split(model, D.occlude(x[1], 14), eps).bound, rel=1e-5)
    np.testing.assert_allclose(sweep[0][0], D.posterior(model, x[:4])[0], rtol=1e-5, atol=1e-6)


def test_best_on_grid_is_the_best_code_of_a_brute_force_loop(model, digits):
    x, _, _ = digits
    best, z = D.best_on_grid(model, x[:3], lim=2.0, n=7)
    grid = [(a, b) for a in np.linspace(-2, 2, 7) for b in np.linspace(-2, 2, 7)]
    with torch.no_grad():
        for i in range(3):
            xi = torch.as_tensor(x[i:i + 1])
            logs = [model.log_likelihood(xi, torch.tensor([[a, b]], dtype=torch.float32)).item() for a, b in grid]
            assert best[i] == pytest.approx(max(logs), rel=1e-5)
            assert tuple(np.round(z[i], 5)) == tuple(np.round(grid[int(np.argmax(logs))], 5))
    assert best.shape == (3,) and z.shape == (3, 2)


# -- pictures ----------------------------------------------------------------------------------


def test_zoom_image_draws_mean_ellipse_codes_at_their_places():
    mu, sigma = np.array([1.0, 2.0]), np.array([0.1, 0.05])
    codes = np.array([[1.2, 2.0], [1.0, 2.3]])                     # right of the mean, and above it
    img = D.zoom_image(mu, sigma, codes, labels=np.array([2, 5]), half_width=0.5, size=200)
    assert img.shape == (200, 200, 3) and img.dtype == np.uint8
    assert tuple(img[100, 100]) == (220, 0, 0)                      # the mean at the centre, red
    assert tuple(img[100, 120]) == (0, 0, 0)                        # the ellipse at mu_1 + sigma_1 (20 px)
    assert tuple(img[90, 100]) == (0, 0, 0)                         # and at mu_2 + sigma_2 (10 px up)
    assert tuple(img[100, 110]) == (255, 255, 255)                  # inside the ellipse: nothing drawn
    assert tuple(img[100, 140]) == tuple(D.TAB10[2])                # the code at z1 = 1.2, coloured by label
    assert tuple(img[40, 100]) == tuple(D.TAB10[5])                 # z2 = 2.3 is 60 px above the mean
    assert not (img[150:190] == D.TAB10[5]).all(-1).any()           # and not below it


def test_map_image_marks_the_mean_and_leaves_the_map(digits):
    _, mu, labels = digits
    m = maps.LatentMap(mu, labels, lim=3.0)
    img = D.map_image(m, np.array([0.5, -0.5]), np.array([0.4, 0.2]))
    r, c = m.pixel(0.5, -0.5)
    assert tuple(img[r, c]) == (220, 0, 0)
    r_edge, c_edge = m.pixel(0.9, -0.5)                             # on the ellipse, mu_1 + sigma_1
    assert tuple(img[r_edge, c_edge]) == (0, 0, 0)
    assert (img != m.rgb).any() and (img[:, :5] == m.rgb[:, :5]).all()


def test_panel_places_the_input_and_the_samples():
    map_rgb = np.full((50, 60, 3), 7, dtype=np.uint8)
    zoom_rgb = np.full((40, 40, 3), 9, dtype=np.uint8)
    x = np.zeros((28, 28))
    x[0, 0] = 1.0
    samples = np.full((3, 28, 28), 0.5)
    layout = D.PanelLayout(caption_h=10, gap=4, image_scale=2)
    p = D.panel_image(map_rgb, zoom_rgb, x, np.zeros((28, 28)), samples, layout=layout)
    tile = 56
    assert p.shape == (10 + 50 + 4 + 10 + tile, 2 * (tile + 4) + 4 + 3 * (tile + 2) - 2, 3)
    assert (p[10:60, :60] == 7).all() and (p[10:50, 64:104] == 9).all()
    top = 10 + 50 + 4 + 10
    assert (p[top:top + 2, 0:2] == 255).all() and (p[top + 2, 2] == 0).all()   # input's ink pixel, 2 x 2
    left = 2 * (tile + 4) + 4
    assert (p[top:top + tile, left:left + tile] == 128).all()                  # the first sample, grey 0.5


# -- Colab -------------------------------------------------------------------------------------


def test_enable_colab_widgets_only_on_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert D.enable_colab_widgets() is False
    calls = []
    google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(1))
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    assert D.enable_colab_widgets() is True and calls == [1]


# -- the explorer ------------------------------------------------------------------------------


def _bound_in(readout: str) -> float:
    return float(readout.split("bound = <b>")[1].split("</b>")[0])


def test_explorer_follows_the_controls_and_the_pad(model, digits):
    x, mu, labels = digits
    pad = D.DrawPad()
    ex = D.DigitExplorer(model, x, mu, labels, pad=pad, n_samples=8, n_shown=3, index=2)
    assert ex.panel.value[:4] == b"\x89PNG" and ex.source == "digit"
    assert _bound_in(ex.readout.value) == pytest.approx(D.bound_split(model, x[2], ex.eps).bound, abs=0.006)
    panel, n = ex.panel.value, ex.redraws

    ex.rows.value = 12                                               # the occlusion slider
    assert ex.redraws == n + 1 and ex.panel.value != panel
    occluded = D.occlude(x[2], 12)
    assert _bound_in(ex.readout.value) == pytest.approx(D.bound_split(model, occluded, ex.eps).bound, abs=0.006)
    assert "12 of 28 rows hidden" in ex.readout.value

    drawing = np.zeros(784)
    drawing[300:320] = 1.0
    pad.pixels = drawing.tolist()                                     # what a stroke's end sends
    assert ex.source == "pad" and "your drawing" in ex.readout.value
    assert _bound_in(ex.readout.value) == pytest.approx(D.bound_split(model, drawing, ex.eps).bound, abs=0.006)
    np.testing.assert_array_equal(ex.input_image(), drawing.reshape(28, 28))

    pad.pixels = [0.0] * 784                                          # Clear: back to the test digit
    assert ex.source == "digit" and "test digit #2" in ex.readout.value
    pad.pixels = drawing.tolist()
    before = ex.readout.value
    ex.digit.value = 5                                                # the dropdown takes over again
    assert ex.source == "digit" and "test digit #5" in ex.readout.value and ex.readout.value != before
    assert {"vae-draw-digit"} <= set(ex.digit._dom_classes) and "vae-draw-panel" in ex.panel._dom_classes
    assert "vae-draw-rows" in ex.rows._dom_classes and "vae-draw-readout" in ex.readout._dom_classes


def test_explorer_without_a_pad_and_its_static_figure(model, digits):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, mu, labels = digits
    ex = D.DigitExplorer(model, x, mu, labels, n_samples=8, n_shown=4)
    fig = ex.figure(index=1, rows=(0, 14))
    titles = [a.get_title() for a in fig.axes]
    split = D.bound_split(model, D.occlude(x[1], 14), ex.eps)
    assert any(t.startswith("14 rows hidden") and f"bound {split.bound:.1f}" in t for t in titles)
    assert len(fig.axes) == 1 + 2 * 4
    plt.close(fig)
