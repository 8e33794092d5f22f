#!/bin/sh
# Simulates, on this machine, a Kubernetes pod whose shell reads its
# service-account token, so that a recorder run can be checked end to end
# without a cluster:
#
#   sudo ./target/release/tokenscan-record -o node.parquet --duration 15s &
#   sudo scripts/simulate-pod-token-read.sh
#   ./target/release/tokenscan replay node.parquet
#
# What it does (as root; nothing outside the pod's own cgroup and mount
# namespace is changed, and the cgroup is removed at the end):
# - a cgroup v2 directory named as containerd names a container,
#   <cgroup2 mount>/kubepods.slice/cri-containerd-<64 hex>.scope;
# - in a private mount namespace, kubelet's projected token volume at
#   /run/secrets/kubernetes.io/serviceaccount (..<timestamp>/token, ..data ->
#   ..<timestamp>, token -> ..data/token), with a fake token;
# - on a pseudo-terminal (script(1)): `cat /var/run/secrets/.../token`, then
#   `cd` there and `cat token`, then a Python open() of the token.
# It prints the container id it used.
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "simulate-pod-token-read.sh: needs root (it creates a cgroup and a mount namespace)" >&2
    exit 1
fi
for tool in unshare setsid script python3; do
    command -v "$tool" >/dev/null || { echo "simulate-pod-token-read.sh: $tool is not installed" >&2; exit 1; }
done
root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$root" ] || { echo "simulate-pod-token-read.sh: no cgroup2 mount in /proc/mounts" >&2; exit 1; }

id=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
parent="$root/kubepods.slice"
made_parent=
[ -d "$parent" ] || { mkdir "$parent"; made_parent=1; }
cg="$parent/cri-containerd-$id.scope"
mkdir "$cg"
work=$(mktemp -d)
cleanup() {
    # The cgroup can only be removed once the pod's processes have exited.
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
    [ -z "$made_parent" ] || rmdir "$parent" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sa=/run/secrets/kubernetes.io/serviceaccount
ts=..$(date -u +%Y_%m_%d_%H_%M_%S).$$
cat > "$work/interactive.sh" <<EOF
cat /var/run/secrets/kubernetes.io/serviceaccount/token; echo
cd $sa && cat token; echo
python3 -c 'open("$sa/token").read()'
EOF
cat > "$work/pod.sh" <<EOF
set -eu
mount --make-rprivate /
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p $sa
mount -t tmpfs -o mode=755 tmpfs $sa
cd $sa
mkdir $ts
printf 'eyJhbGciOiJSUzI1NiJ9.simulated-token' > $ts/token
printf 'simulated-ca\n' > $ts/ca.crt
printf 'default' > $ts/namespace
ln -s $ts ..data
ln -s ..data/token token
ln -s ..data/ca.crt ca.crt
ln -s ..data/namespace namespace
cd /
script -qec 'sh $work/interactive.sh' /dev/null
EOF
sh -c "echo \$\$ > '$cg/cgroup.procs' && exec setsid -w unshare -m sh '$work/pod.sh'" </dev/null
echo "simulated pod: container id $id"
