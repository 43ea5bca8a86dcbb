"""`flow.py eval`: MSR-VTT-style retrieval metrics of the flow's own loader, model and settings.

Videos are embedded through the library (nothing is added to the index), through a cache of frame
embeddings; captions are embedded by the flow's text encoder; evaluation.metrics scores both
directions for each pooling.
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from evaluation.cache import FrameCache, flow_settings
from evaluation.dataset import Caption, Dataset, load_dataset, read_captions
from evaluation.metrics import (DIRECTIONS, POOLINGS, RECALL_AT, evaluate_similarity, normalize, pooled_similarity,
                                ranks, retrieval_metrics)
from executors.documents import Status, VideoDoc
from executors.errors import ConfigError, VcedError, VideoError
from library import Library, file_sha256, options

__all__ = ['Report', 'add_arguments', 'cache_for', 'command', 'encode_captions', 'encode_videos', 'evaluate']

FRAMES = 12  # frames per video under the count strategy, as CLIP4Clip
Progress = Callable[[str, int, int], None]  # progress(stage, done, total), stage 'videos' or 'captions'


@dataclass
class Report:
    """Metrics per pooling and direction, and what was evaluated."""

    results: dict[str, dict[str, dict[str, float]]]  # pooling -> direction -> metric -> value
    captions: int
    videos: int
    frames: int  # frame embeddings over all videos
    cached: int  # videos whose frame embeddings came from the cache
    failed: dict[str, str]  # video_id -> why it could not be decoded (its captions are skipped)
    skipped: int  # captions left out: video missing or failed


def encode_videos(library: Library, videos: dict[str, Path], cache: FrameCache,
                  progress: Progress | None = None) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
    """Frame embeddings per video_id (from the cache, else the flow), failures (video_id -> reason), cache hits."""
    embeddings: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    todo = []
    for video_id, path in videos.items():
        try:
            digest = file_sha256(path)  # the loader's video_id: the cache is keyed by content
        except VideoError as e:
            failed[video_id] = str(e)
        else:
            cached = cache.get(digest)
            if cached is None:
                todo.append((video_id, digest, path))
                continue
            embeddings[video_id] = cached
        _report(progress, 'videos', len(embeddings) + len(failed), len(videos))
    hits = len(embeddings)
    for (video_id, digest, path), video in zip(todo, library.embed_videos(p for _, _, p in todo)):
        if video.status == Status.FAILED or not len(video.frames):
            failed[video_id] = video.error or f'{path.name}: no frames decoded'
        else:
            frames = _frame_embeddings(video)
            cache.put(digest, frames)
            embeddings[video_id] = frames
        _report(progress, 'videos', len(embeddings) + len(failed), len(videos))
    return embeddings, failed, hits


def _frame_embeddings(video: VideoDoc) -> np.ndarray:
    if any(frame.embedding is None for frame in video.frames):
        raise ConfigError(f"{video.uri}: frames came back from '/encode' without embeddings "
                          "(does the flow's ImageEncoder handle '/encode'?)")
    return np.stack([np.asarray(frame.embedding, dtype=np.float32) for frame in video.frames])


def encode_captions(library: Library, sentences: list[str], progress: Progress | None = None) -> np.ndarray:
    """Captions x dim text embeddings, reported as they come."""
    rows = []
    for start in range(0, len(sentences), 256):
        rows.append(library.embed_texts(sentences[start:start + 256]))
        _report(progress, 'captions', min(start + 256, len(sentences)), len(sentences))
    return np.concatenate(rows)


def evaluate(library: Library, dataset: Dataset, cache: FrameCache, progress: Progress | None = None) -> Report:
    """Embed the data set's videos (through the cache) and captions; score every pooling."""
    frames, failed, hits = encode_videos(library, dataset.videos, cache, progress)
    captions = [c for c in dataset.captions if c.video_id in frames]
    if not captions:
        raise VcedError(f'no video could be decoded: {next(iter(failed.values()))}')
    video_ids = list(dict.fromkeys(c.video_id for c in captions))
    column = {video_id: j for j, video_id in enumerate(video_ids)}
    text = encode_captions(library, [c.sentence for c in captions], progress)
    caption_video = np.array([column[c.video_id] for c in captions])
    video_frames = [frames[v] for v in video_ids]
    results = {p: evaluate_similarity(pooled_similarity(text, video_frames, p), caption_video) for p in POOLINGS}
    return Report(results, len(captions), len(video_ids), sum(len(f) for f in video_frames), hits, failed,
                  dataset.skipped + len(dataset.captions) - len(captions))


def cache_for(library: Library) -> FrameCache:
    """The frame cache of this library's settings, under its workspace."""
    settings = flow_settings(library.settings)
    return FrameCache(Path(settings['with'].get('workspace') or 'data/workspace') / 'eval_cache', settings)


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


# ----------------------------------------------------------------------------- the CLI's `eval`


def add_arguments(parser) -> None:
    parser.add_argument('--videos', required=True, metavar='DIR', help='folder of videos named <video_id>.<ext>')
    parser.add_argument('--captions', required=True, metavar='FILE', help='CSV with video_id and sentence columns')
    parser.add_argument('--frames', type=int, metavar='N', help=f'frames per video under --strategy count (default {FRAMES})')
    parser.add_argument('--compare', metavar='BASE', help='also evaluate this model (e.g. the base of a tuned file), side by side')
    parser.add_argument('--json', action='store_true', help='print one JSON object')


def _sampling(args) -> str:
    return f'count, {args.frames} frames' if args.strategy == 'count' else f"{args.strategy}, as set in flow.yml"


def format_table(report: Report, base: Report | None = None, base_name: str = '') -> str:
    """Rows text->video and video->text for each pooling, columns R@1 R@5 R@10 MdR MnR (and the base's)."""
    names = {'text_to_video': 'text->video', 'video_to_text': 'video->text'}
    metrics = [f'R@{k}' for k in RECALL_AT] + ['MdR', 'MnR']
    header = f"{'direction':<12} {'pooling':<7} " + ' '.join(f'{m:>6}' for m in metrics)
    if base is not None:
        header += '  | ' + ' '.join(f'{m:>6}' for m in metrics) + f'  ({base_name})'
    lines = [header]
    for direction in DIRECTIONS:
        for pooling in POOLINGS:
            row = f'{names[direction]:<12} {pooling:<7} ' + _cells(report, pooling, direction, metrics)
            if base is not None:
                row += '  | ' + _cells(base, pooling, direction, metrics)
            lines.append(row)
    return '\n'.join(lines)


def _cells(report: Report, pooling: str, direction: str, metrics: list[str]) -> str:
    return ' '.join(f'{report.results[pooling][direction][m]:>6.1f}' for m in metrics)


def _listed(names: list[str], shown: int = 5) -> str:
    more = f' and {len(names) - shown} more' if len(names) > shown else ''
    return ', '.join(names[:shown]) + more


def _run(args, dataset: Dataset, model: str | None) -> tuple[Report, FrameCache]:
    from tqdm import tqdm

    overrides = {**options.overrides(args), 'model': model}
    if args.strategy == 'count':
        overrides['count'] = args.frames
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit='', file=sys.stderr, disable=None)
        bar.update(done - bar.n)

    try:
        with Library(options.flow_path(args), origin=options.ORIGIN, **overrides) as library:
            cache = cache_for(library)
            return evaluate(library, dataset, cache, progress), cache
    finally:
        for bar in bars.values():
            bar.close()


def command(args) -> int:
    """`python flow.py eval`: print the metrics table (or JSON); warnings and progress go to stderr."""
    if args.strategy == 'count' and args.frames is None:
        args.frames = FRAMES
    if args.frames is not None and args.frames < 1:
        raise VcedError(f'--frames must be at least 1, not {args.frames}')
    dataset = load_dataset(args.videos, args.captions)
    if dataset.missing:
        print(f'warning: {len(dataset.missing)} videos not found in {args.videos}: {_listed(dataset.missing)}; '
              f'skipping their {dataset.skipped} captions', file=sys.stderr)
    report, cache = _run(args, dataset, args.model)
    base = _run(args, dataset, args.compare)[0] if args.compare else None
    if report.failed:
        print(f'warning: {len(report.failed)} videos could not be decoded, their captions are skipped: '
              f'{_listed(list(report.failed.values()), 3)}', file=sys.stderr)
    if args.json:
        body = {'captions': report.captions, 'videos': report.videos, 'frames': report.frames,
                'skipped_captions': report.skipped, 'missing_videos': dataset.missing, 'failed_videos': report.failed,
                'cached_videos': report.cached, 'strategy': args.strategy, 'count': args.frames,
                'results': report.results}
        if base is not None:
            body['compare'] = {'model': args.compare, 'results': base.results}
        print(json.dumps(body, ensure_ascii=False, allow_nan=False))
    else:
        print(f'{report.captions} captions, {report.videos} videos, {report.frames} frames '
              f'({_sampling(args)}); {report.skipped} captions skipped; '
              f'{report.cached} videos from the frame cache {cache.folder}')
        print(format_table(report, base, args.compare or ''))
    return 0
