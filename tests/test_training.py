"""The training loop: resume = uninterrupted, atomic checkpoints, NaN stop, task types."""
import errno
import json
import os
import re

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lessons_lib import training, translation
from lessons_lib import validate as V
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
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1, got 0"):
        training.fit(task, make_loader(_data(), 8), 0, progress=False)
    with pytest.raises(ValueError, match="yields no batches"):
        training.fit(task, make_loader(_data(4), 8, drop_last=True), 1, progress=False)
    wrong = translation.Pix2PixTask(Tiny(), Critic())
    with pytest.raises(training.CheckpointError, match="has no weights for"):
        wrong.load_state_dict(task.state_dict())


# --------------------------------------------------------------------------- device-safe resume
@pytest.mark.filterwarnings("ignore:.*meta parameter")
def test_resume_on_another_device_keeps_rng_states_on_the_cpu(tmp_path, monkeypatch):
    """A checkpoint read for a GPU run used to put the RNG states on the GPU, where
    torch.set_rng_state, Generator.set_state and .numpy() refuse them. The 'meta' device
    stands in for the GPU: the weights go there, the RNG states stay on the CPU."""
    _run(tmp_path, epochs=2)
    saved = training.load_checkpoint(training.checkpoint_path(tmp_path, 2))
    torch.manual_seed(99)
    task = training.SupervisedTask(Tiny(), lr=1e-2)
    loader = make_loader(_data(), batch_size=8, seed=1)
    real_load, read_on = torch.load, []

    def spy(*a, map_location=None, **k):
        read_on.append(torch.device(map_location).type)
        return real_load(*a, map_location=map_location, **k)

    monkeypatch.setattr(torch, "load", spy)
    training.fit(task, loader, 2, ckpt_dir=tmp_path, device="meta", progress=False)
    assert read_on == ["cpu"]
    assert all(p.device.type == "meta" for p in task.model.parameters())
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    assert torch.equal(loader.generator.get_state(), saved["rng"]["loader"][0])


@pytest.mark.filterwarnings("ignore:.*meta parameter")
def test_cyclegan_image_pool_resumes_on_another_device(tmp_path):
    def cyclegan():
        torch.manual_seed(0)
        gens = [nn.Conv2d(3, 3, 3, padding=1) for _ in range(2)]
        discs = [nn.Conv2d(3, 1, 3, stride=2, padding=1) for _ in range(2)]
        return translation.CycleGANTask(*gens, *discs, pool_size=3)

    pairs = TensorDataset(torch.rand(8, 3, 8, 8) * 2 - 1, torch.rand(8, 3, 8, 8) * 2 - 1)
    first = cyclegan()
    training.fit(first, make_loader(pairs, 2, seed=0), 1, ckpt_dir=tmp_path, progress=False)
    assert len(first.pool_a) == 3  # full: the next query draws from the pool's generator
    task = cyclegan()
    training.fit(task, make_loader(pairs, 2, seed=0), 1, ckpt_dir=tmp_path, device="meta", progress=False)
    assert torch.equal(task.pool_a.generator.get_state(), first.pool_a.generator.get_state())
    assert torch.equal(torch.stack(task.pool_b.images), torch.stack(first.pool_b.images))
    out = task.pool_a.query(torch.zeros(4, 3, 8, 8, device="meta"))
    assert out.device.type == "meta" and out.shape == (4, 3, 8, 8)


# --------------------------------------------------------------------------- mixed precision
class Recording(Tiny):
    """Tiny that notes the dtype its forward computes in (bfloat16 under CPU autocast)."""

    dtypes: list = []

    def forward(self, x):
        out = super().forward(x)
        self.dtypes.append(out.dtype)
        return out


def _amp_run(ckpt_dir, epochs, init_seed=0):
    torch.manual_seed(init_seed)
    task = training.SupervisedTask(Recording(), lr=1e-2)
    loader = make_loader(_data(), batch_size=8, seed=1)
    training.fit(task, loader, epochs, ckpt_dir=ckpt_dir, device="cpu", amp=True, channels_last=True,
                 steps_per_epoch=1, progress=False)
    return task


def test_mixed_precision_step_and_resume_on_the_cpu(tmp_path):
    torch.manual_seed(0)
    before = Recording().state_dict()
    Recording.dtypes = []
    one = _amp_run(tmp_path / "a", 1)
    assert Recording.dtypes == [torch.bfloat16]  # the step ran under autocast
    after = one.model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)  # the step changed every weight
    assert all(v.dtype == torch.float32 for v in after.values())  # master weights stay float32
    assert one.model.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    saved = training.load_checkpoint(training.checkpoint_path(tmp_path / "a", 1))
    # Accelerate's bf16: no gradient scaler (bfloat16 has float32's range); the precision is recorded.
    assert saved["task_state"]["scaler"] is None and saved["accelerate"]["mixed_precision"] == "bf16"
    # A resumed amp run (other initial weights) ends where an uninterrupted one does.
    resumed = _amp_run(tmp_path / "a", 2, init_seed=5)
    straight = _amp_run(tmp_path / "b", 2)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


class SkipsSteps(training.SupervisedTask):
    """Updates on every other batch only (a GAN's critic schedule, say)."""

    def training_step(self, batch):
        if self.position[1] % 2:
            return super().training_step(batch)
        x, y = batch
        return {"loss": float(self.loss_fn(self.model(x), y).detach())}


def test_mixed_precision_with_a_step_that_updates_nothing():
    torch.manual_seed(0)
    task = SkipsSteps(Tiny(), lr=1e-2)
    before = task.model.net[0].weight.detach().clone()
    training.fit(task, make_loader(_data(), 8), 1, device="cpu", amp=True, progress=False)
    assert not torch.equal(before, task.model.net[0].weight)


# --------------------------------------------------------------------------- bounded checkpoints
class ScoredVal(training.SupervisedTask):
    """Validation losses set by hand, so the best epoch is known (epoch 2)."""

    VAL = {1: 0.5, 2: 0.1, 3: 0.9, 4: 0.8, 5: 0.7}

    def validation_step(self, batch):
        return {"loss": self.VAL[self.position[0]]}


def _scored_run(ckpt_dir, epochs, **kw):
    torch.manual_seed(0)
    task = ScoredVal(Tiny(), lr=1e-2)
    return task, training.fit(task, make_loader(_data(), 8, seed=1), epochs, ckpt_dir=ckpt_dir,
                              val_loader=make_loader(_data(8, 3), 8, False), **kw)


def test_checkpoints_keep_the_last_two_and_the_best(tmp_path, capsys, monkeypatch):
    _scored_run(tmp_path, 3, progress=False)
    assert sorted(training.list_checkpoints(tmp_path)) == [2, 3]
    # A full disk at epoch 4: nothing is deleted before a new checkpoint is whole.
    monkeypatch.setattr(torch, "save", _full_disk_writer(torch.save))
    with pytest.raises(V.WriteFailed):
        _scored_run(tmp_path, 5, progress=False)
    monkeypatch.undo()
    assert sorted(training.list_checkpoints(tmp_path)) == [2, 3]
    capsys.readouterr()
    _, hist = _scored_run(tmp_path, 5, progress=True)
    assert sorted(training.list_checkpoints(tmp_path)) == [2, 4, 5]  # 2 is the best by val_loss
    out = capsys.readouterr().out
    assert out.count("Checkpoint epoch_") == 1  # the size, once per run
    assert re.search(r"Checkpoint epoch_0004\.pt: [\d.]+ KB \(the last 2 and the best by val_loss are "
                     r"kept, older ones deleted\)", out)
    assert hist.epochs == [1, 2, 3, 4, 5]  # resume unchanged
    task = ScoredVal(Tiny())
    with pytest.raises(training.CheckpointError, match=r"No checkpoint for epoch 3 .*saved epochs: 2, 4, 5\. "
                                                       r"Training keeps only the most recent"):
        training.load_weights(task, tmp_path, 3)
    assert training.load_weights(task, tmp_path, 2) == 2


def test_keep_without_validation_and_keep_all(tmp_path):
    _run(tmp_path / "last", epochs=4, keep=1)
    assert sorted(training.list_checkpoints(tmp_path / "last")) == [4]
    _run(tmp_path / "all", epochs=4, keep=None)
    assert sorted(training.list_checkpoints(tmp_path / "all")) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="keep must be a whole number >= 1, got 0"):
        _run(tmp_path / "none", epochs=1, keep=0)
    assert not (tmp_path / "none").exists()


# --------------------------------------------------------------------------- a full disk in torch.save
class _FailingFile:
    """A file that takes a few writes, then reports a full disk (what torch.save meets)."""

    def __init__(self, fh, writes=2):
        self.fh, self.left = fh, writes

    def write(self, data):
        if self.left == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= 1
        return self.fh.write(data)

    def flush(self):
        self.fh.flush()


def _full_disk_writer(real_save):
    return lambda obj, f, *a, **k: real_save(obj, _FailingFile(f), *a, **k)


def test_a_full_disk_inside_torch_save_says_so(tmp_path, monkeypatch):
    _run(tmp_path, epochs=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_save = torch.save
    with open(tmp_path.parent / "probe.pt", "wb") as fh, pytest.raises(RuntimeError, match="inline_container"):
        real_save({"x": torch.rand(100)}, _FailingFile(fh))  # torch's own error for a full disk
    monkeypatch.setattr(torch, "save", _full_disk_writer(real_save))
    with pytest.raises(V.WriteFailed) as err:
        _run(tmp_path, epochs=2)
    msg = str(err.value)
    assert msg.startswith(f"Could not write '{training.checkpoint_path(tmp_path, 2)}': the disk is full")
    assert "Nothing was replaced: the earlier checkpoints (up to epoch_0001.pt) are whole" in msg
    assert "Free some disk space" in msg and "enforce fail" not in msg and "Errno" not in msg
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no partial file


def test_writing_converts_only_write_failures():
    with pytest.raises(V.WriteFailed, match="torch could not write the file out .*most often because the "
                                            "disk is full.* Free some disk space"):
        with V.writing("out/x.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    with pytest.raises(RuntimeError, match="^something else$"):
        with V.writing("out/x.pt"):
            raise RuntimeError("something else")


# --------------------------------------------------------------------------- rules at fit's boundary
def test_cuda_without_a_driver_and_unknown_devices(tmp_path):
    task = training.SupervisedTask(Tiny())
    loader = make_loader(_data(), 8)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError) as err:
            training.fit(task, loader, 1, ckpt_dir=tmp_path / "ck", device="cuda", progress=False)
        msg = str(err.value)
        assert "fit was asked to train on 'cuda', but no CUDA GPU is usable here" in msg
        assert "device='cpu'" in msg and "LESSONS_PROFILE=fast" in msg
        assert "Runtime > Change runtime type" in msg
    with pytest.raises(ValueError, match="fit's device must be 'cpu', 'cuda'.* got 'gpu'"):
        training.fit(task, loader, 1, ckpt_dir=tmp_path / "ck", device="gpu", progress=False)
    assert not (tmp_path / "ck").exists()


def test_batches_without_targets_are_named(tmp_path):
    images = torch.rand(16, 1, 8, 8)
    task = training.SupervisedTask(Tiny())
    # A bare tensor of 2 images used to be split into "x" and "y" without a word.
    with pytest.raises(ValueError, match=r"SupervisedTask trains on batches of \(inputs, targets\), but the "
                                         r"training loader yielded a single tensor of shape \(2, 1, 8, 8\)"):
        training.fit(task, make_loader(images, 2), 1, ckpt_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"yielded a list of 1 item\(s\) \(shape \(8, 1, 8, 8\)\)"):
        training.fit(task, make_loader(TensorDataset(images), 8), 1, ckpt_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="validation loader yielded a single tensor"):
        training.fit(task, make_loader(_data(), 8), 1, val_loader=make_loader(images, 8), progress=False)
    gan = translation.CycleGANTask(*(nn.Conv2d(3, 3, 1) for _ in range(2)), *(nn.Conv2d(3, 1, 1) for _ in range(2)))
    with pytest.raises(ValueError, match=r"CycleGANTask trains on batches of \(A images, B images\)"):
        training.fit(gan, make_loader(torch.rand(4, 3, 8, 8), 2), 1, progress=False)
    diffusion = training.DiffusionTask(TimeNet(), torch.linspace(1e-4, 0.02, 100))
    with pytest.raises(ValueError, match="DiffusionTask trains on batches of images alone or of"):
        training.fit(diffusion, make_loader(TensorDataset(images, images, images), 8), 1, progress=False)
    assert training.list_checkpoints(tmp_path) == {}


class WeightsBlowUp(training.SupervisedTask):
    """The loss stays finite, but the last step of epoch 2 leaves NaN in the weights."""

    def training_step(self, batch):
        logs = super().training_step(batch)
        if self.position == (2, 5):
            with torch.no_grad():
                self.model.net[0].weight.fill_(float("inf"))
        return logs


def test_diverged_weights_are_never_saved_and_a_lower_rate_resumes(tmp_path, capsys):
    torch.manual_seed(0)
    task = WeightsBlowUp(Tiny(), lr=1e-2)
    loader = make_loader(_data(), batch_size=8, seed=1)
    with pytest.raises(training.TrainingDiverged) as err:
        training.fit(task, loader, 3, ckpt_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert "The weights of 'model' became NaN or infinite at epoch 2, step 5" in msg
    assert "epoch 2 is not saved" in msg and "Lower the learning rate" in msg
    assert "The checkpoints already written are kept (the last is epoch_0001.pt)" in msg
    assert sorted(training.list_checkpoints(tmp_path)) == [1]
    # The advice works: a lower rate is used on resume, not the checkpoint's.
    torch.manual_seed(0)
    lower = training.SupervisedTask(Tiny(), lr=1e-3)
    training.fit(lower, loader, 3, ckpt_dir=tmp_path, progress=False)
    assert lower.optimizers["model"].param_groups[0]["lr"] == 1e-3
    assert "resumes with learning rate 0.001 as asked (the checkpoint trained with 0.01)" in capsys.readouterr().out


def test_a_lower_rate_on_resume_keeps_the_schedule(tmp_path):
    def task(lr):
        torch.manual_seed(0)
        model = Tiny()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        return training.SupervisedTask(model, optimizer=opt,
                                       scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** e))

    training.fit(task(1e-2), make_loader(_data(), 8), 2, ckpt_dir=tmp_path, progress=False)
    lower = task(1e-3)
    training.fit(lower, make_loader(_data(), 8), 3, ckpt_dir=tmp_path, progress=False)
    assert lower.optimizers["model"].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 3)
    assert lower.schedulers["model"].base_lrs == [1e-3]


def test_a_finished_run_rerun_says_so_and_changes_nothing(tmp_path, capsys):
    task, hist = _run(tmp_path, epochs=2)
    files = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    capsys.readouterr()
    again, hist2 = _run(tmp_path, epochs=2, init_seed=7)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"Note: '{tmp_path}' already holds the 2 epochs asked for; nothing is trained and the "
                   f"epoch-2 weights are loaded. Ask for more epochs to train further."]
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in task.model.state_dict().items())
    assert hist2["train_loss"] == hist["train_loss"]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == files


# --------------------------------------------------------------------------- Accelerate's settings
def test_accumulation_clipping_and_precision_settings(tmp_path):
    """Two batches of 4 accumulated step like one batch of 8 (no dropout: Linear); clipping caps
    the step; a resumed run may not change the accumulation; fp16 needs CUDA."""
    data = TensorDataset(torch.rand(16, 4), torch.rand(16, 2))

    def run(batch, accumulate, ckpt_dir=None, **kw):
        torch.manual_seed(0)
        task = training.SupervisedTask(nn.Linear(4, 2), optimizer=None, lr=0.1)
        task.optimizers["model"] = torch.optim.SGD(task.model.parameters(), lr=0.1)
        training.fit(task, make_loader(data, batch, shuffle=False), 1, gradient_accumulation_steps=accumulate,
                     ckpt_dir=ckpt_dir, progress=False, **kw)
        return task.model.weight.detach().clone()

    assert torch.allclose(run(4, 2), run(8, 1), atol=1e-6)
    torch.manual_seed(0)
    start = nn.Linear(4, 2).weight.detach()
    clipped = run(8, 1, max_grad_norm=1e-3)
    assert (clipped - start).norm() <= 0.1 * 1e-3 * 2 * 1.01  # lr x max norm, two steps
    run(8, 1, ckpt_dir=tmp_path)
    with pytest.raises(training.CheckpointError, match="gradient_accumulation_steps=1; this run asks for 2"):
        torch.manual_seed(0)
        task = training.SupervisedTask(nn.Linear(4, 2))
        training.fit(task, make_loader(data, 8), 2, gradient_accumulation_steps=2, ckpt_dir=tmp_path, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="mixed_precision='fp16' needs a CUDA GPU"):
            training.fit(training.SupervisedTask(nn.Linear(4, 2)), make_loader(data, 8), 1, mixed_precision="fp16")
