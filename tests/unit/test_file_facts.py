"""Facts about files (a checkpoint's sha256, its identity) are remembered across processes by path, size and
modification time."""
import hashlib
import os

from executors import file_facts


def _stat(path):
    status = path.stat()
    return str(path), status.st_size, status.st_mtime_ns


def test_a_hash_is_read_once_and_remembered_until_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(file_facts, 'RECORD_DIR', tmp_path / 'weights')
    model = tmp_path / 'model.pt'
    model.write_bytes(b'first weights')
    assert file_facts.file_sha256(*_stat(model)) == hashlib.sha256(b'first weights').hexdigest()
    reads = []
    monkeypatch.setattr(file_facts.hashlib, 'file_digest', lambda f, name: reads.append(f) or hashlib.sha256(f.read()))
    assert file_facts.file_sha256(*_stat(model)) == hashlib.sha256(b'first weights').hexdigest() and not reads
    model.write_bytes(b'other weights')  # same size, changed in place
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 1))
    assert file_facts.file_sha256(*_stat(model)) == hashlib.sha256(b'other weights').hexdigest() and len(reads) == 1


def test_an_unreadable_or_unwritable_record_only_costs_a_new_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(file_facts, 'RECORD_DIR', tmp_path / 'weights')
    (tmp_path / 'weights').mkdir()
    (tmp_path / 'weights' / 'file_facts.json').write_text('{not json')
    model = tmp_path / 'model.pt'
    model.write_bytes(b'weights')
    assert file_facts.file_sha256(*_stat(model)) == hashlib.sha256(b'weights').hexdigest()
    monkeypatch.setattr(file_facts, 'RECORD_DIR', model / 'not-a-folder')
    assert file_facts.file_sha256(*_stat(model)) == hashlib.sha256(b'weights').hexdigest()
