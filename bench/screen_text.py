"""On-screen text: how much of what is drawn on a video is found, when, what textless footage gives, and the cost.

Found rate: lines of 3-5 English words (or 6-8 Chinese characters) drawn one after another, 3 s each,
at 16-48 px on 1280x720 footage (white on a translucent box, the burned-in subtitle style) over a still
picture (colour bars) and over a busy moving one (ffmpeg's game of life, the hardest background seen), go
through the product's VideoLoader (uniform, 1 keyframe/s) and ScreenTextReader; each line's query
is two of its words (Chinese: two 2-character words), searched over the stored cues with the
product's full-text search (FTS5, screen cues only). A line is found when a cue holding both
words starts within 1 s of the line's start. Start error: |cue start - line start| of found lines.
False cues: screen cues from textless lavfi footage (mandelbrot, life, gradients, cellauto; 4 minutes in all,
or `--textless-minutes`), per hour. Cost: seconds of ScreenTextReader work (decoding again at 1280x720 and OCR) per second of
video, on footage whose text changes every 3rd keyframe, over a still picture (smptehdbars) and over a moving
one (mandelbrot's zoom: every keyframe differs, none shows text of its own), with the near-duplicate check
(changed_above 8) and without it (every keyframe read).
"""
import argparse
import random
import tempfile
from pathlib import Path

import numpy as np

from bench.common import Result, clocked, markdown_table
from executors.documents import SCREEN, DocList, VideoDoc
from executors.storage.backends import open_storage
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from executors.screen_text_reader import ScreenTextReader
from executors.video_loader import VideoLoader
from tests.screen_text_fixtures import TEXTLESS, Drawn, text_video

SIZES = (16, 20, 24, 32, 40, 48)
ENGLISH = ('river', 'garden', 'market', 'yellow', 'winter', 'camera', 'engine', 'planet', 'silver', 'forest',
           'doctor', 'bridge', 'castle', 'rocket', 'summer', 'island', 'jacket', 'window', 'orange', 'violin',
           'harbor', 'pepper', 'tunnel', 'desert', 'candle', 'farmer', 'guitar', 'museum', 'pillow', 'copper')
CHINESE = ('天气', '城市', '学生', '电脑', '音乐', '朋友', '公司', '医院', '火车', '机场', '银行', '老师', '新闻',
           '市场', '历史', '文化', '经济', '科学', '电影', '手机', '森林', '海洋', '春天', '工厂', '农民', '地图')
SECONDS = 3.0
PICTURES = {'still': 'smptehdbars', 'moving': TEXTLESS[1]}  # behind the lines: colour bars; ffmpeg's game of life, busy
FRAME = (1280, 720)


def lines(words: tuple[str, ...], per_size: int, seed: int, joiner: str) -> list[tuple[Drawn, str]]:
    """Lines of 3-4 random words, `per_size` at each size, each with its two-word query."""
    rng, drawn, start = random.Random(seed), [], 0.0
    for size in SIZES:
        for _ in range(per_size):
            picked = rng.sample(words, rng.choice((3, 4)))
            first = rng.randrange(len(picked) - 1)
            y = rng.randrange(20, FRAME[1] - size - 20)
            width = size * len(joiner.join(picked)) * (0.6 if joiner else 1.0)  # DejaVu's letters ~0.6 em, CJK 1 em
            x = rng.randrange(20, max(21, int(FRAME[0] - width - 20)))
            drawn.append((Drawn(joiner.join(picked), start, start + SECONDS, size, x, y),
                          ' '.join(picked[first:first + 2])))
            start += SECONDS
    return drawn


def read(video: Path, changed_above: float = 8.0) -> tuple[list, float, float]:
    """The video's screen cues through the product's loader and reader; wall and CPU seconds the reader worked."""
    loader = VideoLoader(workspace=str(video.parent / 'workspace'), chunk_frames=64)
    reader = ScreenTextReader(changed_above=changed_above)
    reader.reader()  # the models load before the clock starts
    worked, used, cues = 0.0, 0.0, []
    for piece in loader.index(DocList[VideoDoc]([VideoDoc(uri=str(video))]), {}):
        wall, cpu = clocked(lambda: reader.index(piece))
        worked, used = worked + wall, used + cpu
        cues += [cue for doc in piece if doc.last_chunk for cue in doc.cues]
    return cues, worked, used


def found_rate(folder: Path, language: str, per_size: int, picture: str = 'still') -> list[Result]:
    words, joiner = (ENGLISH, ' ') if language == 'English' else (CHINESE, '')
    drawn = lines(words, per_size, seed=7, joiner=joiner)
    video = text_video(folder / f'{language}-{picture}.mp4', [d for d, _ in drawn], len(drawn) * SECONDS,
                       PICTURES[picture], FRAME, 5)
    cues, worked, _ = read(video)
    storage = open_storage('local', workspace=str(folder / f'workspace-{language}-{picture}'))
    record = VideoRecord('d' * 64, str(video), float(len(drawn) * SECONDS), 5.0, FRAME[0], FRAME[1])
    storage.add(record, Frames(np.zeros(1), np.eye(1, 8, dtype=np.float32), ['']), [], cues, ImageSpace('e' * 64))
    section = f'screen text, {language} lines, {picture} picture, 1280x720, 1 keyframe/s'
    results, errors = [], []
    for size in SIZES:
        hits = 0
        for line, query in [(d, q) for d, q in drawn if d.size == size]:
            starts = [hit.start for hit in storage.search_cues(query, 50) if hit.source == SCREEN]
            near = [start for start in starts if abs(start - line.start) <= 1.0]
            hits += bool(near)
            errors += [min(abs(start - line.start) for start in near)] if near else []
        results.append(Result(section, f'found at +-1 s, {size} px', hits / per_size, '', note=f'{per_size} lines'))
    at_least_20 = [r.value for r, size in zip(results, SIZES) if size >= 20]
    results.append(Result(section, 'found at +-1 s, 20-48 px', sum(at_least_20) / len(at_least_20), ''))
    results.append(Result(section, 'mean start error of found lines', sum(errors) / max(1, len(errors)), 's',
                          note=f'{len(cues)} cues for {len(drawn)} lines; reader {worked / (len(drawn) * SECONDS):.3f} s per video-s'))
    return results


def false_cues(folder: Path, seconds: float) -> list[Result]:
    count, total = 0, 0.0
    notes = []
    for i, source in enumerate(TEXTLESS):
        video = text_video(folder / f'textless{i}.mp4', [], seconds, source, FRAME, 5)
        cues, _, _ = read(video)
        count, total = count + len(cues), total + seconds
        notes += [f'{cue.text!r}' for cue in cues][:3]
    return [Result('screen text, textless footage', 'false cues per hour', count * 3600 / total, '',
                   note=f'{count} in {total / 60:g} min' + (f": {', '.join(notes)}" if notes else ''))]


def cost(folder: Path, seconds: float) -> list[Result]:
    drawn = [Drawn(f'{ENGLISH[i % 30]} {ENGLISH[(i * 7 + 3) % 30]} {CHINESE[i % 26]}', i * SECONDS, (i + 1) * SECONDS,
                   32, 80, 600) for i in range(int(seconds // SECONDS))]
    results = []
    for picture, source in (('still picture', PICTURES['still']), ('moving picture', TEXTLESS[0])):
        video = text_video(folder / f'talk-{source[:10]}.mp4', drawn, seconds, source, FRAME, 25)
        section = f'screen text cost, text changes every 3rd keyframe, {picture}, 1280x720 25 fps'
        for name, changed_above in (('read every keyframe', 0.0), ('near-duplicate reuse (changed_above 8)', 8.0)):
            cues, worked, _ = read(video, changed_above)
            results.append(Result(section, name, worked / seconds, 'x real time', baseline='read every keyframe',
                                  note=f'{worked / seconds * 3600 / 60:.1f} min per video-hour, {len(cues)} cues'))
    return results


def run(quick: bool = False, textless_minutes: float = 0.0) -> list[Result]:
    """textless_minutes: how much textless footage in all (default 1 quick, else 4; 60 shows <= 1 false cue an hour)."""
    textless_seconds = 60 * (textless_minutes or (1 if quick else 4)) / len(TEXTLESS)
    with tempfile.TemporaryDirectory(prefix='vced-bench-screen-') as folder:
        folder = Path(folder)
        per_size = 2 if quick else 5
        return ([row for picture in PICTURES for language in ('English', 'Chinese')
                 for row in found_rate(folder, language, per_size, picture)]
                + false_cues(folder, textless_seconds) + cost(folder, 30.0 if quick else 90.0))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='2 lines a size, 1 minute of textless footage')
    parser.add_argument('--textless-minutes', type=float, default=0.0,
                        help='minutes of textless footage to count false cues in (60 takes ~20 minutes)')
    args = parser.parse_args()
    print(markdown_table(run(args.quick, args.textless_minutes)))
