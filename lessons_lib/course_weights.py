"""Course weights: small checkpoints the project trains itself and ships with the package.

Some lessons need more training than a CPU gives in a notebook's two minutes (the zoo's
GANs and diffusion models, the inpainters, the style and translation networks). For
them the course ships weights it trained from the CIFAR-10 subset with one command
(``make weights``, the maintainers' command in the repository). Each lives in
``lessons_lib/weights/<name>.safetensors`` (float16: half the size, and no reported
metric moves), described in ``weights/manifest.json``: the file's sha256, how to build
the network (``config``), the command and data it was trained with, its epochs and
training time, and its held-out metrics beside the baseline's.

    model, entry = course_weights.load("zoo/unet", device)   # the network, built, loaded, eval mode
    state, entry = course_weights.load_state("zoo/unet")      # or the verified float32 state dict alone

:func:`load` is the one entry point for every name in the manifest: the lesson that owns a
prefix (``zoo/``, ``inpainting/``, ``style/``, ``translation/``) registers how to build its
networks from an entry's ``config`` (:func:`register`), and ``load`` imports that lesson when
it is first asked for one of its names.

A notebook in the fast profile trains briefly (so the loop is seen) and then shows the
course weights' results, saying which is which; in the full profile it trains for real
and shows the course weights beside its own result.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Callable, Mapping

import torch

from .files import atomic_write, atomic_write_text

__all__ = ["WEIGHTS_DIR", "MANIFEST", "WeightsError", "manifest", "entry", "load", "register", "load_state",
           "load_into", "save_state", "file_sha256", "MAX_TOTAL_BYTES"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
# What the repository may carry in all (COURSE.md: 60 MB at most).
MAX_TOTAL_BYTES = 60 * 1000 * 1000


class WeightsError(RuntimeError):
    """Course weights that are missing, damaged or do not fit the network asked for."""


def manifest(path: str | Path | None = None) -> dict:
    """The manifest: ``{"weights": {name: entry}}``; empty when nothing is shipped yet."""
    path = Path(path) if path is not None else MANIFEST
    if not path.is_file():
        return {"weights": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"The course weights' manifest '{path}' is damaged ({err}). Reinstall the "
                           f"course package, or retrain with `make weights`.") from None
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise WeightsError(f"'{path}' is not a course-weights manifest (no 'weights' table).")
    return data


def entry(name: str, folder: str | Path | None = None) -> dict:
    """The manifest entry of course weights ``name`` (e.g. ``"zoo/unet"``)."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    known = manifest(folder / "manifest.json")["weights"]
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise WeightsError(f"No course weights named {name!r} (shipped: {listed}). Train your own "
                           f"(an epoch number instead of 'course'), or retrain them with `make weights`.")
    return known[name]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state(name: str, folder: str | Path | None = None,
               device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(float32 state dict, manifest entry) of course weights ``name``, checksum verified."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    info = entry(name, folder)
    path = folder / info["file"]
    if not path.is_file():
        raise WeightsError(f"The course weights file '{path}' is missing. Reinstall the course package "
                           f"(pip install --force-reinstall lessons_lib), or retrain with `make weights`.")
    if file_sha256(path) != info["sha256"]:
        raise WeightsError(f"'{path}' does not match its checksum in the manifest: the file is damaged "
                           f"or was changed. Reinstall the course package, or retrain with `make weights`.")
    state = load_file(str(path), device=str(device))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, info


#: The module that registers the builders of each name prefix (imported when first needed).
OWNERS = {"zoo/": "lessons_lib.zoo", "inpainting/": "lessons_lib.inpainting", "style/": "lessons_lib.style",
          "translation/": "lessons_lib.translation", "editing/": "lessons_lib.editing.tiny"}
#: name or prefix -> builder(name, state, entry) returning the network with the weights loaded.
_BUILDERS: dict[str, Callable[[str, dict, dict], torch.nn.Module]] = {}


def register(name: str, builder: Callable[[str, dict, dict], torch.nn.Module]) -> None:
    """How to build the course weights ``name`` (an exact name, or a prefix ending in ``/``):
    ``builder(name, state, entry)`` returns the network with ``state`` loaded (see :func:`load_into`)."""
    _BUILDERS[name] = builder


def _builder(name: str) -> Callable:
    for key in (name, name.split("/")[0] + "/"):
        if key not in _BUILDERS and key in OWNERS:
            importlib.import_module(OWNERS[key])  # the lesson registers its builders on import
    found = _BUILDERS.get(name) or _BUILDERS.get(name.split("/")[0] + "/")
    if found is None:
        raise WeightsError(f"No network is registered for course weights {name!r}: course_weights.register "
                           f"it in the lesson that trains it (prefixes: {', '.join(OWNERS)}).")
    return found


def load(name: str, device: str | torch.device | None = None) -> tuple[torch.nn.Module, dict]:
    """(network, manifest entry) of course weights ``name``: built from the entry's config, the
    checksum-verified weights loaded, in eval mode, on ``device`` (default: the CPU)."""
    state, info = load_state(name)  # an unknown name: one message listing what is shipped
    module = _builder(name)(name, state, info)
    return module.to(torch.device(device) if device is not None else torch.device("cpu")).eval(), info


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str) -> torch.nn.Module:
    """``module.load_state_dict(state)``, or one clear message when the weights do not fit it."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"The course weights {name!r} do not fit the network this version builds "
                           f"({str(err).splitlines()[0]}). Reinstall the course package, or retrain "
                           f"with `make weights`.") from None
    return module


def save_state(name: str, state: Mapping[str, torch.Tensor], info: Mapping, folder: str | Path | None = None,
               overwrite: bool = False) -> dict:
    """Writes ``state`` as float16 safetensors and records it (with ``info``) in the manifest.

    Refuses to replace shipped weights unless ``overwrite``. Returns the manifest entry.
    """
    from safetensors.torch import save

    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    data = manifest(folder / "manifest.json")
    if name in data["weights"] and not overwrite:
        raise FileExistsError(f"Course weights {name!r} already exist and are kept. Pass --overwrite to "
                              f"retrain and replace them.")
    half = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in state.items()}
    blob = save(half)
    digest = hashlib.sha256(blob).hexdigest()
    # The same weights under two names (one network, two samplers) are stored once.
    twin = next((e for n, e in data["weights"].items() if n != name and e.get("sha256") == digest), None)
    if twin is not None:
        file = twin["file"]
    else:
        file = name.replace("/", "__") + ".safetensors"
        atomic_write(folder / file, blob)
    record = {"file": file, "sha256": digest, "bytes": len(blob), "dtype": "float16", **dict(info)}
    data["weights"][name] = record
    total = sum({e["file"]: e.get("bytes", 0) for e in data["weights"].values()}.values())
    if total > MAX_TOTAL_BYTES:
        raise WeightsError(f"The course weights would take {total / 1e6:.1f} MB, over the "
                           f"{MAX_TOTAL_BYTES / 1e6:.0f} MB the repository allows: make the networks narrower.")
    atomic_write_text(folder / "manifest.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
    return record
