#!/bin/sh
# Runs as root as Packer's shutdown command, after the last provisioner (or, for the chroot
# builder, in the chroot with KILN_FINALIZE_CHROOT=1: the same guarantees, nothing to power off).
# Removes everything that belongs to the build, so the image keeps no way in but
# the key each instance is given at boot, then powers off.
set -u
BUILD_USER=${SUDO_USER:-packer}
# Next boot is a first boot: cloud-init re-runs its per-instance modules (user, host keys).
cloud-init clean --logs --seed
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
rm -f /etc/sudoers.d/90-cloud-init-users
userdel -f -r "$BUILD_USER" 2>/dev/null || true
# Package lists stay: the next layer's apt tasks refresh them when older than an hour.
apt-get clean
rm -rf /tmp/* /var/tmp/*
rm -f /usr/local/sbin/kiln-finalize
sync
[ -n "${KILN_FINALIZE_CHROOT:-}" ] || systemctl poweroff --no-block
