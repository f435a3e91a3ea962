"""The likelihood record: Burda et al.'s one-layer VAE, test -log p(x) with k = 5000.

    python benchmarks/likelihood_record.py                     # 10 minutes, evaluation included
    python benchmarks/likelihood_record.py --train-minutes 10  # train 10 min, then evaluate
    python benchmarks/likelihood_record.py --minutes 110 --warmup 0.2   # the full budget: 86.56 nats on 2 CPU cores
    python benchmarks/likelihood_record.py --minutes 2 --eval-subset 500 --k 500   # a check
    python benchmarks/likelihood_record.py --compile           # evaluate with torch.compile (slow CPUs)

The model is the VAE row of Burda, Grosse & Salakhutdinov, "Importance Weighted
Autoencoders" (ICLR 2016), Table 1, one stochastic layer, k = 1: encoder 784-200-200-(50+50),
decoder 50-200-200-784 Bernoulli, tanh, trained with Adam on dynamically binarized MNIST
(every minibatch redrawn, x ~ Bernoulli(grey levels)). Their test -log p(x) is 86.76 nats,
after 3,280 epochs of batch 20 and a decaying learning rate, estimated with k = 5000
importance samples on the 10,000 test digits (binarized once, here with a fixed seed):

    log p(x) ~= log 1/k sum_k p(x, z_k) / q(z_k|x),   z_k ~ q(z|x)

Everything goes through vae_utils: load_mnist(binarize="dynamic"), train() for Algorithm 1
(estimator B, L = 1) and evaluate.log_likelihood / lower_bound for the numbers.

How the budget is split. --minutes is the whole run, evaluation included. Before training,
the k-sample evaluation is timed on 60 test digits and scaled to the evaluation set (with a
20% margin); training gets what is left, (minutes - loading - evaluation estimate), at least
one minute. --train-minutes instead fixes the training time and lets the evaluation take
what it takes (both times are printed). On a 2-core CPU the evaluation is a large share: k =
5000 on 10,000 digits is 5 * 10^7 decoder passes, about 2 * 10^13 FLOP. In passes of 20
digits x 100 samples (cache-sized) it takes about 4 minutes on a quiet 2-core CPU; in passes
of 50 x 1000 it took 9. So a 10-minute run trains for 5 to 6 minutes; on a GPU the evaluation is
fast. The CPU matters: on a 2-core AMD EPYC with half that machine's matmul speed (93 against
195 GFLOP/s) the evaluation took 7.7 minutes (6.4 with --compile) and left 1.5 to 2 minutes of
training, so the 10-minute run there reached only 103.6 nats (100.7 with --compile).

The runs quoted below were made before the training loop was rebuilt (commit 4d8377f): the
script then trained in chunks of epochs, its schedules ran over fractions of the training
time and the KL weight rose in 20 steps; now they run over fractions of the steps, and the
minibatches are drawn per (seed, epoch). Same model, optimizer, schedule shape and
evaluation; not re-run since (a full-budget run is 110 minutes).

Choices, measured on the shared 2-core CPU of the development machine (load average ~6,
so other programs held most of both cores; numbers noisy):
  threads   1 thread trained at 2,000-7,000 samples/s, 2 threads at 200-600: on a busy
            machine two threads wait for each other. Pass --threads 1 there.
  batch     3.3 minutes each, k=200 on 1,000 test digits: batch 100 with lr 1e-3 reached
            98.8 nats, batch 250 with lr 2e-3 101.5 (the epochs took as long at 250 as at
            100 on one busy thread, so the larger batch only lost updates). Burda et al.'s
            batch 20 was not tried: five times the steps, and the Python and optimizer
            overhead per sample that comes with them.
  schedule  Adam, lr 1e-3 for the first 40% of the steps, then 3e-4 for 25%, 1e-4
            for 20% and 3e-5 for the last 15%: a step version of Burda et al.'s decay. An
            earlier run with 70/20/10% at 1e-3/3e-4/1e-4 (and Adam restarted every chunk)
            reached 86.75 nats in 110 minutes; its train bound stopped improving at 1e-3 after
            about 40% of the run, and every drop of the step gained at once (-93.1 -> -90.6 ->
            -89.6 nats), hence the earlier, more numerous drops. They improved the train and
            test bounds (-89.46 -> -89.20, -90.43 -> -90.14) but log p(x) only to 86.73: the
            gain went to the encoder. See benchmarks/README.md.
  warm-up   --warmup 0.2 raises the KL term's weight linearly from 0 to 1 over the first 20%
            of the steps (Bowman et al. 2016, Sonderby et al. 2016), then trains the
            bound. At the full budget it kept 25 of the 50 latent units active (Burda et al.'s
            count, evaluate.active_units) instead of 16, and reached 86.56 nats instead of
            86.73, though its bounds ended lower (train -89.90, test -90.26). --warmup 0.1 did
            as well within the noise (86.58, 24 units). In 10-minute runs of the same day
            --warmup 0.1 cost 0.8 nats (91.76 against 90.93; 15 and 16 active units): there
            the bound has no time to catch up. So it is off by default and on for the full
            budget.
  compile   --compile evaluates through CompiledLikelihood: log p(x|z) compiled by
            torch.compile (one fused loop for the last layer's output, the Bernoulli
            log-likelihood and the pixel sum). On the AMD EPYC above, same day: the whole
            evaluation 6.4 minutes against 7.7 (1.2x; a 40-digit timing an hour later gave
            1.9x, the eager passes being the ones whose speed varied). Off by default: it
            needs a C++ compiler on a CPU, and it was not measured on the faster CPU above.

How the time becomes epochs. The step size and the KL weight follow schedules that are
functions of progress (the fraction of all steps done: TrainConfig.lr_steps, kl_warmup), so the
number of epochs must be fixed before training starts. The script times one epoch on a copy
of the model and plans as many epochs as fit the training budget (`plan_epochs`); then one
call of train() runs them. A machine whose load changes during the run makes it end early or
late: the wall time is printed.

The last line is:  test_nll_k5000=XX.XX nats wall_minutes=X.X
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import time
from dataclasses import replace

import torch

import vae_utils
from vae_utils import checkpoints
from vae_utils.data import Split, load_mnist
from vae_utils.evaluate import active_units, log_likelihood, lower_bound
from vae_utils.models import VAEConfig, build
from vae_utils.run import Run
from vae_utils.train import TrainConfig, fraction_done, kl_weight_at, lr_at, train

# Burda et al., Table 1, VAE with one stochastic layer: 2 x 200 tanh, 50 latent units
MODEL = VAEConfig(x_dim=784, z_dim=50, hidden=(200, 200), activation="tanh", init="default")
BATCH, LR = 100, 1e-3
# (fraction of the steps, learning rate / LR): a step decay, as Burda et al. decay theirs
# (40% of the steps at 1e-3, 25% at 3e-4, 20% at 1e-4, 15% at 3e-5)
LR_STEPS = ((0.4, 0.3), (0.65, 0.1), (0.85, 0.03))
# --warmup F: the KL's weight rises from 0 to 1 over the fraction F of the steps.
# Off by default: it gains at 110 minutes and loses in the 10-minute run (docstring).
WARMUP = 0.0


class CompiledLikelihood:
    """The model with log p(x|z) compiled by torch.compile, for the evaluation (--compile).

    vae_utils' estimators take any object with encode(x) and log_likelihood(x, z). Compiled,
    the decoder's last layer, the Bernoulli log-likelihood and the sum over pixels run as
    fused loops, without the (rows x 784) intermediates of the eager operations: the k = 5000
    evaluation took 6.4 instead of 7.7 minutes on a 2-core AMD EPYC (benchmarks/README.md).
    Same draws; the numbers agree with the eager model's to about 1e-4 nats per digit.
    """

    def __init__(self, model):
        self.encode = model.encode
        self.log_likelihood = torch.compile(model.log_likelihood)


def eval_seconds_estimate(model, x: torch.Tensor, k: int, n_total: int, n_probe: int = 60) -> float:
    """Time log_likelihood on n_probe digits (best of two) and scale to n_total, +20%.

    Best of two: a single probe in a fresh process once read 5.9 minutes for an evaluation
    that then took 3.9, and cost that run two minutes of training. The 20% margin: the best
    probe, scaled, has run 15% short of the whole evaluation (3.55 against 4.1 minutes).
    """
    log_likelihood(model, x[:20], n_samples=min(k, 100))  # warm up
    times = []
    for _ in range(2):
        t = time.perf_counter()
        log_likelihood(model, x[:n_probe], n_samples=k)
        times.append(time.perf_counter() - t)
    return 1.2 * min(times) * n_total / n_probe


def record_config(epochs: int, seed: int, batch_size: int = BATCH, lr0: float = LR,
                  warmup: float = WARMUP) -> TrainConfig:
    """The training run: Adam, the step decay LR_STEPS, the KL warm-up, test bound never
    evaluated during training (the script evaluates once, at the end)."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr0,
                       lr_steps=LR_STEPS, kl_warmup=warmup, seed=seed, eval_every=epochs)


def plan_epochs(seconds: float, seconds_per_epoch: float) -> int:
    """How many whole epochs fit in `seconds` at the measured speed (at least one)."""
    return max(1, int(seconds // seconds_per_epoch))


def epoch_seconds(model, data: Split, config: TrainConfig, clock=time.perf_counter) -> float:
    """The wall time of one epoch of `config`, measured on a copy of the model."""
    probe = copy.deepcopy(model)
    t = clock()
    train(probe, data, replace(config, epochs=1, eval_every=1), progress=False)
    return clock() - t


def train_for(model, data: Split, seconds: float, seed: int, progress: bool, batch_size: int = BATCH,
              lr0: float = LR, warmup: float = WARMUP, clock=time.perf_counter) -> Run:
    """Train with the record's schedules for as many epochs as fit in `seconds`; returns the Run."""
    per_epoch = epoch_seconds(model, data, record_config(1, seed, batch_size, lr0, warmup), clock)
    config = record_config(plan_epochs(seconds - per_epoch, per_epoch), seed, batch_size, lr0, warmup)
    t0 = clock()

    def report(run):
        if progress and (run.epoch % max(1, config.epochs // 40) == 0 or run.epoch == config.epochs):
            p = fraction_done(run, len(data))
            print(f"  epoch {run.epoch:4d}/{config.epochs}  lr {lr_at(p, config):.0e}  beta "
                  f"{kl_weight_at(p, config):.2f}  {(clock() - t0) / 60:5.1f} min", flush=True)

    if progress:
        print(f"one epoch took {per_epoch:.1f} s: training {config.epochs} epochs")
    return train(model, data, config, progress=False, callback=report)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of the whole run")
    p.add_argument("--train-minutes", type=float, default=None,
                   help="train this long, then evaluate however long that takes (overrides the split)")
    p.add_argument("--k", type=int, default=5000, help="importance samples per test digit")
    p.add_argument("--device", default=None, help="default: vae_utils.device()")
    p.add_argument("--eval-subset", type=int, default=None,
                   help="evaluate on the first N test digits only (quick checks)")
    p.add_argument("--batch-size", type=int, default=BATCH)
    p.add_argument("--lr", type=float, default=LR, help="Adam's step for the first phase")
    p.add_argument("--warmup", type=float, default=WARMUP,
                   help="KL warm-up: the KL's weight rises from 0 to 1 over this fraction of the steps")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); 1 is far faster on a busy machine")
    p.add_argument("--compile", action="store_true",
                   help="evaluate with log p(x|z) compiled by torch.compile (needs a C++ compiler on a CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="save the trained model (vae_utils checkpoint) here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if not 0 <= args.warmup < 1:
        p.error(f"--warmup {args.warmup}: give a fraction of the steps in [0, 1), e.g. 0.1")

    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device) if args.device else vae_utils.device()
    data = load_mnist(binarize="dynamic", device=dev, seed=args.seed, progress=False)
    test = data["test"]  # binarized once with `seed`
    x_eval = test.x[:args.eval_subset] if args.eval_subset else test.x
    model = build(MODEL, seed=args.seed, device=dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: 784-200-200-50 tanh VAE, {n_params:,} parameters; device {dev}; "
          f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}")

    scorer = CompiledLikelihood(model) if args.compile else model  # what the evaluation calls
    if args.train_minutes is not None:
        train_seconds = args.train_minutes * 60
        print(f"training budget: {args.train_minutes:g} min (set by --train-minutes)")
    else:
        eval_est = eval_seconds_estimate(scorer, x_eval, args.k, len(x_eval))
        budget = args.minutes * 60
        train_seconds = max(60.0, budget - (time.perf_counter() - t_start) - eval_est - 5)
        print(f"evaluation estimate: {eval_est / 60:.1f} min for {len(x_eval):,} digits x k={args.k}; "
              f"training budget: {train_seconds / 60:.1f} min")
        if train_seconds < 0.5 * budget:
            print(f"warning: the evaluation leaves training less than half of --minutes={args.minutes:g} "
                  "on this machine now; use --eval-subset, --train-minutes or a larger budget")

    run = train_for(model, data["train"], train_seconds, args.seed, not args.quiet,
                    args.batch_size, args.lr, args.warmup)
    history = run.history
    if args.save:
        checkpoints.save(args.save, {"model_config": MODEL.to_dict(), "train_config": run.config.to_dict(),
                                     "run": run.state_dict()})
    t_trained = time.perf_counter()

    bound = lower_bound(scorer, x_eval, seed=args.seed)
    ll = log_likelihood(scorer, x_eval, n_samples=args.k, seed=args.seed)
    nll, sem = -ll.mean().item(), ll.std().item() / math.sqrt(len(ll))
    t_end = time.perf_counter()

    which = "test" if not args.eval_subset else f"first {len(x_eval):,} test digits"
    print(f"epochs: {history.epoch[-1]}")
    print(f"training samples: {history.samples[-1]:,}")
    print(f"wall time: training {(t_trained - t_start) / 60:.1f} min (incl. loading), "
          f"evaluation {(t_end - t_trained) / 60:.1f} min; load average now {os.getloadavg()[0]:.2f}")
    print(f"{which} lower bound (estimator B, L=1): {bound:.2f} nats")
    print(f"active latent units (Var_x E_q[z_j] > 0.01): {active_units(model, x_eval)} of {MODEL.z_dim}")
    print(f"{which} log p(x), k={args.k}: {-nll:.2f} nats (standard error of the mean {sem:.2f})")
    print("Burda et al. (2016), same model, 3,280 epochs: -log p(x) = 86.76 nats")
    print(f"test_nll_k{args.k}={nll:.2f} nats wall_minutes={(t_end - t_start) / 60:.1f}")
    return nll


if __name__ == "__main__":
    main()
