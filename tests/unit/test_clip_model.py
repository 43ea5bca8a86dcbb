"""Loading CLIP through load_clip: names, checkpoint formats, and the errors a user can fix."""
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from executors.models.clip_encoding import encode_texts
from executors.models.clip_model import load_clip
from executors.errors import ConfigError, ModelError


def test_unknown_name_lists_the_model_names(tmp_path):
    with pytest.raises(ModelError, match=r"'ViT-Q/99' is neither a CLIP model name \(.*ViT-B/32.*\) nor a checkpoint"):
        load_clip('ViT-Q/99', 'cpu', download_root=tmp_path)


def test_missing_weights_name_the_file_to_place_in_weights(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    with pytest.raises(ModelError) as error:
        load_clip('ViT-B/32', 'cpu', download_root=tmp_path)
    message = str(error.value)
    assert 'ViT-B/32' in message and 'could not be downloaded' in message
    assert f'place it at {tmp_path / "ViT-B-32.pt"}' in message
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def test_a_file_that_is_not_a_checkpoint_is_a_model_error(tmp_path):
    path = tmp_path / 'notes.pt'
    path.write_text('these are not weights')
    with pytest.raises(ModelError, match=rf'{path} is not a CLIP checkpoint'):
        load_clip(str(path), 'cpu')


def test_state_dict_and_torchscript_archive_load_the_same_model(tiny_checkpoint, tmp_path):
    from clip.model import build_model

    original = build_model(torch.load(tiny_checkpoint)).float().eval()
    archive = tmp_path / 'tiny-jit.pt'
    torch.jit.trace(original, (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long))).save(archive)

    from_state_dict = load_clip(str(tiny_checkpoint), 'cpu')
    from_archive = load_clip(str(archive), 'cpu')
    texts = ['a red car', 'two people walking a dog on the beach']
    np.testing.assert_allclose(encode_texts(from_archive, texts), encode_texts(from_state_dict, texts), atol=1e-6)


def test_one_model_per_checkpoint_device_and_quantisation(tiny_checkpoint, monkeypatch):
    first = load_clip(str(tiny_checkpoint), 'cpu')
    monkeypatch.chdir(tiny_checkpoint.parent)
    assert load_clip(tiny_checkpoint.name, 'cpu') is first  # the same file by another path
    quantized = load_clip(str(tiny_checkpoint), 'cpu', quantize='int8')
    assert quantized is not first and load_clip(str(tiny_checkpoint), 'cpu', quantize='int8') is quantized


def test_int8_embeddings_stay_close_to_fp32(tiny_checkpoint):
    texts = ['a man rides a bike along the beach', 'fireworks over a city at night']
    fp32 = encode_texts(load_clip(str(tiny_checkpoint), 'cpu'), texts)
    int8 = encode_texts(load_clip(str(tiny_checkpoint), 'cpu', quantize='int8'), texts)
    assert int8.dtype == np.float32
    assert np.all(np.sum(fp32 * int8, axis=1) > 0.99)


@pytest.mark.parametrize('quantize, device, message', [
    ('int4', 'cpu', "quantize must be one of None, int8, not 'int4'"),
    ('int8', 'cuda', "quantize 'int8' runs on the CPU only"),
])
def test_bad_quantize_is_a_config_error(tiny_checkpoint, quantize, device, message):
    with pytest.raises(ConfigError, match=message):
        load_clip(str(tiny_checkpoint), device, quantize=quantize)
