"""How outcomes read, the same in the CLI and on the page: counts, progress, times, one-line text."""
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from executors.documents import SCREEN, CueDoc, DuplicateDoc, SegmentDoc, Status, VideoDoc


@dataclass
class IndexSummary:
    """Counts of each outcome of a batch, and the frames indexed."""

    counts: Counter = field(default_factory=Counter)
    frames: int = 0

    def add(self, video: VideoDoc) -> None:
        self.counts[Status(video.status)] += 1
        if video.status == Status.INDEXED:
            self.frames += video.frame_count or len(video.frames)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        """'2 indexed, 1 already indexed, 0 failed'."""
        return ', '.join(f'{self.counts[s]} {s.value}' for s in (Status.INDEXED, Status.ALREADY_INDEXED, Status.FAILED))


def progress_fraction(stage: str, done: int, total: int) -> float:
    """How far one stage of a video is, 0-1. Keyframes: decoding is the first half, embedding the
    second; speech ('speech', seconds of audio) is a bar of its own."""
    if total <= 0:
        return 0.0
    if stage == 'speech':
        return min(done, total) / total
    return (min(done, total) + (total if stage == 'encode' else 0)) / (2 * total)


def progress_text(stage: str, done: int, total: int) -> str:
    """'decoding keyframes 12/40', 'embedding keyframes 3/40' or 'recognising speech 30/120 s'."""
    if stage == 'speech':
        return f'recognising speech {min(done, total)}/{total} s'
    return f"{'decoding' if stage == 'decode' else 'embedding'} keyframes {min(done, total)}/{total}"


def format_time(seconds: float) -> str:
    """mm:ss, or h:mm:ss from an hour on (whole seconds, rounded down)."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes:02d}:{secs:02d}'


def time_range(start: float, end: float) -> str:
    """'00:12–00:14': the start rounded down, the end up, so the range covers the segment and never reads 00:00–00:00."""
    return f'{format_time(start)}–{format_time(math.ceil(end))}'


def local_time(iso: str) -> str:
    """An ISO time as this machine's local 'YYYY-MM-DD HH:MM' (as given when it is not ISO)."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime('%Y-%m-%d %H:%M')
    except ValueError:
        return iso


def plural(count: int, noun: str) -> str:
    """'1 video', '2 videos'."""
    return f'{count} {noun}' if count == 1 else f'{count} {noun}s'


def one_line(text: str) -> str:
    """`text` printable on one line: control characters (newlines in file names, terminal escapes)
    and bytes of names that are not valid UTF-8 written as escapes."""
    text = os.fsencode(text).decode('utf-8', 'backslashreplace') if _has_surrogates(text) else text
    return re.sub(r'[\x00-\x1f\x7f]', lambda m: repr(m.group())[1:-1], text)


def shorten(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + '…'


def highlight(text: str, query: str, escape: Callable[[str], str], mark: Callable[[str], str]) -> str:
    """`text` with every occurrence of the query's words (any case, any English ending: 'onions' marks
    'onion' and 'slicing' marks 'sliced', as the stemmed subtitle search matched them; Chinese/Japanese
    runs as written) passed through `mark`, the rest through `escape`: the matched words of a spoken
    result, shown."""
    words = sorted({w for w in re.findall(r'\w+', query.casefold()) if len(w) > 1 or not w.isascii()}, key=len,
                   reverse=True)
    if not words:
        return escape(text)
    pattern = re.compile('|'.join(rf'\b{re.escape(_stem(w))}(?:e|s|es|ed|ing|ies|ied|y)?\b' if w.isascii()
                                  else re.escape(w) for w in words), re.IGNORECASE)
    pieces, last = [], 0
    for found in pattern.finditer(text):
        pieces += [escape(text[last:found.start()]), mark(escape(found.group()))]
        last = found.end()
    return ''.join(pieces + [escape(text[last:])])


def _stem(word: str) -> str:
    """An English word without its ending ('onions' -> 'onion', 'slicing' -> 'slic'), kept whole when short."""
    for ending in ('ing', 'ies', 'es', 'ed', 's'):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            word = word[:-len(ending)]
            break
    return word[:-1] if word.endswith('e') and len(word) > 3 else word


def _has_surrogates(text: str) -> bool:
    return any('\udc80' <= c <= '\udcff' for c in text)


def format_srt(cues: list[CueDoc]) -> str:
    """Cues as SubRip text (numbered from 1, `HH:MM:SS,mmm` times), for `flow.py transcript ID`."""
    blocks = [f'{n}\n{_srt_time(c.start)} --> {_srt_time(c.end)}\n{c.text}\n' for n, c in enumerate(cues, 1)]
    return '\n'.join(blocks)


def format_vtt(cues: list[CueDoc]) -> str:
    """Cues as WebVTT text (`HH:MM:SS.mmm` times; a cue's text never holds the '-->' that would end it)."""
    blocks = [f"{_srt_time(c.start, '.')} --> {_srt_time(c.end, '.')}\n{c.text.replace('-->', '->')}\n" for c in cues]
    return '\n'.join(['WEBVTT\n', *blocks])


def _srt_time(seconds: float, separator: str = ',') -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f'{hours:02d}:{minutes:02d}:{millis // 1000:02d}{separator}{millis % 1000:03d}'


def match_record(match: SegmentDoc) -> dict:
    """A search result as `search --json` and the HTTP API give it."""
    return {'video': json_text(match.uri), 'video_id': match.video_id, 'start': round(match.start, 3),
            'end': round(match.end, 3), 'timestamp': round(match.timestamp, 3), 'score': round(match.score, 4),
            'thumbnail': json_text(match.thumbnail), 'source': match.source,
            'sources': match.sources or [match.source], 'text': match.text}


def video_record(video: VideoDoc) -> dict:
    """An indexed video as `list --json` and the HTTP API give it."""
    return {'video': json_text(video.uri), 'video_id': video.video_id, 'duration': round(video.duration, 3),
            'frames': video.frame_count, 'cues': video.cue_count, 'screen_texts': video.screen_count,
            'added': video.added}


def duplicate_record(group: DuplicateDoc) -> dict:
    """A group of videos sharing footage as `duplicates --json` gives it."""
    return {'videos': [{'video': json_text(v.uri), 'video_id': v.video_id, 'start': round(v.start, 3),
                        'end': round(v.end, 3)} for v in group.videos], 'score': round(group.score, 4), 'part': group.part}


def duplicate_lines(number: int, record: dict) -> list[str]:
    """`flow.py duplicates`' lines for a duplicate_record: the group, then each video's id, range and path."""
    shared = '' if record['part'] == 'footage' else f" (only the {record['part']})"
    return [f"group {number}: {len(record['videos'])} videos, score {record['score']:.3f}{shared}",
            *(f"  {v['video_id'][:12]}  {time_range(v['start'], v['end'])}  {one_line(v['video'])}" for v in record['videos'])]


def json_text(value: str | None) -> str | None:
    """A path as JSON can carry it: bytes of names that are not valid UTF-8 written as \\x escapes."""
    if value is None:
        return None
    return os.fsencode(value).decode('utf-8', 'backslashreplace') if _has_surrogates(value) else value


def outcome_line(video: VideoDoc) -> str:
    """`flow.py index`'s line for a video not failed: 'indexed: PATH (N frames, N cues), N on screen', or its status."""
    if video.status != Status.INDEXED:
        return f'{video.status}: {one_line(video.uri)}'
    screen = sum(cue.source == SCREEN for cue in video.cues)
    return (f"{video.status}: {one_line(video.uri)} ({plural(video.frame_count or len(video.frames), 'frame')}, "
            f"{plural(len(video.cues) - screen, 'cue')})" + (f', {screen} on screen' if screen else ''))


def video_line(row: dict) -> str:
    """`flow.py list`'s line for a video_record: id, duration, keyframes, cues, on-screen texts, date added, path."""
    speech = f"{row['cues']:>5} cues" if row['cues'] else '  no speech'
    screen = f"{row['screen_texts']:>5} on screen" if row['screen_texts'] else ' no screen text'
    return (f"{row['video_id'][:12]}  {format_time(row['duration'])}  {row['frames']:>6} frames  {speech}  {screen}  "
            f"{row['added']}  {one_line(row['video'])}")


def shared_footage_notes(groups: list[DuplicateDoc], names: int = 3) -> dict[str, list[str]]:
    """By video id, a line for its group of `duplicates`: 'same footage as b.mp4, c.mp4 (00:02–00:09 here)',
    the range being what it shares with the others (or 'only the intro (00:00–00:04 here) shared with b.mp4');
    at most `names` others named, the rest counted."""
    notes: dict[str, list[str]] = {}
    for group in groups:
        for video in group.videos:
            others = [os.path.basename(o.uri) for o in group.videos if o.video_id != video.video_id]
            named = ', '.join(others[:names]) + (f' and {len(others) - names} more' if len(others) > names else '')
            here = time_range(video.start, video.end)
            notes.setdefault(video.video_id, []).append(
                f'same footage as {named} ({here} here)' if group.part == 'footage'
                else f'only the {group.part} ({here} here) shared with {named}')
    return notes
