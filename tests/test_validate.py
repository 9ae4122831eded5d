"""The one check vocabulary (lessons_lib.validate): name first, then the value; one message each."""
import numpy as np
import pytest
import torch

from lessons_lib import validate as V


def test_count_takes_whole_numbers_from_any_source_and_says_what_it_counts():
    assert V.count("n", 3) == 3 and V.count("n", 3.0) == 3 and V.count("n", np.int64(3)) == 3
    assert type(V.count("n", torch.tensor(3))) is int
    for bad in (2.5, float("nan"), True, "3", None):
        with pytest.raises(ValueError, match=r"n must be a whole number >= 1, got"):
            V.count("n", bad)
    # The range is said in full for a value of the wrong kind as for one out of range.
    with pytest.raises(ValueError, match=r"steps must be a whole number between 1 and 10 \(denoising steps\), "
                                         r"got 2\.5\. Try 4\."):
        V.count("steps", 2.5, 1, 10, "Try 4.", counts="denoising steps")
    with pytest.raises(ValueError, match=r"between 1 and 10 \(denoising steps\), got 11\."):
        V.count("steps", 11, 1, 10, counts="denoising steps")


def test_number_says_its_range_whatever_is_wrong():
    assert V.number("s", np.float32(0.5), 0, 1) == 0.5 and V.number("s", torch.tensor(0.25), 0, 1) == 0.25
    with pytest.raises(ValueError, match=r"^s must be in \[0, 1\], got 1.5\. Hint\.$"):
        V.number("s", 1.5, 0, 1, hint="Hint.")
    with pytest.raises(ValueError, match=r"^s must be a finite number in \[0, 1\], got nan\.$"):
        V.number("s", float("nan"), 0, 1)
    with pytest.raises(TypeError, match=r"^s must be a number in \[0, 1\], got '0.5' \(str\)\.$"):
        V.number("s", "0.5", 0, 1)
    with pytest.raises(TypeError, match=r"^s must be a number >= 0, got True \(bool\)\.$"):
        V.number("s", True, 0)
    with pytest.raises(TypeError, match=r"^s must be a number, got None \(NoneType\)\.$"):
        V.number("s", None)


def test_seed():
    assert V.seed("seed", 0) == 0 and V.seed("seed", 2**63 - 1) == V.MAX_SEED and V.seed("seed", np.uint8(7)) == 7
    for bad in (-1, 2**63, 1.5, "1", True):
        with pytest.raises(ValueError, match=r"seed must be a whole number from 0 to 2\*\*63 - 1, got"):
            V.seed("seed", bad)


def test_flag_refuses_what_would_only_look_true():
    assert V.flag("tile", True) is True and V.flag("tile", np.bool_(False)) is False
    for bad in ("no", 1, None):
        with pytest.raises(TypeError, match=f"tile must be True or False, got {bad!r}"):
            V.flag("tile", bad)


def test_number_list():
    def check(v):
        return V.number("strength", v, 0, 1)

    assert V.number_list("strengths", (0.2, np.float64(0.4)), check, "(0.2, 0.4)") == [0.2, 0.4]
    assert V.number_list("strengths", np.array([0.5]), check, "(0.2, 0.4)") == [0.5]
    for one in (0.5, "0.5", None, np.float64(0.5), torch.tensor(0.5)):
        with pytest.raises(TypeError, match=r"strengths must be a list of numbers, e.g. \(0.2, 0.4\), got .*\. "
                                            "For one value call f"):
            V.number_list("strengths", one, check, "(0.2, 0.4)", "For one value call f.")
    with pytest.raises(ValueError, match=r"The list of strengths is empty: give at least one, e.g. \(0.2, 0.4\)"):
        V.number_list("strengths", [], check, "(0.2, 0.4)")
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\], got 2"):
        V.number_list("strengths", [0.5, 2], check, "(0.2, 0.4)")


def test_text():
    assert V.text("variant", "fp16", "a variant such as 'fp16'") == "fp16"
    assert V.text("prompt", "", "text", empty_ok=True) == ""
    with pytest.raises(ValueError, match="variant must be a variant such as 'fp16', got an empty string"):
        V.text("variant", "", "a variant such as 'fp16'")
    with pytest.raises(ValueError, match="got '  '"):
        V.text("variant", "  ", "a variant such as 'fp16'")
    with pytest.raises(TypeError, match=r"variant must be a variant such as 'fp16', got 16 \(int\)"):
        V.text("variant", 16, "a variant such as 'fp16'")
