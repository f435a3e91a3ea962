"""The likelihood record (benchmarks/likelihood_record.py): its plan, schedule and compiled
evaluation, on a toy model, with a fake clock (no test depends on elapsed time)."""
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from vae_utils import train as T
from vae_utils.models import VAEConfig

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "likelihood_record.py"
SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="tanh")


@pytest.fixture
def record():
    spec = importlib.util.spec_from_file_location("likelihood_record", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeClock:
    """A clock that reads the given times in turn: what the script measures is then certain."""

    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_plan_epochs_fits_whole_epochs_in_the_budget(record):
    assert record.plan_epochs(100.0, 7.0) == 14
    assert record.plan_epochs(5.0, 7.0) == 1  # at least one


def test_train_for_times_one_epoch_then_trains_as_many_as_fit(record, binary_data):
    # the probe epoch "takes" 2 s; 9 s of budget leave 7 s: 3 epochs
    model = T.build(SMALL)
    run = record.train_for(model, binary_data, 9.0, seed=0, progress=False, clock=FakeClock(0.0, 2.0))
    assert run.epoch == 3 and run.config.epochs == 3
    assert run.config.lr_steps == record.LR_STEPS and run.config.optimizer == "adam"
    assert run.history.epoch == [3]  # the test bound is not evaluated during training


def test_the_record_schedule_decays_the_step_and_warms_up_the_kl(record):
    config = record.record_config(epochs=100, seed=0, warmup=0.2)
    lrs = [T.lr_at(p, config) for p in (0.0, 0.39, 0.4, 0.64, 0.65, 0.85, 0.99)]
    assert lrs == pytest.approx([1e-3, 1e-3, 3e-4, 3e-4, 1e-4, 3e-5, 3e-5])
    betas = [T.kl_weight_at(p, config) for p in (0.0, 0.1, 0.2, 0.5)]
    assert betas == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert T.kl_weight_at(0.0, record.record_config(epochs=100, seed=0)) == 1.0  # no warm-up by default


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile on a CPU needs a C++ compiler (g++ or clang++)")
def test_compiled_likelihood_scores_as_the_model_does(record, binary_data):
    """--compile: the same draws through a compiled log p(x|z) give the same log p(x)."""
    from vae_utils.evaluate import log_likelihood, lower_bound

    model = T.build(SMALL).eval()
    x = binary_data.x[:40]
    compiled = record.CompiledLikelihood(model)
    eager = log_likelihood(model, x, n_samples=300, seed=3)
    assert torch.allclose(log_likelihood(compiled, x, n_samples=300, seed=3), eager, atol=1e-4)
    assert lower_bound(compiled, x, seed=3) == pytest.approx(lower_bound(model, x, seed=3), abs=1e-4)
    assert not torch.allclose(log_likelihood(compiled, x, n_samples=300, seed=4), eager, atol=1e-4)


def test_widget_redraw_benchmark_runs_and_reports_every_control():
    spec = importlib.util.spec_from_file_location("widget_redraw", SCRIPT.with_name("widget_redraw.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    worst = module.main(["--moves", "2", "--rounds", "1"])
    explorers = {"units_unit_z20", "units_least_kl_unit_z20", "units_digit_z20", "units_unit_z200",
                 "units_least_kl_unit_z200", "units_digit_z200", "units_back_to_mu_z20", "units_back_to_mu_z200",
                 "training_epoch", "digit_pad",
                 "digit_rows", "digit_digit", "k_K", "k_digit", "beta_beta"}
    assert set(worst) == {"z1", "t", "epoch"} | explorers and all(ms > 0 for ms in worst.values())
    ticks = iter([0.0, 0.5])  # a fake clock: two moves in 0.5 s are 250 ms each
    assert module.mean_ms(lambda v: None, [1, 2], clock=lambda: next(ticks)) == 250.0


def test_threads_benchmark_runs_and_leaves_torch_threads_as_they_were():
    spec = importlib.util.spec_from_file_location("threads", SCRIPT.with_name("threads.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = torch.get_num_threads()
    result = module.main(["--steps", "2", "--rounds", "1", "--busy", "0"])
    cores = torch.get_num_threads()
    assert set(result) == {f"{load}_{m}_{t}" for load in ("quiet", "busy") for m in ("mnist", "frey") for t in {1, cores}}
    assert torch.get_num_threads() == before
    ticks = iter([0.0, 0.3])  # a fake clock: 3 steps in 0.3 s are 100 ms each
    config, shape = module.MODELS["frey"]
    assert module.ms_per_step(config, shape, 1, steps=3, clock=lambda: next(ticks)) == pytest.approx(100.0)
