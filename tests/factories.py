"""Test and benchmark material made on the spot: random CLIP checkpoints and ffmpeg-generated videos."""
import csv
import subprocess
from pathlib import Path

import numpy as np
import torch

from executors.media.cutting import ffmpeg_path

# CLIP(...) arguments: embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
# context_length, vocab_size, transformer_width, transformer_heads, transformer_layers
CLIP_PRESETS = {
    'tiny': (32, 224, 2, 64, 32, 77, 49408, 64, 1, 2),  # real vocab and context, tiny widths: fast tests
    'ViT-B/32': (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),  # the real architecture: real cost
    'tiny-512': (512, 224, 2, 64, 32, 77, 49408, 64, 1, 2),  # ViT-B/32's embedding size, tiny towers: memory benches
}


def write_random_clip_checkpoint(path: Path, preset: str = 'tiny', seed: int = 0) -> Path:
    """Save a randomly initialised CLIP as an OpenAI-format state_dict (what clip.load reads)."""
    from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(*CLIP_PRESETS[preset])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def make_video(path: Path, duration: float = 3.0, size: str = '320x240', rate: float = 25,
               source: str = 'testsrc2', codec_args: tuple[str, ...] = ('-c:v', 'libx264', '-preset', 'ultrafast'),
               extra_args: tuple[str, ...] = ()) -> Path:
    """Encode `duration` seconds of an ffmpeg lavfi source (testsrc2, smptebars, mandelbrot, color=c=red, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lavfi = f'{source}{"=" if "=" not in source else ":"}size={size}:rate={rate}'
    # -t, not the source's duration option: some sources (mandelbrot) have none
    _ffmpeg(['-f', 'lavfi', '-i', lavfi, '-t', str(duration), *codec_args, '-pix_fmt', 'yuv420p', *extra_args, str(path)])
    return path


def concat_videos(path: Path, parts: list[Path]) -> Path:
    """Join videos of the same size and rate, re-encoded, so the cuts fall exactly at their boundaries."""
    inputs = [arg for part in parts for arg in ('-i', str(part))]
    graph = ''.join(f'[{i}:v]' for i in range(len(parts))) + f'concat=n={len(parts)}:v=1:a=0[v]'
    _ffmpeg([*inputs, '-filter_complex', graph, '-map', '[v]', '-c:v', 'libx264', '-preset', 'ultrafast',
             '-pix_fmt', 'yuv420p', str(path)])
    return path


def make_captioned_videos(folder: Path, sources: dict[str, str], captions: list[tuple[str, str]],
                          duration: float = 2.0, size: str = '160x120') -> tuple[Path, Path]:
    """An MSR-VTT-style mini set: `folder/videos/<video_id>.mp4` and `folder/captions.csv`.

    `sources` maps each video_id to a lavfi source (testsrc2, color=c=red, ...); `captions` are
    the CSV's (video_id, sentence) rows, which may name videos that `sources` lacks.
    """
    videos = folder / 'videos'
    for video_id, source in sources.items():
        make_video(videos / f'{video_id}.mp4', duration=duration, size=size, source=source)
    table = folder / 'captions.csv'
    with open(table, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['key', 'video_id', 'sentence'])
        writer.writerows((f'ret{i}', video_id, sentence) for i, (video_id, sentence) in enumerate(captions))
    return videos, table


def _ffmpeg(args: list[str]) -> None:
    subprocess.run([ffmpeg_path(), '-y', '-v', 'error', *args], check=True, capture_output=True)


def clustered_vectors(count: int, dim: int, centres: int, noise: float, seed: int = 0) -> np.ndarray:
    """L2-normalised float32 vectors around `centres` random directions, like keyframes of many
    shots (pure Gaussian vectors are unlike them and defeat any graph index)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(centres, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    vectors = directions[rng.integers(0, centres, count)] + noise * rng.normal(size=(count, dim)) / np.sqrt(dim)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write_discriminative_clip_checkpoint(path: Path, preset: str = 'tiny', seed: int = 0) -> Path:
    """Save a CLIP (OpenAI state_dict) whose towers keep what tells inputs apart, unlike a random one.

    A randomly initialised CLIP maps every image to almost the same vector. Here both towers are
    hand-set so that their first block's attention averages the tokens (query and key weights zero:
    uniform attention; value and output projections the identity) and every other residual branch
    adds nothing: an image's embedding is a random projection of its mean normalised patch feature
    (colour and pattern statistics survive), a text's a random projection of the mean of its token
    embeddings (a bag of words). The two spaces are unrelated, so retrieval starts at chance and
    a trained query-side module has something to learn.
    """
    from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(*CLIP_PRESETS[preset])
    with torch.no_grad():
        for tower in (model.visual.transformer, model.transformer):
            for i, block in enumerate(tower.resblocks):
                width = block.attn.embed_dim
                block.mlp.c_proj.weight.zero_()
                block.mlp.c_proj.bias.zero_()
                block.attn.out_proj.bias.zero_()
                block.attn.in_proj_bias.zero_()
                if i == 0:
                    block.attn.in_proj_weight.zero_()
                    block.attn.in_proj_weight[2 * width:].copy_(torch.eye(width))  # value = identity
                    block.attn.out_proj.weight.copy_(torch.eye(width))
                else:
                    block.attn.out_proj.weight.zero_()
        model.visual.class_embedding.zero_()
        model.visual.positional_embedding.zero_()
        model.positional_embedding.zero_()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
