"""One CPU thread or all of them? Training steps of the notebooks' models, quiet and busy.

    python benchmarks/threads.py                # ~1 minute on 2 cores
    python benchmarks/threads.py --steps 200

Times Algorithm 1's steps (vae_utils.train.train, Adagrad, batch 100, estimator B) for
notebook 03's MNIST model (784-500-20 tanh, Bernoulli decoder) and notebook 06's Frey Face
model (560-200-20 tanh, Gaussian decoder) with torch.set_num_threads(1) and with one thread
per core, first on a quiet machine and then while this script keeps every core busy with
`python -c "while True: pass"` (another job on a shared machine, or a notebook's neighbour).

The data are random pixels (a step costs the same whatever they are). Each figure is the
median milliseconds per step over --rounds rounds, measured in this one run. The last line
prints, for each model, how much slower one thread is on the quiet machine
(one_over_all_quiet_<model>, above 1 means one thread is slower) and how much faster it is
on the busy one (all_over_one_busy_<model>, above 1 means one thread is faster). Nothing
here is asserted by a test: no test depends on the clock.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from vae_utils.config import TrainConfig
from vae_utils.data import Split
from vae_utils.models import VAEConfig, build
from vae_utils.train import train

MODELS = {
    "mnist": (VAEConfig(x_dim=784, z_dim=20, hidden=(500,), activation="tanh"), (28, 28)),
    "frey": (VAEConfig(x_dim=560, z_dim=20, hidden=(200,), activation="tanh", decoder="gaussian"), (28, 20)),
}


def ms_per_step(config: VAEConfig, image_shape, threads: int, steps: int, seed: int = 0,
                clock=time.perf_counter) -> float:
    """Milliseconds per training step of `steps` steps (after one untimed epoch) on `threads` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(steps * 100, config.x_dim, generator=g) * 255).round() / 255
        data = Split(x, None, image_shape)
        model = build(config, seed=seed)
        warm = TrainConfig(epochs=1, seed=seed)
        run = train(model, data[:1000], warm, progress=False)  # warm-up: allocations, first calls
        t = clock()
        train(run.model, data, TrainConfig(epochs=1, seed=seed + 1), progress=False)
        return (clock() - t) / steps * 1000
    finally:
        torch.set_num_threads(before)


def busy_loops(n: int) -> list[subprocess.Popen]:
    """n processes that each keep one core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", type=int, default=os.cpu_count(), help="busy processes in the second half")
    args = p.parse_args(argv)
    cores = torch.get_num_threads()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch's default threads {cores}; "
          f"{args.steps} steps x {args.rounds} rounds each")
    result = {}
    for load in ("quiet", "busy"):
        loops = busy_loops(args.busy) if load == "busy" else []
        try:
            for name, (config, shape) in MODELS.items():
                for threads in (1, cores):
                    ms = statistics.median(ms_per_step(config, shape, threads, args.steps)
                                           for _ in range(args.rounds))
                    result[f"{load}_{name}_{threads}"] = ms
                    print(f"{load:5s} ({len(loops)} busy loops)  {name:5s}  {threads} thread(s): "
                          f"{ms:8.2f} ms per step", flush=True)
        finally:
            for proc in loops:
                proc.kill()
                proc.wait()
    ratios = []
    for name in MODELS:
        ratios.append(f"one_over_all_quiet_{name}={result[f'quiet_{name}_1'] / result[f'quiet_{name}_{cores}']:.2f}")
        ratios.append(f"all_over_one_busy_{name}={result[f'busy_{name}_{cores}'] / result[f'busy_{name}_1']:.2f}")
    print(" ".join(ratios))
    return result


if __name__ == "__main__":
    main()
