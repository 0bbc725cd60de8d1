"""A tiny random-weight Stable Diffusion pipeline built offline (as diffusers' own tests do), for engine tests.

The tokenizer is CLIP's real BPE, rebuilt from open_clip's bundled ``bpe_simple_vocab_16e6.txt.gz``: vocab =
the 256 byte symbols, their ``</w>`` forms, the merges, then the two special tokens (49,408 ids).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import torch

# ``clbench synth`` flags for the smoke benchmark with the tiny pipeline: 3 tasks x 4 images, 2 prompts per call,
# 2 DPM-Solver steps at 64 px (a second or two on a CPU)
SYNTH_FLAGS = ("--benchmark", "smoke", "--backend", "diffusers", "--steps", "2", "--size", "64",
               "--images-per-task", "4", "--batch-size", "2", "--device", "cpu", "--quiet")


def clip_tokenizer(folder: Path) -> Any:
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]))
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def tiny_pipeline(workdir: Path) -> Any:
    """2-block UNet + 2-block VAE + 2-layer text encoder; 64 px images in well under a second on a CPU."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, vocab_size=49408, max_position_embeddings=77))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                   tokenizer=clip_tokenizer(workdir / "tokenizer-src"), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(folder: Path) -> Path:
    """The pipeline saved as a local model folder that ``AutoPipelineForText2Image`` loads offline."""
    tiny_pipeline(folder.parent / f"{folder.name}-work").save_pretrained(folder)
    return folder
