import os
import shutil
from pathlib import Path

import pytest

from tests.factories import make_video, write_random_clip_checkpoint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session', autouse=True)
def onnx_exports(tmp_path_factory):
    """Text towers exported for ONNX Runtime, and remembered file facts, go to folders of the test session, not
    weights/."""
    from executors import file_facts
    from executors.models import onnx_text_file

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_text_file, 'CACHE_DIR', tmp_path_factory.mktemp('onnx'))
        patch.setattr(file_facts, 'RECORD_DIR', tmp_path_factory.mktemp('facts'))
        yield


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny CLIP in OpenAI state_dict format (real vocab and context length)."""
    return write_random_clip_checkpoint(tmp_path_factory.mktemp('weights') / 'tiny-clip.pt')


@pytest.fixture(scope='session')
def sample_videos(tmp_path_factory) -> list[Path]:
    """Three short, visually distinct videos."""
    folder = tmp_path_factory.mktemp('videos')
    return [
        make_video(folder / 'bars.mp4', duration=3, source='smptebars'),
        make_video(folder / 'pattern.mp4', duration=4, source='testsrc2'),
        make_video(folder / 'fractal.mp4', duration=2, source='mandelbrot'),
    ]


@pytest.fixture
def workspace(tmp_path) -> Path:
    return tmp_path / 'workspace'


@pytest.fixture
def flow_args(tiny_checkpoint, workspace) -> list[str]:
    """The CLI options that point the repository's flow.yml at the tiny model and a fresh workspace."""
    return ['--flow', str(ROOT / 'flow.yml'), '--workspace', str(workspace), '--model', str(tiny_checkpoint)]


@pytest.fixture
def library_args(workspace) -> list[str]:
    """flow_args for the commands that only read or change a library (list, delete, transcript): no --model."""
    return ['--flow', str(ROOT / 'flow.yml'), '--workspace', str(workspace)]


@pytest.fixture
def flow_overrides(tiny_checkpoint, workspace) -> dict:
    """The same as flow_args, for Flow(ROOT / 'flow.yml', **flow_overrides)."""
    return {'workspace': str(workspace), 'model': str(tiny_checkpoint)}


@pytest.fixture(scope='session')
def chromium() -> str:
    path = shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(path).exists():
        if os.environ.get('CI') == 'true':  # CI installs it (make chromium): a missing browser is a broken set-up
            pytest.fail('Debian chromium is not installed: run `make chromium` (apt-get install chromium)')
        pytest.skip('Debian chromium is not installed (make test installs it)')
    return path
