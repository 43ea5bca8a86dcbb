"""CLIP's text tower on ONNX Runtime by default (runtime: auto), its export kept on disk and checked."""
import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from executors.models import onnx_text_file, text_onnx
from executors.models.clip_encoding import encode_texts
from executors.models.clip_model import load_checkpoint, load_clip
from executors.documents import DocList, QueryDoc
from executors.text_encoder import TextEncoder

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
ROOT = Path(__file__).resolve().parents[2]
QUERIES = ['a dog runs on the beach', 'fireworks', 'two people talk in a kitchen at night']


@pytest.fixture
def fresh(tiny_checkpoint):
    """A CLIP of its own (no session built for it yet in this process)."""
    return load_checkpoint(str(tiny_checkpoint), 'cpu').eval()


def _no_export(*args, **kwargs):
    raise AssertionError('the text tower was exported again')


def test_auto_runs_a_stock_model_on_onnxruntime_and_equals_torch(fresh):
    embeddings = encode_texts(fresh, QUERIES, runtime='auto')
    assert fresh in text_onnx._sessions
    np.testing.assert_allclose(embeddings, encode_texts(fresh, QUERIES, runtime='torch'), atol=1e-5)


def test_auto_keeps_int8_models_and_machines_without_onnxruntime_on_torch(tiny_checkpoint, fresh, monkeypatch):
    int8 = load_clip(str(tiny_checkpoint), 'cpu', quantize='int8')
    assert encode_texts(int8, QUERIES, runtime='auto').shape[0] == 3 and int8 not in text_onnx._sessions
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'onnxruntime' else real_find_spec(name, *a))
    np.testing.assert_allclose(encode_texts(fresh, QUERIES, runtime='auto'), encode_texts(fresh, QUERIES), atol=0)
    assert fresh not in text_onnx._sessions


def test_the_export_is_kept_on_disk_and_a_later_process_loads_it_without_exporting(tiny_checkpoint, fresh, tmp_path,
                                                                                    monkeypatch):
    saved = tmp_path / 'onnx' / 'tower.onnx'
    first = encode_texts(fresh, QUERIES, runtime='auto', saved_export=saved)
    assert saved.stat().st_size > 0 and not list(saved.parent.glob('*.tmp'))
    monkeypatch.setattr(torch.onnx, 'export', _no_export)
    later = load_checkpoint(str(tiny_checkpoint), 'cpu').eval()  # as a new process would have it
    np.testing.assert_allclose(encode_texts(later, QUERIES, runtime='auto', saved_export=saved), first, atol=1e-6)


def test_a_damaged_or_mismatched_export_is_made_again(tiny_checkpoint, fresh, tmp_path, caplog):
    saved = tmp_path / 'tower.onnx'
    saved.write_bytes(b'not an onnx file')
    with caplog.at_level(logging.WARNING):
        expected = encode_texts(fresh, QUERIES, runtime='torch')
        np.testing.assert_allclose(encode_texts(fresh, QUERIES, runtime='auto', saved_export=saved), expected, atol=1e-5)
    assert 'unreadable' in caplog.text and saved.stat().st_size > 1000
    other = load_checkpoint(str(tiny_checkpoint), 'cpu').eval()
    with torch.no_grad():
        other.text_projection.mul_(2)  # the same shapes, other weights: the file no longer matches
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        embeddings = encode_texts(other, QUERIES, runtime='auto', saved_export=saved)
    assert 'does not match' in caplog.text
    np.testing.assert_allclose(embeddings, encode_texts(other, QUERIES, runtime='torch'), atol=1e-5)


def test_an_unwritable_cache_folder_only_costs_the_next_process_an_export(fresh, tmp_path, caplog):
    blocker = tmp_path / 'weights'
    blocker.write_text('a file where the folder should be')
    with caplog.at_level(logging.WARNING):
        embeddings = encode_texts(fresh, QUERIES, runtime='auto', saved_export=blocker / 'onnx' / 'tower.onnx')
    assert 'cannot keep the ONNX text tower' in caplog.text
    np.testing.assert_allclose(embeddings, encode_texts(fresh, QUERIES, runtime='torch'), atol=1e-5)


def test_the_text_encoder_uses_onnxruntime_by_default_and_keeps_its_export_under_weights(tiny_checkpoint, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setattr(onnx_text_file, 'CACHE_DIR', tmp_path / 'onnx')
    encoder = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    assert encoder.towers['clip'].runtime == 'auto'
    text_onnx._sessions.pop(encoder.model, None)  # the process's shared CLIP: another test may have run it
    docs = encoder.encode_queries(DocList[QueryDoc]([QueryDoc(text=q) for q in QUERIES]))
    export = onnx_text_file.cache_file(encoder.towers['clip'].space)
    assert sorted(p.name for p in (tmp_path / 'onnx').iterdir()) == [export.name, export.name + '.probe.json']
    expected = encode_texts(encoder.model, QUERIES, runtime='torch')
    np.testing.assert_allclose(np.stack([d.embedding for d in docs]), expected, atol=1e-5)


def _exported_by_one_process(tiny_checkpoint, folder, monkeypatch) -> TextEncoder:
    monkeypatch.setattr(onnx_text_file, 'CACHE_DIR', folder)
    monkeypatch.setattr(onnx_text_file, '_sessions', {})
    first = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    text_onnx._sessions.pop(first.model, None)  # the process's shared CLIP: another test may have run it
    first.encode_queries(DocList[QueryDoc]([QueryDoc(text=QUERIES[0])]))
    return first


def test_a_later_process_embeds_queries_from_the_saved_export_without_the_checkpoint(tiny_checkpoint, tmp_path,
                                                                                     monkeypatch):
    first = _exported_by_one_process(tiny_checkpoint, tmp_path / 'onnx', monkeypatch)
    monkeypatch.setattr(onnx_text_file, '_sessions', {})  # as a new process finds it
    later = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    docs = later.encode_queries(DocList[QueryDoc]([QueryDoc(text=q) for q in QUERIES]))
    assert not later.towers['clip'].loaded and later.towers['clip'].exact_in_batches()
    expected = encode_texts(first.model, QUERIES, runtime='torch')
    np.testing.assert_allclose(np.stack([d.embedding for d in docs]), expected, atol=1e-5)


def test_a_saved_export_that_no_longer_computes_its_probe_is_checked_against_the_checkpoint(tiny_checkpoint, tmp_path,
                                                                                           monkeypatch, caplog):
    first = _exported_by_one_process(tiny_checkpoint, tmp_path / 'onnx', monkeypatch)
    probe = onnx_text_file.probe_file(onnx_text_file.cache_file(first.towers['clip'].space))
    body = json.loads(probe.read_text())
    probe.write_text(json.dumps(body | {'features': (np.array(body['features']) + 0.01).tolist()}))
    monkeypatch.setattr(onnx_text_file, '_sessions', {})
    text_onnx._sessions.pop(first.model, None)  # as a new process finds it
    later = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    with caplog.at_level(logging.WARNING):
        later.encode_queries(DocList[QueryDoc]([QueryDoc(text=QUERIES[0])]))
    assert 'does not compute what it did when checked' in caplog.text
    assert later.towers['clip'].loaded  # the torch path, which checked the export and wrote the probe anew
    assert json.loads(probe.read_text())['features'] == body['features']


def test_a_tuned_model_never_takes_its_bases_export(tiny_checkpoint, tmp_path, monkeypatch):
    _exported_by_one_process(tiny_checkpoint, tmp_path / 'onnx', monkeypatch)
    monkeypatch.setattr('executors.text_encoder.is_tuned_file', lambda path: True)
    tuned = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    assert tuned.towers['clip'].saved_export() is None


def test_a_query_on_a_saved_export_imports_no_torch(tiny_checkpoint, tmp_path, monkeypatch):
    _exported_by_one_process(tiny_checkpoint, tmp_path / 'onnx', monkeypatch)
    code = (f'from executors.models import onnx_text_file\nfrom pathlib import Path\n'
            f'onnx_text_file.CACHE_DIR = Path({str(tmp_path / "onnx")!r})\n'
            f'from executors.text_encoder import TextEncoder\nfrom executors.documents import DocList, QueryDoc\n'
            f'docs = TextEncoder(model={str(tiny_checkpoint)!r}, device="cpu").encode_queries('
            f'DocList[QueryDoc]([QueryDoc(text="a dog")]))\n'
            f'import sys\nprint(docs[0].embedding.shape, "torch" in sys.modules)')
    run = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ['(32,)', 'False'], run.stderr  # the tiny preset's 32-d space
