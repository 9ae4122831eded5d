"""Results rows with their spread, and claims checked against the run."""
import math

import numpy as np
import pytest

from lessons_lib import tables


def test_paired_row_spread_is_the_95_percent_interval_of_the_mean_difference():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(10, 20, 400)
    model = baseline - 1.0 + rng.normal(0, 2.0, 400)
    row = tables.paired_row("Delta E", model, baseline)
    diff = model - baseline
    assert math.isclose(row["model"], model.mean()) and math.isclose(row["baseline"], baseline.mean())
    assert math.isclose(row["spread"], 1.96 * diff.std(ddof=1) / math.sqrt(400), rel_tol=1e-9)
    assert tables.significant(row) and "**beats the baseline**" in tables.results_markdown([row])


def test_a_win_inside_the_spread_is_marked_not_significant():
    rng = np.random.default_rng(1)
    baseline = rng.uniform(10, 20, 30)
    model = baseline + rng.normal(-0.05, 3.0, 30)
    row = tables.paired_row("Delta E", model, baseline)
    if not tables.beats(row):  # make it a narrow win whatever the draw
        model = model - 2 * (row["model"] - row["baseline"])
        row = tables.paired_row("Delta E", model, baseline)
    assert tables.beats(row) and not tables.significant(row)
    assert "not significant" in tables.results_markdown([row])


def test_paired_row_refuses_unpaired_values():
    with pytest.raises(ValueError, match="same photos"):
        tables.paired_row("x", [1.0, 2.0, 3.0], [1.0, 2.0])


def test_claim_prints_when_it_holds_and_stops_a_strict_run_when_not(capsys, monkeypatch):
    monkeypatch.setenv("LESSONS_CLAIMS", "strict")
    tables.claim("the colour-only network beats keep-the-gray", 5.0 < 7.0, "5.0 against 7.0")
    assert "\u2713 the colour-only network beats keep-the-gray (5.0 against 7.0)" in capsys.readouterr().out
    with pytest.raises(tables.ClaimFailed, match="does not show it .9.0 against 7.0."):
        tables.claim("the colour-only network beats keep-the-gray", 9.0 < 7.0, "9.0 against 7.0")
    assert issubclass(tables.ClaimFailed, AssertionError)


def test_a_students_run_that_contradicts_a_claim_warns_and_goes_on(capsys, monkeypatch):
    monkeypatch.delenv("LESSONS_CLAIMS", raising=False)
    with pytest.warns(UserWarning, match="this run does not show it"):
        line = tables.claim("the network beats the gray", False, "9.0 against 7.0")
    assert line.startswith("\u2717") and "not in this run" in capsys.readouterr().out


def test_mean_se_is_the_mean_and_its_standard_error():
    mean, se = tables.mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / 3 ** 0.5)


def test_markdown_table_is_the_one_renderer_and_a_cell_cannot_break_it():
    text = tables.markdown_table(["model", "PSNR (dB)"], [["a|b", 21.5], ["two\nlines", "**22.0**"]])
    assert text.splitlines() == ["| model | PSNR (dB) |", "|---|---:|", "| a\\|b | 21.5 |",
                                 "| two lines | **22.0** |"]
    assert tables.markdown_table(["x", "y"], [["`a|b`", 1]], align="ll", escape=False).splitlines()[1:] == [
        "|---|---|", "| `a|b` | 1 |"]
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        tables.markdown_table(["a", "b", "c"], [[1, 2]])
    with pytest.raises(ValueError, match="one 'l' or 'r' per column"):
        tables.markdown_table(["a", "b"], [[1, 2]], align="lc")
