"""The sample service, run on the host as systemd would run it in the image."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from pipeline.vm import free_port


@pytest.fixture
def service(root, tmp_path):
    release = tmp_path / "image-release"
    release.write_text("# comment\nIMAGE_NAME=app\nIMAGE_VERSION=2026.1127.141438\nIMAGE_PARENT=base@2026.1127.1\n"
                       "GIT_COMMIT=abc\n")
    port = free_port()
    env = {**os.environ, "KILN_APP_PORT": str(port), "KILN_APP_RELEASE_FILE": str(release)}
    proc = subprocess.Popen([sys.executable, str(root / "playbooks/roles/app_service/files/kiln_app.py")], env=env,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    yield url, release, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def test_health_reports_image_identity(service):
    url, _, _ = service
    with urllib.request.urlopen(url + "/health") as resp:
        assert resp.headers["Content-Type"] == "application/json"
        body = json.loads(resp.read())
    assert body["status"] == "ok"
    assert body["image"] == {"name": "app", "version": "2026.1127.141438", "parent": "base@2026.1127.1",
                             "git_commit": "abc"}


def test_missing_release_file_is_degraded(service):
    url, release, _ = service
    release.unlink()
    body = json.loads(urllib.request.urlopen(url + "/health").read())
    assert body["status"] == "degraded" and body["image"]["name"] is None


def test_unknown_path_404(service):
    url, _, _ = service
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url + "/x")
    assert err.value.code == 404


def test_sigterm_stops_cleanly(service):
    _, _, proc = service
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
