"""Walk the latent units of a VAE one coordinate at a time (notebook 03). Not imported by the core.

Start at a test digit's code z = mu(x), the mean of q(z|x), move one coordinate z_j, and decode:
the image E[x|z] changes as much as the decoder listens to unit j. The units are ordered by
their KL, KL(q(z_j|x) || N(0, 1)) averaged over the data (`evaluate.kl_per_dimension`), the
nats the bound pays for them. A unit with no KL has q(z_j|x) = N(0, 1) whatever x is: it
tells the decoder nothing about the digit, and during training the decoder saw only noise in
it, so it has no use for it. How much the picture moves is measured, not assumed:

    units_by_kl     unit indices, the most KL first
    unit_ranges     each slider's range: the codes' range over the data, widened to the prior's +-3
    slider_bounds   that range, widened by less than a step so that mu_j(x) lies on the slider's grid
    moved_code      mu with some coordinates set to other values
    image_change    how far a decoded image is from a reference (the reconstruction at mu):
                    the mean and the largest |change of a pixel's probability|
    change_text     that readout in words, with a verdict against two fixed scales: one grey
                    level of the 8-bit image shown (1/255), and half a pixel's range (0.5)
    unit_walk       the decoded images as one unit walks through given values, and their changes
    end_changes     per digit, the change when one unit goes to either end of its slider

`UnitExplorer` wires them to a Dropdown (the digit), one FloatSlider per unit, each with its
KL and its change readout beside it, and a Button back to mu(x); `.figure()` draws the same
walks as a static grid.
"""
from __future__ import annotations

from typing import NamedTuple

import ipywidgets as _widgets
import numpy as np
import torch

from .latent import encode_means
from .plots import image_grid
from .png import to_png
from .widgets import image_widget, decode

GREY_LEVEL = 1 / 255  # one step of the 8-bit grey image the widget shows (png.to_png)
STROKE = 0.5          # half a pixel's range of probability
PRIOR_LIM = 3.0       # the prior N(0, 1) puts 99.7% of each coordinate within +-3

# -- pure functions --------------------------------------------------------------------------


def units_by_kl(kl) -> np.ndarray:
    """Unit indices ordered by KL, the most first (ties: the lower index first)."""
    return np.argsort(-_numpy(kl).astype(np.float64), kind="stable")


def unit_ranges(mu, prior_lim: float = PRIOR_LIM) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) per unit for codes mu (N, J): the range of mu_j over the data, widened to hold
    the prior's [-prior_lim, prior_lim], so a slider covers every code and the prior's bulk."""
    mu = np.asarray(mu, dtype=np.float64)
    return np.minimum(mu.min(0), -prior_lim), np.maximum(mu.max(0), prior_lim)


def slider_bounds(start: float, lo: float, hi: float, step: float) -> tuple[float, float]:
    """(min, max) of a slider of `step` that covers [lo, hi] and has `start` on its grid.

    A front end's slider takes only the values min + k step and snaps any other value to the
    nearest one, sending it back: a slider set to mu_j(x) off its grid would move by itself.
    So min = start - k step for the least whole k that reaches lo, and max likewise: the range
    is [lo, hi] widened by less than a step at each end.
    """
    below, above = np.ceil((start - lo) / step - 1e-9), np.ceil((hi - start) / step - 1e-9)
    return float(start - below * step), float(start + above * step)


def moved_code(mu, units, values) -> np.ndarray:
    """A copy of the code mu (J,) with coordinate units[k] set to values[k]; the others stay."""
    z = np.array(mu, dtype=np.float32)
    z[np.asarray(units, dtype=int)] = values
    return z


class ImageChange(NamedTuple):
    """How far an image moved from a reference, in units of a pixel's probability (0 to 1)."""

    mean: float  # mean over pixels of |y - y_ref|
    max: float   # the largest |y - y_ref| of any pixel


def image_change(image, reference) -> ImageChange:
    """Mean and largest |change of pixel probability| from `reference` to `image` (same shape)."""
    d = np.abs(np.asarray(image, dtype=np.float64) - np.asarray(reference, dtype=np.float64))
    return ImageChange(float(d.mean()), float(d.max()))


def change_verdict(change: ImageChange) -> str:
    """What the largest pixel change measures: under a grey level of the 8-bit image shown
    ("no visible change"), under half a pixel's range, or half its range or more."""
    if change.max < GREY_LEVEL:
        return "no visible change"
    if change.max < STROKE:
        return f"no pixel changes by {STROKE} or more"
    return f"some pixel changes by {STROKE} or more"


def change_text(change: ImageChange) -> str:
    """The readout: 'mean |Δy| 0.0123 · max 0.456 · <verdict>'."""
    return f"mean |Δy| {change.mean:.4f} · max {change.max:.3f} · {change_verdict(change)}"


def unit_walk(model, mu, unit: int, values, image_shape=(28, 28)) -> tuple[np.ndarray, list]:
    """Walk unit `unit` of the code mu (J,) through `values`, the other coordinates staying at
    mu: the decoded images (n, H, W) and each one's change from the reconstruction at mu."""
    values = np.asarray(values, dtype=np.float32)
    codes = np.stack([np.asarray(mu, dtype=np.float32)] + [moved_code(mu, [unit], [v]) for v in values])
    images = decode(model, codes, image_shape)                 # one decoder pass: mu, then the walk
    return images[1:], [image_change(img, images[0]) for img in images[1:]]


def end_changes(model, mus, unit: int, lo: float, hi: float, image_shape=(28, 28)) -> list[ImageChange]:
    """For each code mu in mus (N, J), move `unit` alone to each end of its range [lo, hi]: the
    larger mean and the larger max change of the two ends, one ImageChange per code."""
    out = []
    for mu in np.atleast_2d(mus):
        a, b = unit_walk(model, mu, unit, [lo, hi], image_shape)[1]
        out.append(ImageChange(max(a.mean, b.mean), max(a.max, b.max)))
    return out


def _numpy(a) -> np.ndarray:
    """A tensor (on any device) or array-like as a numpy array."""
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _digit_names(labels, n: int) -> list:
    return [(f"#{i}" + ("" if labels is None else f" (a {int(labels[i])})"), i) for i in range(n)]


# -- the widget ------------------------------------------------------------------------------


class UnitExplorer(_widgets.VBox):
    """Pick a test digit; sliders move single coordinates of its code z, starting at mu(x).

    model: a VAE; x: the data (N, D) whose codes set the sliders' ranges (`unit_ranges`, each
    widened by less than a step so that the digit's mu_j(x) is on the grid: `slider_bounds`); the
    dropdown offers the first `n_choices`. kl: each unit's average KL (J,), in nats. The
    sliders are the `top` units with the most KL and, if `bottom` > 0, the `bottom` units with
    the least. Beside each: its KL and the change (`change_text`) that moving it alone from
    mu(x) makes. The image decodes all the sliders' moves together: [digit | reconstruction at
    mu | decoded at z | |change|]; under it, the change of all moves together. The button puts
    every slider back at mu(x).

    Parts: .digit (Dropdown), .reset (Button), .units (the unit indices shown), .sliders,
    .unit_readouts (HTML), .image (PNG), .readout (HTML). CSS classes: the box vae-units and
    vae-units-J<J>; vae-units-digit, vae-units-reset, vae-unit-slider (each slider) plus
    vae-unit-top or vae-unit-bottom, vae-unit-readout, vae-units-image, vae-units-readout.
    """

    def __init__(self, model, x, kl, labels=None, top: int = 6, bottom: int = 0, n_choices: int = 100,
                 index: int = 0, step: float = 0.05, image_shape=(28, 28), scale: int = 4):
        self.model, self.image_shape, self.scale = model, image_shape, scale
        x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
        self.codes = encode_means(model, x)[0]                           # mu(x) of every datapoint
        self.x = x[:n_choices].cpu().numpy().reshape(-1, *image_shape)
        self.kl = _numpy(kl).astype(np.float64)
        order = units_by_kl(self.kl)
        self.top, self.bottom = [int(j) for j in order[:top]], [int(j) for j in order[len(order) - bottom:]]
        self.units = self.top + self.bottom
        self.lo, self.hi = unit_ranges(self.codes)
        labels = None if labels is None else _numpy(labels)
        self.digit = _widgets.Dropdown(options=_digit_names(labels, len(self.x)), value=index, description="digit")
        self.digit.add_class("vae-units-digit")
        self.sliders, self.unit_readouts, rows = [], [], []
        for k, j in enumerate(self.units):
            start = float(self.codes[index, j])
            low, high = slider_bounds(start, self.lo[j], self.hi[j], step)
            s = _widgets.FloatSlider(value=start, min=low, max=high, step=step, description=f"z{j}",
                                     continuous_update=True, readout_format=".2f")
            s.add_class("vae-unit-slider")
            s.add_class("vae-unit-top" if k < len(self.top) else "vae-unit-bottom")
            r = _widgets.HTML()
            r.add_class("vae-unit-readout")
            s.observe(lambda change, k=k: self._moved(k), names="value")
            self.sliders.append(s)
            self.unit_readouts.append(r)
            rows.append(_widgets.HBox([s, r]))
        self.image = image_widget(b"", "vae-units-image", (4 * image_shape[1] + 6) * scale)
        self.readout = _widgets.HTML()
        self.readout.add_class("vae-units-readout")
        self.redraws = 0
        self._resetting = False
        self._new_digit()
        self.digit.observe(self._new_digit, names="value")
        self.reset = _widgets.Button(description="back to μ(x)")
        self.reset.add_class("vae-units-reset")
        self.reset.on_click(lambda button: self._new_digit())
        groups = [_widgets.HTML(f"<b>{len(self.top)} units with the most KL</b>"), *rows[:len(self.top)]]
        if self.bottom:
            groups += [_widgets.HTML(f"<b>{len(self.bottom)} units with the least KL</b>"), *rows[len(self.top):]]
        caption = _widgets.HTML("digit · reconstruction at μ(x) · decoded at z (all the sliders' moves) · |change|")
        super().__init__([_widgets.HBox([self.digit, self.reset]), caption, self.image, self.readout, *groups])
        self.add_class("vae-units")
        self.add_class(f"vae-units-J{self.codes.shape[1]}")

    @property
    def mu(self) -> np.ndarray:
        """The chosen digit's code mu(x), (J,)."""
        return self.codes[self.digit.value]

    def z(self) -> np.ndarray:
        """The code the sliders set: mu(x) with each shown unit at its slider's value."""
        return moved_code(self.mu, self.units, [s.value for s in self.sliders])

    def _new_digit(self, change=None):
        """Every slider to the chosen digit's mu_j(x), on a grid of its own; one redraw."""
        self._resetting = True
        try:
            for s, j in zip(self.sliders, self.units):
                start = float(self.mu[j])
                low, high = slider_bounds(start, self.lo[j], self.hi[j], s.step)
                with s.hold_sync():  # one message: the new grid, and mu_j(x) on it
                    s.min, s.max, s.value = low, high, start  # both ranges hold [lo, hi]: min < max throughout
        finally:
            self._resetting = False
        for r, j in zip(self.unit_readouts, self.units):
            r.value = self._unit_text(j, ImageChange(0.0, 0.0))
        reference, decoded, _ = self._decode(self.mu)
        self._redraw(reference, decoded)

    def _unit_text(self, j: int, change: ImageChange) -> str:
        return f"KL {self.kl[j]:.3f} nats · alone: {change_text(change)}"

    def _decode(self, alone) -> np.ndarray:
        """The reconstruction at mu, the image at z (all moves) and at `alone` (one unit's move),
        in one decoder pass of fixed size: a unit the decoder ignores then changes no bit."""
        return decode(self.model, np.stack([self.mu, self.z(), alone]), self.image_shape)

    def _moved(self, k: int):
        if self._resetting:
            return
        j = self.units[k]
        reference, decoded, alone = self._decode(moved_code(self.mu, [j], [self.sliders[k].value]))
        self.unit_readouts[k].value = self._unit_text(j, image_change(alone, reference))
        self._redraw(reference, decoded)

    def _redraw(self, reference, decoded):
        change = image_change(decoded, reference)
        panels = np.stack([self.x[self.digit.value], reference, decoded, np.abs(decoded - reference)])
        self.image.value = to_png(image_grid(panels, nrow=4, pad=2), self.scale)
        self.readout.value = f"all moves together: {change_text(change)}"
        self.redraws += 1

    def figure(self, index: int | None = None, n: int = 7, size: float = 0.8):
        """The same content as a static figure: for one digit (default: the chosen one), each
        shown unit walked alone from mu(x) to n values evenly over the prior's [-3, 3], beside
        the digit and its reconstruction, as one grid of images (a row per unit); each row
        names the unit and its KL (left) and the largest change of its walk (right)."""
        import matplotlib.pyplot as plt

        i = self.digit.value if index is None else index
        mu, values = self.codes[i], np.linspace(-PRIOR_LIM, PRIOR_LIM, n)
        (h, w), pad = self.image_shape, 2
        rows, notes = [], []
        for j in self.units:
            images, changes = unit_walk(self.model, mu, j, values, self.image_shape)
            rows += [self.x[i], decode(self.model, mu, self.image_shape)[0], *images]
            worst = max(changes, key=lambda ch: ch.max)
            notes.append(f"max |Δy| {worst.max:.3f}\n{change_verdict(worst)}")
        grid = image_grid(np.stack(rows), nrow=n + 2, pad=pad)
        fig, ax = plt.subplots(figsize=(size * (n + 2) + 3.4, size * len(self.units) + 0.9), layout="constrained")
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([c * (w + pad) + (w - 1) / 2 for c in range(n + 2)],
                      ["digit", "at μ(x)", *[f"{v:+.1f}" for v in values]], fontsize=8)
        ax.set_yticks([r * (h + pad) + (h - 1) / 2 for r in range(len(self.units))],
                      [f"$z_{{{j}}}$ ({'most' if j in self.top else 'least'} KL)\nKL {self.kl[j]:.3f} nats"
                       for j in self.units], fontsize=8)
        ax.tick_params(length=0)
        ax.xaxis.tick_top()
        ax.set_xlabel("$z_j$ moved alone to this value (the other coordinates stay at μ(x))", fontsize=8)
        for r, note in enumerate(notes):
            ax.text(grid.shape[1] + pad, r * (h + pad) + (h - 1) / 2, note, fontsize=8, va="center", ha="left")
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"Walking one unit at a time from μ(x) of test digit #{i} (J = {self.codes.shape[1]}); "
                     "Δy: change of a pixel's probability", fontsize=10)
        return fig
