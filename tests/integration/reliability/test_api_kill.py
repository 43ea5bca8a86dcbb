"""kill -9 of `flow.py serve` in the middle of an index job: the workspace stays consistent and the CLI finishes the batch."""
import json
import re

from tests.integration.api_server import ApiServer
from tests.integration.reliability.checks import check_consistent

ATTEMPTS = 3  # a fresh workspace each; an attempt whose job ended before the kill is tried again


def test_a_server_killed_mid_job_leaves_the_workspace_consistent(cli, batch, reference, tiny_checkpoint, tmp_path):
    for attempt in range(ATTEMPTS):
        workspace = tmp_path / f'workspace{attempt}'
        server = ApiServer(['--workspace', workspace, '--model', tiny_checkpoint, '--text-model', 'clip', '--asr', 'off',
                            '--allow-dir', batch], tmp_path / f'server{attempt}.log')
        try:
            killed_mid_job = _kill_after_the_first_video(server, batch)
        finally:
            server.close()
        if killed_mid_job:
            break
    assert killed_mid_job, f'the job ended before the kill in all {ATTEMPTS} attempts'
    left = check_consistent(workspace, reference, strict=False)
    code, out, err = cli.run('index', batch, '--workspace', workspace, '--model', tiny_checkpoint)
    assert code == 0, err
    indexed, already, failed = map(int, re.search(r'(\d+) indexed, (\d+) already indexed, (\d+) failed', out).groups())
    assert (indexed + already, failed) == (len(reference.videos), 0) and already >= 1, out
    check_consistent(workspace, reference, strict=True)
    print(f'\nkilled after {already} of {len(reference.videos)} videos; the kill left {left}')


def _kill_after_the_first_video(server: ApiServer, batch) -> bool:
    """Post the batch, SIGKILL the server as soon as its first video is stored; whether the job was still running."""
    with server.client() as http:
        job = http.post('/v1/videos', json={'path': str(batch)}).json()['job']
        with http.stream('GET', f'/v1/jobs/{job}', headers={'Accept': 'text/event-stream'}) as events:
            for line in events.iter_lines():
                if line.startswith('data: ') and json.loads(line[6:])['videos']:
                    server.kill()
                    return json.loads(line[6:])['state'] == 'running'
    return False
