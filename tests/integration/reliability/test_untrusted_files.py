"""Untrusted files: a checkpoint cannot run code, the workspace holds no pickle, file names never reach a shell."""
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch

from executors.models.clip_model import load_clip
from executors.errors import ModelError
from flow import main


class RunsCode:
    """Unpickling this creates a folder: what a malicious checkpoint would do (with worse commands)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize('force_unsafe_default', [False, True])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch, force_unsafe_default):
    if force_unsafe_default:  # torch < 2.6, or a user's environment, defaults torch.load to full unpickling
        monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'
    checkpoint = tmp_path / 'evil.pt'
    torch.save({'visual.proj': RunsCode(marker)}, checkpoint)
    with pytest.raises(ModelError, match='evil.pt is not a CLIP checkpoint') as refused:
        load_clip(str(checkpoint), device='cpu')
    assert not marker.exists()
    assert 'weights_only' not in str(refused.value)  # never reads as advice to load it unsafely


def test_the_state_dict_checkpoint_loads_safely(tiny_checkpoint):
    state_dict = torch.load(tiny_checkpoint, map_location='cpu', weights_only=True)  # the format allows it
    model = load_clip(str(tiny_checkpoint), device='cpu')
    loaded = model.state_dict()['text_projection']
    assert torch.allclose(loaded, state_dict['text_projection'].float(), atol=1e-3)  # clip keeps fp16-rounded weights


def test_no_pickle_in_the_workspace(reference):
    for path in reference.folder.rglob('*'):
        if path.is_file():
            head = path.read_bytes()[:2]
            assert not (head[:1] == b'\x80' and head[1:2] in bytes(range(2, 6))), f'{path} looks like a pickle'
            assert not head.startswith(b'PK'), f'{path} looks like a torch.save archive'
    suffixes = {p.suffix for p in reference.folder.rglob('*') if p.is_file()}
    allowed = {'.sqlite', '.sqlite-wal', '.sqlite-shm', '.f16', '.faiss', '.bin', '.json', '.jpg', ''}  # '' is the lock
    assert suffixes <= allowed, suffixes  # .faiss: faiss's own binary format (no pickle), as hnswlib's .bin


def test_file_names_reach_ffmpeg_as_one_argument_never_a_shell(capsys, tmp_path, tiny_checkpoint, batch, monkeypatch):
    name = tmp_path / '$(touch pwned); `touch pwned` | touch pwned & -i x.mp4'
    name.write_bytes((batch / 'clip0.mp4').read_bytes())
    calls = []
    popen = subprocess.Popen.__init__

    def record(self, args, *rest, **kwargs):
        calls.append((args, kwargs.get('shell', False)))
        popen(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, '__init__', record)
    monkeypatch.chdir(tmp_path)
    flow_yml = Path(__file__).resolve().parents[3] / 'flow.yml'
    code = main(['index', str(name), '--workspace', str(tmp_path / 'ws'), '--model', str(tiny_checkpoint),
                 '--flow', str(flow_yml)])
    assert code == 0, capsys.readouterr().err
    assert calls and all(isinstance(args, list) and not shell for args, shell in calls)
    with_name = [args for args, _ in calls if any('pwned' in str(a) for a in args)]
    assert len(with_name) >= 2 and all(str(name) in args for args in with_name)  # probe, decode: one whole argument
    assert not (tmp_path / 'pwned').exists()


def test_pickle_is_not_used_by_vced():
    root = Path(__file__).resolve().parents[3]
    sources = [*root.glob('*.py'), *(root / 'executors').glob('*.py')]
    for source in sources:
        text = source.read_text()
        assert 'pickle.load' not in text and 'allow_pickle=True' not in text, source  # nothing is unpickled
        assert 'shell=True' not in text and 'os.system(' not in text, source
    assert pickle  # the test itself pickles only to build the malicious checkpoint
