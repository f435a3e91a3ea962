"""How long does notebook 07's beta explorer take to redraw when the beta slider moves?

    python benchmarks/widget_redraw.py   # times these controls with every other explorer's

Builds `explore_beta.BetaExplorer` over six untrained VAEs of notebook 07's size (784-500-20
ReLU, Bernoulli decoder; a redraw costs the same whatever the weights) and moves its slider
through the betas by setting the value, as a front end does when a person drags it. A move
swaps PNG bytes and an HTML string rendered when the widget was built; the build time (all
encodings, projections and pictures) is printed apart. `controls()` returns
{control: (move, values)}, the shape of benchmarks/widget_redraw.py's `explorers()`.
"""
from __future__ import annotations


import numpy as np
import torch

from vae_utils.explore_beta import BetaExplorer
from vae_utils.models import VAEConfig, build

BETAS = (0.0, 0.1, 0.5, 1.0, 2.0, 4.0)


def explorer(n_digits: int = 10_000, seed: int = 0) -> BetaExplorer:
    """The explorer over untrained models of notebook 07's size, for n_digits random 'test digits'."""
    config = VAEConfig(z_dim=20, hidden=(500,), activation="relu", init="default")
    models = {b: build(config, seed=seed + k).eval() for k, b in enumerate(BETAS)}
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_digits, config.x_dim, generator=g)
    labels = torch.randint(0, 10, (n_digits,), generator=g).numpy()
    rng = np.random.default_rng(seed)
    rd = {b: (100.0 / (1 + b), 70.0 + 10 * b) for b in BETAS}
    return BetaExplorer(models, x, labels, rd, units={b: 20 for b in BETAS},
                        probe={b: rng.uniform(0.7, 0.8, 5) for b in BETAS}, probe_name="linear probe, 100 labels")


def controls(ex: BetaExplorer | None = None) -> dict:
    """{control: (function that moves it, values to move it through)}: the beta slider, over
    every beta there and back (each move changes the value, so each one redraws)."""
    ex = ex or explorer()

    def set_beta(v):
        ex.beta.value = float(v)

    return {"beta": (set_beta, np.array([*BETAS, *BETAS[-2:0:-1]]))}
