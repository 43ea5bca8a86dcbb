"""Subtitles as timed text: sidecar .srt/.vtt files next to a video and text subtitle streams inside it.

Streams are listed with PyAV (installed with faster-whisper): it reports each stream's type,
codec and language as fields, where `ffmpeg -i` prints them as human-readable lines whose layout
changes between ffmpeg versions. The text itself is extracted by the ffmpeg binary
(executors.media.cutting.ffmpeg_path), converted to SRT, and parsed like a sidecar file.
"""
import dataclasses
import html
import logging
import re
import subprocess
from pathlib import Path

from executors.documents import CueDoc
from executors.errors import VcedError
from executors.media.cutting import ffmpeg_path

log = logging.getLogger(__name__)

SIDECAR_FORMATS = {'.srt': 'srt', '.vtt': 'vtt'}
TEXT_CODECS = {'mov_text', 'subrip', 'srt', 'ass', 'ssa', 'webvtt', 'text'}
BITMAP_CODECS = {'dvd_subtitle', 'hdmv_pgs_subtitle', 'dvb_subtitle', 'xsub', 'dvb_teletext'}
# ISO 639-2 (what containers store) to ISO 639-1 (what cues store), for the common languages
ISO639_2 = {'eng': 'en', 'chi': 'zh', 'zho': 'zh', 'jpn': 'ja', 'kor': 'ko', 'fre': 'fr', 'fra': 'fr',
            'ger': 'de', 'deu': 'de', 'spa': 'es', 'ita': 'it', 'por': 'pt', 'rus': 'ru', 'ara': 'ar',
            'hin': 'hi', 'dut': 'nl', 'nld': 'nl', 'swe': 'sv', 'pol': 'pl', 'tur': 'tr', 'vie': 'vi',
            'tha': 'th', 'ind': 'id', 'ukr': 'uk', 'gre': 'el', 'ell': 'el', 'heb': 'he', 'cze': 'cs',
            'ces': 'cs', 'dan': 'da', 'fin': 'fi', 'nor': 'no', 'hun': 'hu', 'rum': 'ro', 'ron': 'ro'}
LANGUAGE_TAG = re.compile(r'^([a-z]{2,3})(?:[-_][a-z0-9]{2,8})*$', re.I)  # en, eng, zh-Hans, pt_BR
TIMING = re.compile(r'^\s*(?P<start>[\d:.,]+)\s*-->\s*(?P<end>[\d:.,]+)(?P<settings>\s.*)?$')
TAG = re.compile(r'<[^>]*>|\{\\[^}]*\}')  # HTML-like tags (<i>, <font ...>, <v Bob>, <00:01.000>) and ASS overrides
EXTRACT_TIMEOUT = 60  # seconds for ffmpeg to extract one subtitle stream
MAX_SUBTITLE_BYTES = 10 << 20  # a sidecar file or an extracted stream; a feature film's SRT is about 100 KB
MAX_CUES = 20_000  # per video: a line every two seconds for eleven hours
MAX_CUE_CHARS = 500  # per cue: three long subtitle lines are about 150; longer text is cut at a word


class SubtitleError(VcedError):
    """A subtitle file or stream cannot be read; the message names it and the reason."""


@dataclasses.dataclass(frozen=True)
class SubtitleStream:
    """A subtitle stream inside a video file; `number` counts subtitle streams only (ffmpeg's 0:s:N)."""

    number: int
    codec: str
    language: str  # ISO 639-1 when known, else ''

    @property
    def is_text(self) -> bool:
        return self.codec in TEXT_CODECS


def language_code(tag: str) -> str:
    """ISO 639-1 code of a language tag ('en', 'eng', 'zh-Hans', 'pt_BR'), '' when unknown or undetermined."""
    match = LANGUAGE_TAG.match(tag or '')
    if not match:
        return ''
    base = match.group(1).lower()
    return base if len(base) == 2 else ISO639_2.get(base, '')


def find_sidecars(video: Path) -> list[tuple[Path, str]]:
    """(file, language) of the subtitle files beside `video`, one per language: `name.srt`, `name.en.vtt`, ...

    The language comes from the tag between the video's name and the extension ('' without one).
    Where a language has several files, the one with the fewest extra tags wins (`name.en.srt`
    over `name.en.forced.srt`), then .srt over .vtt, then the name.
    """
    video = Path(video)
    candidates = []
    try:
        siblings = list(video.parent.iterdir())
    except OSError:
        return []
    for path in siblings:
        name, suffix = path.name, path.suffix.lower()
        if suffix not in SIDECAR_FORMATS or not name.startswith(video.stem + '.') or not path.is_file():
            continue
        tags = [t for t in name[len(video.stem) + 1:-len(suffix)].split('.') if t]
        language = language_code(tags[0]) if tags else ''
        extra = len(tags) - (1 if language else 0)
        candidates.append(((language, extra, suffix != '.srt', name), path))
    chosen = {}
    for (language, *_), path in sorted(candidates):
        chosen.setdefault(language, path)
    return [(path, language) for language, path in chosen.items()]


def read_sidecar(path: Path, video_id: str, language: str) -> list[CueDoc]:
    """The cues of a sidecar .srt or .vtt file; SubtitleError when it cannot be read or parsed."""
    source = SIDECAR_FORMATS[Path(path).suffix.lower()]
    try:
        if Path(path).stat().st_size > MAX_SUBTITLE_BYTES:
            raise SubtitleError(f'{Path(path).name}: over {MAX_SUBTITLE_BYTES >> 20} MB, not a subtitle file')
        data = Path(path).read_bytes()
    except OSError as e:
        raise SubtitleError(f'{Path(path).name}: cannot read it ({e.strerror})') from e
    parse = parse_srt if source == 'srt' else parse_vtt
    return [CueDoc(video_id=video_id, start=start, end=end, text=_cut(text), source=source, language=language)
            for start, end, text in parse(decode_text(data, Path(path).name, language), Path(path).name)]


def _cut(text: str) -> str:
    """At most MAX_CUE_CHARS characters, cut at a word with an ellipsis."""
    return text if len(text) <= MAX_CUE_CHARS else text[:MAX_CUE_CHARS].rsplit(' ', 1)[0] + ' …'


def _at_most(cues: list[CueDoc], name: str) -> list[CueDoc]:
    if len(cues) > MAX_CUES:
        log.warning('%s: %d subtitle cues, only the first %d are kept', name, len(cues), MAX_CUES)
    return cues[:MAX_CUES]


LEGACY_ENCODINGS = {'zh': ('gb18030', 'big5'), 'ja': ('cp932', 'euc_jp'), 'ko': ('cp949',), 'ru': ('cp1251',)}


def decode_text(data: bytes, name: str, language: str = '') -> str:
    """Subtitle bytes as text: a BOM's encoding, else UTF-8, else the legacy encodings of `language`
    (GB18030 for zh, ...), else the likeliest one charset-normalizer finds (short files can fool it)."""
    if data.startswith((b'\xff\xfe', b'\xfe\xff')):
        encoding = 'utf-16'
    elif data.startswith(b'\xef\xbb\xbf'):
        encoding = 'utf-8-sig'
    else:
        try:
            return data.decode('utf-8')
        except UnicodeDecodeError:
            pass
        for legacy in LEGACY_ENCODINGS.get(language, ()):
            try:
                return data.decode(legacy)
            except UnicodeDecodeError:
                pass
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise SubtitleError(f'{name}: not a text file (no text encoding fits its bytes)')
        return str(best)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise SubtitleError(f'{name}: not valid {encoding} text ({e.reason} at byte {e.start})') from e


def parse_srt(text: str, name: str = 'subtitles') -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of SubRip text, in time order.

    Tolerates a BOM, CRLF or CR line ends, missing cue numbers, '.' for ',' in times, extra blank
    lines and styling tags (stripped). A block without a readable timing line is skipped; a file
    with text but no cue at all raises SubtitleError.
    """
    return _parse_blocks(text, name, 'SubRip')


def parse_vtt(text: str, name: str = 'subtitles') -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of WebVTT text: cue settings, NOTE/STYLE/REGION blocks and tags dropped."""
    text = text.lstrip('\ufeff')
    if not text.startswith('WEBVTT'):
        raise SubtitleError(f'{name}: not a WebVTT file (it does not start with "WEBVTT")')
    return _parse_blocks(text.split('\n', 1)[1] if '\n' in text else '', name, 'WebVTT')


def parse_ass(text: str, name: str = 'subtitles') -> list[tuple[float, float, str]]:
    """(start, end, text) of each Dialogue line of ASS/SSA text, in time order (override tags dropped)."""
    fields = ['layer', 'start', 'end', 'style', 'name', 'marginl', 'marginr', 'marginv', 'effect', 'text']
    cues, skipped = [], 0
    for line in text.lstrip('\ufeff').splitlines():
        if line.startswith('Format:'):
            fields = [f.strip().lower() for f in line[len('Format:'):].split(',')]
        elif line.startswith('Dialogue:') and {'start', 'end', 'text'} <= set(fields):
            values = dict(zip(fields, line[len('Dialogue:'):].split(',', len(fields) - 1)))
            start, end = _seconds(values.get('start', '').strip()), _seconds(values.get('end', '').strip())
            words = clean_text(values.get('text', ''))
            if start is None or end is None or end < start:
                skipped += 1
            elif words:
                cues.append((start, end, words))
    if not cues and skipped:
        raise SubtitleError(f'{name}: no ASS dialogue line could be read ({skipped} with unreadable times)')
    return sorted(cues, key=lambda cue: cue[:2])


def _parse_blocks(text: str, name: str, kind: str) -> list[tuple[float, float, str]]:
    text = text.lstrip('\ufeff').replace('\r\n', '\n').replace('\r', '\n')
    cues, skipped = [], 0
    for block in re.split(r'\n[ \t]*\n', text):
        lines = [line for line in block.split('\n') if line.strip()]
        if not lines or lines[0].startswith(('NOTE', 'STYLE', 'REGION', 'WEBVTT')):
            continue
        timing = next((i for i, line in enumerate(lines[:2]) if '-->' in line), None)
        match = TIMING.match(lines[timing]) if timing is not None else None
        times = (_seconds(match['start']), _seconds(match['end'])) if match else (None, None)
        if None in times or times[1] < times[0]:
            skipped += 1
            continue
        words = clean_text(' '.join(lines[timing + 1:]))
        if words:
            cues.append((times[0], times[1], words))
    if not cues and (skipped or text.strip()):
        raise SubtitleError(f'{name}: no {kind} cue could be read ({skipped} block(s) without a valid timing line)')
    if skipped:
        log.info('%s: skipped %d block(s) without a valid timing line', name, skipped)
    return sorted(cues, key=lambda cue: cue[:2])


def clean_text(text: str) -> str:
    """Cue text without styling tags, ASS overrides, entities and repeated spaces."""
    text = html.unescape(TAG.sub('', text.replace('\\N', ' ').replace('\\n', ' ')))
    return ' '.join(text.split())


def _seconds(stamp: str) -> float | None:
    """'01:02:03,456', '02:03.456' or '3.5' as seconds; None when it is not a time."""
    parts = stamp.replace(',', '.').split(':')
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    if len(values) > 3 or any(v < 0 for v in values) or any(v >= 60 for v in values[1:]):
        return None
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return round(seconds, 3)


def list_subtitle_streams(video: Path) -> list[SubtitleStream]:
    """The subtitle streams of a video file (text and bitmap), in file order; SubtitleError when unreadable."""
    import av

    try:
        with av.open(str(video), metadata_errors="replace") as container:
            streams = [s for s in container.streams if s.type == 'subtitle']
            return [SubtitleStream(number, (s.codec_context.name if s.codec_context else '') or '',
                                   language_code(s.metadata.get('language', '')))
                    for number, s in enumerate(streams)]
    except (av.error.FFmpegError, OSError) as e:
        raise SubtitleError(f'{Path(video).name}: cannot list its streams ({e})') from e


def has_audio(video: Path) -> bool:
    """Whether the file has an audio stream (PyAV)."""
    import av

    try:
        with av.open(str(video), metadata_errors="replace") as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError):
        return False


def read_stream(video: Path, stream: SubtitleStream, video_id: str) -> list[CueDoc]:
    """The cues of a text subtitle stream, extracted by ffmpeg (ASS as it is: ffmpeg's conversion to SRT takes
    time that grows with the square of a line's length; others as SRT); SubtitleError when that fails."""
    as_ass = stream.codec in ('ass', 'ssa')
    conversion = ['-c:s', 'copy', '-f', 'ass'] if as_ass else ['-c:s', 'srt', '-f', 'srt']
    command = [ffmpeg_path(), '-nostdin', '-v', 'error', '-i', str(video), '-map', f'0:s:{stream.number}',
               *conversion, 'pipe:1']
    label = f'{Path(video).name} subtitle stream {stream.number} ({stream.codec})'
    try:
        result = subprocess.run(command, capture_output=True, timeout=EXTRACT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise SubtitleError(f'{label}: ffmpeg took over {EXTRACT_TIMEOUT} s to extract it') from e
    if result.returncode != 0:
        tail = ' '.join(result.stderr.decode('utf-8', 'replace').strip().splitlines()[-2:])
        raise SubtitleError(f'{label}: ffmpeg cannot extract it: {tail or result.returncode}')
    if not result.stdout.strip():
        return []
    if len(result.stdout) > MAX_SUBTITLE_BYTES:
        raise SubtitleError(f'{label}: over {MAX_SUBTITLE_BYTES >> 20} MB of text, not subtitles')
    parse = parse_ass if as_ass else parse_srt
    return [CueDoc(video_id=video_id, start=start, end=end, text=_cut(text), source='stream', language=stream.language)
            for start, end, text in parse(decode_text(result.stdout, label, stream.language), label)]


def subtitle_cues(video: Path, video_id: str) -> list[CueDoc]:
    """Cues from the sidecar files, else from the text streams (one per language), else [].

    An unreadable file or stream logs a warning and is passed over; bitmap streams are skipped
    with a note (their text would need OCR).
    """
    cues = []
    for path, language in find_sidecars(video):
        try:
            cues += read_sidecar(path, video_id, language)
        except SubtitleError as e:
            log.warning('%s (subtitles skipped)', e)
    if cues:
        return _at_most(sorted(cues, key=lambda c: (c.start, c.end, c.language)), Path(video).name)
    try:
        streams = list_subtitle_streams(video)
    except SubtitleError as e:
        log.warning('%s (subtitle streams skipped)', e)
        return []
    languages = set()
    for stream in streams:
        if not stream.is_text:
            note = 'bitmap subtitles need OCR' if stream.codec in BITMAP_CODECS else 'not a text subtitle codec'
            log.info('%s: subtitle stream %d (%s) skipped: %s', Path(video).name, stream.number, stream.codec, note)
            continue
        if stream.language in languages:
            continue
        try:
            found = read_stream(video, stream, video_id)
        except SubtitleError as e:
            log.warning('%s (skipped)', e)
            continue
        if found:
            languages.add(stream.language)
            cues += found
    return _at_most(sorted(cues, key=lambda c: (c.start, c.end, c.language)), Path(video).name)
