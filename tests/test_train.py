"""Algorithm 1 and the one training loop: learning, exact reproducibility and continuation,
schedules, clear errors, and the model cache."""
import dataclasses

import pytest
import torch

from vae_utils import device, elbo
from vae_utils import run as R
from vae_utils.config import ALGORITHMS
from vae_utils import train as T
from vae_utils.data import Split
from vae_utils.models import VAEConfig, build

SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="tanh")


def _config(**kw):
    return T.TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 0.05, **kw})


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_device_is_a_torch_device():
    assert isinstance(device(), torch.device)


def test_training_raises_the_bound_and_records_history(binary_data):
    model = build(SMALL, seed=0)
    run = T.train(model, binary_data, _config(epochs=8, snapshot_epochs=(1, 8)), test=binary_data, progress=False)
    h = run.history
    assert h.epoch == list(range(1, 9))
    assert h.samples == [512 * e for e in range(1, 9)]  # training samples seen
    assert h.test[-1] > h.test[0] + 1.0  # nats per datapoint improved
    assert sorted(h.snapshots) == [512, 8 * 512]
    torch.testing.assert_close(h.snapshots[8 * 512]["encoder.net.0.weight"], model.encoder.net[0].weight.detach())
    assert run.step == 8 * 16 and not model.training


def test_same_seed_reproduces_a_run_exactly_and_another_seed_does_not(binary_data):
    runs = []
    for seed in (3, 3, 4):
        model = build(SMALL, seed=seed)
        run = T.train(model, binary_data, _config(seed=seed, optimizer="adam", lr=1e-2), progress=False)
        runs.append((run.history.train, _params(model)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[2][0] != runs[0][0]


def test_every_algorithm_has_a_step():
    assert tuple(T.STEPS) == ALGORITHMS


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_plus_one_epochs_are_two_epochs_bit_for_bit(binary_data, algorithm):
    """Randomness per (seed, epoch) and the optimizer's state in the Run: a run continued
    gives what one uninterrupted run gives (the old loop replayed epoch 1's minibatches)."""
    cfg = _config(epochs=2, optimizer="adam", lr=1e-2, algorithm=algorithm)
    whole = build(SMALL, seed=1)
    T.train(whole, binary_data, cfg, progress=False)
    halves = build(SMALL, seed=1)
    run = T.train(halves, binary_data, cfg, progress=False, until=1)
    assert run.epoch == 1
    T.train(halves, binary_data, cfg, progress=False, run=run)
    assert torch.equal(_params(whole), _params(halves))
    # and through a checkpoint's state: a new Run loaded from the first half's state
    again = build(SMALL, seed=1)
    first = T.train(again, binary_data, cfg, progress=False, until=1)
    state = first.state_dict()
    fresh = build(SMALL, seed=99)
    resumed = T.start(fresh, binary_data, cfg)
    resumed.load_state_dict(state)
    T.train(fresh, binary_data, cfg, progress=False, run=resumed)
    assert torch.equal(_params(whole), _params(fresh))


def test_each_epoch_and_each_seed_draw_their_own_minibatches():
    def order(seed, epoch):
        return torch.randperm(100, generator=T.epoch_generator(seed, epoch, "cpu"))

    assert torch.equal(order(0, 1), order(0, 1))
    assert not torch.equal(order(0, 1), order(0, 2)) and not torch.equal(order(0, 1), order(1, 1))


def test_a_run_of_another_config_is_refused(binary_data):
    model = build(SMALL)
    run = T.train(model, binary_data, _config(epochs=1), progress=False)
    with pytest.raises(ValueError, match="another model or configuration"):
        T.train(model, binary_data, _config(epochs=2, lr=0.1), progress=False, run=run)


def test_callback_sees_every_epoch(binary_data):
    seen = []
    T.train(build(SMALL), binary_data, _config(epochs=3), progress=False, callback=lambda run: seen.append(run.epoch))
    assert seen == [1, 2, 3]


def test_snapshots_between_minibatches_are_taken_at_the_next_boundary(binary_data):
    run = T.train(build(SMALL), binary_data, _config(epochs=2, batch_size=128, snapshot_samples=(200, 512, 1024)),
                  progress=False)
    assert sorted(run.history.snapshots) == [256, 512, 1024]


def test_nan_is_caught_with_a_clear_message(binary_data):
    model = build(SMALL)
    with torch.no_grad():
        model.encoder.net[0].weight[0, 0] = float("nan")
    with pytest.raises(T.TrainingDiverged, match=r"NaN or infinite in epoch 1.*Lower the learning rate"):
        T.train(model, binary_data, _config(), progress=False)


@pytest.mark.parametrize("x, word", [(torch.rand(10, 7), r"shape \(10, 7\).*expects \(N, 20\)"),
                                     (torch.rand(10, 20) * 255, r"pixels in \[0, 1\].*x / 255"),
                                     (torch.full((10, 20), float("nan")), "NaN"),
                                     (torch.rand(10, 20, dtype=torch.float64), r"float64 on cpu.*float32 on cpu")])
def test_bad_data_are_refused_before_training(x, word):
    with pytest.raises(ValueError, match=word):
        T.train(build(SMALL), Split(x, None, (4, 5)), _config(), progress=False)


@pytest.mark.parametrize("bad", [{"estimator": "C"}, {"optimizer": "sgd"}, {"kl_weight": float("nan")},
                                 {"kl_weight": -0.1}, {"eval_every": 0}, {"batch_size": 0}, {"lr": -1.0},
                                 {"epochs": 0}, {"n_samples": 0}, {"kl_warmup": 1.0}, {"algorithm": "EM"},
                                 {"lr_steps": ((0.5, 0.1), (0.3, 0.01))}, {"snapshot_epochs": (0,)},
                                 {"weight_decay": -1e-3}, {"seed": -1}, {"lr_steps": (0.4, 0.3)},
                                 {"snapshot_epochs": 5}, {"epochs": True}, {"weight_decay": float("inf")},
                                 {"lr_steps": ((0.5, float("inf")),)},
                                 {"algorithm": "MCEM", "kl_weight": 0.5}, {"algorithm": "wake-sleep", "estimator": "A"}])
def test_bad_train_config_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match=rf"TrainConfig {list(bad)[-1]}="):
        T.TrainConfig(**bad)


def test_schedules_are_functions_of_progress():
    c = _config(lr=1.0, lr_steps=((0.5, 0.1), (0.75, 0.01)), kl_weight=0.8, kl_warmup=0.4)
    assert [T.lr_at(p, c) for p in (0.0, 0.49, 0.5, 0.74, 0.75, 1.0)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert [T.kl_weight_at(p, c) for p in (0.0, 0.2, 0.4, 0.9)] == pytest.approx([0.0, 0.4, 0.8, 0.8])
    assert T.kl_weight_at(0.0, _config()) == 1.0  # no warm-up: the bound from the first step


def test_the_loop_applies_the_schedules_at_every_step(binary_data, monkeypatch):
    betas = []
    real = T.ESTIMATORS["B"]
    monkeypatch.setitem(T.ESTIMATORS, "B", lambda *a: betas.append(a[-1]) or real(*a))
    run = T.train(build(SMALL), binary_data, _config(epochs=4, lr_steps=((0.5, 0.1),), kl_warmup=0.5), progress=False)
    steps = 4 * 16
    assert len(betas) == steps and betas[0] == 0.0 and betas == sorted(betas)
    assert betas[steps // 2 - 1] < 1 and betas[steps // 2:] == [1.0] * (steps // 2)
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)


def test_kl_weight_below_one_trains_a_larger_objective(binary_data):
    """kl_weight = 0 optimises reconstruction alone: its recorded objective is above the bound
    of the same run at kl_weight = 1, and the KL it leaves is larger."""
    runs = {}
    for beta in (0.0, 1.0):
        model = build(SMALL)
        run = T.train(model, binary_data, _config(epochs=10, kl_weight=beta), progress=False)
        mu, logvar = model.encode(binary_data.x)
        runs[beta] = run.history.train[-1], elbo.kl_to_standard_normal(mu, logvar).mean().item()
    assert runs[0.0][0] > runs[1.0][0] and runs[0.0][1] > runs[1.0][1]


def test_paper_weight_decay_is_the_gradient_of_the_prior_on_theta(binary_data):
    """Maximising mean_i L(x_i) + log N(theta; 0, I) / N is the same step as weight decay 1/N."""
    n = len(binary_data)
    x = binary_data.x[:64]
    models = [build(SMALL, seed=5), build(SMALL, seed=5)]
    with_decay = T.make_optimizer(models[0].parameters(), _config(weight_decay=T.paper_weight_decay(n)))
    with_prior = T.make_optimizer(models[1].parameters(), _config(weight_decay=0.0))
    for model, opt, prior in ((models[0], with_decay, 0.0), (models[1], with_prior, 1.0)):
        g = torch.Generator().manual_seed(0)
        log_prior = sum(-0.5 * (p ** 2).sum() for p in model.parameters())  # log N(theta; 0, I) + const
        loss = -(elbo.sgvb_b(model, x, 1, g).mean() + prior * log_prior / n)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(_params(models[0]), _params(models[1]), rtol=0, atol=1e-6)
    assert T.paper_weight_decay(60000) == pytest.approx(1 / 60000)


def test_fused_update_is_decided_when_the_optimizer_is_built():
    class NoFused(torch.optim.SGD):
        def __init__(self, params, lr, fused=None, **kw):
            if fused:
                raise RuntimeError("fused is not supported here")
            super().__init__(params, lr=lr, **kw)

    assert R._fused_works(NoFused, torch.device("cpu"), torch.float32) is False
    opt = T.make_optimizer(build(SMALL).parameters(), _config(optimizer="adam"))
    assert bool(opt.param_groups[0].get("fused")) == R._fused_works(torch.optim.Adam, torch.device("cpu"), torch.float32)


def test_loading_a_run_keeps_this_machines_fused_choice(binary_data):
    """Optimizer.load_state_dict copies the saver's `fused` flag: a checkpoint saved where the
    fused update works must still load where it does not."""
    cfg = _config(epochs=1, optimizer="adam")
    state = T.train(build(SMALL), binary_data, cfg, progress=False).state_dict()
    state["optimizer"]["param_groups"][0]["fused"] = "saver's choice"
    model = build(SMALL)
    run = T.start(model, binary_data, cfg)
    built = run.optimizer.param_groups[0].get("fused")
    run.load_state_dict(state)
    assert run.optimizer.param_groups[0].get("fused") == built


def test_until_must_lie_between_the_epochs_done_and_config_epochs(binary_data):
    model = build(SMALL)
    for until in (0 - 1, 4):
        with pytest.raises(ValueError, match=r"until=.*from 0 \(done\) to config.epochs=3"):
            T.train(model, binary_data, _config(), progress=False, until=until)
    run = T.train(model, binary_data, _config(), progress=False, until=2)
    with pytest.raises(ValueError, match=r"from 2 \(done\)"):
        T.train(model, binary_data, _config(), progress=False, run=run, until=1)


def test_a_test_split_that_does_not_fit_is_refused_before_training(binary_data):
    bad = Split(binary_data.x.double(), None, binary_data.image_shape)
    with pytest.raises(ValueError, match=r"float64 on cpu but the model is torch.float32"):
        T.train(build(SMALL), binary_data, _config(), test=bad, progress=False)


def test_mcem_records_no_test_bound(binary_data):
    """MCEM never trains the encoder: a test bound through it would mean nothing."""
    run = T.train(build(SMALL), binary_data, _config(epochs=1, algorithm="MCEM"), test=binary_data, progress=False)
    assert run.history.test[0] != run.history.test[0]  # nan


# -- the model cache -----------------------------------------------------------------------------

def test_train_or_load_trains_once_then_loads(tmp_path, monkeypatch, binary_data):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    m1, h1 = T.train_or_load("toy", SMALL, _config(), binary_data, progress=False)
    assert len(list(tmp_path.glob("toy-*.pt"))) == 1
    monkeypatch.setattr(T, "train", lambda *a, **k: pytest.fail("trained again"))
    m2, h2 = T.train_or_load("toy", SMALL, _config(), binary_data, progress=False)
    assert h2.train == h1.train and torch.equal(_params(m1), _params(m2))


def test_the_cache_never_mixes_up_algorithms_configs_or_data(tmp_path, monkeypatch, binary_data, capsys):
    """The old cache returned AEVB's weights for MCEM, and overwrote a model trained under
    another config of the same name."""
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    aevb, _ = T.train_or_load("probe", SMALL, _config(epochs=1), binary_data, progress=False)
    first = next(tmp_path.glob("probe-*.pt"))
    saved = first.read_bytes()
    mcem, _ = T.train_or_load("probe", SMALL, _config(epochs=1, algorithm="MCEM"), binary_data, progress=False)
    assert not torch.equal(_params(aevb), _params(mcem))
    assert 'train.algorithm: saved "AEVB", asked "MCEM"' in capsys.readouterr().out
    T.train_or_load("probe", SMALL, _config(epochs=1, lr=0.1), binary_data, progress=False)
    other = dataclasses.replace(binary_data, x=1 - binary_data.x)
    T.train_or_load("probe", SMALL, _config(epochs=1), other, progress=False)
    assert len(list(tmp_path.glob("probe-*.pt"))) == 4 and first.read_bytes() == saved


class _Restart(Exception):
    """Stands in for a kernel restart in the middle of training."""


@pytest.mark.parametrize("algorithm", ["AEVB", "MCEM"])
def test_a_run_cut_short_resumes_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch, binary_data,
                                                                  capsys, algorithm):
    cfg = _config(epochs=4, algorithm=algorithm, optimizer="adam", lr=1e-2, snapshot_epochs=(1, 3))
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path / "whole"))
    whole, h_whole = T.train_or_load("toy", SMALL, cfg, binary_data, progress=False)

    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path / "cut"))
    epoch_once = T.train_epoch

    def cut_in_epoch_4(run, data):
        if run.epoch == 3:
            raise _Restart
        return epoch_once(run, data)

    monkeypatch.setattr(T, "train_epoch", cut_in_epoch_4)
    with pytest.raises(_Restart):
        T.train_or_load("toy", SMALL, cfg, binary_data, progress=False, save_every=2)
    monkeypatch.setattr(T, "train_epoch", epoch_once)
    capsys.readouterr()
    resumed, h_resumed = T.train_or_load("toy", SMALL, cfg, binary_data, progress=False, save_every=2)
    assert "resuming the run saved after epoch 2 of 4" in capsys.readouterr().out
    assert torch.equal(_params(whole), _params(resumed))
    assert h_resumed.train == h_whole.train and h_resumed.epoch == [1, 2, 3, 4]
    assert sorted(h_resumed.snapshots) == sorted(h_whole.snapshots)
    assert len(list((tmp_path / "cut").glob("toy-*.pt"))) == 1  # one file, rewritten in place


def test_save_every_is_checked(tmp_path, monkeypatch, binary_data):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    with pytest.raises(ValueError, match="save_every=0"):
        T.train_or_load("toy", SMALL, _config(), binary_data, progress=False, save_every=0)


def test_snapshots_by_epoch(binary_data):
    run = T.train(build(SMALL), binary_data, _config(epochs=3, batch_size=128, snapshot_epochs=(1, 3),
                                                       snapshot_samples=(200,)), progress=False)
    assert sorted(run.history.snapshots) == [256, 512, 1536]
    assert sorted(run.history.snapshots_by_epoch()) == [1, 3]


def test_figure_3_s_algorithms_are_the_paper_s_three_and_notebook_05_loops_over_those_only():
    """Notebook 05 compares the paper's three algorithms (Figure 3); the autoencoder of notebook
    07 is a fourth step of the training loop, not one of the paper's."""
    from pathlib import Path

    from vae_utils import compare

    assert compare.ALGORITHMS == ("AEVB", "wake-sleep", "MCEM") == ALGORITHMS[:3]
    text = (Path(__file__).resolve().parents[1] / "notebooks" / "05_marginal_likelihood.ipynb").read_text()
    assert "compare.ALGORITHMS" in text and " ALGORITHMS" not in text.replace("compare.ALGORITHMS", "")
