"""The training loop: resume = uninterrupted, atomic checkpoints, NaN stop, task types."""
import json
import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lessons_lib import training, translation
from lessons_lib.data import make_loader


class Tiny(nn.Module):
    """Conv + dropout: the dropout makes the result depend on the torch RNG state."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    return TensorDataset(x, x.repeat(1, 3, 1, 1) * torch.tensor([1.0, 0.5, 0.2]).view(3, 1, 1))


def _run(ckpt_dir, epochs=3, init_seed=0, **kw):
    torch.manual_seed(init_seed)
    task = training.SupervisedTask(Tiny(), lr=1e-2)
    loader = make_loader(_data(), batch_size=8, seed=1)
    hist = training.fit(task, loader, epochs, ckpt_dir=ckpt_dir, progress=False, **kw)
    return task, hist


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    full, full_hist = _run(tmp_path / "a")

    def interrupt(epoch, step, logs):
        if (epoch, step) == (2, 3):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", on_step=interrupt)
    assert sorted(training.list_checkpoints(tmp_path / "b")) == [1]
    # A fresh process would build the model with other random weights: the checkpoint wins.
    resumed, resumed_hist = _run(tmp_path / "b", init_seed=123)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed_hist["train_loss"] == full_hist["train_loss"]
    assert resumed_hist.epochs == [1, 2, 3]
    # Without the restored RNG state the result differs (the test can fail).
    torch.manual_seed(0)
    other = training.SupervisedTask(Tiny(), lr=1e-2)
    training.fit(other, make_loader(_data(), batch_size=8, seed=2), 3, progress=False)
    assert not torch.equal(other.model.net[0].weight, full.model.net[0].weight)


def test_history_files_and_checkpoint_contents(tmp_path):
    task, hist = _run(tmp_path, epochs=2, val_loader=make_loader(_data(16, 5), 8, shuffle=False))
    rows = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["val_loss"] == pytest.approx(hist["val_loss"][1])
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:3] == ["epoch", "train_loss", "val_loss"] and len(csv_lines) == 3
    state = training.load_checkpoint(training.checkpoint_path(tmp_path, 2))
    assert state["epoch"] == 2 and set(state["rng"]) >= {"python", "numpy", "torch", "loader"}
    assert "model" in state["task_state"]["optimizers"]
    # Running again with the same epoch count has nothing left to do and changes nothing.
    again, hist2 = _run(tmp_path, epochs=2)
    assert hist2["train_loss"] == hist["train_loss"]
    # Asking for a fresh run in a used folder is refused, not overwritten.
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        _run(tmp_path, epochs=3, resume=False)
    with pytest.raises(FileExistsError, match="not overwritten"):
        training.atomic_save({"x": 1}, training.checkpoint_path(tmp_path, 1))


def test_checkpoint_write_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    _run(tmp_path, epochs=1)
    before = sorted(os.listdir(tmp_path))
    real_save = torch.save

    def broken_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _run(tmp_path, epochs=2)
    monkeypatch.setattr(torch, "save", real_save)
    after = sorted(os.listdir(tmp_path))
    assert after == before  # no epoch_0002.pt, no temporary file
    assert training.load_checkpoint(training.checkpoint_path(tmp_path, 1))["epoch"] == 1


class Diverging(training.SupervisedTask):
    def training_step(self, batch):
        x, y = batch
        loss = self.loss_fn(self.model(x), y)
        if self.position == (2, 3):
            loss = loss * float("nan")
        return {"loss": self.optimize(loss, "model")}


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    task = Diverging(Tiny(), lr=1e-2)
    loader = make_loader(_data(), batch_size=8, seed=1)
    with pytest.raises(training.TrainingDiverged, match=r"became nan at epoch 2, step 3"):
        training.fit(task, loader, 3, ckpt_dir=tmp_path, progress=False)
    assert sorted(training.list_checkpoints(tmp_path)) == [1]
    state = training.load_checkpoint(training.checkpoint_path(tmp_path, 1))
    assert all(torch.isfinite(v).all() for v in state["task_state"]["models"]["model"].values())
    # The weights were not stepped with the NaN loss either.
    assert all(torch.isfinite(p).all() for p in task.model.parameters())


def test_corrupted_checkpoint_and_missing_epoch_messages(tmp_path):
    task, _ = _run(tmp_path, epochs=2)
    with pytest.raises(training.CheckpointError, match=r"No checkpoint for epoch 7 .*saved epochs: 1, 2"):
        training.load_weights(task, tmp_path, 7)
    assert training.load_weights(task, tmp_path, 1) == 1
    path = training.checkpoint_path(tmp_path, 2)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(training.CheckpointError, match="damaged or truncated"):
        training.load_weights(task, tmp_path, 2)
    with pytest.raises(training.CheckpointError, match="damaged or truncated"):
        _run(tmp_path, epochs=3)  # resuming from it says so too
    with pytest.raises(training.CheckpointError, match="No checkpoints in"):
        training.load_weights(task, tmp_path / "nothing")


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, x, y):
        return self.net(torch.cat([x, y], 1))


class TinyVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)
        self.dec = nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, 1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.dec(z), mu, logvar


class TimeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x, t, cond):
        return self.net(torch.cat([x, cond], 1)) + t.float().view(-1, 1, 1, 1) / 1000


@pytest.mark.parametrize("kind", ["gan", "vae", "diffusion"])
def test_every_task_kind_trains_and_checkpoints(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "gan":
        task = translation.Pix2PixTask(Tiny(), Critic())
        keys = {"train_d_loss", "train_g_loss", "train_l1", "val_loss"}
    elif kind == "vae":
        task = training.VAETask(TinyVAE())
        keys = {"train_loss", "train_mse", "train_kl", "val_loss"}
    else:
        betas = torch.linspace(1e-4, 0.02, 100)
        task = training.DiffusionTask(TimeNet(), betas)
        keys = {"train_loss", "val_loss"}
    before = [p.detach().clone() for m in task.models.values() for p in m.parameters()]
    hist = training.fit(task, make_loader(_data(), 8), 2, val_loader=make_loader(_data(8, 3), 8, False),
                        ckpt_dir=tmp_path, progress=False)
    assert keys <= set(hist)
    after = [p for m in task.models.values() for p in m.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    state = training.load_checkpoint(training.checkpoint_path(tmp_path, 2))
    assert set(state["task_state"]["models"]) == set(task.models)
    assert set(state["task_state"]["optimizers"]) == set(task.optimizers)


def test_bad_arguments():
    task = training.SupervisedTask(Tiny())
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        training.fit(task, make_loader(_data(), 8), 0, progress=False)
    with pytest.raises(ValueError, match="yields no batches"):
        training.fit(task, make_loader(_data(4), 8, drop_last=True), 1, progress=False)
    wrong = translation.Pix2PixTask(Tiny(), Critic())
    with pytest.raises(training.CheckpointError, match="has no weights for"):
        wrong.load_state_dict(task.state_dict())
