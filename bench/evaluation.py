"""`flow.py eval` with a cold and a warm frame cache: what the cache saves on a second run.

A generated MSR-VTT-style set (320x240 25 fps clips, one caption each), sampled as CLIP4Clip does
(12 evenly spaced frames), encoded by a full-size ViT-B/32 with random weights (real compute; --quick: the tiny test model).
"""
import itertools
import sys
import tempfile
from pathlib import Path

from bench.common import Result, markdown_table, median_seconds
from evaluation import FrameCache, evaluate, flow_settings, load_dataset
from library import Library
from tests.factories import make_captioned_videos, write_random_clip_checkpoint

FLOW = Path(__file__).resolve().parent.parent / 'flow.yml'
SOURCES = ['testsrc2', 'smptebars', 'mandelbrot', 'rgbtestsrc', 'life', 'cellauto', 'color=c=red', 'color=c=blue']


def run(quick: bool = False) -> list[Result]:
    n_videos, duration, preset, repeat = (2, 1.0, 'tiny', 1) if quick else (16, 10.0, 'ViT-B/32', 3)
    section = f'eval frame cache ({n_videos} videos x {duration:g} s, 12 frames, {preset})'
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = {f'video{i}': SOURCES[i % len(SOURCES)] for i in range(n_videos)}
        videos, captions = make_captioned_videos(tmp, sources, [(v, f'clip number {v}') for v in sources],
                                                 duration=duration, size='320x240')
        checkpoint = write_random_clip_checkpoint(tmp / 'clip.pt', preset)
        overrides = {'workspace': str(tmp / 'workspace'), 'model': str(checkpoint), 'strategy': 'count', 'count': 12}
        dataset = load_dataset(videos, captions)
        fresh = itertools.count()
        with Library(FLOW, **overrides) as library:
            settings = flow_settings(library.settings)
            warm_cache = FrameCache(tmp / 'warm', settings)
            expected = evaluate(library, dataset, warm_cache).results  # loads the model, fills the warm cache
            cold = median_seconds(lambda: evaluate(library, dataset, FrameCache(tmp / f'cold{next(fresh)}', settings)),
                                  repeat=repeat, warmup=0)
            warm = median_seconds(lambda: evaluate(library, dataset, warm_cache), repeat=repeat, warmup=0)
            if evaluate(library, dataset, warm_cache).results != expected:
                raise AssertionError('metrics from the frame cache differ from a fresh run')
    return [Result(section, 'cold cache (decode + encode)', cold, 's'),
            Result(section, 'warm cache (embeddings read back)', warm, 's', baseline='cold cache (decode + encode)',
                   note=f'{cold / warm:.1f}x faster, identical metrics')]

if __name__ == '__main__':
    print(markdown_table(run(quick='--quick' in sys.argv[1:])))
