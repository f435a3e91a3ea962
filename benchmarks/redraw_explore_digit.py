"""How long does the draw-a-digit explorer (notebook 04) take to redraw when its input changes?

    python benchmarks/widget_redraw.py   # times these controls with every other explorer's

Builds vae_utils.explore_digit's DigitExplorer, with a DrawPad, on a VAE of notebook 04's size
(784-500-2 ReLU, Bernoulli decoder; untrained: a redraw costs the same whatever the weights)
and 10,000 random codes for its map, then changes each input as a front end does:

    pad      the pad's `pixels` trait set from Python to a new drawing (a stroke's end)
    rows     the occlusion slider (rows hidden of the chosen test digit)
    digit    the test-digit dropdown

A redraw (`explore_digit.explain`) is one encoder pass for the image, one decoder pass for its
mean and the 64 fixed draws (four of which are shown), numpy drawing on the prerendered map and
one PNG. `controls()` has the shape of widget_redraw.explorers(), so that
script can time these controls too. Nothing here is asserted by a test.
"""
from __future__ import annotations

import numpy as np
import torch

from vae_utils.explore_digit import DigitExplorer, DrawPad
from vae_utils.models import VAEConfig, build

CONFIG = VAEConfig(z_dim=2, hidden=(500,), activation="relu", init="default")


def drawings(n: int, seed: int = 0) -> list[list[float]]:
    """n different 'drawings': random grey blobs in the middle of the pad, 784 values each."""
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.zeros((28, 28))
        r, c = g.integers(6, 18, 2)
        img[r:r + 8, c:c + 4] = g.uniform(0.2, 1.0, (8, 4))
        out.append(img.ravel().tolist())
    return out


def controls(n_codes: int = 10_000, n_digits: int = 100, seed: int = 0):
    """{control: (function that moves it, values to move it through)} for the explorer."""
    model = build(CONFIG, seed=seed).eval()
    g = np.random.default_rng(seed)
    mu = g.normal(size=(n_codes, 2)).astype(np.float32)
    labels = g.integers(0, 10, n_codes)
    x = torch.rand(n_digits, CONFIG.x_dim, generator=torch.Generator().manual_seed(seed))
    pad = DrawPad()
    explorer = DigitExplorer(model, x, mu, labels, lim=4.0, pad=pad, n_choices=n_digits)

    def set_pad(pixels):
        pad.pixels = pixels

    def set_rows(v):
        explorer.rows.value = int(v)

    def set_digit(v):
        explorer.digit.value = int(v)

    pads = drawings(21, seed)
    return {"pad": (set_pad, pads), "rows": (set_rows, np.arange(0, 29, 2)),
            "digit": (set_digit, np.arange(21) % n_digits)}
