"""vae_utils.explore_k without a browser: what a K or digit move computes, checked for values
against closed forms and against vae_utils.importance; the widget built headless, its
controls moved by setting .value (what a front end does when a person moves them)."""
import math

import numpy as np
import pytest
import torch

from vae_utils import explore_k as X
from vae_utils import importance
from vae_utils.models import VAEConfig, build

# -- the K values and the nested path -----------------------------------------------------------


def test_k_values_are_1_2_5_steps_ending_at_n():
    assert X.k_values(5000) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
    assert X.k_values(7) == [1, 2, 5, 7]
    assert X.k_values(1) == [1]
    assert X.k_values(100) == [1, 2, 5, 10, 20, 50, 100]


def test_equal_weights_give_ess_k_and_the_weight_itself():
    c = -123.4
    path = X.nested_path(np.full(50, c))
    k = np.arange(1, 51)
    np.testing.assert_array_equal(path["k"], k)
    np.testing.assert_allclose(path["ess"], k, rtol=1e-12)           # ESS = K when all w are equal
    np.testing.assert_allclose(path["ess_fraction"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(path["log_p_hat"], c, rtol=0, atol=1e-12)   # log (1/K) K w = log w
    np.testing.assert_allclose(path["mean_log_w"], c, rtol=0, atol=1e-12)


def test_one_dominant_weight_gives_ess_near_one_and_the_closed_form_estimate():
    lw = np.full(1000, -60.0)
    lw[0] = 0.0                                                       # w_1 = 1, the others e^-60
    path = X.nested_path(lw)
    k = np.arange(1, 1001)
    small = np.exp(-60.0)
    np.testing.assert_allclose(path["ess"], (1 + (k - 1) * small) ** 2 / (1 + (k - 1) * small**2), rtol=1e-12)
    assert np.all(np.abs(path["ess"] - 1) < 1e-20)                    # ESS -> 1
    np.testing.assert_allclose(path["log_p_hat"], np.log1p((k - 1) * small) - np.log(k), rtol=1e-12)
    np.testing.assert_allclose(path["mean_log_w"], -60.0 * (k - 1) / k, rtol=1e-12)


def test_two_weights_closed_form():
    a, b = 3.0, 1.0
    path = X.nested_path(np.log([a, b]))
    assert path["ess"][1] == pytest.approx((a + b) ** 2 / (a**2 + b**2), rel=1e-12)   # 16 / 10
    assert path["log_p_hat"][1] == pytest.approx(math.log((a + b) / 2), rel=1e-12)
    assert path["mean_log_w"][1] == pytest.approx(0.5 * (math.log(a) + math.log(b)), rel=1e-12)


def test_at_k_1_the_estimate_is_the_one_log_weight():
    lw = np.random.default_rng(0).normal(-100, 5, size=30)
    path = X.nested_path(lw)
    assert path["log_p_hat"][0] == pytest.approx(lw[0], abs=1e-12)
    assert path["mean_log_w"][0] == pytest.approx(lw[0], abs=1e-12)
    assert path["ess"][0] == pytest.approx(1.0, abs=1e-12)


def test_the_estimate_is_never_below_the_mean_log_weight():
    """Jensen: log of a mean >= mean of logs, for every K and every input. A property of the
    functions, certain for any weights; it says nothing about a model."""
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        scale = 10.0 ** rng.uniform(-3, 3)
        lw = rng.standard_t(df=rng.uniform(0.5, 10), size=n) * scale + rng.uniform(-1e4, 1e4)
        path = X.nested_path(lw)
        gap = path["log_p_hat"] - path["mean_log_w"]
        assert np.all(gap >= -1e-9 * np.maximum(1, np.abs(lw).max())), (trial, gap.min())


def test_the_path_matches_importance_functions_at_every_k():
    g = torch.Generator().manual_seed(2)
    lw = torch.randn(300, 4, generator=g, dtype=torch.float64) * 4 - 140   # (n, B): four digits
    path = X.nested_path(lw)
    assert path["log_p_hat"].shape == (300, 4)
    for k in range(1, 301):
        np.testing.assert_allclose(path["log_p_hat"][k - 1], importance.log_mean_exp(lw[:k], 0).numpy(), rtol=1e-12)
        np.testing.assert_allclose(path["ess"][k - 1], importance.effective_sample_size(lw[:k]).numpy(), rtol=1e-9)
        np.testing.assert_allclose(path["mean_log_w"][k - 1], lw[:k].mean(0).numpy(), rtol=1e-12)


def test_float32_and_numpy_inputs_give_the_same_path():
    lw = torch.randn(100, generator=torch.Generator().manual_seed(3)) * 3 - 90   # float32, as a model's
    a, b = X.nested_path(lw), X.nested_path(lw.numpy())
    np.testing.assert_array_equal(a["log_p_hat"], b["log_p_hat"])
    assert a["log_p_hat"].dtype == np.float64


def test_largest_ess_fall_is_where_one_weight_outweighs_the_rest():
    lw = np.r_[np.zeros(40), 10.0, np.zeros(59)]               # 40 equal weights, one e^10 times larger, 59 more
    fall = X.largest_ess_fall(lw)
    assert fall["K"] == 41                                     # the step where the large weight arrives
    assert fall["ess_before"] == pytest.approx(40.0, rel=1e-12)           # 40 equal weights: ESS = K
    big = math.exp(10.0)
    assert fall["ess_after"] == pytest.approx((40 + big) ** 2 / (40 + big**2), rel=1e-12)   # about 1.0036
    assert fall["share"] == pytest.approx(big / (40 + big), rel=1e-12)    # over 99.8% of the sum
    assert fall["log_p_before"] == pytest.approx(0.0, abs=1e-12)
    assert fall["log_p_after"] == pytest.approx(math.log((40 + big) / 41), rel=1e-12)
    path = X.nested_path(lw)
    assert X.largest_ess_fall(lw, path) == fall                # the path given, the same answer


def test_largest_ess_fall_of_equal_weights_is_no_fall():
    fall = X.largest_ess_fall(np.full(30, -7.0))               # ESS = K: it only grows
    assert fall["ess_after"] > fall["ess_before"]
    assert fall["share"] == pytest.approx(1 / fall["K"], rel=1e-12)


# -- the weights' shares -------------------------------------------------------------------------


def test_log10_shares_sum_to_one_and_are_equal_for_equal_weights():
    lw = np.random.default_rng(4).normal(-200, 8, size=500)
    for k in (1, 7, 500):
        s = X.log10_shares(lw, k)
        assert s.shape == (k,) and np.all(s <= 0)
        assert (10.0 ** s).sum() == pytest.approx(1.0, rel=1e-12)
        np.testing.assert_allclose(10.0 ** s, np.exp(lw[:k]) / np.exp(lw[:k]).sum(), rtol=1e-9)
    np.testing.assert_allclose(X.log10_shares(np.full(20, -5.0), 20), -math.log10(20), rtol=1e-12)


def test_weights_carrying_half_the_sum():
    equal = np.zeros(10)
    assert X.weights_carrying(equal, 10) == 5                 # 5 of 10 equal weights are exactly half
    assert X.weights_carrying(equal, 5) == 3                  # 2.5 rounds up
    assert X.weights_carrying(equal, 10, share=0.9) == 9
    assert X.weights_carrying(equal, 1) == 1
    late = np.r_[np.zeros(100), 50.0]                         # 100 equal weights, then one e^50 times larger
    assert X.weights_carrying(late, 100) == 50                # before it arrives: half of the equal ones
    assert X.weights_carrying(late, 101) == 1                 # after: it alone
    shares = np.log([4.0, 1.0, 2.0, 1.0])                     # shares 1/2, 1/8, 1/4, 1/8
    assert X.weights_carrying(shares, 4) == 1
    assert X.weights_carrying(shares, 4, share=0.75) == 2
    assert X.weights_carrying(shares, 4, share=0.8) == 3


def test_histogram_counts_every_weight_and_its_mass_sums_to_one():
    lw = np.random.default_rng(5).standard_t(df=2, size=(1000, 3)) * 3 - 100
    edges = X.histogram_edges(lw, n_bins=30)
    assert len(edges) == 31 and edges[-1] == 0.0 and edges[0] == math.floor(edges[0])
    assert edges[0] <= X.log10_shares(lw, 1000).min() < edges[0] + 1
    for d in range(3):
        for k in (1, 2, 10, 1000):                             # every K fits in the same edges
            counts, mass = X.weight_histogram(lw[:, d], k, edges)
            assert counts.sum() == k
            assert mass.sum() == pytest.approx(1.0, rel=1e-9)


def test_histogram_of_equal_weights_is_one_bin_at_minus_log10_k():
    edges = np.linspace(-4, 0, 41)                             # bins of 0.1
    counts, mass = X.weight_histogram(np.zeros(100), 100, edges)   # every share 1/100: log10 = -2
    i = np.searchsorted(edges, -2.0, side="right") - 1
    assert counts[i] == 100 and counts.sum() == 100
    assert mass[i] == pytest.approx(1.0)
    counts, _ = X.weight_histogram(np.zeros(100), 1, edges)    # K = 1: the one weight is the whole sum
    assert counts[-1] == 1


# -- what a slider position shows ----------------------------------------------------------------


def test_summary_rows_are_the_path_at_k():
    lw = np.random.default_rng(6).normal(-80, 3, size=200)
    path = X.nested_path(lw)
    rows = X.summary(lw)
    assert list(rows) == X.k_values(200)
    for k, row in rows.items():
        assert row["K"] == k and row["n"] == 200
        assert row["ess"] == path["ess"][k - 1] and row["log_p_hat"] == path["log_p_hat"][k - 1]
        assert row["mean_log_w"] == path["mean_log_w"][k - 1]
        assert row["ess_fraction"] == pytest.approx(row["ess"] / k)
        assert row["reference"] == path["log_p_hat"][-1]
        assert row["half"] == X.weights_carrying(lw, k)
    assert rows[200]["log_p_hat"] == rows[200]["reference"]


def test_readout_and_table_print_the_same_numbers():
    lw = np.log(np.array([[3.0, 1.0], [1.0, 1.0]]))           # digit 0: weights 3, 1; digit 1: 1, 1
    row = X.summary(lw[:, 0], [2])[2]
    html = X.readout_html(row)
    assert '<b class="vae-k-ess">1.60</b>' in html             # (3 + 1)^2 / (9 + 1)
    assert '<b class="vae-k-ess-fraction">80%</b>' in html
    assert f'<b class="vae-k-log-p">{math.log(2):.2f}</b>' in html
    assert f'<b class="vae-k-mean">{0.5 * math.log(3):.2f}</b>' in html
    assert '<b class="vae-k-K">2</b>' in html and '<b class="vae-k-half">1</b>' in html
    lines = X.table(lw, [0, 1], [1, 2]).splitlines()
    assert len(lines) == 1 + 4
    assert lines[2].split() == ["#0", "2", "1.60", "80%", "1", f"{math.log(2):.2f}", f"{0.5 * math.log(3):.2f}"]
    assert lines[4].split() == ["#1", "2", "2.00", "100%", "1", "0.00", "0.00"]


# -- images ----------------------------------------------------------------------------------------


def _grey_columns(img, frame):
    """The columns inside the axes box that hold the bars' grey."""
    box = img[frame._top:frame._bottom, frame._cols[0]:frame._cols[-1]]
    return frame._cols[0] + np.nonzero((box == X._GREY_RGB).all(-1).any(0))[0]


def test_histogram_image_draws_the_bar_where_the_weights_are():
    edges = np.linspace(-4, 0, 41)
    frame = X.HistogramImage(edges, 100)
    assert len(_grey_columns(frame.rgb, frame)) == 0          # the frame itself holds no bar
    img = frame.pixels(np.zeros(100), 100)                    # all shares 10^-2: one bar over [-2, -1.9)
    i = np.searchsorted(edges, -2.0, side="right") - 1
    cols = _grey_columns(img, frame)
    assert cols.min() >= frame._cols[i] and cols.max() < frame._cols[i + 1] + 1
    assert (img[frame._top:frame._bottom] == X._RED_RGB).all(-1).any()   # the share line
    assert not np.array_equal(img, frame.pixels(np.zeros(100), 10))      # K = 10: elsewhere
    height = frame._bottom - frame._top
    for k, x in ((100, frame._x(-2.0)), (10, frame._x(-1.0))):          # the dashed line at log10(1/K)
        black = lambda im: (im[frame._top:frame._bottom, x - 1] == 0).all(-1).sum()
        assert black(frame.rgb) < 0.05 * height < 0.5 * height < black(frame.pixels(np.zeros(100), k))


def test_a_bin_of_one_weight_is_a_visible_bar():
    """On the log count axis a count of 1 stands well above the empty bins' baseline _EMPTY."""
    edges = np.linspace(-4, 0, 41)
    frame = X.HistogramImage(edges, 5000)                      # the notebook's count axis: up to 2 x 5000
    lw = np.r_[0.0, np.full(99, -2.0 * math.log(10))]          # one weight 100 times the 99 others
    counts, _ = X.weight_histogram(lw, 100, edges)
    i = int(np.nonzero(counts == 1)[0][0])                      # the bin of the one large weight
    img = frame.pixels(lw, 100)
    column = img[frame._top:frame._bottom, (frame._cols[i] + frame._cols[i + 1]) // 2]
    height = (column == X._GREY_RGB).all(-1).sum()
    assert height > 0.08 * (frame._bottom - frame._top), height   # 0.7 as the baseline gave under 4%


def test_at_k_1_the_bar_and_the_dashed_line_stand_clear_of_the_right_spine():
    edges = np.linspace(-4, 0, 41)
    frame = X.HistogramImage(edges, 100)
    x = frame._x(0.0)                                           # log10(1/1): the one weight is the whole sum
    assert x <= frame._right - 4                                # the axis runs past 0
    img = frame.pixels(np.zeros(100), 1)
    height = frame._bottom - frame._top
    black = (img[frame._top:frame._bottom, x - 1] == 0).all(-1).sum()
    assert black > 0.5 * height                                 # the dashed line, drawn where it is seen
    assert (frame.rgb[frame._top:frame._bottom, x - 1] == 0).all(-1).sum() < 0.05 * height
    grey = (img[frame._top:frame._bottom, frame._left:frame._right + 1] == X._GREY_RGB).all(-1).any(0)
    cols = frame._left + np.nonzero(grey)[0]
    assert len(cols) and cols.max() < frame._right - 2          # the K = 1 bar, left of the spine


def test_path_marker_moves_right_with_k():
    path = X.nested_path(np.random.default_rng(7).normal(-50, 2, size=500))
    image = X.PathImage(path)
    cols = [image.columns_rows(k)[0][0] for k in (1, 10, 100, 500)]
    assert cols == sorted(cols) and len(set(cols)) == 4
    img = image.with_marker(10)
    col, top, bottom = image.columns_rows(10)[1]
    assert (img[top:bottom, col - 1] == X._RED_RGB).all()
    assert not (image.rgb[top:bottom, col - 1] == X._RED_RGB).all()   # the copy, not the frame


# -- the widget, headless ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explorer():
    """An explorer over 3 of 4 digits' heavy-tailed log-weights (K up to 200), and the weights."""
    lw = torch.as_tensor(np.random.default_rng(8).standard_t(df=1.5, size=(200, 4)) * 2 - 100)
    x = torch.rand(4, 784, generator=torch.Generator().manual_seed(9))
    return X.KExplorer(lw, x=x, labels=[5, 0, 4, 1], digits=[0, 2, 3]), lw


def test_an_untrained_models_weights_end_at_importances_estimate():
    model = build(VAEConfig(z_dim=3, hidden=(16,)), seed=0).eval()
    x = torch.rand(2, 784, generator=torch.Generator().manual_seed(10))
    lw = importance.importance_log_weights(model, x, 100, generator=torch.Generator().manual_seed(11))
    e = X.KExplorer(lw, x=x)
    assert [v for _, v in e.digit.options] == [0, 1] and e.digit.options[0][0] == "#0"
    e.digit.value, e.k.value = 1, 100
    assert e.rows[1][100]["log_p_hat"] == pytest.approx(importance.log_mean_exp(lw[:, 1].double()).item(), rel=1e-12)
    assert f"{importance.log_mean_exp(lw[:, 1].double()).item():.2f}</b>" in e.readout.value


def test_widget_parts_and_defaults(explorer):
    e, lw = explorer
    assert [v for _, v in e.k.options] == X.k_values(200)
    assert e.k.value == 1 and e.digit.value == 0
    assert [v for _, v in e.digit.options] == [0, 2, 3] and e.digit.options[1][0] == "#2 (a 4)"
    for part, css in [(e.k, "vae-k"), (e.digit, "vae-k-digit"), (e.image, "vae-k-histogram"),
                      (e.path, "vae-k-path"), (e.readout, "vae-k-readout"), (e.digit_image, "vae-k-digit-image")]:
        assert css in part._dom_classes


def test_moving_k_shows_that_k(explorer):
    e, lw = explorer
    e.digit.value = 0
    before = e.redraws
    for k in (10, 200, 2):
        e.k.value = k
        assert e.image.value == e.histograms[0][k]
        row = X.summary(lw[:, 0], [k])[k]                      # recomputed from the weights
        assert e.readout.value == X.readout_html(row)
        assert e.path.value == X.to_png(e.path_images[0].with_marker(k), 1)   # the prerendered PNG is this K's
    assert e.redraws == before + 3
    assert e.histograms[0][10] != e.histograms[0][200]


def test_picking_a_digit_shows_its_weights(explorer):
    e, lw = explorer
    e.k.value = 50
    e.digit.value = 0
    html0, img0 = e.readout.value, e.image.value
    e.digit.value = 3
    assert e.readout.value == X.readout_html(X.summary(lw[:, 3], [50])[50])
    assert e.readout.value != html0 and e.image.value != img0
    assert e.digit_image.value == e.digit_pngs[3]
    assert e.path.value == X.to_png(e.path_images[3].with_marker(50), 1)   # digit 3's path, marker at K = 50
    e.digit.value = 0


def test_table_and_figure(explorer):
    import matplotlib.pyplot as plt

    e, lw = explorer
    lines = e.table().splitlines()
    assert len(lines) == 1 + 3 * 4                               # 3 digits x K in (1, 10, 100, 200)
    assert lines[-1].split()[:4] == ["#3", "(a", "1)", "200"]
    fig = e.figure(digit=0, ks=(1, 20, 200))
    titles = [ax.get_title() for ax in fig.axes]
    assert "digit #0 (a 5), K = 20" in titles
    assert len(fig.axes) == 3 * 2 + 2                            # 3 histograms with their twins, 2 paths
    plt.close(fig)
