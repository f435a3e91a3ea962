"""How long does the draw-a-digit explorer (notebook 04) take to redraw when its input changes?

    python benchmarks/redraw_explore_digit.py              # 20 moves per control, a few seconds

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

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from widget_redraw import TARGET_MS, mean_ms  # noqa: E402

from vae_utils.explore_digit import DigitExplorer, DrawPad  # noqa: E402
from vae_utils.models import VAEConfig, build  # noqa: E402

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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=20, help="moves of each control per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (notebook 04 sets 1: with 2 on a busy 2-core CPU a redraw is ~4x slower)")
    args = p.parse_args(argv)
    if args.moves < 1 or args.rounds < 1 or args.threads < 1:
        p.error("--moves, --rounds and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}; {args.rounds} rounds of {args.moves} moves")
    worst = {}
    for control, (move, values) in controls().items():
        values = [values[k % len(values)] for k in range(args.moves)]
        ms = statistics.median(mean_ms(move, values) for _ in range(args.rounds))
        print(f"draw  {control:5s}  {ms:7.2f} ms per redraw")
        worst[control] = ms
    print(" ".join(f"redraw_over_target_{c}={ms / TARGET_MS:.2f}" for c, ms in worst.items()))
    return worst


if __name__ == "__main__":
    main()
