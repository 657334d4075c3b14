"""base: every server Kiln bakes passes these (children run them too)."""

import subprocess
import urllib.request

import pytest


@pytest.mark.parametrize("package", ["chrony", "prometheus-node-exporter", "openssh-server", "cloud-init"])
def test_package_installed(host, package):
    assert host.package(package).is_installed


@pytest.mark.booted
@pytest.mark.parametrize("unit", ["chrony", "prometheus-node-exporter", "ssh", "systemd-journald"])
def test_service_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_running
    if unit != "systemd-journald":  # static unit
        assert service.is_enabled


@pytest.mark.booted
def test_sshd_effective_config_refuses_passwords_and_root(host):
    effective = host.check_output("sshd -T")
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "permitrootlogin no" in effective


@pytest.mark.booted
def test_sshd_refuses_password_login_from_outside(ssh_endpoint):
    host, port, user = ssh_endpoint
    probe = subprocess.run(
        ["ssh", "-v", "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "ConnectTimeout=20",
         f"{user}@{host}", "true"],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0
    offered = [line for line in probe.stderr.splitlines() if "Authentications that can continue" in line]
    assert offered, probe.stderr
    assert all("password" not in line and "keyboard-interactive" not in line for line in offered)


def test_journal_is_persistent(host):
    journal = host.file("/var/log/journal")
    assert journal.is_directory
    assert journal.group == "systemd-journal"
    assert host.file("/etc/systemd/journald.conf.d/50-kiln-persistent.conf").contains("^Storage=persistent")


@pytest.mark.booted
def test_node_exporter_serves_metrics_to_the_network(forwarded):
    """Scraped as Prometheus would, over the network (kiln.toml forwards the port), not from inside the guest."""
    with urllib.request.urlopen(f"http://{forwarded('node_exporter')}/metrics", timeout=30) as response:
        assert "node_uname_info" in response.read().decode()


def test_image_release_names_this_image(host, expected):
    release = host.file("/etc/image-release")
    assert release.exists and release.mode == 0o644 and release.user == "root"
    fields = dict(line.split("=", 1) for line in release.content_string.splitlines()
                  if "=" in line and not line.startswith("#"))
    assert fields["IMAGE_NAME"] == expected.name
    assert fields["IMAGE_VERSION"] == expected.version
    assert fields["IMAGE_PARENT"] == expected.parent
    assert len(fields["GIT_COMMIT"]) > 0


def test_no_build_user_or_key_left(host, build_public_key):
    assert not host.user("packer").exists
    assert not host.file("/home/packer").exists
    sudoers = host.file("/etc/sudoers.d/90-cloud-init-users")  # cloud-init writes it at boot
    assert not sudoers.exists or not sudoers.contains("packer")
    if build_public_key:  # a chroot build had no key to leave behind
        material = build_public_key.split()[1]
        found = host.run("grep -rlF %s /home /root /etc/ssh /etc/sudoers.d /var/lib/cloud", material)
        assert found.rc == 1, f"the build key is still in: {found.stdout}"


@pytest.mark.booted
def test_host_keys_were_made_for_this_boot(host):
    # The image ships none; cloud-init generates them on first boot (ed25519 + ecdsa).
    assert host.file("/etc/ssh/ssh_host_ed25519_key").exists
    assert not host.file("/etc/ssh/ssh_host_rsa_key").exists


@pytest.mark.booted
def test_machine_id_is_set_for_this_boot(host):
    assert len(host.file("/etc/machine-id").content_string.strip()) == 32
