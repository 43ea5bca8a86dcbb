"""Text towers side by side on the CPU, batch 1 as a query is embedded (`python -m bench.text_models`,
`--quick`: the tiny test models, a smoke run):

- query latency p50/p99 of CLIP's text tower (the fast path) and of the multilingual tower
  (clip-ViT-B-32-multilingual-v1's architecture: multilingual DistilBERT, 119547-piece vocabulary,
  dim 768, 6 layers, mean pooling, Dense 768 -> 512), fp32 and int8, both randomly initialised at
  full size (the real weights' compute), taking turns so other load on the machine hits all alike;
- a repeated query through the TextEncoder (its LRU cache), and a new one for comparison;
- the first multilingual query's load time, and resident memory with each tower and both loaded
  (measured in a fresh process).
"""
import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Result, markdown_table
from tests.factories import write_random_clip_checkpoint
from tests.multilingual_factory import write_random_multilingual_model

ENGLISH = ['a man rides a bike along the beach', 'dog', 'fireworks over a city at night',
           'two people talking in a kitchen', 'a red car drives through the snow at dusk while children watch']
OTHERS = ['海滩上骑自行车的男人', '狗', '夜晚城市上空的烟花', '厨房里两个人在说话', 'كلب على الشاطئ', '海辺で犬が走る']
MORE = ['Ein Mann fährt mit dem Fahrrad am Strand entlang', 'собака бежит по снегу', 'un coche rojo en la nieve',
        '바닷가를 달리는 개', 'feux d’artifice au-dessus de la ville', 'σκύλος στην παραλία', 'köpek sahilde koşuyor',
        'कुत्ता समुद्र तट पर', 'สุนัขบนชายหาด']


def run(quick: bool = False) -> list[Result]:
    clip_preset, multilingual_preset = ('tiny', 'tiny') if quick else ('ViT-B/32', 'full')
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = str(write_random_clip_checkpoint(Path(tmp) / 'clip-random.pt', clip_preset))
        folder = str(write_random_multilingual_model(Path(tmp) / 'multilingual-random', multilingual_preset,
                                                     out=32 if quick else 512))
        memory = resident_memory(checkpoint, folder)
        return latency(checkpoint, folder, quick) + cached(checkpoint, folder, quick) + memory


def latency(checkpoint: str, folder: str, quick: bool) -> list[Result]:
    from executors.text_encoder import ClipTextTower, SentenceTextTower

    towers = {'CLIP text tower (fast path), fp32': (ClipTextTower(checkpoint, 'cpu'), ENGLISH),
              'CLIP text tower (fast path), int8': (ClipTextTower(checkpoint, 'cpu', 'int8'), ENGLISH),
              'multilingual tower, fp32': (SentenceTextTower(folder, checkpoint, 'cpu'), OTHERS),
              'multilingual tower, int8': (SentenceTextTower(folder, checkpoint, 'cpu', 'int8'), OTHERS)}
    for tower, texts in towers.values():
        tower.encode(texts[:1])  # load and warm up
    repeat = 3 if quick else 15
    times = {name: [] for name in towers}
    for _ in range(repeat):
        for name, (tower, texts) in towers.items():
            for text in texts:
                started = time.perf_counter()
                tower.encode([text])
                times[name].append(time.perf_counter() - started)
    section = 'text query latency, batch 1 (CLIP: 5 English queries, multilingual: 6 zh/ar/ja)'
    base = 'CLIP text tower (fast path), fp32'
    results = []
    for name, values in times.items():
        results.append(Result(section, f'{name}, p50', statistics.median(values) * 1e3, 'ms',
                              '' if name == base else f'{base}, p50'))
        results.append(Result(section, f'{name}, p99', np.percentile(values, 99) * 1e3, 'ms', note=f'{len(values)} queries'))
    fp32, int8 = (towers[f'multilingual tower, {kind}'][0].encode(OTHERS + ENGLISH) for kind in ('fp32', 'int8'))
    results.append(Result(section, 'multilingual int8 vs fp32 cosine, lowest', float((fp32 * int8).sum(1).min()), '',
                          note='random weights'))
    return results


def cached(checkpoint: str, folder: str, quick: bool) -> list[Result]:
    """A query through the TextEncoder's handler: repeated (the cache) vs new each time."""
    from executors.documents import DocList, QueryDoc
    from executors.text_encoder import TextEncoder

    encoder = TextEncoder(model=checkpoint, device='cpu', text_model='auto', multilingual_model=folder,
                          aligned_to=checkpoint)
    section = 'TextEncoder /search handler, text_model auto, batch 1'
    results = []
    for language, texts in (('English', ENGLISH), ('Chinese', OTHERS[:4])):
        new, repeated = [], []
        for round_ in range(2 if quick else 10):
            for text in texts:
                query = f'{text} {round_}' if language == 'English' else f'{text}{round_}'
                started = time.perf_counter()
                encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text=query)]), {})
                new.append(time.perf_counter() - started)
        for _ in range(20 if quick else 200):
            for text in texts:
                started = time.perf_counter()
                encoder.handle('/search', DocList[QueryDoc]([QueryDoc(text=text)]), {})
                repeated.append(time.perf_counter() - started)
        results.append(Result(section, f'new {language} query, p50', statistics.median(new) * 1e3, 'ms'))
        speedup = statistics.median(new) / statistics.median(repeated)
        results.append(Result(section, f'repeated {language} query (cache), p50', statistics.median(repeated) * 1e3,
                              'ms', note=f'{speedup:.0f}x faster than a new one'))
        results.append(Result(section, f'repeated {language} query (cache), p99', np.percentile(repeated, 99) * 1e3,
                              'ms', note=f'{len(repeated)} queries'))
    return results


def resident_memory(checkpoint: str, folder: str) -> list[Result]:
    """RSS of a fresh process after its imports, then with CLIP, then with both towers loaded (fp32)."""
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        steps = pool.apply(_memory_steps, (checkpoint, folder))
    section = 'a fresh search process (fp32)'
    return [Result(section, 'resident after imports (torch, clip)', steps['imports'], 'MB'),
            Result(section, 'CLIP loaded (+)', steps['clip'] - steps['imports'], 'MB', note='the whole model: images too'),
            Result(section, 'multilingual tower loaded as well (+)', steps['both'] - steps['clip'], 'MB',
                    note='with the sentence-transformers/transformers import'),
            Result(section, 'both loaded, resident total', steps['both'], 'MB',
                    note='safetensors are memory-mapped: pages count once read'),
            Result(section, 'both loaded, after 20 queries in 13 languages, resident total', steps['used'], 'MB'),
            Result(section, 'first multilingual query: import and load', steps['load_seconds'], 's',
                    note='paid once per process, on the first query that needs the tower')]


def _memory_steps(checkpoint: str, folder: str) -> dict[str, float]:
    from executors.models.clip_model import clip_package, load_clip

    clip_package()
    steps = {'imports': _rss_mb()}
    load_clip(checkpoint, 'cpu')
    steps['clip'] = _rss_mb()
    started = time.perf_counter()
    from executors.models.multilingual import load_multilingual

    load_multilingual(folder, 'cpu')
    steps['load_seconds'] = time.perf_counter() - started
    steps['both'] = _rss_mb()
    from executors.models.multilingual import encode_sentences

    model = load_multilingual(folder, 'cpu')
    for text in OTHERS + ENGLISH + MORE:
        encode_sentences(model, [text])
    steps['used'] = _rss_mb()
    return steps


def _rss_mb() -> float:
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith('VmRSS:'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.text_models', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='the tiny test models: a smoke run')
    parser.add_argument('--json', action='store_true', help='print the results as JSON instead of a table')
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    print(json.dumps([r.__dict__ for r in results], indent=1) if args.json else markdown_table(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
