"""app: the sample service behind nginx (base's specs run too)."""

import json
import urllib.request

import pytest


@pytest.mark.booted
def test_nginx_installed_and_running(host):
    assert host.package("nginx").is_installed
    nginx = host.service("nginx")
    assert nginx.is_enabled and nginx.is_running


@pytest.mark.booted
def test_service_runs_unprivileged(host):
    service = host.service("kiln-app")
    assert service.is_enabled and service.is_running
    user = host.user("kilnapp")
    assert user.exists and user.shell == "/usr/sbin/nologin"
    owners = {line.split()[0] for line in host.check_output("ps -eo user=,args= | grep [k]iln_app.py").splitlines()}
    assert owners == {"kilnapp"}


def test_service_config_has_defaults(host):
    env = host.file("/etc/default/kiln-app")
    assert env.exists and env.mode == 0o644
    assert env.contains("^KILN_APP_PORT=8080$")


@pytest.mark.booted
def test_nginx_listens_and_app_is_local_only(host):
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening


@pytest.mark.booted
def test_health_from_the_host_reports_this_image(forwarded, expected):
    with urllib.request.urlopen(f"http://{forwarded('http')}/health", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        body = json.loads(response.read())
    assert body["status"] == "ok"
    assert body["image"]["name"] == expected.name
    assert body["image"]["version"] == expected.version
    assert body["image"]["parent"] == expected.parent


@pytest.mark.booted
def test_unknown_path_is_404(forwarded):
    try:
        urllib.request.urlopen(f"http://{forwarded('http')}/nope", timeout=30)
    except urllib.error.HTTPError as err:
        assert err.code == 404
    else:
        raise AssertionError("expected 404")
