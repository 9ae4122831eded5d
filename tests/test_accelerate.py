"""training.fit on two CPU processes (accelerate launch, gloo on 127.0.0.1) against one process.

One launch of tests/accelerate_job.py (two processes) serves every check here; the one-process
runs it is compared with run in this process.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accelerate_job as job  # noqa: E402

from lessons_lib import evaluation, training  # noqa: E402

# Two processes each see half of every batch: BatchNorm normalises over 4 images instead of 8, so
# the runs are close, not equal. Measured: per-epoch losses within 0.12 % (relative) and held-out
# Delta E 2000 within 0.006 of one process's (16.67, gray 17.13); the tolerances leave room for
# other CPUs' arithmetic.
LOSS_TOLERANCE = 0.01      # relative, per epoch, training and validation loss
DELTA_E_TOLERANCE = 0.1    # Delta E 2000 units on the held-out photos


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("accelerate")
    job.run(out / "one", 1)  # epoch 1 on one process; the launch resumes it on two
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()), str(Path(job.__file__)), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, torch.load(out / "result.pt", weights_only=True), done.stdout + done.stderr


def test_two_processes_match_one_with_the_same_global_batch(launched):
    out, result, _ = launched
    assert result["processes"] == 2
    one, hist = job.run(None, 2)
    two = job.build_model("unet", width=job.WIDTH)
    two.load_state_dict(result["straight"])
    for a, b in zip(hist.rows, result["history"]):
        for k in ("train_loss", "val_loss"):
            assert b[k] == pytest.approx(a[k], rel=LOSS_TOLERANCE), (k, a, b)
    held_out = job.photos("test")
    e1 = evaluation.evaluate(one.models["model"], held_out, lpips=None)["model"]["delta_e2000"]
    e2 = evaluation.evaluate(two, held_out, lpips=None)["model"]["delta_e2000"]
    assert abs(e1 - e2) < DELTA_E_TOLERANCE, (e1, e2)


def test_one_set_of_checkpoints_and_logs_once(launched):
    out, _, log = launched
    assert sorted(p.name for p in (out / "cli" / "unet").iterdir()) == [
        "config.json", "epoch_0001.pt", "epoch_0002.pt", "history.csv", "history.json"]  # no temporary files
    state = training.load_checkpoint(out / "cli" / "unet" / "epoch_0002.pt")
    assert state["accelerate"]["processes"] == 2 and len(state["rng_processes"]) == 2
    assert not torch.equal(state["rng_processes"][0]["torch"], state["rng_processes"][1]["torch"])
    assert log.count("unet epoch 1/2: train_loss") == 1 and log.count("profile fast, device") == 1
    assert log.count("Checkpoint epoch_0001.pt") == 1


def test_interrupted_and_resumed_equals_uninterrupted_on_two_processes(launched):
    _, result, log = launched
    assert "Training interrupted at epoch 2, step 2" in log
    for k, v in result["straight"].items():
        assert torch.equal(v, result["resumed"][k]), k
    assert [r["train_loss"] for r in result["resumed_history"]] == [r["train_loss"] for r in result["history"]]


def test_resume_across_process_counts(launched, capsys):
    out, result, log = launched
    # One process's checkpoint resumed on two: trained on, with one note saying what carries over.
    assert log.count("was written by a run on 1 process, this one has 2") == 1
    assert sorted(training.list_checkpoints(out / "one")) == [1, 2]
    # Two processes' checkpoint resumed on one.
    capsys.readouterr()
    task, hist = job.run(out / "straight", 3)
    assert hist.epochs == [1, 2, 3] and hist["train_loss"][:2] == [r["train_loss"] for r in result["history"]]
    assert "was written by a run on 2 processes, this one has 1" in capsys.readouterr().out


def test_bf16_on_two_cpu_processes_trains(launched):
    _, result, _ = launched
    loss = result["bf16_history"][0]["train_loss"]
    assert 0 < loss < 1
    assert all(not torch.equal(v, result["bf16"][k]) for k, v in result["bf16_before"].items()
               if v.is_floating_point())
