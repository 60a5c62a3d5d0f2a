#!/bin/bash
# Builds the apppw .deb from this workspace with dpkg-deb (no cargo-deb or debhelper needed).
#
#   packaging/build-deb.sh [--no-build] [--out DIR]
#
# Builds the release binaries (`cargo build --release --workspace --locked`), generates the man
# pages, lays out the package tree, computes Depends with dpkg-shlibdeps when it is installed and
# writes target/debian/apppw_VERSION-REVISION_ARCH.deb (the path is the last line printed).
#
# Environment: DEB_REVISION (default 1), SOURCE_DATE_EPOCH (default: time of the last commit,
# else now) for reproducible timestamps, CARGO (default cargo), CARGO_TARGET_DIR, APPPW_BIN_DIR
# (where the built binaries are; default target/release).
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
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "build-deb: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"

# The version of [workspace.package] in the root Cargo.toml.
upstream="$(awk '
  /^\[/ { section = $0 }
  section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
' Cargo.toml)"
[ -n "$upstream" ] || die "no version in [workspace.package] of Cargo.toml"
version="$upstream-${DEB_REVISION:-1}"
arch="$(dpkg --print-architecture)"
if command -v dpkg-architecture >/dev/null; then
  multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)"
else
  multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
fi
[ -n "${multiarch:-}" ] || die "cannot tell the multiarch triplet (install dpkg-dev)"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH

cargo="${CARGO:-cargo}"
target="${CARGO_TARGET_DIR:-$root/target}"
release="${APPPW_BIN_DIR:-$target/release}"
if ((build)); then
  "$cargo" build --release --workspace --locked
fi
for f in apppw apppw-checkpassword apppw-checkpassword-tls libpam_apppw.so apppw-manpages; do
  [ -f "$release/$f" ] || die "$release/$f is missing: run cargo build --release --workspace"
done

stage="$(mktemp -d "${TMPDIR:-/tmp}/apppw-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/apppw"
doc="$pkg/usr/share/doc/apppw"
pamdir="$pkg/usr/lib/$multiarch/security"

bash_completions="$pkg/usr/share/bash-completion/completions"
zsh_completions="$pkg/usr/share/zsh/vendor-completions"
fish_completions="$pkg/usr/share/fish/vendor_completions.d"
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/apppw" "$pamdir" "$pkg/usr/lib/tmpfiles.d" \
  "$pkg/usr/share/man/man1" "$pkg/usr/share/man/man5" "$pkg/usr/share/man/man8" "$doc/examples" \
  "$pkg/usr/share/lintian/overrides" "$bash_completions" "$zsh_completions" "$fish_completions"
# Group and setgid bits need the apppw group, which only exists once postinst has run.
install -d -m 0750 "$pkg/etc/apppw"
install -d -m 0750 "$pkg/var/lib/apppw"

install -m 0755 "$release/apppw" "$pkg/usr/bin/apppw"
install -m 0755 "$release/apppw-checkpassword" "$pkg/usr/lib/apppw/apppw-checkpassword"
# What apppw-checkpassword runs in its place when the database needs TLS (OpenSSL).
install -m 0755 "$release/apppw-checkpassword-tls" "$pkg/usr/lib/apppw/apppw-checkpassword-tls"
install -m 0644 "$release/libpam_apppw.so" "$pamdir/pam_apppw.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$pkg/usr/bin/apppw" "$pkg/usr/lib/apppw/apppw-checkpassword" \
  "$pkg/usr/lib/apppw/apppw-checkpassword-tls" "$pamdir/pam_apppw.so"
install -m 0644 "$here/deb/tmpfiles.conf" "$pkg/usr/lib/tmpfiles.d/apppw.conf"

install -m 0640 "$here/examples/apppw.toml" "$pkg/etc/apppw/apppw.toml"

# Shell completions, generated from the same clap definitions as --help and the man pages.
"$release/apppw" completions bash >"$bash_completions/apppw"
"$release/apppw" completions zsh >"$zsh_completions/_apppw"
"$release/apppw" completions fish >"$fish_completions/apppw.fish"
chmod 0644 "$bash_completions/apppw" "$zsh_completions/_apppw" "$fish_completions/apppw.fish"

man_date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
"$release/apppw-manpages" "$pkg/usr/share/man/man1" "$man_date" >/dev/null
for page in "$here"/man/*.[1-8]; do
  section="${page##*.}"
  sed -e "s/@VERSION@/$upstream/g" -e "s/@DATE@/$man_date/g" "$page" \
    >"$pkg/usr/share/man/man$section/$(basename "$page")"
done
find "$pkg/usr/share/man" -type f -exec chmod 0644 {} + -exec gzip -9n {} +

install -m 0644 "$here/deb/copyright" "$doc/copyright"
install -m 0644 "$here/deb/lintian-overrides" "$pkg/usr/share/lintian/overrides/apppw"
changelog_date="$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$changelog_date/g" "$here/deb/changelog" \
  | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
cp -R "$here/examples/." "$doc/examples/"
find "$doc/examples" -type d -exec chmod 0755 {} + && find "$doc/examples" -type f -exec chmod 0644 {} +

install -m 0755 "$here/deb/postinst" "$here/deb/postrm" "$pkg/DEBIAN/"
install -m 0644 "$here/deb/conffiles" "$pkg/DEBIAN/conffiles"

# Depends: from the ELF files' NEEDED entries when dpkg-shlibdeps is there (it wants a
# debian/control to exist, so give it a throwaway one), else the libraries apppw links.
shlibs=""
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$stage/src/debian"
  printf 'Source: apppw\n\nPackage: apppw\nArchitecture: any\n' >"$stage/src/debian/control"
  shlibs="$(cd "$stage/src" && dpkg-shlibdeps -O \
    "$pkg/usr/bin/apppw" "$pkg/usr/lib/apppw/apppw-checkpassword" \
    "$pkg/usr/lib/apppw/apppw-checkpassword-tls" "$pamdir/pam_apppw.so" \
    2>/dev/null | sed -n 's/^shlibs:Depends=//p')" || shlibs=""
fi
[ -n "$shlibs" ] || shlibs="libc6 (>= 2.34), libgcc-s1 (>= 4.2), libpam0g (>= 0.99.7.1), libsodium23 (>= 1.0.18), libssl3 (>= 3.0.0)"
depends="$shlibs, adduser"

installed_size="$(du -sk --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
  -e "s/@INSTALLED_SIZE@/$installed_size/" "$here/deb/control" >"$pkg/DEBIAN/control"
chmod 0644 "$pkg/DEBIAN/control"

# Conffiles are left out: dpkg keeps their checksums itself.
(cd "$pkg" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
  | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"

find "$pkg" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/apppw_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
