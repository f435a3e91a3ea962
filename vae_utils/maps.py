"""Maps of a 2-D latent space, drawn with matplotlib (notebook 04; not imported by the core).

    draw_codes           the codes as points coloured by label, with a legend or colour bar
    draw_density_ratio   contours of log10 q(z)/p(z) of the codes' aggregate posterior
    mark_points          named rings at chosen points (class medoids, interpolation ends)
    LatentMap            a map of codes rendered once to pixels, on which a widget moves a marker
"""
from __future__ import annotations

import numpy as np

from .latent import log_density_ratio
from .png import figure_rgb


def draw_density_ratio(ax, mu, std, lim: float = 3.5, n: int = 81, vmax: float = 2.0):
    """Contours of log10 q(z)/p(z) of the codes' aggregate posterior on [-lim, lim]^2, on an
    n x n grid, in bands of 0.5 from -vmax to vmax (red: the codes land there more often than
    the prior says; blue: less; white: about as often), with a colour bar, labelled axes and
    the circles holding 50% and 95% of the prior's mass. Returns the (n, n) log10 ratios."""
    u = np.linspace(-lim, lim, n)
    z = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    r = (log_density_ratio(z, mu, std) / np.log(10)).reshape(n, n)
    cs = ax.contourf(u, u, r, levels=np.arange(-vmax, vmax + 1e-9, 0.5), cmap="RdBu_r", extend="both")
    cb = ax.figure.colorbar(cs, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label("$\\log_{10}\\, q(\\mathbf{z}) / p(\\mathbf{z})$")
    t = np.linspace(0, 2 * np.pi, 200)
    for mass in (0.5, 0.95):
        r_mass = np.sqrt(-2 * np.log(1 - mass))  # P(|z| < r) = 1 - exp(-r^2 / 2) in 2-D
        ax.plot(r_mass * np.cos(t), r_mass * np.sin(t), "k--", lw=0.8)
        ax.annotate(f"{mass:.0%} of p(z)", (r_mass * np.cos(0.8), r_mass * np.sin(0.8)), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.autoscale(False)  # points drawn later stay within the map
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal")
    return r


# -- drawing codes ----------------------------------------------------------------------------


def draw_codes(ax, mu, labels=None, lim: float = 3.0, label_name: str | None = None,
               cmap: str = "tab10", s: float = 2, legend_size: float = 7):
    """Scatter the codes mu (N, 2) on ax, coloured by label, on [-lim, lim]^2 with labelled axes.

    With cmap "tab10" the labels are categories (integers 0-9); with label_name a legend of
    them is drawn. Any other colour map is read as a sequential scale and gets a colour bar
    titled label_name.
    """
    mu = np.asarray(mu)
    if labels is None:
        ax.scatter(mu[:, 0], mu[:, 1], s=s, alpha=0.6, linewidths=0, color="C0")
    elif cmap == "tab10":
        labels = np.asarray(labels)
        ax.scatter(mu[:, 0], mu[:, 1], s=s, alpha=0.6, linewidths=0, c=labels, cmap=cmap,
                   vmin=-0.5, vmax=9.5)
        if label_name:
            import matplotlib

            colours = matplotlib.colormaps["tab10"]
            handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", ms=4, color=colours(int(c)),
                                               label=str(c)) for c in np.unique(labels)]
            ax.legend(handles=handles, title=label_name, fontsize=legend_size, title_fontsize=legend_size,
                      loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.3, handletextpad=0.1,
                      labelspacing=0.25)
    else:
        sc = ax.scatter(mu[:, 0], mu[:, 1], s=s, alpha=0.8, linewidths=0, c=np.asarray(labels), cmap=cmap)
        cb = ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.03)
        if label_name:
            cb.set_label(label_name)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return ax


class LatentMap:
    """A scatter of 2-D codes coloured by label (`draw_codes`), rendered once to an RGB array,
    on which a marker is drawn in numpy: moving the marker costs no matplotlib call.

    lim: the axes show [-lim, lim]^2. label_name: the legend's (or colour bar's) title; no
    legend without it. cmap: "tab10" for categories, any other for a sequential scale.
    `pixel(z1, z2)` gives the (row, col) of a point.
    """

    def __init__(self, mu, labels=None, lim: float = 3.0, size_px: int = 336, dpi: int = 96,
                 label_name: str | None = None, cmap: str = "tab10"):
        from matplotlib.figure import Figure

        side = size_px / dpi
        extra = 0.0 if label_name is None else 0.75  # inches on the right for a legend or colour bar
        fig = Figure(figsize=(side + extra, side), dpi=dpi)
        ax = fig.add_axes([0.1 * side / (side + extra), 0.1, 0.88 * side / (side + extra), 0.88])
        draw_codes(ax, mu, labels, lim, label_name, cmap, legend_size=7)
        ax.xaxis.labelpad = ax.yaxis.labelpad = 0
        ax.tick_params(labelsize=7)
        self.rgb = figure_rgb(fig)
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


def _label_offsets(ax, points, length: float = 22.0, min_gap: float = 14.0) -> list:
    """Offsets (in points) for the names of `points` on ax: pushed outwards from the points'
    centre, turned by steps of 30 degrees until a name is at least `min_gap` points from the
    names placed before it (and from every ring), so that close points stay readable."""
    xy = ax.transData.transform(np.asarray(points, dtype=np.float64)) * 72 / ax.figure.dpi  # in points
    centre = xy.mean(0)
    placed, out = [], []
    for k, p in enumerate(xy):
        d = p - centre
        base = np.arctan2(d[1], d[0]) if np.hypot(*d) > 1e-9 else 2 * np.pi * k / len(xy)
        for turn in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6):
            a = base + turn * np.pi / 6
            spot = p + length * np.array([np.cos(a), np.sin(a)])
            if all(np.hypot(*(spot - q)) >= min_gap for q in [*placed, *xy]):
                break
        placed.append(spot)
        out.append(tuple(length * np.array([np.cos(a), np.sin(a)])))
    return out


def mark_points(ax, points, names, spread: bool = False):
    """Black rings at the points of a map of codes, each with its name: beside the ring, or,
    with spread, 22 points away on a thin leader line (`_label_offsets`)."""
    import matplotlib.patheffects as pe

    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    offsets = _label_offsets(ax, points) if spread else [(5, 5)] * len(points)
    for (z1, z2), name, offset in zip(points, names, offsets):
        ax.plot(z1, z2, "o", mfc="none", mec="k", ms=8, mew=1.3)
        ax.annotate(str(name), (z1, z2), xytext=offset, textcoords="offset points", weight="bold",
                    fontsize=9, ha="center", va="center",
                    arrowprops=dict(arrowstyle="-", lw=0.7, color="k") if spread else None,
                    path_effects=[pe.withStroke(linewidth=2.5, foreground="w")])
