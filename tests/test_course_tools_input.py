"""Bad input to the instructor tools, second pass: each refused at the boundary with one message."""
from __future__ import annotations

import pytest

from course_tools import train_weights

NAMES = ["zoo/resnet", "zoo/unet", "zoo/unetgan", "zoo/unetvae", "zoo/unetddim", "zoo/unetddpm",
         "inpainting/unet", "style/adain"]


@pytest.mark.parametrize("only, expected", [
    (None, NAMES),
    ("zoo/unet", ["zoo/unet"]),                      # an exact name is that recipe only, not a prefix
    ("zoo/unet*", ["zoo/unet", "zoo/unetgan", "zoo/unetvae", "zoo/unetddim", "zoo/unetddpm"]),
    ("zoo/", NAMES[:6]),
    ("*/unet", ["zoo/unet", "inpainting/unet"]),
    ("zoo/unet[gv]*", ["zoo/unetgan", "zoo/unetvae"]),
])
def test_train_weights_only_selects_exactly_what_it_says(only, expected):
    assert train_weights.select(NAMES, only) == expected


@pytest.mark.parametrize("only, message", [
    ("", "is empty"), ("  ", "is empty"), ("zoo", "matches no recipe"), ("zoo/un", "matches no recipe"),
    ("zoo/nothing*", "matches no recipe"),
])
def test_train_weights_only_that_selects_nothing_says_why(only, message):
    with pytest.raises(ValueError, match=message) as err:
        train_weights.select(NAMES, only)
    assert repr(only) in str(err.value)


def test_train_weights_says_what_it_selected_before_training(monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(train_weights, "recipes", lambda: {n: (lambda n=n: trained.append(n)) for n in NAMES})
    monkeypatch.setattr(train_weights, "_check_data", lambda: pytest.fail("looked for data before refusing"))
    assert train_weights.main(["--only", ""]) == 2
    assert "--only '' is empty" in capsys.readouterr().err
    assert train_weights.main(["--only", "zoo/unet", "--list"]) == 0
    assert capsys.readouterr().out.split() == ["zoo/unet"]
    monkeypatch.setattr(train_weights, "_check_data", lambda: "data")
    from lessons_lib import course_weights
    shipped = {n: {} for n in NAMES}
    monkeypatch.setattr(course_weights, "manifest", lambda *a: {"weights": shipped})
    assert train_weights.main(["--only", "zoo/unet"]) == 0
    out = capsys.readouterr().out
    assert "--only 'zoo/unet' selects 1 recipe: zoo/unet\n" in out
    assert "zoo/unet: shipped already" in out and "zoo/unetgan" not in out and trained == []
