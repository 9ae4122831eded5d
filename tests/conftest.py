"""Shared test settings: fast profile, offline, no windows, small thread count."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("LESSONS_PROFILE", "fast")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# make test runs two workers on two cores. OpenMP threads that spin while they wait would take the core the
# other worker needs (measured: two zoo trainings at once took twice as long); passive threads sleep, and one
# busy worker still gets both cores. Set before torch loads; notebook kernels inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


@pytest.fixture(scope="session")
def bwrap() -> str:
    """The grader's bubblewrap sandbox works here (its version and how it runs); without it the test is skipped
    with the reason, but CI (which installs bubblewrap and runs as root) must run it: there it is a failure."""
    from course_tools import sandbox

    ok, why = sandbox.probe()
    if not ok and os.environ.get("CI"):
        pytest.fail(f"CI must be able to run the grading sandbox, and cannot: {why}")
    if not ok:
        pytest.skip(f"no sandbox here: {why}")
    return why


# --------------------------------------------------------------------------- two workers (make test)
# Under pytest-xdist (--dist loadgroup) every test belongs to a group that one worker runs from start to end,
# in order: a test file (a notebook's cells share one kernel), except for the groups below. The groups are
# handed out longest first, so that the two workers finish together.
_GROUPS = {
    # The grader's sandboxes: its red team checks that nothing with a sandbox user id is left alive, so no
    # other grading may run beside it.
    "tests/test_grading.py": "sandboxes", "tests/test_course_tools_input.py": "sandboxes",
}
# The full-profile rehearsal in two halves of about the same length, each with its own mirrors; the
# archive check reads the downloads of the half that fetches both archives.
_REHEARSAL_HALVES = {"02": "b", "03": "b", "06": "b"}
# The order of hand-out: the groups that take longest alone on 2 cores (make test --durations=0) first.
_LONGEST_FIRST = ["rehearsal-b", "sandboxes", "rehearsal-a", "notebooks/02_colorization_zoo.ipynb",
                  "notebooks/01_cifar10_colorization.ipynb", "notebooks/03_diffusion_inpainting.ipynb",
                  "notebooks/06_style_transfer.ipynb", "tests/test_budget.py", "notebooks/07_pix2pix_cyclegan.ipynb",
                  "tests/test_site.py", "tests/test_accelerate.py", "notebooks/04_stable_diffusion_editing.ipynb",
                  "tests/test_install.py", "notebooks/05_instruct_pix2pix.ipynb"]


def _group(item) -> str:
    path = item.nodeid.split("::")[0]
    if path == "tests/test_full_profile.py":
        param = item.nodeid.rsplit("[", 1)[-1].rstrip("]") if "[" in item.nodeid else ""
        return f"rehearsal-{_REHEARSAL_HALVES.get(param, 'a')}"
    return _GROUPS.get(path, path)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))   # stable: a group keeps its order
    if getattr(config.option, "loadgroup", False):   # an xdist worker of --dist loadgroup
        for item in items:
            _join_group(item, _group(item))


def _join_group(item, group: str) -> None:
    """What an ``xdist_group`` mark does: xdist's loadgroup scheduler groups tests by an ``@group`` suffix
    of their id. pytest-xdist 3.8 writes that suffix to ``item._nodeid``, which pytest 9 no longer reads
    (the id is ``item._id``), so the mark alone would scatter a notebook's cells over both workers."""
    wanted = f"{item.nodeid}@{group}"
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(wanted)
    else:
        item._nodeid = wanted
    if item.nodeid != wanted:
        raise pytest.UsageError(f"cannot group {item.nodeid} for pytest-xdist with this pytest; run the tests in "
                                "one process: make test TEST_WORKERS=0")
