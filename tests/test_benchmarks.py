"""The likelihood record (benchmarks/likelihood_record.py): its schedule and its compiled evaluation, on a toy model for seconds."""
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from vae_utils import train as T
from vae_utils.models import VAEConfig

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "likelihood_record.py"


@pytest.fixture
def record():
    spec = importlib.util.spec_from_file_location("likelihood_record", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _chunks(record, monkeypatch, data, warmup):
    """Run train_for for 1.5 s; return (kl_weight, lr) of every chunk it trained."""
    calls = []

    def spy(model, data, config, optimizer, **kw):
        calls.append((config.kl_weight, optimizer.param_groups[0]["lr"]))
        return T.train(model, data, config, optimizer=optimizer, **kw)

    monkeypatch.setattr(record, "train", spy)
    model = T.build(VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="tanh"))
    history = record.train_for(model, data, 1.5, seed=0, progress=False, warmup=warmup)
    assert history.epoch[-1] >= len(calls)
    return calls


def test_warmup_raises_the_kl_weight_from_zero_to_one_then_trains_the_bound(record, monkeypatch, binary_data):
    calls = _chunks(record, monkeypatch, binary_data, warmup=0.5)
    betas = [b for b, _ in calls]
    assert betas[0] < 0.05 and betas == sorted(betas) and betas[-1] == 1.0
    assert sum(0 < b < 1 for b in betas) >= 5  # a ramp, not a jump
    lrs = [lr for _, lr in calls]
    assert lrs[0] == record.LR and lrs == sorted(lrs, reverse=True)  # the step only decays
    assert lrs[-1] == pytest.approx(record.LR * record.SCHEDULE[-1][1])


def test_no_warmup_trains_the_bound_throughout(record, monkeypatch, binary_data):
    assert {b for b, _ in _chunks(record, monkeypatch, binary_data, warmup=0.0)} == {1.0}


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile on a CPU needs a C++ compiler (g++ or clang++)")
def test_compiled_likelihood_scores_as_the_model_does(record, binary_data):
    """--compile: the same draws through a compiled log p(x|z) give the same log p(x)."""
    from vae_utils.evaluate import log_likelihood, lower_bound

    model = T.build(VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="tanh")).eval()
    x = binary_data.x[:40]
    compiled = record.CompiledLikelihood(model)
    eager = log_likelihood(model, x, n_samples=300, seed=3)
    assert torch.allclose(log_likelihood(compiled, x, n_samples=300, seed=3), eager, atol=1e-4)
    assert lower_bound(compiled, x, seed=3) == pytest.approx(lower_bound(model, x, seed=3), abs=1e-4)
    assert not torch.allclose(log_likelihood(compiled, x, n_samples=300, seed=4), eager, atol=1e-4)
