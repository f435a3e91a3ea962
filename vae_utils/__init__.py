"""vae_utils: the helper package of the AEVB tutorial series.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv:1312.6114).

    core         data, models, elbo (objectives, estimators), train (Algorithm 1), evaluate
    theory       linear_gaussian (a closed-form model), gradients (score function vs pathwise)
    baselines    hmc, marginal (Appendix D), wake_sleep, mcem, compare (Figure 3)
    front end    plots, widgets

The core never imports plots or widgets.
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
