"""lessons_lib.editing (loading, tiny pipelines, edits, log, panel), offline, on tiny random pipelines."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lessons_lib import editing as E
from lessons_lib import registry
from lessons_lib.editing import tiny as T

STEPS = 3
SIZE = 64


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    """A fresh cache folder: the tiny pipelines are built, saved and reloaded from scratch."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("lessons-cache")
    mp.setenv("LESSONS_CACHE_DIR", str(root))
    mp.setenv("LESSONS_PROFILE", "fast")
    E.clear_pipeline_cache()
    yield root
    E.clear_pipeline_cache()
    mp.undo()


@pytest.fixture(scope="session")
def pipes(cache_root):
    return {task: E.load_pipeline(task) for task in E.TASKS}


@pytest.fixture(scope="session")
def photo():
    return E.demo_image("chelsea", SIZE)


def arr(img):
    return np.asarray(img, dtype=np.float64)


class UNetCalls:
    """Counts UNet forward passes independently of the helpers' own step counter."""

    def __init__(self, pipe):
        self.n = 0
        self.handle = pipe.unet.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.n += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --------------------------------------------------------------------------- loading
def test_tiny_pipelines_have_the_real_architecture(pipes, cache_root):
    import diffusers

    expected = {"img2img": (diffusers.StableDiffusionImg2ImgPipeline, 4, diffusers.DDIMScheduler),
                "instruct-pix2pix": (diffusers.StableDiffusionInstructPix2PixPipeline, 8,
                                     diffusers.EulerAncestralDiscreteScheduler),
                "inpaint": (diffusers.StableDiffusionInpaintPipeline, 9, diffusers.DDIMScheduler),
                "upscale": (diffusers.StableDiffusionUpscalePipeline, 7, diffusers.DDIMScheduler)}
    for task, (cls, in_channels, scheduler) in expected.items():
        pipe = pipes[task]
        assert type(pipe) is cls
        assert pipe.unet.config.in_channels == in_channels
        assert type(pipe.scheduler) is scheduler
        assert pipe.tokenizer.model_max_length == 77
        assert pipe.safety_checker is None
        saved = cache_root / "tiny-pipelines" / task
        assert (saved / "model_index.json").is_file() and (saved / "unet").is_dir()
        assert pipe.name_or_path == str(saved)  # loaded back with from_pretrained
    assert pipes["img2img"].vae_scale_factor == 8 and pipes["upscale"].vae_scale_factor == 4
    # Only finished pipelines are left in the cache: no temporary build folders.
    assert sorted(p.name for p in (cache_root / "tiny-pipelines").iterdir()) == sorted(E.TASKS)


def test_pipeline_is_loaded_once_and_reused(pipes):
    assert E.load_pipeline("img2img") is pipes["img2img"]
    assert E.load_pipeline("inpaint", device="cpu") is pipes["inpaint"]


def test_tiny_build_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = T.build_tiny_pipeline("img2img")
    b = T.build_tiny_pipeline("img2img")
    assert torch.equal(torch.rand(3), expected)
    for (name, pa), (_, pb) in zip(a.unet.state_dict().items(), b.unet.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    ids = a.tokenizer("make it a cat").input_ids
    assert ids[0] == a.tokenizer.bos_token_id and ids[-1] == a.tokenizer.eos_token_id
    assert a.text_encoder.config.eos_token_id == a.tokenizer.eos_token_id


def test_stale_tiny_pipeline_is_rebuilt(cache_root, pipes):
    folder = T.tiny_pipeline_dir("upscale")
    marker = folder / "lessons_tiny.json"
    marker.write_text(json.dumps({"version": -1}))
    T._TINY_DIRS.clear()  # as in a new process: the folder is checked again
    rebuilt = T.tiny_pipeline_dir("upscale")
    assert rebuilt == folder and json.loads(marker.read_text())["version"] == T.TINY_VERSION
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_unknown_task_profile_and_offload():
    with pytest.raises(ValueError, match="Unknown task 'txt2img'.*img2img"):
        E.load_pipeline("txt2img")
    with pytest.raises(ValueError, match="Unknown profile 'medium'. Choose one of: fast, full"):
        E.load_pipeline("img2img", profile="medium")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cpu_offload=True needs a CUDA GPU"):
            E.load_pipeline("img2img", cpu_offload=True)


def test_missing_hub_id_says_what_to_do(monkeypatch, cache_root):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LESSONS_PROFILE", "full")
    bogus = "no-such-org-lessons/no-such-model-xyz"
    with pytest.raises(registry.DownloadUnavailable,
                       match=f"'{bogus}' does not exist or cannot be reached.*LESSONS_MODEL_IMG2IMG"):
        E.load_pipeline("img2img", model_id=bogus)
    # The full profile takes the id from the registry, which the env var overrides.
    monkeypatch.setenv("LESSONS_MODEL_INPAINT", bogus)
    with pytest.raises(registry.DownloadUnavailable,
                       match=f"'inpaint' pipeline '{bogus}'.*LESSONS_PROFILE=fast"):
        E.load_pipeline("inpaint", profile="full")
    with pytest.raises(FileNotFoundError, match="No pipeline folder at"):
        E.load_pipeline("img2img", model_id=str(cache_root / "not-here"))


def test_memory_options_and_a_local_folder(pipes, photo):
    folder = T.tiny_pipeline_dir("img2img")
    pipe = E.load_pipeline("img2img", model_id=str(folder), memory_safe=True)
    assert pipe is not pipes["img2img"]
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    # PyTorch 2 has scaled-dot-product attention: slicing would only slow it down (diffusers' advice).
    assert hasattr(torch.nn.functional, "scaled_dot_product_attention")
    assert not E.attention_slicing_active(pipe)
    big = E.demo_image("coffee", 96)  # larger than the tiny VAE's 64 px tile: tiled decoding runs
    out = E.img2img(pipe, big, "a cup", strength=0.5, num_inference_steps=2)
    assert out.image.size == (96, 96)


# --------------------------------------------------------------------------- img2img
def test_img2img_size_seed_and_steps(pipes, photo):
    pipe = pipes["img2img"]
    a = E.img2img(pipe, photo, "a cat in the snow", strength=0.6, num_inference_steps=5, seed=1)
    b = E.img2img(pipe, photo, "a cat in the snow", strength=0.6, num_inference_steps=5, seed=1)
    c = E.img2img(pipe, photo, "a cat in the snow", strength=0.6, num_inference_steps=5, seed=2)
    assert a.image.size == photo.size and a.image.mode == "RGB"
    assert np.array_equal(arr(a.image), arr(b.image))
    assert not np.array_equal(arr(a.image), arr(c.image))
    assert a.record()["parameters"]["strength"] == 0.6 and a.seed == 1


@pytest.mark.parametrize("n,strength", [(10, 0.5), (7, 0.3), (20, 0.2), (4, 1.0), (9, 0.75)])
def test_img2img_runs_int_n_times_strength_steps(pipes, photo, n, strength):
    pipe = pipes["img2img"]
    with UNetCalls(pipe) as calls:
        out = E.img2img(pipe, photo, "a cat", strength=strength, num_inference_steps=n)
    assert calls.n == out.steps_run == int(n * strength) == E.steps_that_run(n, strength)
    # Same count as diffusers' own schedule arithmetic.
    pipe.scheduler.set_timesteps(n)
    assert pipe.get_timesteps(n, strength, "cpu")[1] == E.steps_that_run(n, strength)


def test_zero_steps_returns_the_input(pipes, photo):
    with pytest.warns(UserWarning, match="runs int\\(4 x 0.0\\) = 0 denoising steps"):
        out = E.img2img(pipes["img2img"], photo, "a cat", strength=0.0, num_inference_steps=4)
    assert out.steps_run == 0 and np.array_equal(arr(out.image), arr(photo))


def test_strength_sweep_and_figure(pipes, photo):
    results = E.strength_sweep(pipes["img2img"], photo, "a cat", num_inference_steps=5)
    assert [r.steps_run for r in results] == [int(5 * s) for s in E.STRENGTHS] == [1, 2, 3, 4, 5]
    fig = E.sweep_figure(photo, results)
    assert len(fig.axes) == len(E.STRENGTHS) + 1 and "3 of 5 steps" in fig.axes[3].get_title()
    with pytest.raises(ValueError, match="list of strengths is empty"):
        E.strength_sweep(pipes["img2img"], photo, "a cat", strengths=[])


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "CMYK", "L"])
def test_odd_image_modes_are_normalised(pipes, photo, mode):
    if mode == "I;16":
        odd = Image.fromarray((arr(photo.convert("L")) * 257).astype(np.uint16))
    elif mode == "P":
        odd = photo.convert("P", palette=Image.ADAPTIVE)
    else:
        odd = photo.convert(mode)
    out = E.img2img(pipes["img2img"], odd, "a cat", strength=0.5, num_inference_steps=2)
    assert out.image.mode == "RGB" and out.image.size == photo.size


def test_size_not_multiple_of_8_is_resized_with_a_note(pipes, photo):
    odd = photo.resize((70, 50))
    with pytest.warns(UserWarning, match="70x50 pixels.*multiples of 8.*resized to 64x48"):
        out = E.img2img(pipes["img2img"], odd, "a cat", strength=0.5, num_inference_steps=2)
    assert out.image.size == (64, 48)


@pytest.mark.parametrize("strength,error,match", [
    (-0.1, ValueError, r"in \[0, 1\], got -0.1"), (1.5, ValueError, r"in \[0, 1\], got 1.5"),
    (float("nan"), ValueError, r"a finite number in \[0, 1\], got nan"),
    ("0.5", TypeError, r"a number in \[0, 1\], got '0.5' \(str\)"), (True, TypeError, r"got True \(bool\)")])
def test_strength_outside_0_1(pipes, photo, strength, error, match):
    with pytest.raises(error, match=f"strength must be .*{match}.* 0 keeps the input as it is, 1 repaints it"):
        E.img2img(pipes["img2img"], photo, "a cat", strength=strength)


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_step_counts(pipes, photo, steps):
    with pytest.raises(ValueError, match=r"num_inference_steps must be a whole number between 1 and 1000 "
                                         r"\(denoising steps\), got"):
        E.img2img(pipes["img2img"], photo, "a cat", num_inference_steps=steps)
    with pytest.raises(ValueError, match=r"num_inference_steps must be a whole number between 1 and 1000"):
        E.instruct_edit(pipes["instruct-pix2pix"], photo, "make it red", num_inference_steps=steps)


def test_empty_prompt_lists_and_blank_instructions(pipes, photo):
    with pytest.raises(ValueError, match="list of instructions is empty"):
        E.instruct_edits(pipes["instruct-pix2pix"], photo, [])
    with pytest.raises(ValueError, match="Instruction 2 is empty"):
        E.instruct_edits(pipes["instruct-pix2pix"], photo, ["make it red", "  "])
    with pytest.raises(ValueError, match=r"image_guidance_scale must be in \[0, 100\], got -1"):
        E.instruct_edit(pipes["instruct-pix2pix"], photo, "make it red", image_guidance_scale=-1)


def test_mask_checks(pipes, photo):
    with pytest.raises(ValueError, match="mask is 32x32 pixels but the image is 64x64"):
        E.inpaint(pipes["inpaint"], photo, Image.new("L", (32, 32), 255), "a dog")
    with pytest.raises(ValueError, match="no white pixels"):
        E.inpaint(pipes["inpaint"], photo, Image.new("L", photo.size, 0), "a dog")
    with pytest.raises(ValueError, match="not a box inside the 64x64 image"):
        E.mask_from_bbox(photo.size, (10, 10, 80, 20))
    with pytest.raises(ValueError, match="The feather radius must be >= 0, got -2"):
        E.feather_mask(Image.new("L", (8, 8)), -2)


def test_out_of_memory_says_what_to_do(photo):
    class Exhausted:  # stands in for an img2img pipeline on a full GPU
        name_or_path, config = "oom", {}

        def __call__(self, prompt=None, image=None, strength=None, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(RuntimeError, match="GPU ran out of memory during img2img.*cpu_offload=True"):
        E.img2img(Exhausted(), photo, "a cat", strength=0.5, num_inference_steps=2)


# --------------------------------------------------------------------------- InstructPix2Pix
def test_instruct_pix2pix_defaults_and_batching(pipes, photo):
    assert (E.IMAGE_STABILITY, E.TEXT_STRENGTH, E.PIX2PIX_STEPS) == (2.0, 10.0, 40)
    pipe = pipes["instruct-pix2pix"]
    texts = ["make it snowy", "turn the cat into a dog", "make it a watercolor painting"]
    with UNetCalls(pipe) as calls:
        batched = E.instruct_edits(pipe, photo, texts, num_inference_steps=STEPS, batch_size=2)
    assert calls.n == 2 * STEPS  # two batches (2 + 1 instructions), one UNet call per step each
    assert [r.image.size for r in batched] == [photo.size] * 3
    assert [r.params["instruction"] for r in batched] == texts
    assert batched[0].params["image_guidance_scale"] == 2.0 and batched[0].params["guidance_scale"] == 10.0
    single = E.instruct_edit(pipe, photo, texts[1], num_inference_steps=STEPS)
    again = E.instruct_edit(pipe, photo, texts[1], num_inference_steps=STEPS)
    assert np.array_equal(arr(single.image), arr(again.image))
    # Batching changes nothing but float rounding: same seed, same edit.
    assert np.abs(arr(single.image) - arr(batched[1].image)).max() <= 2
    assert not np.array_equal(arr(batched[0].image), arr(batched[1].image))


def test_instruct_edits_save_files_and_log(pipes, photo, tmp_path):
    log = E.OperationLog(tmp_path / "log.jsonl")
    texts = ["make it look like a/b ../../etc/passwd", "x" * 300]
    results = E.instruct_edits(pipes["instruct-pix2pix"], photo, texts, num_inference_steps=2,
                               out_dir=tmp_path / "out", log=log)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(["make-it-look-like-a-b-etc-passwd.png", "x" * 60 + ".png"])
    entries = log.read()
    assert [e["parameters"]["instruction"] for e in entries] == texts
    assert [e["output_file"] for e in entries] == [r.output_file for r in results]
    assert Image.open(results[0].output_file).size == photo.size


def test_guidance_grid(pipes, photo):
    grid = E.guidance_grid(pipes["instruct-pix2pix"], photo, "make it snowy",
                           image_guidance_scales=(1.0, 2.0), guidance_scales=(3.0, 10.0),
                           num_inference_steps=2)
    assert len(grid) == 2 and all(len(row) == 2 for row in grid)
    assert grid[1][0].params["image_guidance_scale"] == 2.0 and grid[1][0].params["guidance_scale"] == 3.0
    assert not np.array_equal(arr(grid[0][0].image), arr(grid[1][1].image))
    fig = E.grid_figure(grid)
    assert len(fig.axes) == 4


def test_widget_panel_callback_produces_an_image(pipes, photo):
    panel = E.InstructPanel(pipes["instruct-pix2pix"], photo, num_inference_steps=2)
    panel.instruction.value = "make it red"
    panel.image_guidance_scale.value = 1.5
    panel.seed.value = 3
    result = panel.run()
    assert result.image.size == photo.size and result.params["image_guidance_scale"] == 1.5
    assert result.seed == 3 and panel.output.value[:8] == b"\x89PNG\r\n\x1a\n"
    panel.button.click()  # the button calls the same callback
    assert np.array_equal(arr(panel.result.image), arr(result.image))
    panel.instruction.value = " "
    assert panel.run() is None and "Instruction 1 is empty" in panel.status.value


# --------------------------------------------------------------------------- inpainting
def test_inpaint_keeps_pixels_far_from_the_mask(pipes, photo):
    pipe = pipes["inpaint"]
    mask = E.mask_from_bbox(photo.size, (20, 20, 44, 44))
    with UNetCalls(pipe) as calls:
        out = E.inpaint(pipe, photo, mask, "a dog", num_inference_steps=4, strength=0.5, feather=2)
    assert calls.n == out.steps_run == 2
    a, b = arr(photo), arr(out.image)
    assert out.image.size == photo.size
    far = np.ones(a.shape[:2], bool)
    far[20 - 8:44 + 8, 20 - 8:44 + 8] = False  # 8 px (4 feather radii) around the box
    assert np.abs(a - b)[far].max() == 0
    assert np.abs(a - b)[24:40, 24:40].mean() > 5
    # Without pasting back, the (here random) VAE changes everything: why paste-back exists.
    raw = E.inpaint(pipe, photo, mask, "a dog", num_inference_steps=4, strength=0.5, paste_back=False)
    assert np.abs(a - arr(raw.image))[far].mean() > 5
    # The seam is soft: pixels just outside the box are blended, not copied.
    hard = E.inpaint(pipe, photo, mask, "a dog", num_inference_steps=4, strength=0.5)
    assert np.abs(arr(hard.image) - a)[20:44, 18].max() == 0 and np.abs(b - a)[20:44, 18].max() > 0


def test_inpaint_same_seed_same_image(pipes, photo):
    mask = np.zeros((SIZE, SIZE))
    mask[10:30, 10:30] = 1.0  # numpy masks in [0, 1] are accepted too
    a = E.inpaint(pipes["inpaint"], photo, mask, "a dog", num_inference_steps=2, seed=5)
    b = E.inpaint(pipes["inpaint"], photo, mask, "a dog", num_inference_steps=2, seed=5)
    assert np.array_equal(arr(a.image), arr(b.image))


def test_outpaint_enlarges_the_canvas(pipes, photo):
    out = E.outpaint(pipes["inpaint"], photo, "a cat on a sofa", border=(16, 8, 16, 0), num_inference_steps=2)
    assert out.image.size == (SIZE + 32, SIZE + 8) and out.operation == "outpaint"
    centre = arr(out.image)[8:8 + SIZE, 16:16 + SIZE]
    assert np.array_equal(centre, arr(photo))
    assert np.abs(arr(out.image)[:, :16] - arr(photo)[:1, :1]).mean() > 1  # the margin was painted
    with pytest.raises(ValueError, match="multiple of 8"):
        E.outpaint(pipes["inpaint"], photo, "a cat", border=10)


# --------------------------------------------------------------------------- upscaling
def test_upscale_is_4x(pipes, photo):
    small = photo.resize((32, 24))
    with UNetCalls(pipes["upscale"]) as calls:
        out = E.upscale(pipes["upscale"], small, "a cat", num_inference_steps=2)
    assert out.image.size == (128, 96) and calls.n == out.steps_run == 2
    again = E.upscale(pipes["upscale"], small, "a cat", num_inference_steps=2)
    assert np.array_equal(arr(out.image), arr(again.image))


def test_large_inputs_are_refused_with_advice_or_tiled(pipes, photo):
    with pytest.raises(ValueError, match="up to 128 px.*Downscale.*tile=True"):
        E.upscale(pipes["upscale"], E.demo_image("coffee", 136), "a cup")
    img = photo.resize((48, 40))
    out = E.upscale(pipes["upscale"], img, "a cat", num_inference_steps=2, tile=True, tile_size=32,
                    overlap=8, max_input=32)
    assert out.image.size == (192, 160) and out.params["tiles"] == 4
    # Tiles start at x = 0, 16 and y = 0, 8: where only the first tile covers the image
    # (x < 16, y < 8, times 4) the result is exactly that tile upscaled on its own.
    first = E.upscale(pipes["upscale"], img.crop((0, 0, 32, 32)), "a cat", num_inference_steps=2)
    assert np.abs(arr(out.image)[:32, :64] - arr(first.image)[:32, :64]).max() <= 1
    assert np.abs(arr(out.image)[32:96, 64:96] - arr(first.image)[32:96, 64:96]).max() > 1  # blended
    with pytest.raises(ValueError, match="noise_level must be a whole number between 0 and 350, got 400"):
        E.upscale(pipes["upscale"], photo.resize((32, 32)), noise_level=400)


# --------------------------------------------------------------------------- practical pipeline
def test_masks_and_suggested_strength():
    mask = E.mask_from_bbox((40, 30), (5, 6, 25, 16))
    m = arr(mask)
    assert mask.size == (40, 30) and m.sum() == 255 * 20 * 10 and m[6, 5] == 255 and m[16, 25] == 0
    soft = arr(E.feather_mask(E.mask_from_bbox((60, 50), (10, 10, 50, 40)), 3))
    assert soft[25, 30] > 250 and 0 < soft[25, 8] < 128 < soft[25, 11] < 255 and soft[0, 0] < 1
    assert np.array_equal(arr(E.feather_mask(mask, 0)), m)
    assert E.suggest_strength("colour") < E.suggest_strength("style") < E.suggest_strength("replace")
    assert E.suggest_strength("New Content") == 1.0
    with pytest.raises(ValueError, match="Unknown edit type 'zoom'.*colour"):
        E.suggest_strength("zoom")


def test_edit_region_saves_and_logs(pipes, photo, tmp_path):
    log = E.OperationLog(tmp_path / "ops.jsonl")
    out = E.edit_region(pipes["inpaint"], photo, (16, 16, 48, 48), "a red ball", edit_type="replace",
                        num_inference_steps=5, out_dir=tmp_path, log=log)
    assert out.params["strength"] == E.SUGGESTED_STRENGTH["replace"] and out.steps_run == 4
    (entry,) = log.read()
    assert entry["operation"] == "edit_region" and entry["seed"] == 0
    assert entry["parameters"]["bbox"] == [16, 16, 48, 48]
    assert entry["output_file"] == str(tmp_path / "a-red-ball.png") and os.path.exists(entry["output_file"])


# --------------------------------------------------------------------------- files and log
@pytest.mark.parametrize("text,expected", [
    ("make it look like a/b painting", "make-it-look-like-a-b-painting"),
    ("../../etc/passwd", "etc-passwd"),
    ("C:\\Windows\\system32", "c-windows-system32"),
    ("Café au lait ☕", "cafe-au-lait"),
    ("///", "edit"),
    ("", "edit"),
    ("nul", "nul-file"),
])
def test_safe_filename(text, expected):
    assert E.safe_filename(text) == expected


def test_safe_filename_caps_the_length():
    name = E.safe_filename("turn it into " + "a very long instruction " * 13)
    assert len("turn it into " + "a very long instruction " * 13) > 300
    assert len(name) <= 60 and not name.endswith("-") and "/" not in name


def test_save_image_never_overwrites(tmp_path):
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    first = E.save_image(red, tmp_path, "make/it red")
    second = E.save_image(blue, tmp_path, "make/it red")
    third = E.save_image(blue, tmp_path, "make/it red")
    assert [first.name, second.name, third.name] == ["make-it-red.png", "make-it-red-2.png",
                                                     "make-it-red-3.png"]
    assert Image.open(first).getpixel((0, 0)) == (255, 0, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name, third.name])


@pytest.mark.parametrize("code, why", [(30, "read-only"), (28, "the disk is full")])  # EROFS, ENOSPC
def test_save_image_on_a_read_only_or_full_disk_says_so(tmp_path, monkeypatch, code, why):
    first = E.save_image(Image.new("RGB", (8, 8), "red"), tmp_path, "a cat")

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("tempfile.mkstemp", refuse)  # where files.write_unique starts writing
    with pytest.raises(OSError, match=f"Could not write .*a-cat.png.*{why}.*the images saved before it are whole"):
        E.save_image(Image.new("RGB", (8, 8), "blue"), tmp_path, "a cat")
    assert sorted(tmp_path.iterdir()) == [first]


def test_operation_log(tmp_path):
    log = E.OperationLog(tmp_path / "sub" / "log.jsonl")
    assert log.read() == []
    log.record("img2img", {"prompt": "a cat", "strength": np.float32(0.5), "size": (64, 64)}, 7,
               tmp_path / "a.png")
    log.record("upscale", {"prompt": ""}, 0)
    entries = log.read()
    assert len(log) == 2 and entries[0]["operation"] == "img2img" and entries[0]["seed"] == 7
    assert entries[0]["parameters"] == {"prompt": "a cat", "strength": 0.5, "size": [64, 64]}
    assert entries[0]["output_file"] == str(tmp_path / "a.png") and entries[1]["output_file"] is None
    lines = (tmp_path / "sub" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["time"] for line in lines)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["log.jsonl"]
    with open(tmp_path / "sub" / "log.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match="Line 3 of the operation log"):
        log.read()


def test_operation_log_appends_without_rewriting(tmp_path):
    log = E.OperationLog(tmp_path / "log.jsonl")
    log.record("img2img", {"prompt": "a"}, 1)
    before = log.path.read_bytes()
    inode = log.path.stat().st_ino
    log.record("img2img", {"prompt": "b"}, 2)
    after = log.path.read_bytes()
    # Appended in place: same file, earlier bytes untouched (a rewrite through a temporary
    # file and a rename would give a new inode).
    assert log.path.stat().st_ino == inode and after.startswith(before) and len(after) > len(before)
    with open(log.path, "ab") as fh:  # a crash mid-write leaves a cut-off last line
        fh.write(b'{"operation": "inpa')
    log.record("upscale", {"prompt": "c"}, 3)
    lines = log.path.read_text().splitlines()
    assert lines[-1].startswith("{") and json.loads(lines[-1])["seed"] == 3  # on a line of its own


def test_show_edit_figure(pipes, photo):
    out = E.img2img(pipes["img2img"], photo, "a cat", strength=0.5, num_inference_steps=2)
    fig = E.show_edit(photo, out)
    assert [ax.get_title() for ax in fig.axes] == ["original", "a cat"]


# --------------------------------------------------------------------------- bad input (issue 14)
@pytest.mark.parametrize("helper,task,call", [
    ("img2img", "img2img", lambda p, img: E.img2img(p, img, "a cat", strength=0.3, num_inference_steps=2)),
    ("strength_sweep", "img2img", lambda p, img: E.strength_sweep(p, img, "a cat", num_inference_steps=2)),
    ("inpaint", "inpaint", lambda p, img: E.inpaint(p, img, E.mask_from_bbox(img.size, (8, 8, 24, 24)),
                                                    "a dog", num_inference_steps=2)),
    ("edit_region", "inpaint", lambda p, img: E.edit_region(p, img, (8, 8, 24, 24), "a dog",
                                                            num_inference_steps=2)),
    ("instruct_edits", "instruct-pix2pix", lambda p, img: E.instruct_edits(p, img, ["make it red"])),
    ("upscale", "upscale", lambda p, img: E.upscale(p, img.resize((32, 32)), "a cat")),
])
def test_a_pipeline_of_the_wrong_kind_is_refused(pipes, photo, helper, task, call):
    wrong = pipes["img2img" if task != "img2img" else "inpaint"]
    with UNetCalls(wrong) as calls, pytest.raises(TypeError) as err:
        call(wrong, photo)
    message = str(err.value)
    assert f"{helper} needs a {E.TASKS[task].pipeline_class}" in message
    assert f"load_pipeline('{task}')" in message and type(wrong).__name__ in message
    assert calls.n == 0  # refused before any denoising step


def test_a_text_to_image_pipeline_would_ignore_strength_and_is_refused(pipes, photo):
    import diffusers

    p = pipes["img2img"]
    txt2img = diffusers.StableDiffusionPipeline(vae=p.vae, text_encoder=p.text_encoder, tokenizer=p.tokenizer,
                                                unet=p.unet, scheduler=p.scheduler, safety_checker=None,
                                                feature_extractor=None, requires_safety_checker=False)
    with pytest.raises(TypeError, match="StableDiffusionPipeline: it takes no `strength`"):
        E.img2img(txt2img, photo, "a cat", strength=0.3)


def test_a_checkpoint_for_another_task_is_refused_before_loading(cache_root, monkeypatch):
    inpainting = str(T.tiny_pipeline_dir("inpaint"))
    loaded = []
    import diffusers

    original = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained
    monkeypatch.setattr(diffusers.StableDiffusionImg2ImgPipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loaded.append(a) or original(*a, **k)))
    with pytest.raises(ValueError) as err:
        E.load_pipeline("img2img", model_id=inpainting)
    message = str(err.value)
    assert "UNet takes 9 input channels" in message and "needs 4" in message
    assert f"load_pipeline('inpaint', model_id='{inpainting}')" in message
    assert loaded == []  # no weights were loaded
    with pytest.raises(ValueError, match="UNet takes 4 input channels.*'img2img' task"):
        E.load_pipeline("upscale", model_id=str(T.tiny_pipeline_dir("img2img")))


def test_a_huge_photo_is_refused_with_how_to_downscale(pipes):
    huge = Image.new("RGB", (10000, 10000), "gray")
    with UNetCalls(pipes["img2img"]) as calls, pytest.raises(ValueError) as err:
        E.img2img(pipes["img2img"], huge, "a cat")
    message = str(err.value)
    assert "10000x10000 pixels" in message and f"at most {E.MAX_EDIT_SIDE} px" in message
    assert "max_side=512" in message and calls.n == 0
    out = E.img2img(pipes["img2img"], huge.resize((80, 80)), "a cat", strength=0.5, num_inference_steps=2,
                    max_side=64)  # the advice works
    assert out.image.size == (64, 64)


def test_missing_mask_file_and_wrong_channel_count(pipes, photo, tmp_path):
    with pytest.raises(FileNotFoundError, match="No mask file at '.*nowhere.png'.*mask_from_bbox"):
        E.inpaint(pipes["inpaint"], photo, tmp_path / "nowhere.png", "a dog")
    two_channels = np.zeros((SIZE, SIZE, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"shape \(64, 64, 2\): 2 is not a channel count a mask can have"):
        E.inpaint(pipes["inpaint"], photo, two_channels, "a dog")
    (tmp_path / "mask.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a readable image.*white = repaint"):
        E.inpaint(pipes["inpaint"], photo, tmp_path / "mask.png", "a dog")


def test_a_keep_mask_tensor_is_converted_explicitly(pipes, photo):
    from lessons_lib import masks as M

    keep = M.box_mask(SIZE, (16, 16, 48, 48))  # the course's convention: 1 = keep
    a = E.inpaint(pipes["inpaint"], photo, keep, "a dog", num_inference_steps=2, seed=1)
    b = E.inpaint(pipes["inpaint"], photo, E.mask_from_bbox(photo.size, (16, 16, 48, 48)), "a dog",
                  num_inference_steps=2, seed=1)
    assert np.array_equal(arr(a.image), arr(b.image)) and a.params["mask_bbox"] == [16, 16, 48, 48]


def test_cuda_without_a_gpu_says_so(monkeypatch):
    from lessons_lib.runtime import DeviceUnavailable

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailable, match="'cuda' was asked for, but no CUDA GPU.*T4 GPU"):
        E.load_pipeline("img2img", device="cuda")


def test_batch_size_is_checked_as_a_batch_size(pipes, photo):
    images = r"batch_size must be a whole number >= 1 \(images edited per pipeline call\)"
    with pytest.raises(ValueError, match=images) as err:
        E.instruct_edits(pipes["instruct-pix2pix"], photo, ["make it red"], batch_size=0)
    assert "denoising" not in str(err.value)
    with pytest.raises(ValueError, match=r"batch_size must be a whole number >= 1 \(tiles upscaled per pipeline"):
        E.upscale(pipes["upscale"], photo.resize((32, 32)), batch_size=-1)


# --------------------------------------------------------------------------- bad input (issue 27)
def _refused(pipe, error, match, call):
    """``call`` is refused with ``error`` matching ``match`` before the pipeline runs a step."""
    with UNetCalls(pipe) as calls, pytest.raises(error, match=match):
        call()
    assert calls.n == 0


def test_a_box_in_fractions_is_refused_with_the_pixel_box_it_means(pipes, photo, tmp_path):
    log = E.OperationLog(tmp_path / "ops.jsonl")
    message = (r"bbox \(0.2, 0.2, 0.8, 0.8\) looks like fractions of the image, but boxes are pixel "
               r"coordinates \(left, top, right, bottom\). On this 64x64 image those fractions are the box "
               r"\(13, 13, 51, 51\)")
    _refused(pipes["inpaint"], ValueError, message, lambda: E.edit_region(
        pipes["inpaint"], photo, (0.2, 0.2, 0.8, 0.8), "a dog", num_inference_steps=2, out_dir=tmp_path, log=log))
    assert list(tmp_path.iterdir()) == []  # nothing saved, nothing logged
    with pytest.raises(ValueError, match=message):
        E.mask_from_bbox(photo.size, (0.2, 0.2, 0.8, 0.8))
    with pytest.raises(ValueError, match=r"On this 64x64 image those fractions are the box \(0, 0, 64, 64\)"):
        E.mask_from_bbox(photo.size, (0, 0, 1, 1))  # one corner pixel: almost surely "the whole image"
    # The advice works, and on an image of a few pixels a 1-pixel box is just that.
    out = E.edit_region(pipes["inpaint"], photo, (13, 13, 51, 51), "a dog", num_inference_steps=2)
    assert out.params["bbox"] == [13, 13, 51, 51]
    assert arr(E.mask_from_bbox((4, 4), (0, 0, 1, 1))).sum() == 255


@pytest.mark.parametrize("bbox,error,match", [
    ((float("nan"), 0, 10, 10), ValueError, r"Each coordinate of bbox \(nan, 0, 10, 10\) must be a finite "
                                            r"number, got nan\. Boxes are \(left, top, right, bottom\) in pixels"),
    ((0, 0, float("inf"), 10), ValueError, "must be a finite number, got inf"),
    (None, TypeError, r"bbox must be \(left, top, right, bottom\) in pixels.*got None"),
    ("0,0,10,10", TypeError, "got '0,0,10,10'"),
    ((1, 2, 3), ValueError, r"got \(1, 2, 3\)"),
    ((True, 1, 5, 5), TypeError, r"Each coordinate of bbox \(True, 1, 5, 5\) must be a number, got True"),
    ((40, 40, 10, 10), ValueError, "not a box inside the 64x64 image"),
])
def test_malformed_boxes_get_one_message(pipes, photo, bbox, error, match):
    _refused(pipes["inpaint"], error, match,
             lambda: E.edit_region(pipes["inpaint"], photo, bbox, "a dog", num_inference_steps=2))
    with pytest.raises(error, match=match):
        E.mask_from_bbox(photo.size, bbox)


def test_boxes_from_arrays_are_pixels_rounded_to_whole_ones(photo):
    expected = arr(E.mask_from_bbox(photo.size, (8, 8, 40, 40)))
    for box in (np.array([8, 8, 40, 40]), torch.tensor([8.2, 7.6, 40.0, 39.5]), [8.0, 8.0, 40.0, 40.0]):
        assert np.array_equal(arr(E.mask_from_bbox(photo.size, box)), expected)
    with pytest.raises(TypeError, match=r"size must be the image size \(width, height\).*e.g. image.size"):
        E.mask_from_bbox(64, (8, 8, 40, 40))


BAD_PROMPTS = [(None, "prompt is None: give the text to follow"), (5, r"prompt must be text.*got 5 \(int\)"),
               (["a cat", "a dog"], "prompt must be one text.*got a list of 2: call the helper once per prompt")]


@pytest.mark.parametrize("prompt,match", BAD_PROMPTS)
@pytest.mark.parametrize("task,call", [
    ("img2img", lambda p, img, t: E.img2img(p, img, t, num_inference_steps=2)),
    ("img2img", lambda p, img, t: E.strength_sweep(p, img, t, num_inference_steps=2)),
    ("inpaint", lambda p, img, t: E.inpaint(p, img, E.mask_from_bbox(img.size, (8, 8, 24, 24)), t,
                                            num_inference_steps=2)),
    ("inpaint", lambda p, img, t: E.outpaint(p, img, t, border=8, num_inference_steps=2)),
    ("inpaint", lambda p, img, t: E.edit_region(p, img, (8, 8, 24, 24), t, num_inference_steps=2)),
    ("upscale", lambda p, img, t: E.upscale(p, img.resize((32, 32)), t, num_inference_steps=2)),
])
def test_a_prompt_that_is_not_one_text_is_refused(pipes, photo, task, call, prompt, match):
    _refused(pipes[task], TypeError, match, lambda: call(pipes[task], photo, prompt))


def test_instructions_and_negative_prompts_that_are_not_text(pipes, photo):
    p2p = pipes["instruct-pix2pix"]
    _refused(p2p, TypeError, r"instruction is None: give the text to follow, e.g. 'make it snowy'\.$",
             lambda: E.instruct_edit(p2p, photo, None))
    _refused(p2p, TypeError, "instruction must be one text, got a list of 2; use instruct_edits",
             lambda: E.instruct_edit(p2p, photo, ["a", "b"]))
    _refused(p2p, TypeError, "The instructions must be a text or a list of texts.*got None",
             lambda: E.instruct_edits(p2p, photo, None))
    _refused(p2p, TypeError, r"instruction 2 is None \(NoneType\), not text",
             lambda: E.instruct_edits(p2p, photo, ["make it red", None]))
    _refused(p2p, TypeError, "instruction is None", lambda: E.guidance_grid(p2p, photo, None, num_inference_steps=2))
    _refused(pipes["img2img"], TypeError, r"negative_prompt must be text.*got 3 \(int\)",
             lambda: E.img2img(pipes["img2img"], photo, "a cat", negative_prompt=3, num_inference_steps=2))
    _refused(pipes["upscale"], TypeError, "negative_prompt must be text", lambda: E.upscale(
        pipes["upscale"], photo.resize((32, 32)), "a cat", negative_prompt=3, num_inference_steps=2))


@pytest.mark.parametrize("side", [1, 7])
def test_images_too_small_for_the_upscaler_are_refused_saying_why(pipes, photo, side):
    tiny_photo = photo.resize((side, side))
    _refused(pipes["upscale"], ValueError, f"The image is {side}x{side} pixels; it must be at least 8 pixels on "
             r"each side\. Stable Diffusion works on 8x8-pixel cells.*image.resize\(\(8, 8\)\)",
             lambda: E.upscale(pipes["upscale"], tiny_photo, "a cat", num_inference_steps=2))
    # The tiny SD pipelines' UNet halves the 8x smaller latents once more: 16 px at least.
    _refused(pipes["img2img"], ValueError, r"at least 16 pixels on each side\. StableDiffusionImg2ImgPipeline "
             "needs it: its VAE shrinks the image 8x and its UNet halves that 1 time more",
             lambda: E.img2img(pipes["img2img"], photo.resize((8, 8)), "a cat", num_inference_steps=2))


def test_the_minimum_side_of_the_real_architectures():
    from types import SimpleNamespace

    from lessons_lib.editing.checks import min_image_side

    four_blocks = SimpleNamespace(config=SimpleNamespace(down_block_types=("CrossAttnDownBlock2D",) * 4))

    class StableDiffusionUpscalePipeline:  # the real x4 upscaler's UNet: 4 down blocks, no VAE before it
        unet = four_blocks

    class StableDiffusionImg2ImgPipeline:  # SD 1.5: VAE 8x, then 4 down blocks
        unet, vae_scale_factor = four_blocks, 8

    side, why = min_image_side(StableDiffusionUpscalePipeline())
    assert side == 8 and "halves the low-res image 3 times" in why and "128 px" in why
    side, why = min_image_side(StableDiffusionImg2ImgPipeline())
    assert side == 64 and "shrinks the image 8x and its UNet halves that 3 times more" in why
    assert min_image_side(None)[0] == 8


def test_lists_flags_and_sizes_of_the_wrong_kind(pipes, photo):
    img2img, inpaint, up, p2p = pipes["img2img"], pipes["inpaint"], pipes["upscale"], pipes["instruct-pix2pix"]
    small = photo.resize((32, 32))
    mask = E.mask_from_bbox(photo.size, (8, 8, 24, 24))
    _refused(img2img, TypeError, r"strengths must be a list of numbers, e.g. STRENGTHS.*got 0.5\. For one strength "
             "call img2img", lambda: E.strength_sweep(img2img, photo, "a cat", strengths=0.5))
    _refused(img2img, TypeError, "strengths must be a list of numbers.*got None",
             lambda: E.strength_sweep(img2img, photo, "a cat", strengths=None))
    _refused(p2p, TypeError, "image_guidance_scales must be a list of numbers.*got 1.5",
             lambda: E.guidance_grid(p2p, photo, "make it red", image_guidance_scales=1.5))
    _refused(p2p, ValueError, "The list of guidance_scales is empty",
             lambda: E.guidance_grid(p2p, photo, "make it red", guidance_scales=[]))
    _refused(inpaint, TypeError, "paste_back must be True or False, got 'no'",
             lambda: E.inpaint(inpaint, photo, mask, "a dog", paste_back="no", num_inference_steps=2))
    _refused(inpaint, ValueError, "feather must be a finite number >= 0, got nan",
             lambda: E.edit_region(inpaint, photo, (8, 8, 24, 24), "a dog", feather=float("nan")))
    _refused(up, TypeError, "tile must be True or False, got 'no'",
             lambda: E.upscale(up, small, "a cat", tile="no", num_inference_steps=2))
    _refused(up, ValueError, r"tile_size must be a whole number >= 1 \(pixels\), got 'a'",
             lambda: E.upscale(up, small, "a cat", tile=True, tile_size="a"))
    _refused(up, ValueError, r"overlap must be a whole number >= 0 \(pixels\), got None",
             lambda: E.upscale(up, small, overlap=None))
    _refused(up, ValueError, r"max_input must be a whole number >= 1 \(pixels: the longest input side",
             lambda: E.upscale(up, small, max_input=None))
    for border in (8.5, None, (8, 8), (8, -8, 8, 8)):
        _refused(inpaint, ValueError, r"border must be a whole number.*pixels.*four of them \(left, top, right, "
                 r"bottom\)",
                 lambda b=border: E.outpaint(inpaint, photo, "a cat", border=b))
    _refused(img2img, ValueError, r"seed must be a whole number from 0 to 2\*\*63 - 1",
             lambda: E.img2img(img2img, photo, "a cat", seed=2**70))
    # diffusers' schedulers refuse more steps than their 1000 training steps, mid-call; a huge
    # guidance scale returns a black picture (inf/NaN latents) as if it were a result.
    _refused(img2img, ValueError, r"num_inference_steps must be a whole number between 1 and 1000 \(denoising "
             r"steps\), got 1001\. The models were trained on a 1000-step schedule",
             lambda: E.img2img(img2img, photo, "a cat", strength=0.001, num_inference_steps=1001))
    _refused(img2img, ValueError, r"guidance_scale must be in \[0, 100\], got 1e\+30",
             lambda: E.img2img(img2img, photo, "a cat", guidance_scale=1e30, num_inference_steps=2))
    out = E.img2img(img2img, photo, "a cat", guidance_scale=torch.tensor(7.5), num_inference_steps=2)
    assert out.params["guidance_scale"] == 7.5  # a 0-d tensor is the number it holds
    _refused(inpaint, ValueError, r"The mask holds NaN or infinite values \(4096 of 4096\)",
             lambda: E.inpaint(inpaint, photo, np.full((SIZE, SIZE), np.nan), "a dog"))
    _refused(inpaint, TypeError, "A mask array must hold numbers .* got dtype <U1",
             lambda: E.inpaint(inpaint, photo, np.full((SIZE, SIZE), "x"), "a dog"))
    with pytest.raises(TypeError, match="img2img needs a StableDiffusionImg2ImgPipeline.*got None. Load it first"):
        E.img2img(None, photo, "a cat")
    with pytest.raises(TypeError, match=r"apply_memory_options needs a pipeline from load_pipeline\(task\)"):
        E.apply_memory_options(None)


def test_the_panel_keeps_values_beyond_its_sliders_default_ranges(pipes, photo):
    panel = E.InstructPanel(pipes["instruct-pix2pix"], photo, image_guidance_scale=7.0, guidance_scale=0.5,
                            num_inference_steps=150)
    assert (panel.image_guidance_scale.value, panel.guidance_scale.value, panel.steps.value) == (7.0, 0.5, 150)


def test_outputs_are_checked_before_any_edit_runs(pipes, photo, tmp_path):
    p2p = pipes["instruct-pix2pix"]
    a_file = tmp_path / "taken.png"
    a_file.write_bytes(b"x")
    _refused(p2p, NotADirectoryError, "The out_dir '.*taken.png' is a file, not a folder",
             lambda: E.instruct_edits(p2p, photo, ["make it red"], num_inference_steps=2, out_dir=a_file))
    _refused(p2p, TypeError, r"log must be an OperationLog, e.g. log=OperationLog\('edits.jsonl'\), got 'x.jsonl'",
             lambda: E.instruct_edits(p2p, photo, ["make it red"], num_inference_steps=2, log="x.jsonl"))
    _refused(pipes["inpaint"], NotADirectoryError, "is a file, not a folder", lambda: E.edit_region(
        pipes["inpaint"], photo, (8, 8, 24, 24), "a dog", num_inference_steps=2, out_dir=a_file))
    _refused(pipes["img2img"], TypeError, "InstructPanel needs a StableDiffusionInstructPix2PixPipeline",
             lambda: E.InstructPanel(pipes["img2img"], photo))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"] and a_file.read_bytes() == b"x"
    with pytest.raises(TypeError, match="save_image saves a PIL image, got NoneType"):
        E.save_image(None, tmp_path, "a")
    with pytest.raises(TypeError, match=r"OperationLog needs the path of its file"):
        E.OperationLog(None)
    with pytest.raises(TypeError, match="OperationLog.add logs an EditResult.*got NoneType"):
        E.OperationLog(tmp_path / "log.jsonl").add(None)
    with pytest.raises(ValueError, match="max_length must be a whole number >= 8, got '9'"):
        E.safe_filename("a cat", max_length="9")
    with pytest.raises(ValueError, match="grid_figure draws what guidance_grid returns"):
        E.grid_figure([])
    with pytest.raises(TypeError, match="show_edit shows edits.*edit 1 is NoneType"):
        E.show_edit(photo, None)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"dtype": "fp16"}, TypeError, "dtype must be a torch dtype such as torch.float16"),
    ({"variant": 16}, TypeError, r"variant must be a weight variant such as 'fp16', got 16 \(int\)"),
    ({"model_id": 3}, TypeError, "model_id must be a hub id such as 'stable-diffusion-v1-5/stable-diffusion-v1-5'"),
    ({"model_id": ""}, ValueError, "model_id must be a hub id .* got an empty string"),
    ({"profile": 1}, TypeError, "profile must be 'fast' or 'full'"),
    ({"cpu_offload": "yes"}, TypeError, "cpu_offload must be True or False, got 'yes'"),
])
def test_load_pipeline_arguments_of_the_wrong_kind(cache_root, kwargs, error, match):
    with pytest.raises(error, match=match):
        E.load_pipeline("img2img", **kwargs)


# --------------------------------------------------------------------------- the course-trained tiny pipeline
def test_the_fast_img2img_pipeline_loads_the_course_trained_parts(pipes):
    from lessons_lib import course_weights

    parts = T.course_parts_of("img2img")
    assert set(parts) == {"vae", "unet", "text_encoder"}, "make weights ARGS='--only editing/' ships them"
    pipe = pipes["img2img"]  # through load_pipeline: save_pretrained, then from_pretrained
    for part, name in parts.items():
        shipped = course_weights.load(name)[0].state_dict()
        loaded = getattr(pipe, part).state_dict()
        assert all(torch.equal(loaded[k].float(), v.float()) for k, v in shipped.items()), part
    assert pipe.vae.config.scaling_factor == course_weights.entry(parts["vae"])["config"]["model"]["scaling_factor"]
    # the marker names the weights, so retrained weights rebuild the saved folder
    marker = json.loads((T.tiny_pipeline_dir("img2img") / "lessons_tiny.json").read_text())
    assert marker["course"] == {p: course_weights.entry(n)["sha256"] for p, n in parts.items()}
    # the rehearsal's stand-ins under the real hub ids stay random; so do the tasks without course weights
    assert not torch.equal(T.build_tiny_pipeline("img2img").unet.conv_in.weight, pipe.unet.conv_in.weight.float())
    assert T.course_parts_of("inpaint") == {}


def test_the_course_weights_learned_their_tasks():
    from lessons_lib import course_weights

    vae, unet = course_weights.entry("editing/vae"), course_weights.entry("editing/text2img-unet")
    assert vae["metrics"]["model"] > vae["metrics"]["baseline"]        # beats a thumbnail of the latent's grid
    assert unet["metrics"]["model"] < unet["metrics"]["baseline"]      # the caption helps predict the noise
    judge = course_weights.entry("editing/classifier")
    assert judge["metrics"]["model"] > 0.45 and judge["config"]["class_names"][3] == "cat"


def test_the_judge_and_its_helpers(photo):
    from lessons_lib.data import CIFAR10_CLASSES
    from lessons_lib.editing import judging

    targets = judging.other_classes(range(10))
    assert all(t != c for c, t in zip(range(10), targets)) and sorted(targets) == list(range(10))
    assert judging.prompt_for(3) == "a photo of a cat" and CIFAR10_CLASSES[targets[3]] == "ship"
    judge, accuracy = judging.load_judge("cpu")
    assert 0.45 < accuracy < 1
    named = judging.judge_classes(judge, [photo, photo.resize((32, 32))])
    assert named.shape == (2,) and named.dtype == torch.int64
    moved = judging.distance_to_input([photo, photo], [photo, Image.new("RGB", photo.size)])
    assert moved[0] == 0 and moved[1] > 0.2


def test_class_labels_of_the_course_photos(cifar_subset, monkeypatch):
    from lessons_lib import data

    monkeypatch.setenv("LESSONS_DATA_DIR", str(cifar_subset.parent))
    test = data.colour_images("test", size=32, limit=20, profile="fast")
    labels = data.class_labels(test)
    folder = test.dataset.dataset
    assert labels == [folder.label(test.dataset.indices[i]) for i in test.indices]
    assert folder.classes == list(data.CIFAR10_CLASSES)
    assert data.class_labels(data.TensorImages(torch.rand(2, 3, 8, 8))) is None


def test_img2img_many_batches_what_img2img_does_one_by_one(pipes, photo):
    pipe = pipes["img2img"]
    other = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    prompts = ["a photo of a ship", "a photo of a dog", "a photo of a frog"]
    with UNetCalls(pipe) as calls:
        many = E.img2img_many(pipe, [photo, other, photo], prompts, 0.6, 5, seed=3, batch_size=2)
    assert calls.n == 2 * 3   # two pipeline calls (2 + 1 images), int(5 x 0.6) = 3 steps each
    for image, prompt, result in zip([photo, other, photo], prompts, many):
        one = E.img2img(pipe, image, prompt, 0.6, 5, seed=3)
        assert result.params == one.params and result.steps_run == one.steps_run == 3
        assert np.abs(arr(result.image) - arr(one.image)).max() <= 2   # the same noise: the same picture
    with pytest.raises(ValueError, match="one prompt per image: got 2 images and 1 prompts"):
        E.img2img_many(pipe, [photo, photo], ["a cat"], 0.6, 5)
    with pytest.warns(UserWarning, match="0 denoising steps"):
        kept = E.img2img_many(pipe, [photo], ["a cat"], 0.1, 5)
    assert kept[0].steps_run == 0 and arr(kept[0].image).shape == arr(photo).shape
