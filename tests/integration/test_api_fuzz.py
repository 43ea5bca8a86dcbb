"""Property-based fuzzing of the API from its own /openapi.json (Schemathesis): no input makes a server error."""
import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.integration.api_server import ApiServer

EXAMPLES = 60  # per operation (eleven of them): about 30 s of requests here, besides the server's start

@pytest.fixture(scope='module')
def api_schema(sample_videos, tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp('fuzz')
    (folder / 'videos').mkdir()
    for video in sample_videos:
        shutil.copy(video, folder / 'videos' / video.name)
    server = ApiServer(['--workspace', folder / 'workspace', '--model', tiny_checkpoint, '--text-model', 'clip',
                        '--asr', 'off', '--allow-dir', folder / 'videos', '--upload-dir', folder / 'uploads',
                        '--max-upload-mb', '1'], folder / 'server.log')
    with server.client() as http:  # a library to search, list and play
        job = http.post('/v1/videos', json={'path': str(folder / 'videos')}).json()['job']
        while http.get(f'/v1/jobs/{job}').json()['state'] in ('queued', 'running'):
            pass
    yield schemathesis.openapi.from_url(f'{server.url}/openapi.json')
    server.close()
    assert 'Traceback' not in (folder / 'server.log').read_text(), (folder / 'server.log').read_text()[-3000:]


def test_no_input_makes_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate], database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            case.call_and_validate(checks=[not_a_server_error], timeout=60)

        no_server_error()
