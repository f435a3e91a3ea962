"""Models: the paper's MLP encoder and decoders (Appendix C), in one configurable VAE.

    encoder  q(z|x) = N(z; mu(x), diag sigma^2(x))            Gaussian MLP, eq. 12
    decoder  p(x|z) = prod_i Bernoulli(x_i; y_i(z))             Bernoulli MLP, Appendix C.1
         or  p(x|z) = N(x; mu(z), diag sigma^2(z)), mu = sigmoid  Gaussian MLP, Appendix C.2 (the sigmoid: section 5)
    prior    p(z)   = N(z; 0, I)

The paper: tanh hidden layers, 500 units for MNIST and 200 for Frey Face, every parameter
drawn from N(0, 0.01), which we read as a standard deviation of 0.01 (as numpy's
normal(0, 0.01) takes it). `VAEConfig` changes any of these (ReLU, 400 units: the modern setting).

Each decoder class owns its distribution: `log_prob(x, z)` = log p(x|z), `mean(z)` = E[x|z],
`sample(z, generator)` draws x ~ p(x|z), and calling it returns its parameters as a
NamedTuple (`BernoulliParams(logits)` or `GaussianParams(mean, logvar)`). `VAE` delegates to
its decoder, so `VAE.decode(z)` always returns such a tuple. `build` makes a seeded VAE
without touching the caller's random state; `reconstruct` and `sample` make pictures.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

from .elbo import log_normal

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "elu": nn.ELU}


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers with `activation` between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class GaussianMLP(nn.Module):
    """h = act(W3 x + b3); mu = W4 h + b4; log sigma^2 = W5 h + b5   (eq. 12): returns (mu, logvar).

    Both heads come out of one final Linear layer (one matmul), split in half. The encoder.
    """

    def __init__(self, in_dim, hidden, out_dim, activation="tanh"):
        super().__init__()
        self.net = mlp([in_dim, *hidden, 2 * out_dim], activation)

    def forward(self, x):
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar


class BernoulliParams(NamedTuple):
    """A Bernoulli decoder's output: y = sigmoid(logits) is the probability of each pixel."""

    logits: torch.Tensor


class GaussianParams(NamedTuple):
    """A Gaussian decoder's output: p(x|z) = N(x; mean, diag exp(logvar))."""

    mean: torch.Tensor
    logvar: torch.Tensor


class BernoulliDecoder(nn.Module):
    """p(x|z) = prod_i Bernoulli(x_i; y_i),  y = sigmoid(W2 tanh(W1 z + b1) + b2)   (Appendix C.1).

    The network computes logits; `log_prob` uses the numerically stable
    binary_cross_entropy_with_logits instead of sigmoid followed by log.
    """

    def __init__(self, in_dim, hidden, out_dim, activation="tanh"):
        super().__init__()
        self.net = mlp([in_dim, *hidden, out_dim], activation)

    def forward(self, z) -> BernoulliParams:
        return BernoulliParams(self.net(z))

    def log_prob(self, x, z):
        """log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i), for x (B, D), z (..., B, d): (..., B)."""
        logits = self.net(z)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def mean(self, z):
        """E[x|z] = y = sigmoid(logits): each pixel's probability of being 1."""
        return torch.sigmoid(self.net(z))

    def sample(self, z, generator=None):
        """x ~ p(x|z): x_i = 1 with probability y_i."""
        return torch.bernoulli(self.mean(z), generator=generator)


class GaussianDecoder(GaussianMLP):
    """p(x|z) = N(x; mu, diag sigma^2), mu = sigmoid(W4 h + b4), log sigma^2 = W5 h + b5.

    Appendix C.2 writes mu = W4 h + b4; section 5 adds the sigmoid for Frey Face ("the means
    were constrained to the interval (0, 1) using a sigmoidal activation function").

    The Gaussian MLP of the encoder, with its mean squashed into (0, 1) like the Frey Face pixels.
    """

    def _mean_logvar(self, z):
        """(mean, logvar) as a plain tuple: the mean squashed into (0, 1) by a sigmoid."""
        mu, logvar = self.net(z).chunk(2, dim=-1)
        return torch.sigmoid(mu), logvar

    def forward(self, z) -> GaussianParams:
        return GaussianParams(*self._mean_logvar(z))

    def log_prob(self, x, z):
        """log p(x|z) = log N(x; mu(z), diag sigma^2(z)), for x (B, D), z (..., B, d): (..., B)."""
        mean, logvar = self._mean_logvar(z)  # no NamedTuple, no Module call: the training hot path
        return log_normal(x, mean, logvar)

    def mean(self, z):
        """E[x|z] = mu(z)."""
        return self(z).mean

    def sample(self, z, generator=None):
        """x ~ p(x|z): x = mu + sigma * eps, eps ~ N(0, I)."""
        mean, logvar = self(z)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(0.5 * logvar) * eps


DECODERS = {"bernoulli": BernoulliDecoder, "gaussian": GaussianDecoder}


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
        def whole(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1

        for name in ("x_dim", "z_dim"):
            if not whole(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r}; use a whole number >= 1")
        if not (isinstance(self.hidden, (list, tuple)) and all(whole(h) for h in self.hidden)):
            raise ValueError(f"hidden={self.hidden!r}; use a tuple of layer widths >= 1, e.g. (500,)")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}; choose one of {list(ACTIVATIONS)}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder={self.decoder!r}; choose one of {list(DECODERS)}")
        if self.init not in ("paper", "default"):
            raise ValueError(f"init={self.init!r}; choose 'paper' or 'default'")

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}


class VAE(nn.Module):
    """An encoder q(z|x) and a decoder p(x|z) with a N(0, I) prior on z.

    Shapes: x is (B, D); z is (..., B, z_dim), any number of sample dimensions in front.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = self.config = config
        self.encoder = GaussianMLP(c.x_dim, c.hidden, c.z_dim, c.activation)
        self.decoder = DECODERS[c.decoder](c.z_dim, c.hidden[::-1], c.x_dim, c.activation)
        if c.init == "paper":
            for p in self.parameters():
                nn.init.normal_(p, 0.0, 0.01)  # "random sampling from N(0, 0.01)", section 5

    def encode(self, x):
        """(mu, logvar) of q(z|x), each (..., z_dim)."""
        return self.encoder(x)

    def decode(self, z):
        """The decoder's parameters, always a NamedTuple: BernoulliParams(logits) or GaussianParams(mean, logvar)."""
        return self.decoder(z)

    def log_likelihood(self, x, z):
        """log p(x|z) for x (B, D) and z (..., B, z_dim): shape (..., B). The training hot path."""
        return self.decoder.log_prob(x, z)

    def mean(self, z):
        """E[x|z]: pixel probabilities, or the Gaussian mean; for pictures."""
        return self.decoder.mean(z)

    def sample_x(self, z, generator=None):
        """x ~ p(x|z), one draw per row of z: shape (..., B, D)."""
        return self.decoder.sample(z, generator)

    def sample_prior(self, n: int, generator=None):
        """n codes z ~ p(z) = N(0, I): shape (n, z_dim), on the model's device and in its dtype.

        Drawn on the generator's device (the model's without one), then moved: a seeded CPU
        generator gives the same codes for a model on any device.
        """
        p = next(self.parameters())
        device = p.device if generator is None else generator.device
        return torch.randn(n, self.config.z_dim, generator=generator, dtype=p.dtype, device=device).to(p.device)


def build(config: VAEConfig, seed: int = 0, device=None) -> VAE:
    """A freshly initialised VAE on `device` (default: the CPU); the same seed gives the same parameters.

    The parameters are drawn on the CPU from torch's default generator seeded with `seed`,
    inside torch.random.fork_rng: the caller's random state is the same afterwards as
    before. They are those of `torch.manual_seed(seed); VAE(config)`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU generator only; fork_rng restores it
        model = VAE(config)
    return model.to(device or "cpu")


@torch.no_grad()
def reconstruct(model: VAE, x):
    """E[x|z] at z = mu(x), the encoder's mean: (N, D), what the model keeps of each x."""
    mu, _ = model.encode(x)
    return model.mean(mu)


@torch.no_grad()
def sample(model: VAE, n: int, seed: int = 0):
    """E[x|z] for n codes z ~ N(0, I): (N, D) pictures of what the model generates.

    The codes come from a CPU generator seeded with `seed`, so a model on any device shows
    the same pictures. E[x|z] rather than a draw x ~ p(x|z) (`VAE.sample_x`): a draw adds
    pixel noise that hides what z encodes.
    """
    return model.mean(model.sample_prior(n, torch.Generator().manual_seed(seed)))
