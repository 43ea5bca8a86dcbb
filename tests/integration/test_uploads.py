import io

import pytest
from hypothesis import given, settings, strategies as st

from executors.errors import QueryError, WorkspaceError
from library import read_image, save_upload


def test_upload_is_saved_under_its_name(tmp_path):
    path = save_upload('beach ride.MP4', b'video bytes', tmp_path / 'videos')
    assert path == tmp_path / 'videos' / 'beach ride.mp4'
    assert path.read_bytes() == b'video bytes'


def test_same_name_never_overwrites(tmp_path):
    first = save_upload('clip.mp4', b'first', tmp_path)
    second = save_upload('clip.mp4', io.BytesIO(b'second'), tmp_path)
    third = save_upload('clip.mp4', b'third', tmp_path)
    assert [p.name for p in (first, second, third)] == ['clip.mp4', 'clip-1.mp4', 'clip-2.mp4']
    assert [p.read_bytes() for p in (first, second, third)] == [b'first', b'second', b'third']


@pytest.mark.parametrize('name, expected', [
    ('../../etc/passwd', 'passwd'),
    ('..\\..\\windows\\evil.mp4', 'evil.mp4'),
    ('/abs/path/clip.mp4', 'clip.mp4'),
    ('..', 'upload'),
    ('.hidden.mp4', 'hidden.mp4'),
    ('a\x00b\nc.mp4', 'a_b_c.mp4'),
    ('vidéo à la plage 東京.mov', 'vidéo à la plage 東京.mov'),
    ('clip.mp4; rm -rf ~', 'clip.mp4; rm -rf ~'),  # harmless: no shell ever sees a name
    ('🎬 plage 🏖️.mp4', '🎬 plage 🏖️.mp4'),  # emoji, with their variation selector
    ('famille 👨\u200d👩\u200d👧 👍🏽 🇫🇷.mp4', 'famille 👨\u200d👩\u200d👧 👍🏽 🇫🇷.mp4'),  # joined, skin tone, flag
    ('🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f.mp4',
     '🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f.mp4'),  # a tag-sequence flag
    ('invoice\u202egpj.exe.mp4', 'invoice_gpj.exe.mp4'),  # a right-to-left override cannot disguise a name
])
def test_names_are_sanitised(tmp_path, name, expected):
    assert save_upload(name, b'x', tmp_path).name == expected


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=0, max_size=300))
def test_any_name_stays_inside_the_folder(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp('uploads')
    path = save_upload(name, b'x', folder)
    assert path.parent == folder and path.is_file()
    assert not path.name.startswith('.') and len(path.name.encode()) < 200


def test_unwritable_folder_is_a_workspace_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(WorkspaceError, match='cannot create the upload folder'):
        save_upload('clip.mp4', b'x', blocker / 'videos')


def test_read_image_of_an_upload_and_of_garbage():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new('RGB', (5, 3), (10, 20, 30)).save(buffer, format='PNG')
    buffer.seek(0)
    assert read_image(buffer, 'query.png').shape == (3, 5, 3)
    with pytest.raises(QueryError, match=r'^query\.png: not a readable image'):
        read_image(io.BytesIO(b'garbage'), 'query.png')
