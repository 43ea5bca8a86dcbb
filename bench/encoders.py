"""CLIP encoders on a randomly initialised full-size ViT-B/32 (the real weights' compute; --quick: the
tiny test model, a smoke run), on the CPU.

- images/s: one image per call as VCED encodes (PIL preprocessing, one forward pass per frame) vs
  the ImageEncoder's batches (preprocessing in torch), fp32 and int8;
- text query latency: stock `encode_text` over all 77 positions vs the first fast path (encode_text
  over the tokens up to end-of-text) vs the lean path (batch-first, fused causal attention; the
  torch path on the CPU) vs ONNX Runtime (executors/models/text_onnx.py, the default where installed), fp32 and int8;
- int8's cosine deviation from fp32; int8's agreement with fp32 and near-duplicate keyframe savings
  on a discriminative checkpoint (bench/encoder_checks.py);
- indexing: `Library.index` through flow.yml (decode, encode, index) vs decode-only + encode-only of
  the same videos (the Flow decodes the next video while the current one encodes).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import Result, markdown_table
from bench.encoder_checks import int8_agreement, near_duplicate_savings
from executors.models.clip_encoding import encode_images, encode_texts
from executors.models.clip_text import lean_text_transformer, tokenize
from executors.models.clip_model import load_clip
from executors.documents import DocList, VideoDoc
from executors.image_encoder import ImageEncoder
from executors.video_loader import VideoLoader
from library import Library
from library.pipeline import Flow
from tests.factories import make_video, write_random_clip_checkpoint

FLOW = Path(__file__).resolve().parent.parent / 'flow.yml'
FRAME = (224, 398)  # a 16:9 keyframe as the VideoLoader gives it (short side 224)
QUERY = 'a man rides a bike along the beach'
QUERIES = [QUERY, 'dog', 'fireworks over a city at night', 'two people talking in a kitchen',
           'a red car drives through the snow at dusk while children watch from a bridge']
SOURCES = ['testsrc2', 'smptebars', 'mandelbrot', 'rgbtestsrc']


def run(quick: bool = False) -> list[Result]:
    preset = 'tiny' if quick else 'ViT-B/32'
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = str(write_random_clip_checkpoint(tmp / 'clip-random.pt', preset))
        fp32, int8 = load_clip(checkpoint, 'cpu'), load_clip(checkpoint, 'cpu', quantize='int8')
        return (image_throughput(fp32, int8, preset, quick) + text_latency(fp32, int8, preset, quick)
                + int8_agreement(tmp, preset, quick) + near_duplicate_savings(tmp, preset, quick)
                + indexing(checkpoint, tmp, preset, quick))


def frames(count: int) -> list[np.ndarray]:
    """Smooth pictures with noise, shaped like keyframes (the cost does not depend on the content)."""
    rows, cols = np.mgrid[:FRAME[0], :FRAME[1]]
    rng = np.random.default_rng(0)
    return [np.clip(np.stack([cols + 9 * i, rows * 2, (rows + cols) % 97], -1) + rng.integers(-20, 20, (*FRAME, 3)),
                    0, 255).astype(np.uint8) for i in range(count)]


def vced_one_per_call(model: torch.nn.Module, images: list[np.ndarray]) -> np.ndarray:
    """How VCED encodes: clip.load's PIL transform and one forward pass per frame."""
    from PIL import Image
    from clip.clip import _transform

    preprocess, rows = _transform(model.visual.input_resolution), []
    with torch.inference_mode():
        for image in images:
            features = model.encode_image(preprocess(Image.fromarray(image))[None]).float()
            rows.append((features / features.norm(dim=-1, keepdim=True))[0].numpy())
    return np.stack(rows)


def batched(model: torch.nn.Module, images: list[np.ndarray], batch_size: int, precision: str = 'fp32') -> np.ndarray:
    return np.concatenate([encode_images(model, images[i:i + batch_size], precision)
                           for i in range(0, len(images), batch_size)])


def image_throughput(fp32: torch.nn.Module, int8: torch.nn.Module, preset: str, quick: bool) -> list[Result]:
    count, batch_size, repeat = (8, 8, 1) if quick else (64, 32, 3)
    images = frames(count)
    section = f'images/s, {preset}, {count} keyframes {FRAME[1]}x{FRAME[0]}'
    vced = 'one per call, PIL preprocessing (VCED)'
    runs = {
        vced: lambda: vced_one_per_call(fp32, images),
        'one per call, torch preprocessing': lambda: batched(fp32, images, 1),
        f'batch {batch_size}, fp32 (default)': lambda: batched(fp32, images, batch_size),
        f'batch {batch_size}, int8': lambda: batched(int8, images, batch_size),
        f'batch {batch_size}, bf16 (precision: bf16, opt-in)': lambda: batched(fp32, images, batch_size, 'bf16'),
    }
    for run_once in runs.values():  # first calls of a shape are slow: warm every variant before timing any
        run_once()
    seconds = interleaved_medians(runs, repeat)
    results = [Result(section, name, count / seconds[name], 'img/s', '' if name == vced else vced) for name in runs]
    cosine = np.sum(batched(fp32, images, batch_size) * batched(int8, images, batch_size), axis=1)
    results.append(Result(section, 'int8 vs fp32 cosine, lowest', float(cosine.min()), '',
                          note=f'mean {cosine.mean():.5f}; random weights'))
    return results


def text_latency(fp32: torch.nn.Module, int8: torch.nn.Module, preset: str, quick: bool) -> list[Result]:
    repeat = 5 if quick else 30
    tokens = tokenize([QUERY])
    section = f"text query latency, {preset}, '{QUERY}' ({int(tokens.argmax()) + 1} of 77 tokens)"

    def stock(model):
        with torch.inference_mode():
            features = model.encode_text(tokenize([QUERY])).float()
            return (features / features.norm(dim=-1, keepdim=True)).numpy()

    def first_fast(model):  # the fast path before the lean one: encode_text over the tokens that count
        with torch.inference_mode():
            return model.encode_text(tokens[:, :int(tokens.argmax()) + 1])

    def lean(model):
        with torch.inference_mode():
            return lean_text_transformer(model, tokens[:, :int(tokens.argmax()) + 1])

    def one_thread(run_once):
        def run_with_one():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return run_once()
            finally:
                torch.set_num_threads(threads)
        return run_with_one

    runs = {'stock encode_text, fp32': lambda: stock(fp32), 'first fast path, fp32': lambda: first_fast(fp32),
            'lean path, fp32 (runtime: torch)': lambda: encode_texts(fp32, [QUERY]),
            'lean path, fp32, 1 torch thread': one_thread(lambda: lean(fp32)),
            'stock encode_text, int8': lambda: stock(int8), 'first fast path, int8': lambda: first_fast(int8),
            'lean path, int8': lambda: encode_texts(int8, [QUERY])}
    onnx_note = onnx_rows(fp32, tokens, runs)
    for run_once in runs.values():
        run_once()
    seconds = interleaved_medians(runs, repeat)
    base = 'stock encode_text, fp32'
    results = [Result(section, name, seconds[name] * 1e3, 'ms', '' if name == base else base,
                      note=onnx_note if 'onnxruntime' in name else '') for name in runs]
    exact = float(np.abs(encode_texts(fp32, QUERIES) - stock_batch(fp32, QUERIES)).max())
    cosine = np.sum(encode_texts(fp32, QUERIES) * encode_texts(int8, QUERIES), axis=1)
    results.append(Result(section, 'lean vs stock, max abs difference', exact, '', note=f'{len(QUERIES)} queries, fp32'))
    if onnx_note.startswith('export'):
        from executors.models.text_onnx import encode_tokens_onnx

        difference = float((encode_tokens_onnx(fp32, tokenize(QUERIES)) - stock_features(fp32, QUERIES)).abs().max())
        results.append(Result(section, 'onnxruntime vs stock, max abs difference', difference, '',
                              note=f'{len(QUERIES)} queries, fp32, before normalisation'))
    else:
        results.append(Result(section, 'onnxruntime, fp32', float('nan'), 'ms', note=onnx_note))
    results.append(Result(section, 'int8 vs fp32 cosine, lowest', float(cosine.min()), '',
                          note=f'{len(QUERIES)} queries; random weights'))
    if not quick and onnx_note.startswith('export'):
        results += busy_cores(section, {name: runs[name] for name in runs if name.startswith(('lean path, fp32 (',
                                                                                               'onnxruntime'))})
    return results


def busy_cores(section: str, runs: dict) -> list[Result]:
    """p50 and p99 of `runs` while one busy process per core competes for the CPU (a machine that is
    indexing, or shared)."""
    spinners = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(os.cpu_count() or 1)]
    try:
        results = []
        for name, run_once in runs.items():
            times = []
            for _ in range(40):
                started = time.perf_counter()
                run_once()
                times.append(time.perf_counter() - started)
                time.sleep(0.02)
            results += [Result(section, f'{name}, every core busy, p50', statistics.median(times) * 1e3, 'ms'),
                        Result(section, f'{name}, every core busy, p99', float(np.percentile(times, 99)) * 1e3, 'ms')]
        return results
    finally:
        for spinner in spinners:
            spinner.kill()


def onnx_rows(fp32: torch.nn.Module, tokens: torch.Tensor, runs: dict) -> str:
    """Add ONNX Runtime's text tower to `runs` (1 and 2 threads) when it can be built; a note on its export."""
    from executors.errors import ModelError
    from executors.models.text_onnx import encode_tokens_onnx, onnx_text_session

    try:
        started = time.perf_counter()
        onnx_text_session(fp32, threads=1)
    except ModelError as e:
        return str(e)[:120]
    export = time.perf_counter() - started
    onnx_text_session(fp32, threads=2)
    runs['onnxruntime, fp32, 1 thread'] = lambda: encode_tokens_onnx(fp32, tokens)
    runs['onnxruntime, fp32, 2 threads (default: runtime auto)'] = lambda: encode_tokens_onnx(fp32, tokens, threads=2)
    return f'export + session {export:.1f} s once per model'


def stock_features(model: torch.nn.Module, texts: list[str]) -> torch.Tensor:
    with torch.inference_mode():
        return model.encode_text(tokenize(texts)).float()


def stock_batch(model: torch.nn.Module, texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        features = model.encode_text(tokenize(texts)).float()
        return (features / features.norm(dim=-1, keepdim=True)).numpy()


def interleaved_medians(runs: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each run, taking turns so that load from other processes hits all of them alike."""
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run_once in runs.items():
            started = time.perf_counter()
            run_once()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def indexing(checkpoint: str, tmp: Path, preset: str, quick: bool) -> list[Result]:
    count, duration, repeat = (2, 4, 1) if quick else (4, 20, 3)
    videos = [make_video(tmp / f'video{i}.mp4', duration=duration, size='640x360', source=SOURCES[i % len(SOURCES)])
              for i in range(count)]
    section = (f'indexing {count} videos x {duration} s 640x360 with flow.yml (1 keyframe/s, {preset} batch 32, '
               'reuse_below 0: every keyframe encoded)')
    split, together = [], []
    for attempt in range(repeat):
        with Flow(FLOW, workspace=str(tmp / f'split{attempt}'), model=checkpoint, reuse_below=0) as flow:
            loader = next(e for e in flow.executors if isinstance(e, VideoLoader))
            encoder = next(e for e in flow.executors if isinstance(e, ImageEncoder))
            decode, decoded = _timed(lambda: [piece for v in videos for piece in _pieces(
                loader.handle('/index', DocList[VideoDoc]([VideoDoc(uri=str(v))]), {}))])
            encode, _ = _timed(lambda: [encoder.handle('/index', docs, {}) for docs in decoded])
        with Library(FLOW, workspace=str(tmp / f'index{attempt}'), model=checkpoint, reuse_below=0,
                     precision='fp32') as library:
            index, _ = _timed(lambda: _index_all(library, videos))
        split.append((decode, encode))
        together.append(index)
    decode = statistics.median(d for d, _ in split)
    encode = statistics.median(e for _, e in split)
    both = statistics.median(d + e for d, e in split)
    frames_total = sum(len(docs[0].frames) for docs in decoded)
    other_precisions = []
    for name, setting in (('int8', {'quantize': 'int8'}), ('bf16', {'precision': 'bf16'})):
        runs = []
        for attempt in range(repeat):
            with Library(FLOW, workspace=str(tmp / f'{name}{attempt}'), model=checkpoint, reuse_below=0,
                         **setting) as library:
                runs.append(_timed(lambda: _index_all(library, videos))[0])
        other_precisions.append(Result(section, f'video-hours indexed per hour of wall time, {name}',
                                       count * duration / statistics.median(runs), 'x',
                                       note=f'Library.index, 1 keyframe/s, median of {repeat}'))
    return [
        Result(section, 'decode only (VideoLoader)', decode, 's', note=f'{frames_total} keyframes'),
        Result(section, 'encode only (ImageEncoder)', encode, 's', note=f'{frames_total / encode:.1f} img/s'),
        Result(section, 'decode only + encode only', both, 's'),
        Result(section, 'Library.index (decode, encode, index)', statistics.median(together), 's',
               'decode only + encode only', note=f'median of {repeat}'),
        Result(section, 'video-hours indexed per hour of wall time', count * duration / statistics.median(together),
               'x', note='Library.index, 1 keyframe/s, fp32'),
        *other_precisions,
    ]


def _pieces(result) -> list[DocList]:
    """The VideoLoader's answer as a list of DocLists (with chunk_frames it yields a video in pieces)."""
    return [result] if isinstance(result, DocList) else list(result)


def _timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _index_all(library: Library, videos: list[Path]) -> None:
    statuses = [video.status for video in library.index(videos)]
    if statuses != ['indexed'] * len(videos):
        raise AssertionError(f'indexing failed: {statuses}')


if __name__ == '__main__':
    print(markdown_table(run(quick='--quick' in sys.argv[1:])))
