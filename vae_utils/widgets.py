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

Notebook 04 also asks where the codes lie compared with the prior: the aggregate posterior
q(z) = (1/N) sum_i q(z|x_i) (`aggregate_log_density`, `aggregate_kl`), a set of codes whose
aggregate posterior is the prior (`prior_matched_codes`, the control), the medoid code of each
class (`class_medoids`, where the static figures look) and how blurry a decoded image is
(`pixel_entropy`).
"""
from __future__ import annotations

import io

import ipywidgets as _widgets
import numpy as np
import torch

from .elbo import LOG_2PI, kl_to_standard_normal, log_standard_normal
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


# -- the aggregate posterior, and where to look ----------------------------------------------



def prior_log_density(z) -> np.ndarray:
    """log N(z; 0, I) at points z (M, J): shape (M,)."""
    return log_standard_normal(torch.as_tensor(np.asarray(z, dtype=np.float64))).numpy()


def aggregate_log_density(z, mu, std, chunk: int = 1000) -> np.ndarray:
    """log q(z) at points z (M, J) of the aggregate posterior of N codes (mu, std: (N, J)):

        q(z) = (1/N) sum_i N(z; mu_i, diag std_i^2),

    the density of z drawn by picking a datapoint i at random and then z ~ q(z|x_i). Exact for
    the N codes given (a log-sum-exp over all of them, in float64); shape (M,).
    """
    z = torch.as_tensor(np.asarray(z, dtype=np.float64))
    mu = torch.as_tensor(np.asarray(mu, dtype=np.float64))
    prec = torch.as_tensor(np.asarray(std, dtype=np.float64) ** -2)   # 1 / sigma^2, (N, J)
    # log N(z; mu_i, diag sigma_i^2) = const_i - 1/2 sum_j (z_j^2 a_ij - 2 z_j mu_ij a_ij), a = 1/sigma^2,
    # with const_i = -1/2 sum_j (log 2 pi + log sigma_ij^2 + mu_ij^2 a_ij): two matrix products
    const = -0.5 * (LOG_2PI - torch.log(prec) + mu**2 * prec).sum(-1)  # (N,)
    weights = torch.cat([-0.5 * prec, mu * prec], dim=1).T             # (2J, N)
    out = []
    for zc in z.split(chunk):
        log_k = torch.cat([zc**2, zc], dim=1) @ weights + const        # (m, N)
        out.append(torch.logsumexp(log_k, dim=1) - np.log(len(mu)))
    return torch.cat(out).numpy()


def log_density_ratio(z, mu, std) -> np.ndarray:
    """log q(z) - log p(z): how much more (> 0) or less (< 0) often the codes land near z than
    the prior N(0, I) says. Shape (M,)."""
    return aggregate_log_density(z, mu, std) - prior_log_density(z)


def aggregate_kl(mu, std, seed: int = 0, n_draws: int | None = None) -> tuple[float, float]:
    """KL(q(z) || p(z)) of the aggregate posterior to the prior N(0, I), in nats, and its
    Monte Carlo standard error: one draw z_i ~ q(z|x_i) for each code (or for `n_draws` codes
    picked at random without replacement, which keeps the estimate unbiased), then the
    average of log q(z_i) - log p(z_i), q being the mixture of all N codes. Each z_i is scored under all N components, its own included, which
    biases the estimate up by at most about log(1 + q(z_i|x_i) / (N q(z_i))) per draw (small
    when N is large and the codes overlap).

    Hoffman & Johnson (2016, "ELBO surgery"): the average KL term of the bound splits as
        (1/N) sum_i KL(q(z|x_i) || p(z)) = I(i; z) + KL(q(z) || p(z)),
    the information the codes carry about which datapoint they came from (at most log N) plus
    this mismatch between the aggregate posterior and the prior.
    """
    mu, std = np.asarray(mu, dtype=np.float64), np.asarray(std, dtype=np.float64)
    g = np.random.default_rng(seed)
    pick = np.arange(len(mu)) if n_draws is None else np.sort(g.choice(len(mu), n_draws, replace=False))
    z = mu[pick] + std[pick] * g.standard_normal((len(pick), mu.shape[1]))
    d = aggregate_log_density(z, mu, std) - prior_log_density(z)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def gaussian_kl_per_code(mu, std) -> np.ndarray:
    """KL(N(mu_i, diag std_i^2) || N(0, I)) of each code, in nats (Appendix B): shape (N,)."""
    mu, std = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (mu, std))
    return kl_to_standard_normal(mu, 2 * torch.log(std)).numpy()


def prior_matched_codes(std, seed: int = 0) -> np.ndarray:
    """Means mu_i ~ N(0, diag(1 - std_i^2)), one per given std_i (each below 1): codes with
    the same widths whose aggregate posterior is the prior, since mu_i + std_i * eps ~ N(0, I).
    The control for a statistic of the aggregate posterior: what it gives when q(z) = p(z)."""
    std = np.asarray(std, dtype=np.float64)
    if (std >= 1).any():
        raise ValueError("every std must be below 1 (the prior's)")
    g = np.random.default_rng(seed)
    return np.sqrt(1 - std**2) * g.standard_normal(std.shape)


def class_medoids(mu, labels) -> dict:
    """{label: index of its medoid}: the code of that class with the least summed Euclidean
    distance to the other codes of the class. Unlike the class mean, it is always a real
    code, so it lies on the class's cluster even when the cluster is curved or split."""
    mu, labels = np.asarray(mu, dtype=np.float64), np.asarray(labels)
    out = {}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        d = np.linalg.norm(mu[idx, None] - mu[None, idx], axis=-1).sum(1)
        out[c.item() if hasattr(c, "item") else c] = int(idx[np.argmin(d)])
    return out


def pixel_entropy(images) -> np.ndarray:
    """Mean Bernoulli entropy per pixel of decoded images y in [0, 1] (N, ...), in nats:
    -(y log y + (1 - y) log(1 - y)), averaged over each image's pixels; shape (N,).
    0 for a crisp black-and-white image, log 2 = 0.693 for uniform grey: a measure of blur."""
    y = np.clip(np.asarray(images, dtype=np.float64).reshape(len(images), -1), 1e-12, 1 - 1e-12)
    return -(y * np.log(y) + (1 - y) * np.log1p(-y)).mean(1)


def nearest_labels(z, mu, labels, k: int = 10) -> np.ndarray:
    """The most common label among the k codes nearest to each point z (M, J): shape (M,)."""
    z, mu, labels = np.asarray(z, dtype=np.float64), np.asarray(mu, dtype=np.float64), np.asarray(labels)
    d = ((z[:, None] - mu[None]) ** 2).sum(-1)
    near = labels[np.argsort(d, axis=1)[:, :k]]
    return np.array([np.bincount(row).argmax() for row in near])


def neighbour_fractions(mu, labels, k: int = 10, n_queries: int | None = None, seed: int = 0) -> np.ndarray:
    """(C, C) matrix: row c is how the k nearest other codes of a class-c code split among the
    classes, averaged over the class-c codes (over `n_queries` codes drawn at random, if given).
    Rows sum to 1; the diagonal is each class's purity, the largest off-diagonal entry of a
    row names the class that crowds it most. Labels are 0, ..., C - 1."""
    mu, labels = np.asarray(mu, dtype=np.float64), np.asarray(labels)
    n_classes = int(labels.max()) + 1
    idx = np.arange(len(mu))
    if n_queries is not None and n_queries < len(mu):
        idx = np.sort(np.random.default_rng(seed).choice(len(mu), n_queries, replace=False))
    counts = np.zeros((n_classes, n_classes))
    for chunk in np.array_split(idx, max(1, len(idx) // 500)):
        d = ((mu[chunk, None] - mu[None]) ** 2).sum(-1)
        d[np.arange(len(chunk)), chunk] = np.inf                      # not itself
        near = labels[np.argpartition(d, k, axis=1)[:, :k]]
        np.add.at(counts, (np.repeat(labels[chunk], k), near.ravel()), 1)
    return counts / counts.sum(1, keepdims=True)


def best_match(images, reference, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """For each decoded image y (M, ...) in [0, 1]: the best reconstruction term any reference
    digit x (R, D) gets from it,

        s(y) = max over x of sum_d x_d log y_d + (1 - x_d) log(1 - y_d)   (nats),

    and the index of that x: two arrays of shape (M,). s is high when y looks like some real
    digit, low for a blend of two shapes or a stroke pattern no digit has. (With grey-level x
    this is minus a cross-entropy, the bound's reconstruction term on such data, not a
    normalised log-likelihood.)"""
    y = np.clip(np.asarray(images, dtype=np.float64).reshape(len(images), -1), 1e-6, 1 - 1e-6)
    x = torch.as_tensor(np.asarray(reference.cpu() if isinstance(reference, torch.Tensor) else reference,
                                   dtype=np.float64))
    scores, index = [], []
    for yc in torch.as_tensor(y).split(chunk):
        best = (x @ torch.log(yc).T + (1 - x) @ torch.log1p(-yc).T).max(0)   # over the (R, m) matrix's rows
        scores.append(best.values)
        index.append(best.indices)
    return torch.cat(scores).numpy(), torch.cat(index).numpy()


def best_match_log_likelihood(images, reference, chunk: int = 1000) -> np.ndarray:
    """s(y) of `best_match` alone: shape (M,)."""
    return best_match(images, reference, chunk)[0]


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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        side = size_px / dpi
        extra = 0.0 if label_name is None else 0.75  # inches on the right for a legend or colour bar
        fig = Figure(figsize=(side + extra, side), dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes([0.1 * side / (side + extra), 0.1, 0.88 * side / (side + extra), 0.88])
        draw_codes(ax, mu, labels, lim, label_name, cmap, legend_size=7)
        ax.xaxis.labelpad = ax.yaxis.labelpad = 0
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


def _mark(ax, points, names, spread: bool = False):
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

    mu, labels: precomputed posterior means of (test) data and their labels, for the map;
    label_name and cmap: see `LatentMap`. Parts, for code and tests: .z1, .z2 (FloatSlider),
    .image (the decoded digit, PNG), .map (the latent map with the point, PNG). CSS classes
    vae-z1, vae-z2, vae-decoded, vae-map.
    """

    def __init__(self, model, mu, labels=None, lim: float = 3.0, step: float = 0.05,
                 image_shape=(28, 28), scale: int = 8, z=(0.0, 0.0), label_name: str | None = None,
                 cmap: str = "tab10"):
        self.model, self.image_shape, self.scale = model, image_shape, scale
        self.mu, self.labels = np.asarray(mu), None if labels is None else np.asarray(labels)
        self.label_name, self.cmap, self.lim = label_name, cmap, lim
        self.latent_map = LatentMap(mu, labels, lim, label_name=label_name, cmap=cmap)
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
        _mark(ax, points, names, spread=True)
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
        self.image = _image_widget(b"", "vae-interpolated", 3 * image_shape[1] * scale + 2 * scale)
        self.strip = _image_widget(b"", "vae-strip", steps * (image_shape[1] + 1) * 3)
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
            _mark(ax, [z[0], z[-1]], ["A", "B"])
            axes = [fig.add_subplot(gs[j // ncol, 1 + j % ncol]) for j in range(len(imgs))]
        for ax, img, title in zip(axes, imgs, titles):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        return fig


def framed_png(image: np.ndarray, n: int, image_shape=(28, 28), scale: int = 1, dpi: int = 100) -> bytes:
    """PNG bytes of a decoded latent_grid(n) image with its z ticks (`plots.label_manifold_axes`),
    each image pixel drawn as `scale` x `scale` screen pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import label_manifold_axes

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
            width = _png_width(self.pngs[next(iter(self.pngs))])
        epochs = list(self.pngs)
        self.epoch = _widgets.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                              continuous_update=True)
        self.epoch.add_class("vae-epoch")
        self.image = _image_widget(self.pngs[epochs[-1]], "vae-manifold", width)
        self.epoch.observe(self._redraw, names="value")
        super().__init__([self.epoch, self.image])

    def _redraw(self, change=None):
        self.image.value = self.pngs[self.epoch.value]

    def figure(self, epochs=None, size: float = 3.0):
        """The same content as a static figure: the manifold after a few epochs, with z ticks
        when the frames are n x n grids (z1 on every panel, z2 on the first)."""
        import matplotlib.pyplot as plt

        from .plots import label_manifold_axes

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


def _png_width(png: bytes) -> int:
    from PIL import Image

    return Image.open(io.BytesIO(png)).size[0]
