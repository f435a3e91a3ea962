"""What a trained encoder does with the data: its codes, and where they lie against the prior.

For a VAE with a 2-D (or any) latent space, notebook 04 asks how the codes of the data fill the
space the prior N(0, I) describes:

    encode_means             the mean and standard deviation of q(z|x) for each datapoint
    aggregate_log_density    the aggregate posterior q(z) = (1/N) sum_i q(z|x_i), exactly
    aggregate_kl             KL(q(z) || p(z)), the part of the bound's KL term that is not
                             information (Hoffman & Johnson 2016)
    prior_matched_codes      codes of the same widths whose aggregate posterior is the prior:
                             the control for every statistic above
    class_medoids, nearest_labels, neighbour_fractions   which class lives where
    pixel_entropy, best_match                            how blurry a decoded image is, and how
                                                         well it explains some real digit
    hole_fraction            how many points (e.g. samples) land where no code is near

Pure functions of arrays (numpy or torch in, numpy out), tested against closed forms; nothing
here draws (`maps` draws these quantities, `widgets` lets a reader move through them).
"""
from __future__ import annotations

import numpy as np
import torch

from .elbo import LOG_2PI, kl_to_standard_normal, log_standard_normal


@torch.no_grad()
def encode_means(model, x, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and standard deviations of q(z|x) for data x (N, D): two (N, J) arrays."""
    mus, stds = [], []
    for xb in torch.as_tensor(x).split(batch_size):
        mu, logvar = model.encode(xb.to(next(model.parameters()).device))
        mus.append(mu.cpu())
        stds.append(torch.exp(0.5 * logvar).cpu())
    return torch.cat(mus).numpy(), torch.cat(stds).numpy()


def prior_log_density(z) -> np.ndarray:
    """log N(z; 0, I) at points z (M, J): shape (M,)."""
    return log_standard_normal(torch.as_tensor(np.asarray(z, dtype=np.float64))).numpy()


def aggregate_log_density(z, mu, std, chunk: int = 1000) -> np.ndarray:
    """log q(z) at points z (M, J) of the aggregate posterior of N codes (mu, std: (N, J)):

        q(z) = (1/N) sum_i N(z; mu_i, diag std_i^2),

    the density of z drawn by picking a datapoint i at random and then z ~ q(z|x_i). Exact for
    the N codes given (a log-sum-exp over all of them, in float64); shape (M,).
    """
    z = torch.as_tensor(np.asarray(z, dtype=np.float64))
    mu = torch.as_tensor(np.asarray(mu, dtype=np.float64))
    prec = torch.as_tensor(np.asarray(std, dtype=np.float64) ** -2)   # 1 / sigma^2, (N, J)
    # log N(z; mu_i, diag sigma_i^2) = const_i - 1/2 sum_j (z_j^2 a_ij - 2 z_j mu_ij a_ij), a = 1/sigma^2,
    # with const_i = -1/2 sum_j (log 2 pi + log sigma_ij^2 + mu_ij^2 a_ij): two matrix products
    const = -0.5 * (LOG_2PI - torch.log(prec) + mu**2 * prec).sum(-1)  # (N,)
    weights = torch.cat([-0.5 * prec, mu * prec], dim=1).T             # (2J, N)
    out = []
    for zc in z.split(chunk):
        log_k = torch.cat([zc**2, zc], dim=1) @ weights + const        # (m, N)
        out.append(torch.logsumexp(log_k, dim=1) - np.log(len(mu)))
    return torch.cat(out).numpy()


def log_density_ratio(z, mu, std) -> np.ndarray:
    """log q(z) - log p(z): how much more (> 0) or less (< 0) often the codes land near z than
    the prior N(0, I) says. Shape (M,)."""
    return aggregate_log_density(z, mu, std) - prior_log_density(z)


def aggregate_kl(mu, std, seed: int = 0, n_draws: int | None = None) -> tuple[float, float]:
    """KL(q(z) || p(z)) of the aggregate posterior to the prior N(0, I), in nats, and its
    Monte Carlo standard error: one draw z_i ~ q(z|x_i) for each code (or for `n_draws` codes
    picked at random without replacement, which keeps the estimate unbiased), then the
    average of log q(z_i) - log p(z_i), q being the mixture of all N codes. Each z_i is scored under all N components, its own included, which
    biases the estimate up by at most about log(1 + q(z_i|x_i) / (N q(z_i))) per draw (small
    when N is large and the codes overlap).

    Hoffman & Johnson (2016, "ELBO surgery"): the average KL term of the bound splits as
        (1/N) sum_i KL(q(z|x_i) || p(z)) = I(i; z) + KL(q(z) || p(z)),
    the information the codes carry about which datapoint they came from (at most log N) plus
    this mismatch between the aggregate posterior and the prior.
    """
    mu, std = np.asarray(mu, dtype=np.float64), np.asarray(std, dtype=np.float64)
    g = np.random.default_rng(seed)
    pick = np.arange(len(mu)) if n_draws is None else np.sort(g.choice(len(mu), n_draws, replace=False))
    z = mu[pick] + std[pick] * g.standard_normal((len(pick), mu.shape[1]))
    d = aggregate_log_density(z, mu, std) - prior_log_density(z)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def gaussian_kl_per_code(mu, std) -> np.ndarray:
    """KL(N(mu_i, diag std_i^2) || N(0, I)) of each code, in nats (Appendix B): shape (N,)."""
    mu, std = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (mu, std))
    return kl_to_standard_normal(mu, 2 * torch.log(std)).numpy()


def prior_matched_codes(std, seed: int = 0) -> np.ndarray:
    """Means mu_i ~ N(0, diag(1 - std_i^2)), one per given std_i (each below 1): codes with
    the same widths whose aggregate posterior is the prior, since mu_i + std_i * eps ~ N(0, I).
    The control for a statistic of the aggregate posterior: what it gives when q(z) = p(z)."""
    std = np.asarray(std, dtype=np.float64)
    if (std >= 1).any():
        raise ValueError("every std must be below 1 (the prior's)")
    g = np.random.default_rng(seed)
    return np.sqrt(1 - std**2) * g.standard_normal(std.shape)


def class_medoids(mu, labels) -> dict:
    """{label: index of its medoid}: the code of that class with the least summed Euclidean
    distance to the other codes of the class. Unlike the class mean, it is always a real
    code, so it lies on the class's cluster even when the cluster is curved or split."""
    mu, labels = np.asarray(mu, dtype=np.float64), np.asarray(labels)
    out = {}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        d = np.linalg.norm(mu[idx, None] - mu[None, idx], axis=-1).sum(1)
        out[c.item() if hasattr(c, "item") else c] = int(idx[np.argmin(d)])
    return out


def pixel_entropy(images) -> np.ndarray:
    """Mean Bernoulli entropy per pixel of decoded images y in [0, 1] (N, ...), in nats:
    -(y log y + (1 - y) log(1 - y)), averaged over each image's pixels; shape (N,).
    0 for a crisp black-and-white image, log 2 = 0.693 for uniform grey: a measure of blur."""
    y = np.clip(np.asarray(images, dtype=np.float64).reshape(len(images), -1), 1e-12, 1 - 1e-12)
    return -(y * np.log(y) + (1 - y) * np.log1p(-y)).mean(1)


def nearest_labels(z, mu, labels, k: int = 10) -> np.ndarray:
    """The most common label among the k codes nearest to each point z (M, J): shape (M,)."""
    z, mu, labels = np.asarray(z, dtype=np.float64), np.asarray(mu, dtype=np.float64), np.asarray(labels)
    d = ((z[:, None] - mu[None]) ** 2).sum(-1)
    near = labels[np.argsort(d, axis=1)[:, :k]]
    return np.array([np.bincount(row).argmax() for row in near])


def neighbour_fractions(mu, labels, k: int = 10, n_queries: int | None = None, seed: int = 0) -> np.ndarray:
    """(C, C) matrix: row c is how the k nearest other codes of a class-c code split among the
    classes, averaged over the class-c codes (over `n_queries` codes drawn at random, if given).
    Rows sum to 1; the diagonal is each class's purity, the largest off-diagonal entry of a
    row names the class that crowds it most. Labels are 0, ..., C - 1."""
    mu, labels = np.asarray(mu, dtype=np.float64), np.asarray(labels)
    n_classes = int(labels.max()) + 1
    idx = np.arange(len(mu))
    if n_queries is not None and n_queries < len(mu):
        idx = np.sort(np.random.default_rng(seed).choice(len(mu), n_queries, replace=False))
    counts = np.zeros((n_classes, n_classes))
    for chunk in np.array_split(idx, max(1, len(idx) // 500)):
        d = ((mu[chunk, None] - mu[None]) ** 2).sum(-1)
        d[np.arange(len(chunk)), chunk] = np.inf                      # not itself
        near = labels[np.argpartition(d, k, axis=1)[:, :k]]
        np.add.at(counts, (np.repeat(labels[chunk], k), near.ravel()), 1)
    return counts / counts.sum(1, keepdims=True)


def best_match(images, reference, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """For each decoded image y (M, ...) in [0, 1]: the best reconstruction term any reference
    digit x (R, D) gets from it,

        s(y) = max over x of sum_d x_d log y_d + (1 - x_d) log(1 - y_d)   (nats),

    and the index of that x: two arrays of shape (M,). s is high when y looks like some real
    digit, low for a blend of two shapes or a stroke pattern no digit has. (With grey-level x
    this is minus a cross-entropy, the bound's reconstruction term on such data, not a
    normalised log-likelihood.)"""
    y = np.clip(np.asarray(images, dtype=np.float64).reshape(len(images), -1), 1e-6, 1 - 1e-6)
    x = torch.as_tensor(np.asarray(reference.cpu() if isinstance(reference, torch.Tensor) else reference,
                                   dtype=np.float64))
    scores, index = [], []
    for yc in torch.as_tensor(y).split(chunk):
        best = (x @ torch.log(yc).T + (1 - x) @ torch.log1p(-yc).T).max(0)   # over the (R, m) matrix's rows
        scores.append(best.values)
        index.append(best.indices)
    return torch.cat(scores).numpy(), torch.cat(index).numpy()


def best_match_log_likelihood(images, reference, chunk: int = 1000) -> np.ndarray:
    """s(y) of `best_match` alone: shape (M,)."""
    return best_match(images, reference, chunk)[0]


def stratified_difference(values, strata, ref_values, ref_strata) -> tuple[float, float]:
    """How much a group's values differ from a reference group's, stratum for stratum
    (e.g. prior draws against reconstructions, digit for digit), and its standard error:

        d = sum_c w_c (mean of the group's values in stratum c - mean of the reference's),

    w_c being the share of stratum c in the group. Unlike the raw difference of the two means,
    d does not move when the two groups hold the strata in different proportions (a 1 and a 2
    score differently; comparing draws that are mostly 1s with reconstructions that are not
    would credit the draws with what their digits are). Standard error: the square root of
    sum_c w_c^2 (s_c^2 / m_c + r_c^2 / n_c), with s_c, r_c the sample standard deviations in
    stratum c of the group and the reference and m_c, n_c their counts; a stratum holding a
    single value of the group borrows the group's pooled within-stratum variance. Every
    stratum of the group must hold at least two reference values.
    """
    values, strata = np.asarray(values, dtype=np.float64), np.asarray(strata)
    ref_values, ref_strata = np.asarray(ref_values, dtype=np.float64), np.asarray(ref_strata)
    cs, m = np.unique(strata, return_counts=True)
    n = np.array([(ref_strata == c).sum() for c in cs])
    if (n < 2).any():
        raise ValueError(f"strata {cs[n < 2].tolist()} hold fewer than 2 reference values: a difference "
                         "for them cannot be estimated; drop them from the group or add reference values")
    d = np.array([values[strata == c].mean() - ref_values[ref_strata == c].mean() for c in cs])
    s2 = np.array([values[strata == c].var(ddof=1) if k > 1 else np.nan for c, k in zip(cs, m)])
    if np.isnan(s2).any():
        several = m > 1
        if not several.any():
            raise ValueError("every stratum holds a single value of the group: no variance to estimate")
        s2[~several] = ((m[several] - 1) * s2[several]).sum() / (m[several] - 1).sum()  # pooled
    r2 = np.array([ref_values[ref_strata == c].var(ddof=1) for c in cs])
    w = m / m.sum()
    return float((w * d).sum()), float(np.sqrt((w**2 * (s2 / m + r2 / n)).sum()))


def hole_fraction(points, codes, quantile: float = 0.99) -> float:
    """The fraction of points (M, J) that land in a hole of the codes (N, J): farther from
    their nearest code than `quantile` of the codes are from their own nearest other code.

    If the points were drawn like the codes, about 1 - quantile of them (1%) would be that far
    (a code's nearest neighbour among N - 1 others, a point's among N: nearly the same law).
    Much more than that means the points' distribution puts mass where the codes leave space
    empty, such as a Gaussian fitted to codes that form separate clusters. Scale-free: the
    radius comes from the codes themselves.
    """
    from scipy.spatial import cKDTree

    codes = np.asarray(codes, dtype=np.float64)
    tree = cKDTree(codes)
    own = tree.query(codes, k=2)[0][:, 1]  # each code's nearest other code
    radius = np.quantile(own, quantile)
    return float((tree.query(np.asarray(points, dtype=np.float64), k=1)[0] > radius).mean())
