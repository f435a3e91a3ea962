"""Draw a digit (notebook 04): a drawing pad, and what a 2-D VAE makes of the drawing.

The reader draws on a 28 x 28 pad; the explorer shows the posterior q(z|x) of that image,
N(mu, diag sigma^2) with J = 2, as its mean and 1-sigma ellipse on the map of the test codes,
the reconstruction E[x|mu], a few decoded samples E[x|z] with z ~ q(z|x), and the image's
bound split into its two terms (eq. 3 of the paper, estimated as in eq. 7: the KL term in
closed form, the expectation by S fixed draws):

    L(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))
           reconstruction     closed form (Appendix B)

Where no custom widget can load, the explorer's input is a test digit instead, with its
bottom rows hidden (set to 0, i.e. no ink) by a slider.

    DrawPad                the pad: an anywidget (its front end ships in the Python wheel),
                           whose `pixels` trait holds the drawing, 784 values in [0, 1]
    DigitExplorer          plain ipywidgets around the pure functions below; it follows a pad
    enable_colab_widgets   shows the step Colab needs for custom widgets (anywidget takes it
                           itself when the pad is created; nothing happens elsewhere)

Pure functions (tested headless): `check_pixels`, `posterior`, `ellipse`, `fixed_eps`,
`bound_split`, `explain`, `posterior_samples`, `occlude`, `occlusion_sweep`, `best_on_grid`, `zoom_image`,
`map_image`, `panel_image`.
A redraw (`explain`) is one encoder pass for one image and one decoder pass for 1 + S codes
(mu and the S draws, the first few of which are shown), numpy drawing on a map rendered
once, and one PNG of at most 256 colours (`palette_png`).
"""
from __future__ import annotations

import sys
from typing import NamedTuple

import anywidget
import ipywidgets as _widgets
import numpy as np
import torch
import torch.nn.functional as F
import traitlets

from .elbo import kl_to_standard_normal, log_normal
from .latent import class_medoids, encode_means
from .manifold import box_grid
from .maps import LatentMap, draw_codes, mark_points
from .models import BernoulliParams
from .plots import image_grid
from .png import figure_rgb
from .widgets import image_widget, decode

SIDE = 28               # the pad and MNIST: 28 x 28 pixels
N_PIXELS = SIDE * SIDE

# -- pure functions --------------------------------------------------------------------------


def check_pixels(values, n: int = N_PIXELS) -> np.ndarray:
    """The drawing as a float32 array of n values, after checking that it is one: n finite
    numbers in [0, 1] (row-major pixels). A clear ValueError otherwise."""
    try:
        a = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"pixels must be {n} numbers in [0, 1]; got {type(values).__name__}") from None
    if a.size != n:
        raise ValueError(f"pixels must be {n} numbers in [0, 1] ({SIDE} x {SIDE}, row by row); got {a.size}")
    if not np.isfinite(a).all():
        raise ValueError(f"pixels must be finite; {int((~np.isfinite(a)).sum())} are NaN or infinite")
    if a.min() < 0 or a.max() > 1:
        raise ValueError(f"pixels must lie in [0, 1] (0: no ink, 1: full ink); got values from "
                         f"{a.min():g} to {a.max():g}")
    return a.astype(np.float32)


def _is_one_image(x) -> bool:
    """True for one image, (D,) or (28, 28); False for a batch (N, D)."""
    return np.ndim(x) == 1 or np.shape(x) == (SIDE, SIDE)


def _rows(x) -> torch.Tensor:
    """x as a float32 (N, D) tensor: one image becomes a batch of one."""
    a = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
    return torch.as_tensor(a.reshape(1, -1) if _is_one_image(a) else a.reshape(len(a), -1))


def posterior(model, x) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of q(z|x) = N(mu, diag sigma^2) (the encoder, eq. 12) for one image x, (D,)
    or (H, W): two (J,) arrays; for a batch (N, D), two (N, J) arrays."""
    mu, sigma = encode_means(model, _rows(x))
    return (mu[0], sigma[0]) if _is_one_image(x) else (mu, sigma)


def ellipse(mu, sigma, n: int = 64) -> np.ndarray:
    """n points on the 1-sigma ellipse of N(mu, diag sigma^2) in 2-D: mu + sigma * (cos t, sin t),
    t = 0, 2 pi / n, ... (the axes of a diagonal Gaussian are the coordinate axes): (n, 2)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.asarray(mu, dtype=np.float64) + np.asarray(sigma, dtype=np.float64) * np.stack([np.cos(t), np.sin(t)], 1)


def fixed_eps(n_samples: int, z_dim: int = 2, seed: int = 0) -> np.ndarray:
    """n_samples draws eps ~ N(0, I) of dimension z_dim, from a generator seeded with `seed`:
    (S, J) float32. Drawn once and reused by every redraw, so z = mu + sigma * eps (section
    2.4) and everything sampled from it is a deterministic function of the image."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_samples, z_dim, generator=g).numpy()


class BoundSplit(NamedTuple):
    """One image's bound in nats: rec = E_q[log p(x|z)] (Monte Carlo), kl = KL(q(z|x) || p(z))
    (closed form), bound = rec - kl (eq. 3, estimated as in eq. 7). Floats for one image, (N,) arrays for a batch."""

    rec: float | np.ndarray
    kl: float | np.ndarray
    bound: float | np.ndarray


@torch.no_grad()
def bound_split(model, x, eps) -> BoundSplit:
    """The bound of x (one image, or a batch (N, D)) split into its two terms (eq. 3, with the
    expectation estimated by S draws as in eq. 7):

        rec = 1/S sum_s log p(x | z_s),   z_s = mu + sigma * eps_s      (eps: (S, J), fixed)
        kl  = KL(N(mu, diag sigma^2) || N(0, I))                        (Appendix B)

    The same eps for every image and every call: the estimate is a deterministic function
    of x, so a redraw with the same drawing shows the same numbers."""
    p = next(model.parameters())
    xs = _rows(x).to(p.device, p.dtype)
    mu, logvar = model.encode(xs)                                        # (N, J) each
    e = torch.as_tensor(np.asarray(eps, dtype=np.float32)).to(p.device, p.dtype)[:, None, :]  # (S, 1, J)
    z = mu + torch.exp(0.5 * logvar) * e                                 # (S, N, J): section 2.4
    rec = model.log_likelihood(xs, z).mean(0).cpu().numpy().astype(np.float64)   # 1/S sum_s log p(x|z_s)
    kl = kl_to_standard_normal(mu, logvar).cpu().numpy().astype(np.float64)       # Appendix B
    if _is_one_image(x):
        return BoundSplit(float(rec[0]), float(kl[0]), float(rec[0] - kl[0]))
    return BoundSplit(rec, kl, rec - kl)


def _log_p_and_mean(model, x, z) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x|z), E[x|z]) at codes z (M, J) for one image x (1, D), from ONE decoder pass:
    the Bernoulli decoder's logits (Appendix C.1) or the Gaussian's mean and log-variance
    (C.2) give both. Shapes (M,) and (M, D)."""
    params = model.decode(z)
    if isinstance(params, BernoulliParams):
        log_p = -F.binary_cross_entropy_with_logits(params.logits, x.expand_as(params.logits),
                                                    reduction="none").sum(-1)
        return log_p, torch.sigmoid(params.logits)
    return log_normal(x, params.mean, params.logvar), params.mean


class Explained(NamedTuple):
    """What the explorer shows of one image (`explain`): q(z|x) as mu, sigma (J,); the bound
    split; the reconstruction E[x|mu] (H, W); the first n_shown decoded draws (k, H, W)."""

    mu: np.ndarray
    sigma: np.ndarray
    split: BoundSplit
    reconstruction: np.ndarray
    samples: np.ndarray


@torch.no_grad()
def explain(model, image, eps, n_shown: int = 4) -> Explained:
    """`posterior`, `bound_split`, E[x|mu] and `posterior_samples` of the first n_shown draws
    of one image, with one encoder pass and one decoder pass for 1 + S codes (mu and the S
    draws z_s = mu + sigma * eps_s): the samples shown are among the draws the
    reconstruction term averages over, decoded once."""
    p = next(model.parameters())
    xs = _rows(image).to(p.device, p.dtype)                              # (1, D)
    mu, logvar = model.encode(xs)                                        # (1, J): eq. 12
    e = torch.as_tensor(np.asarray(eps, dtype=np.float32)).to(p.device, p.dtype)   # (S, J)
    z = mu + torch.exp(0.5 * logvar) * e                                 # (S, J): section 2.4
    log_p, means = _log_p_and_mean(model, xs, torch.cat([mu, z]))        # row 0: mu; rows 1..S: z_s
    rec = float(log_p[1:].mean())                                        # 1/S sum_s log p(x|z_s)
    kl = float(kl_to_standard_normal(mu, logvar)[0])                     # Appendix B
    images = means.reshape(-1, SIDE, SIDE).cpu().numpy()
    return Explained(mu[0].cpu().numpy(), torch.exp(0.5 * logvar[0]).cpu().numpy(),
                     BoundSplit(rec, kl, rec - kl), images[0], images[1:1 + n_shown])


def posterior_samples(model, mu, sigma, eps, image_shape=(SIDE, SIDE)) -> np.ndarray:
    """E[x|z] for z_s = mu + sigma * eps_s, s = 1..S: the decoded samples of q(z|x), (S, H, W)."""
    z = np.asarray(mu, dtype=np.float32) + np.asarray(sigma, dtype=np.float32) * np.asarray(eps, dtype=np.float32)
    return decode(model, z, image_shape)


def occlude(image, rows: int) -> np.ndarray:
    """A copy of an image (H, W), or of a flat H*W image (as 28 x 28), with its bottom `rows`
    rows set to 0: no ink there. The model has no notion of a missing pixel: it reads the
    hidden rows as blank paper, so the encoder sees a different, cut-off digit."""
    a = np.array(image, dtype=np.float32, copy=True)
    flat = a.ndim == 1
    img = a.reshape(SIDE, SIDE) if flat else a
    if not 0 <= rows <= img.shape[0]:
        raise ValueError(f"rows={rows}: hide between 0 and {img.shape[0]} rows")
    if rows:
        img[img.shape[0] - rows:] = 0
    return img.reshape(-1) if flat else img


def occlusion_sweep(model, images, rows, eps) -> dict:
    """{r: (mu (N, J), sigma (N, J), BoundSplit of (N,) arrays)} for the images (N, D) with
    their bottom r rows hidden (`occlude`), for each r in `rows`: how q(z|x) and the two terms
    of the bound move as more of each digit is hidden."""
    x = np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images, dtype=np.float32)
    x = x.reshape(len(x), SIDE, SIDE)
    out = {}
    for r in rows:
        xr = np.stack([occlude(img, r) for img in x]).reshape(len(x), -1)
        mu, sigma = posterior(model, xr)
        out[r] = (mu, sigma, bound_split(model, xr, eps))
    return out


@torch.no_grad()
def best_on_grid(model, images, lim: float, n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """For each image x (N, D): the largest log p(x|z) over the n x n grid of codes spaced
    evenly over [-lim, lim]^2 (`box_grid`), and the code that gives it: (N,) and (N, 2). A
    lower bound on max_z log p(x|z) over the square (finer grids only raise it), to compare
    with where the encoder puts x. The grid is decoded once; a Bernoulli decoder's

        log p(x|z) = sum_d x_d log y_d(z) + (1 - x_d) log(1 - y_d(z))     (Appendix C.1)

    is then a matrix product for all images and codes at once."""
    z = box_grid(np.linspace(-lim, lim, n), np.linspace(-lim, lim, n))
    p = next(model.parameters())
    params = model.decode(torch.as_tensor(z).to(p.device, p.dtype))
    if not isinstance(params, BernoulliParams):
        raise TypeError("best_on_grid needs a Bernoulli decoder (MNIST's)")
    x = _rows(images).to(p.device, p.dtype)                              # (N, D)
    log_p = x @ F.logsigmoid(params.logits).T + (1 - x) @ F.logsigmoid(-params.logits).T   # (N, n^2)
    best = log_p.max(1)
    return best.values.cpu().numpy().astype(np.float64), z[best.indices.cpu().numpy()]


# -- drawing on pixel arrays (numpy: no matplotlib call in a redraw) -------------------------

def _tab10() -> np.ndarray:
    """matplotlib's tab10 colours (those of `draw_codes`) as a (10, 3) uint8 array."""
    import matplotlib

    return (np.asarray(matplotlib.colormaps["tab10"].colors) * 255).round().astype(np.uint8)


TAB10 = _tab10()


def _stamp(img, rows, cols, colour, radius: float = 0.0):
    """Set the pixels within `radius` of each (row, col) to colour (in place; off-image ones skipped)."""
    rows, cols = np.round(np.asarray(rows)).astype(int), np.round(np.asarray(cols)).astype(int)
    colour = np.asarray(colour, dtype=np.uint8)
    r = int(np.ceil(radius))
    for dr in range(-r, r + 1):
        for dc in range(-r, r + 1):
            if dr * dr + dc * dc > radius * radius + 1e-9:
                continue
            rr, cc = rows + dr, cols + dc
            ok = (rr >= 0) & (rr < img.shape[0]) & (cc >= 0) & (cc < img.shape[1])
            img[rr[ok], cc[ok]] = colour if colour.ndim == 1 else colour[ok]
    return img


def _polyline(img, rows, cols, colour, radius: float = 0.5, closed: bool = True):
    """Draw the line through the points (row, col), sampled every half pixel of its length (in place)."""
    r, c = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    if closed:
        r, c = np.append(r, r[0]), np.append(c, c[0])
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(r), np.diff(c)))])  # arc length at each point
    s = np.linspace(0, length[-1], int(np.ceil(2 * length[-1])) + 2)
    return _stamp(img, np.interp(s, length, r), np.interp(s, length, c), colour, radius)


def zoom_image(mu, sigma, codes, labels=None, half_width: float = 0.5, size: int = 240) -> np.ndarray:
    """A close-up (size x size RGB) of the square mu +- half_width of the latent plane: the
    test codes in it as dots (tab10 by label), the 1-sigma ellipse of q(z|x) in black, its
    mean in red, and a scale bar of 0.1 (bottom left). One pixel is 2 half_width / size."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    mu = np.asarray(mu, dtype=np.float64)
    scale = size / (2 * half_width)                        # pixels per unit of z

    def px(z):
        z = np.asarray(z, dtype=np.float64).reshape(-1, 2)
        return (mu[1] + half_width - z[:, 1]) * scale, (z[:, 0] - mu[0] + half_width) * scale  # rows, cols

    codes = np.asarray(codes, dtype=np.float64)
    near = np.all(np.abs(codes - mu) < half_width * 1.05, axis=1)
    if near.any():
        colours = TAB10[np.asarray(labels)[near] % 10] if labels is not None else TAB10[0]
        _stamp(img, *px(codes[near]), colours, radius=2.2)
    n = int(np.clip(4 * np.pi * np.max(sigma) * scale, 64, 2000))   # points every half pixel or less
    _polyline(img, *px(ellipse(mu, sigma, n)), (0, 0, 0), radius=1.0)
    _stamp(img, *px(mu), (0, 0, 0), radius=4.0)
    _stamp(img, *px(mu), (220, 0, 0), radius=2.6)
    bar = int(round(0.1 * scale))
    img[size - 12:size - 9, 10:10 + bar] = 0               # the scale bar: 0.1 in z
    img[[0, -1], :] = img[:, [0, -1]] = 150                # a grey frame
    return img


def _pixels(latent_map: LatentMap, z) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) in `latent_map.rgb` of the points z (M, 2), unrounded: `LatentMap.pixel`
    for many points in one call of the map's data-to-pixel transform."""
    xy = latent_map._transform.transform(np.asarray(z, dtype=np.float64).reshape(-1, 2))
    return latent_map.rgb.shape[0] - xy[:, 1], xy[:, 0]


def map_image(latent_map: LatentMap, mu, sigma, half_width: float = 0.5) -> np.ndarray:
    """The prerendered map of test codes with q(z|x) on it: the mean (`LatentMap.with_marker`),
    the 1-sigma ellipse at its true size (often a few pixels), and the square of `zoom_image`."""
    img = latent_map.with_marker(float(mu[0]), float(mu[1]))
    _polyline(img, *_pixels(latent_map, ellipse(mu, sigma, 64)), (0, 0, 0), radius=0.5)
    h = half_width
    square = np.asarray(mu, dtype=np.float64) + np.array([(-h, -h), (h, -h), (h, h), (-h, h)])
    return _polyline(img, *_pixels(latent_map, square), (90, 90, 90), radius=0.0)


def _grey_rgb(image, scale: int) -> np.ndarray:
    """A grey image in [0, 1] (H, W) as RGB uint8, each pixel a scale x scale block."""
    a = (np.clip(np.asarray(image, dtype=np.float64), 0, 1) * 255).round().astype(np.uint8)
    a = a.repeat(scale, 0).repeat(scale, 1)
    return np.repeat(a[..., None], 3, axis=2)


def _paste(canvas, img, top: int, left: int):
    canvas[top:top + img.shape[0], left:left + img.shape[1]] = img[:canvas.shape[0] - top, :canvas.shape[1] - left]


class PanelLayout(NamedTuple):
    """Where the parts of a panel go (pixels): see `panel_image`."""

    caption_h: int = 18
    gap: int = 8
    image_scale: int = 4


def panel_image(map_rgb, zoom_rgb, input_image, reconstruction, samples, captions=None,
                layout: PanelLayout = PanelLayout()) -> np.ndarray:
    """The picture one redraw shows, as one RGB array:

        [ map of the test codes with q(z|x) ] [ zoom on q(z|x) ]
        [ input x ] [ E[x|mu] ] [ E[x|z_1] ... E[x|z_k] ]

    captions: {"map", "zoom", "input", "reconstruction", "samples": RGB strips of height
    layout.caption_h} drawn above each part (left blank when absent)."""
    captions = captions or {}
    g, ch, s = layout.gap, layout.caption_h, layout.image_scale
    tiles = [_grey_rgb(input_image, s), _grey_rgb(reconstruction, s), *[_grey_rgb(im, s) for im in samples]]
    tile_w = tiles[0].shape[1]
    top_w = map_rgb.shape[1] + g + zoom_rgb.shape[1]
    bottom_w = 2 * (tile_w + g) + g + len(samples) * (tile_w + 2) - 2
    width = max(top_w, bottom_w)
    top_h = ch + max(map_rgb.shape[0], zoom_rgb.shape[0])
    height = top_h + g + ch + tiles[0].shape[0]
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    spots = {"map": (0, 0), "zoom": (0, map_rgb.shape[1] + g)}
    _paste(canvas, map_rgb, ch, 0)
    _paste(canvas, zoom_rgb, ch, map_rgb.shape[1] + g)
    y = top_h + g
    lefts = [0, tile_w + g] + [2 * (tile_w + g) + g + k * (tile_w + 2) for k in range(len(samples))]
    for left, tile in zip(lefts, tiles):
        _paste(canvas, tile, y + ch, left)
    spots.update(input=(y, lefts[0]), reconstruction=(y, lefts[1]), samples=(y, lefts[2]))
    for name, (top, left) in spots.items():
        if name in captions:
            _paste(canvas, captions[name], top, left)
    return canvas


def palette_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image reduced to at most 256 colours (fast octree): a panel
    of flat colours, anti-aliased dots and greys is then about 2.5 times smaller than as
    `png.to_png` writes it, which matters for what a notebook stores of a widget."""
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).quantize(256, method=Image.Quantize.FASTOCTREE).save(
        buf, format="PNG", compress_level=1)
    return buf.getvalue()


def text_strip(text: str, width: int, height: int = 18, fontsize: float = 9.0) -> np.ndarray:
    """A white RGB strip (height x width) with `text` on its left, rendered once by matplotlib."""
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    fig.text(0.005, 0.45, text, fontsize=fontsize, va="center", ha="left")
    return figure_rgb(fig)


# -- Colab -----------------------------------------------------------------------------------


def enable_colab_widgets() -> bool:
    """On Colab, switch on its custom widget manager (`google.colab.output.
    enable_custom_widget_manager()`), without which Colab draws no widget outside ipywidgets,
    such as the pad; returns True. Anywhere else it does nothing and returns False.

    anywidget (>= 0.9) does this itself when the pad is created (`AnyWidget.__init__` on
    Colab); this call only makes the step visible. After the switch, Colab draws the widgets
    of later cells through its CDN widget manager, which has reports of breaking Accordion
    and Tab (googlecolab/colabtools#3571); DigitExplorer uses neither."""
    if "google.colab" not in sys.modules:
        return False
    try:
        from google.colab import output
        output.enable_custom_widget_manager()
    except (ImportError, AttributeError):  # not Colab's kernel after all (a stub, a local runtime)
        return False
    return True


# -- the pad ---------------------------------------------------------------------------------

_PAD_ESM = r"""
const N = 28;

function render({ model, el }) {
  const scale = model.get("scale");
  const R = model.get("brush_radius");      // pixels within R - SOFT of the pointer get full ink,
  const SOFT = model.get("brush_softness");  // then it falls linearly to 0 at R (anti-aliased)
  const canvas = document.createElement("canvas");
  canvas.width = N;
  canvas.height = N;
  canvas.className = "vae-pad";
  canvas.style.cssText = `width:${N * scale}px;height:${N * scale}px;image-rendering:pixelated;` +
    "touch-action:none;cursor:crosshair;background:#000;border:1px solid #888;display:block";
  const clear = document.createElement("button");
  clear.textContent = "Clear";
  clear.className = "vae-pad-clear";
  clear.style.cssText = "margin-top:4px";
  el.appendChild(canvas);
  el.appendChild(clear);
  const ctx = canvas.getContext("2d");
  let pix = new Float32Array(N * N);
  let last = null, sent = 0;       // last: the pointer during a stroke (null between strokes)

  function paint() {
    const img = ctx.createImageData(N, N);
    for (let i = 0; i < N * N; i++) {
      const g = Math.round(255 * pix[i]);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = g;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  function fromModel() {
    if (last !== null) return;     // mid-stroke the canvas is ahead of the model: keep drawing
    const v = model.get("pixels") || [];
    pix = new Float32Array(N * N);
    for (let i = 0; i < Math.min(v.length, N * N); i++) pix[i] = v[i];
    paint();
  }
  function dab(x, y) {            // a soft round brush at (x, y), in pixel units; max-combined
    for (let r = Math.max(0, Math.floor(y - R)); r <= Math.min(N - 1, Math.ceil(y + R)); r++) {
      for (let c = Math.max(0, Math.floor(x - R)); c <= Math.min(N - 1, Math.ceil(x + R)); c++) {
        const d = Math.hypot(c + 0.5 - x, r + 0.5 - y);
        const v = Math.min(1, Math.max(0, (R - d) / SOFT));
        if (v > pix[r * N + c]) pix[r * N + c] = v;
      }
    }
  }
  function line(a, b) {           // dabs every quarter pixel from a to b
    const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / 0.25));
    for (let k = 0; k <= n; k++) dab(a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n);
  }
  function at(e) {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) / box.width * N, (e.clientY - box.top) / box.height * N];
  }
  function send() {
    model.set("pixels", Array.from(pix, (v) => Math.round(v * 1000) / 1000));
    model.save_changes();
    sent = Date.now();
  }
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
    line(last, last);
    paint();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (last === null) return;
    const p = at(e);
    line(last, p);
    last = p;
    paint();
    if (Date.now() - sent > model.get("throttle_ms")) send();   // during a stroke, now and then
  });
  const end = () => { if (last !== null) { last = null; send(); } };  // and at its end, always
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  clear.addEventListener("click", () => { pix.fill(0); paint(); send(); });
  model.on("change:pixels", fromModel);
  fromModel();
  return () => model.off("change:pixels", fromModel);
}

export default { render };
"""


class DrawPad(anywidget.AnyWidget):
    """A 28 x 28 drawing pad shown `scale` times enlarged, with a Clear button.

    Mouse, pen or touch strokes paint with a soft round brush (full ink within
    brush_radius - brush_softness of the pointer, falling linearly to none at brush_radius,
    in pixels), max-combined, like MNIST's anti-aliased strokes. `pixels` holds the drawing:
    784 values in [0, 1], row by row; the front end sets it at the end of each stroke and
    every `throttle_ms` during one. Whatever arrives is checked (`check_pixels`): a wrong
    length, a NaN or a value outside [0, 1] is refused with a clear error and the drawing
    kept. The canvas has the CSS class vae-pad, the button vae-pad-clear.
    """

    _esm = _PAD_ESM
    pixels = traitlets.List(traitlets.Float(), default_value=[0.0] * N_PIXELS).tag(sync=True)
    scale = traitlets.Int(10).tag(sync=True)
    brush_radius = traitlets.Float(1.9).tag(sync=True)
    brush_softness = traitlets.Float(1.0).tag(sync=True)
    throttle_ms = traitlets.Int(150).tag(sync=True)

    @traitlets.validate("pixels")
    def _check(self, proposal):
        """Refuse anything `check_pixels` refuses; keep what arrived exactly as it came. Returning
        the checked float32 copy instead (0.123 -> 0.12300000339746475) would differ from what
        the front end sent, so the kernel would send it back as an update in the middle of a
        stroke (ipywidgets 7 and 8) and the canvas would lose what was drawn meanwhile."""
        try:
            check_pixels(proposal["value"])
        except ValueError as err:
            raise traitlets.TraitError(f"DrawPad.pixels: {err}") from None
        return list(proposal["value"])

    @property
    def image(self) -> np.ndarray:
        """The drawing as a (28, 28) float32 array in [0, 1]."""
        return np.asarray(self.pixels, dtype=np.float32).reshape(SIDE, SIDE)

    def is_blank(self) -> bool:
        """True if nothing is drawn (every pixel 0), as after Clear."""
        return not any(self.pixels)


# -- the explorer ----------------------------------------------------------------------------


class DigitExplorer(_widgets.VBox):
    """What a 2-D VAE makes of one image: q(z|x) on the map of the test codes (its mean, its
    1-sigma ellipse, and a close-up), the reconstruction, k decoded samples z ~ q(z|x), and the
    bound split into its reconstruction and KL terms, in nats.

    The input is the pad's drawing when the pad was used last (and is not blank), else the
    test digit chosen in the dropdown with its bottom rows hidden by the slider. model: a VAE
    with J = 2; x, mu, labels: test images (N, 784), their posterior means (N, 2) for the map,
    their labels; lim: the map shows [-lim, lim]^2; n_samples S: the Monte Carlo draws of the
    reconstruction term (fixed eps from `seed`), of which the first n_shown are decoded;
    map_px: the map's side in pixels.

    Parts: .digit (Dropdown), .rows (IntSlider: rows hidden), .panel (Image: `panel_image`),
    .readout (HTML: the bound split). CSS classes vae-draw-digit, vae-draw-rows,
    vae-draw-panel, vae-draw-readout. `.redraws` counts redraws.
    """

    def __init__(self, model, x, mu, labels=None, lim: float = 3.0, pad=None, index: int = 0,
                 n_choices: int = 100, n_samples: int = 64, n_shown: int = 4, seed: int = 0,
                 half_width: float = 0.5, label_name: str | None = "digit", map_px: int = 300):
        self.model = model
        self.x = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32).reshape(-1, N_PIXELS)
        self.mu = np.asarray(mu)
        self.labels = None if labels is None else np.asarray(labels)
        self.lim, self.half_width, self.n_shown, self.label_name = lim, half_width, n_shown, label_name
        self.eps = fixed_eps(n_samples, model.config.z_dim, seed)
        self.latent_map = LatentMap(self.mu, self.labels, lim, size_px=map_px, label_name=label_name)
        zoom_px = 240
        self.captions = {
            "map": text_strip("q(z|x) on the test codes (grey square: the close-up)", self.latent_map.rgb.shape[1]),
            "zoom": text_strip(f"close-up ±{half_width}: 1-σ ellipse (bar: 0.1)", zoom_px),
            "input": text_strip("input x", SIDE * 4),
            "reconstruction": text_strip("E[x | μ]", SIDE * 4),
            "samples": text_strip(f"E[x | z], z ~ q(z|x): {n_shown} of the {n_samples} draws", 4 * SIDE * 4),
        }
        self.zoom_px = zoom_px
        names = [(f"#{i}" + ("" if self.labels is None else f" (a {int(self.labels[i])})"), i)
                 for i in range(min(n_choices, len(self.x)))]
        self.digit = _widgets.Dropdown(options=names, value=index, description="test digit")
        self.digit.add_class("vae-draw-digit")
        self.rows = _widgets.IntSlider(value=0, min=0, max=SIDE, step=1, description="rows hidden",
                                       continuous_update=True)
        self.rows.add_class("vae-draw-rows")
        self.panel = image_widget(b"", "vae-draw-panel", 1)
        self.readout = _widgets.HTML()
        self.readout.add_class("vae-draw-readout")
        self.pad, self.source, self.redraws = pad, "digit", 0
        self._redraw()
        self.panel.layout.width = f"{self.last_panel.shape[1]}px"
        self.digit.observe(self._from_digit, names="value")
        self.rows.observe(self._from_digit, names="value")
        if pad is not None:
            pad.observe(self._from_pad, names="pixels")
        super().__init__([_widgets.HBox([self.digit, self.rows]), self.readout, self.panel])

    # what is shown ---------------------------------------------------------------------------

    def input_image(self) -> np.ndarray:
        """The current input (28, 28): the pad's drawing, or the chosen digit with rows hidden."""
        if self.source == "pad":
            return self.pad.image
        return occlude(self.x[self.digit.value].reshape(SIDE, SIDE), self.rows.value)

    def describe(self) -> str:
        if self.source == "pad":
            return "your drawing"
        i = self.digit.value
        label = "" if self.labels is None else f" (a {int(self.labels[i])})"
        return f"test digit #{i}{label}, {self.rows.value} of {SIDE} rows hidden"

    def compute(self, image=None) -> dict:
        """Everything a redraw shows, for `image` (default: the current input)."""
        image = self.input_image() if image is None else np.asarray(image, dtype=np.float32).reshape(SIDE, SIDE)
        return dict(image=image, **explain(self.model, image, self.eps, self.n_shown)._asdict())

    def panel_for(self, c: dict) -> np.ndarray:
        return panel_image(map_image(self.latent_map, c["mu"], c["sigma"], self.half_width),
                           zoom_image(c["mu"], c["sigma"], self.mu, self.labels, self.half_width, self.zoom_px),
                           c["image"], c["reconstruction"], c["samples"], self.captions)

    @staticmethod
    def readout_html(what: str, c: dict, n_samples: int) -> str:
        (m1, m2), (s1, s2), sp = c["mu"], c["sigma"], c["split"]
        return (f"<b>input:</b> {what}<br>"
                f"q(z|x): μ = ({m1:+.2f}, {m2:+.2f}), σ = ({s1:.3f}, {s2:.3f})<br>"
                f"reconstruction E<sub>q</sub>[log p(x|z)] = <b>{sp.rec:.2f}</b> nats ({n_samples} draws) "
                f"&minus; KL(q(z|x) ‖ p(z)) = <b>{sp.kl:.2f}</b> nats "
                f"&rArr; bound = <b>{sp.bound:.2f}</b> nats")

    def _redraw(self, change=None):
        c = self.compute()
        self.last = c
        self.last_panel = self.panel_for(c)
        self.panel.value = palette_png(self.last_panel)
        self.readout.value = self.readout_html(self.describe(), c, len(self.eps))
        self.redraws += 1

    def _from_digit(self, change=None):
        self.source = "digit"
        self._redraw()

    def _from_pad(self, change=None):
        self.source = "digit" if self.pad.is_blank() else "pad"
        self._redraw()

    # the static figure -----------------------------------------------------------------------

    def figure(self, index: int | None = None, rows=(0, 14, 21), side: float = 3.2, column: float = 1.2,
               max_codes: int = 400, closeup_codes: int = 120):
        """The same content as a static figure, for one test digit (default: the dropdown's) at
        several occlusion levels: left, the map with each level's mean (marked "r=14" for 14
        rows hidden); then one column per level: the input, a close-up of q(z|x) (its 1-sigma
        ellipse among the test codes, ticks in z), the reconstruction and n_shown samples,
        with the bound split in the column's title. side, column: widths in inches; the map
        shows the first max_codes codes and each class's name at its medoid, each close-up
        the first closeup_codes codes in its square (fewer points: a smaller PNG)."""
        import matplotlib.patheffects as pe
        import matplotlib.pyplot as plt
        from matplotlib.patches import Ellipse

        index = self.digit.value if index is None else index
        levels = [(r, self.compute(occlude(self.x[index].reshape(SIDE, SIDE), r))) for r in rows]
        extra = 0.0  # no legend: the classes are named at their medoids
        fig = plt.figure(figsize=(side + extra + len(levels) * column, 4.5 * column), layout="constrained")
        gs = fig.add_gridspec(4, len(levels) + 1, width_ratios=[side + extra] + [column] * len(levels),
                              height_ratios=[1.3, 1.3, 1.1, 1.1])
        ax = fig.add_subplot(gs[:, 0])
        draw_codes(ax, self.mu[:max_codes], None if self.labels is None else self.labels[:max_codes], self.lim, s=3)
        if self.labels is not None:                       # each class named at its medoid (`class_medoids`)
            for name, i in class_medoids(self.mu, self.labels).items():
                ax.text(*self.mu[i], str(name), color=TAB10[int(name) % 10] / 255, fontsize=10, weight="bold",
                        ha="center", va="center", path_effects=[pe.withStroke(linewidth=2, foreground="w")])
        means = np.array([c["mu"] for _, c in levels])
        ax.plot(means[:, 0], means[:, 1], "k-", lw=0.8)
        mark_points(ax, means, [f"r={r}" for r, _ in levels], spread=True)   # not bare numbers: those name classes
        label = "" if self.labels is None else f" (a {int(self.labels[index])})"
        ax.set_title(f"test digit #{index}{label}: the mean of q(z|x)\nwith r rows hidden (marked r=...)", fontsize=9)
        h = self.half_width
        for j, (r, c) in enumerate(levels):
            sp, (m1, m2), (s1, s2) = c["split"], c["mu"], c["sigma"]
            a = fig.add_subplot(gs[0, j + 1])
            a.imshow(c["image"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            a.set_title(f"{r} rows hidden\nrec {sp.rec:.1f}, KL {sp.kl:.2f}\nbound {sp.bound:.1f} nats", fontsize=7)
            a.set_axis_off()
            z = fig.add_subplot(gs[1, j + 1])
            near = np.flatnonzero(np.all(np.abs(self.mu - c["mu"]) < 1.05 * h, axis=1))[:closeup_codes]
            colours = None if self.labels is None else TAB10[self.labels[near] % 10] / 255
            z.scatter(self.mu[near, 0], self.mu[near, 1], s=3, c=colours, linewidths=0)
            z.add_patch(Ellipse((m1, m2), 2 * s1, 2 * s2, fill=False, color="k", lw=1.3))
            z.plot(m1, m2, "r.", ms=5)
            z.set_xlim(m1 - h, m1 + h)
            z.set_ylim(m2 - h, m2 + h)
            z.set_aspect("equal")
            z.tick_params(labelsize=6, pad=1)
            z.set_title(f"1-σ ellipse\nσ = ({s1:.3f}, {s2:.3f})", fontsize=7)
            z.set_xlabel("$z_1$", fontsize=7, labelpad=0)
            z.set_ylabel("$z_2$" if j == 0 else "", fontsize=7, labelpad=0)
            rec = fig.add_subplot(gs[2, j + 1])
            rec.imshow(c["reconstruction"], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            rec.set_title("E[x | μ]", fontsize=7)
            rec.set_axis_off()
            sm = fig.add_subplot(gs[3, j + 1])
            sm.imshow(image_grid(c["samples"], nrow=int(np.ceil(np.sqrt(len(c["samples"]))))), cmap="gray",
                      vmin=0, vmax=1, interpolation="nearest")
            sm.set_title("E[x | z], z ~ q(z|x)", fontsize=7)
            sm.set_axis_off()
        return fig
