"""How long does each explorer take to redraw when a control moves?

    python benchmarks/widget_redraw.py              # 20 moves per control, about a minute
    python benchmarks/widget_redraw.py --moves 100
    python benchmarks/widget_redraw.py --only-2d    # notebook 04's and 06's first three only

Builds each explorer of vae_utils.widgets on a VAE of notebook 04's size (784-500-2 ReLU,
Bernoulli decoder; untrained: a redraw costs the same whatever the weights) and of notebook
06's (Frey Face, 560-200-2, Gaussian decoder), moves its control `--moves` times by setting
the value, as a front end does when a person drags it, and reports the mean time per
redraw: one decoder pass and a PNG encoding (z sliders, t slider), or a swap of
prerendered bytes (epoch slider). Then the explorers of issue 18, each from its own file
(EXPLORER_FILES: the unit walker and training monitor of notebook 03, the drawing pad of 04,
the K slider of 05, the beta slider of 07), built the same way on untrained models of their
notebooks' sizes. The browser's own drawing is not counted. Building an explorer (encodings,
prerendered PNGs) is not a redraw and is not timed here.

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


# The explorers of issue 18, one file each: controls() -> {control: (move, values)} on an
# untrained model of its notebook's size; redraw_explore_training also has live_redraw().
EXPLORER_FILES = ("redraw_explore_units", "redraw_explore_training", "redraw_explore_digit",
                  "redraw_explore_k", "redraw_explore_beta")


def more_explorers():
    """{(explorer, control): (move, values)} from the EXPLORER_FILES next to this script, with
    the training monitor's per-epoch live redraw (not a control) as ("training", "live")."""
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    out = {}
    for name in EXPLORER_FILES:
        module = importlib.import_module(name)
        explorer = name.removeprefix("redraw_explore_")
        out.update({(explorer, c): mv for c, mv in module.controls().items()})
        if hasattr(module, "live_redraw"):
            out[(explorer, "live")] = module.live_redraw()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=20, help="moves of each control per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; 1 as in notebooks 03-07 (benchmarks/threads.py: on a busy "
                        "2-core CPU two threads are about twice as slow)")
    p.add_argument("--only-2d", action="store_true", help="skip the issue-18 explorers")
    args = p.parse_args(argv)
    if args.moves < 1 or args.rounds < 1 or args.threads < 1:
        p.error("--moves, --rounds and --threads must be at least 1")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        cases = {"mnist": (VAEConfig(z_dim=2, hidden=(500,), activation="relu", init="default"), (28, 28)),
                 "frey": (VAEConfig(x_dim=560, z_dim=2, hidden=(200,), decoder="gaussian"), (28, 20))}
        timed = {(name, control): mv for name, (config, shape) in cases.items()
                 for control, mv in explorers(config, shape).items()}
        if not args.only_2d:
            timed.update(more_explorers())
        print(f"torch threads {torch.get_num_threads()}; {args.rounds} rounds of {args.moves} moves")
        worst, live = {}, None
        for (name, control), (move, values) in timed.items():
            values = [values[k % len(values)] for k in range(args.moves)]
            ms = statistics.median(mean_ms(move, values) for _ in range(args.rounds))
            if (name, control) == ("training", "live"):  # not a control: what each epoch adds
                live = ms
                continue
            print(f"{name:9s} {control:18s} {ms:8.2f} ms per redraw")
            key = control if name in cases else f"{name}_{control}"
            worst[key] = max(worst.get(key, 0.0), ms)
        if live is not None:
            print(f"training monitor's redraw after each epoch (no control; added to every epoch): {live:.1f} ms")
        print(" ".join(f"redraw_over_target_{c}={ms / TARGET_MS:.2f}" for c, ms in worst.items()))
        return worst
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
