"""Speech recognition with faster-whisper (CTranslate2): int8 on CPU, float16 on CUDA, VAD on, word
timestamps on (a cue starts at its first word).

A model is a faster-whisper name ('base', 'small', ...), downloaded once into
weights/faster-whisper-<name>/, or a local model folder (model.bin, config.json, tokenizer.json,
vocabulary.*). Models load once per process. Audio is decoded by ffmpeg to 16 kHz mono and
recognised `chunk_seconds` at a time, so memory stays flat on long videos.
"""
import functools
import logging
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from executors.documents import CueDoc
from executors.errors import ModelError, VcedError, first_line
from executors.media.cutting import ffmpeg_path

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / 'weights'
SAMPLE_RATE = 16000  # Hz, what Whisper takes
MAX_PAUSE = 1.5  # seconds of silence between words that end a cue
SPEECH_PAD_MS = 100  # voice detection's margin around speech (faster-whisper's default, 400, moved first words 0.4 s early)
OFF = {'off', 'none', 'false', 'no', ''}
Progress = Callable[[float, float], None]  # (seconds recognised, seconds in all)


class SpeechModelError(ModelError):
    """The speech model is missing (and cannot be downloaded), or is not a faster-whisper model."""


class SpeechError(VcedError):
    """A video's audio cannot be decoded for recognition; the message names the file and the reason."""


def available_models() -> list[str]:
    from faster_whisper.utils import available_models as names

    return names()


def model_folder(asr: str, weights: str | Path = WEIGHTS_DIR,
                 download: Callable[[str, str], object] | None = None) -> Path:
    """The local folder of model `asr` (a name or a folder), downloading a named one into weights/ once.

    Raises SpeechModelError in one line naming the folder to place the model in when it is
    absent and cannot be downloaded (offline), or naming the valid choices when `asr` is neither.
    """
    path = Path(asr).expanduser()
    if path.is_dir():
        if not (path / 'model.bin').is_file():
            raise SpeechModelError(f'speech model folder {path} has no model.bin (a faster-whisper/CTranslate2 model)')
        return path
    if asr not in available_models():
        raise SpeechModelError(f'speech model {asr!r} is neither a folder nor one of {", ".join(available_models())} '
                               '(or off)')
    folder = Path(weights) / f'faster-whisper-{asr}'
    if (folder / 'model.bin').is_file():
        return folder
    if download is None:
        from faster_whisper.utils import download_model as download
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{folder.name}-', dir=folder.parent))
    try:
        log.info('downloading speech model %s into %s (once)', asr, folder)
        # faster-whisper still passes an argument huggingface_hub deprecated: its warning would precede our notice
        warnings.filterwarnings('ignore', message='The `local_dir_use_symlinks` argument is deprecated',
                                category=UserWarning)
        download(asr, str(staging))
        if not (staging / 'model.bin').is_file():
            raise SpeechModelError(f'speech model {asr!r}: the download has no model.bin')
        staging.rename(folder)
    except SpeechModelError:
        raise
    except Exception as e:  # huggingface_hub raises many types when offline: each means "not downloadable now"
        reason = first_line(e, 120)
        raise SpeechModelError(f'speech model {asr!r} is not in {folder} and cannot be downloaded ({reason}): '
                               f'place a faster-whisper model folder there, or set asr: off') from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def resolve_device(device: str) -> tuple[str, int, str]:
    """(device, index, compute type): 'auto' is CUDA when CTranslate2 sees a GPU; float16 on CUDA, int8 on CPU."""
    import ctranslate2

    if device == 'auto':
        device = 'cuda' if ctranslate2.get_cuda_device_count() > 0 else 'cpu'
    name, _, index = device.partition(':')
    if name not in ('cpu', 'cuda') or (index and not index.isdigit()):
        raise SpeechModelError(f'speech recognition runs on cpu, cuda or cuda:N, not {device!r}')
    return name, int(index or 0), 'float16' if name == 'cuda' else 'int8'


_lock = threading.Lock()


@functools.cache
def _load(folder: str, device: str, index: int, compute_type: str, threads: int):
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(folder, device=device, device_index=index, compute_type=compute_type,
                            cpu_threads=threads, local_files_only=True)
    except (RuntimeError, ValueError, OSError) as e:
        raise SpeechModelError(f'speech model folder {folder} cannot be loaded: {str(e).splitlines()[0]}') from e


def load_model(folder: Path, device: str = 'auto', threads: int = 0):
    """The WhisperModel of a model folder, loaded once per process for each (folder, device, threads)."""
    device, index, compute_type = resolve_device(device)
    with _lock:
        return _load(str(Path(folder).resolve()), device, index, compute_type, int(threads))


_outcomes: dict[tuple, object] = {}  # (asr, weights, device, threads) -> WhisperModel or the SpeechModelError


def model_for(asr: str, weights: str | Path = WEIGHTS_DIR, device: str = 'auto', threads: int = 0,
              download: Callable[[str, str], object] | None = None):
    """The WhisperModel for an `asr` setting, or its SpeechModelError; both are remembered per process,
    so an offline machine tries (and fails) to download a missing model once, not once per video."""
    key = (asr, str(weights), device, int(threads))
    with _lock:
        outcome = _outcomes.get(key)
    if outcome is None:
        try:
            outcome = load_model(model_folder(asr, weights, download), device, threads)
        except SpeechModelError as e:
            outcome = e
        with _lock:
            _outcomes[key] = outcome
    if isinstance(outcome, SpeechModelError):
        raise outcome
    return outcome


class Recognizer:
    """Recognises the speech of a video file into cues with Whisper's detected language.

    Args:
        model: a WhisperModel (load_model).
        beam_size: beams searched per window (1 = greedy: about twice as fast, a little less accurate).
        chunk_seconds: seconds of audio recognised at a time (memory: 64 kB per second).
    """

    def __init__(self, model, beam_size: int = 5, chunk_seconds: float = 600.0):
        self.model, self.beam_size, self.chunk_seconds = model, int(beam_size), float(chunk_seconds)

    def recognise(self, video: Path, video_id: str = '', progress: Progress | None = None,
                  duration: float = 0.0) -> list[CueDoc]:
        """The cues of a file's first audio stream, in time order; SpeechError when ffmpeg cannot decode it."""
        cues = []
        for offset, samples in audio_chunks(video, self.chunk_seconds):
            cues += self.recognise_samples(samples, offset, video_id)
            if progress:
                progress(offset + len(samples) / SAMPLE_RATE, max(duration, offset + len(samples) / SAMPLE_RATE))
        return cues

    def recognise_samples(self, samples: np.ndarray, offset: float = 0.0, video_id: str = '') -> list[CueDoc]:
        """Cues of 16 kHz mono float32 samples whose first sample is at `offset` seconds."""
        segments, info = self.model.transcribe(samples, beam_size=self.beam_size, vad_filter=True,
                                               condition_on_previous_text=False, word_timestamps=True,
                                               vad_parameters={'speech_pad_ms': SPEECH_PAD_MS})
        return [CueDoc(video_id=video_id, start=round(offset + start, 3), end=round(offset + end, 3), text=text,
                       source='asr', language=info.language or '')
                for segment in segments for start, end, text in spoken_parts(segment) if text]


def spoken_parts(segment) -> list[tuple[float, float, str]]:
    """A recognised segment as (start, end, text) from its first word's start to its last word's end,
    split where the speaker pauses over MAX_PAUSE seconds. Whisper's own segment times run from the
    previous segment's end, so a sentence after a silence started there."""
    words = [w for w in (segment.words or ()) if w.word.strip()]
    if not words:
        return [(segment.start, segment.end, segment.text.strip())]
    runs = [[words[0]]]
    for word in words[1:]:
        if word.start - runs[-1][-1].end > MAX_PAUSE:
            runs.append([])
        runs[-1].append(word)
    return [(run[0].start, max(run[-1].end, run[0].start), ''.join(w.word for w in run).strip()) for run in runs]


def audio_chunks(video: Path, chunk_seconds: float):
    """Yield (offset seconds, float32 samples) of the first audio stream, 16 kHz mono, `chunk_seconds` at a time."""
    command = [ffmpeg_path(), '-nostdin', '-v', 'error', '-i', str(video), '-map', '0:a:0', '-vn', '-sn', '-dn',
               '-ac', '1', '-ar', str(SAMPLE_RATE), '-f', 'f32le', 'pipe:1']
    chunk_bytes = int(chunk_seconds * SAMPLE_RATE) * 4
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        try:
            offset = 0.0
            while data := process.stdout.read(chunk_bytes):
                samples = np.frombuffer(data[:len(data) // 4 * 4], np.float32)
                yield offset, samples
                offset += len(samples) / SAMPLE_RATE
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            tail = ' '.join(errors.read().decode('utf-8', 'replace').strip().splitlines()[-2:])
            raise SpeechError(f'{Path(video).name}: ffmpeg cannot decode its audio: {tail or code}')
