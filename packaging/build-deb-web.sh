#!/bin/bash
# Builds the apppw-web .deb (the self-service page) from this workspace with dpkg-deb, next to
# the apppw .deb of packaging/build-deb.sh, which it depends on.
#
#   packaging/build-deb-web.sh [--no-build] [--out DIR]
#
# Builds the release binary (`cargo build --release -p apppw-web --locked`), lays out the
# package tree (binary, example web.toml, man page, systemd socket and service units, a
# sysusers.d file, the texts and a fail2ban filter as examples), computes Depends with
# dpkg-shlibdeps when it is installed, and writes target/debian/apppw-web_VERSION_ARCH.deb
# (the path is the last line printed).
#
# Environment: as packaging/build-deb.sh (DEB_REVISION, SOURCE_DATE_EPOCH, CARGO,
# CARGO_TARGET_DIR, APPPW_BIN_DIR).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

build=1
out="$root/target/debian"
while (($#)); do
  case "$1" in
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb-web: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "build-deb-web: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"

upstream="$(awk '
  /^\[/ { section = $0 }
  section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
' Cargo.toml)"
[ -n "$upstream" ] || die "no version in [workspace.package] of Cargo.toml"
version="$upstream-${DEB_REVISION:-1}"
arch="$(dpkg --print-architecture)"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH

target="${CARGO_TARGET_DIR:-$root/target}"
release="${APPPW_BIN_DIR:-$target/release}"
if ((build)); then
  "${CARGO:-cargo}" build --release -p apppw-web --locked
fi
[ -f "$release/apppw-web" ] || die "$release/apppw-web is missing: run cargo build --release -p apppw-web"

web="$here/web"
stage="$(mktemp -d "${TMPDIR:-/tmp}/apppw-web-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/apppw-web"
doc="$pkg/usr/share/doc/apppw-web"

install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/sbin" "$pkg/lib/systemd/system" "$pkg/usr/lib/sysusers.d" \
  "$pkg/usr/share/man/man8" "$doc/examples" "$pkg/usr/share/lintian/overrides"
# The directory of the apppw package, with the same mode.
install -d -m 0750 "$pkg/etc/apppw"

install -m 0755 "$release/apppw-web" "$pkg/usr/sbin/apppw-web"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/sbin/apppw-web"
# Readable by the page's user once postinst has given it the group apppw-web.
install -m 0640 "$web/web.toml" "$pkg/etc/apppw/web.toml"
install -m 0644 "$web/apppw-web.socket" "$web/apppw-web.service" "$pkg/lib/systemd/system/"
install -m 0644 "$web/apppw-web.sysusers" "$pkg/usr/lib/sysusers.d/apppw-web.conf"

man_date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
sed -e "s/@VERSION@/$upstream/g" -e "s/@DATE@/$man_date/g" "$web/apppw-web.8" \
  | gzip -9n >"$pkg/usr/share/man/man8/apppw-web.8.gz"
chmod 0644 "$pkg/usr/share/man/man8/apppw-web.8.gz"

install -m 0644 "$here/deb/copyright" "$doc/copyright"
install -m 0644 "$web/deb/lintian-overrides" "$pkg/usr/share/lintian/overrides/apppw-web"
changelog_date="$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$changelog_date/g" "$here/deb/changelog" \
  | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
install -m 0644 "$root/docs/selfservice.md" "$doc/selfservice.md"
cp -R "$web/fail2ban" "$doc/examples/fail2ban"
cp -R "$root/selfservice/locales" "$doc/examples/locales"
find "$doc/examples" -type d -exec chmod 0755 {} + && find "$doc/examples" -type f -exec chmod 0644 {} +

install -m 0755 "$web/deb/postinst" "$web/deb/prerm" "$web/deb/postrm" "$pkg/DEBIAN/"
install -m 0644 "$web/deb/conffiles" "$pkg/DEBIAN/conffiles"

shlibs=""
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$stage/src/debian"
  printf 'Source: apppw\n\nPackage: apppw-web\nArchitecture: any\n' >"$stage/src/debian/control"
  shlibs="$(cd "$stage/src" && dpkg-shlibdeps -O "$pkg/usr/sbin/apppw-web" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')" || shlibs=""
fi
[ -n "$shlibs" ] || shlibs="libc6 (>= 2.34), libgcc-s1 (>= 4.2), libpam0g (>= 0.99.7.1)"
depends="$shlibs, apppw (= $version), adduser"

installed_size="$(du -sk --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
  -e "s/@INSTALLED_SIZE@/$installed_size/" "$web/deb/control" >"$pkg/DEBIAN/control"
chmod 0644 "$pkg/DEBIAN/control"

(cd "$pkg" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
  | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"

find "$pkg" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/apppw-web_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
