"""How long does notebook 05's K explorer take to redraw when its K slider or digit dropdown moves?

    python benchmarks/widget_redraw.py   # times these controls with every other explorer's

Builds `explore_k.KExplorer` over 5000 importance log-weights of 5 random 'digits' from an
untrained VAE of notebook 05's section 3 (784-500-20 tanh, Bernoulli decoder; a redraw costs
the same whatever the weights: every bin of the histogram is drawn, empty or not) and moves
each control by setting its value, as a front end does when a person moves it. A move only
swaps PNG bytes made when the widget was built (the histogram and the path with its K marker,
for every digit and K) and the readout's HTML; the build (the weights drawn, every histogram
and path rendered and encoded) is timed apart. `controls()` returns {control: (move, values)},
the shape of benchmarks/widget_redraw.py's `explorers()`.
"""
from __future__ import annotations


import numpy as np
import torch

from vae_utils import importance
from vae_utils.explore_k import K_MAX, KExplorer, k_values
from vae_utils.models import VAEConfig, build

N_DIGITS = 5


def explorer(seed: int = 0) -> KExplorer:
    """The explorer over K_MAX log-weights of N_DIGITS random 'digits' from an untrained model of
    notebook 05's size."""
    config = VAEConfig(z_dim=20, hidden=(500,), activation="tanh")
    model = build(config, seed=seed).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(N_DIGITS, config.x_dim, generator=g)
    log_w = importance.importance_log_weights(model, x, K_MAX, generator=g)
    return KExplorer(log_w, x=x, labels=np.arange(N_DIGITS))


def controls(ex: KExplorer | None = None) -> dict:
    """{control: (function that moves it, values to move it through)}: K up its slider and down
    again, the digit through every choice and back (each move changes the value, so redraws)."""
    ex = ex or explorer()

    def set_k(v):
        ex.k.value = int(v)

    def set_digit(v):
        ex.digit.value = int(v)

    ks, digits = k_values(K_MAX), list(range(N_DIGITS))
    return {"K": (set_k, np.array([*ks, *ks[-2:0:-1]])), "digit": (set_digit, np.array([*digits, *digits[-2:0:-1]]))}
