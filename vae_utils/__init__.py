"""vae_utils: the helper package of the AEVB tutorial series.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv:1312.6114).
The core modules (data, models, elbo, train, evaluate) never import plots or widgets.
"""
import torch

__version__ = "0.1.0"


def device() -> torch.device:
    """The best available device: CUDA, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
