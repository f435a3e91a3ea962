"""Widgets: ipywidgets to explore a trained 2-D VAE (notebook 04). Not imported by the core.

Plain ipywidgets (sliders, dropdowns, an `Image` holding PNG bytes): they work in JupyterLab,
Colab and Binder with no custom front-end extension. A redraw is cheap by design:

    z1/z2 sliders    one decoder pass for one z, and a marker drawn on a prerendered map
    interpolation    one decoder pass for one z = (1 - t) z_A + t z_B         (linear path)
    epoch slider     a swap of PNG bytes rendered when the widget was built

Encoding the test set, rendering the latent map and decoding manifolds happen once, before
any callback. The work is done by pure functions (`decode_point`, `interpolate`, `to_png`,
...), tested without a browser; the widget classes only wire them to controls. Each widget
also draws the same content as a static matplotlib figure (`.figure()`) for a front end
that cannot show widgets (nbval, a plain console, a rendered notebook on GitHub).

The quantities the explorers show are computed in `latent` (codes, the aggregate posterior,
class medoids) and drawn by `maps`.
"""
from __future__ import annotations

import ipywidgets as _widgets
import numpy as np
import torch

from .latent import class_medoids
from .maps import LatentMap, draw_codes, mark_points
from .models import VAE, VAEConfig
from .manifold import decode_grid
from .plots import image_grid
from .png import framed_png, grid_size, png_width, to_png

# -- pure functions --------------------------------------------------------------------------


def _param(model):
    return next(model.parameters())


@torch.no_grad()
def decode(model, z, image_shape=(28, 28)) -> np.ndarray:
    """E[x|z] for latent codes z (N, J): (N, H, W) images in [0, 1]."""
    p = _param(model)
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(p.device, p.dtype).reshape(-1, model.config.z_dim)
    return model.mean(z).reshape(-1, *image_shape).cpu().numpy()


def decode_point(model, z1: float, z2: float, image_shape=(28, 28)) -> np.ndarray:
    """The decoded image (H, W) of one point z = (z1, z2) of a 2-D latent space."""
    return decode(model, [[z1, z2]], image_shape)[0]


def interpolate(z_a, z_b, t) -> np.ndarray:
    """Points on the straight line from z_a (t = 0) to z_b (t = 1): z = (1 - t) z_a + t z_b.

    t may be a number (gives one code, shape (J,)) or an array of n numbers (gives (n, J)).
    """
    z_a, z_b = np.asarray(z_a, dtype=np.float32), np.asarray(z_b, dtype=np.float32)
    t = np.asarray(t, dtype=np.float32)
    return (1 - t[..., None]) * z_a + t[..., None] * z_b if t.ndim else (1 - t) * z_a + t * z_b


def covering_limit(mu, step: float = 0.5, at_least: float = 3.0) -> float:
    """The smallest multiple of `step`, and at least `at_least` (the prior's 3 sd), with every
    code inside [-lim, lim] on every axis: a slider range that reaches all the codes."""
    reach = float(np.abs(np.asarray(mu)).max()) if np.size(mu) else 0.0
    return max(float(np.ceil(reach / step) * step), at_least)


def model_at(config: VAEConfig, state_dict: dict, device="cpu") -> VAE:
    """A VAE with the given weights (e.g. a History snapshot), in eval mode."""
    model = VAE(config)
    model.load_state_dict(state_dict)
    return model.to(device).eval()


def manifold_frames(config: VAEConfig, snapshots: dict, n: int = 15, image_shape=(28, 28)) -> dict:
    """{epoch: the decoded n x n manifold grid (rows*H, cols*W)} for each snapshot's weights."""
    return {e: image_grid(decode_grid(model_at(config, sd), n, image_shape), nrow=n)
            for e, sd in sorted(snapshots.items())}


# -- widgets ---------------------------------------------------------------------------------


def image_widget(png: bytes, css_class: str, width: int):
    w = _widgets.Image(value=png, format="png", layout=_widgets.Layout(width=f"{width}px", height="auto"))
    w.add_class(css_class)
    return w


def _slider(description, value, lim, step, css_class):
    s = _widgets.FloatSlider(value=value, min=-lim, max=lim, step=step, description=description,
                            continuous_update=True, readout_format=".2f")
    s.add_class(css_class)
    return s


class LatentExplorer(_widgets.HBox):
    """Sliders for z1 and z2; the decoded digit redraws at once, the point moves on the map.

    mu, labels: precomputed posterior means of (test) data and their labels, for the map;
    lim: the sliders' and the map's range [-lim, lim], by default `covering_limit(mu)` (every
    code inside); label_name and cmap: see `LatentMap`. Parts, for code and tests: .z1, .z2 (FloatSlider),
    .image (the decoded digit, PNG), .map (the latent map with the point, PNG). CSS classes
    vae-z1, vae-z2, vae-decoded, vae-map.
    """

    def __init__(self, model, mu, labels=None, lim: float | None = None, step: float = 0.05,
                 image_shape=(28, 28), scale: int = 8, z=(0.0, 0.0), label_name: str | None = None,
                 cmap: str = "tab10"):
        self.model, self.image_shape, self.scale = model, image_shape, scale
        self.mu, self.labels = np.asarray(mu), None if labels is None else np.asarray(labels)
        lim = covering_limit(mu) if lim is None else lim
        self.label_name, self.cmap, self.lim = label_name, cmap, lim
        self.latent_map = LatentMap(mu, labels, lim, label_name=label_name, cmap=cmap)
        self.z1 = _slider("z1", z[0], lim, step, "vae-z1")
        self.z2 = _slider("z2", z[1], lim, step, "vae-z2")
        self.image = image_widget(b"", "vae-decoded", image_shape[1] * scale)
        self.map = image_widget(b"", "vae-map", self.latent_map.rgb.shape[1])
        self.redraws = 0
        self._redraw()
        self.z1.observe(self._redraw, names="value")
        self.z2.observe(self._redraw, names="value")
        super().__init__([_widgets.VBox([self.z1, self.z2, self.image]), self.map])

    def _redraw(self, change=None):
        z1, z2 = self.z1.value, self.z2.value
        self.image.value = to_png(decode_point(self.model, z1, z2, self.image_shape), self.scale)
        self.map.value = to_png(self.latent_map.with_marker(z1, z2), 1)
        self.redraws += 1

    def centres(self) -> tuple[np.ndarray, list]:
        """(points (k, 2), names): the medoid code of each label (`class_medoids`) if the
        labels are categories, else three points on the diagonal."""
        if self.labels is not None and self.cmap == "tab10":
            medoids = class_medoids(self.mu, self.labels)
            return self.mu[list(medoids.values())].astype(np.float64), list(medoids)
        return np.array([(-1.5, -1.0), (0.0, 0.0), (1.5, 1.0)]), [1, 2, 3]

    def figure(self, points=None, names=None, size: float = 3.6, ncol: int = 5):
        """The same content as a static figure: the map (drawn afresh, with its legend) with
        `points` marked, and the digit decoded at each. By default the points are `centres()`:
        one per class, named by it; given points are numbered 1, 2, ... unless `names` says."""
        import matplotlib.pyplot as plt

        if points is None:
            points, default_names = self.centres()
        else:
            points, default_names = np.asarray(points, dtype=np.float64).reshape(-1, 2), None
        names = list(names if names is not None else default_names or range(1, len(points) + 1))
        k = len(points)
        ncol = min(k, ncol)
        nrows = int(np.ceil(k / ncol))
        img = min(size / nrows, size / 2)
        legend = 0.0 if self.label_name is None else (0.8 if self.cmap == "tab10" else 1.1)
        fig = plt.figure(figsize=(size + legend + 0.4 + ncol * img, size), layout="constrained")
        gs = fig.add_gridspec(nrows, ncol + 1, width_ratios=[size + legend] + [img] * ncol)
        ax = fig.add_subplot(gs[:, 0])
        draw_codes(ax, self.mu, self.labels, self.lim, self.label_name, self.cmap, s=3, legend_size=8)
        mark_points(ax, points, names, spread=True)
        for j, ((z1, z2), name) in enumerate(zip(points, names)):
            a = fig.add_subplot(gs[j // ncol, 1 + j % ncol])
            a.imshow(decode_point(self.model, z1, z2, self.image_shape), cmap="gray", vmin=0, vmax=1)
            a.set_title(f"{name}: ({z1:+.2f}, {z2:+.2f})", fontsize=8)
            a.set_axis_off()
        return fig


class InterpolationExplorer(_widgets.VBox):
    """Pick two test digits A and B; a slider t walks the line between their codes.

    x, mu, labels: the candidate digits (N, D), their posterior means (N, J) and labels; the
    dropdowns offer the first `n_choices`. Parts: .a, .b (Dropdown), .t (FloatSlider),
    .image ([A | decoded z_t | B], PNG), .strip (the whole path in `steps` images, PNG).
    """

    def __init__(self, model, x, mu, labels=None, index_a: int = 0, index_b: int = 1,
                 n_choices: int = 100, steps: int = 10, image_shape=(28, 28), scale: int = 6):
        self.model, self.image_shape, self.scale, self.steps = model, image_shape, scale, steps
        self.x = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x).reshape(-1, *image_shape)
        self.mu = np.asarray(mu)
        self.labels = None if labels is None else np.asarray(labels)
        names = [(f"#{i}" + ("" if labels is None else f" (a {int(labels[i])})"), i)
                 for i in range(min(n_choices, len(self.x)))]
        self.a = _widgets.Dropdown(options=names, value=index_a, description="digit A")
        self.b = _widgets.Dropdown(options=names, value=index_b, description="digit B")
        self.t = _widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t",
                                      continuous_update=True)
        self.t.add_class("vae-t")
        self.image = image_widget(b"", "vae-interpolated", 3 * image_shape[1] * scale + 2 * scale)
        self.strip = image_widget(b"", "vae-strip", steps * (image_shape[1] + 1) * 3)
        self._new_pair()
        self.a.observe(self._new_pair, names="value")
        self.b.observe(self._new_pair, names="value")
        self.t.observe(self._redraw, names="value")
        super().__init__([_widgets.HBox([self.a, self.b]), self.t, self.image, self.strip])

    def codes(self, n=None) -> np.ndarray:
        """The path's codes z_t = (1 - t) mu_A + t mu_B at n (default `steps`) even steps of t."""
        return interpolate(self.mu[self.a.value], self.mu[self.b.value], np.linspace(0, 1, n or self.steps))

    def path(self, n=None) -> np.ndarray:
        """The decoded path from A to B in n (default `steps`) images: (n, H, W)."""
        return decode(self.model, self.codes(n), self.image_shape)

    def _new_pair(self, change=None):
        self.strip.value = to_png(image_grid(self.path(), nrow=self.steps), 3)
        self._redraw()

    def _redraw(self, change=None):
        z = interpolate(self.mu[self.a.value], self.mu[self.b.value], self.t.value)
        mid = decode(self.model, z, self.image_shape)[0]
        trio = image_grid(np.stack([self.x[self.a.value], mid, self.x[self.b.value]]), nrow=3, pad=2)
        self.image.value = to_png(trio, self.scale)

    def figure(self, size: float = 1.2, codes=None, label_name: str | None = None, lim: float = 3.0,
               ncol: int | None = None):
        """The same content as a static figure: A, the decoded path, B. With codes = (mu, labels)
        of many data, a map of them on the left shows the straight path from A to B, its
        points numbered as the images; the images then wrap into rows of `ncol` (default 6)."""
        import matplotlib.pyplot as plt

        imgs = [self.x[self.a.value], *self.path(), self.x[self.b.value]]
        ts = np.linspace(0, 1, self.steps)
        titles = ["A", *[f"t={t:.2f}" for t in ts], "B"]
        if codes is None:
            fig, axes = plt.subplots(1, len(imgs), figsize=(size * len(imgs), size * 1.3))
        else:
            ncol = ncol or 6
            nrows = int(np.ceil(len(imgs) / ncol))
            side = max(nrows * size * 1.25, 3.0)
            extra = 0.0 if label_name is None else 0.8
            fig = plt.figure(figsize=(side + extra + ncol * size, side), layout="constrained")
            gs = fig.add_gridspec(nrows, ncol + 1, width_ratios=[side + extra] + [size] * ncol)
            ax = fig.add_subplot(gs[:, 0])
            draw_codes(ax, codes[0], codes[1], lim, label_name, s=2, legend_size=7)
            z = self.codes()
            ax.plot(z[:, 0], z[:, 1], "k.-", lw=1, ms=4)
            mark_points(ax, [z[0], z[-1]], ["A", "B"])
            axes = [fig.add_subplot(gs[j // ncol, 1 + j % ncol]) for j in range(len(imgs))]
        for ax, img, title in zip(axes, imgs, titles):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        return fig


class EpochExplorer(_widgets.VBox):
    """A slider over training epochs showing the decoded manifold after each one.

    frames: {epoch: grid image (H, W) in [0, 1]}, e.g. from `manifold_frames`. Every PNG is
    rendered here, once; moving the slider only swaps bytes. If the frames are n x n grids of
    `image_shape` images, the PNGs and the static figure carry z ticks. Parts: .epoch
    (SelectionSlider), .image (PNG).
    """

    def __init__(self, frames: dict, scale: int = 1, image_shape=(28, 28)):
        self.frames = dict(sorted(frames.items()))
        self.image_shape = image_shape
        first = next(iter(self.frames.values()))
        self.n = grid_size(first, image_shape)
        if self.n is None:
            self.pngs = {e: to_png(img, scale) for e, img in self.frames.items()}
            width = first.shape[1] * scale
        else:
            self.pngs = {e: framed_png(img, self.n, image_shape, scale) for e, img in self.frames.items()}
            width = png_width(self.pngs[next(iter(self.pngs))])
        epochs = list(self.pngs)
        self.epoch = _widgets.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                              continuous_update=True)
        self.epoch.add_class("vae-epoch")
        self.image = image_widget(self.pngs[epochs[-1]], "vae-manifold", width)
        self.epoch.observe(self._redraw, names="value")
        super().__init__([self.epoch, self.image])

    def _redraw(self, change=None):
        self.image.value = self.pngs[self.epoch.value]

    def figure(self, epochs=None, size: float = 3.0):
        """The same content as a static figure: the manifold after a few epochs, with z ticks
        when the frames are n x n grids (z1 on every panel, z2 on the first)."""
        import matplotlib.pyplot as plt

        from .manifold import label_manifold_axes

        epochs = list(self.frames if epochs is None else epochs)
        fig, axes = plt.subplots(1, len(epochs), figsize=(size * len(epochs), size * 1.12),
                                 layout="constrained")
        for k, (ax, e) in enumerate(zip(np.atleast_1d(axes), epochs)):
            ax.imshow(self.frames[e], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"after epoch {e}" if e else "at initialisation")
            if self.n is None:
                ax.set_axis_off()
            else:
                label_manifold_axes(ax, self.n, self.image_shape, min_sep=0.2)
                ax.xaxis.label.set_text("$z_1$")
                if k:
                    ax.set_ylabel("")
                else:
                    ax.set_ylabel("$z_2$")
        return fig
