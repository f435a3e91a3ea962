"""Plots: image grids, lower-bound curves, KL per unit, codes as points (matplotlib). Not imported
by the core. The decoded manifold of a 2-D latent space has its own module, `manifold`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def image_grid(images, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W) images into one (rows*H, cols*W) array, `pad` pixels apart."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n, h, w = images.shape
    ncol = nrow or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncol))
    grid = np.ones((nrows * (h + pad) - pad, ncol * (w + pad) - pad), dtype=images.dtype)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img
    return grid


def show_images(images, nrow: int | None = None, title: str | None = None, ax=None, size: float = 4):
    """Show (N, H, W) images in [0, 1] as one grey grid; returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image_grid(images, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_bounds(histories: dict, ax=None, train: bool = True, test: bool = True,
                title: str | None = None, ylim=None):
    """The lower bound (nats per datapoint) against training samples evaluated, log x-axis.

    As the paper's Figures 2 and 3: one colour per run, the test bound solid and the train
    bound dashed. `histories` maps a label to a train.History (or anything with .samples,
    .train and .test lists).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, h) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        if test:
            ax.plot(h.samples, h.test, "-", color=c, label=f"{label} (test)")
        if train:
            ax.plot(h.samples, h.train, "--", color=c, label=f"{label} (train)" if test else label)
    ax.set_xscale("log")
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))  # label 2 and 5 between powers of ten
    ax.xaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(3, 3)))
    ax.set_xlabel("# training samples evaluated")
    ax.set_ylabel("lower bound L (nats per datapoint)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_kl_per_dimension(kl, ax=None, threshold: float = 0.01, title: str | None = None):
    """Bars of the average KL(q(z_j|x) || p(z_j)) of each latent unit j, in nats.

    Units above `threshold` (a dotted line) are "active": the encoder uses them.
    """
    kl = kl.detach().cpu().numpy() if isinstance(kl, torch.Tensor) else np.asarray(kl)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.5))
    order = np.argsort(kl)[::-1]
    ax.bar(np.arange(len(kl)), kl[order], width=1.0, color="C0")
    ax.axhline(threshold, color="k", ls=":", lw=1)
    ax.set_yscale("symlog", linthresh=threshold)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("latent unit (sorted by KL)")
    ax.set_ylabel("KL (nats)")
    if title:
        ax.set_title(title)
    return ax


def latent_scatter(mu, labels, ax=None, std=None, highlight=(), max_points: int | None = None,
                   title: str | None = None, size: float = 6):
    """Posterior means of a 2-D latent space as a seaborn scatter coloured by digit.

    std: posterior standard deviations (N, 2); for the points in `highlight` (indices) an
    ellipse of one standard deviation is drawn around the mean.
    """
    import seaborn as sns
    from matplotlib.patches import Ellipse

    mu = mu.detach().cpu().numpy() if isinstance(mu, torch.Tensor) else np.asarray(mu)
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if max_points is not None:
        mu, labels = mu[:max_points], labels[:max_points]
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    sns.scatterplot(x=mu[:, 0], y=mu[:, 1], hue=labels, palette="tab10", s=6, linewidth=0,
                    alpha=0.7, legend="full", ax=ax)
    if std is not None:
        std = std.detach().cpu().numpy() if isinstance(std, torch.Tensor) else np.asarray(std)
        for i in highlight:
            ax.add_patch(Ellipse(mu[i], 2 * std[i, 0], 2 * std[i, 1], fill=False, color="k", lw=1.5))
            ax.plot(*mu[i], "k+", ms=8)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal")
    ax.legend(title="digit", markerscale=2, fontsize="small", loc="upper right")
    if title:
        ax.set_title(title)
    return ax


# -- small multiples of bound curves (notebook 06) --------------------------------------------


def plot_bounds_panels(histories: dict, ncols: int | None = None, ylim=None, title: str | None = None,
                       size: tuple[float, float] = (2.6, 2.3)):
    """Small multiples of `plot_bounds`: one panel per run (test bound solid, train dashed),
    all on the same log x-axis and y-axis, so runs are compared by position, not by colour.
    Returns (fig, axes), axes a 2-D array; panels beyond the runs are hidden."""
    from matplotlib.ticker import LogLocator, NullFormatter

    n = len(histories)
    ncols = ncols or min(n, 4)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    for k, (ax, (label, h)) in enumerate(zip(axes.flat, histories.items())):
        ax.plot(h.samples, h.test, "-", color="C0", label="test")
        ax.plot(h.samples, h.train, "--", color="C1", label="train")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))  # ticks at 2 and 5, labels on powers of ten only
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(label, fontsize=10)
        if k % ncols == 0:
            ax.set_ylabel("bound L (nats per datapoint)")
        if k >= n - ncols:
            ax.set_xlabel("training samples evaluated")
        if k == 0:
            ax.legend(fontsize="small")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if ylim is not None:
        axes.flat[0].set_ylim(*ylim)
    if title:
        fig.suptitle(title)
    return fig, axes


