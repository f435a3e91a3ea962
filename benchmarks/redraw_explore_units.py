"""How long does the unit walker (vae_utils.explore_units, notebook 03) take to redraw?

    python benchmarks/widget_redraw.py   # times these controls with every other explorer's

Builds UnitExplorer on untrained VAEs of notebook 03's sizes (784-500-20 and 784-500-200 ReLU,
Bernoulli decoder; a redraw costs the same whatever the weights), on 2,000 random "digits"
for the sliders' ranges, with notebook 03's layout (J = 20: 6 units with the most KL and 2
with the least; J = 200: 3 and 3), and moves each control by setting its value, as a front
end does when a person drags it. A slider move is one decoder pass of three rows (mu, z, and
the unit alone) and a PNG encoding; a new digit, or a click on "back to μ(x)" (after a slider
move, so that there is something to undo: that control's time is of both redraws), resets
every slider and redraws once.

`controls()` returns {control: (move, values)}, the shape benchmarks/widget_redraw.py times.
"""
from __future__ import annotations


import numpy as np
import torch

from vae_utils.explore_units import UnitExplorer
from vae_utils.models import VAEConfig, build


def controls(seed: int = 0, n_data: int = 2000) -> dict:
    """{control: (function that moves it, values to move it through)} for both sizes."""
    out = {}
    x = torch.rand(n_data, 784, generator=torch.Generator().manual_seed(seed))
    for J, top, bottom in ((20, 6, 2), (200, 3, 3)):
        model = build(VAEConfig(z_dim=J, hidden=(500,), activation="relu", init="default"), seed=seed).eval()
        kl = np.random.default_rng(seed).exponential(size=J)
        ex = UnitExplorer(model, x, kl, labels=np.arange(n_data) % 10, top=top, bottom=bottom)

        def set_unit(v, s=ex.sliders[0]):
            s.value = float(v)

        def set_last_unit(v, s=ex.sliders[-1]):
            s.value = float(v)

        def set_digit(v, ex=ex):
            ex.digit.value = int(v)

        def back_to_mu(v, ex=ex):
            ex.sliders[0].value = float(v)  # a move first, so that the click has something to undo:
            ex.reset.click()                # the time is of the two redraws together

        out[f"unit_z{J}"] = (set_unit, np.linspace(-3, 3, 20))
        out[f"least_kl_unit_z{J}"] = (set_last_unit, np.linspace(-3, 3, 20))
        out[f"digit_z{J}"] = (set_digit, np.arange(1, 21))
        out[f"back_to_mu_z{J}"] = (back_to_mu, np.linspace(-3, 3, 20))
    return out
