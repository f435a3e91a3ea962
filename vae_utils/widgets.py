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
"""
from __future__ import annotations

import io

import ipywidgets as _widgets
import numpy as np
import torch

from .models import VAE, VAEConfig
from .plots import decode_grid, image_grid

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


@torch.no_grad()
def encode_means(model, x, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and standard deviations of q(z|x) for data x (N, D): two (N, J) arrays."""
    mus, stds = [], []
    for xb in torch.as_tensor(x).split(batch_size):
        mu, logvar = model.encode(xb.to(_param(model).device))
        mus.append(mu.cpu())
        stds.append(torch.exp(0.5 * logvar).cpu())
    return torch.cat(mus).numpy(), torch.cat(stds).numpy()


def to_png(image: np.ndarray, scale: int = 4) -> bytes:
    """PNG bytes of a grey image in [0, 1] (H, W) or an RGB uint8 image (H, W, 3), each pixel
    repeated `scale` times in both directions (sharp, not blurred, when shown large)."""
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def model_at(config: VAEConfig, state_dict: dict, device="cpu") -> VAE:
    """A VAE with the given weights (e.g. a History snapshot), in eval mode."""
    model = VAE(config)
    model.load_state_dict(state_dict)
    return model.to(device).eval()


def manifold_frames(config: VAEConfig, snapshots: dict, n: int = 15, image_shape=(28, 28)) -> dict:
    """{epoch: the decoded n x n manifold grid (rows*H, cols*W)} for each snapshot's weights."""
    return {e: image_grid(decode_grid(model_at(config, sd), n, image_shape), nrow=n)
            for e, sd in sorted(snapshots.items())}


class LatentMap:
    """A scatter of 2-D codes coloured by digit, rendered once to an RGB array, on which a
    marker is drawn in numpy: moving the marker costs no matplotlib call.

    lim: the axes show [-lim, lim]^2. `pixel(z1, z2)` gives the (row, col) of a point.
    """

    def __init__(self, mu, labels=None, lim: float = 3.0, size_px: int = 336, dpi: int = 96):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        mu = np.asarray(mu)
        fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes([0.1, 0.1, 0.88, 0.88])
        # colour by digit when labels are given (a colour map without colours only warns)
        colour = {} if labels is None else dict(c=np.asarray(labels), cmap="tab10", vmin=-0.5, vmax=9.5)
        ax.scatter(mu[:, 0], mu[:, 1], s=2, alpha=0.6, linewidths=0, **colour)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("$z_1$", labelpad=0)
        ax.set_ylabel("$z_2$", labelpad=0)
        ax.tick_params(labelsize=7)
        canvas.draw()
        self.rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        self._transform = ax.transData
        self.lim = lim

    def pixel(self, z1: float, z2: float) -> tuple[int, int]:
        """(row, col) in `rgb` of the latent point (z1, z2)."""
        x, y = self._transform.transform((z1, z2))
        return int(round(self.rgb.shape[0] - y)), int(round(x))

    def with_marker(self, z1: float, z2: float, radius: int = 6) -> np.ndarray:
        """A copy of the map with a black ring and a red centre at (z1, z2)."""
        img = self.rgb.copy()
        r0, c0 = self.pixel(z1, z2)
        rr, cc = np.ogrid[:img.shape[0], :img.shape[1]]
        d2 = (rr - r0) ** 2 + (cc - c0) ** 2
        img[(d2 <= radius**2) & (d2 >= (radius - 2) ** 2)] = (0, 0, 0)
        img[d2 <= 4] = (220, 0, 0)
        return img


# -- widgets ---------------------------------------------------------------------------------


def _image_widget(png: bytes, css_class: str, width: int):
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

    mu, labels: precomputed posterior means of (test) data and their digits, for the map.
    Parts, for code and tests: .z1, .z2 (FloatSlider), .image (the decoded digit, PNG),
    .map (the latent map with the point, PNG). CSS classes vae-z1, vae-z2, vae-decoded, vae-map.
    """

    def __init__(self, model, mu, labels=None, lim: float = 3.0, step: float = 0.05,
                 image_shape=(28, 28), scale: int = 8, z=(0.0, 0.0)):
        self.model, self.image_shape, self.scale = model, image_shape, scale
        self.latent_map = LatentMap(mu, labels, lim)
        self.z1 = _slider("z1", z[0], lim, step, "vae-z1")
        self.z2 = _slider("z2", z[1], lim, step, "vae-z2")
        self.image = _image_widget(b"", "vae-decoded", image_shape[1] * scale)
        self.map = _image_widget(b"", "vae-map", self.latent_map.rgb.shape[1])
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

    def figure(self, points=((-1.5, -1.0), (0.0, 0.0), (1.5, 1.0)), size: float = 3.2):
        """The same content as a static figure: the map with `points`, and their digits."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(points) + 1, figsize=(size * (len(points) + 1), size))
        axes[0].imshow(self.latent_map.rgb)
        for k, (z1, z2) in enumerate(points):
            r, c = self.latent_map.pixel(z1, z2)
            axes[0].plot(c, r, "o", mfc="none", mec="k", ms=10, mew=2)
            axes[0].annotate(str(k + 1), (c, r), xytext=(6, 6), textcoords="offset points", weight="bold")
            axes[k + 1].imshow(decode_point(self.model, z1, z2, self.image_shape), cmap="gray", vmin=0, vmax=1)
            axes[k + 1].set_title(f"{k + 1}: z = ({z1:+.2f}, {z2:+.2f})")
        for ax in axes:
            ax.set_axis_off()
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
        names = [(f"#{i}" + ("" if labels is None else f" (a {int(labels[i])})"), i)
                 for i in range(min(n_choices, len(self.x)))]
        self.a = _widgets.Dropdown(options=names, value=index_a, description="digit A")
        self.b = _widgets.Dropdown(options=names, value=index_b, description="digit B")
        self.t = _widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t",
                                      continuous_update=True)
        self.t.add_class("vae-t")
        self.image = _image_widget(b"", "vae-interpolated", 3 * image_shape[1] * scale + 2 * scale)
        self.strip = _image_widget(b"", "vae-strip", steps * (image_shape[1] + 1) * 3)
        self._new_pair()
        self.a.observe(self._new_pair, names="value")
        self.b.observe(self._new_pair, names="value")
        self.t.observe(self._redraw, names="value")
        super().__init__([_widgets.HBox([self.a, self.b]), self.t, self.image, self.strip])

    def path(self, n=None) -> np.ndarray:
        """The decoded path from A to B in n (default `steps`) images: (n, H, W)."""
        t = np.linspace(0, 1, n or self.steps)
        return decode(self.model, interpolate(self.mu[self.a.value], self.mu[self.b.value], t), self.image_shape)

    def _new_pair(self, change=None):
        self.strip.value = to_png(image_grid(self.path(), nrow=self.steps), 3)
        self._redraw()

    def _redraw(self, change=None):
        z = interpolate(self.mu[self.a.value], self.mu[self.b.value], self.t.value)
        mid = decode(self.model, z, self.image_shape)[0]
        trio = image_grid(np.stack([self.x[self.a.value], mid, self.x[self.b.value]]), nrow=3, pad=2)
        self.image.value = to_png(trio, self.scale)

    def figure(self, size: float = 1.2):
        """The same content as a static figure: A, the decoded path, B."""
        import matplotlib.pyplot as plt

        imgs = [self.x[self.a.value], *self.path(), self.x[self.b.value]]
        titles = ["A", *[f"t={t:.2f}" for t in np.linspace(0, 1, self.steps)], "B"]
        fig, axes = plt.subplots(1, len(imgs), figsize=(size * len(imgs), size * 1.3))
        for ax, img, title in zip(axes, imgs, titles):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        return fig


class EpochExplorer(_widgets.VBox):
    """A slider over training epochs showing the decoded manifold after each one.

    frames: {epoch: grid image (H, W) in [0, 1]}, e.g. from `manifold_frames`. Every PNG is
    rendered here, once; moving the slider only swaps bytes. Parts: .epoch (SelectionSlider),
    .image (PNG).
    """

    def __init__(self, frames: dict, scale: int = 1):
        self.frames = dict(sorted(frames.items()))
        self.pngs = {e: to_png(img, scale) for e, img in self.frames.items()}
        epochs = list(self.pngs)
        self.epoch = _widgets.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                              continuous_update=True)
        self.epoch.add_class("vae-epoch")
        width = next(iter(self.frames.values())).shape[1] * scale
        self.image = _image_widget(self.pngs[epochs[-1]], "vae-manifold", width)
        self.epoch.observe(self._redraw, names="value")
        super().__init__([self.epoch, self.image])

    def _redraw(self, change=None):
        self.image.value = self.pngs[self.epoch.value]

    def figure(self, epochs=None, size: float = 3.0):
        """The same content as a static figure: the manifold after a few epochs."""
        import matplotlib.pyplot as plt

        epochs = list(epochs or self.frames)
        fig, axes = plt.subplots(1, len(epochs), figsize=(size * len(epochs), size))
        for ax, e in zip(np.atleast_1d(axes), epochs):
            ax.imshow(self.frames[e], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"after epoch {e}" if e else "at initialisation")
            ax.set_axis_off()
        return fig
