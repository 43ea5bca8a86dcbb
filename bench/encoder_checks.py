"""What the encoders' shortcuts cost in results, on a discriminative CLIP (tests/factories.py: its towers
keep what tells inputs apart, unlike random weights, which map every image to almost one vector):

- int8 vs fp32 (on that checkpoint with random MLP outputs, which are what int8 quantises; MHA's
  projections stay fp32): does the int8 model rank a gallery of keyframes as fp32 does (top-1 agreement,
  Spearman rank correlation of each query's scores), for image and text queries;
- near-duplicate keyframes: the fraction of keyframes the ImageEncoder does not encode on static
  footage (a still colour, a still test card, a slideshow) and on moving footage, the encode time
  saved, and whether searching the frames finds the same keyframes as encoding every one.
"""
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import Result
from executors.models.clip_encoding import encode_images, encode_texts
from executors.models.clip_model import load_clip
from executors.documents import DocList, FrameDoc, VideoDoc
from executors.image_encoder import ImageEncoder, reuse_sources
from executors.video_loader import VideoLoader
from tests.factories import concat_videos, make_video, write_discriminative_clip_checkpoint

TEXTS = ['a man rides a bike along the beach', 'dog', 'fireworks over a city at night', 'a red car in the snow',
         'two people talking in a kitchen', 'a slide with a chart', 'green field', 'the sea at dusk']
REUSE_BELOW = 2.0  # the ImageEncoder's default


def scenes(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` different keyframe-shaped pictures: blocky colour fields of random layout plus noise."""
    rng = np.random.default_rng(seed)
    pictures = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (int(rng.integers(2, 9)), int(rng.integers(2, 15)), 3))
        big = np.kron(coarse, np.ones((224 // coarse.shape[0] + 1, 398 // coarse.shape[1] + 1, 1)))[:224, :398]
        pictures.append(np.clip(big + rng.integers(-15, 16, big.shape), 0, 255).astype(np.uint8))
    return pictures


def agreement(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Top-1 agreement and mean Spearman correlation of score rows (queries x gallery)."""
    top1 = float(np.mean(reference.argmax(axis=1) == other.argmax(axis=1)))
    ranks = [np.argsort(np.argsort(row)) for row in (*reference, *other)]
    half = len(reference)
    spearman = float(np.mean([np.corrcoef(ranks[i], ranks[half + i])[0, 1] for i in range(half)]))
    return top1, spearman


def with_random_mlps(path: Path, target: Path, std: float = 0.02) -> Path:
    """The checkpoint at `path` with random (not zero) MLP output weights in every block: the layers int8
    quantises then change the embeddings, so its agreement with fp32 means something."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    generator = torch.Generator().manual_seed(1)
    for name, value in state.items():
        if name.endswith('mlp.c_proj.weight'):
            state[name] = torch.randn(value.shape, generator=generator) * std
    torch.save(state, target)
    return target


def int8_agreement(tmp: Path, preset: str, quick: bool) -> list[Result]:
    checkpoint = str(with_random_mlps(write_discriminative_clip_checkpoint(tmp / 'clip-discriminative.pt', preset),
                                      tmp / 'clip-discriminative-mlps.pt'))
    fp32, int8 = load_clip(checkpoint, 'cpu'), load_clip(checkpoint, 'cpu', quantize='int8')
    gallery_pictures = scenes(16 if quick else 48)
    queries = [np.clip(p.astype(int) + np.random.default_rng(i).integers(-40, 41, p.shape), 0, 255).astype(np.uint8)
               for i, p in enumerate(gallery_pictures)]  # another take of each scene
    section = f'int8 vs fp32 on a discriminative {preset} with random MLPs ({len(gallery_pictures)} keyframes)'
    results = []
    for kind, embed in (('image', lambda m: encode_images(m, queries)), ('text', lambda m: encode_texts(m, TEXTS))):
        scores = {name: embed(model) @ encode_images(model, gallery_pictures).T
                  for name, model in (('fp32', fp32), ('int8', int8))}
        top1, spearman = agreement(scores['fp32'], scores['int8'])
        fp32_correct = float(np.mean(scores['fp32'].argmax(axis=1) == np.arange(len(queries)))) if kind == 'image' else None
        note = f'fp32 finds the right scene for {fp32_correct:.0%}' if fp32_correct is not None else 'bag-of-words texts'
        results.append(Result(section, f'{kind} queries: same top-1 keyframe', top1, '', note=note))
        results.append(Result(section, f'{kind} queries: Spearman rank correlation', spearman, '',
                              note='mean over queries of the gallery ranking'))
    scores = {precision: encode_images(fp32, queries, precision) @ encode_images(fp32, gallery_pictures, precision).T
              for precision in ('fp32', 'bf16')}
    top1, spearman = agreement(scores['fp32'], scores['bf16'])
    results.append(Result(section, 'bf16 (precision: bf16) image queries: same top-1 keyframe', top1, ''))
    results.append(Result(section, 'bf16 (precision: bf16) image queries: Spearman rank correlation', spearman, ''))
    return results


def static_videos(tmp: Path, duration: int) -> dict[str, Path]:
    """Generated footage, 640x360: three static kinds and a moving control."""
    parts = [make_video(tmp / f'slide{i}.mp4', duration=duration // 4, size='640x360', source=source)
             for i, source in enumerate(['color=c=white', 'smptebars', 'rgbtestsrc', 'color=c=navy'])]
    return {
        'a still colour': make_video(tmp / 'colour.mp4', duration=duration, size='640x360', source='color=c=teal'),
        'a still test card (smptebars)': make_video(tmp / 'card.mp4', duration=duration, size='640x360',
                                                    source='smptebars'),
        'a slideshow of 4 stills': concat_videos(tmp / 'slides.mp4', parts),
        'moving footage (testsrc2)': make_video(tmp / 'moving.mp4', duration=duration, size='640x360',
                                                source='testsrc2'),
    }


def near_duplicate_savings(tmp: Path, preset: str, quick: bool) -> list[Result]:
    duration = 8 if quick else 40
    checkpoint = str(write_discriminative_clip_checkpoint(tmp / 'clip-discriminative.pt', preset))
    loader = VideoLoader(workspace=str(tmp / 'reuse-workspace'), chunk_frames=0)
    section = f'near-duplicate keyframes, {duration} s videos at 1 keyframe/s, discriminative {preset}'
    results = []
    for kind, path in static_videos(tmp, duration).items():
        docs = loader.handle('/index', DocList[VideoDoc]([VideoDoc(uri=str(path))]), {})
        pictures = [frame.tensor for frame in docs[0].frames]
        sources = reuse_sources(pictures, REUSE_BELOW)
        saved = 1 - len(set(sources)) / len(sources)
        seconds, embeddings = {}, {}
        for reuse in (REUSE_BELOW, 0.0):
            encoder = ImageEncoder(model=checkpoint, device='cpu', reuse_below=reuse)
            encoder.model  # loaded before timing
            video = VideoDoc(uri=str(path), frames=DocList[FrameDoc](
                [FrameDoc(timestamp=frame.timestamp, tensor=frame.tensor) for frame in docs[0].frames]))
            started = time.perf_counter()
            encoder.encode_frames(video)
            seconds[reuse] = time.perf_counter() - started
            embeddings[reuse] = np.stack([frame.embedding for frame in video.frames])
        cosine = np.sum(embeddings[REUSE_BELOW] * embeddings[0.0], axis=1)
        queries = encode_images(load_clip(checkpoint, 'cpu'), scenes(8, seed=1) + pictures[::max(1, len(pictures) // 4)])
        same = np.mean([np.isclose((embeddings[REUSE_BELOW] @ q).max(), (embeddings[0.0] @ q).max(), atol=1e-3)
                        for q in queries])
        results.append(Result(section, f'{kind}: keyframes not encoded', saved * 100, '%',
                              note=f'{len(sources) - len(set(sources))} of {len(sources)}; '
                                   f'encode {seconds[0.0] / max(seconds[REUSE_BELOW], 1e-9):.1f}x faster'))
        results.append(Result(section, f'{kind}: reused vs own embedding, lowest cosine', float(cosine.min()), '',
                              note=f'best score per query unchanged (1e-3) for {same:.0%} of {len(queries)} queries'))
    return results
