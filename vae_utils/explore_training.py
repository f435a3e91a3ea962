"""Watch a VAE train (notebook 03). Not imported by the core.

While `vae_utils.train.train` runs, its `callback` hands over the Run after every epoch; the
monitor then redraws the reconstructions of a few fixed test digits and the bound curve.
When training ends, a slider goes back over the weights kept after every epoch (the History's
`snapshots`, and the weights before training), each linked to the bound at that epoch.

    first_of_each_label    the digits to watch: the first of each class
    bound_curve            the curve's data: the held-out bound before training and after every
                           epoch, and the train objective averaged over each epoch
    no_z_bound             a reference: the bound of the best decoder that ignores z (y = the
                           average training image), what learning the average image alone gives
    reconstruction_strip   [the digits; their reconstructions E[x|z = mu(x)]] as one image
    draw_bound_curve       the curve on a matplotlib Axes, one epoch marked, the reference beside it
    curve_png              that drawing as PNG bytes (rendered without pyplot)
    bound_readout          the bounds at one epoch, in words

The two curves measure different things, and the plot says so. The held-out bound is
estimator B (eq. 7) on fixed test digits after the epoch, with the same eps every time
(`evaluate.lower_bound`, seeded: what `train` records as History.test): it moves only
because the weights moved. The train curve is the average of the minibatch estimates taken
during the epoch while the weights moved (History.train); it is drawn at the middle of its epoch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import ipywidgets as _widgets
import numpy as np
import torch

from .evaluate import lower_bound
from .models import build, reconstruct
from .plots import image_grid
from .png import to_png
from .widgets import image_widget

# -- pure functions --------------------------------------------------------------------------


def first_of_each_label(labels) -> list[int]:
    """The index of the first datapoint of each label, in the labels' order (0, 1, ..., 9)."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    return [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]


@dataclass
class BoundCurve:
    """The bound curve of a run so far, in nats per datapoint.

    held_out[e]: the bound on the held-out digits with the weights after epoch e (e = 0:
    before training), for e in `epochs` = 0, 1, ..., done. train[e - 1]: the train objective
    averaged over the minibatches of epoch e, taken while the weights moved.
    """

    epochs: list[int]
    held_out: list[float]
    train: list[float]


def bound_curve(history, before: float) -> BoundCurve:
    """The curve of a History recorded with a held-out split every epoch (eval_every = 1), and
    the held-out bound `before` training."""
    if history.epoch != list(range(1, len(history.epoch) + 1)):
        raise ValueError(f"the History has evaluations after epochs {history.epoch}; a curve of every "
                         "epoch needs TrainConfig(eval_every=1) and a held-out split passed to train")
    return BoundCurve([0, *history.epoch], [float(before), *history.test], [float(v) for v in history.train])


def bound_readout(curve: BoundCurve, epoch: int) -> str:
    """The bounds at `epoch`, in words (epoch 0: before training)."""
    held_out = curve.held_out[curve.epochs.index(epoch)]
    if epoch == 0:
        return f"before training: held-out bound {held_out:.2f} nats"
    return (f"after epoch {epoch}: held-out bound {held_out:.2f} nats · "
            f"train average during epoch {epoch}: {curve.train[epoch - 1]:.2f} nats")


@torch.no_grad()
def no_z_bound(x_train, x, clamp: float = 1e-3) -> float:
    """The bound on x (N, D), in nats per datapoint, of a decoder that ignores z and says
    y = the average of x_train for every digit, clamped to [clamp, 1 - clamp] (a pixel blank in
    every training image would otherwise give log 0 on a test digit inked there). Its best
    encoder is q(z|x) = p(z), so the KL term is 0 and the bound is the Bernoulli log-likelihood
    sum_i x_i log y_i + (1 - x_i) log(1 - y_i) (cell 16 of notebook 03), averaged over x."""
    y = torch.as_tensor(x_train).double().mean(0).clamp(clamp, 1 - clamp)
    x = torch.as_tensor(x).double().to(y.device)
    return (x @ y.log() + (1 - x) @ (1 - y).log()).mean().item()


def reconstruction_strip(model, x, image_shape=(28, 28)) -> np.ndarray:
    """One image: the digits x (n, D) in the top row, their reconstructions E[x|z = mu(x)] under it."""
    x = torch.as_tensor(x).to(next(model.parameters()).device)
    rows = torch.cat([x, reconstruct(model, x)]).reshape(-1, *image_shape)
    return image_grid(rows.cpu(), nrow=len(x))


def curve_ylim(curve: BoundCurve, reference: float | None = None, margin: float = 0.08) -> tuple | None:
    """The y-range from epoch 1 on: every bound after epoch 0, every train average and the
    reference, with `margin` of that span added on each side; None before epoch 1 is done.
    The untrained model's bound (about -550 nats) would squash the rest into a thin band."""
    values = [*curve.held_out[1:], *curve.train, *([] if reference is None else [reference])]
    if not curve.held_out[1:]:
        return None
    lo, hi = min(values), max(values)
    return lo - margin * (hi - lo), hi + margin * (hi - lo)


def draw_bound_curve(ax, curve: BoundCurve, total_epochs: int, marked: int | None = None,
                     held_out_name: str = "held-out digits", reference: float | None = None,
                     reference_name: str = "decoder that ignores z"):
    """The held-out bound after each epoch (solid, dots) and the train average of each epoch
    (dashed, at the epoch's middle) against epochs 0..total_epochs; a ring and a dotted line
    mark epoch `marked`; a grey line the `reference` bound. Once epoch 1 is done the y-range
    starts there (`curve_ylim`) and epoch 0's bound, below the axis, is written at the bottom left."""
    from matplotlib.ticker import MaxNLocator

    ax.plot(curve.epochs, curve.held_out, "-o", ms=4, color="C0",
            label=f"{held_out_name}, after the epoch (same ε each time)")
    ax.plot(np.arange(1, len(curve.train) + 1) - 0.5, curve.train, "--s", ms=3, color="C1",
            label="training minibatches, averaged over the epoch")
    if reference is not None:
        ax.axhline(reference, color="0.45", ls="-.", lw=1, label=f"{reference_name}: {reference:.1f}")
    if marked is not None:
        b = curve.held_out[curve.epochs.index(marked)]
        ax.axvline(marked, color="k", ls=":", lw=1)
        ax.plot([marked], [b], "o", mfc="none", mec="k", ms=11, mew=1.5)
    ylim = curve_ylim(curve, reference)
    if ylim is not None:
        ax.set_ylim(*ylim)
        ax.text(0.02, 0.03, f"epoch 0,\noff the axis:\n{curve.held_out[0]:.2f}", transform=ax.transAxes, fontsize=7,
                color="C0", ha="left", va="bottom")
    ax.set_xlim(-0.3, total_epochs + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (0: before training)")
    ax.set_ylabel("lower bound (nats per digit)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def curve_png(curve: BoundCurve, total_epochs: int, marked: int | None = None,
              held_out_name: str = "held-out digits", reference: float | None = None,
              size=(4.6, 3.0), dpi: int = 100) -> bytes:
    """`draw_bound_curve` rendered to PNG bytes (matplotlib's Agg canvas, no pyplot figure)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)  # fixed margins: a layout engine would double the time
    draw_bound_curve(fig.add_axes((0.16, 0.15, 0.81, 0.82)), curve, total_epochs, marked, held_out_name, reference)
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


# -- the widget ------------------------------------------------------------------------------


class TrainingMonitor(_widgets.VBox):
    """Train a fresh VAE and watch it: `monitor.train(data, config, held_out)` (display the
    monitor first). After every epoch the callback redraws the reconstructions of the digits
    `x` (n, D) and the bound curve; afterwards an epoch slider shows the kept weights of any
    epoch, the curve marking it and a readout stating its bounds.

    model_config: the VAEConfig to build (seeded by the TrainConfig's seed). reference: a bound
    drawn as a line on the curve (e.g. `no_z_bound` on the held-out digits), or None. Parts:
    .status, .image (digits over reconstructions, PNG), .curve (PNG), .readout (HTML), .epoch
    (SelectionSlider, disabled until training ends). CSS classes: vae-train-status,
    vae-train-recons, vae-train-curve, vae-train-readout, vae-train-epoch. .strips {epoch:
    image}: each epoch's reconstructions as the live redraw drew them (epoch 0: before
    training). After training: .curve_data (BoundCurve), .snapshots {epoch: weights},
    .pngs {epoch: (reconstructions PNG, curve PNG, readout)}: what the slider swaps in,
    .live_epochs (the epochs the callback redrew, in order), .seconds (training time).
    .redraws counts every redraw, live or by the slider.
    """

    def __init__(self, model_config, x, image_shape=(28, 28), scale: int = 2,
                 held_out_name: str = "held-out digits", reference: float | None = None):
        self.model_config, self.image_shape, self.scale = model_config, image_shape, scale
        self.held_out_name, self.reference = held_out_name, reference
        self.x = torch.as_tensor(x).detach().cpu()
        self.status = _widgets.HTML("waiting for training to start")
        self.status.add_class("vae-train-status")
        width = len(self.x) * (image_shape[1] + 1) * scale
        self.image = image_widget(to_png(image_grid(np.ones((2 * len(self.x), *image_shape)), len(self.x)), scale),
                                   "vae-train-recons", width)
        self.curve = image_widget(b"", "vae-train-curve", 460)
        self.readout = _widgets.HTML()
        self.readout.add_class("vae-train-readout")
        self.epoch = _widgets.SelectionSlider(options=[0], value=0, description="epoch", disabled=True,
                                              continuous_update=True)
        self.epoch.add_class("vae-train-epoch")
        self.live_epochs, self.redraws, self.seconds = [], 0, None
        self.curve_data = self.snapshots = self.pngs = None
        self.strips = {}
        self._ready = False
        self.epoch.observe(self._show, names="value")
        caption = _widgets.HTML("top: the test digits; bottom: reconstructions E[x | z = μ(x)]")
        caption.add_class("vae-train-caption")
        super().__init__([self.status, caption, self.image, self.curve, self.epoch, self.readout])

    def train(self, data, config, held_out):
        """Train a fresh model on `data` with `config`, redrawing after every epoch; returns the Run.

        config must evaluate after every epoch (eval_every=1) and keep the weights after every
        epoch (snapshot_epochs=(1, ..., epochs)); held_out: the split of the held-out bound.
        """
        from .train import train

        if config.eval_every != 1 or set(config.snapshot_epochs) != set(range(1, config.epochs + 1)):
            raise ValueError("watch a run with TrainConfig(eval_every=1, snapshot_epochs=tuple(range(1, "
                             "epochs + 1))): the curve needs every epoch's bound, the slider every epoch's weights")
        self.total, self._ready = config.epochs, False
        model = build(self.model_config, config.seed, data.x.device)
        self._initial = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.before = lower_bound(model, held_out, seed=config.seed)  # the same eps as train's evaluations
        self.live_epochs, self.strips, t0 = [], {}, time.perf_counter()
        self._live(model, BoundCurve([0], [self.before], []), 0)
        run = train(model, data, config, held_out, progress=False,
                    callback=lambda r: self._live(r.model, bound_curve(r.history, self.before), r.epoch))
        self.seconds = time.perf_counter() - t0
        self._finish(run)
        return run

    def _live(self, model, curve: BoundCurve, epoch: int):
        """One redraw while training: after `epoch` (0: before training). Keeps the strip for the slider."""
        self.strips[epoch] = reconstruction_strip(model, self.x, self.image_shape)
        self.image.value = to_png(self.strips[epoch], self.scale)
        self.curve.value = curve_png(curve, self.total, epoch, self.held_out_name, self.reference)
        self.readout.value = bound_readout(curve, epoch)
        if epoch:
            self.live_epochs.append(epoch)
        self.status.value = (f"training: epoch {epoch}/{self.total} · redrawn after epochs "
                             f"{', '.join(map(str, self.live_epochs)) or 'none yet'}")
        self.redraws += 1

    def _finish(self, run):
        """Prerender every epoch's frame (the live redraws' strips, the whole curve marking that
        epoch), then hand the slider to the reader."""
        self.curve_data = bound_curve(run.history, self.before)
        self.snapshots = {0: self._initial, **run.history.snapshots_by_epoch()}
        self.pngs = {e: (to_png(s, self.scale),
                         curve_png(self.curve_data, self.total, e, self.held_out_name, self.reference),
                         bound_readout(self.curve_data, e)) for e, s in sorted(self.strips.items())}
        self.epoch.options = list(self.pngs)
        self.epoch.value = self.total
        self.epoch.disabled = False
        self._ready = True
        self._show()
        self.status.value = (f"done: epoch {self.total}/{self.total} · {len(self.live_epochs)} live redraws, "
                             f"one per epoch, in {self.seconds:.0f} s · move the slider to see any epoch again")

    def _show(self, change=None):
        if not self._ready:
            return
        self.image.value, self.curve.value, self.readout.value = self.pngs[self.epoch.value]
        self.redraws += 1

    def figure(self, epochs=None, size: float = 0.55):
        """The same content as a static figure: the digits and their reconstructions after
        `epochs` (default: every epoch kept), beside the whole bound curve."""
        import matplotlib.pyplot as plt

        epochs = list(self.strips if epochs is None else epochs)
        n = len(self.x)
        fig = plt.figure(figsize=(size * n + 5.4, max(size * (len(epochs) + 1) + 0.8, 3.2)), layout="constrained")
        gs = fig.add_gridspec(len(epochs) + 1, 2, width_ratios=[size * n, 5.0])
        h = self.image_shape[0]
        for r, e in enumerate([None, *epochs]):
            ax = fig.add_subplot(gs[r, 0])
            strip = self.strips[epochs[0] if e is None else e]
            ax.imshow(strip[:h] if e is None else strip[h + 1:], cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel("digits" if e is None else ("before" if e == 0 else f"epoch {e}"),
                          rotation=0, ha="right", va="center", fontsize=9)
        fig.axes[0].set_title("reconstructions E[x | z = μ(x)] after each epoch", fontsize=10)
        draw_bound_curve(fig.add_subplot(gs[:, 1]), self.curve_data, self.total, None, self.held_out_name,
                         self.reference)
        fig.axes[-1].set_title("the bound while it trained")
        return fig
