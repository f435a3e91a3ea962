"""Figure 3 of the paper: AEVB, wake-sleep and Monte Carlo EM, trained side by side.

All three train the same models.VAE (the paper: 3 latent variables, 100 hidden units) on the
same minibatches (M = 100), with the same optimizer (Adagrad) and prior on theta (weight
decay 1/N); only the update differs:

    AEVB        ascend the SGVB estimate of the bound, eq. 7, in theta and phi together (Algorithm 1)
    wake-sleep  wake: ascend log p(x, z), z ~ q(z|x), in theta; sleep: ascend log q(z|x) on dreams, in phi
    MCEM        E: one HMC transition per datapoint's chain; M: 5 steps on log p(x, z) in theta

Training is recorded as the paper plots it, against the number of training samples
evaluated, with a copy of the weights at chosen sample counts; `marginal_curve` then
estimates log p(x) at each copy with the Appendix D estimator (vae_utils.marginal).
"""
from __future__ import annotations

import time

import torch

from . import marginal, mcem, wake_sleep
from .data import draw_binary
from .elbo import sgvb_b
from .models import VAE, VAEConfig
from .train import CheckpointMismatch, History, TrainConfig, build, checkpoint_dir, load_checkpoint, make_optimizer, save_checkpoint

ALGORITHMS = ("AEVB", "wake-sleep", "MCEM")


def aevb_step(model, opt, x, generator=None) -> float:
    """One step of Algorithm 1: ascend the estimator-B bound (eq. 7, L = 1); returns it."""
    bound = sgvb_b(model, x, 1, generator).mean()
    opt.zero_grad(set_to_none=True)
    (-bound).backward()
    opt.step()
    return bound.item()


def fit(algorithm: str, model: VAE, data, config: TrainConfig, snapshots=(), progress: bool = False) -> History:
    """Train with `algorithm` for config.epochs epochs; keep the weights after each count in `snapshots`.

    A snapshot is taken at the first minibatch boundary at or after its count (exactly at it
    when counts are multiples of the batch size). History: samples (the counts reached), train (the algorithm's own objective averaged
    since the previous snapshot: the bound for AEVB, log p(x, z) for the others), seconds,
    and snapshots {samples: state_dict}.
    """
    from tqdm.auto import tqdm

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r}; choose one of {ALGORITHMS}")
    n, total = len(data), config.epochs * len(data)
    wanted = sorted(s for s in snapshots if s <= total) or [total]
    gen = torch.Generator(device=data.x.device).manual_seed(config.seed)
    opt = make_optimizer(model.parameters(), config)
    chains = mcem.init_chains(model, n, gen) if algorithm == "MCEM" else None
    history, seen, values, t0 = History(), 0, [], time.perf_counter()
    bar = tqdm(total=total, disable=not progress, desc=algorithm)
    model.train()
    while seen < wanted[-1]:
        for idx in torch.randperm(n, generator=gen, device=data.x.device).split(config.batch_size):
            x = data.x[idx]
            x = draw_binary(x, gen) if data.dynamic else x
            if algorithm == "AEVB":
                values.append(aevb_step(model, opt, x, gen))
            elif algorithm == "wake-sleep":
                values.append(wake_sleep.step(model, opt, x, gen))
            else:
                values.append(mcem.step(model, opt, x, idx, chains, gen))
            seen += len(idx)
            bar.update(len(idx))
            while len(history.samples) < len(wanted) and seen >= wanted[len(history.samples)]:
                history.samples.append(seen)
                history.train.append(sum(values) / max(len(values), 1))
                history.seconds.append(time.perf_counter() - t0)
                history.snapshots[seen] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                values = []
            if seen >= wanted[-1]:
                break
    bar.close()
    model.eval()
    return history


def fit_or_load(name: str, algorithm: str, model_config: VAEConfig, config: TrainConfig, data,
                snapshots=(), device=None, progress: bool = False) -> tuple[VAE, History]:
    """`fit`, cached in checkpoint_dir() under `name` like train.train_or_load."""
    path = checkpoint_dir() / f"{name}.pt"
    device = device or data.x.device
    wanted = sorted(s for s in snapshots if s <= config.epochs * len(data)) or [config.epochs * len(data)]
    if path.exists():
        try:
            model, history = load_checkpoint(path, model_config, config, device)
            got = history.samples  # each snapshot is taken at the first minibatch boundary at or after its count
            if len(got) == len(wanted) and all(0 <= g - w < config.batch_size for g, w in zip(got, wanted)):
                return model, history
        except CheckpointMismatch as e:
            print(f"retraining {name}: {str(e).splitlines()[0]}")
    model = build(model_config, config.seed, device)
    history = fit(algorithm, model, data, config, snapshots, progress)
    save_checkpoint(path, model, config, history)
    return model, history


def marginal_curve(model: VAE, history: History, x, generator=None, **appendix_d) -> torch.Tensor:
    """The Appendix D estimate of log p(x) for every row of x at every snapshot: (snapshots, B).

    The model is left holding the weights of the last snapshot.
    """
    curve = []
    for s in history.samples:
        model.load_state_dict(history.snapshots[s])
        curve.append(marginal.appendix_d_log_px(model, x, generator=generator, **appendix_d))
    return torch.stack(curve)
