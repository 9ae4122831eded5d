"""The adversarial machinery every GAN shares (lessons_lib.adversarial), and the rule that a
lesson's module imports only the lessons before it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lessons_lib import adversarial as A

LIB = Path(__file__).resolve().parents[1] / "lessons_lib"

#: The modules that hold a lesson's own code, by the lesson that teaches them.
LESSONS = {"zoo": 2, "inpainting": 3, "editing": 4, "style": 6, "translation": 7}


def _imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """lessons_lib modules that code in ``lessons_lib/<package...>`` imports, at the top or inside a
    function (``from . import x`` included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = [*package[:len(package) - node.level + 1], *(node.module.split(".") if node.module else [])]
            if base:
                found.add(base[0])
            else:
                found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lessons_lib."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lessons_lib."))
    return found


def test_a_lesson_imports_only_the_lessons_before_it():
    later = []
    for path in sorted(LIB.rglob("*.py")):
        where = path.relative_to(LIB)
        top = where.parts[0].removesuffix(".py")
        own = LESSONS.get(top, 0)  # shared modules (0) may use no lesson at all
        for name in _imported_modules(path.read_text(encoding="utf-8"), where.parent.parts):
            if name in LESSONS and name != top and LESSONS[name] >= own:
                later.append(f"{where} imports {name} (lesson {LESSONS[name]})")
    assert later == []


def test_the_import_scan_sees_lazy_relative_and_absolute_imports():
    """The rule's own check must be able to fail."""
    lazy = "import torch\n\ndef late():\n    from .translation import CycleGANTask\n"
    assert _imported_modules(lazy, ()) == {"translation"}
    assert _imported_modules("from .. import style\n", ("models",)) == {"style"}
    assert _imported_modules("from ..inpainting import x\n", ("editing",)) == {"inpainting"}
    assert _imported_modules("import lessons_lib.zoo\nfrom lessons_lib.data import stack\n", ()) == {"zoo", "data"}


class _G(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


class _D(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 1, 1)

    def forward(self, x, y):
        return self.conv(torch.cat([x, y], 1))


def _recording(generator_first: bool):
    class Recording(A.Pix2PixTask):
        calls: list

        def discriminator_loss(self, batch, fake):
            self.calls.append(("D", all(p.requires_grad for p in self.models["discriminator"].parameters())))
            return super().discriminator_loss(batch, fake)

        def generator_losses(self, batch, fake):
            self.calls.append(("G", any(p.requires_grad for p in self.models["discriminator"].parameters())))
            return super().generator_losses(batch, fake)

    Recording.generator_first = generator_first
    torch.manual_seed(0)
    task = Recording(_G(), _D(), lr=1e-3, lambda_l1=10.0)
    task.calls = []
    return task


@pytest.mark.parametrize("generator_first", [False, True])
def test_the_update_freezes_the_discriminator_for_the_generator_in_either_order(generator_first):
    task = _recording(generator_first)
    x, y = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    d = task.models["discriminator"]
    before = [p.detach().clone() for p in d.parameters()]
    logs = task.training_step((x, y))
    order = ["G", "D"] if generator_first else ["D", "G"]
    # D learns with its weights live; G's loss goes through a D that needs no gradient of its own.
    assert task.calls == [(k, k == "D") for k in order]
    assert all(p.requires_grad for p in d.parameters())  # unfrozen afterwards
    assert not all(torch.equal(a, b) for a, b in zip(before, d.parameters()))
    assert set(logs) == {"d_loss", "g_loss", "g_gan", "l1"} and all(isinstance(v, float) for v in logs.values())


def test_a_generator_alone_trains_without_a_discriminator_update():
    torch.manual_seed(0)
    task = A.Pix2PixTask(_G(), None, lr=1e-3, lambda_l1=10.0)
    x, y = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    logs = task.training_step((x, y))
    assert set(logs) == {"g_loss", "g_gan", "l1"} and logs["g_gan"] == 0.0
    assert logs["g_loss"] == pytest.approx(10.0 * 2 * logs["l1"])  # lambda x L1 in [-1, 1] units


def test_the_vanilla_discriminator_loss_is_the_halved_binary_cross_entropy():
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    by_hand = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
               + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))) / 2
    assert torch.equal(A.discriminator_loss(real, fake, "vanilla"), by_hand)


def test_frozen_restores_gradients_even_when_the_block_fails():
    d = _D()
    with pytest.raises(RuntimeError):
        with A.frozen([d]):
            assert not any(p.requires_grad for p in d.parameters())
            raise RuntimeError("inside")
    assert all(p.requires_grad for p in d.parameters())


def test_gan_adam_uses_the_dcgan_momentum():
    opt = A.gan_adam(_D().parameters(), 2e-4)
    assert opt.param_groups[0]["betas"] == (0.5, 0.999) and opt.param_groups[0]["lr"] == 2e-4
