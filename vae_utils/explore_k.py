"""Slide K: how K importance weights make the estimate of log p(x), one digit at a time (notebook 05).

A front-end module (it imports ipywidgets); the core never imports it. For one digit's
log-weights log w_k = log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x) (from
`importance.importance_log_weights`), the FIRST K of them give, for each K:

    log p^_K = log 1/K sum_{k<=K} w_k                 the importance-sampled estimate of log p(x)
    mean_K   = 1/K sum_{k<=K} log w_k                 estimator A of the bound L (eq. 6), L = K
    ESS_K    = (sum_{k<=K} w_k)^2 / sum_{k<=K} w_k^2  the effective sample size

One set of weights read for growing K is ONE nested path: each K adds weights to the previous
K's, so the values at different K share weights and are correlated, not independent estimates:
one large weight moves log p^_K at every later K, and can make ESS_K fall (`largest_ess_fall`).
Always log p^_K >= mean_K (Jensen), whatever the weights.

    k_values          the K of the slider: 1, 2, 5, 10, 20, 50, ... up to n
    nested_path       log p^_K, mean_K and ESS_K for every K = 1..n, from cumulative sums
    log10_shares      each of the first K weights as a share of their sum, log10
    weight_histogram  how many weights, and how much of the sum, fall in each bin of share
    weights_carrying  the fewest weights whose sum is half (or any share) of the sum
    largest_ess_fall  where along the path one new weight cuts the ESS most
    summary           the numbers a K slider position shows, for one digit
    HistogramPanel, draw_path    the histogram and the path on matplotlib axes (the static figure)
    HistogramImage, PathImage    the same rendered once to pixels, the data or the K marker
                                 then drawn in numpy (the widget)
    KExplorer         a digit dropdown and a K slider; every image (each histogram, each path with
                      its K marker) is a PNG made when it is built: a move swaps bytes
"""
from __future__ import annotations

import math

import ipywidgets as _widgets
import numpy as np
import torch

from .png import figure_rgb, png_width, to_png
from .widgets import image_widget

K_MAX = 5000  # Burda et al. (2016) evaluate with K = 5000

# -- pure functions --------------------------------------------------------------------------


def k_values(n: int = K_MAX) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to n, and n itself: about three steps per decade of K."""
    ks, decade = [], 1
    while decade <= n:
        ks += [m * decade for m in (1, 2, 5) if m * decade <= n]
        decade *= 10
    return ks if ks[-1] == n else ks + [n]


def few_k(n: int = K_MAX) -> list[int]:
    """The K of the table and the static figure: 1, 10, 100, 1000 (those below n) and n."""
    return [k for k in (1, 10, 100, 1000) if k < n] + [n]


def _float64(log_w) -> torch.Tensor:
    """log_w (a tensor on any device, or an array) as a float64 CPU tensor."""
    if isinstance(log_w, torch.Tensor):
        return log_w.detach().cpu().to(torch.float64)
    return torch.as_tensor(np.asarray(log_w, dtype=np.float64))


def nested_path(log_w) -> dict:
    """For every K = 1..n, the first K of the n log-weights log_w (n,) or (n, B) give

        log_p_hat[K-1]  = log 1/K sum_{k<=K} w_k              (the estimate of log p(x))
        mean_log_w[K-1] = 1/K sum_{k<=K} log w_k              (estimator A of L, eq. 6, L = K)
        ess[K-1]        = (sum_{k<=K} w_k)^2 / sum_{k<=K} w_k^2
        ess_fraction    = ess / K

    as float64 arrays of log_w's shape, and k = 1..n. Cumulative sums in log space: all n
    values cost about as much as one.
    """
    lw = _float64(log_w)
    k = torch.arange(1, len(lw) + 1, dtype=torch.float64).reshape(-1, *[1] * (lw.ndim - 1))
    log_sum = torch.logcumsumexp(lw, 0)                           # log sum_{k<=K} w_k
    ess = torch.exp(2 * log_sum - torch.logcumsumexp(2 * lw, 0))  # (sum w)^2 / sum w^2, in log space
    return {"k": np.arange(1, len(lw) + 1),
            "log_p_hat": (log_sum - torch.log(k)).numpy(),        # log of the mean weight
            "mean_log_w": (torch.cumsum(lw, 0) / k).numpy(),      # the mean log-weight
            "ess": ess.numpy(), "ess_fraction": (ess / k).numpy()}


def log10_shares(log_w, k: int) -> np.ndarray:
    """log10 (w_j / sum_{i<=k} w_i) for each of the first k weights (j <= k): every value <= 0,
    and their powers of ten sum to 1. Shape (k,) (or (k, B) for log_w (n, B))."""
    lw = _float64(log_w)[:k]
    return ((lw - torch.logsumexp(lw, 0)) / math.log(10)).numpy()


def weights_carrying(log_w, k: int, share: float = 0.5) -> int:
    """The fewest of the first k weights (of one digit, log_w (n,)) whose sum is at least
    `share` of the sum of all k: k // 2 or so for equal weights, 1 when one weight dominates."""
    shares = torch.softmax(_float64(log_w)[:k], 0).sort(descending=True).values  # w_j / sum w, largest first
    n = int(torch.searchsorted(torch.cumsum(shares, 0), share * (1 - 1e-9))) + 1  # 1e-9: rounding of the sum
    return min(n, k)


def largest_ess_fall(log_w, path=None) -> dict:
    """Where along one digit's nested path (log_w (n,), n >= 2; `path` its `nested_path` if
    given) one added weight cuts the ESS most: the K with the smallest ESS_K / ESS_{K-1}, and

        ess_before, ess_after        ESS_{K-1} and ESS_K
        log_p_before, log_p_after    log p^_{K-1} and log p^_K (the jump that weight causes)
        share                        w_K / sum_{k<=K} w_k, the new weight's share of the K
                                     (above 1/2: it outweighs all the others together)

    Without a weight far larger than those before it the ESS never falls much: adding w_K
    changes (sum w)^2 / sum w^2 by little when w_K is small against the sum.
    """
    lw = _float64(log_w)
    path = nested_path(lw) if path is None else path
    ess, log_p = path["ess"], path["log_p_hat"]
    i = int(np.argmin(ess[1:] / ess[:-1])) + 1                       # index of ESS_K, K = i + 1
    log_sum = log_p[i] + math.log(i + 1)                             # log sum_{k<=K} w_k
    return {"K": i + 1, "ess_before": float(ess[i - 1]), "ess_after": float(ess[i]),
            "log_p_before": float(log_p[i - 1]), "log_p_after": float(log_p[i]),
            "share": math.exp(float(lw[i]) - log_sum)}


def histogram_edges(log_w, n_bins: int = 36) -> np.ndarray:
    """Bin edges of log10 share for every K and every digit (column) of log_w (n, B): from the
    smallest share any weight has (at K = n: the sum only grows with K), rounded down to a
    whole decade, up to 0 (a weight that is the whole sum)."""
    lo = math.floor(log10_shares(log_w, len(log_w)).min())
    return np.linspace(lo, 0.0, n_bins + 1)


def weight_histogram(log_w, k: int, edges) -> tuple[np.ndarray, np.ndarray]:
    """(counts, mass): how many of the first k weights of one digit have a log10 share in each
    bin of `edges`, and the share of the sum those weights carry (mass sums to 1)."""
    s = log10_shares(log_w, k)
    return np.histogram(s, edges)[0], np.histogram(s, edges, weights=10.0 ** s)[0]


def summary(log_w, ks=None, path=None) -> dict:
    """{K: the numbers a K slider position shows} for one digit's n log-weights log_w (n,), at
    each K of ks (default `k_values(n)`): K, ess, ess_fraction, log_p_hat, mean_log_w (from
    `nested_path`, or `path` if given), half (`weights_carrying` half the sum), n and
    reference (log_p_hat at K = n)."""
    path = nested_path(log_w) if path is None else path
    n = len(path["k"])
    ks = k_values(n) if ks is None else ks
    names = ("ess", "ess_fraction", "log_p_hat", "mean_log_w")
    return {k: {"K": k, **{name: float(path[name][k - 1]) for name in names},
                "half": weights_carrying(log_w, k), "n": n, "reference": float(path["log_p_hat"][-1])}
            for k in ks}


def format_row(row: dict) -> dict:
    """A `summary` row's numbers as the readout and the notebook's table print them."""
    return {"K": f"{row['K']}", "ess": f"{row['ess']:.2f}", "ess-fraction": f"{100 * row['ess_fraction']:.3g}%",
            "half": f"{row['half']}", "log-p": f"{row['log_p_hat']:.2f}", "mean": f"{row['mean_log_w']:.2f}",
            "n": f"{row['n']}", "reference": f"{row['reference']:.2f}"}


def readout_html(row: dict) -> str:
    """The readout of one `summary` row, as HTML: each number in an element of its own CSS class
    (vae-k-K, vae-k-ess, vae-k-ess-fraction, vae-k-half, vae-k-log-p, vae-k-mean, vae-k-reference),
    formatted as `format_row` prints it."""
    t = format_row(row)
    b = {name: f'<b class="vae-k-{name}">{t[name]}</b>' for name in t}
    nats = "&thinsp;nats"
    return ("<div style='line-height:1.7'>"
            f"K = {b['K']} weights: ESS = {b['ess']}, ESS/K = {b['ess-fraction']}; "
            f"half of their sum comes from {b['half']} of them<br>"
            f"estimate log p&#770;<sub>K</sub> = log (1/K) &Sigma;<sub>k</sub> w<sub>k</sub> = {b['log-p']}{nats}<br>"
            f"bound's estimate (1/K) &Sigma;<sub>k</sub> log w<sub>k</sub> (estimator A, L = K) = {b['mean']}{nats}"
            f"<br>reference, K = {b['n']}: log p&#770;<sub>{t['n']}</sub> = {b['reference']}{nats}</div>")


def table(log_w, digits, ks, names=None) -> str:
    """The `summary` numbers of several digits (columns `digits` of log_w (n, B)) at each K of
    ks, one line per digit and K, formatted as the explorer's readout shows them."""
    names = names or {d: f"#{d}" for d in digits}
    lines = [f"{'digit':>10s} {'K':>5s} {'ESS':>8s} {'ESS/K':>7s} {'half':>5s} {'log p^_K':>9s} "
             f"{'mean log w':>10s}   (nats; half: the fewest weights carrying half the sum)"]
    for d in digits:
        for k, row in summary(_float64(log_w)[:, d], ks).items():
            t = format_row(row)
            lines.append(f"{names[d]:>10s} {t['K']:>5s} {t['ess']:>8s} {t['ess-fraction']:>7s} {t['half']:>5s} "
                         f"{t['log-p']:>9s} {t['mean']:>10s}")
    return "\n".join(lines)


# -- drawing ---------------------------------------------------------------------------------

_EMPTY = 0.3  # the bottom of the count axis (log scale): an empty bin is a bar of no height, a bin
              # of one weight a third as tall as a bin of ten (log(1/0.3) : log(10/0.3))
_X_PAD = 0.04  # the share axis runs past 0 by this fraction of its range: the K = 1 bar (at 0) and
               # the dashed 1/K line there stand clear of the right spine
_GREY, _GREY_RGB = "#999999", (153, 153, 153)
_RED, _RED_RGB = "#d62728", (214, 39, 40)  # matplotlib's C3


def _no_minor_ticks(*axes) -> None:
    """No minor ticks on log axes: most of a render's time, and little use in a small image."""
    from matplotlib.ticker import NullLocator

    for ax in axes:
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_locator(NullLocator())


class HistogramPanel:
    """The histogram of the first K weights' shares of their sum, on a matplotlib axes, redrawn
    in place by `show(log_w, k)`:

        grey bars     how many weights have a log10 share in each bin (left axis, log scale)
        red steps     the share of the sum those weights carry (right axis, .twin)
        dashed line   log10(1/K): every weight's share, were all K weights equal

    edges: `histogram_edges`, the same for every K and digit; n: the largest K (the count axis
    reaches 2n). Without `show`, the axes alone: `HistogramImage` renders them once and draws
    the data in numpy.
    """

    def __init__(self, ax, edges, n: int, fontsize: float = 8):
        from matplotlib.ticker import PercentFormatter

        self.ax, self.edges = ax, np.asarray(edges)
        self.bars = ax.stairs(np.full(len(edges) - 1, _EMPTY), edges, baseline=_EMPTY, fill=True, color=_GREY)
        ax.set_yscale("log")
        ax.set_ylim(_EMPTY, 2 * n)
        ax.set_xlim(edges[0], edges[-1] + _X_PAD * (edges[-1] - edges[0]))
        self.equal = ax.axvline(0.0, color="k", ls="--", lw=1, visible=False)
        self.twin = ax.twinx()
        self.mass = self.twin.stairs(np.zeros(len(edges) - 1), edges, color=_RED, lw=1.5)
        self.twin.set_ylim(0, 1.05)
        self.twin.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel(r"$\log_{10}$ share $w_k / \Sigma_j w_j$ (dashed: $1/K$, all equal)", fontsize=fontsize)
        ax.set_ylabel("weights per bin (grey, log scale)", fontsize=fontsize)
        self.twin.set_ylabel("their share of the sum (red)", fontsize=fontsize, color=_RED)
        for a in (ax, self.twin):
            a.tick_params(labelsize=fontsize - 1)

    def show(self, log_w, k: int, title: str | None = None) -> None:
        """Draw the first k of one digit's log-weights log_w (n,)."""
        counts, mass = weight_histogram(log_w, k, self.edges)
        self.bars.set_data(np.maximum(counts, _EMPTY))
        self.mass.set_data(mass)
        self.equal.set_xdata([math.log10(1 / k)] * 2)
        self.equal.set_visible(True)
        self.ax.set_title(title or f"the K = {k} weights", fontsize=self.ax.xaxis.label.get_size() + 1)


class HistogramImage:
    """A `HistogramPanel`'s axes rendered once, empty, to pixels (like `maps.LatentMap`);
    `pixels(log_w, k)` draws the bars, the red steps and the dashed 1/K line in numpy, so a
    histogram costs no matplotlib call."""

    def __init__(self, edges, n: int, size=(4.6, 2.9), dpi: int = 96,
                 title: str = "the first K weights, as shares of their sum"):
        from matplotlib.figure import Figure

        fig = Figure(figsize=size, dpi=dpi)
        fig.subplots_adjust(left=0.14, right=0.83, bottom=0.16, top=0.9)
        self.panel = HistogramPanel(fig.add_subplot(), edges, n)
        self.panel.ax.set_title(title, fontsize=9)
        _no_minor_ticks(self.panel.ax)
        self.rgb = figure_rgb(fig)
        h = self.rgb.shape[0]
        ax, twin = self.panel.ax, self.panel.twin
        self.edges = self.panel.edges
        self._cols = np.rint(ax.transData.transform(np.c_[self.edges, np.ones_like(self.edges)])[:, 0]).astype(int)
        self._count_row = lambda y: np.rint(h - ax.transData.transform(np.c_[np.ones_like(y), y])[:, 1]).astype(int)
        self._mass_row = lambda y: np.rint(h - twin.transData.transform(np.c_[np.ones_like(y), y])[:, 1]).astype(int)
        self._x = lambda v: int(round(ax.transData.transform((v, 1.0))[0]))
        (x0, y0), (x1, y1) = ax.transAxes.transform([(0, 0), (1, 1)])
        self._top, self._bottom = int(round(h - y1)), int(round(h - y0))
        self._left, self._right = int(round(x0)), int(round(x1))        # the spines' columns

    def pixels(self, log_w, k: int) -> np.ndarray:
        """The histogram of the first k of one digit's log-weights log_w (n,), as (H, W, 3) uint8."""
        counts, mass = weight_histogram(log_w, k, self.edges)
        img = self.rgb.copy()
        base = self._count_row(np.array([_EMPTY]))[0]
        tops = self._count_row(np.maximum(counts, _EMPTY).astype(float))
        for c0, c1, top in zip(self._cols[:-1], self._cols[1:], tops):
            img[top:base, c0:c1] = _GREY_RGB                                   # a bar per bin
        rows = self._mass_row(mass.astype(float))
        for i, (c0, c1, r) in enumerate(zip(self._cols[:-1], self._cols[1:], rows)):
            img[r - 1:r + 1, c0:c1 + 1] = _RED_RGB                             # the bin's share of the sum
            if i:
                lo, hi = sorted((rows[i - 1], r))
                img[lo - 1:hi + 1, c0 - 1:c0 + 1] = _RED_RGB                   # the step from the last bin
        x = self._x(math.log10(1 / k))
        for r in range(self._top, self._bottom, 8):
            img[r:min(r + 5, self._bottom), x - 1:x + 1] = 0                   # dashed, on top: 1/K
        return img


def draw_path(ax_est, ax_ess, path, color="C0", label=None, relative: bool = False) -> None:
    """One nested path (`nested_path` of one digit) against K: on ax_est the estimate log p^_K
    (solid), the bound's estimate, the mean log-weight (dashed), and the last K's estimate
    (dotted, the reference), in nats (minus that reference if `relative`); on ax_ess, ESS/K."""
    k, ref = path["k"], float(path["log_p_hat"][-1])
    shift = ref if relative else 0.0
    ax_est.plot(k, path["log_p_hat"] - shift, color=color, lw=1.3)
    ax_est.plot(k, path["mean_log_w"] - shift, color=color, lw=1, ls="--")
    ax_est.axhline(ref - shift, color=color, lw=0.8, ls=":")
    ax_ess.plot(k, path["ess_fraction"], color=color, lw=1.3, label=label)


def style_path_axes(ax_est, ax_ess, n: int, relative: bool = False, fontsize: float = 8,
                    legend_above: bool = False) -> None:
    """Log-K axes, labels, the legend of the line styles (in ax_est, or in one row above both
    axes if `legend_above`), and on ax_ess the two limits of ESS/K: 1 (all weights equal) and
    1/K (one weight carries the sum)."""
    from matplotlib.lines import Line2D

    k = np.array([1, n])
    ax_ess.plot(k, [1, 1], color="0.5", lw=0.8, ls="-.")
    ax_ess.plot(k, 1 / k, color="0.5", lw=0.8, ls=":")
    ax_ess.text(1.2, 1.15, "1: all weights equal", fontsize=fontsize - 1, color="0.35", va="bottom")
    ax_ess.text(n ** 0.5, 0.3 / n ** 0.5, "1/K: one weight carries the sum", fontsize=fontsize - 1,
                color="0.35", va="top", ha="center")
    ax_ess.set_yscale("log")
    ax_ess.set_ylim(0.5 / n, 4)
    ax_ess.set_ylabel("ESS / K", fontsize=fontsize)
    ax_est.set_ylabel("nats, minus the K = %d estimate" % n if relative else "nats", fontsize=fontsize)
    styles = [Line2D([], [], color="k", lw=1.3), Line2D([], [], color="k", lw=1, ls="--"),
              Line2D([], [], color="k", lw=0.8, ls=":")]
    names = [r"estimate $\log \hat p_K$", r"bound's estimate: mean $\log w_k$ (estimator A, $L = K$)",
             f"reference: $\\log \\hat p_{{{n}}}$"]
    if legend_above:
        ax_est.figure.legend(styles, names, fontsize=fontsize, loc="upper center", ncol=3, frameon=False)
    else:
        ax_est.legend(styles, names, fontsize=fontsize - 1, loc="best")
    for ax in (ax_est, ax_ess):
        ax.set_xscale("log")
        ax.set_xlim(1, n)
        ax.set_xlabel("K, the first K weights of one set of %d (log scale)" % n, fontsize=fontsize)
        ax.tick_params(labelsize=fontsize - 1)


class PathImage:
    """One digit's nested path (`draw_path` on two axes) rendered once to pixels; `with_marker(k)`
    draws the current K as a red vertical line in numpy, so moving K costs no matplotlib call."""

    def __init__(self, path, size=(8.6, 3.1), dpi: int = 96, title: str | None = None):
        from matplotlib.figure import Figure

        fig = Figure(figsize=size, dpi=dpi)
        ax_est, ax_ess = fig.subplots(1, 2, gridspec_kw={"wspace": 0.32})
        fig.subplots_adjust(left=0.085, right=0.985, bottom=0.145, top=0.82)
        n = len(path["k"])
        draw_path(ax_est, ax_ess, path)
        style_path_axes(ax_est, ax_ess, n, legend_above=True)
        ax_est.set_title(title or "the estimates along the path", fontsize=9)
        ax_ess.set_title("the effective sample size, as a fraction of K", fontsize=9)
        _no_minor_ticks(ax_est, ax_ess)
        self.rgb = figure_rgb(fig)
        self._axes = (ax_est, ax_ess)

    def columns_rows(self, k: int) -> list[tuple[int, int, int]]:
        """(column of K, top row, bottom row) in `rgb` for each of the two axes."""
        h = self.rgb.shape[0]
        out = []
        for ax in self._axes:
            (x0, y0), (x1, y1) = ax.transAxes.transform([(0, 0), (1, 1)])
            col = ax.transData.transform((k, 1.0))[0]
            out.append((int(round(col)), int(round(h - y1)), int(round(h - y0))))
        return out

    def with_marker(self, k: int) -> np.ndarray:
        """A copy of the image with a red vertical line at K = k in both panels."""
        img = self.rgb.copy()
        for col, top, bottom in self.columns_rows(k):
            img[top:bottom, max(col - 1, 0):col + 1] = _RED_RGB
        return img


# -- the widget ------------------------------------------------------------------------------


def _css(widget, name: str):
    widget.add_class(name)
    return widget


class KExplorer(_widgets.VBox):
    """A digit dropdown and a K slider over one set of n importance weights per digit.

    log_w: (n, B) log-weights of B digits (e.g. `importance.importance_log_weights(model, x, 5000)`);
    the first K of a digit's n are its K weights (one nested path). x (B, D) and labels (B,),
    optional: the digits' images and labels, shown and named in the dropdown. digits: the
    columns offered (default the first five); ks: the slider's K (default `k_values(n)`).

    Everything a move shows is computed and rendered here: per digit its `nested_path`, the
    readout numbers (`summary`), a histogram PNG per K and a path PNG per K (the path with
    that K's marker); a K or digit move only swaps PNG bytes and readout HTML. Parts: .digit (Dropdown, vae-k-digit), .k
    (SelectionSlider, vae-k), .image (histogram PNG, vae-k-histogram), .path (PNG, vae-k-path),
    .readout (HTML, vae-k-readout), .digit_image (PNG, vae-k-digit-image); .redraws counts redraws.
    """

    def __init__(self, log_w, x=None, labels=None, digits=None, ks=None, image_shape=(28, 28)):
        lw = _float64(log_w)
        n = len(lw)
        self.digits = list(range(min(lw.shape[1], 5)) if digits is None else digits)
        self.ks = k_values(n) if ks is None else list(ks)
        self.log_w = {d: lw[:, d] for d in self.digits}
        labels = None if labels is None else np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        self.names = {d: f"#{d}" + ("" if labels is None else f" (a {int(labels[d])})") for d in self.digits}
        self.paths = {d: nested_path(self.log_w[d]) for d in self.digits}
        self.rows = {d: summary(self.log_w[d], self.ks, self.paths[d]) for d in self.digits}
        self.edges = histogram_edges(lw[:, self.digits])
        frame = HistogramImage(self.edges, n)
        self.histograms = {d: {k: to_png(frame.pixels(self.log_w[d], k), 1) for k in self.ks} for d in self.digits}
        self.path_images = {d: PathImage(self.paths[d], title=f"digit {self.names[d]}: the estimates along the path")
                            for d in self.digits}
        self.path_pngs = {d: {k: to_png(self.path_images[d].with_marker(k), 1) for k in self.ks} for d in self.digits}
        self.digit_pngs = {}
        if x is not None:
            x = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x)
            self.digit_pngs = {d: to_png(x[d].reshape(image_shape), 4) for d in self.digits}

        self.digit = _css(_widgets.Dropdown(options=[(self.names[d], d) for d in self.digits],
                                            value=self.digits[0], description="digit"), "vae-k-digit")
        self.k = _css(_widgets.SelectionSlider(options=[(str(k), k) for k in self.ks], value=self.ks[0],
                                               description="K", continuous_update=True), "vae-k")
        d0 = self.digits[0]  # images at their own width in pixels, not stretched by their box
        self.image = image_widget(b"", "vae-k-histogram", png_width(self.histograms[d0][self.ks[0]]))
        self.path = image_widget(b"", "vae-k-path", self.path_images[d0].rgb.shape[1])
        self.readout = _css(_widgets.HTML(layout=_widgets.Layout(max_width="330px")), "vae-k-readout")
        self.digit_image = image_widget(b"", "vae-k-digit-image", 4 * image_shape[1])
        self.redraws = 0
        self._redraw()
        self.digit.observe(self._redraw, names="value")
        self.k.observe(self._redraw, names="value")
        left = [self.digit_image] if self.digit_pngs else []
        super().__init__([_widgets.HBox([self.digit, self.k]),
                          _widgets.HBox([*left, self.image, self.readout], layout=_widgets.Layout(align_items="center")),
                          self.path])

    def _redraw(self, change=None):
        d, k = self.digit.value, self.k.value
        self.image.value = self.histograms[d][k]
        self.path.value = self.path_pngs[d][k]
        self.readout.value = readout_html(self.rows[d][k])
        if self.digit_pngs:
            self.digit_image.value = self.digit_pngs[d]
        self.redraws += 1

    def table(self, ks=None) -> str:
        """The readout's numbers for every digit offered, at ks (default 1, 10, 100, 1000 and n)."""
        ks = few_k(len(self.paths[self.digits[0]]["k"])) if ks is None else ks
        lw = torch.stack([self.log_w[d] for d in self.digits], 1)
        return table(lw, range(len(self.digits)), ks, names=dict(enumerate(self.names[d] for d in self.digits)))

    def figure(self, digit=None, ks=None, width: float = 11.0, height: float = 6.0):
        """The same content as a static figure: the histogram of one digit's weights (default
        the one shown) at a few K (default 1, 10, 100, 1000 and n), and, for every digit
        offered, the estimates (minus each digit's K = n estimate) and ESS/K against K."""
        import matplotlib.pyplot as plt

        digit = self.digit.value if digit is None else digit
        n = len(self.paths[digit]["k"])
        ks = few_k(n) if ks is None else list(ks)
        fig = plt.figure(figsize=(width, height), layout="constrained")
        gs = fig.add_gridspec(2, 2 * len(ks))
        for j, k in enumerate(ks):
            panel = HistogramPanel(fig.add_subplot(gs[0, 2 * j:2 * j + 2]), self.edges, n, fontsize=7)
            panel.show(self.log_w[digit], k, f"digit {self.names[digit]}, K = {k}")
            if j:
                panel.ax.set_ylabel("")
            if j < len(ks) - 1:
                panel.twin.set_ylabel("")
        half = len(ks)
        ax_est, ax_ess = fig.add_subplot(gs[1, :half]), fig.add_subplot(gs[1, half:])
        for i, d in enumerate(self.digits):
            draw_path(ax_est, ax_ess, self.paths[d], color=f"C{i}", label=self.names[d], relative=True)
        style_path_axes(ax_est, ax_ess, n, relative=True)
        ax_ess.legend(title="digit", fontsize=7, title_fontsize=7, loc="lower left")
        ax_est.set_title("each digit's estimates along its nested path", fontsize=9)
        ax_ess.set_title("effective sample size / K along the same paths", fontsize=9)
        return fig
