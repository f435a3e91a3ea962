"""The autoencoders that notebook 07 sets beside the VAE: the same MLPs, trained on reconstruction alone.

    autoencoder            maximise  log p(x | z = mu(x))                   a deterministic code
    denoising autoencoder  maximise  log p(x | z = mu(x~))                  x~: x with a random fraction
                                                                            of its pixels set to 0
    VAE, for comparison    maximise  E_q[log p(x|z)] - KL(q(z|x) || p(z))   eq. 10 of the paper

The model is a models.VAE, so all three share one architecture. The code is the encoder's mean
head mu(x). Its log-variance head gets no gradient and is never read. log p(x|z) is the
decoder's (for a Bernoulli decoder, minus the binary cross-entropy summed over pixels), so all
three objectives are in nats per digit. An autoencoder's objective is the VAE's
reconstruction term with the noise of z removed (sigma -> 0) and no KL term.

The paper's related work (section 4) recalls that the criterion of an unregularized
autoencoder maximises a lower bound on the mutual information between x and its code
(citing Vincent et al. 2010), and that this reconstruction criterion alone is not sufficient
for learning useful representations, for which denoising, contractive and sparse variants
were proposed (citing Bengio, Courville & Vincent 2013). Vincent et al. (2008) corrupt x by
masking: a fixed number of pixels, chosen at random, set to 0. Here each pixel is set to 0
independently with probability p, the same fraction on average.
"""
from __future__ import annotations

import torch


def masking_noise(x, p: float, generator=None):
    """x with each entry set to 0 independently with probability p, the others kept as they are.

    No rescaling of the kept pixels by 1/(1 - p), unlike dropout: the encoder sees digits with
    holes, not brighter digits.
    """
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p  # P(keep) = 1 - p
    return x * keep


def reconstruction(model, x, corruption: float = 0.0, generator=None):
    """log p(x | z = mu(x~)) for each row, in nats: shape (B,), where x~ = masking_noise(x, corruption).

    With corruption = 0 this is the plain autoencoder's objective. The decoder always scores
    the clean x: a denoising autoencoder learns to fill the holes in.
    """
    mu, _ = model.encode(masking_noise(x, corruption, generator))  # the code: the mean head only
    return model.log_likelihood(x, mu)


def step(model, opt, x, generator, corruption: float) -> torch.Tensor:
    """One gradient step on the minibatch's average reconstruction; returns that average (0-d)."""
    loss = -reconstruction(model, x, corruption, generator).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return -loss.detach()
