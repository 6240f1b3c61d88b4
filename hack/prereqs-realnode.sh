#!/usr/bin/env bash
# Checks (and where it can, installs) what the real node of the local stack needs besides the kubelet, which
# hack/build-binaries.sh builds: containerd, runc and the CNI plugins (bridge, host-local, loopback), all from
# Debian packages, plus iptables (the bridge plugin's masquerade rules) and mount/umount (pod volumes at stop).
# Prints one line per step on stderr; exits 1 when something is still missing, saying how to install it.
# Only e2e/cluster's Options.RealNode (make cluster-up REAL_NODE=1, the e2e/realnode tests) needs these.
set -uo pipefail
say() { echo "[prereqs-realnode] $*" >&2; }

# Debian package -> a file it installs that the stack uses.
declare -A want=(
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=/usr/sbin/iptables
)
missing=()
for pkg in containerd runc containernetworking-plugins iptables; do
  [ -x "${want[$pkg]}" ] || missing+=("$pkg")
done
# runc may live in /usr/bin on other layouts.
if [[ " ${missing[*]} " == *" runc "* ]] && command -v runc >/dev/null 2>&1; then
  missing=("${missing[@]/runc/}")
  read -r -a missing <<<"${missing[*]}"
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  say "missing: ${missing[*]}; apt-get is not available on this machine."
  say "install containerd (1.6+), runc and the CNI plugins bridge, host-local and loopback (in /usr/lib/cni or"
  say "/opt/cni/bin) and iptables by hand; the real node of the local stack cannot start without them."
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  say "missing: ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
  exit 1
fi
say "installing ${missing[*]} with apt-get (about 1 minute with apt-get update)"
export DEBIAN_FRONTEND=noninteractive
# --no-install-recommends: containerd recommends nothing we use; policy-rc.d keeps the package from starting a
# system-wide containerd (the stack runs its own, with its own root, state and socket).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; }
install || { say "apt-get install failed; running apt-get update first"; apt-get update -q >/dev/null 2>&1 && install; }
rc=$?
[ $made_policy = 1 ] && rm -f "$policy"
if [ $rc != 0 ]; then
  say "apt-get install ${missing[*]} failed; run it by hand to see why"
  exit 1
fi
for pkg in "${missing[@]}"; do
  if [ ! -x "${want[$pkg]}" ] && ! { [ "$pkg" = runc ] && command -v runc >/dev/null 2>&1; }; then
    say "$pkg installed but ${want[$pkg]} is still missing"
    exit 1
  fi
done
say "installed ${missing[*]}"
