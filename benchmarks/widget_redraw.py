"""How long does each explorer take to redraw when a control moves?

    python benchmarks/widget_redraw.py              # 20 moves per control, ~10 s on 2 CPU cores
    python benchmarks/widget_redraw.py --moves 100

Builds each explorer of vae_utils.widgets on a VAE of notebook 04's size (784-500-2 ReLU,
Bernoulli decoder; untrained: a redraw costs the same whatever the weights) and of notebook
06's (Frey Face, 560-200-2, Gaussian decoder), moves its control `--moves` times by setting
the value, as a front end does when a person drags it, and reports the mean time per
redraw: one decoder pass and a PNG encoding (z sliders, t slider), or a swap of
prerendered bytes (epoch slider). The browser's own drawing is not counted.

The target is 100 ms per redraw (a slider that follows the hand); the last line prints each
control's time as a fraction of it: redraw_over_target_<control>=X.XX (below 1 is met).
Timings are medians of --rounds rounds, measured in this one run; nothing here is asserted
by a test (tests/test_benchmarks.py only checks that the script runs).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from vae_utils.models import VAEConfig, build
from vae_utils.widgets import EpochExplorer, InterpolationExplorer, LatentExplorer, manifold_frames

TARGET_MS = 100.0


def mean_ms(move, values, clock=time.perf_counter) -> float:
    """Mean milliseconds of move(v) over the values."""
    t = clock()
    for v in values:
        move(v)
    return (clock() - t) / len(values) * 1000


def explorers(config: VAEConfig, image_shape, n_codes: int = 2000, seed: int = 0):
    """{control: (function that moves it, values to move it through)} for the three explorers."""
    model = build(config, seed=seed).eval()
    g = np.random.default_rng(seed)
    mu = g.normal(size=(n_codes, 2)).astype(np.float32)
    labels = g.integers(0, 10, n_codes)
    x = torch.rand(100, config.x_dim, generator=torch.Generator().manual_seed(seed))
    latent = LatentExplorer(model, mu, labels, lim=4.0, image_shape=image_shape)
    interp = InterpolationExplorer(model, x, mu[:100], labels[:100], image_shape=image_shape)
    frames = manifold_frames(config, {e: build(config, seed=e).state_dict() for e in range(11)}, n=12,
                             image_shape=image_shape)
    epochs = EpochExplorer(frames)

    def set_z1(v):
        latent.z1.value = float(v)

    def set_t(v):
        interp.t.value = float(v)

    def set_epoch(v):
        epochs.epoch.value = int(v)

    return {"z1": (set_z1, np.linspace(-3, 3, 20)), "t": (set_t, np.linspace(0, 1, 21)),
            "epoch": (set_epoch, np.arange(11))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=20, help="moves of each control per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    if args.moves < 1 or args.rounds < 1:
        p.error("--moves and --rounds must be at least 1")
    cases = {"mnist": (VAEConfig(z_dim=2, hidden=(500,), activation="relu", init="default"), (28, 28)),
             "frey": (VAEConfig(x_dim=560, z_dim=2, hidden=(200,), decoder="gaussian"), (28, 20))}
    worst = {}
    print(f"torch threads {torch.get_num_threads()}; {args.rounds} rounds of {args.moves} moves")
    for name, (config, shape) in cases.items():
        for control, (move, values) in explorers(config, shape).items():
            values = np.resize(values, args.moves)
            ms = statistics.median(mean_ms(move, values) for _ in range(args.rounds))
            print(f"{name:5s} {control:5s}  {ms:7.2f} ms per redraw")
            worst[control] = max(worst.get(control, 0.0), ms)
    print(" ".join(f"redraw_over_target_{c}={ms / TARGET_MS:.2f}" for c, ms in worst.items()))
    return worst


if __name__ == "__main__":
    main()
