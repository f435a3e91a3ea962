"""vae_utils: the helper package of the AEVB tutorial series.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv:1312.6114).

    core         data, models, elbo (objectives, estimators), config, train (Algorithm 1), run,
                 evaluate, importance, latent; download, io, checkpoints, cache (files and the
                 model cache)
    theory       linear_gaussian (a closed-form model), gradients (score-function vs pathwise
                 gradients, and the gradient variance of the SGVB estimators A and B)
    baselines    hmc, marginal (Appendix D), wake_sleep, mcem, compare (Figure 3)
    front end    plots, manifold, maps, png, widgets
    colab        installs the package on Colab without changing what Colab ships

The core never imports the front end. Importing this package does not import torch (so
`vae_utils.colab` runs before torch is installed).
"""
__version__ = "0.1.0"


def device():
    """The best available device (a torch.device): CUDA, else Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
