"""Notebooks 4 and 5: the Stable Diffusion pipelines, built from their published configurations
with random weights on the meta device (nothing downloaded or allocated), and the calls each makes."""
from __future__ import annotations

import functools

import torch

from .assumptions import CUDA_CONTEXT_BYTES
from .items import Item, Row, row
from .measure import OpCounter, flops_and_peak
from .notebooks import notebook_picks
from .workloads import cifar_bytes

# unet/config.json of stable-diffusion-v1-5 (also the inpainting UNet with in_channels 9 and
# InstructPix2Pix's with 8): the architecture of the original v1-inference.yaml (CompVis/
# stable-diffusion): model_channels 320, channel_mult [1, 2, 4, 4], 2 res blocks, attention at
# the first three levels, 8 heads, context 768.
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
# vae/config.json of stable-diffusion-v1-5 (ch 128, ch_mult [1, 2, 4, 4], 2 res blocks, z 4).
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512)
# text_encoder/config.json of stable-diffusion-v1-5: CLIP ViT-L/14's text tower.
SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                 max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu")
# stabilityai/stable-diffusion-x4-upscaler, from the model it was converted from,
# configs/stable-diffusion/x4-upscaling.yaml of Stability-AI/stablediffusion: UNet
# model_channels 256, channel_mult [1, 2, 2, 4], attention at 2, 4, 8 (levels 2-4), self-attention
# disabled where disable_self_attentions is True, 8 heads, context 1024, in 7, linear projections,
# 1000 class embeddings (the noise level); VAE ch 128, ch_mult [1, 2, 4] (4x downsampling);
# FrozenOpenCLIPEmbedder, penultimate layer: OpenCLIP ViT-H/14's text tower less its last layer.
X4_UNET = dict(sample_size=128, in_channels=7, out_channels=4, layers_per_block=2,
               block_out_channels=(256, 512, 512, 1024), cross_attention_dim=1024, attention_head_dim=8,
               down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
               up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
               only_cross_attention=(True, True, True, False), use_linear_projection=True, num_class_embeds=1000)
X4_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
              block_out_channels=(128, 256, 512), down_block_types=("DownEncoderBlock2D",) * 3,
              up_block_types=("UpDecoderBlock2D",) * 3, sample_size=256)
X4_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
               max_position_embeddings=77, vocab_size=49408, hidden_act="gelu")
TOKENS = 77   # CLIP's context: every prompt is padded to it

CONFIGS = {"sd15-unet": SD15_UNET, "sd15-inpaint-unet": {**SD15_UNET, "in_channels": 9},
           "ip2p-unet": {**SD15_UNET, "in_channels": 8}, "x4-unet": X4_UNET, "sd15-vae": SD15_VAE,
           "x4-vae": X4_VAE, "sd15-text": SD15_TEXT, "x4-text": X4_TEXT}
# A pipeline is (unet, vae, text encoder); these are its components' names in diffusers.
COMPONENTS = ("unet", "vae", "text_encoder")
SD15 = ("sd15-unet", "sd15-vae", "sd15-text")
SD15_INPAINT = ("sd15-inpaint-unet", "sd15-vae", "sd15-text")
X4_UPSCALER = ("x4-unet", "x4-vae", "x4-text")
INSTRUCT_PIX2PIX = ("ip2p-unet", "sd15-vae", "sd15-text")
_META = dict(device="meta", dtype=torch.float16)


@functools.lru_cache(maxsize=None)
def _meta_model(kind: str):
    """A published architecture with random weights on the meta device, in fp16."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CONFIGS[kind]
    with torch.device("meta"):
        if kind.endswith("unet"):
            model = UNet2DConditionModel(**config)
        elif kind.endswith("vae"):
            model = AutoencoderKL(**config)
        else:
            model = CLIPTextModel(CLIPTextConfig(**config))
    return model.half().eval()


def parameters(kind: str) -> int:
    return sum(p.numel() for p in _meta_model(kind).parameters())


def _call_unet(model, batch: int, height: int, width: int):
    """One UNet call on meta inputs, created here so that the modes around it count them."""
    cfg = model.config
    x = torch.empty(batch, cfg.in_channels, height, width, **_META)
    context = torch.empty(batch, TOKENS, cfg.cross_attention_dim, **_META)
    t = torch.full((batch,), 10, device="meta")
    return model(x, t, encoder_hidden_states=context, class_labels=t if cfg.num_class_embeds else None)


@functools.lru_cache(maxsize=None)
def sd_call(kind: str, batch: int, height: int, width: int) -> tuple[float, float]:
    """(FLOPs, peak live activation bytes) of one call of a pipeline part at ``batch`` x latent size."""
    model = _meta_model(kind)
    if kind.endswith("unet"):
        return flops_and_peak(lambda: _call_unet(model, batch, height, width))
    return flops_and_peak(lambda: model(torch.zeros(batch, TOKENS, dtype=torch.long, device="meta")))


@functools.lru_cache(maxsize=None)
def vae_call(kind: str, direction: str, height: int, width: int) -> tuple[float, float]:
    """(FLOPs, peak live bytes) of one VAE encode of an image / decode of a latent (batch 1)."""
    model = _meta_model(kind)
    if direction == "encode":
        return flops_and_peak(lambda: model.encode(torch.empty(1, 3, height, width, **_META)))
    return flops_and_peak(lambda: model.decode(torch.empty(1, 4, height, width, **_META)))


@functools.lru_cache(maxsize=None)
def _unet_ops(kind: str) -> int:
    """Operations dispatched per UNet call: roughly a thousand, whatever the batch and size."""
    ops = OpCounter()
    with torch.no_grad(), ops:
        _call_unet(_meta_model(kind), 1, 8, 8)
    return ops.count


def sd_item(what: str, pipeline: tuple[str, str, str], steps: int, copies: int, latent: tuple[int, int],
            images: int = 1, encodes: int = 1, vae_factor: int = 8) -> Item:
    """One pipeline call: ``steps`` UNet calls at batch ``copies`` x ``images`` (CFG copies), VAE
    encodes of the input, a decode per image, the text encoder on each prompt copy."""
    unet, vae, text = pipeline
    h, w = latent
    unet_flops, unet_peak = sd_call(unet, copies * images, h, w)
    dec_flops, dec_peak = vae_call(vae, "decode", h, w)
    enc_flops, enc_peak = vae_call(vae, "encode", h * vae_factor, w * vae_factor)
    text_flops, _ = sd_call(text, 2 * images, 0, 0)
    flops = steps * unet_flops + images * (dec_flops + encodes * enc_flops) + text_flops
    return Item(what, flops, steps * _unet_ops(unet), "sd", max(unet_peak, dec_peak, enc_peak))


def weight_bytes(pipeline: tuple[str, ...]) -> int:
    """GPU bytes of a pipeline's weights in fp16."""
    return sum(2 * parameters(kind) for kind in pipeline)


def download_bytes(pipeline: tuple[str, str, str], repository: str) -> int:
    """Bytes downloaded for a pipeline: fp16 files where the repository publishes them, else fp32."""
    from lessons_lib.editing.specs import PUBLISHED

    fp16 = set(PUBLISHED[repository].fp16)
    return sum((2 if part in fp16 else 4) * parameters(kind) for kind, part in zip(pipeline, COMPONENTS))


def notebook_04() -> Row:
    from lessons_lib import editing as E
    from lessons_lib import photos
    from lessons_lib.editing.upscale import _tile_starts

    p = notebook_picks("04")
    size, steps, border, low = p.one("SIZE"), p.one("STEPS"), p.one("BORDER"), p.one("LOW")
    up_steps, tiled_steps = p.all("upscale.num_inference_steps", 2)
    overlap = p.one("upscale.overlap")
    w, h = photos.demo_image("chelsea", size).size
    latent = (h // 8, w // 8)
    items = [sd_item("img2img, strength 0.6", SD15, E.steps_that_run(steps, 0.6), 2, latent)]
    for s in E.STRENGTHS:
        items.append(sd_item(f"strength sweep {s}", SD15, E.steps_that_run(steps, s), 2, latent))
    items.append(sd_item("inpaint (strength 1)", SD15_INPAINT, steps, 2, latent, encodes=2))
    items.append(sd_item(f"outpaint by {border} px left and right", SD15_INPAINT, steps, 2,
                         (h // 8, (w + 2 * border) // 8), encodes=2))
    for kind in ("colour", "replace"):
        items.append(sd_item(f"edit_region ({kind})", SD15_INPAINT,
                             E.steps_that_run(steps, E.SUGGESTED_STRENGTH[kind]), 2, latent, encodes=2))
    # Measuring strength: N_JUDGED held-out CIFAR-10 photos (square, scaled to SIZE) edited at every judged
    # strength (the sweep's and 0.3) by img2img_many, batch_size photos per call.
    n_judged, batch, side = p.one("N_JUDGED"), p.one("img2img_many.batch_size"), size // 8
    for s in sorted({*E.STRENGTHS, 0.3}):
        one = sd_item("", SD15, E.steps_that_run(steps, s), 2, (side, side), images=batch)
        calls = -(-n_judged // batch)
        items.append(Item(f"judged img2img at strength {s}: {n_judged} held-out photos, {calls} calls of {batch}",
                          calls * one.flops, calls * one.ops, one.rate, one.memory))
    items.append(sd_item(f"x4 upscale of {low} px", X4_UPSCALER, up_steps, 2, (low, low), encodes=0, vae_factor=4))
    tiles = len(_tile_starts(low + 16, low, overlap)) ** 2
    items.append(sd_item(f"x4 upscale, {tiles} tiles of {low} px", X4_UPSCALER, tiled_steps, 2, (low, low),
                         images=tiles, encodes=0, vae_factor=4))
    pipelines = {"img2img": SD15, "inpaint": SD15_INPAINT, "upscale": X4_UPSCALER}
    # The three pipelines, and CIFAR-10 for the held-out photos the strength measurement edits.
    download = sum(download_bytes(parts, repository) for repository, parts in pipelines.items()) + cifar_bytes()
    # The notebook keeps all three pipelines (pipe, inpaint_pipe, upscaler) loaded.
    weights = sum(weight_bytes(parts) for parts in pipelines.values())
    return row("04", items, download, pipelines=len(pipelines), weights=weights + CUDA_CONTEXT_BYTES)


def notebook_05() -> Row:
    from lessons_lib import editing as E

    p = notebook_picks("05")
    steps, size = p.one("STEPS"), p.one("SIZE")
    if steps == "E.PIX2PIX_STEPS":
        steps = E.PIX2PIX_STEPS
    edits = len(p.one("INSTRUCTIONS"))
    grid = len(p.one("guidance_grid.image_guidance_scales")) * len(p.one("guidance_grid.guidance_scales"))
    again = 2   # instruct_edits(INSTRUCTIONS[:2]) run again
    latent = (size // 8, size // 8)
    chunk = p.one("instruct_edits.batch_size")   # instructions per pipeline call
    # Three copies per image: InstructPix2Pix's guidance on the text and on the image.
    items = [sd_item(f"{edits} instructions, {chunk} at a time", INSTRUCT_PIX2PIX, steps, 3, latent, images=n)
             for n in [chunk] * (edits // chunk) + ([edits % chunk] if edits % chunk else [])]
    items += [sd_item(f"{again} instructions again", INSTRUCT_PIX2PIX, steps, 3, latent, images=again),
              sd_item(f"guidance grid of {grid}", INSTRUCT_PIX2PIX, steps * grid, 3, latent),
              sd_item("widget panel, one edit", INSTRUCT_PIX2PIX, steps, 3, latent)]
    return row("05", items, download_bytes(INSTRUCT_PIX2PIX, "instruct-pix2pix"), pipelines=1,
               weights=weight_bytes(INSTRUCT_PIX2PIX) + CUDA_CONTEXT_BYTES)
