"""The decoded manifold of a 2-D latent space (the paper's Figures 4a and 4b), with matplotlib.
Not imported by the core.

    latent_grid, decode_grid, show_manifold     Appendix A's grid through the inverse Gaussian
                                                CDF, decoded and tiled into one image
    manifold_tick_*, label_manifold_axes        z ticks on such an image
    inside_hull, hull_outline, mark_data_on_manifold, box_grid, show_decoded_box
                                                where the data's codes lie on it (notebook 06)
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .plots import image_grid, show_images


def latent_grid(n: int = 20) -> np.ndarray:
    """An (n*n, 2) grid of latent values: a regular grid on the unit square mapped through the
    inverse Gaussian CDF (the paper's Figure 4). Row-major, z2 decreasing down the rows and
    z1 increasing along them, so that tiling the decoded images matches a plot's axes.

    The unit square is sampled at cell centres (i + 0.5) / n, which avoids Phi^-1(0) = -inf.
    """
    from scipy.stats import norm

    u = (np.arange(n) + 0.5) / n
    z = norm.ppf(u)
    z1, z2 = np.meshgrid(z, z[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32)


@torch.no_grad()
def decode_grid(model, n: int = 20, image_shape=(28, 28)) -> np.ndarray:
    """Decode latent_grid(n) with a 2-D model: (n*n, H, W) mean images in [0, 1]."""
    p = next(model.parameters())
    z = torch.from_numpy(latent_grid(n)).to(p.device, p.dtype)
    return model.mean(z).reshape(-1, *image_shape).cpu().numpy()


def show_manifold(model, n: int = 20, image_shape=(28, 28), ax=None, title: str | None = None,
                  size: float = 6):
    """The learned 2-D manifold as one image (the paper's Figure 4b)."""
    return show_images(decode_grid(model, n, image_shape), nrow=n, title=title, ax=ax, size=size)


def manifold_tick_positions(n: int, values, image_shape=(28, 28), pad: int = 1):
    """(columns, rows) in an image of the decoded latent_grid(n) (image_grid with `pad`) at
    which z1 = values and z2 = values sit. Cell a holds z = Phi^-1((a + 1/2) / n), so the
    position is linear in Phi(z), the prior's CDF, through the cells' centres:

        column(z1) = (n Phi(z1) - 1/2) (W + pad) + (W - 1) / 2,   rows likewise, z2 upwards.
    """
    from scipy.stats import norm

    h, w = image_shape
    u = norm.cdf(np.asarray(values, dtype=np.float64))
    return (u * n - 0.5) * (w + pad) + (w - 1) / 2, ((1 - u) * n - 0.5) * (h + pad) + (h - 1) / 2


def manifold_tick_values(n: int, min_sep: float = 0.09) -> np.ndarray:
    """Round values of z to label on a manifold of latent_grid(n): 0, +-1, +-2, +-0.5, +-1.5,
    +-3 in that order of preference, each kept if it lies between the first and last cells'
    centres and at least `min_sep` away in Phi(z) from the values kept before it. Sorted."""
    from scipy.stats import norm

    lo, hi = 0.5 / n, (n - 0.5) / n
    kept = []
    for v in (0.0, -1.0, 1.0, -2.0, 2.0, -0.5, 0.5, -1.5, 1.5, -3.0, 3.0):
        u = norm.cdf(v)
        if lo - 1e-12 <= u <= hi + 1e-12 and all(abs(u - norm.cdf(k)) >= min_sep for k in kept):
            kept.append(v)
    return np.array(sorted(kept))


def label_manifold_axes(ax, n: int, image_shape=(28, 28), pad: int = 1, min_sep: float = 0.09):
    """z ticks and axis labels on an image of the decoded latent_grid(n) (show_manifold,
    widgets.manifold_frames). Minor ticks mark each cell's z; labelled ticks sit at the round
    values of `manifold_tick_values(n, min_sep)`, on the Phi scale of `manifold_tick_positions`."""
    from scipy.stats import norm

    values = manifold_tick_values(n, min_sep)
    cols, rows = manifold_tick_positions(n, values, image_shape, pad)
    ax.set_axis_on()
    for spine in ax.spines.values():
        spine.set_visible(False)
    labels = [f"{v:g}" for v in values]
    ax.set_xticks(cols, labels)
    ax.set_yticks(rows, labels)
    centres_c, centres_r = manifold_tick_positions(n, norm.ppf((np.arange(n) + 0.5) / n), image_shape, pad)
    ax.set_xticks(centres_c, minor=True)
    ax.set_yticks(centres_r, minor=True)
    ax.tick_params(which="minor", length=2)
    ax.set_xlabel("$z_1$ (grid cells equally spaced in $\\Phi(z_1)$)")
    ax.set_ylabel("$z_2$ (equally spaced in $\\Phi(z_2)$)")
    return ax


def inside_hull(points, codes, tol: float = 1e-9) -> np.ndarray:
    """Whether each point (M, 2) lies in the convex hull of the codes (N, 2): shape (M,).

    The hull is the intersection of half-planes n_f . p + c_f <= 0, one per edge f
    (scipy's ConvexHull.equations); a point is inside if it satisfies all of them.
    """
    from scipy.spatial import ConvexHull

    points, codes = np.asarray(points, dtype=np.float64), np.asarray(codes, dtype=np.float64)
    eq = ConvexHull(codes).equations
    return (points @ eq[:, :2].T + eq[:, 2] <= tol).all(1)


def hull_outline(codes, per_edge: int = 40) -> np.ndarray:
    """The closed outline of the convex hull of codes (N, 2), each edge cut into `per_edge`
    straight pieces: (K, 2) points, the first repeated at the end. Dense enough to stay
    accurate when drawn through a nonlinear map such as Phi (a manifold's axes)."""
    from scipy.spatial import ConvexHull

    codes = np.asarray(codes, dtype=np.float64)
    corners = codes[ConvexHull(codes).vertices]  # counter-clockwise
    ends = np.roll(corners, -1, axis=0)
    t = np.linspace(0, 1, per_edge, endpoint=False)[:, None, None]
    pieces = (1 - t) * corners[None] + t * ends[None]  # (per_edge, V, 2)
    outline = pieces.transpose(1, 0, 2).reshape(-1, 2)
    return np.vstack([outline, outline[:1]])


def mark_data_on_manifold(ax, codes, n: int, image_shape=(28, 28), pad: int = 1, wash: float = 0.6,
                          s: float = 3, color: str = "C1"):
    """On an image of the decoded latent_grid(n) (`show_manifold`), show where the data lie:
    the codes as dots, the outline of their convex hull, and every cell whose z lies outside
    the hull washed out in white (opacity `wash`): those faces or digits are the decoder's
    extrapolation, decoded from codes no datapoint uses. Positions follow the Phi scale of
    `manifold_tick_positions`. Returns the (n*n,) mask of cells inside, in latent_grid order.
    """
    codes = np.asarray(codes, dtype=np.float64)
    inside = inside_hull(latent_grid(n), codes)
    h, w = image_shape
    overlay = np.zeros((n * (h + pad) - pad, n * (w + pad) - pad, 4))
    for k in np.flatnonzero(~inside):
        r, c = divmod(int(k), n)
        overlay[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = (1, 1, 1, wash)
    ax.imshow(overlay, interpolation="nearest")
    outline = hull_outline(codes)
    cols, _ = manifold_tick_positions(n, outline[:, 0], image_shape, pad)
    _, rows = manifold_tick_positions(n, outline[:, 1], image_shape, pad)
    ax.plot(cols, rows, "-", color=color, lw=1.5, label="convex hull of the codes")
    cols, _ = manifold_tick_positions(n, codes[:, 0], image_shape, pad)
    _, rows = manifold_tick_positions(n, codes[:, 1], image_shape, pad)
    ax.scatter(cols, rows, s=s, color=color, alpha=0.5, linewidths=0, label="codes")
    return inside


def box_grid(z1, z2) -> np.ndarray:
    """The codes of a rectangular grid, (len(z2) * len(z1), 2), row-major with z2 decreasing
    down the rows and z1 increasing along them (as latent_grid, so a tiled image matches a
    plot's axes). z1, z2: the values of each axis, e.g. np.linspace(lo, hi, n)."""
    z1, z2 = np.sort(np.asarray(z1, dtype=np.float64)), np.sort(np.asarray(z2, dtype=np.float64))[::-1]
    a, b = np.meshgrid(z1, z2)
    return np.stack([a.ravel(), b.ravel()], axis=1).astype(np.float32)


def show_decoded_box(model, z1, z2, image_shape=(28, 28), codes=None, ax=None, pad: int = 1,
                     wash: float = 0.6, title: str | None = None, size: float = 6, color: str = "C1"):
    """Decode a 2-D model on a rectangular grid of z (`box_grid`, evenly spaced values z1 and
    z2) and draw the images on axes in units of z: each image centred on its code, so ticks
    read z directly. With `codes` (N, 2), mark where the data lie as `mark_data_on_manifold`
    does (dots, convex hull, cells outside it washed out) and return the mask of cells inside;
    else return None."""
    z = box_grid(z1, z2)
    n1, n2 = len(z1), len(z2)
    p = next(model.parameters())
    with torch.no_grad():
        images = model.mean(torch.from_numpy(z).to(p.device, p.dtype)).reshape(-1, *image_shape).cpu().numpy()
    grid = image_grid(images, nrow=n1, pad=pad)
    h, w = image_shape
    z1s, z2s = np.sort(np.asarray(z1, dtype=np.float64)), np.sort(np.asarray(z2, dtype=np.float64))
    sx = (z1s[-1] - z1s[0]) / max(n1 - 1, 1) / (w + pad)  # z per image pixel, each way
    sy = (z2s[-1] - z2s[0]) / max(n2 - 1, 1) / (h + pad)
    cx, cy = (w - 1) / 2, (h - 1) / 2  # a cell's centre, in pixels from its corner
    # left, right, bottom, top: the first column's centre at z1s[0], the top row's at z2s[-1]
    extent = (z1s[0] - (cx + 0.5) * sx, z1s[0] + (grid.shape[1] - 0.5 - cx) * sx,
              z2s[0] - (cy + 0.5) * sy, z2s[-1] + (cy + 0.5) * sy)
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size * sy * grid.shape[0] / (sx * grid.shape[1])))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest", extent=extent, aspect=sx / sy)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    if codes is None:
        return None
    codes = np.asarray(codes, dtype=np.float64)
    inside = inside_hull(z, codes)
    overlay = np.zeros((*grid.shape, 4))
    for k in np.flatnonzero(~inside):
        r, col = divmod(int(k), n1)
        overlay[r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = (1, 1, 1, wash)
    ax.imshow(overlay, interpolation="nearest", extent=extent, aspect=sx / sy)  # square pixels
    outline = hull_outline(codes, per_edge=1)
    ax.plot(outline[:, 0], outline[:, 1], "-", color=color, lw=1.5, label="convex hull of the codes")
    ax.scatter(codes[:, 0], codes[:, 1], s=3, color=color, alpha=0.5, linewidths=0, label="codes")
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    return inside
