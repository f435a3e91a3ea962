"""Models: the paper's MLP encoder and decoders (Appendix C), in one configurable VAE.

    encoder  q(z|x) = N(z; mu(x), diag sigma^2(x))            Gaussian MLP, eq. 12
    decoder  p(x|z) = prod_i Bernoulli(x_i; y_i(z))             Bernoulli MLP, Appendix C.1
         or  p(x|z) = N(x; mu(z), diag sigma^2(z)), mu = sigmoid  Gaussian MLP, Appendix C.2
    prior    p(z)   = N(z; 0, I)

The paper: tanh hidden layers, 500 units for MNIST and 200 for Frey Face, every parameter
drawn from N(0, 0.01). `VAEConfig` changes any of these (ReLU, 400 units: the modern setting).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .elbo import log_normal

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "elu": nn.ELU}


@dataclass(frozen=True)
class VAEConfig:
    """Everything that fixes a model's shape; saved in checkpoints to catch mismatches."""

    x_dim: int = 784
    z_dim: int = 20
    hidden: tuple[int, ...] = (500,)
    activation: str = "tanh"
    decoder: str = "bernoulli"  # or "gaussian"
    init: str = "paper"  # N(0, 0.01) for every parameter; "default" keeps PyTorch's init

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}; choose one of {list(ACTIVATIONS)}")
        if self.decoder not in ("bernoulli", "gaussian"):
            raise ValueError(f"decoder={self.decoder!r}; choose 'bernoulli' or 'gaussian'")
        if self.init not in ("paper", "default"):
            raise ValueError(f"init={self.init!r}; choose 'paper' or 'default'")

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers with `activation` between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class GaussianMLP(nn.Module):
    """h = act(W3 x + b3); mu = W4 h + b4; log sigma^2 = W5 h + b5   (eq. 12).

    Both heads come out of one final Linear layer (one matmul), split in half.
    With `sigmoid_mean` the mean is squashed into (0, 1), as the Frey Face decoder does.
    """

    def __init__(self, in_dim, hidden, out_dim, activation="tanh", sigmoid_mean=False):
        super().__init__()
        self.net = mlp([in_dim, *hidden, 2 * out_dim], activation)
        self.sigmoid_mean = sigmoid_mean

    def forward(self, x):
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return (torch.sigmoid(mu) if self.sigmoid_mean else mu), logvar


class BernoulliMLP(nn.Module):
    """log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i),  y = sigmoid(W5 h + b5)  (C.1).

    The network returns logits; `log_prob` uses the numerically stable
    binary_cross_entropy_with_logits instead of sigmoid followed by log.
    """

    def __init__(self, in_dim, hidden, out_dim, activation="tanh"):
        super().__init__()
        self.net = mlp([in_dim, *hidden, out_dim], activation)

    def forward(self, z):
        return self.net(z)

    @staticmethod
    def log_prob(x, logits):
        """log p(x|z) summed over pixels: one value per datapoint (and per sample)."""
        x = x.expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


class VAE(nn.Module):
    """An encoder q(z|x) and a decoder p(x|z) with a N(0, I) prior on z."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = self.config = config
        self.encoder = GaussianMLP(c.x_dim, c.hidden, c.z_dim, c.activation)
        if c.decoder == "bernoulli":
            self.decoder = BernoulliMLP(c.z_dim, c.hidden[::-1], c.x_dim, c.activation)
        else:
            self.decoder = GaussianMLP(c.z_dim, c.hidden[::-1], c.x_dim, c.activation, sigmoid_mean=True)
        if c.init == "paper":
            for p in self.parameters():
                nn.init.normal_(p, 0.0, 0.01)  # "random sampling from N(0, 0.01)", section 5

    def encode(self, x):
        """(mu, logvar) of q(z|x), each (..., z_dim)."""
        return self.encoder(x)

    def decode(self, z):
        """The decoder's output: Bernoulli logits, or the Gaussian's (mean, logvar)."""
        return self.decoder(z)

    def mean(self, z):
        """E[x|z]: pixel probabilities, or the Gaussian mean; for pictures."""
        out = self.decoder(z)
        return torch.sigmoid(out) if self.config.decoder == "bernoulli" else out[0]

    def log_likelihood(self, x, z):
        """log p(x|z) for x (B, D) and z (..., B, z_dim): shape (..., B)."""
        if self.config.decoder == "bernoulli":
            return BernoulliMLP.log_prob(x, self.decoder(z))
        mu, logvar = self.decoder(z)
        return log_normal(x, mu, logvar)
