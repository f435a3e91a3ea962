"""Plots: image grids and lower-bound curves (matplotlib). Not imported by the core."""
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
