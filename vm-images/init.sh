#!/bin/busybox sh
# cr-lab guest /init (busybox, PID 1): mount the host root read-only over 9p,
# make the usual writable places tmpfs, run /cr-lab/cmd with it as its root with
# stdout/stderr on virtio-serial ports, send dmesg and the exit status to the
# host on two more ports, then reset (QEMU runs with -no-reboot, so it exits).
# From the moment the ports exist, a heartbeat (a byte a second) tells the
# host's watchdog the guest is alive, and the kernel log streams live on
# cr.kmsg, so a guest that hangs leaves its last messages behind.
/bin/busybox --install -s /bin
export PATH=/bin

die() {
	echo "cr-lab init: $*" >/dev/console
	reboot -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev

# The ports appear asynchronously (the host announces them after probe).
port() {
	tries=0
	while :; do
		for p in /sys/class/virtio-ports/*; do
			[ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && echo "/dev/${p##*/}" && return 0
		done
		tries=$((tries + 1))
		[ "$tries" -gt 500 ] && die "virtio port $1 never appeared"
		sleep 0.01
	done
}
OUT=$(port cr.stdout)
ERR=$(port cr.stderr)
DMESG=$(port cr.dmesg)
STATUS=$(port cr.status)
HEARTBEAT=$(port cr.heartbeat)
KMSG=$(port cr.kmsg)
(while :; do echo; sleep 1; done) >"$HEARTBEAT" 2>/dev/null &
cat /proc/kmsg >"$KMSG" 2>/dev/null &

R=/mnt
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose,ro hostroot $R || die "cannot mount the host root"
# Keep a view of the host root that the tmpfs mounts below do not hide:
# the command script binds a working directory under /tmp from it.
mkdir -p /h && mount --bind $R /h
for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs $R$d || die "cannot mount tmpfs on $d"; done
mount -t tmpfs -o mode=755 tmpfs $R/run || die "cannot mount tmpfs on /run"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $R/dev/pts
# Point /dev/ptmx at this devpts instance (CRIU checks /dev/ptmx).
mount --bind $R/dev/pts/ptmx $R/dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=755 cgroup $R/sys/fs/cgroup
mkdir $R/sys/fs/cgroup/freezer
mount -t cgroup -o freezer freezer $R/sys/fs/cgroup/freezer || die "cannot mount the cgroup v1 freezer"
ip link set lo up

mkdir -p $R/run/cr-lab
mkdir -p $R/run/cr-lab/host && mount --bind /h $R/run/cr-lab/host
cp /cr-lab/cmd $R/run/cr-lab/cmd
# The command gets a mount namespace of its own whose root is the host root,
# moved onto / as switch_root does: a task chrooted away from its namespace's
# root may not create user namespaces (unshare -U), and the tests do.
env -i unshare -m --propagation private /bin/busybox sh -c "cd $R && mount --move . / && exec chroot . /bin/sh /run/cr-lab/cmd" \
	<$R/dev/null >"$OUT" 2>"$ERR"
rc=$?

dmesg >"$DMESG"
echo "exit $rc" >"$STATUS"
reboot -f
