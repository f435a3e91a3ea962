"""vae_utils.explore_units without a browser: units ordered by KL, slider ranges, the code after a
move, the decoded image and its change readout, checked for values; and the UnitExplorer built
headless, its sliders moved by setting .value (what a front end does when a person drags one)."""
import numpy as np
import pytest
import torch

from vae_utils import explore_units as U
from vae_utils.models import VAE, VAEConfig
from vae_utils.plots import image_grid
from vae_utils.png import to_png
from vae_utils.widgets import decode

IGNORED = 1  # the unit whose decoder weights are zero


@pytest.fixture(scope="module")
def model():
    """A tiny VAE (3 latent units, 8 hidden) whose decoder ignores unit IGNORED: every weight
    from z_1 into the decoder's first layer is 0. The other units are made to matter."""
    torch.manual_seed(0)
    m = VAE(VAEConfig(z_dim=3, hidden=(8,), init="default")).eval()
    with torch.no_grad():
        m.decoder.net[0].weight.mul_(4)
        m.decoder.net[2].weight.mul_(5)
        m.decoder.net[0].weight[:, IGNORED] = 0.0
    return m


@pytest.fixture(scope="module")
def x():
    return torch.rand(30, 784, generator=torch.Generator().manual_seed(1))


def test_units_by_kl_puts_the_most_kl_first_and_breaks_ties_by_index():
    kl = [0.5, 2.0, 0.0, 2.0, 1.0]
    np.testing.assert_array_equal(U.units_by_kl(kl), [1, 3, 4, 0, 2])
    np.testing.assert_array_equal(U.units_by_kl(torch.tensor([0.1, 0.3, 0.2])), [1, 2, 0])


def test_unit_ranges_cover_the_codes_and_the_prior():
    mu = np.array([[0.5, -5.0, 0.5], [-1.0, 4.0, 7.0], [0.0, 0.0, 1.0]])
    lo, hi = U.unit_ranges(mu)
    np.testing.assert_array_equal(lo, [-3.0, -5.0, -3.0])
    np.testing.assert_array_equal(hi, [3.0, 4.0, 7.0])
    lo, hi = U.unit_ranges(mu, prior_lim=0.25)
    np.testing.assert_array_equal(lo, [-1.0, -5.0, -0.25])
    np.testing.assert_array_equal(hi, [0.5, 4.0, 7.0])


def test_slider_bounds_cover_the_range_with_the_start_on_the_grid():
    low, high = U.slider_bounds(0.12, -3.0, 3.0, 0.05)
    assert (low, high) == (pytest.approx(-3.03), pytest.approx(3.02))  # 63 and 58 steps from the start
    assert U.slider_bounds(0.0, -3.0, 3.0, 0.05) == (pytest.approx(-3.0), pytest.approx(3.0))  # no widening
    for start in (-2.4873, 0.3337, 2.999):
        low, high = U.slider_bounds(start, -3.2, 3.0, 0.05)
        assert low <= -3.2 < low + 0.05 and high - 0.05 < 3.0 <= high
        assert (start - low) / 0.05 == pytest.approx(round((start - low) / 0.05))


def test_moved_code_sets_only_the_given_coordinates_and_copies():
    mu = np.array([0.1, -0.2, 0.3, 0.4], dtype=np.float32)
    z = U.moved_code(mu, [2], [2.5])
    np.testing.assert_array_equal(z, np.array([0.1, -0.2, 2.5, 0.4], dtype=np.float32))
    np.testing.assert_array_equal(mu, np.array([0.1, -0.2, 0.3, 0.4], dtype=np.float32))  # untouched
    np.testing.assert_array_equal(U.moved_code(mu, [0, 3], [-1.0, 1.0]),
                                  np.array([-1.0, -0.2, 0.3, 1.0], dtype=np.float32))


def test_image_change_mean_and_max_of_absolute_pixel_changes():
    ref = np.zeros((2, 2))
    img = np.array([[0.5, -0.25], [0.0, 0.0]])
    change = U.image_change(img, ref)
    assert change == U.ImageChange(mean=0.1875, max=0.5)
    assert U.image_change(ref, img) == change  # symmetric
    assert U.image_change(img, img) == U.ImageChange(0.0, 0.0)


def test_change_verdict_against_a_grey_level_and_half_a_pixel():
    assert U.GREY_LEVEL == pytest.approx(1 / 255) and U.STROKE == 0.5
    assert U.change_verdict(U.ImageChange(0.001, 0.99 / 255)) == "no visible change"
    assert U.change_verdict(U.ImageChange(0.001, 1 / 255)) == "no pixel changes by 0.5 or more"
    assert U.change_verdict(U.ImageChange(0.01, 0.49)) == "no pixel changes by 0.5 or more"
    assert U.change_verdict(U.ImageChange(0.01, 0.5)) == "some pixel changes by 0.5 or more"
    assert U.change_text(U.ImageChange(0.01234, 0.5678)) == ("mean |Δy| 0.0123 · max 0.568 · "
                                                             "some pixel changes by 0.5 or more")


def test_a_unit_the_decoder_ignores_changes_nothing(model):
    mu = np.array([0.3, -0.7, 1.1], dtype=np.float32)
    values = np.linspace(-3, 3, 7)
    images, changes = U.unit_walk(model, mu, IGNORED, values)
    assert all(c == U.ImageChange(0.0, 0.0) for c in changes)
    np.testing.assert_array_equal(images, np.repeat(images[:1], 7, axis=0))  # one decoder pass: bit for bit
    np.testing.assert_allclose(images[0], decode(model, mu)[0], atol=1e-6)
    _, used = U.unit_walk(model, mu, 0, values)
    assert max(c.max for c in used) > U.STROKE  # a unit the decoder uses draws or erases strokes


def test_unit_walk_decodes_mu_with_one_coordinate_moved(model):
    mu = np.array([0.3, -0.7, 1.1], dtype=np.float32)
    values = [-2.0, 0.5]
    images, changes = U.unit_walk(model, mu, 2, values)
    with torch.no_grad():
        expected = model.mean(torch.tensor([[0.3, -0.7, -2.0], [0.3, -0.7, 0.5]])).reshape(2, 28, 28).numpy()
        reference = model.mean(torch.tensor([[0.3, -0.7, 1.1]])).reshape(28, 28).numpy()
    np.testing.assert_allclose(images, expected, rtol=1e-6, atol=1e-7)
    for img, c in zip(expected, changes):
        assert c.mean == pytest.approx(np.abs(img - reference).mean(), rel=1e-5)
        assert c.max == pytest.approx(np.abs(img - reference).max(), rel=1e-5)


def test_end_changes_take_the_larger_end_per_code(model):
    mus = np.array([[-1.0, 0.2, 0.0], [0.3, -0.7, 1.1]], dtype=np.float32)
    ends = [U.unit_walk(model, mu, 0, [-2.0, 3.0])[1] for mu in mus]
    assert any(lo.max > hi.max for lo, hi in ends) and any(lo.max < hi.max for lo, hi in ends)  # both ends matter
    assert U.end_changes(model, mus, 0, -2.0, 3.0) == [U.ImageChange(max(lo.mean, hi.mean), max(lo.max, hi.max))
                                                       for lo, hi in ends]
    assert U.end_changes(model, mus, IGNORED, -3.0, 3.0) == [U.ImageChange(0.0, 0.0)] * 2


def test_explorer_orders_units_sets_ranges_and_reads_out_changes(model, x):
    kl = np.array([0.5, 0.0, 2.0])  # unit 2 the most, unit 1 (ignored) none
    ex = U.UnitExplorer(model, x, kl, labels=np.arange(30) % 10, top=2, bottom=1, n_choices=10, index=3)
    assert ex.units == [2, 0, 1] and ex.top == [2, 0] and ex.bottom == [1]
    lo, hi = U.unit_ranges(ex.codes)
    bounds = [U.slider_bounds(float(ex.codes[3, j]), lo[j], hi[j], 0.05) for j in ex.units]
    assert [(s.min, s.max) for s in ex.sliders] == [(pytest.approx(a), pytest.approx(b)) for a, b in bounds]
    assert [s.value for s in ex.sliders] == [pytest.approx(float(ex.codes[3, j])) for j in ex.units]
    assert "vae-unit-top" in ex.sliders[0]._dom_classes and "vae-unit-bottom" in ex.sliders[2]._dom_classes
    assert "vae-units-J3" in ex._dom_classes and len(ex.digit.options) == 10
    assert ex.unit_readouts[0].value.startswith("KL 2.000 nats")

    png, n = ex.image.value, ex.redraws
    ex.sliders[2].value = 2.5  # the ignored unit: the image stays, byte for byte
    assert ex.redraws == n + 1 and ex.image.value == png
    assert "mean |Δy| 0.0000 · max 0.000 · no visible change" in ex.unit_readouts[2].value

    ex.sliders[1].value = 1.5  # unit 0
    ex.sliders[0].value = -2.0  # the unit with the most KL
    z = U.moved_code(ex.codes[3], [2, 0, 1], [-2.0, 1.5, 2.5])
    np.testing.assert_allclose(ex.z(), z)
    rec, img = decode(model, np.stack([ex.codes[3], z, z]))[:2]  # the widget's decoder pass: three rows
    expected = U.image_change(img, rec)
    panels = np.stack([x[3].reshape(28, 28).numpy(), rec, img, np.abs(img - rec)])
    assert ex.image.value == to_png(image_grid(panels, nrow=4, pad=2), ex.scale) != png
    assert ex.redraws == n + 3
    assert ex.readout.value == f"all moves together: {U.change_text(expected)}"
    alone = U.unit_walk(model, ex.codes[3], 2, [-2.0])[1][0]
    assert alone != expected  # the readout of unit 2 is its move alone, not the change of all the moves
    assert ex.unit_readouts[0].value == f"KL 2.000 nats · alone: {U.change_text(alone)}"

    png_moved = ex.image.value
    ex.reset.click()  # back to mu(x) of the same digit: every slider at its start, one redraw
    assert [s.value for s in ex.sliders] == [pytest.approx(float(ex.codes[3, j])) for j in ex.units]
    assert ex.redraws == n + 4 and ex.image.value != png_moved
    rec = decode(model, np.stack([ex.codes[3]] * 3))[0]
    panels = np.stack([x[3].reshape(28, 28).numpy(), rec, rec, 0 * rec])
    assert ex.image.value == to_png(image_grid(panels, nrow=4, pad=2), ex.scale)
    assert ex.readout.value == "all moves together: mean |Δy| 0.0000 · max 0.000 · no visible change"
    assert all("alone: mean |Δy| 0.0000 · max 0.000" in r.value for r in ex.unit_readouts)
    assert "vae-units-reset" in ex.reset._dom_classes
    ex.sliders[0].value = -2.0  # move again, so that the new digit below has something to undo
    assert ex.redraws == n + 5

    ex.digit.value = 7  # a new digit: every slider back at its mu, on a grid of its own, one redraw
    assert [s.value for s in ex.sliders] == [pytest.approx(float(ex.codes[7, j])) for j in ex.units]
    bounds = [U.slider_bounds(float(ex.codes[7, j]), lo[j], hi[j], 0.05) for j in ex.units]
    assert [(s.min, s.max) for s in ex.sliders] == [(pytest.approx(a), pytest.approx(b)) for a, b in bounds]
    assert ex.redraws == n + 6 and "mean |Δy| 0.0000" in ex.readout.value
    rec = decode(model, np.stack([ex.codes[7]] * 3))[0]  # the widget's decoder pass: three rows
    panels = np.stack([x[7].reshape(28, 28).numpy(), rec, rec, 0 * rec])
    assert ex.image.value == to_png(image_grid(panels, nrow=4, pad=2), ex.scale)


def test_static_figure_walks_every_shown_unit(model, x):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ex = U.UnitExplorer(model, x, np.array([0.5, 0.0, 2.0]), top=2, bottom=1, n_choices=5)
    fig = ex.figure(n=5)
    ax, = fig.axes
    grid = ax.images[0].get_array()
    assert grid.shape == (3 * 28 + 2 * 2, 7 * 28 + 6 * 2)  # a row per unit: digit, at mu, 5 steps
    walk, _ = U.unit_walk(model, ex.codes[0], 2, np.linspace(-3, 3, 5))
    np.testing.assert_allclose(grid[:28, 2 * 30:2 * 30 + 28], walk[0], rtol=1e-6)  # unit 2 (most KL) at z = -3
    np.testing.assert_allclose(grid[2 * 30:2 * 30 + 28, 30:58], decode(model, ex.codes[0])[0], atol=1e-6)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "$z_{2}$ (most KL)\nKL 2.000 nats" and labels[2].startswith("$z_{1}$ (least KL)")
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["digit", "at μ(x)", "-3.0"]
    assert ax.texts[2].get_text() == "max |Δy| 0.000\nno visible change"  # the ignored unit's row
    assert ax.texts[0].get_text().endswith("some pixel changes by 0.5 or more")
    plt.close(fig)
