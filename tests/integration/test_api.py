"""The HTTP API (`flow.py serve`) driven over HTTP, as another program uses it: a real server process."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from flow import main
from library import Library, match_record
from tests.factories import make_video
from tests.integration.api_server import ROOT, ApiServer

SUBTITLES = '1\n00:00:00,500 --> 00:00:01,750\nthe colour bars\n\n2\n00:00:02,000 --> 00:00:02,900\nend --> of test\n'
PROBLEM = 'application/problem+json'


@pytest.fixture(scope='module')
def folders(sample_videos, tmp_path_factory) -> dict[str, Path]:
    """An allowed folder with the sample videos (bars.mp4 with a sidecar .srt), and one the server may not read."""
    root = tmp_path_factory.mktemp('api')
    allowed, outside = root / 'allowed', root / 'outside'
    for folder in (allowed / 'samples', outside):
        folder.mkdir(parents=True)
    for video in sample_videos:
        shutil.copy(video, allowed / 'samples' / video.name)
    (allowed / 'samples' / 'bars.srt').write_text(SUBTITLES)
    shutil.copy(sample_videos[0], outside / 'bars.mp4')
    return {'root': root, 'allowed': allowed, 'samples': allowed / 'samples', 'outside': outside,
            'workspace': root / 'workspace', 'uploads': root / 'uploads'}


@pytest.fixture(scope='module')
def options(folders, tiny_checkpoint) -> list:
    return ['--workspace', folders['workspace'], '--model', tiny_checkpoint, '--text-model', 'clip', '--asr', 'off']


@pytest.fixture(scope='module')
def server(folders, options):
    server = ApiServer([*options, '--allow-dir', folders['allowed'], '--upload-dir', folders['uploads'],
                        '--max-upload-mb', '1'], folders['root'] / 'server.log')
    yield server
    server.close()


@pytest.fixture(scope='module')
def http(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope='module')
def indexed(http, folders) -> dict:
    """The sample folder indexed through POST /v1/videos; the job's progress events and final JSON."""
    answer = http.post('/v1/videos', json={'path': str(folders['samples'])})
    assert answer.status_code == 202, answer.text
    job = answer.json()['job']
    assert answer.headers['location'] == f'/v1/jobs/{job}'
    events = []
    with http.stream('GET', f'/v1/jobs/{job}', headers={'Accept': 'text/event-stream'}) as stream:
        assert stream.headers['content-type'].startswith('text/event-stream')
        for line in stream.iter_lines():
            if line.startswith('data: '):
                events.append(json.loads(line[6:]))
    return {'job': job, 'events': events, 'final': http.get(f'/v1/jobs/{job}').json(),
            'ids': {Path(v['video']).name: v['video_id'] for v in events[-1]['videos']}}


def cli_json(*argv) -> list:
    done = subprocess.run([sys.executable, 'flow.py', *map(str, argv), '--json'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_health_readiness_and_the_openapi_schema(http):
    assert http.get('/v1/healthz').json() == {'status': 'ok'}
    assert http.get('/v1/readyz').json()['status'] == 'ready'
    paths = http.get('/openapi.json').json()['paths']
    assert {'/v1/search', '/v1/videos', '/v1/videos/{video_id}', '/v1/videos/{video_id}/transcript',
            '/v1/videos/{video_id}/media', '/v1/jobs/{job_id}', '/v1/healthz', '/v1/readyz'} <= set(paths)
    assert 'swagger' in http.get('/docs').text.lower()


def test_an_index_job_reports_its_progress_and_each_videos_outcome(indexed):
    events, final = indexed['events'], indexed['final']
    states = [e['state'] for e in events]
    assert states[-1] == 'done' and 'running' in states
    progress = [e['progress'] for e in events if e['progress']]
    assert progress and {'decode', 'encode'} <= {p['stage'] for p in progress}
    assert all(0 <= p['fraction'] <= 1 and p['video'].endswith('.mp4') for p in progress)
    assert final['state'] == 'done' and final['job'] == indexed['job']
    assert sorted(Path(v['video']).name for v in final['videos']) == ['bars.mp4', 'fractal.mp4', 'pattern.mp4']
    assert all(v['status'] == 'indexed' and v['error'] is None and len(v['video_id']) == 64 for v in final['videos'])


def test_list_and_search_answer_what_the_cli_prints_with_json(http, indexed, options):
    listed = http.get('/v1/videos').json()
    assert listed['total'] == 3
    assert listed['videos'] == cli_json('list', *options[:2])  # the CLI beside the running server, same workspace
    query = {'text': 'colour bars on a test card', 'top': 5, 'offset': 0, 'in': 'all', 'by': 'moment'}
    found = http.post('/v1/search', json=query).json()['results']
    assert found and found == cli_json('search', query['text'], '--top', 5, *options[:-2])
    assert http.get('/v1/videos', params={'offset': 1, 'limit': 1}).json()['videos'] == listed['videos'][1:2]


def test_concurrent_searches_answer_exactly_what_each_one_alone_does(http, indexed, folders, tiny_checkpoint):
    """Searches that arrive together share one pass of the text tower (executors/models/text_batching.py):
    each still gets, to the last digit, what the same search alone in another process gets."""
    texts = [f'{colour} {thing} on a test card {n}' for n, (colour, thing) in
             enumerate(zip(['red', 'green', 'blue', 'white'] * 2, ['bars', 'circles', 'noise', 'stripes'] * 2))]
    with Library('flow.yml', workspace=str(folders['workspace']), model=str(tiny_checkpoint), text_model='clip',
                 asr='off', create=False) as alone:
        expected = [[match_record(m) for m in alone.search(text, top=5)] for text in texts]
    found, start = {}, threading.Barrier(len(texts))

    def search(text: str) -> None:
        with httpx.Client(base_url=http.base_url, timeout=60) as client:
            start.wait()
            found[text] = client.post('/v1/search', json={'text': text, 'top': 5}).json()['results']

    threads = [threading.Thread(target=search, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [found.get(text) for text in texts] == expected


def test_search_by_an_uploaded_image_finds_the_video_it_shows(http, indexed):
    hits = http.post('/v1/search', json={'text': 'a test pattern', 'top': 10}).json()['results']
    bars = next(h for h in hits if h['video_id'] == indexed['ids']['bars.mp4'])
    with open(bars['thumbnail'], 'rb') as image:
        found = http.post('/v1/search', files={'image': ('frame.jpg', image, 'image/jpeg')}, data={'top': '1'})
    assert found.status_code == 200, found.text
    assert [h['video_id'] for h in found.json()['results']] == [indexed['ids']['bars.mp4']]
    by_video = http.post('/v1/search', json={'text': 'a test pattern', 'by': 'video', 'top': 3}).json()['results']
    assert sorted(h['video_id'] for h in by_video) == sorted(indexed['ids'].values())


@pytest.mark.parametrize('request_kwargs, status, reason', [
    ({'json': {'text': ''}}, 400, 'empty query: describe what to look for, or search by image'),
    ({'json': {'text': 'x', 'top': 0}}, 422, 'top: Input should be greater than or equal to 1'),
    ({'json': {'text': 'x', 'in': 'smell'}}, 422, "in: Input should be 'all', 'visual', 'speech' or 'screen'"),
    ({'json': {'text': 'x', 'colour': 'red'}}, 422, 'colour: Extra inputs are not permitted'),
    ({'content': b'{"text": ', 'headers': {'Content-Type': 'application/json'}}, 422, 'Invalid JSON'),
    ({'content': b'text=x', 'headers': {'Content-Type': 'text/plain'}}, 415, 'send JSON {"text": ...}'),
    ({'files': {'image': ('x.png', b'not an image', 'image/png')}}, 400, 'x.png: not a readable image'),
    ({'files': {'image': ('x.png', b'\x89PNG', 'image/png')}, 'data': {'text': 'bars'}}, 400, 'x.png: not a readable'),
])
def test_bad_searches_are_problems_with_the_clis_one_line_reason(http, indexed, request_kwargs, status, reason):
    answer = http.post('/v1/search', **request_kwargs)
    assert answer.status_code == status
    assert answer.headers['content-type'] == PROBLEM
    assert answer.json()['status'] == status and reason in answer.json()['detail'] and '\n' not in answer.json()['detail']


def test_the_readmes_python_client_runs_as_written(server, indexed, folders, capsys):
    section = (ROOT / 'README.md').read_text(encoding='utf-8').split('## HTTP API', 1)[1].split('\n## ', 1)[0]
    script = re.findall(r'```python\n(.*?)```', section, re.S)[0]
    exec(compile(script.replace('http://127.0.0.1:8000', server.url).replace("'data/videos'", repr(str(folders['samples']))),
                 'README.md', 'exec'), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('done [(') and out[0].count("'already indexed'") == 3
    assert 1 <= len(out) - 1 <= 5 and all(re.fullmatch(r'\d\.\d{3} [\d.]+-[\d.]+ s .*\.mp4', line) for line in out[1:])


def test_one_video_by_id_or_prefix_and_unknown_ids(http, indexed):
    video_id = indexed['ids']['pattern.mp4']
    one = http.get(f'/v1/videos/{video_id}').json()
    assert one == http.get(f'/v1/videos/{video_id[:8]}').json()
    assert one['video_id'] == video_id and one['frames'] == 4 and one['duration'] == 4.0
    for unknown in ('0' * 64, 'not-an-id'):
        answer = http.get(f'/v1/videos/{unknown}')
        assert answer.status_code == 404 and answer.headers['content-type'] == PROBLEM


def test_transcripts_as_json_srt_and_vtt(http, indexed):
    bars = indexed['ids']['bars.mp4']
    cues = http.get(f'/v1/videos/{bars}/transcript').json()['cues']
    assert [(c['start'], c['end'], c['text']) for c in cues] == [(0.5, 1.75, 'the colour bars'), (2.0, 2.9, 'end --> of test')]
    srt = http.get(f'/v1/videos/{bars}/transcript', params={'format': 'srt'})
    assert srt.text.startswith('1\n00:00:00,500 --> 00:00:01,750\nthe colour bars\n')
    vtt = http.get(f'/v1/videos/{bars}/transcript', params={'format': 'vtt'})
    assert vtt.headers['content-type'].startswith('text/vtt')
    assert vtt.text == 'WEBVTT\n\n00:00:00.500 --> 00:00:01.750\nthe colour bars\n\n00:00:02.000 --> 00:00:02.900\nend -> of test\n'
    silent = http.get(f"/v1/videos/{indexed['ids']['fractal.mp4']}/transcript")
    assert silent.status_code == 404 and 'no subtitles or recognised speech are stored for it' in silent.json()['detail']
    assert http.get(f'/v1/videos/{bars}/transcript', params={'format': 'pdf'}).status_code == 422


def test_media_serves_indexed_videos_with_range_requests(http, indexed, folders):
    video_id = indexed['ids']['pattern.mp4']
    data = (folders['samples'] / 'pattern.mp4').read_bytes()
    whole = http.get(f'/v1/videos/{video_id}/media')
    assert whole.status_code == 200 and whole.content == data and whole.headers['content-type'] == 'video/mp4'
    assert whole.headers['accept-ranges'] == 'bytes'
    part = http.get(f'/v1/videos/{video_id}/media', headers={'Range': 'bytes=10-19'})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers['content-range'] == f'bytes 10-19/{len(data)}'
    assert http.get(f'/v1/videos/{video_id}/media', headers={'Range': 'bytes=-5'}).content == data[-5:]
    beyond = http.get(f'/v1/videos/{video_id}/media', headers={'Range': f'bytes={len(data)}-'})
    assert beyond.status_code == 416 and beyond.headers['content-range'] == f'bytes */{len(data)}'
    head = http.head(f'/v1/videos/{video_id}/media')
    assert head.status_code == 200 and head.headers['content-length'] == str(len(data)) and not head.content
    assert http.get(f"/v1/videos/{'ab' * 32}/media").status_code == 404  # only indexed videos, by id: no paths


def wait_for(http, job: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (found := http.get(f'/v1/jobs/{job}').json())['state'] in ('queued', 'running'):
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    return found


def test_uploads_are_saved_indexed_and_checked(http, indexed, folders, sample_videos):
    with open(sample_videos[1], 'rb') as video:  # pattern.mp4, already indexed: the copy is not kept
        answer = http.post('/v1/videos', files={'file': ('again.mp4', video, 'video/mp4')})
    assert answer.status_code == 202 and answer.headers['location'] == f"/v1/jobs/{answer.json()['job']}"
    job = wait_for(http, answer.json()['job'])
    assert job['state'] == 'done' and job['videos'][0]['status'] == 'already indexed'
    assert not list(folders['uploads'].iterdir())
    new = make_video(folders['root'] / 'new clip.mp4', duration=2, source='rgbtestsrc')
    with open(new, 'rb') as video:
        job = wait_for(http, http.post('/v1/videos', files={'file': ('new clip.mp4', video, 'video/mp4')}).json()['job'])
    assert job['videos'][0]['status'] == 'indexed' and job['videos'][0]['video'] == str(folders['uploads'] / 'new clip.mp4')
    broken = wait_for(http, http.post('/v1/videos', files={'file': ('broken.mp4', b'\0' * 1000, 'video/mp4')}).json()['job'])
    assert broken['state'] == 'failed' and broken['videos'][0]['status'] == 'failed' and broken['error']
    assert sorted(p.name for p in folders['uploads'].iterdir()) == ['new clip.mp4']  # the unreadable upload removed
    wrong = http.post('/v1/videos', files={'file': ('notes.txt', b'hello', 'text/plain')})
    assert wrong.status_code == 415 and 'notes.txt: not a video file name' in wrong.json()['detail']
    huge = http.post('/v1/videos', files={'file': ('huge.mp4', b'\0' * 1_200_000, 'video/mp4')})  # --max-upload-mb 1
    assert huge.status_code == 413 and '--max-upload-mb' in huge.json()['detail']

    def chunked():  # no Content-Length: the server counts what it reads
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for _ in range(12):
            yield b'\0' * 100_000
        yield b'\r\n--x--\r\n'

    streamed = http.post('/v1/videos', content=chunked(), headers={'Content-Type': 'multipart/form-data; boundary=x'})
    assert streamed.status_code == 413


def test_server_side_paths_only_inside_the_allowed_folders(http, indexed, folders):
    outside = http.post('/v1/videos', json={'path': str(folders['outside'] / 'bars.mp4')})
    assert outside.status_code == 403 and 'outside the folders this server may read' in outside.json()['detail']
    sneaky = http.post('/v1/videos', json={'path': str(folders['allowed'] / '..' / 'outside')})
    assert sneaky.status_code == 403
    (folders['allowed'] / 'link').symlink_to(folders['outside'])
    assert http.post('/v1/videos', json={'path': str(folders['allowed'] / 'link')}).status_code == 403
    nul = http.post('/v1/videos', json={'path': str(folders['allowed']) + '/a\0b.mp4'})  # found by the fuzzing
    assert nul.status_code == 400 and 'a path cannot contain a NUL character' in nul.json()['detail']
    missing = http.post('/v1/videos', json={'path': str(folders['allowed'] / 'nothing.mp4')})
    assert missing.status_code == 404 and 'No such file or directory' in missing.json()['detail']
    too_long = http.post('/v1/videos', json={'path': str(folders['allowed'] / ('a' * 300))})
    assert too_long.status_code == 404 and 'File name too long' in too_long.json()['detail']
    (folders['allowed'] / 'empty').mkdir()
    empty = wait_for(http, http.post('/v1/videos', json={'path': str(folders['allowed'] / 'empty')}).json()['job'])
    assert empty['state'] == 'failed' and empty['error'].startswith(f"no video files in {folders['allowed'] / 'empty'} (")
    assert http.get('/v1/jobs/no-such-job').status_code == 404


def test_searches_run_while_an_index_job_does(http, indexed, folders):
    long_videos = folders['allowed'] / 'long'
    long_videos.mkdir()
    for n, source in enumerate(['testsrc2', 'smptebars', 'mandelbrot']):
        make_video(long_videos / f'long{n}.mp4', duration=30, size='640x360', source=source)
    job = http.post('/v1/videos', json={'path': str(long_videos)}).json()['job']
    while http.get(f'/v1/jobs/{job}').json()['state'] == 'queued':
        time.sleep(0.05)
    answered, errors = [], []

    def searcher(n: int) -> None:
        with httpx.Client(base_url=http.base_url, timeout=60) as client:
            for i in range(5):
                answer = client.post('/v1/search', json={'text': f'query {n} {i}', 'top': 3})
                (answered if answer.status_code == 200 and answer.json()['results'] else errors).append(
                    client.get(f'/v1/jobs/{job}').json()['state'])

    threads = [threading.Thread(target=searcher, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(answered) == 20
    assert 'running' in answered  # answered while the job ran, not after it
    final = wait_for(http, job, timeout=300)
    assert final['state'] == 'done' and [v['status'] for v in final['videos']] == ['indexed'] * 3


def test_delete_removes_a_video_once(http, indexed):
    video_id = indexed['ids']['fractal.mp4']
    assert http.delete(f'/v1/videos/{video_id}').status_code == 204
    assert http.get(f'/v1/videos/{video_id}').status_code == 404
    again = http.delete(f'/v1/videos/{video_id}')
    assert again.status_code == 404 and again.headers['content-type'] == PROBLEM
    assert video_id not in {v['video_id'] for v in http.get('/v1/videos').json()['videos']}


def test_a_token_guards_every_route_but_health(folders, options, tmp_path):
    token_file = tmp_path / 'tokens'
    server = ApiServer([*options, '--allow-dir', folders['allowed'], '--token-file', token_file,
                        '--cors-origin', 'https://app.example.com'], tmp_path / 'server.log')
    try:
        token = server.log.read_text().split('shown only now): ')[1].split()[0]
        assert token not in token_file.read_text()
        assert token_file.read_text() == f"sha256:{hashlib.sha256(token.encode()).hexdigest()}\n"
        assert token_file.stat().st_mode & 0o077 == 0
        with server.client() as anonymous:
            assert anonymous.get('/v1/healthz').status_code == 200
            for method, path in [('GET', '/v1/videos'), ('POST', '/v1/search'), ('GET', f"/v1/videos/{'a' * 64}"),
                                 ('DELETE', f"/v1/videos/{'a' * 64}"), ('GET', '/v1/jobs/1')]:
                answer = anonymous.request(method, path, json={'text': 'x'})
                assert answer.status_code == 401 and answer.headers['www-authenticate'] == 'Bearer', (method, path)
                assert answer.headers['content-type'] == PROBLEM
            wrong = anonymous.get('/v1/videos', headers={'Authorization': f'Bearer {token}x'})
            assert wrong.status_code == 401 and wrong.json()['detail'] == 'the bearer token is not valid'
        with server.client(headers={'Authorization': f'Bearer {token}'}) as client:
            assert client.get('/v1/videos').status_code == 200
            assert client.post('/v1/search', json={'text': 'bars'}).status_code == 200
            allowed = client.get('/v1/videos', headers={'Origin': 'https://app.example.com'})
            assert allowed.headers['access-control-allow-origin'] == 'https://app.example.com'
            assert 'access-control-allow-origin' not in client.get('/v1/videos', headers={'Origin': 'https://evil.example'}).headers
    finally:
        server.close()


def test_cors_is_off_unless_origins_are_named(http):
    answer = http.get('/v1/videos', headers={'Origin': 'https://app.example.com'})
    assert answer.status_code == 200 and 'access-control-allow-origin' not in answer.headers
    preflight = http.options('/v1/search', headers={'Origin': 'https://app.example.com',
                                                    'Access-Control-Request-Method': 'POST'})
    assert 'access-control-allow-origin' not in preflight.headers


def test_a_port_in_use_is_a_one_line_error(server, capsys, tmp_path):
    assert main(['serve', '--port', str(server.port), '--workspace', str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f'error: --host 127.0.0.1 --port {server.port}: cannot listen there (')


def test_serving_beyond_loopback_needs_a_token_file(capsys, tmp_path):
    assert main(['serve', '--host', '0.0.0.0', '--workspace', str(tmp_path)]) == 1
    assert capsys.readouterr().err == 'error: --host 0.0.0.0: serving beyond this machine needs a token (--token-file F)\n'
    (tmp_path / 'tokens').write_text('sha256:not-a-hash\n')
    assert main(['serve', '--token-file', str(tmp_path / 'tokens'), '--workspace', str(tmp_path)]) == 1
    assert "tokens:1: not a token hash" in capsys.readouterr().err
