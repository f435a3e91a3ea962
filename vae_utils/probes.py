"""How useful a representation is, measured: classifiers trained on a few labelled examples.

Notebook 07 asks what an autoencoder's or a VAE's code is worth to a task it never saw: the
labels. A representation f(x) (raw pixels, PCA, an autoencoder's code, a VAE's posterior mean
mu or a sampled z) is fitted on the unlabelled training images; then a classifier is trained
on f(x) of n labelled images and tested on the 10,000 test images:

    balanced_indices    n labelled rows, n / C of each of the C classes, drawn at random
    labelled_rows       the labelled set of (size, draw): the same for every representation
    rescale             one centre and ONE scale for every dimension, from the training set
    pca                 the linear baseline with as many dimensions as a code
    probe_accuracies    test accuracy of a linear probe or k-NN, per size and per draw
    paired_margin       mean and sd over draws of the difference between two representations

Comparisons are PAIRED: for a given (size, draw) every representation is trained on the same
labelled images, so "VAE mu minus pixels" has a value per draw, and its sd measures how much
the margin, not each accuracy, depends on which images were labelled.
"""
from __future__ import annotations

import numpy as np

SIZES = (100, 600, 1000, 3000)


def _numpy(a) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def balanced_indices(labels, n: int, seed) -> np.ndarray:
    """n distinct row indices of `labels`, n // C of each of the C classes present, sorted.

    Each class's rows are drawn without replacement by numpy's default_rng(seed); `seed` is an
    int or a sequence of ints (default_rng hashes it through a SeedSequence). Balanced sets take
    the class frequencies out of the comparison: 100 labels drawn at random would give some
    digits fewer than 10 examples and others more, a different mix on every draw.
    """
    labels = _numpy(labels).ravel()
    classes = np.unique(labels)
    if n % len(classes):
        raise ValueError(f"n={n} is not a multiple of the {len(classes)} classes present: choose n "
                         f"as a multiple of {len(classes)} (e.g. {len(classes) * max(1, n // len(classes))})")
    per, rng = n // len(classes), np.random.default_rng(seed)
    rows = []
    for c in classes:
        where = np.flatnonzero(labels == c)
        if len(where) < per:
            raise ValueError(f"class {c} has {len(where)} rows, fewer than the {per} = n / "
                             f"{len(classes)} a balanced set needs: lower n to at most "
                             f"{len(where) * len(classes)}, or label more rows of class {c}")
        rows.append(rng.choice(where, per, replace=False))
    return np.sort(np.concatenate(rows))


def labelled_rows(train_labels, size: int, draw: int, seed: int = 0) -> np.ndarray:
    """The labelled training rows of (size, draw): balanced_indices with the seed (seed, size,
    draw). They depend on the labels and these three numbers only, never on the features, so
    every representation of the same images is trained on the same labelled images."""
    return balanced_indices(train_labels, size, (seed, size, draw))


def _centre_scale(train: np.ndarray) -> tuple[np.ndarray, float]:
    """The training features' mean m (D,) and s = sqrt((1/D) sum_d Var(f_d)), in float64.

    (1/D) sum_d Var(f_d) = (1/(N D)) sum_{n,d} (f_nd - m_d)^2, summed a block of rows at a time:
    no float64 copy of all N x D features (on MNIST's 60,000 x 784 pixels, 0.3 s, not 3 s).
    """
    if train.ndim != 2 or not len(train):
        raise ValueError(f"features of shape {train.shape}: pass an (N, D) array, one row per "
                         "image (reshape a single feature to (N, 1))")
    m = train.mean(0, dtype=np.float64)
    sq = sum(float(((block - m) ** 2).sum()) for block in np.array_split(train, max(1, len(train) // 5000)))
    s = np.sqrt(sq / train.size)
    if not s > 0:
        raise ValueError("every dimension of the training features is constant (mean variance 0): "
                         "there is nothing to classify with")
    return m, s


def rescale(train_feats, *others) -> tuple[np.ndarray, ...]:
    """(a - m) / s for a = train_feats and each of `others`, as float64 arrays (a tuple).

    m is the training features' mean and s ONE number, the square root of their mean
    per-dimension variance: afterwards the training features have mean 0 and
    (1/D) sum_d Var(f_d) = 1. Not StandardScaler's s_d per dimension: that would blow a VAE's
    switched-off latent units (mu_d nearly constant: what varies is noise) and MNIST's
    near-constant border pixels up to unit variance. One scale keeps each representation's own
    geometry (k-NN distances are the original ones divided by s) and puts every representation
    on one scale for the probe's L2 penalty (which still weighs 784 pixel weights against 20
    code weights: the same C is not the same prior for both). Pass the features of the whole UNLABELLED training set (PCA and the
    models were fitted on it), not those of the labelled subset.
    """
    train = _numpy(train_feats)
    m, s = _centre_scale(train)
    return tuple((_numpy(a) - m) / s for a in (train, *others))


def pca(train_x, dim: int, seed: int = 0):
    """A sklearn PCA with `dim` components fitted on the (unlabelled) training images: the best
    linear code of that size, in squared reconstruction error. `.transform(x)` gives the codes
    (projections on the top `dim` principal directions, centred on the training mean)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=dim, random_state=seed).fit(_numpy(train_x))


def _classifier(kind: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    if kind == "linear":
        # multinomial logistic regression (sklearn's loss for > 2 classes), L2 penalty, C = 1.
        # On 3,000 rescaled MNIST pixels lbfgs meets its tolerance after 89 to 107 iterations:
        # the default max_iter=100 stops some fits early (a ConvergenceWarning)
        return LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)
    if kind == "knn":
        return KNeighborsClassifier(n_neighbors=5)  # sklearn's default k, Euclidean distance
    raise ValueError(f"classifier={kind!r}; choose 'linear' or 'knn'")


def probe_accuracies(train_feats, train_labels, test_feats, test_labels, sizes=SIZES,
                     draws: int = 5, seed: int = 0, classifier: str = "linear") -> dict[int, np.ndarray]:
    """{size: test accuracy of each draw, shape (draws,)} of a classifier trained on `size`
    labelled training rows, the rows of `labelled_rows(train_labels, size, draw, seed)`.

    train_feats: the representation of the WHOLE training set (N, D), whose statistics fix
    `rescale`; test_feats: of the test set. classifier: "linear", multinomial logistic
    regression (a linear probe: is the class a linear function of the code?), or "knn",
    5 nearest neighbours (is the class a local property of the code's geometry?).
    BLAS and OpenMP run one thread here: the products are small, and on a shared 2-core CPU
    two threads made the logistic regression on 3,000 x 784 pixels about 8 times slower
    (11 to 14 s a fit, against 1.3 to 1.6 s), and k-NN no faster (2.1 to 2.4 s, against 1.5
    to 1.7 s).
    """
    from threadpoolctl import threadpool_limits

    _classifier(classifier)  # a bad name fails before any work
    train, y, y_test = _numpy(train_feats), _numpy(train_labels).ravel(), _numpy(test_labels).ravel()
    m, s = _centre_scale(train)  # rescale's statistics; only the labelled rows are rescaled
    test = (_numpy(test_feats) - m) / s
    if len(y) != len(train) or len(y_test) != len(test):
        raise ValueError(f"{len(train)} training and {len(test)} test feature rows, but "
                         f"{len(y)} and {len(y_test)} labels: pass one label per row")
    out = {}
    with threadpool_limits(limits=1):
        for size in sizes:
            accs = []
            for draw in range(draws):
                rows = labelled_rows(y, size, draw, seed)
                clf = _classifier(classifier).fit((train[rows] - m) / s, y[rows])
                accs.append(np.mean(clf.predict(test) == y_test))
            out[size] = np.array(accs)
    return out


def paired_margin(a, b) -> tuple[float, float]:
    """Mean and sd (ddof=1) over draws of a - b, the per-draw accuracies of two representations
    on the SAME labelled sets. Pairing removes the luck of the draw that both share: the sd of
    the difference is smaller than the sds of a and b when they go up and down together."""
    a, b = _numpy(a).astype(np.float64), _numpy(b).astype(np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a and b have shapes {a.shape} and {b.shape}: pass two 1-D arrays of "
                         "the same draws (at least 2), e.g. accs_a[size] and accs_b[size]")
    d = a - b
    return float(d.mean()), float(d.std(ddof=1))
