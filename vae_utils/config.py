"""TrainConfig: everything that fixes a training run, each field checked when it is made.

A bad value raises a ValueError that names the field and says what to use instead, before
any training starts (an `eval_every=0` would otherwise be a ZeroDivisionError many minutes
in). Equal settings give equal configs and so equal cache keys: numbers are stored as floats
(1 and 1.0 alike) and sequences as tuples.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .elbo import ESTIMATORS

ALGORITHMS = ("AEVB", "wake-sleep", "MCEM", "autoencoder")  # Algorithm 1, the paper's two baselines (section 5),
# and the (denoising) autoencoder of notebook 07 (vae_utils.autoencoder)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a training run (and so, with the model and data, its result)."""

    epochs: int = 10
    batch_size: int = 100  # M in Algorithm 1; the paper uses 100
    n_samples: int = 1  # L, samples of eps per datapoint; the paper uses 1
    estimator: str = "B"  # "A" (eq. 6) or "B" (eq. 7)
    algorithm: str = "AEVB"  # or the paper's baselines: "wake-sleep", "MCEM"
    kl_weight: float = 1.0  # beta on the KL term: 1 is the bound; < 1 is not a bound; > 1 a looser one
    kl_warmup: float = 0.0  # beta rises from 0 to kl_weight over this fraction of the steps
    optimizer: str = "adagrad"  # "adagrad" (the paper) or "adam"
    lr: float = 0.02  # the paper picks Adagrad's step from {0.01, 0.02, 0.1}
    lr_steps: tuple[tuple[float, float], ...] = ()  # ((progress, factor), ...): see lr_at
    weight_decay: float = 0.0  # see paper_weight_decay
    corruption: float = 0.0  # autoencoder only: the fraction of pixels masked to 0 (a denoising autoencoder)
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations of the test bound
    snapshot_epochs: tuple[int, ...] = ()  # keep a copy of the weights after these epochs...
    snapshot_samples: tuple[int, ...] = ()  # ...and after these many training samples

    def __post_init__(self):
        _validate(self)
        # one form per value, so that equal configs give equal cache keys (1 and 1.0 alike)
        for name in ("kl_weight", "kl_warmup", "corruption", "lr", "weight_decay"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "lr_steps", tuple((float(p), float(f)) for p, f in self.lr_steps))
        for name in ("snapshot_epochs", "snapshot_samples"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict:
        return json_ready(asdict(self))


def json_ready(value):
    """Tuples to lists, recursively: the form a config takes in a checkpoint or a cache key."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def _whole(v, least: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _validate(c: TrainConfig) -> None:
    def need(ok, name, rule):
        if not ok:
            raise ValueError(f"TrainConfig {name}={getattr(c, name)!r}: {rule}")

    for name in ("epochs", "batch_size", "n_samples", "eval_every"):
        need(_whole(getattr(c, name), 1), name, "use a whole number >= 1")
    need(_whole(c.seed, 0), "seed", "use a whole number >= 0")
    need(c.estimator in ESTIMATORS, "estimator", f"choose one of {list(ESTIMATORS)}")
    need(c.algorithm in ALGORITHMS, "algorithm", f"choose one of {list(ALGORITHMS)}")
    need(c.optimizer in ("adagrad", "adam"), "optimizer", "choose 'adagrad' or 'adam'")
    need(_number(c.lr) and c.lr > 0, "lr", "use a step size > 0, e.g. 0.02 (Adagrad) or 1e-3 (Adam)")
    need(_number(c.weight_decay) and c.weight_decay >= 0, "weight_decay",
         "use 0, or paper_weight_decay(N) for the paper's prior")
    need(_number(c.kl_weight) and c.kl_weight >= 0, "kl_weight",
         "use 1 (the bound), or another weight beta >= 0 (below 1 not a bound; above 1 a looser bound)")
    need(_number(c.corruption) and 0 <= c.corruption < 1, "corruption",
         "use a fraction of pixels in [0, 1) to mask, e.g. 0.25; 0 is a plain autoencoder")
    need(c.corruption == 0 or c.algorithm == "autoencoder", "corruption",
         "only algorithm='autoencoder' uses it (a denoising autoencoder); leave it at 0.0")
    need(_number(c.kl_warmup) and 0 <= c.kl_warmup < 1, "kl_warmup", "use a fraction of the steps in [0, 1), e.g. 0.1")
    steps_ok = isinstance(c.lr_steps, (list, tuple)) and all(
        isinstance(s, (list, tuple)) and len(s) == 2 and all(map(_number, s)) and 0 < s[0] < 1 and s[1] > 0
        for s in c.lr_steps)
    need(steps_ok and [s[0] for s in c.lr_steps] == sorted({s[0] for s in c.lr_steps}), "lr_steps",
         "use ((progress, factor), ...) with increasing progress in (0, 1) and factors > 0, e.g. ((0.5, 0.1),)")
    for name in ("snapshot_epochs", "snapshot_samples"):
        v = getattr(c, name)
        need(isinstance(v, (list, tuple)) and all(_whole(e, 1) for e in v), name, "use a tuple of whole numbers >= 1")
    if c.algorithm != "AEVB":
        aevb_only = {"estimator": "B", "n_samples": 1, "kl_weight": 1.0, "kl_warmup": 0.0}
        for name, default in aevb_only.items():
            need(getattr(c, name) == default, name, f"only AEVB uses it; leave it at {default!r} for {c.algorithm}")
