"""ansible-runner: the idempotence check's reading of events, its environment, secrets and signals."""

from pathlib import Path

from pipeline.verify import ansible


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
    changed, failed = ansible.summarize_events(events)
    assert changed == ["app_service : Write env", "Play-level"]
    assert failed == ["x : Bang", "Gathering Facts"]

def test_ansible_env_points_at_project_config(root):
    env = ansible.ansible_env(root)
    assert env["ANSIBLE_CONFIG"] == str(root / "playbooks" / "ansible.cfg")
    assert "UserKnownHostsFile=/dev/null" in env["ANSIBLE_SSH_ARGS"]

def test_secrets_are_kept_out_of_ansible_runner(monkeypatch):
    import os

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    with ansible.without_secrets():
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
    def task_running() -> bool:
        return any(entry.joinpath("cmdline").read_bytes() == b"sleep\x00120\x00"
                   for entry in Path("/proc").glob("[0-9]*") if entry.joinpath("cmdline").exists())

    fired = threading.Event()

    def signal_once_the_task_runs() -> None:  # not a timer: the run under test must have started
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not fired.is_set():
            try:
                if task_running():
                    fired.set()
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            except OSError:  # a process that ended while it was read
                pass
            time.sleep(0.1)

    previous = signal.signal(signal.SIGTERM, stop)
    timer = threading.Thread(target=signal_once_the_task_runs, daemon=True)
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(Stopped):
            ansible.run_playbook(
                tmp_path / "run", playbook, quiet=True, ident="slow", extravars={},
                inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                           "ansible_python_interpreter": sys.executable}}}},
                envvars={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                         "TMPDIR": str(tmp_path)})  # the killed module's payload folder stays there
        assert fired.is_set() and signal.getsignal(signal.SIGTERM) is stop
    finally:
        fired.set()
        timer.join()
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


def test_a_playbook_that_outlives_kiln_tool_seconds_is_an_error_not_a_verdict(tmp_path, monkeypatch):
    """A hung playbook (a guest that stopped answering) is stopped and raised as CommandFailed: an idempotence
    or converge run must never read a timeout as a failed task of the image."""
    import os
    import sys

    import pytest

    from pipeline.errors import CommandFailed

    monkeypatch.setenv("KILN_TOOL_SECONDS", "3")
    playbook = tmp_path / "hung.yml"
    playbook.write_text("---\n- hosts: all\n  gather_facts: false\n  tasks:\n"
                        "    - name: Hang\n      ansible.builtin.command: sleep 120\n")
    (tmp_path / "run").mkdir()
    with pytest.raises(CommandFailed, match=r"ansible-playbook hung.yml did not finish within 3 s "
                                            r"\(KILN_TOOL_SECONDS\): stopped"):
        ansible.run_playbook(
            tmp_path / "run", playbook, quiet=True, ident="hung", extravars={},
            inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                       "ansible_python_interpreter": sys.executable}}}},
            envvars={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)})
