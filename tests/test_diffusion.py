"""lessons_lib.diffusion and the time-conditioned UNet, checked against diffusers."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, RePaintScheduler  # noqa: E402

from lessons_lib import diffusion as D
from lessons_lib.models.time_unet import TimeUNet, timestep_embedding

DIFFUSERS_NAME = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


# --------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_beta_schedule_matches_diffusers(name):
    ours = D.beta_schedule(name, 1000)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAME[name]).betas
    assert ours.shape == (1000,)
    assert (ours - ref).abs().max() <= 1e-6
    sched = D.make_schedule(name, 1000)
    ref_abar = DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAME[name]).alphas_cumprod
    assert (sched.alphas_cumprod - ref_abar).abs().max() <= 1e-6


def test_linear_schedule_endpoints_and_cosine_is_gentler():
    lin, cos = D.make_schedule("linear", 1000), D.make_schedule("cosine", 1000)
    assert D.beta_schedule("linear", 1000)[0].item() == pytest.approx(1e-4)
    assert D.beta_schedule("linear", 1000)[-1].item() == pytest.approx(0.02)
    # The cosine schedule destroys information more slowly in the middle of the chain.
    assert cos.alphas_cumprod[500] > lin.alphas_cumprod[500]


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="Unknown beta schedule 'quadratic'"):
        D.beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="The number of diffusion steps T must be a whole number >= 1, got 0"):
        D.beta_schedule("linear", 0)


# --------------------------------------------------------------------------- forward process
def test_q_sample_formula_and_diffusers_add_noise():
    sched = D.make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    ours = D.q_sample(x0, t, noise, sched)
    ref = DDPMScheduler(num_train_timesteps=1000).add_noise(x0, noise, t)
    assert torch.allclose(ours, ref, atol=1e-6)
    # The same step for the whole batch as an int.
    reference = DDPMScheduler().add_noise(x0, noise, torch.full((4,), 500))
    assert torch.allclose(D.q_sample(x0, 500, noise, sched), reference,
                          atol=1e-6)
    with pytest.raises(ValueError, match="between 0 and T-1=999"):
        D.q_sample(x0, 1000, noise, sched)


# --------------------------------------------------------------------------- steps vs diffusers
def _step_inputs(seed=0, shape=(2, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g) * 0.8


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [999, 500, 37, 1, 0])
def test_ddpm_step_matches_diffusers(name, t):
    sched = D.make_schedule(name, 1000)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAME[name])
    eps, x = _step_inputs(t)
    expected = ref.step(eps, t, x, generator=torch.Generator().manual_seed(7))
    # diffusers draws the noise with torch.randn from the generator: the same draw here.
    noise = torch.randn(eps.shape, generator=torch.Generator().manual_seed(7))
    ours = D.ddpm_step(eps, t, x, sched, noise=noise)
    assert (ours.prev_sample - expected.prev_sample).abs().max() <= 1e-5
    assert (ours.pred_original_sample - expected.pred_original_sample).abs().max() <= 1e-5
    # Passing the generator instead of the noise gives the same sample.
    ours_g = D.ddpm_step(eps, t, x, sched, generator=torch.Generator().manual_seed(7))
    assert (ours_g.prev_sample - expected.prev_sample).abs().max() <= 1e-5


def test_ddpm_strided_step_matches_diffusers():
    sched = D.make_schedule("linear", 1000)
    ref = DDPMScheduler(num_train_timesteps=1000)
    ref.set_timesteps(50)
    assert torch.equal(ref.timesteps, D.inference_timesteps(1000, 50))
    eps, x = _step_inputs(3)
    expected = ref.step(eps, 400, x, generator=torch.Generator().manual_seed(1)).prev_sample
    ours = D.ddpm_step(eps, 400, x, sched, num_inference_steps=50,
                       noise=torch.randn(eps.shape, generator=torch.Generator().manual_seed(1))).prev_sample
    assert (ours - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("t", [980, 500, 20, 0])
def test_ddim_step_matches_diffusers(name, eta, t):
    sched = D.make_schedule(name, 1000)
    ref = DDIMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAME[name])
    ref.set_timesteps(50)
    assert torch.equal(ref.timesteps, D.inference_timesteps(1000, 50))
    eps, x = _step_inputs(t + 1)
    noise = torch.randn(eps.shape, generator=torch.Generator().manual_seed(11))
    expected = ref.step(eps, t, x, eta=eta, variance_noise=noise)
    ours = D.ddim_step(eps, t, x, sched, num_inference_steps=50, eta=eta, noise=noise)
    assert (ours.prev_sample - expected.prev_sample).abs().max() <= 1e-5
    assert (ours.pred_original_sample - expected.pred_original_sample).abs().max() <= 1e-5


def test_repaint_step_and_undo_match_diffusers():
    sched = D.make_schedule("linear", 1000)
    ref = RePaintScheduler(num_train_timesteps=1000, eta=1.0)
    ref.set_timesteps(50, jump_length=5, jump_n_sample=3)
    walk = [s * 20 for s in D.repaint_schedule(50, 5, 3)]
    assert ref.timesteps.tolist() == walk
    eps, x = _step_inputs(5)
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., :4] = 1
    for t in (500, 0):
        expected = ref.step(eps, t, x, image, mask, generator=torch.Generator().manual_seed(4)).prev_sample
        shared = torch.randn(eps.shape, generator=torch.Generator().manual_seed(4))
        ours = D.repaint_step(eps, t, x, image, mask, sched, num_inference_steps=50, eta=1.0,
                              noise=shared, known_noise=shared).prev_sample
        assert (ours - expected).abs().max() <= 1e-5
    expected = ref.undo_step(x, 300, generator=torch.Generator().manual_seed(9))
    ours = D.repaint_undo_step(x, 300, sched, 50, generator=torch.Generator().manual_seed(9))
    assert (ours - expected).abs().max() <= 1e-5


# --------------------------------------------------------------------------- samplers
class NoiseOracle:
    """Knows x0, so returns the exact noise in any x_t: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)."""

    def __init__(self, x0, schedule):
        self.x0, self.abar = x0, schedule.alphas_cumprod

    def __call__(self, x, t):
        abar = self.abar[t].reshape(-1, 1, 1, 1)
        return (x - abar.sqrt() * self.x0) / (1 - abar).sqrt()


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ddim_50_steps_with_oracle_reconstructs_x0(name):
    sched = D.make_schedule(name, 1000)
    x0 = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = D.ddim_sample(NoiseOracle(x0, sched), x0.shape, sched, num_inference_steps=50,
                        generator=torch.Generator().manual_seed(1), progress=False)
    assert (out - x0).abs().max() < 1e-4


def test_ddpm_sampler_with_oracle_and_trajectory():
    sched = D.make_schedule("linear", 1000)
    x0 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out, traj = D.ddpm_sample(NoiseOracle(x0, sched), x0.shape, sched, num_inference_steps=100,
                              generator=torch.Generator().manual_seed(1), progress=False,
                              return_trajectory=True, trajectory_points=5)
    assert (out - x0).abs().max() < 1e-3
    assert len(traj) == 5 and traj[0][0] == 990 and traj[-1][0] == 0
    # Reproducible: the same generator seed gives the same samples.
    a = D.ddpm_sample(lambda x, t: torch.zeros_like(x), (2, 3, 8, 8), sched, num_inference_steps=10,
                      generator=torch.Generator().manual_seed(5), progress=False)
    b = D.ddpm_sample(lambda x, t: torch.zeros_like(x), (2, 3, 8, 8), sched, num_inference_steps=10,
                      generator=torch.Generator().manual_seed(5), progress=False)
    assert torch.equal(a, b)


def test_ddim_sampler_matches_diffusers_loop():
    sched = D.make_schedule("cosine", 1000)
    model = TimeUNet(width=8, channel_mults=(1, 2)).eval()
    torch.nn.init.normal_(model.out_conv.weight, std=0.02)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = D.ddim_sample(model, x_T.shape, sched, num_inference_steps=10, x_T=x_T, progress=False)
    ref = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    ref.set_timesteps(10)
    x = x_T.clone()
    with torch.no_grad():
        for t in ref.timesteps:
            x = ref.step(model(x, t.expand(2)), t, x).prev_sample
    assert (ours - x.clamp(-1, 1)).abs().max() <= 1e-5


def test_classifier_free_guidance():
    u, c = torch.zeros(2, 3), torch.ones(2, 3)
    assert torch.equal(D.classifier_free_guidance(u, c, 1.0), c)
    assert torch.equal(D.classifier_free_guidance(u, c, 7.5), 7.5 * c)
    calls = []

    def model(x, t, cond):
        calls.append(x.shape[0])
        return cond.mean(dim=1, keepdim=True).expand_as(x)

    x = torch.zeros(2, 3, 4, 4)
    cond = torch.ones(2, 1, 4, 4)
    out = D.predict_noise(model, x, 10, cond, guidance_scale=3.0)
    assert calls == [4]  # conditional and unconditional in one batch
    assert torch.allclose(out, torch.full_like(x, 3.0))


def test_noise_prediction_losses():
    sched = D.make_schedule("linear", 100)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    noise = torch.randn(4, 3, 8, 8)
    t = torch.tensor([1, 20, 50, 99])

    def perfect(x, tt):
        abar = sched.alphas_cumprod[tt].reshape(-1, 1, 1, 1)
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()

    assert D.noise_prediction_loss(perfect, x0, sched, "mse", t=t, noise=noise) < 1e-10
    zero = lambda x, tt: torch.zeros_like(x)  # noqa: E731
    assert D.noise_prediction_loss(zero, x0, sched, "l1", t=t, noise=noise) == pytest.approx(noise.abs().mean().item())
    mse = D.noise_prediction_loss(zero, x0, sched, "mse", t=t, noise=noise)
    assert mse == pytest.approx(noise.pow(2).mean().item())
    with pytest.raises(ValueError, match="Unknown loss 'huber'"):
        D.noise_prediction_loss(zero, x0, sched, "huber")


# --------------------------------------------------------------------------- RePaint
def test_repaint_keeps_known_pixels_and_uses_the_oracle():
    sched = D.make_schedule("linear", 200)
    x0 = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 0
    model = TimeUNet(width=8, channel_mults=(1, 2)).eval()
    out = D.repaint_sample(model, x0, mask, sched, num_inference_steps=20, jump_length=5,
                           jump_n_sample=2, generator=torch.Generator().manual_seed(1), progress=False)
    keep = mask.expand_as(x0).bool()
    assert torch.equal(out[keep], x0[keep])
    assert not torch.allclose(out[~keep], x0[~keep], atol=0.1)  # a zero model cannot know the hole
    # With a noise oracle the hole is filled with the true pixels.
    out = D.repaint_sample(NoiseOracle(x0, sched), x0, mask, sched, num_inference_steps=20,
                           jump_length=5, jump_n_sample=2, generator=torch.Generator().manual_seed(1),
                           progress=False)
    assert (out - x0).abs().max() < 1e-3


def test_repaint_schedule_counts():
    walk = D.repaint_schedule(20, jump_length=5, jump_n_sample=3)
    downs = sum(1 for a, b in zip([20] + walk, walk) if b < a)
    ups = sum(1 for a, b in zip([20] + walk, walk) if b > a)
    assert walk[-1] == 0
    assert ups == 5 * 2 * 3  # 3 jump points (0, 5, 10) x 2 extra passes x 5 steps
    assert downs == 20 + ups
    assert D.repaint_schedule(10, 10, 1) == list(range(9, -1, -1))


def test_bad_input_messages():
    sched = D.make_schedule("linear", 1000)
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    in_range = r"num_inference_steps must be a whole number between 1 and 1000 \(denoising steps\).*T=1000"
    for steps in (0, -5, 1001, 2.5):
        with pytest.raises(ValueError, match=in_range):
            D.ddim_sample(model, (1, 3, 8, 8), sched, num_inference_steps=steps, progress=False)
        with pytest.raises(ValueError, match=in_range):
            D.ddpm_sample(model, (1, 3, 8, 8), sched, num_inference_steps=steps, progress=False)
    image = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match=in_range):
        D.repaint_sample(model, image, torch.ones(8, 8), sched, num_inference_steps=0)
    with pytest.raises(ValueError, match="mask is 16x16 but the image is 8x8"):
        D.repaint_sample(model, image, torch.ones(16, 16), sched, num_inference_steps=10)
    with pytest.raises(ValueError, match="keeps no pixel"):
        D.repaint_sample(model, image, torch.zeros(8, 8), sched, num_inference_steps=10)
    with pytest.raises(ValueError, match="keeps every pixel"):
        D.repaint_sample(model, image, torch.ones(8, 8), sched, num_inference_steps=10)
    with pytest.raises(ValueError, match="only 0 .fill. and 1 .keep."):
        D.check_mask(torch.full((8, 8), 0.5), image)
    with pytest.raises(ValueError, match=r"jump_n_sample \(the resample count\) must be a whole number >= 1, got 0"):
        D.repaint_schedule(10, 2, 0)
    with pytest.raises(ValueError, match="timestep must be a whole number between 0 and 999, got 1000.*T=1000"):
        D.ddim_step(torch.zeros(1), 1000, torch.zeros(1), sched)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        D.ddim_step(torch.zeros(1), 10, torch.zeros(1), sched, eta=-1)


# --------------------------------------------------------------------------- the UNet
def test_timestep_embedding_matches_diffusers():
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 1, 17, 999])
    ref = get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    assert torch.allclose(timestep_embedding(t, 32), ref, atol=1e-6)


def test_time_unet_shapes_conditioning_and_time_dependence():
    torch.manual_seed(0)
    net = TimeUNet(in_channels=3, cond_channels=1, width=8, channel_mults=(1, 2, 2))
    torch.nn.init.normal_(net.out_conv.weight, std=0.1)
    x, cond = torch.randn(2, 3, 32, 32), torch.randn(2, 1, 32, 32)
    out = net(x, torch.tensor([1, 500]), cond)
    assert out.shape == x.shape
    assert not torch.allclose(net(x, torch.tensor([1, 1]), cond), net(x, torch.tensor([900, 900]), cond))
    assert net(torch.randn(1, 3, 64, 48), torch.tensor([3]), torch.randn(1, 1, 64, 48)).shape == (1, 3, 64, 48)
    with pytest.raises(ValueError, match="conditional .cond_channels=1.: pass cond"):
        net(x, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 30, 30), torch.tensor([1]), torch.randn(1, 1, 30, 30))
    # Gradients reach every parameter (the network is trainable end to end).
    net(x, torch.tensor([1, 500]), cond).pow(2).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


# --------------------------------------------------------------------------- prediction types, EMA
@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("t", [900, 300, 0])
def test_steps_with_other_prediction_types_match_diffusers(prediction_type, t):
    sched = D.make_schedule("cosine", 1000, prediction_type)
    out, x = _step_inputs(t + 5)
    noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    ddim = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)
    ddim.set_timesteps(50)
    expected = ddim.step(out, t, x, eta=0.5, variance_noise=noise)
    ours = D.ddim_step(out, t, x, sched, num_inference_steps=50, eta=0.5, noise=noise)
    assert (ours.prev_sample - expected.prev_sample).abs().max() <= 1e-5
    assert (ours.pred_original_sample - expected.pred_original_sample).abs().max() <= 1e-5
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)
    expected = ddpm.step(out, t, x, generator=torch.Generator().manual_seed(3)).prev_sample
    ours = D.ddpm_step(out, t, x, sched, noise=noise).prev_sample
    assert (ours - expected).abs().max() <= 1e-5


def test_v_target_matches_diffusers_velocity_and_recovers_x0():
    sched = D.make_schedule("cosine", 1000, "v_prediction")
    g = torch.Generator().manual_seed(4)
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2").get_velocity(x0, noise, t)
    v = D.training_target(x0, noise, t, sched)
    assert (v - ref).abs().max() <= 1e-5
    x_t = D.q_sample(x0, t, noise, sched)
    for i in range(4):  # the x0 that v implies is the x0 that made x_t
        assert (D.predicted_x0(v[i:i + 1], int(t[i]), x_t[i:i + 1], sched) - x0[i:i + 1]).abs().max() <= 1e-3


def test_diffusion_loss_targets_and_bad_prediction_type():
    x0, noise = _step_inputs(5)
    t = torch.full((x0.shape[0],), 300)
    for kind, target in [("epsilon", noise), ("sample", x0)]:
        sched = D.make_schedule("linear", 1000, kind)
        perfect = lambda x_t, tt, target=target: target  # noqa: E731
        assert D.diffusion_loss(perfect, x0, sched, "mse", t=t, noise=noise) < 1e-12
    with pytest.raises(ValueError, match="Unknown prediction_type 'x0'. Choose one of: epsilon"):
        D.make_schedule("linear", 1000, "x0")


def test_ema_update_and_warmup_in_diffusion_task():
    from lessons_lib import training

    model = torch.nn.Linear(3, 3)
    ema = torch.nn.Linear(3, 3)
    ema.load_state_dict(model.state_dict())
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.weight.clone()
    training.ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, 0.75 * before + 0.25 * model.weight)
    with pytest.raises(ValueError, match="ema_decay"):
        training.DiffusionTask(TimeUNet(3, width=8, channel_mults=(1, 2), attention=False), ema_decay=1.0)
    net = TimeUNet(3, width=8, channel_mults=(1, 2), attention=False)
    task = training.DiffusionTask(net, D.make_schedule("cosine", 100, "v_prediction"), ema_decay=0.999)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    task.training_step(images)  # images alone: unconditional
    # First update: decay min(0.999, 1/10) = 0.1, so the average moved 90 % of the way.
    ema_w, new_w = task.inference_model().out_conv.weight, net.out_conv.weight
    assert task.ema_updates == 1 and torch.allclose(ema_w, 0.9 * new_w, atol=1e-6)
    assert task.state_dict()["extra"] == {"ema_updates": 1}


def test_ema_update_averages_batchnorm_statistics_like_the_weights():
    from lessons_lib import training

    model, ema = torch.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2)
    model.train()
    model(torch.randn(8, 2, 4, 4) * 3 + 5)  # the online statistics move away from the average's
    training.ema_update(ema, model, 0.75)
    # Averaged, not copied: the running statistics describe the averaged weights' activations.
    assert torch.allclose(ema.running_mean, 0.25 * model.running_mean)
    assert torch.allclose(ema.running_var, 0.75 * torch.ones(2) + 0.25 * model.running_var)
    assert ema.num_batches_tracked.item() == model.num_batches_tracked.item() == 1  # counts are copied
