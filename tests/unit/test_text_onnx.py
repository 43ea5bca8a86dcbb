"""CLIP's text tower on ONNX Runtime by default (runtime: auto), its export kept on disk and checked."""
import importlib.util
import logging

import numpy as np
import pytest
import torch

from executors.models import text_onnx
from executors.models.clip_encoding import encode_texts
from executors.models.clip_model import load_checkpoint, load_clip
from executors.documents import DocList, QueryDoc
from executors.text_encoder import TextEncoder

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
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
    monkeypatch.setattr(text_onnx, 'CACHE_DIR', tmp_path / 'onnx')
    encoder = TextEncoder(model=str(tiny_checkpoint), device='cpu')
    assert encoder.towers['clip'].runtime == 'auto'
    text_onnx._sessions.pop(encoder.model, None)  # the process's shared CLIP: another test may have run it
    docs = encoder.encode_queries(DocList[QueryDoc]([QueryDoc(text=q) for q in QUERIES]))
    assert [p.name for p in (tmp_path / 'onnx').iterdir()] == [text_onnx.cache_file(encoder.towers['clip'].space).name]
    expected = encode_texts(encoder.model, QUERIES, runtime='torch')
    np.testing.assert_allclose(np.stack([d.embedding for d in docs]), expected, atol=1e-5)
