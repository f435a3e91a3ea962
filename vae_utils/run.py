"""The state of a training run: what `train` continues from and what a checkpoint holds."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from .hmc import Chains
from .models import VAE


@dataclass
class History:
    """What a run recorded, against the number of training samples seen (the paper's x-axis).

    train: the step objective averaged over each epoch (the parameters move during it): the
    bound for AEVB (with kl_weight < 1, that objective instead), log p(x, z) for wake-sleep
    and MCEM (the bound without q's entropy: not comparable with AEVB's train curve),
    log p(x | z = mu(x~)) for an autoencoder. test: the bound on the test split after the
    epoch (nan without a test split, and for MCEM and autoencoders).
    snapshots: {training samples seen: state_dict}, taken at the first minibatch boundary at
    or after each requested count.
    """

    samples: list[int] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time since the start
    snapshots: dict[int, dict] = field(default_factory=dict)

    def snapshots_by_epoch(self) -> dict[int, dict]:
        """The snapshots taken at the end of an epoch, keyed by that epoch."""
        per_epoch = self.samples[0] // self.epoch[0]
        return {s // per_epoch: sd for s, sd in sorted(self.snapshots.items()) if s % per_epoch == 0}


@dataclass
class Run:
    """Everything needed to continue a run exactly: pass it back to `train`."""

    model: VAE
    optimizer: torch.optim.Optimizer
    config: object  # the TrainConfig it runs
    epoch: int = 0  # epochs done
    step: int = 0  # optimizer steps done
    samples: int = 0  # training samples seen
    history: History = field(default_factory=History)
    chains: object = None  # MCEM: one HMC chain per training datapoint

    def state_dict(self) -> dict:
        chains = None if self.chains is None else {f.name: getattr(self.chains, f.name) for f in fields(self.chains)}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "step": self.step, "samples": self.samples,
                "history": asdict(self.history), "chains": chains}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        fused = [g.get("fused") for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, f in zip(self.optimizer.param_groups, fused):  # this machine's choice, not the saver's
            group["fused"] = f
        self.epoch, self.step, self.samples = state["epoch"], state["step"], state["samples"]
        h = state["history"]
        self.history = History(**{**h, "snapshots": {int(k): v for k, v in h["snapshots"].items()}})
        if state["chains"] is not None:
            device = next(self.model.parameters()).device
            self.chains = Chains(**{k: v.to(device) for k, v in state["chains"].items()})


def make_optimizer(params, config):
    """Adagrad or Adam; fused (one kernel for the whole update) where this torch supports it
    for the parameters' device and dtype, decided here by a one-step probe, not at the first
    real step."""
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[config.optimizer]
    params = list(params)
    fused = _fused_works(cls, params[0].device, params[0].dtype)
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, **({"fused": True} if fused else {}))


_FUSED: dict = {}


def _fused_works(cls, device, dtype) -> bool:
    key = (cls, device.type, dtype)
    if key not in _FUSED:
        try:
            p = torch.zeros(2, device=device, dtype=dtype, requires_grad=True)
            opt = cls([p], lr=0.1, fused=True)
            p.grad = torch.ones_like(p)
            opt.step()
            _FUSED[key] = True
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            _FUSED[key] = False
    return _FUSED[key]
