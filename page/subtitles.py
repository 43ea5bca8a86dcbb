"""Subtitle files uploaded with their videos, and how many timed-text lines a video got."""
from pathlib import Path

from executors.documents import CueDoc
from executors.errors import WorkspaceError
from library import plural, safe_file_name

SUBTITLE_TYPES = ['srt', 'vtt']
KINDS = {'srt': 'subtitle', 'vtt': 'subtitle', 'stream': 'subtitle', 'asr': 'speech', 'ocr': 'screen text'}


def save_sidecars(files: list, videos: dict[Path, str]) -> list[str]:
    """Save each uploaded subtitle file beside the saved video whose original name it shares
    ('cooking.en.srt' with 'cooking.mp4' -> '<saved stem>.en.srt'); the names of those matching none.

    `videos`: saved path -> the name the user uploaded it under.
    """
    by_stem = {Path(name).stem.casefold(): path for path, name in videos.items()}
    unmatched = []
    for file in files:
        name = Path(file.name).name
        video = next((by_stem[stem] for stem in _stems(name) if stem in by_stem), None)
        if video is None:
            unmatched.append(name)
            continue
        stem, suffix = safe_file_name(name)
        video_stem = safe_file_name(videos[video])[0]
        middle = stem[len(video_stem):] if stem.casefold().startswith(video_stem.casefold()) else ''  # '.en'
        target = video.with_name(f'{video.stem}{middle}{suffix.lower()}')  # the saved video's (unique) name
        try:
            target.write_bytes(file.getvalue())
        except OSError as e:
            raise WorkspaceError(f'{target}: cannot save the subtitles ({e.strerror})') from e
    return unmatched


def _stems(name: str) -> list[str]:
    """'cooking.en.srt' -> ['cooking.en', 'cooking']: the video names it may belong to, longest first."""
    parts = Path(name).stem.split('.')
    return ['.'.join(parts[:n]).casefold() for n in range(len(parts), 0, -1)]


def line_counts(cues: list[CueDoc], total: int = 0) -> str:
    """'12 subtitle lines · 30 speech lines' (and screen text, once it is read); `total` when the
    cues themselves are not at hand."""
    counts: dict[str, int] = {}
    for cue in cues:
        kind = KINDS.get(cue.source, 'subtitle')
        counts[kind] = counts.get(kind, 0) + 1
    if not counts and total:
        return plural(total, 'timed text line')
    return ' · '.join(plural(n, f'{kind} line') for kind, n in counts.items()) or 'no subtitles or speech'
