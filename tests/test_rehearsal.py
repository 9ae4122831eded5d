"""The full profile rehearsed offline, as it will run in Colab.

A temporary Hugging Face cache is seeded with tiny pipelines laid out like the real
repositories (published model_index.json components with the safety checker and its
feature extractor, the published scheduler configs, fp16 weight files exactly for the
components specs.PUBLISHED records) under the real hub ids of lessons_lib.registry. The full
profile's loading and editing code then runs against it with HF_HUB_OFFLINE=1. Every notebook
runs in the full profile against such a cache in tests/test_full_profile.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lessons_lib import editing as E
from lessons_lib import registry
from lessons_lib.editing import loading, specs, tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    import huggingface_hub.constants as hub_constants

    root = tmp_path_factory.mktemp("hf-hub-cache")
    snapshots = tiny.seed_hub_cache(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(root))
    mp.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads these when it is imported; the loaders look them up at call time.
    mp.setattr(hub_constants, "HF_HUB_CACHE", str(root))
    mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    E.clear_pipeline_cache()
    yield root, snapshots
    E.clear_pipeline_cache()
    mp.undo()


def test_the_cache_is_laid_out_like_the_real_repositories(hub_cache):
    root, snapshots = hub_cache
    for task, snapshot in snapshots.items():
        repo = specs.hub_id(task)
        repo_dir = root / ("models--" + repo.replace("/", "--"))
        assert (repo_dir / "refs" / "main").read_text() == snapshot.name
        index = json.loads((snapshot / "model_index.json").read_text())
        assert index == specs.MODEL_INDEX[task]
        scheduler = json.loads((snapshot / "scheduler" / "scheduler_config.json").read_text())
        for key, value in specs.SCHEDULER_CONFIGS[task].items():
            if not key.startswith("_"):
                assert scheduler[key] == value, (task, key)
        assert scheduler["_class_name"] == index["scheduler"][1]
        for component in index:
            if not component.startswith("_") and isinstance(index[component], list):
                assert (snapshot / component).is_dir(), (task, component)
        # fp16 files exactly where the record saw them: none fabricated (the upscaler's UNet,
        # whose file list was not seen, gets none), none left out.
        fp16 = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*.fp16.*"))
        names = {"text_encoder": "model.fp16.safetensors"}
        assert fp16 == sorted(f"{c}/{names.get(c, 'diffusion_pytorch_model.fp16.safetensors')}"
                              for c in specs.PUBLISHED[task].fp16), task
    assert (snapshots["img2img"] / "safety_checker" / "config.json").is_file()
    assert (snapshots["img2img"] / "feature_extractor" / "preprocessor_config.json").is_file()


def test_the_variant_record_describes_the_registry_repositories():
    for task, spec in specs.TASKS.items():
        record = specs.PUBLISHED[task]
        assert record.repo == registry.SOURCES[task].location == specs.hub_id(task)
        assert record.seen and "huggingface.co/" + record.repo in record.seen  # where it was read
        components = {k for k, v in specs.MODEL_INDEX[task].items() if isinstance(v, list)}
        assert set(record.fp16) | set(record.no_fp16) <= components and not set(record.fp16) & set(record.no_fp16)
        assert spec.variants == (("fp16",) if record.fp16 else ())
        assert specs.published_variants(record.repo) == spec.variants
    assert specs.published_variants("someone/else") is None
    assert specs.TASKS["instruct-pix2pix"].variants == ()  # timbrooks/instruct-pix2pix: fp32 files only


def test_all_four_pipelines_load_in_the_full_profile_offline(hub_cache):
    for task, spec in specs.TASKS.items():
        pipe = E.load_pipeline(task, profile="full", memory_safe=True)
        assert type(pipe).__name__ == spec.pipeline_class
        assert pipe.name_or_path == specs.hub_id(task)  # the hub id, not a local folder
        assert type(pipe.scheduler).__name__ == spec.scheduler
        assert pipe.unet.config.in_channels == spec.unet_in_channels
        assert getattr(pipe, "safety_checker", None) is None
        assert pipe.vae.use_slicing and pipe.vae.use_tiling  # the memory options are on
        assert not E.attention_slicing_active(pipe)  # SDPA: no attention slicing


def test_the_full_profile_edits_run_offline(hub_cache):
    photo = E.demo_image("chelsea", 64)
    img2img = E.load_pipeline("img2img", profile="full", memory_safe=True)
    assert E.img2img(img2img, photo, "a cat", strength=0.5, num_inference_steps=4).steps_run == 2
    inpaint = E.load_pipeline("inpaint", profile="full", memory_safe=True)
    out = E.edit_region(inpaint, photo, (16, 16, 48, 48), "a dog", num_inference_steps=4)
    assert out.image.size == (64, 64) and out.params["model"] == specs.hub_id("inpaint")
    p2p = E.load_pipeline("instruct-pix2pix", profile="full", memory_safe=True)
    assert E.instruct_edit(p2p, photo, "make it snowy", num_inference_steps=2).steps_run == 2
    up = E.load_pipeline("upscale", profile="full", memory_safe=True)
    assert E.upscale(up, photo.resize((32, 32)), "a cat", num_inference_steps=2).image.size == (128, 128)


def test_fp16_variant_weights_are_loaded_where_published(tmp_path, hub_cache, monkeypatch):
    import huggingface_hub.constants as hub_constants

    snapshot = tiny.seed_hub_cache(tmp_path, tasks=["img2img", "instruct-pix2pix"])
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    # Without its full-precision UNet file, the img2img repository loads only through variant="fp16".
    (snapshot["img2img"] / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    E.clear_pipeline_cache()
    pipe = E.load_pipeline("img2img", profile="full", dtype=torch.float16, memory_safe=False)
    assert pipe.unet.dtype == torch.float16
    with pytest.raises(Exception):  # noqa: B017 - proves the file above is really needed without the variant
        loading._from_pretrained(specs.TASKS["img2img"], specs.hub_id("img2img"), torch.float32, None)
    # timbrooks/instruct-pix2pix publishes no fp16 files: not asked for, so no fallback line;
    # loaded in fp16 from the full-precision ones.
    p2p = E.load_pipeline("instruct-pix2pix", profile="full", dtype=torch.float16, memory_safe=False)
    assert p2p.unet.dtype == torch.float16
    E.clear_pipeline_cache()


def test_a_missing_variant_loads_the_default_weights_with_one_line(tmp_path, hub_cache, monkeypatch, capsys):
    import diffusers
    import huggingface_hub.constants as hub_constants

    # The x4 upscaler's repository laid out without a single fp16 file (as a copy of it, or an
    # older state of it, may be): variant="fp16" must still load.
    tiny.seed_hub_cache(tmp_path, tasks=["upscale"], fp16={"upscale": ()})
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    repo = specs.hub_id("upscale")
    assert not list(tmp_path.rglob("*.fp16.*"))
    with pytest.raises(ValueError, match="variant=fp16.*no such modeling files"):  # diffusers alone
        diffusers.StableDiffusionUpscalePipeline.from_pretrained(repo, variant="fp16")
    E.clear_pipeline_cache()
    capsys.readouterr()
    pipe = E.load_pipeline("upscale", profile="full", dtype=torch.float16, variant="fp16", memory_safe=False)
    assert (pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype) == (torch.float16,) * 3
    lines = [line for line in capsys.readouterr().out.splitlines() if "fp16" in line]
    assert lines == [f"'{repo}' publishes no fp16 weight files: loading its default weights and casting "
                     "them to float16 instead."]
    E.clear_pipeline_cache()


def test_the_upscaler_decodes_in_fp32_when_loaded_in_fp16(hub_cache, capsys):
    """Its VAE overflows to NaN in fp16; diffusers upcasts it for decoding (vae.config.force_upcast)
    and the course's loading and memory options leave that in place."""
    E.clear_pipeline_cache()
    capsys.readouterr()
    # The record's layout: fp16 files for its VAE and text encoder only, so diffusers loads a
    # mixture; nothing falls back.
    pipe = E.load_pipeline("upscale", profile="full", dtype=torch.float16, memory_safe=True)
    assert "publishes no" not in capsys.readouterr().out
    assert pipe.unet.dtype == pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast is True
    decoded = []
    hook = pipe.vae.decoder.register_forward_pre_hook(lambda module, args: decoded.append(args[0].dtype))
    try:
        out = E.upscale(pipe, E.demo_image("chelsea", 32), "a cat", num_inference_steps=2)
    finally:
        hook.remove()
    assert decoded and set(decoded) == {torch.float32}  # decoded in fp32 ...
    assert pipe.vae.dtype == torch.float16  # ... and cast back afterwards, as diffusers does
    assert out.image.size == (128, 128) and np.isfinite(np.asarray(out.image, dtype=np.float64)).all()
    E.clear_pipeline_cache()


@pytest.mark.parametrize("version,name", [("0.36.0", "torch_dtype"), ("0.39.2", "torch_dtype"),
                                          ("0.40.0", "dtype"), ("0.42.1", "dtype"), ("1.0.0.dev0", "dtype")])
def test_dtype_argument_follows_the_rename_in_diffusers_0_40(monkeypatch, version, name):
    import diffusers

    monkeypatch.setattr(diffusers, "__version__", version)
    assert loading.dtype_argument() == name


def test_attention_slicing_only_without_sdpa(hub_cache, monkeypatch):
    pipe = tiny.build_tiny_pipeline("img2img")
    E.apply_memory_options(pipe)
    assert not E.attention_slicing_active(pipe)
    monkeypatch.delattr(torch.nn.functional, "scaled_dot_product_attention")
    E.apply_memory_options(pipe)
    assert E.attention_slicing_active(pipe)
