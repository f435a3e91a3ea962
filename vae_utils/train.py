"""Training: Algorithm 1 of the paper (AEVB), fast, reproducible, with checkpoints.

    repeat
        X^M   <- a random minibatch of M datapoints
        eps   <- L samples from p(eps) = N(0, I)
        g     <- grad_{theta, phi} L^M(theta, phi; X^M, eps)     (eq. 8, estimator A or B)
        theta, phi <- update with g (Adagrad in the paper, or Adam)
    until convergence

Minibatches index one in-memory tensor (on the GPU if the data are there): no DataLoader,
no per-example Python work. We minimise the negative bound per datapoint (eq. 8 divided
by N); Adagrad and Adam are invariant to that scale. The paper's prior on the parameters,
p(theta) = N(0, I), is then weight decay 1/N: see `paper_weight_decay`.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .data import Split, data_dir, minibatches
from .elbo import ESTIMATORS
from .evaluate import lower_bound
from .models import VAE, VAEConfig


class TrainingDiverged(FloatingPointError):
    """The lower bound became NaN or infinite during training."""


class CheckpointMismatch(ValueError):
    """A checkpoint was saved with another configuration than the one asked for."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100  # M in Algorithm 1; the paper uses 100
    n_samples: int = 1  # L, samples of eps per datapoint; the paper uses 1
    estimator: str = "B"  # "A" (eq. 6) or "B" (eq. 7)
    kl_weight: float = 1.0  # beta on the KL term: 1 is the bound; < 1 only for a warm-up
    optimizer: str = "adagrad"  # "adagrad" (the paper) or "adam"
    lr: float = 0.02  # the paper picks Adagrad's step from {0.01, 0.02, 0.1}
    weight_decay: float = 0.0  # see paper_weight_decay
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations of the test bound
    snapshot_epochs: tuple[int, ...] = ()  # keep a copy of the weights after these epochs

    def __post_init__(self):
        object.__setattr__(self, "snapshot_epochs", tuple(self.snapshot_epochs))
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r}; choose one of {list(ESTIMATORS)}")
        if self.optimizer not in ("adagrad", "adam"):
            raise ValueError(f"optimizer={self.optimizer!r}; choose 'adagrad' or 'adam'")
        if not 0 <= self.kl_weight <= 1:
            raise ValueError(f"kl_weight={self.kl_weight}; use 1 (the bound), or a value in "
                             "[0, 1) for a KL warm-up")

    def to_dict(self) -> dict:
        return {**asdict(self), "snapshot_epochs": list(self.snapshot_epochs)}


@dataclass
class History:
    """The lower bound (nats per datapoint) against training samples evaluated.

    train: the average of the minibatch estimates over each epoch (free to compute; the
    parameters move during the epoch; with kl_weight < 1 they estimate that objective, not
    the bound). test: the bound on the test split after the epoch.
    """

    samples: list[int] = field(default_factory=list)  # the paper's x-axis
    epoch: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time since the start
    snapshots: dict[int, dict] = field(default_factory=dict)  # epoch -> model state_dict


def paper_weight_decay(n_train: int) -> float:
    """Weight decay that adds the paper's prior p(theta) = N(0, I) to the per-datapoint bound.

    (1/N) [sum_i L(x_i) + log p(theta)] = mean_i L(x_i) - ||theta||^2 / (2N): decay 1/N.
    """
    return 1.0 / n_train


def make_optimizer(params, config: TrainConfig):
    """Adagrad or Adam, with the fused (single-kernel) update where this torch has one."""
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[config.optimizer]
    params = list(params)
    try:
        return cls(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without it
        return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def check_data(model: VAE, data: Split) -> None:
    """Fail early, and clearly, on data that do not fit the model."""
    x, c = data.x, model.config
    if x.ndim != 2 or x.shape[1] != c.x_dim:
        raise ValueError(f"data have shape {tuple(x.shape)} but the model expects (N, {c.x_dim}); "
                         "flatten images to rows, or build the model with VAEConfig(x_dim=...)")
    # one pass over the data (torch.isfinite(x).all() alone took 0.25 s on MNIST): min and
    # max propagate NaN, and an infinity is the min or the max
    lo, hi = (v.item() for v in torch.aminmax(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("data contain NaN or infinite values; clean them before training")
    if c.decoder == "bernoulli" and (lo < 0 or hi > 1):
        raise ValueError(f"a Bernoulli decoder needs pixels in [0, 1], got [{lo:g}, {hi:g}]; "
                         "scale the data (e.g. x / 255)")


def train(model: VAE, data: Split, config: TrainConfig, test: Split | None = None,
          progress: bool = True, history: History | None = None,
          optimizer: torch.optim.Optimizer | None = None) -> History:
    """Run Algorithm 1 for config.epochs epochs; returns (and extends) the History.

    Reproducible: the same seed, data and model give the same run, bit for bit, on a CPU.
    To continue a run, pass its History and its optimizer (make_optimizer(model.parameters(),
    config)): Adam's or Adagrad's running averages then carry over, and the step size is the
    optimizer's own (set param_groups[i]["lr"] for a schedule); config's optimizer, lr and
    weight_decay are used only when no optimizer is given.
    """
    from tqdm.auto import trange

    check_data(model, data)
    estimator = ESTIMATORS[config.estimator]
    if optimizer is None:
        opt = make_optimizer(model.parameters(), config)
    else:
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not all(id(p) in owned for p in model.parameters()):
            raise ValueError("the optimizer does not hold this model's parameters; make it with "
                             "make_optimizer(model.parameters(), config) for this model")
        opt = optimizer
    gen = torch.Generator(device=data.x.device).manual_seed(config.seed)
    history = history or History()
    start_epoch = history.epoch[-1] if history.epoch else 0
    seen = history.samples[-1] if history.samples else 0
    t0 = time.perf_counter() - (history.seconds[-1] if history.seconds else 0.0)
    bar = trange(start_epoch + 1, start_epoch + config.epochs + 1, desc="epochs",
                 disable=not progress)
    for epoch in bar:
        model.train()
        total = torch.zeros((), device=data.x.device)
        for step, xb in enumerate(minibatches(data, config.batch_size, gen)):
            loss = -estimator(model, xb, config.n_samples, gen, config.kl_weight).mean()  # -L^M / M
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total.add_(loss.detach(), alpha=len(xb))  # running sum: one op, not a mul and an add
            if step % 50 == 0 and not torch.isfinite(total):
                _diverged(epoch, seen, config, history)
        if not torch.isfinite(total):
            _diverged(epoch, seen, config, history)
        seen += len(data)
        if epoch % config.eval_every == 0 or epoch == start_epoch + config.epochs:
            history.samples.append(seen)
            history.epoch.append(epoch)
            history.train.append(-total.item() / len(data))
            history.test.append(lower_bound(model, test, seed=config.seed) if test else float("nan"))
            history.seconds.append(time.perf_counter() - t0)
            bar.set_postfix(train=f"{history.train[-1]:.2f}", test=f"{history.test[-1]:.2f}")
        if epoch in config.snapshot_epochs:
            history.snapshots[epoch] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.eval()
    return history


def _diverged(epoch, seen, config, history):
    last = f"{history.train[-1]:.2f} nats" if history.train else "none yet"
    raise TrainingDiverged(
        f"the lower bound became NaN or infinite in epoch {epoch} (after {seen} training "
        f"samples; last finite epoch bound: {last}). Lower the learning rate (lr={config.lr} "
        f"with {config.optimizer}), or check the data and model for extreme values. The "
        "model's parameters are now unusable: rebuild it or load a checkpoint.")


def build(config: VAEConfig, seed: int = 0, device=None) -> VAE:
    """A freshly initialised VAE; the same seed gives the same parameters."""
    torch.manual_seed(seed)
    return VAE(config).to(device or "cpu")


# -- checkpoints ---------------------------------------------------------------------------

def checkpoint_dir() -> Path:
    """Where trained models are cached: $VAE_UTILS_CHECKPOINTS, else <data dir>/checkpoints."""
    env = os.environ.get("VAE_UTILS_CHECKPOINTS")
    return Path(env).expanduser() if env else data_dir() / "checkpoints"


def save_checkpoint(path, model: VAE, train_config: TrainConfig | None = None,
                    history: History | None = None) -> Path:
    """Save weights, both configs and the history; atomic (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": 1,
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict() if train_config else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": asdict(history) if history else None,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _differences(saved: dict | None, wanted: dict) -> list[str]:
    saved = saved or {}
    return [f"{k}: saved {saved.get(k)!r}, asked {v!r}" for k, v in wanted.items() if saved.get(k) != v]


def load_checkpoint(path, model_config: VAEConfig | None = None,
                    train_config: TrainConfig | None = None, device=None) -> tuple[VAE, History]:
    """Load a checkpoint; if configs are given, refuse one saved with different ones."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointMismatch(f"{path} is not a readable vae_utils checkpoint ({e}); "
                                 "delete it and train again") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CheckpointMismatch(f"{path} is not a vae_utils checkpoint (format 1); delete it and train again")
    diffs = []
    if model_config is not None:
        diffs += _differences(payload["model_config"], model_config.to_dict())
    if train_config is not None:
        saved_train = payload["train_config"]
        if saved_train is not None:  # a field added after the file was saved has its default's behaviour
            saved_train = {**TrainConfig().to_dict(), **saved_train}
        diffs += _differences(saved_train, train_config.to_dict())
    if diffs:
        raise CheckpointMismatch(
            f"{path} was saved with another configuration:\n  " + "\n  ".join(diffs)
            + "\nPass the configuration it was saved with, or delete the file to train anew.")
    saved = payload["model_config"]
    model = VAE(VAEConfig(**{**saved, "hidden": tuple(saved["hidden"])}))
    model.load_state_dict(payload["state_dict"])
    h = payload["history"] or {}
    history = History(**{**h, "snapshots": {int(k): v for k, v in h.get("snapshots", {}).items()}})
    return model.to(device or "cpu").eval(), history


def train_or_load(name: str, model_config: VAEConfig, train_config: TrainConfig, data: Split,
                  test: Split | None = None, device=None, progress: bool = True) -> tuple[VAE, History]:
    """Load `name` from the checkpoint cache if it was trained with these configs, else train
    it (seeded by train_config.seed) and save it there. Notebooks share models this way."""
    path = checkpoint_dir() / f"{name}.pt"
    device = device or data.x.device
    if path.exists():
        try:
            return load_checkpoint(path, model_config, train_config, device)
        except CheckpointMismatch as e:
            print(f"retraining {name}: {str(e).splitlines()[0]}")
    model = build(model_config, train_config.seed, device)
    history = train(model, data, train_config, test, progress)
    save_checkpoint(path, model, train_config, history)
    return model, history
