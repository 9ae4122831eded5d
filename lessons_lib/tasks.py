"""What one training step is: the tasks that ``training.fit`` runs.

A *task* holds its models and optimizers and defines ``training_step(batch)`` (and
optionally ``validation_step``); ``lessons_lib.training.fit`` runs the epochs around it.
Here: the base class and the supervised (MSE), VAE (MSE + KL) and diffusion tasks; the
GAN tasks (pix2pix, CycleGAN) live in ``lessons_lib.translation`` and the inpainting
ones in ``lessons_lib.inpainting``. ``lessons_lib.training`` re-exports all of these.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from . import diffusion
from . import validate as V

__all__ = ["Task", "SupervisedTask", "VAETask", "DiffusionTask", "TrainingDiverged", "CheckpointError",
           "CheckpointMisfit",
           "kl_divergence", "vae_loss", "ema_update"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped, earlier checkpoints are kept."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or belongs to another task."""


class CheckpointMisfit(CheckpointError):
    """A checkpoint's weights have other shapes or names than the model's (other sizes, another network)."""


# --------------------------------------------------------------------------- tasks
class Task:
    """Models + optimizers (+ optional schedulers) and what one training step does.

    Subclasses implement :meth:`training_step` (and optionally :meth:`validation_step`)
    and call :meth:`optimize` for each update. ``models``, ``optimizers`` and
    ``schedulers`` are dicts keyed by name; everything in them is checkpointed.
    """

    def __init__(self, models: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                 schedulers: Mapping[str, Any] | None = None):
        self.models = dict(models)
        self.optimizers = dict(optimizers)
        self.schedulers = dict(schedulers or {})
        self.device = torch.device("cpu")
        self.scaler: torch.amp.GradScaler | None = None  # fp16's, Accelerate's (checkpointed)
        # Set by fit() for the run: the accelerate.Accelerator and the gradient clipping.
        self.accelerator = None
        self.max_grad_norm: float | None = None
        self._window: dict[str, bool] = {}  # optimizer name -> an accumulation window is open
        self._bad_loss = False
        # Set by fit() so a divergence message can say where it happened.
        self.position = (0, 0)

    #: What each batch holds, by name (e.g. ("inputs", "targets")): fit refuses a batch of
    #: another form with a message naming both. None: whatever training_step accepts.
    batch_parts: tuple[str, ...] | None = None

    # -- what subclasses write
    def training_step(self, batch) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must define training_step(batch).")

    def validation_step(self, batch) -> dict[str, float] | None:
        """Metrics on a validation batch (no gradients); None means "no validation"."""
        return None

    def check_batch(self, batch, loader: str = "training loader") -> None:
        """Refuses a batch that is not what :attr:`batch_parts` names, saying what came instead."""
        parts = self.batch_parts
        if parts is None or (isinstance(batch, (list, tuple)) and len(batch) == len(parts)):
            return
        want = f"({', '.join(parts)})"
        raise ValueError(
            f"{type(self).__name__} trains on batches of {want}, but the {loader} yielded "
            f"{describe_batch(batch)}. Give it a dataset whose items are {want} (e.g. "
            f"torch.utils.data.TensorDataset(x, y), whose items are (x[i], y[i])), or use a task that "
            f"takes images alone (DiffusionTask, or the inpainting tasks).")

    # -- helpers for subclasses
    def optimize(self, loss: torch.Tensor, name: str, retain_graph: bool = False) -> float:
        """One update of optimizer ``name`` on ``loss``; returns the loss as a float.

        Raises :class:`TrainingDiverged` when the loss is NaN or infinite, before the
        weights are touched.
        """
        value = float(loss.detach())
        acc = self.accelerator
        several = acc is not None and acc.num_processes > 1
        if not math.isfinite(value) and not several:
            self._diverged(name, value)
        opt = self.optimizers[name]
        if acc is None:  # a task stepped by hand, outside fit
            opt.zero_grad(set_to_none=True)
            loss.backward(retain_graph=retain_graph)
            opt.step()
            return value
        if not self._window.get(name):  # a new window: clear what other updates (a GAN's) left
            getattr(opt, "optimizer", opt).zero_grad(set_to_none=True)
        self._bad_loss |= not math.isfinite(value)
        acc.backward(loss, retain_graph=retain_graph)  # / gradient_accumulation_steps; fp16's scaler
        self._window[name] = not acc.sync_gradients
        if not acc.sync_gradients:
            return value
        params = [p for g in opt.param_groups for p in g["params"]]
        if several:
            worst = _average_gradients(acc, params, self._bad_loss)
            self._bad_loss = False
            if not math.isfinite(worst):
                self._diverged(name, worst)
        if self.max_grad_norm is not None:
            acc.clip_grad_norm_(params, self.max_grad_norm)
        if acc.scaler is not None or acc.distributed_type == "XLA":
            opt.step()  # the AcceleratedOptimizer: skips an fp16 step whose gradients overflowed
        else:
            # Without a scaler, AcceleratedOptimizer.step only calls this after asking the package
            # metadata twice whether the lomo optimizers are installed: ~0.7 ms, 1 % of a small step.
            getattr(opt, "optimizer", opt).step()
        return value

    def _diverged(self, name: str, value: float):
        epoch, step = self.position
        raise TrainingDiverged(
            f"The {name} loss became {value} at epoch {epoch}, step {step}: training diverged "
            f"and stopped before updating the weights. Lower the learning rate (or check the "
            f"data for NaNs), then run again; with a checkpoint folder it resumes from the "
            f"last good checkpoint.")

    # -- plumbing used by fit()
    def to(self, device: torch.device, channels_last: bool = False) -> "Task":
        self.device = torch.device(device)
        for m in self.models.values():
            m.to(self.device)
            if channels_last:
                m.to(memory_format=torch.channels_last)
        return self

    def train(self, mode: bool = True) -> "Task":
        for m in self.models.values():
            m.train(mode)
        return self

    def eval(self) -> "Task":
        return self.train(False)

    def extra_state(self) -> dict:
        """Anything else a subclass wants in the checkpoint (tensors, numbers, strings)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {
            "task": type(self).__name__,
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict, weights_only: bool = False) -> None:
        """Loads models (and, unless ``weights_only``, optimizers, schedulers, scaler)."""
        missing = set(self.models) - set(state["models"])
        if missing:
            raise CheckpointError(
                f"The checkpoint was written by a {state.get('task', 'different')} task and has no "
                f"weights for {sorted(missing)} (it has {sorted(state['models'])}). Load it into the "
                f"same kind of model, or use another checkpoint folder.")
        for k, m in self.models.items():
            try:
                m.load_state_dict(state["models"][k])
            except RuntimeError as err:
                raise CheckpointMisfit(f"The checkpoint's weights for '{k}' do not fit this model: "
                                      f"{_first_misfit(state['models'][k], m, err)}") from None
        if weights_only:
            return
        for k, o in self.optimizers.items():
            if k in state["optimizers"]:
                o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            if k in state.get("schedulers", {}):
                s.load_state_dict(state["schedulers"][k])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.load_extra_state(state.get("extra") or {})


def _average_gradients(accelerator, params: list, bad_loss: bool) -> float:
    """Averages the gradients over the processes in one all-reduce; returns nan when a process's loss was
    not finite (every process then stops together). A parameter without a gradient in one process
    counts as zero there; one without a gradient anywhere keeps none.

    This is DDP's arithmetic done at the optimizer step rather than inside backward: it holds for
    any task however it calls its models (bound methods, a model used twice, unused parameters)."""
    grads = [p.grad.reshape(-1).float() if p.grad is not None else torch.zeros(p.numel(), device=p.device)
             for p in params]
    flags = torch.tensor([float(p.grad is not None) for p in params] + [float(bad_loss)], device=params[0].device)
    flat = accelerator.reduce(torch.cat([*grads, flags]), "sum")
    n = accelerator.num_processes
    sizes = [p.numel() for p in params]
    parts = flat[:sum(sizes)].div_(n).split(sizes)
    for p, g, present in zip(params, parts, flat[sum(sizes):-1].tolist()):
        if present:
            p.grad = g.view_as(p).to(p.dtype)
    return float("nan") if flat[-1] > 0 else 0.0


def describe_batch(batch) -> str:
    """A batch in words, for messages: "a single tensor of shape (8, 1, 8, 8)"."""
    if torch.is_tensor(batch):
        return f"a single tensor of shape {tuple(batch.shape)}"
    if isinstance(batch, (list, tuple)):
        items = ", ".join(f"shape {tuple(b.shape)}" if torch.is_tensor(b) else type(b).__name__ for b in batch[:4])
        return f"a {type(batch).__name__} of {len(batch)} item(s) ({items}{', ...' if len(batch) > 4 else ''})"
    if isinstance(batch, dict):
        return f"a dict with keys {sorted(map(str, batch))}"
    return f"a {type(batch).__name__}"


def _adam(module: nn.Module, lr: float, betas=(0.9, 0.999)) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas)


class SupervisedTask(Task):
    """``loss_fn(model(x), y)`` on batches ``(x, y)``; MSE and Adam by default."""

    batch_parts = ("inputs", "targets")

    def __init__(self, model: nn.Module, lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None,
                 loss_fn: Callable = F.mse_loss, scheduler=None):
        super().__init__({"model": model}, {"model": optimizer or _adam(model, lr)},
                         {"model": scheduler} if scheduler is not None else None)
        self.loss_fn = loss_fn

    @property
    def model(self) -> nn.Module:
        return self.models["model"]

    def training_step(self, batch):
        x, y = batch
        return {"loss": self.optimize(self.loss_fn(self.model(x), y), "model")}

    def validation_step(self, batch):
        x, y = batch
        return {"loss": float(self.loss_fn(self.model(x), y))}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per latent value: averaged over the latent values and the batch,
    as the MSE beside it is over the pixels, so that a weight on it means the same at any latent size.
    (Summed over the zoo's 1,024 latent values, 0.001 x KL outweighed the MSE and the VAE without
    skips stopped using its latent: posterior collapse, measured as gray colours.)"""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).flatten(1).mean(1).mean()


def vae_loss(output: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             kl_weight: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, mse, kl): the reconstruction MSE plus ``kl_weight`` x KL(q(z|x) || N(0, I))."""
    mse = F.mse_loss(output, target)
    kl = kl_divergence(mu.float(), logvar.float())
    return mse + kl_weight * kl, mse, kl


class VAETask(Task):
    """``model(x) -> (y_hat, mu, logvar)``; loss = MSE(y_hat, y) + ``kl_weight`` x KL."""

    batch_parts = ("inputs", "targets")

    def __init__(self, model: nn.Module, lr: float = 1e-3, kl_weight: float = 1e-3):
        super().__init__({"model": model}, {"model": _adam(model, lr)})
        self.kl_weight = kl_weight

    def _losses(self, batch):
        x, y = batch
        y_hat, mu, logvar = self.models["model"](x)
        return vae_loss(y_hat, y, mu, logvar, self.kl_weight)

    def training_step(self, batch):
        loss, mse, kl = self._losses(batch)
        return {"loss": self.optimize(loss, "model"), "mse": float(mse.detach()), "kl": float(kl.detach())}

    def validation_step(self, batch):
        loss, mse, kl = self._losses(batch)
        return {"loss": float(loss), "mse": float(mse), "kl": float(kl)}


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for the parameters and the floating-point
    buffers alike; whole-number buffers (BatchNorm's batch count) are copied.

    BatchNorm's running mean and variance are averaged like the weights: copied from the
    online network they pair the averaged weights with statistics of other weights, and the
    output drifts (measured on the zoo's diffusion colorizer, whose regressor is a BatchNorm
    U-Net: its held-out lead over gray swung between 0.9 and 1.4 Delta E from epoch to
    epoch with copied statistics, 1.2 to 1.4 averaged, as with statistics recomputed for
    the averaged weights).
    """
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        if e.is_floating_point():
            e.lerp_(b, 1.0 - decay)
        else:
            e.copy_(b)


class DiffusionTask(Task):
    """Conditional denoising: ``model(x_t, t, cond)`` predicts the schedule's target.

    Batches are ``(cond, x)``; the loss is :func:`lessons_lib.diffusion.diffusion_loss`
    (MSE, or ``loss="l1"``) under ``schedule`` (a ``NoiseSchedule``, whose
    ``prediction_type`` says what is predicted, a schedule name or a tensor of betas).
    ``x0`` is ``x`` itself, or ``target(cond, x)`` when given (e.g. diffuse the chroma of
    the colour image). Without a condition pass batches of images alone. A model that
    trains more than the denoiser (the zoo's predict-and-refine colorizer) passes its
    whole loss as ``loss_fn(cond, x)`` instead.

    ``ema_decay`` keeps an exponential moving average of the weights in
    ``models["ema"]`` (checkpointed with the rest), with the usual warm-up: the decay
    is min(ema_decay, (1 + n) / (10 + n)) after n updates, so early weights are
    forgotten fast. Samples from the averaged weights are much cleaner than from the
    raw ones after a short training run; :meth:`inference_model` returns them.
    """

    def __init__(self, model: nn.Module, schedule="linear", lr: float = 1e-3,
                 loss: str = "mse", target: Callable | None = None, ema_decay: float | None = None,
                 loss_fn: Callable | None = None):
        models = {"model": model}
        if ema_decay is not None:
            V.fraction("ema_decay", ema_decay, hint="For example 0.999.")
            models["ema"] = copy.deepcopy(model).requires_grad_(False)
        super().__init__(models, {"model": _adam(model, lr)})
        V.choice("loss", loss, diffusion.LOSSES)
        self.schedule = diffusion.make_schedule(schedule) if isinstance(schedule, str) else schedule
        self.loss = loss
        if loss_fn is not None and target is not None:
            raise ValueError("Pass target= (what is diffused) or loss_fn= (the whole loss), not both: "
                             "loss_fn replaces the diffusion loss that target feeds.")
        self.target = target
        self.loss_fn = loss_fn
        self.ema_decay = ema_decay
        self.ema_updates = 0

    def check_batch(self, batch, loader: str = "training loader") -> None:
        if torch.is_tensor(batch) or (isinstance(batch, (list, tuple)) and len(batch) in (1, 2)):
            return
        raise ValueError(f"DiffusionTask trains on batches of images alone or of (conditions, images) "
                         f"pairs, but the {loader} yielded {describe_batch(batch)}. Give it a dataset "
                         f"whose items are one of those.")

    def _loss(self, batch):
        if isinstance(batch, torch.Tensor) or len(batch) == 1:  # images alone: unconditional
            cond, x0 = None, (batch if isinstance(batch, torch.Tensor) else batch[0])
        else:
            cond, x0 = batch
        if self.loss_fn is not None:
            return self.loss_fn(cond, x0)
        if self.target is not None:
            x0 = self.target(cond, x0)
        return diffusion.diffusion_loss(self.models["model"], x0, self.schedule, self.loss, cond=cond)

    def training_step(self, batch):
        logs = {"loss": self.optimize(self._loss(batch), "model")}
        if self.ema_decay is not None and (self.accelerator is None or self.accelerator.sync_gradients):
            n = self.ema_updates
            ema_update(self.models["ema"], self.models["model"], min(self.ema_decay, (1 + n) / (10 + n)))
            self.ema_updates += 1
        return logs

    def validation_step(self, batch):
        return {"loss": float(self._loss(batch))}

    def inference_model(self) -> nn.Module:
        """The weights to sample with: the moving average when there is one."""
        return self.models.get("ema", self.models["model"])

    def extra_state(self) -> dict:
        return {"ema_updates": self.ema_updates}

    def load_extra_state(self, state: dict) -> None:
        self.ema_updates = int(state.get("ema_updates", 0))


def _first_misfit(saved: dict, model, err: Exception) -> str:
    """What differs between a checkpoint's state dict and a model, in words: the first tensor whose
    shape differs (the model was built with other sizes), else the names only one of them has."""
    own = model.state_dict()
    for name, tensor in saved.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            return (f"its '{name}' is {tuple(tensor.shape)}, this model's is {tuple(own[name].shape)}. It was "
                    f"trained with other sizes (width, latent size, channels or depth): build the model with "
                    f"the sizes it was trained with, or use another checkpoint folder.")
    extra, missing = sorted(set(saved) - set(own)), sorted(set(own) - set(saved))
    if extra or missing:
        return (f"{len(missing)} of this model's tensors are not in it (e.g. {missing[:2]}) and {len(extra)} of "
                f"its tensors are not in this model (e.g. {extra[:2]}): it holds another network. Load it into "
                f"the model it was trained for, or use another checkpoint folder.")
    return str(err).splitlines()[0]
