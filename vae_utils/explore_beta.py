"""Slide beta (notebook 07): one slider over the beta sweep's models. Not imported by the core.

Training with weight beta maximises -(D + beta R), with the rate R = E_x KL(q(z|x) || p(z))
and the distortion D = -E_x E_q log p(x|z) (`evaluate.rate_distortion`); the bound is -(R + D).
At each beta the explorer shows

    a latent map     the J-D posterior means mu(x) of test digits, projected on their first
                     two principal directions (PCA of that model's codes): a view, not the space.
                     Its origin is the codes' mean; a "+" marks z = 0 and the dashed circle
                     around it holds 95% of the prior N(0, I)
    samples          E[x|z] for the SAME draws z ~ N(0, I) at every beta
    the R-D plane    one point per beta, the current one ringed, with its line of equal bound
    a readout        beta, R, D, the bound -(R + D), active units and a probe's accuracy, all
                     passed in from the notebook's own results, never recomputed here

Every picture is rendered when the widget is built; moving the slider swaps PNG bytes. The
pure functions (`project_codes`, `prior_origin`, `map_radius`, `sampled_code_variance`,
`map_limits`, `prior_draws`, `decode_draws`, `highlighted_point`, `readout_values`) compute
what a beta change shows and are tested without a browser; `BetaExplorer` wires them to
controls, and `.figure()` draws the same content as one static figure.
"""
from __future__ import annotations

import io
from typing import NamedTuple

import ipywidgets as _widgets
import numpy as np

from .latent import encode_means
from .maps import draw_codes
from .plots import image_grid
from .png import png_width, to_png
from .probes import pca
from .widgets import image_widget, decode

# Any orthonormal projection of z ~ N(0, I_J) onto a plane is N(0, I_2), and P(|z| < r) =
# 1 - exp(-r^2 / 2) in 2-D: the circle of radius sqrt(-2 log 0.05) around the image of z = 0
# (`prior_origin`) holds 95% of the prior on every map, whatever the principal directions are.
PRIOR_95_RADIUS = float(np.sqrt(-2 * np.log(0.05)))


# -- the latent map -----------------------------------------------------------------------------


class Projection(NamedTuple):
    """Codes seen on a plane: points (N, 2) = (codes - centre) @ axes.T, axes (2, J) orthonormal
    rows, centre (J,), explained (2,): the fraction of the codes' total variance along each axis."""
    points: np.ndarray
    axes: np.ndarray
    centre: np.ndarray
    explained: np.ndarray


def project_codes(codes, seed: int = 0) -> Projection:
    """The codes (N, J) projected on their first two principal directions (`probes.pca`).

    The axes are the two leading eigenvectors of the codes' covariance; the map's coordinates
    are in the units of z (an orthonormal projection keeps lengths along the plane), so maps of
    different models share a scale. What lies off the plane (1 - sum(explained) of the
    variance) is not shown.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    # one BLAS thread: on a busy 2-core CPU a PCA of 10,000 x 20 codes took 15 ms, against 4.4 s with two
    with threadpool_limits(limits=1):
        codes = np.asarray(codes, dtype=np.float64)
        fit = pca(codes, 2, seed)
        return Projection(fit.transform(codes), fit.components_, fit.mean_, fit.explained_variance_ratio_)


def prior_origin(projection: Projection) -> np.ndarray:
    """Where z = 0 lands on the map, (2,): (0 - centre) @ axes.T, the map's own formula
    (`Projection`) at z = 0. The map's origin is the codes' mean, so this is minus the mean's
    component in the plane; its length is at most ||centre||, the mean's distance from z = 0 in
    J-D (the rest of that distance is off the plane)."""
    return -np.asarray(projection.centre) @ np.asarray(projection.axes).T


def sampled_code_variance(mu, sd, directions) -> np.ndarray:
    """The variance over the data of a sampled code z = mu(x) + sd(x) * eps along each unit
    vector u of `directions` (K, J), shape (K,). By the law of total variance,

        Var(u.z) = Var_x(u.mu(x)) + E_x[sum_j u_j^2 sd_j(x)^2]     (q(z|x) has a diagonal covariance)

    so with `directions` = I_J it is Var_x(mu_j) + E_x sd_j^2 per unit (ddof=0, as notebook 07's
    exercise 07.4). If the aggregate posterior E_x q(z|x) were N(0, I), it would be 1 along
    every direction."""
    mu, sd, u = (np.asarray(a, dtype=np.float64) for a in (mu, sd, directions))
    return (mu @ u.T).var(0) + (sd**2 @ (u**2).T).mean(0)


def map_radius(codes) -> float:
    """The root-mean-square distance of the 2-D map's points from its centre, in units of z:
    sqrt(lambda_1 + lambda_2), the two largest eigenvalues of the codes' covariance (ddof=1),
    which are the variances along the PCA map's two axes. The prior's is sqrt(2) on any plane."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # as in project_codes: 12 ms, against 0.5 s with two threads
        eig = np.linalg.eigvalsh(np.cov(np.asarray(codes, dtype=np.float64).T))  # ascending
    return float(np.sqrt(eig[-2:].sum()))


def _round_up(x: float, step: float) -> float:
    return float(np.ceil(x / step - 1e-9) * step)


def map_limits(points: dict, quantile: float = 0.995, max_ratio: float = 2.0, step: float = 0.5,
               must_show: dict | None = None) -> dict:
    """{key: lim}: each map shows [-lim, lim]^2. One shared lim, so that the maps are on one
    scale and a contraction shows, unless a map would need more than `max_ratio` times the
    median map's: that one gets its own (wider) axes, and its title must say so.

    A map's extent is the `quantile` of |coordinate| over its points (both axes), or
    must_show[key] if that is larger (the explorer passes the prior circle's reach,
    max |prior_origin| + PRIOR_95_RADIUS, so the circle is never cut); the shared lim is the
    largest extent among the maps within max_ratio of the median extent; every lim is rounded
    up to a multiple of `step`.
    """
    extent = {k: max(float(np.quantile(np.abs(np.asarray(p)), quantile)), (must_show or {}).get(k, 0.0))
              for k, p in points.items()}
    cap = max_ratio * float(np.median(list(extent.values())))
    shared = max(e for e in extent.values() if e <= cap)
    return {k: _round_up(shared if e <= cap else e, step) for k, e in extent.items()}


def draw_map(ax, projection: Projection, labels, lim: float, title: str, n_points: int | None = None,
             label_name: str | None = None, s: float = 2, short: bool = False):
    """The projected codes coloured by label (`maps.draw_codes`) on [-lim, lim]^2, whose origin
    is the codes' mean; the axes named as principal directions with the share of the codes'
    variance each shows (`short`: "PC 1 (9%)"); a black "+" at the image of z = 0
    (`prior_origin`) and, around it, the dashed circle holding 95% of the prior N(0, I) on this
    (or any) plane."""
    n = n_points or len(projection.points)
    draw_codes(ax, projection.points[:n], None if labels is None else np.asarray(labels)[:n], lim,
               label_name, s=s, legend_size=7)
    x0, y0 = prior_origin(projection)
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(x0 + PRIOR_95_RADIUS * np.cos(t), y0 + PRIOR_95_RADIUS * np.sin(t), "k--", lw=0.8)
    ax.plot([x0], [y0], "k+", ms=8, mew=1.5)
    share = [f"{e:.0%}" for e in projection.explained]
    ax.set_xlabel(f"PC 1 ({share[0]})" if short else f"PC 1 of μ ({share[0]} of its variance)", fontsize=8)
    ax.set_ylabel(f"PC 2 ({share[1]})" if short else f"PC 2 of μ ({share[1]})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8 if short else 9)
    return ax


# -- samples ------------------------------------------------------------------------------------


def prior_draws(n: int, z_dim: int, seed: int = 0) -> np.ndarray:
    """n codes z ~ N(0, I) of z_dim units, float32 (n, z_dim): drawn once, shown at every beta."""
    return np.random.default_rng(seed).standard_normal((n, z_dim)).astype(np.float32)


def decode_draws(models: dict, z, image_shape=(28, 28)) -> dict:
    """{key: E[x|z] (n, H, W)} of each model for the SAME codes z: what changes from one beta
    to the next is the decoder, never the draw."""
    return {k: decode(m, z, image_shape) for k, m in models.items()}


# -- the rate-distortion plane --------------------------------------------------------------------


def highlighted_point(rd: dict, beta) -> tuple[float, float]:
    """(R, D) of the model trained at `beta`, the point the plot rings; rd: {beta: (R, D)}."""
    rate, distortion = rd[beta]
    return float(rate), float(distortion)


def draw_rd(ax, rd: dict, beta=None):
    """The (R, D) points of every beta joined in order of beta, each named; with `beta`, its
    point ringed in red and the line of its bound, R + D = const, dashed (a straight line that
    the log R axis draws curved). R and D in nats per digit."""
    from matplotlib.ticker import NullFormatter

    betas = sorted(rd)
    rates, distortions = (np.array([rd[b][i] for b in betas]) for i in (0, 1))
    ax.plot(rates, distortions, "-o", color="C0", ms=4, lw=1)
    for b in betas:
        ax.annotate(f"β={b:g}", rd[b], textcoords="offset points", xytext=(4, 3), fontsize=7)
    lo, hi = rates.min() / 1.5, rates.max() * 1.5
    if beta is not None:
        r, d = highlighted_point(rd, beta)
        rs = np.geomspace(lo, hi, 200)
        ax.plot(rs, r + d - rs, "--", color="gray", lw=0.8, label=f"equal bound, -(R + D) = {-(r + d):.1f}")
        ax.plot(r, d, "o", mfc="none", mec="red", ms=12, mew=2, label=f"β = {beta:g}")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow span would label minor ticks, over each other
    pad = 0.08 * (distortions.max() - distortions.min())
    ax.set_xlim(lo, hi)
    ax.set_ylim(distortions.min() - pad, distortions.max() + pad)
    ax.set_xlabel("rate R (nats per digit, log scale)", fontsize=8)
    ax.set_ylabel("distortion D (nats per digit)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("rate and distortion, test set", fontsize=9)
    return ax


# -- the readout ----------------------------------------------------------------------------------


def readout_values(beta, rd: dict, units: dict, probe: dict) -> dict:
    """What the readout shows at `beta`, from the notebook's results: rd {beta: (R, D)},
    units {beta: active units}, probe {beta: accuracies over draws} (`probes.probe_accuracies`:
    one per labelled set). The bound is -(R + D) (eq. 10 of the paper, as
    `evaluate.rate_distortion` splits it); the probe's mean and sd (ddof=1, over the labelled
    sets, `probe_draws` of them) are in percent."""
    rate, distortion = highlighted_point(rd, beta)
    acc = np.asarray(probe[beta], dtype=np.float64)
    return {"beta": float(beta), "rate": rate, "distortion": distortion, "bound": -(rate + distortion),
            "active_units": int(units[beta]), "probe_mean": 100 * float(acc.mean()),
            "probe_sd": 100 * float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"), "probe_draws": len(acc)}


def readout_html(values: dict, z_dim: int, probe_name: str) -> str:
    """The readout as one line of HTML, each number in a span of class vae-beta-<name>; the
    probe's ± is its sd over the labelled sets."""
    def num(name, text):
        return f'<b class="vae-beta-{name}">{text}</b>'

    return (f"β = {num('beta', format(values['beta'], 'g'))} &nbsp;·&nbsp; "
            f"rate R = {num('rate', format(values['rate'], '.1f'))} nats &nbsp;·&nbsp; "
            f"distortion D = {num('distortion', format(values['distortion'], '.1f'))} nats &nbsp;·&nbsp; "
            f"bound −(R + D) = {num('bound', format(values['bound'], '.1f'))} nats &nbsp;·&nbsp; "
            f"active units {num('units', values['active_units'])} of {z_dim} &nbsp;·&nbsp; "
            f"{probe_name}: {num('probe', format(values['probe_mean'], '.1f'))} ± "
            f"{values['probe_sd']:.1f} % (sd over {values['probe_draws']} labelled sets)")


# -- the widget -----------------------------------------------------------------------------------


def _png(draw, size, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure of `size` inches on which draw(fig) draws."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    draw(fig)
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


CAPTION = ("<small><b>Map:</b> the posterior means μ(x) of {n:,} test digits, {J}-D, projected on the "
           "model's first two principal directions (PCA of its own codes): a view, not the latent space; "
           "the axis labels say how much of the codes' variance it shows. Axes in units of z, on one "
           "scale at every β unless the title says otherwise; the origin is the codes' mean, <b>+</b> is "
           "z = 0 and the dashed circle around it holds 95% of N(0, I) on any plane. "
           "<b>Samples:</b> E[x|z] for the same {k} draws z ~ N(0, I) at every β. "
           "<b>Plot:</b> each β's (R, D), the current one ringed.</small>")


class BetaExplorer(_widgets.VBox):
    """A slider over beta; the latent map, the samples, the (R, D) plot and the readout swap.

    models: {beta: trained VAE}; x, labels: test digits (N, D) and their labels, encoded here
    once per model; rd, units, probe: the notebook's {beta: (R, D)}, {beta: active units},
    {beta: probe accuracies, one per labelled set}, shown as given, the probe named by
    probe_name in the readout and the static figure. Parts: .beta (SelectionSlider,
    labelled by beta), .map, .samples, .rd_plot (Image, PNG), .readout (HTML); per beta:
    .codes, .projections, .limits (the prior's circle always inside), .images, .values, .pngs.
    CSS classes vae-beta, vae-beta-map, vae-beta-samples, vae-beta-rd, vae-beta-readout.
    """

    def __init__(self, models: dict, x, labels, rd: dict, units: dict, probe: dict,
                 probe_name: str = "linear-probe accuracy", n_map: int = 2000, n_samples: int = 25,
                 seed: int = 0, start=None, image_shape=(28, 28)):
        self.betas = sorted(models)
        self.labels, self.n_map = np.asarray(labels), n_map
        self.z_dim = next(iter(models.values())).config.z_dim
        self.codes = {b: encode_means(models[b], x)[0] for b in self.betas}
        self.projections = {b: project_codes(c, seed) for b, c in self.codes.items()}
        self.limits = map_limits({b: p.points for b, p in self.projections.items()},
                                 must_show={b: float(np.abs(prior_origin(p)).max()) + PRIOR_95_RADIUS
                                            for b, p in self.projections.items()})
        self.z = prior_draws(n_samples, self.z_dim, seed)
        self.images = decode_draws({b: models[b] for b in self.betas}, self.z, image_shape)
        self.grid_columns = int(np.ceil(np.sqrt(n_samples)))
        self.rd = {b: rd[b] for b in self.betas}
        self.values = {b: readout_values(b, rd, units, probe) for b in self.betas}
        self.probe_name = probe_name
        self.pngs = {b: self._render(b) for b in self.betas}  # every picture, once
        start = (1.0 if 1.0 in self.pngs else self.betas[0]) if start is None else start
        self.beta = _widgets.SelectionSlider(options=[(f"{b:g}", b) for b in self.betas], value=start,
                                             description="β", continuous_update=True,
                                             layout=_widgets.Layout(width="420px"))
        self.beta.add_class("vae-beta")
        self.map, self.samples, self.rd_plot = (
            image_widget(b"", css, png_width(png))
            for css, png in zip(("vae-beta-map", "vae-beta-samples", "vae-beta-rd"), self.pngs[start]))
        self.readout = _widgets.HTML("")
        self.readout.add_class("vae-beta-readout")
        caption = _widgets.HTML(CAPTION.format(n=min(n_map, len(self.labels)), J=self.z_dim, k=n_samples))
        self.redraws = 0
        self._redraw()
        self.beta.observe(self._redraw, names="value")
        row = _widgets.HBox([self.map, self.samples, self.rd_plot], layout=_widgets.Layout(flex_flow="row wrap"))
        super().__init__([self.beta, self.readout, row, caption])

    def _render(self, beta) -> tuple:
        """(map PNG, samples PNG, (R, D) plot PNG, readout HTML) at beta; the three pictures
        side by side fit a notebook about 950 pixels wide."""
        return (_png(lambda fig: self._draw_map(fig.add_subplot(), beta, legend=True), (3.7, 3.2)),
                to_png(image_grid(self.images[beta], nrow=self.grid_columns), 2),
                _png(lambda fig: draw_rd(fig.add_subplot(), self.rd, beta), (3.3, 3.2)),
                readout_html(self.values[beta], self.z_dim, self.probe_name))

    def _redraw(self, change=None):
        self.map.value, self.samples.value, self.rd_plot.value, self.readout.value = self.pngs[self.beta.value]
        self.redraws += 1

    def _draw_map(self, ax, beta, legend: bool = False, n_points: int | None = None, s: float = 2,
                  short: bool = False):
        """`draw_map` of beta's codes on its limits, titled by beta (and "wider axes" if so);
        `short` (the static figure) adds a second line: active units and the probe's mean."""
        wider = self.limits[beta] > min(self.limits.values())
        title = f"β = {beta:g}" + (" (wider axes)" if wider else "") + ("" if short else ": μ(x), projected")
        if short:
            v = self.values[beta]
            title += f"\n{v['active_units']} active units, probe {v['probe_mean']:.1f}%"
        return draw_map(ax, self.projections[beta], self.labels, self.limits[beta], title,
                        n_points or self.n_map, "digit" if legend else None, s=s, short=short)

    def figure(self, size: float = 1.8, n_points: int = 800):
        """The same content as a static figure: for every beta its map of `n_points` codes
        (top, titled with its active units and probe accuracy) and its samples (bottom), and the
        (R, D) plot of all betas (right). Maps on one scale but the ones titled "wider axes";
        the last map carries the digits' legend."""
        import matplotlib.pyplot as plt

        k = len(self.betas)
        fig = plt.figure(figsize=(k * size + 1.7 * size, 2.15 * size), layout="constrained")
        gs = fig.add_gridspec(2, k + 1, width_ratios=[1] * k + [1.7])
        for j, b in enumerate(self.betas):
            self._draw_map(fig.add_subplot(gs[0, j]), b, legend=j == k - 1, n_points=n_points, s=1, short=True)
            ax = fig.add_subplot(gs[1, j])
            ax.imshow(image_grid(self.images[b], nrow=self.grid_columns), cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"β = {b:g}: samples", fontsize=9)
            ax.set_axis_off()
        draw_rd(fig.add_subplot(gs[:, k]), self.rd)
        n = min(n_points, len(self.labels))
        fig.suptitle(f"Top: the posterior means μ(x) of {n:,} test digits, projected on each model's first two "
                     f"principal directions PC 1 and PC 2 (in brackets: the share of the codes' variance along "
                     f"each),\na view of the {self.z_dim}-D codes, in units of z, centred on their mean; +: z = 0, "
                     f"and around it, dashed, the circle holding 95% of N(0, I). Probe: {self.probe_name}. "
                     f"Bottom: E[x|z] for the same {len(self.z)} draws z ~ N(0, I) at every β.",
                     fontsize=9)
        return fig
