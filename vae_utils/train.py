"""Training: Algorithm 1 of the paper (AEVB), and the one loop that also runs its baselines.

    repeat
        X^M   <- a random minibatch of M datapoints
        eps   <- L samples from p(eps) = N(0, I)
        g     <- grad_{theta, phi} L~^M(theta, phi; X^M, eps)     (eq. 8, estimator A or B)
        theta, phi <- update with g (Adagrad in the paper, or Adam)
    until convergence

`train_epoch` is that loop, once over the data. Only the update inside it differs between
the algorithms of the paper's section 5: `STEPS` maps "AEVB", "wake-sleep" and "MCEM" to
their step functions, and "autoencoder" to notebook 07's reconstruction-only step. The step size and the KL weight follow schedules that are plain
functions of progress (the fraction of all steps done), like nanoGPT's `get_lr(it)`.

A run's randomness is drawn per epoch from (seed, epoch), so a run stopped after epoch e and
continued gives, bit for bit on a CPU, what one uninterrupted run gives. Its state
(model, optimizer, step count, history and MCEM's chains) is a `Run`, which checkpoints hold.

We minimise the negative bound per datapoint (eq. 8 divided by N); Adagrad and Adam are
invariant to that scale. The paper's prior on the parameters, p(theta) = N(0, I), is then
weight decay 1/N: see `paper_weight_decay`.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from . import autoencoder, cache, mcem, wake_sleep
from .data import Split, check_data, minibatches
from .config import TrainConfig
from .elbo import ESTIMATORS
from .evaluate import lower_bound
from .models import VAE, VAEConfig, build
from .run import History, Run, make_optimizer


class TrainingDiverged(FloatingPointError):
    """The objective became NaN or infinite during training."""


# -- schedules: plain functions of progress = steps done / all steps -------------------------

def lr_at(progress: float, config: TrainConfig) -> float:
    """The step size: config.lr, times the factor of the last lr_steps entry reached.

    lr_steps=((0.4, 0.3), (0.65, 0.1)) keeps lr for the first 40% of the steps, then 0.3 lr
    until 65%, then 0.1 lr.
    """
    factor = 1.0
    for start, f in config.lr_steps:
        if progress >= start:
            factor = f
    return config.lr * factor


def kl_weight_at(progress: float, config: TrainConfig) -> float:
    """beta: rises linearly from 0 to config.kl_weight over the first kl_warmup of the steps
    (a KL warm-up, Bowman et al. 2016, Sonderby et al. 2016), then stays there."""
    if progress >= config.kl_warmup:
        return config.kl_weight
    return config.kl_weight * progress / config.kl_warmup


def paper_weight_decay(n_train: int) -> float:
    """Weight decay that adds the paper's prior p(theta) = N(0, I) to the per-datapoint bound.

    (1/N) [sum_i L(x_i) + log p(theta)] = mean_i L(x_i) - ||theta||^2 / (2N) + const: decay 1/N.
    """
    return 1.0 / n_train


def epoch_generator(seed: int, epoch: int, device) -> torch.Generator:
    """The random stream of one epoch (epoch 0: the run's set-up), from (seed, epoch) alone."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


# -- the steps: one update of each algorithm on a minibatch x (rows idx of the data) ---------

def aevb_step(run: Run, x, idx, generator, kl_weight: float) -> torch.Tensor:
    """Algorithm 1's update: ascend the SGVB estimate (estimator A or B, L samples)."""
    c = run.config
    loss = -ESTIMATORS[c.estimator](run.model, x, c.n_samples, generator, kl_weight).mean()  # -L~^M / N, eq. 8
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return -loss.detach()


def wake_sleep_step(run: Run, x, idx, generator, kl_weight: float) -> torch.Tensor:
    """One wake and one sleep phase (vae_utils.wake_sleep)."""
    return wake_sleep.step(run.model, run.optimizer, x, generator)


def mcem_step(run: Run, x, idx, generator, kl_weight: float) -> torch.Tensor:
    """One HMC E-step on the chains of rows idx, then the M-step (vae_utils.mcem)."""
    return mcem.step(run.model, run.optimizer, x, idx, run.chains, generator)


def autoencoder_step(run: Run, x, idx, generator, kl_weight: float) -> torch.Tensor:
    """Reconstruction alone from the encoder's mean, of x with config.corruption of its pixels
    masked (vae_utils.autoencoder): notebook 07's (denoising) autoencoder."""
    return autoencoder.step(run.model, run.optimizer, x, generator, run.config.corruption)


STEPS = {"AEVB": aevb_step, "wake-sleep": wake_sleep_step, "MCEM": mcem_step, "autoencoder": autoencoder_step}


# -- the loop -----------------------------------------------------------------------------------

def start(model: VAE, data: Split, config: TrainConfig) -> Run:
    """A new run: the optimizer, and for MCEM a chain per datapoint drawn from the prior."""
    check_data(model, data)
    run = Run(model, make_optimizer(model.parameters(), config), config)
    if config.algorithm == "MCEM":
        run.chains = mcem.init_chains(model, len(data), epoch_generator(config.seed, 0, data.x.device))
    return run


def fraction_done(run: Run, n: int) -> float:
    """The fraction of the run's steps done, for n datapoints per epoch: what schedules read."""
    return run.step / (run.config.epochs * math.ceil(n / run.config.batch_size))


def train_epoch(run: Run, data: Split) -> float:
    """Algorithm 1, once over the data in random minibatches; returns the average objective."""
    c, n = run.config, len(data)
    gen = epoch_generator(c.seed, run.epoch + 1, data.x.device)
    snapshot_at = {e * n for e in c.snapshot_epochs} | set(c.snapshot_samples)
    step, total = STEPS[c.algorithm], torch.zeros((), device=data.x.device)
    run.model.train()
    for idx, x in minibatches(data, c.batch_size, gen, with_index=True):  # X^M: a random minibatch
        p = fraction_done(run, n)
        for group in run.optimizer.param_groups:
            group["lr"] = lr_at(p, c)
        total.add_(step(run, x, idx, gen, kl_weight_at(p, c)), alpha=len(idx))
        run.step += 1
        run.samples += len(idx)
        if any(run.samples - len(idx) < s <= run.samples for s in snapshot_at):  # crossed a count
            run.history.snapshots[run.samples] = {k: v.detach().cpu().clone()
                                                  for k, v in run.model.state_dict().items()}
        if run.step % 50 == 0 and not torch.isfinite(total):  # a check costs a sync: not every step
            _diverged(run)
    if not torch.isfinite(total):
        _diverged(run)
    run.epoch += 1
    run.model.eval()
    return total.item() / n


def train(model: VAE, data: Split, config: TrainConfig, test: Split | None = None,
          progress: bool = True, run: Run | None = None, until: int | None = None,
          callback=None) -> Run:
    """Train for config.epochs epochs (or up to epoch `until`); returns the Run.

    Pass a Run back to continue it: train(..., until=1) then train(..., run=run) gives the
    same model as one call, bit for bit on a CPU. callback(run) is called after every
    epoch, e.g. to redraw a figure while the model trains. The test bound is evaluated
    every config.eval_every epochs and after the last (for MCEM, whose encoder is never
    trained, and for an autoencoder, whose encoder has no trained variance, the test bound
    means nothing and is recorded as nan).
    """
    from tqdm.auto import trange

    run = run or start(model, data, config)
    if run.model is not model or run.config != config:
        raise ValueError("this Run belongs to another model or configuration; pass the model and "
                         "config it was started with, or start a new run (run=None)")
    check_data(model, data)
    if test is not None:
        check_data(model, test)
    if run.chains is not None and len(run.chains.z) != len(data):
        raise ValueError(f"this MCEM run keeps {len(run.chains.z)} chains, one per datapoint, but the data "
                         f"have {len(data)} rows; continue it on the data it started with")
    until = config.epochs if until is None else until
    if not (isinstance(until, int) and run.epoch <= until <= config.epochs):
        raise ValueError(f"until={until!r}: give an epoch from {run.epoch} (done) to config.epochs="
                         f"{config.epochs}; the schedules run over config.epochs")
    evaluate_test = test is not None and config.algorithm not in ("MCEM", "autoencoder")
    t0 = time.perf_counter() - (run.history.seconds[-1] if run.history.seconds else 0.0)
    bar = trange(run.epoch + 1, until + 1, desc="epochs", disable=not progress)
    for epoch in bar:
        objective = train_epoch(run, data)
        if epoch % config.eval_every == 0 or epoch == until:
            h = run.history
            h.samples.append(run.samples)
            h.epoch.append(epoch)
            h.train.append(objective)
            h.test.append(lower_bound(model, test, seed=config.seed) if evaluate_test else float("nan"))
            h.seconds.append(time.perf_counter() - t0)
            bar.set_postfix(train=f"{h.train[-1]:.2f}", test=f"{h.test[-1]:.2f}")
        if callback is not None:
            callback(run)
    return run


def _diverged(run: Run):
    h, c = run.history, run.config
    last = f"{h.train[-1]:.2f} nats" if h.train else "none yet"
    raise TrainingDiverged(
        f"the objective became NaN or infinite in epoch {run.epoch + 1} (after {run.samples} training "
        f"samples; last finite epoch average: {last}). Lower the learning rate (lr={c.lr} with "
        f"{c.optimizer}), or check the data and model for extreme values. The model's parameters "
        "are now unusable: rebuild it or load a checkpoint.")


# -- the model cache --------------------------------------------------------------------------

def cache_fields(model_config: VAEConfig, train_config: TrainConfig, data: Split,
                 test: Split | None = None) -> dict:
    """What a trained model's cache key covers (vae_utils.cache adds the version and code):
    both configs and fingerprints of the training and test data."""
    return {"model": model_config.to_dict(), "train": train_config.to_dict(),
            "data": data.fingerprint(), "test": None if test is None else test.fingerprint()}


def train_or_load(name: str, model_config: VAEConfig, train_config: TrainConfig, data: Split,
                  test: Split | None = None, progress: bool = True,
                  save_every: int | None = None) -> tuple[VAE, History]:
    """The model `name` trained with exactly these settings: loaded from the model cache
    (vae_utils.cache) if there, else trained (seeded by train_config.seed) and saved.

    The cache key holds everything that determines the result: both configs (the algorithm
    included), fingerprints of the training and test data, the package's version and code.
    Other settings under the same name live in files of their own and are never overwritten;
    when none matches, the reason printed lists every field that differs.

    While it trains, the run (model, optimizer, step, history, MCEM's chains) is saved under
    the same key every `save_every` epochs (default: every tenth of the run). A run cut short,
    by a kernel restart or a closed laptop, resumes at its last save on the next call and ends
    exactly where an uninterrupted run ends, since each epoch's randomness comes from
    (seed, epoch). The model lives on the data's device.
    """
    fields = cache_fields(model_config, train_config, data, test)
    if save_every is not None and not (isinstance(save_every, int) and save_every >= 1):
        raise ValueError(f"save_every={save_every!r}: use a whole number of epochs >= 1, or None")
    every = save_every or max(1, train_config.epochs // 10)
    model = build(model_config, train_config.seed, data.x.device)  # on the data's device
    run = start(model, data, train_config)
    state, reason = cache.lookup(name, fields)
    if state is not None:
        run.load_state_dict(state)
    if run.epoch < train_config.epochs:
        print(f"training {name}: " + (reason if state is None else
                                       f"resuming the run saved after epoch {run.epoch} of {train_config.epochs}"))

        def save_part(r: Run):
            if r.epoch % every == 0 and r.epoch < train_config.epochs:
                cache.store(name, fields, r.state_dict(), replace_broken=True)

        train(model, data, train_config, test, progress, run=run, callback=save_part)
        cache.store(name, fields, run.state_dict(), replace_broken=True)
    return model.eval(), run.history
