"""The specs' root shell: one ``sudo python3`` per session, the same answers as a ``sudo`` per command.

``ssh`` and ``sudo`` are stand-ins on PATH that run the remote command here and log each call, so the
test counts connections; the real SSH path is the chains' gate.
"""

import os
from pathlib import Path

import pytest
import testinfra

from pipeline.verify import spec_shell

SSH = """#!/bin/sh
echo ssh >> "$FAKE_LOG"
for last; do :; done
exec /bin/sh -c "$last"
"""
SUDO = """#!/bin/sh
echo "sudo $1" >> "$FAKE_LOG"
if [ "$1" = python3 ] && [ -n "$NO_PYTHON" ]; then exit 127; fi
if [ "$1" = -u ]; then shift 2; fi
exec "$@"
"""


@pytest.fixture
def guest(tmp_path, monkeypatch):
    """A host for ``kiln-ssh://``, and the log of every ssh and sudo it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ssh", SSH), ("sudo", SUDO)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    # testinfra keeps one host per spec: a name of this test's own gets a backend of its own.
    host = testinfra.get_host(f"{spec_shell.SCHEME}://kiln@{tmp_path.name}:2222", sudo=True)
    return host, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_root_commands_share_one_connection_and_answer_as_sudo_would(guest):
    host, log = guest
    assert host.backend.NAME == spec_shell.SCHEME
    out = host.run("printf 'a\\nb'; echo oops >&2; exit 3")
    assert (out.rc, out.stdout, out.stderr) == (3, "a\nb", "oops\n")
    assert host.check_output("echo %s", "it's quoted") == "it's quoted"
    assert host.file("/").is_directory
    assert host.run("cat").stdout == ""  # a command never reads the loop's own input
    assert calls(log) == ["ssh", "sudo python3"]


def test_a_command_as_another_user_is_run_by_root_with_sudo_as_testinfra_would(guest):
    host, log = guest
    with host.sudo("nobody"):
        assert host.run("true").rc == 0
    assert calls(log) == ["ssh", "sudo python3", "sudo -u"]


def test_without_python3_in_the_image_every_command_has_its_own_sudo(guest, monkeypatch):
    host, log = guest
    monkeypatch.setenv("NO_PYTHON", "1")
    assert host.check_output("echo one") == "one"
    assert host.check_output("echo two") == "two"
    assert calls(log) == ["ssh", "sudo python3", "ssh", "sudo /bin/sh", "ssh", "sudo /bin/sh"]


def test_a_loop_that_stops_mid_command_is_an_error_and_the_ordinary_way_takes_over(guest):
    host, log = guest
    with pytest.raises(RuntimeError, match="root shell stopped while it ran: kill"):
        host.run("kill -9 $PPID")  # the command's parent is the loop
    assert host.check_output("echo after") == "after"
    assert calls(log)[-2:] == ["ssh", "sudo /bin/sh"]
