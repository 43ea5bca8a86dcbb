"""Telling a tuned file (written by `flow.py train`: executors/models/tuned_model.py) from a checkpoint, without
torch: a text query's start-up asks it of every model given by path."""
import zipfile
from pathlib import Path

FORMAT = 'vced-tuned'  # the mark in a tuned file's pickle


def is_tuned_file(path: str | Path) -> bool:
    """Whether `path` is a tuned file (looked up in the archive's pickle, nothing unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith('/data.pkl')]
            return bool(pickles) and FORMAT.encode() in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile):
        return False
