"""Shared fixtures: small models whose answers are known in closed form."""
import math
from pathlib import Path

import pytest
import torch

from vae_utils.elbo import log_normal

# The models here are small: one thread skips the cost of splitting tiny products across
# cores, and a busy neighbour on a shared CPU cannot stall it (benchmarks/threads.py).
torch.set_num_threads(1)


class ConjugateToy:
    """A model where everything is exact: p(z) = N(0, I), p(c|z) = N(c; z, I).

    The "observation" c is fixed, so log p(c) = log N(c; 0, 2I) and the posterior is
    N(c/2, I/2). The encoder returns a chosen (mu, logvar) for every datapoint, and
    E_q[log p(c|z)] = -d/2 log 2pi - 1/2 (|mu - c|^2 + sum sigma^2).
    """

    def __init__(self, c, mu, logvar):
        self.c, self.mu, self.logvar = c, mu, logvar

    def encode(self, x):
        b = x.shape[0]
        return self.mu.expand(b, -1), self.logvar.expand(b, -1)

    def log_likelihood(self, x, z):
        return log_normal(self.c, z, torch.zeros_like(z))

    def exact_log_px(self):
        d = self.c.numel()
        return -0.5 * (d * math.log(2 * math.pi * 2) + (self.c**2).sum().item() / 2)

    def exact_elbo(self):
        d = self.c.numel()
        rec = -0.5 * (d * math.log(2 * math.pi) + ((self.mu - self.c) ** 2).sum() + self.logvar.exp().sum())
        kl = -0.5 * (1 + self.logvar - self.mu**2 - self.logvar.exp()).sum()
        return (rec - kl).item()


@pytest.fixture
def toy():
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    mu = torch.tensor([0.2, -0.5, 0.0], dtype=torch.float64)
    logvar = torch.tensor([-0.3, 0.1, -1.0], dtype=torch.float64)
    return ConjugateToy(c, mu, logvar)


@pytest.fixture
def binary_data():
    """512 binary 20-pixel 'images' made of two prototypes with noise: easy to learn."""
    from vae_utils.data import Split

    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(2, 20, generator=g) > 0.5).float()
    idx = torch.randint(0, 2, (512,), generator=g)
    flip = (torch.rand(512, 20, generator=g) < 0.05).float()
    x = (protos[idx] + flip) % 2
    return Split(x, idx, (4, 5))


# Tests that use the same cached MNIST models: notebook 03 trains them, 04 and 07 and the browser
# tests of 03, 04 and 07 load them. They run in one process, in this order; everything else is
# spread over the other processes one module or notebook at a time (pytest-xdist's --dist loadgroup).
SHARED_MODELS = ("03_aevb_mnist.ipynb", "04_latent_manifold.ipynb", "07_autoencoders.ipynb",
                 "test_browser_03.py", "test_browser.py", "test_browser_07.py", "test_colab.py")
# A browser test of a notebook that trains its own models runs after that notebook, in its group.
AFTER_NOTEBOOK = {"test_browser_05.py": "05_marginal_likelihood.ipynb"}


def _is_browser_test(name: str) -> bool:
    return name.startswith("test_browser") or name == "test_colab.py"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Put the files of SHARED_MODELS first, in that order (their group is the longest, so it
    should start first), and the other real-browser tests after the rest: by then nbval has run
    the notebooks that cache the models they load (03 for 04's 2-D model), so Run All in a
    browser does not train them again. (Run alone, the browser tests still pass: the notebook
    then trains the model.)

    Then give every test an xdist group: its file (a notebook's cells must run in order in one
    kernel), "mnist-models" for the files of SHARED_MODELS, so that under `-n` they run in
    one process in the order above and none trains a model another is training, and the
    notebook's own group for a browser test in AFTER_NOTEBOOK."""
    name = lambda item: Path(str(item.fspath)).name
    order = {n: i for i, n in enumerate(SHARED_MODELS)}
    items.sort(key=lambda item: (name(item) not in order, _is_browser_test(name(item)), order.get(name(item), 0)))
    for item in items:
        n = name(item)
        group = "mnist-models" if n in SHARED_MODELS else AFTER_NOTEBOOK.get(n, n)
        item.add_marker(pytest.mark.xdist_group(group))
