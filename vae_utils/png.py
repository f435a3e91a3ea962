"""Images as PNG bytes, for the widgets: an ipywidgets `Image` shows PNG bytes, in every front end.

    to_png       a grey (or RGB) array, each pixel drawn as a sharp scale x scale block
    framed_png   a decoded manifold grid with its z ticks
    grid_size    n if an image is an n x n grid of decoded images, else None
    png_width    the width of PNG bytes, in pixels
"""
from __future__ import annotations

import io

import numpy as np


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


def framed_png(image: np.ndarray, n: int, image_shape=(28, 28), scale: int = 1, dpi: int = 100) -> bytes:
    """PNG bytes of a decoded latent_grid(n) image with its z ticks (`manifold.label_manifold_axes`),
    each image pixel drawn as `scale` x `scale` screen pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .manifold import label_manifold_axes

    h, w = image.shape
    left, bottom, right, top = 0.55, 0.5, 0.1, 0.1  # inches around the image
    fig = Figure(figsize=(w * scale / dpi + left + right, h * scale / dpi + bottom + top), dpi=dpi)
    fw, fh = fig.get_size_inches()
    ax = fig.add_axes([left / fw, bottom / fh, w * scale / dpi / fw, h * scale / dpi / fh])
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    label_manifold_axes(ax, n, image_shape, min_sep=0.14)
    ax.tick_params(labelsize=7)
    ax.xaxis.label.set_size(8)
    ax.yaxis.label.set_size(8)
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def grid_size(frame: np.ndarray, image_shape=(28, 28), pad: int = 1) -> int | None:
    """n if `frame` is an n x n image_grid of images of `image_shape` (pad apart), else None."""
    (H, W), (h, w) = frame.shape, image_shape
    n, r = divmod(H + pad, h + pad)
    m, q = divmod(W + pad, w + pad)
    return n if (r == 0 and q == 0 and n == m and n > 0) else None


def png_width(png: bytes) -> int:
    """The width in pixels of a PNG image."""
    from PIL import Image

    return Image.open(io.BytesIO(png)).size[0]


def figure_rgb(fig) -> np.ndarray:
    """A matplotlib Figure rendered to an (H, W, 3) uint8 array (by its Agg canvas; one is
    attached if the figure has another), e.g. axes drawn once for a widget to mark in numpy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
