"""`flow.py train` with its defaults on a small set, against a plain linear map on the same embeddings.

The set: 6 visual concepts (four colour screens, colour bars, a test pattern), 3 short training videos
each (another size or shade) and one unseen test video each, captioned by concept; a tiny CLIP whose
towers keep what tells inputs apart but are unrelated (tests/factories.py), so retrieval starts at
chance. Reported: text->video R@1 (meanP) on the 6 unseen videos for the base, the default recipe
(no --val: the trainer decides how to validate) and a ridge-regression map from caption embeddings to
the training videos' mean embeddings.

    python -m bench.small_training [--seeds 3]
"""
import argparse
import csv
import json
import shutil
import sys
import tempfile
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np

from evaluation import cache_for, encode_captions, encode_videos, load_dataset, normalize
from library import Library
from tests.factories import make_video, write_discriminative_clip_checkpoint

CONCEPTS = {'a red screen': 'color=c=0x{}0000', 'a blue screen': 'color=c=0x0000{}', 'a green screen': 'color=c=0x00{}00',
            'a yellow screen': 'color=c=0x{0}{0}00', 'colour bars': 'smptebars', 'a test pattern': 'testsrc2'}
SIZES, SHADES = ['96x72', '128x96', '80x60', '112x84'], ['FF', 'E0', 'C0', 'F0']  # the fourth: the unseen test video
ROOT = Path(__file__).resolve().parents[1]


def build(folder: Path) -> tuple[Path, Path, Path]:
    """videos/, train.csv (18 captions) and test.csv (6), as the eval CSV format."""
    rows = {'train': [], 'test': []}
    for k, (sentence, source) in enumerate(CONCEPTS.items()):
        for i, (size, shade) in enumerate(zip(SIZES, SHADES)):
            make_video(folder / 'videos' / f'c{k}v{i}.mp4', duration=1.0, size=size, rate=10, source=source.format(shade))
            rows['test' if i == 3 else 'train'].append((f'c{k}v{i}', sentence))
    for name, table in rows.items():
        with open(folder / f'{name}.csv', 'w', newline='') as f:
            csv.writer(f).writerows([('video_id', 'sentence'), *table])
    return folder / 'videos', folder / 'train.csv', folder / 'test.csv'


def cli(*argv: str) -> str:
    from flow import main

    out = StringIO()
    with redirect_stdout(out):
        code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f'flow.py {argv[0]} exited {code}')
    return out.getvalue()


def test_r1(common: list[str], model: str, test: Path) -> float:
    report = json.loads(cli('eval', *common, '--model', model, '--captions', test, '--json'))
    return report['results']['mean']['text_to_video']['R@1']


def linear_map_r1(flow: str, workspace: Path, model: str, videos: Path, train: Path, test: Path,
                  ridge: float = 1e-2) -> float:
    """W = argmin |T W - V|^2 + ridge |W|^2 from training captions to their videos' meanP embeddings."""
    train_set, test_set = load_dataset(str(videos), str(train)), load_dataset(str(videos), str(test))
    with Library(flow, workspace=str(workspace), model=model, strategy='count', count=12, text_model='clip') as library:
        frames, _, _ = encode_videos(library, {**train_set.videos, **test_set.videos}, cache_for(library))
        pooled = {v: normalize(normalize(f).mean(axis=0, keepdims=True))[0] for v, f in frames.items()}
        text = encode_captions(library, [c.sentence for c in train_set.captions])
        target = np.stack([pooled[c.video_id] for c in train_set.captions])
        w = np.linalg.solve(text.T @ text + ridge * np.eye(text.shape[1]), text.T @ target)
        queries = normalize(encode_captions(library, [c.sentence for c in test_set.captions]) @ w)
    test_ids = list(dict.fromkeys(c.video_id for c in test_set.captions))
    scores = queries @ np.stack([pooled[v] for v in test_ids]).T
    hits = [test_ids[int(np.argmax(row))] == c.video_id for row, c in zip(scores, test_set.captions)]
    return 100.0 * float(np.mean(hits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=3, help='training seeds (hold-out and initialisation)')
    parser.add_argument('--keep', metavar='DIR', help='build the set here and keep it')
    args = parser.parse_args(argv)
    folder = Path(args.keep or tempfile.mkdtemp(prefix='vced-small-training-'))
    try:
        model = str(write_discriminative_clip_checkpoint(folder / 'disc.pt'))
        videos, train, test = build(folder)
        flow = str(ROOT / 'flow.yml')
        common = ['--flow', flow, '--workspace', str(folder / 'ws'), '--videos', str(videos)]
        rows = [('base (untrained)', test_r1(common, model, test))]
        for seed in range(args.seeds):
            out = folder / f'query-{seed}.pt'
            cli('train', *common, '--model', model, '--captions', train, '--out', out, '--seed', seed)
            rows.append((f'flow.py train, defaults, seed {seed}', test_r1(common, str(out), test)))
        rows.append(('linear map (ridge) on the same embeddings', linear_map_r1(flow, folder / 'ws', model, videos,
                                                                                  train, test)))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print('| recipe | text->video R@1 on 6 unseen videos |\n| --- | --- |')
    for name, r1 in rows:
        print(f'| {name} | {r1:.1f} |')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
