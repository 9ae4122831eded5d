"""Tiny editing pipelines built offline from configs (the fast profile), and a Hugging Face
cache seeded with random ones under the real hub ids (the offline rehearsal).

Each tiny pipeline has the real architecture family (UNet in_channels 4 / 8 / 9 / 7, an
SD-style VAE, a CLIP text encoder and a CLIP tokenizer whose small vocabulary is
written here) and the real repository's scheduler configuration, but about a million
parameters instead of a billion. Where the course ships trained parts for a task
(:data:`COURSE_PARTS`: the img2img pipeline's VAE, UNet and text encoder, trained by
``make weights`` on the CIFAR-10 subset at 64 px), they replace the random ones, and the
pipeline makes real (small, blurry) edits; the others are random, and their pictures
noise-like: they test the plumbing, not the looks. :func:`tiny_pipeline_dir` saves one
with ``save_pretrained`` so that the fast profile loads it back with ``from_pretrained``,
the real loading path.

:func:`seed_hub_cache` lays the same tiny pipelines out like the real repositories in
a Hugging Face cache (``models--org--name/snapshots/<commit>/`` with the published
``model_index.json`` components, safety checker and feature extractor included, and
``.fp16`` weight files exactly for the components :data:`.specs.PUBLISHED` records as
having them), so the full profile's loading code can run offline in CI exactly as it
will in Colab: a variant a repository does not publish cannot be loaded here either.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..runtime import cache_dir
from .specs import MODEL_INDEX, PUBLISHED, SCHEDULER_CONFIGS, TASKS, PipelineSpec, hub_id, task_spec

__all__ = ["build_tiny_pipeline", "tiny_pipeline_dir", "seed_hub_cache", "TINY_VERSION", "COURSE_PARTS",
           "tiny_part", "course_parts_of"]

# Bump when the tiny configs change: stale cached tiny pipelines are then rebuilt.
TINY_VERSION = 2
_MARKER = "lessons_tiny.json"
_TINY_DIRS: dict[tuple[str, str], Path] = {}  # (cache root, task) -> folder checked in this process


def _diffusers():
    import diffusers

    return diffusers


# --------------------------------------------------------------------------- tokenizer and models
def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for the bytes 0..255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


# A handful of merges so common words in the lessons' prompts become single tokens,
# as they would with the real 49k-token vocabulary.
_TINY_WORDS = ("a", "the", "make", "it", "turn", "into", "photo", "of", "cat", "dog", "sky",
               "snow", "winter", "summer", "painting", "style", "red", "blue", "green",
               "add", "sunset", "night", "day", "cartoon", "sketch", "oil", "watercolor")


def _tiny_vocab() -> tuple[dict[str, int], list[str]]:
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    for word in _TINY_WORDS:
        # Merge left to right: "c a", "ca t</w>" ... each intermediate becomes a token.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge = f"{pieces[0]} {pieces[1]}"
            joined = pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            if joined not in tokens:
                tokens.append(joined)
            pieces = [joined] + pieces[2:]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def _tiny_tokenizer(workdir: Path):
    """A CLIPTokenizer from a vocab.json + merges.txt written here (model_max_length 77)."""
    from transformers import CLIPTokenizer

    vocab, merges = _tiny_vocab()
    src = workdir / "tokenizer-src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(src), model_max_length=77)
    shutil.rmtree(src)
    return tokenizer


def _tiny_text_encoder(vocab_size: int, bos: int, eos: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=4, projection_dim=32,
                            max_position_embeddings=77, bos_token_id=bos, eos_token_id=eos,
                            pad_token_id=eos, layer_norm_eps=1e-5)
    return CLIPTextModel(config)


def _tiny_unet(task: PipelineSpec):
    kwargs = dict(sample_size=8, in_channels=task.unet_in_channels, out_channels=4,
                  block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                  cross_attention_dim=32, attention_head_dim=(2, 4))
    if task.name == "upscale":
        # The x4 upscaler conditions on the noise level added to the low-res image
        # (class labels 0..max_noise_level=350), like the real checkpoint's 1000 embeddings.
        kwargs["num_class_embeds"] = 1000
    return _diffusers().UNet2DConditionModel(**kwargs)


def _tiny_vae(task: PipelineSpec):
    channels = (16, 16, 32, 32)[: task.vae_blocks]
    return _diffusers().AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * task.vae_blocks,
        up_block_types=("UpDecoderBlock2D",) * task.vae_blocks,
        layers_per_block=1, norm_num_groups=8, sample_size=64,
        # The upscaler's VAE uses 0.08333; SD 1.5's uses 0.18215.
        scaling_factor=0.08333 if task.name == "upscale" else 0.18215,
        # The real configs leave force_upcast out, so it takes diffusers' default, True: the
        # upscale pipeline then decodes in fp32 even when loaded in fp16 (its VAE overflows
        # to NaN in fp16). Said explicitly here so the rehearsal keeps that path.
        force_upcast=True)


# --------------------------------------------------------------------------- course-trained parts
# Which course weights replace a tiny pipeline's random parts (``make weights`` trains them from
# the CIFAR-10 subset at the fast profile's 64 px: the "editing/" recipes). A part
# whose weights are not shipped stays random.
COURSE_PARTS = {"img2img": {"vae": "editing/vae", "unet": "editing/text2img-unet",
                            "text_encoder": "editing/text_encoder"}}
# The kinds of part course weights can hold, and how each is built from an entry's config.
_PART_CLASSES = {"vae": ("diffusers", "AutoencoderKL"), "unet": ("diffusers", "UNet2DConditionModel"),
                 "text_encoder": ("transformers", "CLIPTextModel")}


def tiny_part(kind: str, config: dict):
    """A randomly initialised pipeline part of ``kind`` ("vae", "unet", "text_encoder") from its
    config, or the course's photo classifier (``"classifier"``), which judges what an edit shows."""
    if kind == "classifier":
        from ..models.classifier import PhotoClassifier

        return PhotoClassifier(**config)
    library, cls = _PART_CLASSES[kind]
    if library == "transformers":
        import transformers

        return getattr(transformers, cls)(transformers.CLIPTextConfig(**config))
    return getattr(_diffusers(), cls).from_config(config)


def _course_part(name: str, state: dict, info: dict):
    """The course weights' builder for ``editing/<part>`` (see course_weights.load)."""
    from .. import course_weights

    return course_weights.load_into(tiny_part(info["config"]["kind"], info["config"]["model"]), state, name)


def course_parts_of(task: str) -> dict[str, str]:
    """{part: course-weights name} of the shipped parts that replace ``task``'s random ones."""
    from .. import course_weights

    shipped = course_weights.manifest()["weights"]
    return {part: name for part, name in COURSE_PARTS.get(task, {}).items() if name in shipped}


def _scheduler(key: str):
    """A scheduler configured from the real repository's scheduler_config.json."""
    config = SCHEDULER_CONFIGS[key]
    return getattr(_diffusers(), config["_class_name"]).from_config(config)


def _tiny_safety_parts():
    """A tiny StableDiffusionSafetyChecker and its CLIP image processor (the published
    repositories carry both; load_pipeline never loads them: safety_checker=None)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                     "num_attention_heads": 4},
                        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
                        projection_dim=32)
    return StableDiffusionSafetyChecker(config), CLIPImageProcessor(size={"shortest_edge": 32},
                                                                    crop_size={"height": 32, "width": 32})


def build_tiny_pipeline(task: str, seed: int = 0, course: bool = False):
    """A tiny pipeline for ``task`` (in memory; deterministic in ``seed``): randomly initialised,
    or with ``course=True`` its parts that the course trained (:func:`course_parts_of`) loaded."""
    spec = task_spec(task)
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        tokenizer = _tiny_tokenizer(Path(tmp))
        torch.manual_seed(seed)
        unet = _tiny_unet(spec)
        torch.manual_seed(seed)
        vae = _tiny_vae(spec)
        torch.manual_seed(seed)
        text_encoder = _tiny_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                 scheduler=_scheduler(task))
    if course:
        from .. import course_weights

        parts.update({part: course_weights.load(name)[0] for part, name in course_parts_of(task).items()})
    if task == "upscale":
        parts.update(low_res_scheduler=_scheduler("upscale/low_res_scheduler"), max_noise_level=350)
    else:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return getattr(_diffusers(), spec.pipeline_class)(**parts)


# --------------------------------------------------------------------------- the fast profile's folders
def tiny_pipeline_dir(task: str) -> Path:
    """The saved tiny pipeline for ``task``, built (atomically) the first time it is asked for."""
    task_spec(task)
    root = cache_dir() / "tiny-pipelines"
    final = root / task
    if _TINY_DIRS.get((str(root), task)) == final and (final / _MARKER).is_file():
        return final  # checked earlier in this process
    from .. import course_weights

    # The course weights' checksums are part of the marker: retrained weights rebuild the folder.
    marker = {"version": TINY_VERSION, "task": task, "diffusers": _diffusers().__version__,
              "course": {part: course_weights.entry(name)["sha256"] for part, name in course_parts_of(task).items()}}
    if _marker_ok(final, marker):
        _TINY_DIRS[(str(root), task)] = final
        return final
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the final folder, then rename: a half-written pipeline is never seen.
    tmp = Path(tempfile.mkdtemp(prefix=f".{task}-", dir=root))
    try:
        build_tiny_pipeline(task, course=True).save_pretrained(tmp, safe_serialization=True)
        (tmp / _MARKER).write_text(json.dumps(marker), encoding="utf-8")
        if final.exists():  # stale version: move it aside, then swap in the new one
            trash = Path(tempfile.mkdtemp(prefix=f".old-{task}-", dir=root))
            os.replace(final, trash / task)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not _marker_ok(final, marker):  # another process won the race: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _TINY_DIRS[(str(root), task)] = final
    return final


def _marker_ok(folder: Path, marker: dict) -> bool:
    try:
        return json.loads((folder / _MARKER).read_text(encoding="utf-8")) == marker
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- the offline rehearsal
def seed_hub_cache(hub_cache: str | Path, tasks=None, fp16: dict[str, tuple[str, ...]] | None = None
                   ) -> dict[str, Path]:
    """Write tiny pipelines into the Hugging Face cache folder ``hub_cache`` (what
    ``HF_HUB_CACHE`` points at) under the full profile's hub ids, laid out like the real
    repositories. Returns {task: snapshot folder}. With ``HF_HUB_OFFLINE=1`` and
    ``HF_HUB_CACHE=hub_cache``, ``load_pipeline(task, profile="full")`` then loads them.

    ``fp16`` ({task: components}) replaces the record's fp16 files for a task, e.g. ``()``
    for a repository that publishes none (how the variant fallback is tested)."""
    hub_cache = Path(hub_cache)
    snapshots = {}
    for task in tasks or TASKS:
        task_spec(task)
        repo = hub_id(task)
        commit = hashlib.sha1(f"lessons-rehearsal/{repo}/{TINY_VERSION}".encode()).hexdigest()
        repo_dir = hub_cache / ("models--" + repo.replace("/", "--"))
        snapshot = repo_dir / "snapshots" / commit
        if snapshot.exists():
            shutil.rmtree(snapshot)
        pipe = build_tiny_pipeline(task)
        pipe.save_pretrained(snapshot, safe_serialization=True)
        index = MODEL_INDEX[task]
        if "safety_checker" in index:
            checker, extractor = _tiny_safety_parts()
            checker.save_pretrained(snapshot / "safety_checker", safe_serialization=True)
            extractor.save_pretrained(snapshot / "feature_extractor")
        components = PUBLISHED[task].fp16 if fp16 is None or task not in fp16 else fp16[task]
        if components:
            _write_fp16_files(pipe, snapshot, components)
        # The published model_index.json (component list, safety checker included).
        (snapshot / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(commit, encoding="utf-8")
        snapshots[task] = snapshot
    return snapshots


def _write_fp16_files(pipe, snapshot: Path, components: tuple[str, ...]) -> None:
    """Add <name>.fp16.safetensors beside the weights of exactly those ``components``."""
    with tempfile.TemporaryDirectory() as tmp:
        pipe.to(torch.float16).save_pretrained(tmp, safe_serialization=True, variant="fp16")
        for path in Path(tmp).rglob("*.fp16.safetensors"):
            if path.relative_to(tmp).parts[0] not in components:
                continue
            target = snapshot / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    pipe.to(torch.float32)


def _register() -> None:
    from .. import course_weights

    course_weights.register("editing/", _course_part)


_register()
