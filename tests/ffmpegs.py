"""The ffmpeg binaries the loader's tests run against: imageio-ffmpeg's (always) and Debian's.

Debian's (/usr/bin/ffmpeg, 5.1 on Debian 12) is skipped when it is not installed, except under
CI=true, where `make test` installs it and a missing one is a broken set-up.
"""
import os
from pathlib import Path

import pytest

from executors.media.ffmpeg_binary import find_ffmpeg

DEBIAN = '/usr/bin/ffmpeg'
FFMPEGS = ['bundled', 'debian']


def ffmpeg_choice(name: str) -> str:
    """The VideoLoader `ffmpeg` setting for one of FFMPEGS."""
    if name == 'bundled':
        return 'bundled'
    if not Path(DEBIAN).exists():
        if os.environ.get('CI') == 'true':
            pytest.fail(f"Debian's ffmpeg is not installed ({DEBIAN}): `make ffmpeg` (apt-get install ffmpeg)")
        pytest.skip(f"Debian's ffmpeg is not installed ({DEBIAN}; make test installs it)")
    return DEBIAN


def material_ffmpeg() -> str:
    """The ffmpeg that makes test material: the bundled one, the newest (-display_rotation needs 6.0)."""
    return find_ffmpeg('bundled').path
