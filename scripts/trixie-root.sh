#!/bin/bash
# A Debian 13 (trixie) root with Dovecot 2.4, for the Dovecot 2.4 tests and `demo.sh --dovecot 2.4`
# on a Debian 12 machine. Made once and reused:
#
#   scripts/trixie-root.sh           make it if it is missing or stale; print its path
#   scripts/trixie-root.sh --path    print where it is (or would be), change nothing
#   unshare --mount --propagation private scripts/trixie-root.sh jail DIR [BIND...]
#       a private, writable view of it for one test or demo: an overlay at DIR/merged (changes
#       go to DIR/upper), /proc and /dev mounted, each host directory BIND bind-mounted at its
#       own path; prints "ready", then waits chrooted in it until its standard input closes.
#       Commands run inside with `nsenter -t PID -m -r -w`; the mounts go with the namespace.
#
# Where: $APPPW_TRIXIE_ROOT, default /var/cache/apppw-test/trixie. It is made in a temporary
# directory next to it with `debootstrap --variant=minbase trixie` and the packages below, then
# renamed into place, so a root that exists is complete; its file `.apppw-root` records the
# package list it was made with, and a different list makes a new root. $APPPW_DEBIAN_MIRROR
# overrides debootstrap's default mirror. Needs root, debootstrap and the network (once).
#
# The tests never change this directory: each one runs Dovecot in a private mount namespace on
# an overlay of it (tests/src/trixie.rs).
set -euo pipefail

ROOT=${APPPW_TRIXIE_ROOT:-/var/cache/apppw-test/trixie}
# Dovecot 2.4 (IMAP, submission), PAM tools, and the .deb's dependencies, so that installing
# the package in the root needs no download.
PACKAGES=(
  dovecot-core dovecot-imapd dovecot-submissiond
  pamtester
  adduser libpam0g libsodium23
)
STAMP="packages: ${PACKAGES[*]}"

if [ "${1:-}" = --path ]; then
  echo "$ROOT"
  exit 0
fi

if [ "${1:-}" = jail ]; then
  dir=${2:?jail DIR [BIND...]}
  shift 2
  [ -f "$ROOT/.apppw-root" ] || { echo "trixie-root: no root at $ROOT" >&2; exit 1; }
  m=$dir/merged
  mkdir -p "$dir/upper" "$dir/work" "$m"
  mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$dir/upper,workdir=$dir/work" "$m"
  mount -t proc proc "$m/proc"
  mount --rbind /dev "$m/dev"
  for b in "$@"; do
    mkdir -p "$m$b"
    mount --bind "$b" "$m$b"
  done
  echo ready
  exec chroot "$m" /bin/sh -c 'exec cat >/dev/null'
fi
[ $# = 0 ] || { echo "usage: $0 [--path]" >&2; exit 2; }

if [ "$(cat "$ROOT/.apppw-root" 2>/dev/null || true)" = "$STAMP" ]; then
  echo "$ROOT"
  exit 0
fi

die() { echo "trixie-root: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"

parent=$(dirname "$ROOT")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.trixie.XXXXXX")
cleanup() {
  # A failed run may leave /proc mounted in the half-made root.
  umount "$tmp/proc" 2>/dev/null || true
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
chmod 0755 "$tmp"
start=$SECONDS

echo "trixie-root: debootstrap --variant=minbase trixie $tmp" >&2
# shellcheck disable=SC2086 # the mirror is one word or none
debootstrap --variant=minbase trixie "$tmp" ${APPPW_DEBIAN_MIRROR:-} >"$tmp.log" 2>&1 ||
  { tail -n 20 "$tmp.log" >&2; rm -f "$tmp.log"; die "debootstrap failed"; }
rm -f "$tmp.log"

# Services must not start inside the root (they would take the host's ports).
printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
chmod 0755 "$tmp/usr/sbin/policy-rc.d"
mount -t proc proc "$tmp/proc"
echo "trixie-root: apt-get install ${PACKAGES[*]}" >&2
chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PACKAGES[*]} && apt-get clean" \
  >"$tmp/install.log" 2>&1 || { tail -n 20 "$tmp/install.log" >&2; die "apt-get install failed"; }
umount "$tmp/proc"
rm -f "$tmp/install.log"
chroot "$tmp" dovecot --version >/dev/null || die "dovecot does not run in the new root"

echo "$STAMP" >"$tmp/.apppw-root"
# Replace a stale root only now that the new one is complete.
if [ -e "$ROOT" ]; then
  mv "$ROOT" "$tmp.old"
  rm -rf --one-file-system "$tmp.old"
fi
mv "$tmp" "$ROOT"
trap - EXIT
echo "trixie-root: made $ROOT in $((SECONDS - start)) s (Dovecot $(chroot "$ROOT" dovecot --version))" >&2
echo "$ROOT"
