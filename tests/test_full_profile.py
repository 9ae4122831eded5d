"""The full profile that Colab students run, rehearsed offline on the CPU.

Every lesson notebook runs with ``LESSONS_PROFILE=full`` and ``LESSONS_REHEARSAL=1``: the full profile's
network sizes, resolutions, batch sizes, data pipeline, checkpoints and loading code, with only the counts
that the notebooks mark ``pick(..., rehearse=...)`` made small (training steps, sampling steps, photos
scored). Every download goes through the course's real download, verify and extract code, to local
mirrors laid out like the real hosts (``course_tools.rehearsal``): a CIFAR-10 python archive and a
horse2zebra zip built from the real photos beside the checkout, torchvision's weight files under their
real names, and a Hugging Face cache of tiny pipelines under the real hub ids with the real repositories'
file lists.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_tools import rehearsal as R
from lessons_lib import registry

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))
pytestmark = pytest.mark.slow
# What each notebook must download from the mirrors (the others may find it in the cache already).
DOWNLOADS = {"cifar10": "cifar-10-python.tar.gz", "horse2zebra": "horse2zebra.zip"}


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory, cifar_subset):
    root = tmp_path_factory.mktemp("rehearsal")
    # horse2zebra: 8 photos a domain (the real zip has over 1,000), the rest as the real hosts serve it.
    env = R.rehearsal_environment(root, cifar_subset, cache=REPO / ".cache" / "rehearsal", h2z_n=8, h2z_n_test=4)
    log: list[dict] = []
    with R.serve(R.mirror_folder(root), log=log) as base:
        env |= R.mirror_urls(base)
        yield env, log


def _outputs(nb) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_the_notebook_runs_in_the_full_profile_offline(mirrors, notebook, tmp_path):
    env, log = mirrors
    nb = nbformat.read(notebook, as_version=4)
    run_env = {k: v for k, v in os.environ.items() if k not in ("LESSONS_DATA_DIR",)}  # download, as Colab does
    run_env |= env | {"LESSONS_OUTPUT_DIR": str(tmp_path / "outputs")}
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute(env=run_env)
    text = _outputs(nb)
    assert "profile : full (offline rehearsal: full sizes, small counts)" in text
    assert "Traceback" not in text


def test_the_archives_came_through_the_download_code_from_the_mirrors(mirrors):
    """Run after the notebooks (same module): each archive was fetched once from its mirror."""
    _, log = mirrors
    for name, filename in DOWNLOADS.items():
        gets = [e for e in log if e["method"] == "GET" and e["path"].endswith(filename) and e["status"] in (200, 206)]
        assert len(gets) >= 1, f"{name} was never downloaded from its mirror: {log}"
        assert registry.get_source(name).filename == filename
