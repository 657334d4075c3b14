#!/bin/sh
# mmdebstrap customize hook: turn the fresh rootfs ($1) into a bootable cloud image.
# Runs on the host with the rootfs mounted at $1; must stay idempotent-free of host state.
set -eu
ROOT=$1
HERE=$(dirname "$0")
ROOT_UUID=$2

# Network: DHCP on whatever name the NIC gets (ens2, ens3, eth0 ...).
mkdir -p "$ROOT/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$ROOT/etc/systemd/network/20-wired.network"
chroot "$ROOT" systemctl enable systemd-networkd
# QEMU user-mode networking answers DNS on 10.0.2.3.
rm -f "$ROOT/etc/resolv.conf"
echo "nameserver 10.0.2.3" > "$ROOT/etc/resolv.conf"
echo foundation > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 foundation\n' > "$ROOT/etc/hosts"
echo "UUID=$ROOT_UUID / ext4 defaults,errors=remount-ro 0 1" > "$ROOT/etc/fstab"
# The package registry is a snapshot: its Release files carry past Valid-Until dates.
printf 'Acquire::Check-Valid-Until "false";\n' > "$ROOT/etc/apt/apt.conf.d/99kiln-no-valid-until"
# No passwords over SSH (no account has one): set here, since cloud-init's set-passwords module, which would
# apply a seed's ssh_pwauth, does not run at boot (cloud.cfg).
printf 'UseDNS no\nPasswordAuthentication no\n' > "$ROOT/etc/ssh/sshd_config.d/10-kiln-foundation.conf"

# The locale cloud-init would set at every boot, set once (minbase generates no other).
echo "LANG=C.UTF-8" > "$ROOT/etc/default/locale"

# cloud-init takes each boot's user and key from a NoCloud seed (as EC2 does from a key pair), in two stages
# of its four (cloud.cfg says why): each is seconds of Python under emulation. e2scrub_reap removes LVM
# snapshots, and there is no LVM.
install -m 0644 "$HERE/cloud.cfg" "$ROOT/etc/cloud/cloud.cfg.d/99-kiln.cfg"
chroot "$ROOT" systemctl mask cloud-init-local.service cloud-config.service e2scrub_reap.service

# The initramfs needs only the drivers of a virtual machine's root disk, not "most" of them: a third the size,
# unpacked and probed a second sooner at every boot.
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOT/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_scsi\nnvme\nahci\nsd_mod\n' >> "$ROOT/etc/initramfs-tools/modules"
chroot "$ROOT" update-initramfs -u -k all

# Host keys made here would be shared by every VM: drop them. cloud-init makes new ones on
# first boot; the drop-in below covers a boot without a seed (only when none exists).
rm -f "$ROOT"/etc/ssh/ssh_host_*
mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=/bin/sh -c "ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -q -t ed25519 -N \\"\\" -f /etc/ssh/ssh_host_ed25519_key"\n' \
  > "$ROOT/etc/systemd/system/ssh.service.d/10-kiln-hostkeys.conf"
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"

# Boot loader configuration; the Python side installs extlinux into the disk.
KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -n 1)
mkdir -p "$ROOT/boot/extlinux"
cat > "$ROOT/boot/extlinux/extlinux.conf" <<EOC
DEFAULT linux
TIMEOUT 1
PROMPT 0
SERIAL 0 115200
LABEL linux
  LINUX /boot/vmlinuz-$KVER
  INITRD /boot/initrd.img-$KVER
  APPEND root=UUID=$ROOT_UUID rw console=tty0 console=ttyS0,115200n8 net.ifnames=1
EOC
# Package lists stay (the first layer refreshes them when older than an hour); downloaded packages go.
rm -f "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin
