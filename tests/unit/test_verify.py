from pathlib import Path

from pipeline import seed, verify
from pipeline.vm import Guest


def guest(tmp_path: Path) -> Guest:
    access = seed.Access(user="kiln", key=tmp_path / "id_ed25519", seed_files=())
    return Guest(ssh_port=2222, access=access, ssh_config=tmp_path / "ssh_config", forwards={"http": 8081})


def test_summarize_events_names_changed_and_failed_tasks():
    events = [
        {"event": "runner_on_ok", "event_data": {"role": "app_service", "task": "Install nginx",
                                                 "res": {"changed": False}}},
        {"event": "runner_on_ok", "event_data": {"role": "app_service", "task": "Write env", "res": {"changed": True}}},
        {"event": "runner_on_ok", "event_data": {"task": "Play-level", "res": {"changed": True}}},
        {"event": "runner_on_failed", "event_data": {"role": "x", "task": "Boom", "ignore_errors": True}},
        {"event": "runner_on_failed", "event_data": {"role": "x", "task": "Bang"}},
        {"event": "runner_on_unreachable", "event_data": {"task": "Gathering Facts"}},
        {"event": "playbook_on_stats", "event_data": {}},
    ]
    changed, failed = verify.summarize_events(events)
    assert changed == ["app_service : Write env", "Play-level"]
    assert failed == ["x : Bang", "Gathering Facts"]


def test_spec_invocation(tmp_path):
    g = guest(tmp_path)
    inv = verify.spec_invocation(g, spec_dirs=[Path("/p/specs/base"), Path("/p/specs/app")],
                                 junit=tmp_path / "junit.xml", env={"KILN_IMAGE_NAME": "app"})
    argv = inv.argv
    assert argv[1:3] == ("-m", "pytest")
    assert "--hosts=ssh://kiln@127.0.0.1:2222" in argv
    assert f"--ssh-config={tmp_path / 'ssh_config'}" in argv
    assert "--sudo" in argv
    assert f"--junitxml={tmp_path / 'junit.xml'}" in argv
    assert argv[-2:] == ("/p/specs/base", "/p/specs/app")
    assert inv.env == {"KILN_IMAGE_NAME": "app"}


def test_spec_env_tells_identity_and_ports(tmp_path):
    env = verify.spec_env(guest(tmp_path), {"image_name": "app", "image_version": "v"})
    assert env["KILN_IMAGE_NAME"] == "app"
    assert env["KILN_IMAGE_VERSION"] == "v"
    assert env["KILN_FORWARD_HTTP"] == "127.0.0.1:8081"
    assert env["KILN_SSH_PORT"] == "2222"


def test_read_junit(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text("""<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="3">
      <testcase classname="base.test_base" name="test_a"/>
      <testcase classname="app.test_app" name="test_b"><failure message="x">boom</failure></testcase>
      <testcase classname="app.test_app" name="test_c"><error message="y"/></testcase>
    </testsuite></testsuites>""")
    assert verify.read_junit(junit) == (3, ["app.test_app::test_b", "app.test_app::test_c"])
    assert verify.read_junit(tmp_path / "none.xml") == (0, ["(no JUnit report was written)"])


def test_ansible_env_points_at_project_config(root):
    env = verify.ansible_env(root)
    assert env["ANSIBLE_CONFIG"] == str(root / "playbooks" / "ansible.cfg")
    assert "UserKnownHostsFile=/dev/null" in env["ANSIBLE_SSH_ARGS"]


def test_secrets_are_kept_out_of_ansible_runner(monkeypatch):
    import os

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    with verify.without_secrets():
        assert "AWS_SECRET_ACCESS_KEY" not in os.environ and "AWS_ACCESS_KEY_ID" not in os.environ
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"


def test_a_signal_during_an_ansible_runner_run_cancels_it_and_still_stops_kiln(tmp_path):
    """ansible-runner would swallow SIGINT/SIGTERM for good; with deferred_signals it cancels, then Kiln stops."""
    import os
    import signal
    import sys
    import threading
    import time

    import pytest

    class Stopped(Exception):
        pass

    def stop(_signum, _frame):
        raise Stopped

    playbook = tmp_path / "slow.yml"
    playbook.write_text("---\n- hosts: all\n  gather_facts: false\n  tasks:\n"
                        "    - name: Take a while\n      ansible.builtin.command: sleep 120\n")
    (tmp_path / "run").mkdir()
    previous = signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(Stopped):
            verify.run_playbook(
                tmp_path / "run", playbook, quiet=True, ident="slow", extravars={},
                inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                           "ansible_python_interpreter": sys.executable}}}},
                envvars={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - started < 60
    time.sleep(1)
    # Neither ansible-playbook (which continues in a session of its own) nor what it ran is left.
    left = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = entry.joinpath("cmdline").read_bytes()
        except OSError:
            continue
        if str(playbook).encode() in cmdline or cmdline == b"sleep\x00120\x00":
            left.append(cmdline)
    assert left == []
