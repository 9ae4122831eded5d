"""Shared test settings: fast profile, offline, no windows, small thread count."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("LESSONS_PROFILE", "fast")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Notebooks (run by nbval) and helpers write checkpoints and results here, never into
# the repository, and a test run never resumes what an earlier run left behind.
os.environ["LESSONS_OUTPUT_DIR"] = tempfile.mkdtemp(prefix="lessons-test-outputs-")

REPO = Path(__file__).resolve().parents[1]
# Real CIFAR-10 photos beside the checkout (CI has them): notebooks and tests use them.
if not os.environ.get("LESSONS_DATA_DIR") and (REPO.parent / "shared" / "data").is_dir():
    os.environ["LESSONS_DATA_DIR"] = str(REPO.parent / "shared" / "data")
CIFAR_SUBSET = Path(os.environ.get("LESSONS_DATA_DIR") or REPO.parent / "shared" / "data") / "cifar10-subset"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cifar_subset() -> Path:
    """The real CIFAR-10 photos beside the checkout; tests that need them skip without."""
    if not (CIFAR_SUBSET / "train").is_dir():
        pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")
    return CIFAR_SUBSET
