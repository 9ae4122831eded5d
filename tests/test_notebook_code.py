"""The code the lessons write out in their cells equals the lessons_lib functions of the same name.

Each notebook teaches a piece from scratch, then the library keeps its own copy for the
other notebooks, the CLIs and the tests. These tests pull the definitions out of the
notebooks (functions only, no cell is executed) and compare them with the library on
random inputs, so the two never drift apart.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from notebook_code import notebook_functions

from lessons_lib import diffusion as D
from lessons_lib import training, translation
from lessons_lib.models.colorizers import build_model


# --------------------------------------------------------------------------- notebook 2
def test_notebook2_vae_loss_equals_library():
    ns = notebook_functions("02_colorization_zoo.ipynb", ["vae_loss"], {"torch": torch, "F": F})
    g = torch.Generator().manual_seed(0)
    out, target = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    mu, logvar = torch.randn(4, 16, 2, 2, generator=g), torch.randn(4, 16, 2, 2, generator=g)
    for kl_weight in (1e-3, 0.5):
        ours = ns["vae_loss"](out, target, mu, logvar, kl_weight)
        lib = training.vae_loss(out, target, mu, logvar, kl_weight)
        for a, b in zip(ours, lib):
            assert torch.allclose(a, b, atol=1e-6)


def test_notebook2_gan_update_equals_pix2pix_task_step():
    ns = notebook_functions("02_colorization_zoo.ipynb", ["gan_update"], {"torch": torch, "F": F})
    torch.manual_seed(0)
    gan = build_model("gan", width=8)
    twin = copy.deepcopy(gan)
    g = torch.Generator().manual_seed(1)
    gray, colour = torch.rand(4, 1, 32, 32, generator=g) * 2 - 1, torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    task = translation.Pix2PixTask(gan.generator, gan.discriminator, lr=2e-4, lambda_l1=300.0)
    logs = task.training_step((gray, colour))
    opt_g = torch.optim.Adam(twin.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(twin.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_loss, g_loss = ns["gan_update"](twin.generator, twin.discriminator, opt_g, opt_d, gray, colour, 300.0)
    assert d_loss == pytest.approx(logs["d_loss"], abs=1e-6) and g_loss == pytest.approx(logs["g_loss"], abs=1e-5)
    for a, b in zip(gan.state_dict().values(), twin.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


# --------------------------------------------------------------------------- notebook 3
@pytest.fixture(scope="module")
def nb3():
    names = ["q_sample", "predict_x0_eps", "alpha_bars", "ddpm_step", "ddim_step", "repaint"]
    return notebook_functions("03_diffusion_inpainting.ipynb", names, {"torch": torch, "diffusion": D})


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_notebook3_steps_equal_library(nb3, prediction_type):
    sched = D.make_schedule("cosine", 1000, prediction_type)
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1, torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([5, 400, 999])
    assert torch.allclose(nb3["q_sample"](x0, t, noise, sched), D.q_sample(x0, t, noise, sched), atol=1e-6)
    out, x, z = (torch.randn(3, 3, 8, 8, generator=g) for _ in range(3))
    for step, prev in [(999, 979), (500, 480), (20, 0), (0, -20)]:
        ours = nb3["ddpm_step"](out, step, x, sched, prev, noise=z)
        lib = D.ddpm_step(out, step, x, sched, prev_timestep=prev, noise=z).prev_sample
        assert torch.allclose(ours, lib, atol=1e-5)
        for eta in (0.0, 1.0):
            ours = nb3["ddim_step"](out, step, x, sched, prev, eta=eta, noise=z)
            lib = D.ddim_step(out, step, x, sched, prev_timestep=prev, eta=eta, noise=z).prev_sample
            assert torch.allclose(ours, lib, atol=1e-5)


def test_notebook3_repaint_equals_library(nb3):
    sched = D.make_schedule("cosine", 1000, "v_prediction")
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 3, 3, padding=1)

    def net(x, t):
        return model(x) * (1 + t.float().view(-1, 1, 1, 1) / 1000)

    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    mask = torch.ones(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 0
    with torch.no_grad():
        ours = nb3["repaint"](net, image, mask, sched, 10, 5, 2, torch.Generator().manual_seed(4))
        lib = D.repaint_sample(net, image, mask, sched, num_inference_steps=10, jump_length=5, jump_n_sample=2,
                               generator=torch.Generator().manual_seed(4), progress=False)
    assert torch.allclose(ours, lib, atol=1e-5)
