"""Training speed per method on a random full-size ViT-B/32 (this CPU, a small batch).

Steps per second for `query` (the adapter on cached embeddings), `adapter` (AIM), `prompt` (VoP,
both towers) and full fine-tuning, as ratios of full fine-tuning; then what the embedding cache
saves on one `query` epoch: the epoch from the cache against the same epoch that first embeds
every video's frames and every caption with the frozen towers (what the cache does once).
Weights are random (no download): the cost is the architecture's, the loss values mean nothing.

    python -m bench.training [--quick]
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import Result, markdown_table, median_seconds
from evaluation import Caption, Dataset
from executors.models.clip_encoding import encode_images, encode_texts
from executors.models.clip_model import load_base_copy
from executors.models.tuned_model import install, trainable_names
from tests.factories import write_random_clip_checkpoint
from training.data import Pairs
from training.methods import BackboneMethod, QueryMethod

OUT = Path(__file__).resolve().parent / 'out'
BATCH, FRAMES = 4, 4  # captions (one video each) per step, frames per video
EPOCH_VIDEOS = 100  # videos (one caption each) in the cache comparison


def checkpoint() -> str:
    path = OUT / 'random-ViT-B-32.pt'
    if not path.exists():
        write_random_clip_checkpoint(path, 'ViT-B/32')
    return str(path)


def material(videos: int) -> tuple[Pairs, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    pairs = Pairs.from_dataset(Dataset([Caption(f'v{i}', f'a person does thing number {i} in a room')
                                        for i in range(videos)], {}))
    frames = [rng.integers(0, 256, (FRAMES, 224, 224, 3), dtype=np.uint8) for _ in range(videos)]
    return pairs, frames


def step_seconds(method, repeat: int) -> float:
    scale = torch.nn.Parameter(torch.tensor(4.0))
    optimiser = torch.optim.AdamW(list(method.parameters()) + [scale], lr=1e-4)
    rows = np.arange(BATCH)

    def step():
        loss = method.loss(rows, scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return median_seconds(step, repeat=repeat, warmup=1)


def run(quick: bool = False) -> list[Result]:
    """Training steps per second per method, and a query epoch from the cache or not."""
    repeat = 1 if quick else 3
    torch.set_num_threads(torch.get_num_threads())
    base = checkpoint()
    pairs, frames = material(BATCH)
    results = []
    total = sum(p.numel() for p in load_base_copy(base).parameters())
    for name, method_name in (('full fine-tuning', None), ('adapter (AIM)', 'adapter'), ('prompt (VoP, text+visual)', 'prompt')):
        model = load_base_copy(base)
        if method_name:
            install(model, method_name, {})
        method = BackboneMethod(model, frames, pairs, frames, pairs, 'cpu', full=method_name is None)
        trained = sum(p.numel() for p in method.parameters())
        seconds = step_seconds(method, repeat)
        results.append(Result('steps/s', name, 1 / seconds, 'steps/s', 'full fine-tuning',
                              f'{trained / 1e6:.2f} M trained ({100 * trained / total:.2f}%)'))
    model = install(load_base_copy(base), 'query', {})
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(BATCH, 512)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    query = QueryMethod(model, embeddings, embeddings, pairs, embeddings, embeddings, pairs)
    trained = sum(p.numel() for n, p in model.named_parameters() if n in set(trainable_names(model)))
    seconds = step_seconds(query, 20)
    results.append(Result('steps/s', 'query (cached embeddings)', 1 / seconds, 'steps/s', 'full fine-tuning',
                          f'{trained / 1e6:.2f} M trained ({100 * trained / total:.2f}%)'))

    # one query epoch over EPOCH_VIDEOS videos: from the cache, or embedding everything first
    epoch_pairs, _ = material(EPOCH_VIDEOS)
    video = rng.integers(0, 256, (FRAMES, 224, 224, 3), dtype=np.uint8)
    started = time.perf_counter()
    for _ in range(2 if quick else 5):
        encode_images(model, list(video))
    per_video = (time.perf_counter() - started) / (2 if quick else 5)
    started = time.perf_counter()
    encode_texts(model, epoch_pairs.sentences)
    texts = time.perf_counter() - started
    cached_epoch = seconds * EPOCH_VIDEOS / BATCH
    results.append(Result('query epoch, 100 videos', 'from the cache', cached_epoch, 's'))
    results.append(Result('query epoch, 100 videos', 'embedding frames and captions first',
                          cached_epoch + per_video * EPOCH_VIDEOS + texts, 's', 'from the cache',
                          f'{FRAMES} frames/video, decoding not counted'))
    return results


if __name__ == '__main__':
    print(f'random ViT-B/32, CPU ({torch.get_num_threads()} threads), batch {BATCH} captions x {FRAMES} frames\n')
    print(markdown_table(run(quick='--quick' in sys.argv[1:])))
