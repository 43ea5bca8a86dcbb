"""`python flow.py train`: read the captioned videos, embed or decode them once, train, write the tuned file.

Its parser is built for every flow.py command, so torch and the training code are imported only when it runs."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluation import cache_for, encode_videos, load_dataset
from executors.models.clip_encoding import encode_texts, input_size
from executors.models.clip_model import image_space_id, load_base_copy, resolve_device
from executors.errors import ConfigError, VcedError
from library import Library, options
from training.data import AUTO_HOLDOUT, MIN_VALIDATION  # constants only: the module imports no torch

if TYPE_CHECKING:
    from training.data import Pairs
    from training.trainer import Settings

METHOD_DEFAULTS = {  # per tuned_model.METHODS: epochs, batch, lr; the query adapter is cheap, the backbone methods are not
    'query': (100, 128, 3e-3),
    'adapter': (5, 16, 3e-4),
    'prompt': (5, 16, 5e-3),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--videos', required=True, metavar='DIR', help='folder of videos named <video_id>.<ext>')
    parser.add_argument('--captions', required=True, metavar='FILE', help='training captions: CSV with video_id, sentence')
    parser.add_argument('--out', required=True, metavar='FILE', help='the tuned file to write (use it as --model FILE)')
    parser.add_argument('--val', metavar='FILE', help='validation captions (same CSV format, videos in --videos); '
                        'default: hold out --holdout of the training videos')
    parser.add_argument('--holdout', type=float, metavar='F',
                        help=f'share of videos held out for validation without --val (default: {AUTO_HOLDOUT:g} when '
                        f'that makes {MIN_VALIDATION} videos, else none: small sets train on every video); 0: none')
    parser.add_argument('--method', choices=tuple(METHOD_DEFAULTS), default='query',
                        help='query (default, CPU-friendly: text-side adapter, no re-index), adapter (AIM), prompt (VoP)')
    parser.add_argument('--epochs', type=int, metavar='N', help='at most N epochs (query 100, adapter/prompt 5)')
    parser.add_argument('--batch', type=int, metavar='N', help='captions per step (query 128, adapter/prompt 16)')
    parser.add_argument('--lr', type=float, metavar='X', help='learning rate (query 3e-3, adapter 3e-4, prompt 5e-3)')
    parser.add_argument('--patience', type=int, default=10, metavar='N', help='stop after N epochs without a better R@1')
    parser.add_argument('--weight-decay', dest='weight_decay', type=float, default=0.01, metavar='X',
                        help='AdamW weight decay of the trained parts (0.01)')
    parser.add_argument('--frames', type=int, default=12, metavar='N', help='frames per video, evenly spaced (12)')
    parser.add_argument('--seed', type=int, default=0, help='shuffling, hold-out and initialisation')
    parser.add_argument('--bottleneck', type=int, help='adapter width (query 256, adapter 64)')
    parser.add_argument('--prompt-tokens', dest='prompt_tokens', type=int, default=8, help='prompt: tokens per block (8)')
    parser.add_argument('--prompt-in', dest='prompt_in', default='text,visual', help='prompt: towers, text and/or visual')


def run(args) -> int:
    """Train and write the tuned file; prints where it is and how to use it."""
    from executors.models.tuned_model import changes_image_space, install, trainable_names, write_tuned
    from training.data import DecodedFrames, Pairs, mean_pooled, split_videos
    from training.methods import BackboneMethod, QueryMethod
    from training.trainer import train

    settings, config = _settings(args), _config(args)
    if args.device:
        _device(args, args.device)  # before any work: CUDA asked for where there is none
    train_set = load_dataset(args.videos, args.captions)
    if args.val:
        val_set = load_dataset(args.videos, args.val)
        train_ids, val_ids = set(train_set.videos), set(val_set.videos)
    else:
        val_set = train_set
        train_ids, val_ids, warning = split_videos(list(train_set.videos), args.holdout, args.seed)
        if warning:
            print(f'warning: {warning}', file=sys.stderr)
    overrides = {**options.overrides(args), 'strategy': 'count', 'count': args.frames}
    with Library(options.flow_path(args), origin=options.ORIGIN, **overrides) as library:
        shared = library.settings['with']
        base, device = str(shared['model']), _device(args, str(shared.get('device', 'auto')))
        base_name = base if not os.path.isfile(base) else os.path.realpath(base)
        model = load_base_copy(base, device)
        install(model, args.method, config)
        videos = {**{v: train_set.videos[v] for v in train_ids}, **{v: val_set.videos[v] for v in val_ids}}
        if args.method == 'query':
            embedded = _embedded(library, videos)
            train_ids, val_ids = train_ids & set(embedded), val_ids & set(embedded)
        pairs = Pairs.from_dataset(train_set, train_ids)
        val_pairs = Pairs.from_dataset(val_set, val_ids, 'validate on') if val_ids else None
        if args.method == 'query':
            method = QueryMethod(model, _texts(model, pairs), mean_pooled([embedded[v] for v in pairs.video_ids]), pairs,
                                 *(_texts(model, val_pairs), mean_pooled([embedded[v] for v in val_pairs.video_ids]),
                                   val_pairs) if val_pairs else (None, None, None))
        else:
            decoded = DecodedFrames(Path(shared.get('workspace') or 'data/workspace') / 'train_frames', args.frames,
                                    input_size(model))
            frames = {v: decoded.get(Path(videos[v])) for v in videos}
            method = BackboneMethod(model, [frames[v] for v in pairs.video_ids], pairs,
                                    [frames[v] for v in val_pairs.video_ids] if val_pairs else [], val_pairs, device)
    validating = (f'validating on {len(val_pairs)} captions of {len(val_pairs.video_ids)} videos' if val_pairs
                  else 'no validation set')
    print(f'{args.method}: {len(pairs)} captions of {len(pairs.video_ids)} videos, {validating}, '
          f'{_count(model)} trained parameters', file=sys.stderr)
    identity = image_space_id(base)
    recorded = {'epochs': settings.epochs, 'batch': settings.batch, 'lr': settings.lr, 'patience': settings.patience,
                'weight_decay': settings.weight_decay, 'holdout': args.holdout,
                'frames': args.frames, 'seed': args.seed, 'captions': str(args.captions), 'val': str(args.val or ''),
                'train_captions': len(pairs), 'train_videos': len(pairs.video_ids)}

    def save(metrics: dict) -> None:
        state = {name: p for name, p in model.named_parameters() if name in set(trainable_names(model))}
        write_tuned(args.out, args.method, config, {'model': base_name, 'identity': identity}, state, recorded, metrics)

    outcome = train(method, len(pairs), settings, model.logit_scale.item(), save)
    print(_outcome_line(outcome, args.out))
    if changes_image_space(args.method):
        print(f'this model embeds keyframes differently from {base}: index into a new workspace with '
              f'--model {args.out} --workspace NEW_FOLDER')
    else:
        print(f'search any workspace indexed with {base} as it is: --model {args.out}')
    return 130 if outcome.interrupted else 0


def _device(args, device: str) -> str:
    try:
        return resolve_device(device)
    except ConfigError as e:
        raise ConfigError(f"{'--device' if args.device else options.flow_path(args)}: {e}") from e


def _outcome_line(outcome, out: str) -> str:
    """What was written; nothing (a VcedError, or the interruption) when no epoch was as good as the untrained model."""
    untrained = outcome.history[0]['val_r1']
    if not outcome.best_epoch:
        if outcome.interrupted:
            raise KeyboardInterrupt  # before the first epoch was kept: nothing written
        raise VcedError(f'every epoch did worse on validation than the untrained model (R@1 {untrained:.1f}): '
                        f'{out} not written; try another --lr or --epochs, or more videos')
    done = f"{'interrupted; ' if outcome.interrupted else ''}"
    if outcome.best_r1 is None:
        done += f'trained {outcome.best_epoch} epochs on every video (no validation set)'
    else:
        done += f'best epoch {outcome.best_epoch}: validation R@1 {outcome.best_r1:.1f} (untrained {untrained:.1f})'
    return f'{done}; wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)'


def _settings(args) -> Settings:
    from training.trainer import Settings

    epochs, batch, lr = METHOD_DEFAULTS[args.method]
    settings = Settings(epochs=args.epochs or epochs, batch=args.batch or batch, lr=args.lr or lr,
                        weight_decay=args.weight_decay, patience=args.patience, seed=args.seed)
    for name, value, least in (('--epochs', settings.epochs, 1), ('--batch', settings.batch, 2),
                               ('--frames', args.frames, 1), ('--patience', settings.patience, 1)):
        if value < least:
            raise VcedError(f'{name} must be at least {least}, not {value}')
    if not settings.lr > 0:
        raise VcedError(f'--lr must be above 0, not {settings.lr}')
    if not settings.weight_decay >= 0 or args.holdout is not None and not 0 <= args.holdout < 1:
        raise VcedError(f'--weight-decay must be at least 0 and --holdout from 0 to below 1, not '
                        f'{settings.weight_decay} and {args.holdout}')
    return settings


def _config(args) -> dict:
    from executors.models.tuned_model import DEFAULTS

    if args.method == 'query':
        return {'hidden': args.bottleneck or DEFAULTS['query']['hidden']}
    if args.method == 'adapter':
        return {'bottleneck': args.bottleneck or DEFAULTS['adapter']['bottleneck'], 'mlp_scale': 0.5}
    towers = [t.strip() for t in args.prompt_in.split(',') if t.strip()]
    if not towers or set(towers) - {'text', 'visual'}:
        raise VcedError(f"--prompt-in must name text and/or visual, not '{args.prompt_in}'")
    return {'tokens': args.prompt_tokens, 'towers': towers}


def _embedded(library: Library, videos: dict) -> dict[str, np.ndarray]:
    """Frame embeddings per video through the eval frame cache (computed once, reused by later runs)."""
    from tqdm import tqdm

    with tqdm(total=len(videos), desc='embedding videos', unit='video', file=sys.stderr, disable=None) as bar:
        frames, failed, hits = encode_videos(library, videos, cache_for(library),
                                             lambda stage, done, total: bar.update(done - bar.n))
    if failed:
        print(f'warning: {len(failed)} videos could not be decoded and are left out: '
              f'{next(iter(failed.values()))}', file=sys.stderr)
    if not frames:
        raise VcedError('no video could be decoded')
    return frames


def _texts(model, pairs: Pairs) -> np.ndarray:
    """The base's normalised caption embeddings (the query adapter is still zero: it changes nothing)."""
    return np.concatenate([encode_texts(model, pairs.sentences[i:i + 256]) for i in range(0, len(pairs), 256)])


def _count(model) -> int:
    from executors.models.tuned_model import trainable_names

    names = set(trainable_names(model))
    return sum(p.numel() for n, p in model.named_parameters() if n in names)
