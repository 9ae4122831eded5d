
import numpy as np
import pytest
import torch

from lessons_lib import registry, runtime


def test_profile_env_wins(monkeypatch):
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    assert runtime.get_profile() == "full"
    monkeypatch.setenv("LESSONS_PROFILE", "FAST")
    assert runtime.get_profile() == "fast"


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("LESSONS_PROFILE", raising=False)
    expected = "full" if torch.cuda.is_available() else "fast"
    assert runtime.get_profile() == expected


def test_bad_profile_says_what_to_use(monkeypatch):
    monkeypatch.setenv("LESSONS_PROFILE", "medium")
    with pytest.raises(ValueError, match="LESSONS_PROFILE=fast"):
        runtime.get_profile()


def test_pick(monkeypatch):
    monkeypatch.setenv("LESSONS_PROFILE", "fast")
    assert runtime.pick(fast=1, full=10) == 1
    assert runtime.pick(fast=1, full=10, profile="full") == 10


def test_device_and_dtype():
    dev = runtime.get_device()
    assert dev.type in ("cuda", "mps", "cpu")
    assert runtime.get_dtype("cpu") == torch.float32
    assert runtime.get_dtype("cpu", pipeline=False) == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            runtime.get_device("0")
    assert runtime.get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "-1", "cuda 0", "xla", "meta", ""])
def test_unknown_device_names_get_the_course_message(name):
    with pytest.raises(runtime.DeviceUnavailable, match=r"Unknown device .*Use cpu, cuda .* or mps"):
        runtime.get_device(name)


def test_device_names_are_forgiving_about_case_and_objects():
    assert runtime.get_device(" CPU ") == torch.device("cpu")
    assert runtime.get_device(torch.device("cpu")) == torch.device("cpu")
    assert runtime.get_device("cpu:0") == torch.device("cpu:0")


def test_a_gpu_index_beyond_the_machine_names_the_gpus_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert runtime.get_device("0") == torch.device("cuda:0")
    with pytest.raises(runtime.DeviceUnavailable, match=r"'cuda:3'.*has 1 CUDA GPU \(cuda:0\)"):
        runtime.get_device("3")


def test_cuda_dtype_is_half_for_pipelines():
    assert runtime.get_dtype(torch.device("cuda")) == torch.float16
    assert runtime.get_dtype(torch.device("cuda"), pipeline=False) == torch.float32


def test_seed_everything_repeats():
    g = runtime.seed_everything(123)
    a = (torch.rand(3), np.random.rand(3), torch.rand(2, generator=g))
    g = runtime.seed_everything(123)
    b = (torch.rand(3), np.random.rand(3), torch.rand(2, generator=g))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="non-negative integer"):
        runtime.seed_everything(-1)


def test_environment_report_names_versions():
    text = runtime.environment_report()
    for key in ("profile", "device", "torch", "diffusers"):
        assert key in text


def test_setup_notebook_warns_on_cpu_for_gpu_notebooks(capsys):
    if torch.cuda.is_available():
        pytest.skip("only meaningful without a GPU")
    with pytest.warns(UserWarning, match="meant for a GPU"):
        env = runtime.setup_notebook(gpu=True)
    assert "WARNING" in capsys.readouterr().out
    assert env.device.type in ("cpu", "mps")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path / "c"))
    assert runtime.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_colab_detection(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert runtime.in_colab() is ("google.colab" in __import__("sys").modules)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-x")
    assert runtime.in_colab()


def test_registry_ids_and_override(monkeypatch):
    assert registry.hub_id("img2img") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert registry.hub_id("instruct-pix2pix") == "timbrooks/instruct-pix2pix"
    # No removed stabilityai/stable-diffusion-2* repositories anywhere in the registry.
    assert not any(s.location.startswith("stabilityai/stable-diffusion-2") for s in registry.SOURCES.values())
    monkeypatch.setenv("LESSONS_MODEL_IMG2IMG", "me/my-model")
    assert registry.hub_id("img2img") == "me/my-model"
    with pytest.raises(KeyError, match="Unknown source"):
        registry.get_source("nope")


def test_unavailable_message_says_what_to_do(monkeypatch):
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    msg = registry.unavailable_message("CIFAR-10", "LESSONS_DATA_DIR", reason="no network")
    assert "enable internet" in msg and "LESSONS_PROFILE=fast" in msg and "LESSONS_DATA_DIR" in msg
    monkeypatch.setenv("LESSONS_PROFILE", "fast")  # advice that would change nothing is left out
    msg = registry.unavailable_message("CIFAR-10", "LESSONS_DATA_DIR", reason="no network")
    assert "LESSONS_PROFILE" not in msg and "enable internet" in msg and "LESSONS_DATA_DIR" in msg


def test_the_rehearsal_shrinks_only_the_counts_marked_rehearse(monkeypatch):
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    monkeypatch.delenv("LESSONS_REHEARSAL", raising=False)
    assert not runtime.rehearsal()
    assert runtime.pick(fast=2, full=100, rehearse=1) == 100  # a real full run: the full count
    monkeypatch.setenv("LESSONS_REHEARSAL", "1")
    assert runtime.rehearsal()
    assert runtime.pick(fast=2, full=100, rehearse=1) == 1
    assert runtime.pick(fast=2, full=None, rehearse=None) is None  # None is a value, not "unset"
    assert runtime.pick(fast=32, full=128) == 128  # sizes are rehearsed as they are
    assert "offline rehearsal" in runtime.environment("cpu").report()
    monkeypatch.setenv("LESSONS_PROFILE", "fast")  # the switch means nothing in the fast profile
    assert not runtime.rehearsal() and runtime.pick(fast=2, full=100, rehearse=1) == 2


def test_shown_picks_trained_here_or_the_course_weights_and_labels_them(monkeypatch):
    loads = []

    def course_loader():
        loads.append(1)
        return "course model"

    full, fast = runtime.shown("full"), runtime.shown("fast")
    assert (full.label, fast.label) == ("trained here", "course weights")
    assert full.choose(here="mine", course=course_loader) == "mine" and not loads   # never loaded when unused
    assert fast.choose(here="mine", course=course_loader) == "course model" and loads == [1]
    assert fast.choose(here=1, course=2) == 2                         # plain values too
    module = torch.nn.Linear(1, 1)                                    # a module is a value, not a loader
    assert fast.choose(here=None, course=module) is module
    assert full.gallery(here={"unet": "a"}, course={"unet": "b"}) == {"unet (trained here)": "a",
                                                                     "unet (course weights)": "b"}
    assert fast.gallery(here={"unet": "a"}, course={"unet": "b"}) == {"unet (course weights)": "b"}
    assert fast.name("unet") == "unet (course weights)" and full.name("unet", "x") == "unet (x)"
    monkeypatch.setenv("LESSONS_PROFILE", "fast")
    assert runtime.environment().shown == fast


def test_no_notebook_branches_on_the_profile():
    # Which weights a lesson shows is ENV.shown's to say; values that differ by profile go through pick().
    import json
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "code")
        for needle in ("ENV.profile ==", "ENV.profile !=", "get_profile()", '"course weights" if', '"trained here" if'):
            assert needle not in code, f"{path.name} branches on the profile ({needle}); use ENV.shown or pick()"
