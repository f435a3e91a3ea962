"""Algorithm 1: learning, exact reproducibility, clear errors, atomic checkpoints, the cache."""
import pytest
import torch

from vae_utils import device, elbo
from vae_utils.data import Split
from vae_utils.models import VAEConfig
from vae_utils import train as T

SMALL = VAEConfig(x_dim=20, z_dim=2, hidden=(16,), activation="tanh")


def _config(**kw):
    return T.TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 0.05, **kw})


def test_device_is_a_torch_device():
    assert isinstance(device(), torch.device)


def test_training_raises_the_bound_and_records_history(binary_data):
    model = T.build(SMALL, seed=0)
    h = T.train(model, binary_data, _config(epochs=8, snapshot_epochs=(1, 8)), test=binary_data, progress=False)
    assert h.epoch == list(range(1, 9))
    assert h.samples == [512 * e for e in range(1, 9)]  # training samples evaluated
    assert h.test[-1] > h.test[0] + 1.0  # nats per datapoint improved
    assert sorted(h.snapshots) == [1, 8]
    assert not model.training


def test_same_seed_reproduces_a_run_exactly(binary_data):
    runs = []
    for _ in range(2):
        model = T.build(SMALL, seed=3)
        h = T.train(model, binary_data, _config(seed=3, optimizer="adam", lr=1e-2), progress=False)
        runs.append((h.train, torch.cat([p.flatten() for p in model.parameters()])))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    other = T.build(SMALL, seed=4)
    h = T.train(other, binary_data, _config(seed=4, optimizer="adam", lr=1e-2), progress=False)
    assert h.train != runs[0][0]


def test_training_can_be_continued(binary_data):
    model = T.build(SMALL)
    h = T.train(model, binary_data, _config(epochs=2), progress=False)
    h = T.train(model, binary_data, _config(epochs=2), progress=False, history=h)
    assert h.epoch == [1, 2, 3, 4] and h.samples[-1] == 4 * 512


def test_nan_is_caught_with_a_clear_message(binary_data):
    model = T.build(SMALL)
    with torch.no_grad():
        model.encoder.net[0].weight[0, 0] = float("nan")
    with pytest.raises(T.TrainingDiverged, match=r"NaN or infinite in epoch 1.*Lower the learning rate"):
        T.train(model, binary_data, _config(), progress=False)


@pytest.mark.parametrize("x, word", [(torch.rand(10, 7), r"shape \(10, 7\).*expects \(N, 20\)"),
                                     (torch.rand(10, 20) * 255, r"pixels in \[0, 1\].*x / 255"),
                                     (torch.full((10, 20), float("nan")), "NaN")])
def test_bad_data_are_refused_before_training(x, word):
    with pytest.raises(ValueError, match=word):
        T.train(T.build(SMALL), Split(x, None, (4, 5)), _config(), progress=False)


def test_checkpoint_round_trip(tmp_path, binary_data):
    model = T.build(SMALL)
    cfg = _config(epochs=1, snapshot_epochs=(1,))
    h = T.train(model, binary_data, cfg, progress=False)
    path = T.save_checkpoint(tmp_path / "m.pt", model, cfg, h)
    loaded, h2 = T.load_checkpoint(path, SMALL, cfg)
    x = binary_data.x[:5]
    torch.testing.assert_close(loaded.encode(x), model.encode(x))
    assert h2.train == h.train and set(h2.snapshots) == {1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_checkpoint_from_another_config_is_refused(tmp_path):
    path = T.save_checkpoint(tmp_path / "m.pt", T.build(SMALL), _config())
    with pytest.raises(T.CheckpointMismatch, match=r"(?s)z_dim: saved 2, asked 5.*delete the file"):
        T.load_checkpoint(path, VAEConfig(x_dim=20, z_dim=5, hidden=(16,)))
    with pytest.raises(T.CheckpointMismatch, match=r"lr: saved 0.05, asked 0.1"):
        T.load_checkpoint(path, SMALL, _config(lr=0.1))


def test_corrupt_checkpoint_gets_a_clear_error(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(T.CheckpointMismatch, match="not a readable vae_utils checkpoint"):
        T.load_checkpoint(path)


def test_failed_save_leaves_the_old_checkpoint_untouched(tmp_path, monkeypatch):
    path = T.save_checkpoint(tmp_path / "m.pt", T.build(SMALL), _config())
    before = path.read_bytes()

    def broken_save(obj, f):
        open(f, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        T.save_checkpoint(path, T.build(SMALL, seed=1), _config())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_train_or_load_trains_once_then_loads(tmp_path, monkeypatch, binary_data):
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path))
    m1, h1 = T.train_or_load("toy", SMALL, _config(), binary_data, progress=False)
    assert (tmp_path / "toy.pt").exists()
    monkeypatch.setattr(T, "train", lambda *a, **k: pytest.fail("trained again"))
    m2, h2 = T.train_or_load("toy", SMALL, _config(), binary_data, progress=False)
    assert h2.train == h1.train
    torch.testing.assert_close(m2.encode(binary_data.x), m1.encode(binary_data.x))


def test_paper_weight_decay_is_one_over_n():
    assert T.paper_weight_decay(60000) == pytest.approx(1 / 60000)


@pytest.mark.parametrize("bad", [{"estimator": "C"}, {"optimizer": "sgd"}, {"kl_weight": 1.5},
                                 {"kl_weight": -0.1}])
def test_bad_train_config_is_refused(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        T.TrainConfig(**bad)


def test_a_passed_optimizer_keeps_its_state_and_step_size(binary_data):
    model = T.build(SMALL)
    opt = T.make_optimizer(model.parameters(), _config(optimizer="adam", lr=1e-2))
    h = T.train(model, binary_data, _config(epochs=1), progress=False, optimizer=opt)
    T.train(model, binary_data, _config(epochs=1), progress=False, history=h, optimizer=opt)
    steps = 2 * (512 // 32)
    assert all(int(s["step"]) == steps for s in opt.state.values())  # moments carried over
    before = [p.detach().clone() for p in model.parameters()]
    for group in opt.param_groups:
        group["lr"] = 0.0  # the optimizer's step size rules, not config.lr
    T.train(model, binary_data, _config(epochs=1, lr=0.5), progress=False, optimizer=opt)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_optimizer_of_another_model_is_refused(binary_data):
    other = T.make_optimizer(T.build(SMALL).parameters(), _config())
    with pytest.raises(ValueError, match="does not hold this model's parameters"):
        T.train(T.build(SMALL), binary_data, _config(), progress=False, optimizer=other)


def test_kl_weight_below_one_trains_a_larger_objective(binary_data):
    """A KL warm-up (kl_weight = 0) optimises reconstruction alone: its recorded objective is
    above the bound of the same run at kl_weight = 1, and the KL it leaves is larger."""
    runs = {}
    for beta in (0.0, 1.0):
        model = T.build(SMALL)
        h = T.train(model, binary_data, _config(kl_weight=beta), progress=False)
        mu, logvar = model.encode(binary_data.x)
        runs[beta] = h.train[-1], elbo.kl_to_standard_normal(mu, logvar).mean().item()
    assert runs[0.0][0] > runs[1.0][0] and runs[0.0][1] > runs[1.0][1]


def test_checkpoint_saved_before_a_config_field_existed_loads_with_its_default(tmp_path):
    """A checkpoint written before TrainConfig had kl_weight was trained with the bound
    (kl_weight = 1): it matches the default config and is refused for another weight."""
    path = T.save_checkpoint(tmp_path / "m.pt", T.build(SMALL), _config())
    payload = torch.load(path, weights_only=True)
    del payload["train_config"]["kl_weight"]
    torch.save(payload, path)
    T.load_checkpoint(path, SMALL, _config())
    with pytest.raises(T.CheckpointMismatch, match="kl_weight: saved 1.0, asked 0.5"):
        T.load_checkpoint(path, SMALL, _config(kl_weight=0.5))
