"""vae_utils.explore_training without a browser: what one epoch's redraw computes (the
reconstructions of the fixed digits, the bound curve's data, the readout), what the slider
shows for a snapshot, checked for values; and the TrainingMonitor training a tiny model for
real, its redraws counted and its slider moved by setting .value."""
import numpy as np
import pytest
import torch

from vae_utils import explore_training as T
from vae_utils.evaluate import lower_bound
from vae_utils.models import VAEConfig, build, reconstruct
from vae_utils.png import to_png
from vae_utils.run import History
from vae_utils.train import TrainConfig
from vae_utils.widgets import model_at

SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="tanh")
SHAPE = (4, 5)  # binary_data's images


def _config(**kw):
    return TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 0.05, "snapshot_epochs": (1, 2, 3), **kw})


def test_first_of_each_label():
    assert T.first_of_each_label([3, 1, 3, 0, 1, 2]) == [3, 1, 5, 0]
    assert T.first_of_each_label(torch.tensor([2, 2, 0])) == [2, 0]


def test_bound_curve_from_a_history():
    h = History(samples=[10, 20, 30], epoch=[1, 2, 3], train=[-9.0, -7.0, -6.5], test=[-8.0, -6.0, -5.5])
    curve = T.bound_curve(h, before=-12.0)
    assert curve == T.BoundCurve(epochs=[0, 1, 2, 3], held_out=[-12.0, -8.0, -6.0, -5.5], train=[-9.0, -7.0, -6.5])
    with pytest.raises(ValueError, match="eval_every=1"):
        T.bound_curve(History(samples=[20, 40], epoch=[2, 4], train=[-1.0, -1.0], test=[-1.0, -1.0]), -2.0)


def test_bound_readout_states_that_epochs_bounds():
    curve = T.BoundCurve([0, 1, 2], [-543.4321, -180.126, -150.5], [-220.0, -160.25])
    assert T.bound_readout(curve, 0) == "before training: held-out bound -543.43 nats"
    assert T.bound_readout(curve, 2) == ("after epoch 2: held-out bound -150.50 nats · "
                                         "train average during epoch 2: -160.25 nats")


def test_reconstruction_strip_is_digits_over_reconstructions(binary_data):
    model = build(SMALL, seed=0)
    x = binary_data.x[:3]
    strip = T.reconstruction_strip(model, x, SHAPE)
    assert strip.shape == (2 * 4 + 1, 3 * 6 - 1)
    rec = reconstruct(model, x).reshape(3, *SHAPE).numpy()
    for k in range(3):
        np.testing.assert_array_equal(strip[:4, 6 * k:6 * k + 5], x[k].reshape(SHAPE).numpy())
        np.testing.assert_array_equal(strip[5:, 6 * k:6 * k + 5], rec[k])


def test_no_z_bound_is_the_average_images_bernoulli_log_likelihood():
    x_train = torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 0.5], [1.0, 0.0, 0.5], [1.0, 0.0, 0.5]])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.25]])
    # y = the training mean (0.75, 0, 0.5), its 0 clamped to 1e-3
    per_digit = [np.log(0.75) + np.log(1 - 1e-3) + np.log(0.5),
                 np.log(0.25) + np.log(1e-3) + 0.25 * np.log(0.5) + 0.75 * np.log(0.5)]
    assert T.no_z_bound(x_train, x) == pytest.approx(np.mean(per_digit), rel=1e-12)
    assert T.no_z_bound(x_train, x, clamp=1e-2) == pytest.approx(
        np.mean([per_digit[0] - np.log(1 - 1e-3) + np.log(1 - 1e-2), per_digit[1] - np.log(1e-3) + np.log(1e-2)]))
    # on its own training images the average image beats any other fixed y, e.g. y = 0.5: -3 log 2 per digit
    assert T.no_z_bound(x_train, x_train) > -3 * np.log(2)


def test_curve_ylim_starts_at_epoch_one():
    curve = T.BoundCurve([0, 1, 2], [-550.0, -180.0, -150.0], [-220.0, -160.0])
    assert T.curve_ylim(curve) == (pytest.approx(-220.0 - 0.08 * 70), pytest.approx(-150.0 + 0.08 * 70))
    assert T.curve_ylim(curve, reference=-240.0, margin=0.0) == (-240.0, -150.0)
    assert T.curve_ylim(T.BoundCurve([0], [-550.0], [])) is None  # before epoch 1: matplotlib's own range


def test_draw_bound_curve_plots_the_data_and_marks_the_epoch():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = T.BoundCurve([0, 1, 2], [-500.0, -180.0, -150.0], [-220.0, -160.0])
    fig, ax = plt.subplots()
    T.draw_bound_curve(ax, curve, total_epochs=4, marked=1, reference=-200.0)
    held, train, ref, ring = [ax.lines[i] for i in (0, 1, 2, 4)]
    np.testing.assert_array_equal(held.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(held.get_ydata(), [-500.0, -180.0, -150.0])
    np.testing.assert_array_equal(train.get_xdata(), [0.5, 1.5])  # each epoch's average at its middle
    np.testing.assert_array_equal(train.get_ydata(), [-220.0, -160.0])
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([1], [-180.0])
    assert list(ref.get_ydata()) == [-200.0, -200.0] and ref.get_label() == "decoder that ignores z: -200.0"
    assert ax.get_xlim() == (-0.3, 4.3)
    assert ax.get_ylim() == pytest.approx(T.curve_ylim(curve, -200.0))  # epoch 0's -500 is off the axis
    note, = ax.texts
    assert note.get_text() == "epoch 0,\noff the axis:\n-500.00"
    plt.close(fig)
    png1, png2 = T.curve_png(curve, 4, 1), T.curve_png(curve, 4, 2)
    assert png1[:8] == b"\x89PNG\r\n\x1a\n" and png1 != png2 != T.curve_png(curve, 4, 2, reference=-200.0)


def test_monitor_redraws_once_per_epoch_and_its_slider_shows_the_snapshots(binary_data):
    held_out = binary_data[:64]
    config = _config()
    mon = T.TrainingMonitor(SMALL, held_out.x[:3], image_shape=SHAPE, reference=-12.5)
    assert mon.epoch.disabled and mon.status.value == "waiting for training to start" and mon.pngs is None
    shown = []
    mon.image.observe(lambda change: shown.append(change["new"]), names="value")
    run = mon.train(binary_data, config, held_out)

    # live: one redraw before training, then one per epoch, each of that epoch's weights
    assert mon.live_epochs == [1, 2, 3] and len(shown) == 1 + 3  # the slider opens on the last: no change
    assert mon.status.value.startswith("done: epoch 3/3 · 3 live redraws, one per epoch")
    for e in range(4):
        assert shown[e] == to_png(mon.strips[e], mon.scale)
    # the snapshots are every epoch's weights, and epoch 0 the seeded weights before training
    assert sorted(mon.snapshots) == [0, 1, 2, 3]
    for k, v in build(SMALL, seed=config.seed).state_dict().items():
        torch.testing.assert_close(mon.snapshots[0][k], v)
    np.testing.assert_array_equal(mon.strips[3], T.reconstruction_strip(run.model, held_out.x[:3], SHAPE))
    for e in range(4):  # the strips kept from the live redraws are those of the kept weights
        np.testing.assert_array_equal(mon.strips[e], T.reconstruction_strip(model_at(SMALL, mon.snapshots[e]),
                                                                            held_out.x[:3], SHAPE))
    # the curve: the held-out bound of each snapshot, same eps each time; the train averages
    curve = mon.curve_data
    assert curve.held_out[1:] == run.history.test and curve.train == run.history.train
    for e in (0, 2):
        model = model_at(SMALL, mon.snapshots[e])
        assert curve.held_out[e] == pytest.approx(lower_bound(model, held_out, seed=config.seed), abs=1e-5)
    assert curve.held_out[3] > curve.held_out[0] + 1  # it learned

    # afterwards: the slider over epochs 0..3, at the last; moving it swaps that epoch's frame
    assert not mon.epoch.disabled and list(mon.epoch.options) == [0, 1, 2, 3] and mon.epoch.value == 3
    assert mon.readout.value == T.bound_readout(curve, 3)
    before, n = (mon.image.value, mon.curve.value), mon.redraws
    mon.epoch.value = 1
    assert mon.redraws == n + 1
    assert mon.image.value == to_png(mon.strips[1], mon.scale) != before[0]
    assert mon.curve.value == T.curve_png(curve, 3, 1, reference=-12.5) != before[1]
    assert mon.readout.value == T.bound_readout(curve, 1)


def test_monitor_asks_for_every_epoch(binary_data):
    mon = T.TrainingMonitor(SMALL, binary_data.x[:2], image_shape=SHAPE)
    for bad in (_config(eval_every=2), _config(snapshot_epochs=(3,))):
        with pytest.raises(ValueError, match="eval_every=1, snapshot_epochs"):
            mon.train(binary_data, bad, binary_data[:32])


def test_static_figure_rows_and_curve(binary_data):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mon = T.TrainingMonitor(SMALL, binary_data.x[:3], image_shape=SHAPE)
    mon.train(binary_data, _config(epochs=2, snapshot_epochs=(1, 2)), binary_data[:32])
    fig = mon.figure(epochs=[0, 2])
    assert len(fig.axes) == 1 + 2 + 1  # the digits, two epochs' reconstructions, the curve
    assert [a.get_ylabel() for a in fig.axes[:3]] == ["digits", "before", "epoch 2"]
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), mon.strips[2][5:])
    np.testing.assert_array_equal(fig.axes[3].lines[0].get_ydata(), mon.curve_data.held_out)
    plt.close(fig)
