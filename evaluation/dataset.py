"""An MSR-VTT-style captioned video set: a CSV of (video_id, sentence) rows and a folder of <video_id>.<ext> files."""
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from executors.errors import VcedError
from library import find_videos


class Caption(NamedTuple):
    video_id: str
    sentence: str


@dataclass
class Dataset:
    """Captions whose video was found, the videos they name, and the captions left out."""

    captions: list[Caption]
    videos: dict[str, Path]  # video_id -> file, in first-caption order
    missing: list[str] = field(default_factory=list)  # video_ids named by a caption but not found
    skipped: int = 0  # captions left out because their video is missing


def read_captions(path: str | Path) -> list[Caption]:
    """The (video_id, sentence) rows of an MSR-VTT-style CSV; other columns are ignored.

    Raises VcedError naming the file and the reason when it cannot be read, is empty, lacks a
    `video_id` or `sentence` column, or has a row with either left blank.
    """
    path = Path(path)
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            if not columns:
                raise VcedError(f'{path}: empty file (expected a CSV with video_id and sentence columns)')
            missing = [c for c in ('video_id', 'sentence') if c not in columns]
            if missing:
                raise VcedError(f"{path}: no {' or '.join(missing)} column (found: {', '.join(columns)})")
            reader.fieldnames = columns
            captions = []
            for row in reader:
                video_id, sentence = (row.get('video_id') or '').strip(), (row.get('sentence') or '').strip()
                if not video_id or not sentence:
                    blank = 'video_id' if not video_id else 'sentence'
                    raise VcedError(f'{path}:{reader.line_num}: {blank} is blank')
                captions.append(Caption(video_id, sentence))
    except OSError as e:
        raise VcedError(f'{path}: cannot read the captions file ({e.strerror})') from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise VcedError(f'{path}: not a UTF-8 CSV file ({e})') from e
    if not captions:
        raise VcedError(f'{path}: no captions (only a header)')
    return captions


def load_dataset(videos_dir: str | Path, captions_file: str | Path) -> Dataset:
    """Pair each caption with `<videos_dir>/**/<video_id>.<ext>`; captions without a video are skipped."""
    folder = Path(videos_dir)
    if not folder.is_dir():
        raise VcedError(f'{folder}: not a folder of videos')
    captions = read_captions(captions_file)
    files: dict[str, Path] = {}
    for path in find_videos([folder]):
        files.setdefault(path.stem, path)
    found = [c for c in captions if c.video_id in files]
    missing = list(dict.fromkeys(c.video_id for c in captions if c.video_id not in files))
    if not found:
        raise VcedError(f'{captions_file}: none of its {len(missing)} videos is in {folder} '
                        f'(expected files named <video_id>.mp4, e.g. {missing[0]}.mp4)')
    videos = {c.video_id: files[c.video_id] for c in found}
    return Dataset(found, videos, missing, len(captions) - len(found))
