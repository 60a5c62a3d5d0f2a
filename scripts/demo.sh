#!/usr/bin/env bash
# apppw demo: a throwaway Dovecot on a loopback port in front of apppw.
#
#   scripts/demo.sh [--dovecot 2.3|2.4]
#
# Dovecot 2.3 (the default on Debian 12): apppw-checkpassword as passdb, the normal password
# checked by a pam_matrix-backed PAM service standing in for the site's password service.
# Dovecot 2.4 (the default on Debian 13; on Debian 12 with --dovecot 2.4): Debian 13's
# Dovecot 2.4 in a private overlay of the root made by scripts/trixie-root.sh, with the shipped
# packaging/examples/dovecot-2.4 and pam.d/dovecot files unchanged, pam_unix for the normal
# password of a user inside, and Dovecot's auth cache switched on as many sites do.
#
# Shows, with real logins:
#   - an app password from off campus: accepted (doveadm auth test and a real IMAP LOGIN);
#   - the normal password from off campus: refused;
#   - the normal password from campus: accepted;
#   - the normal password from an eduroam-style "except" network: refused;
#   - a revoked app password: refused on the very next attempt.
#
# Runs as root on Debian/Ubuntu; installs the packages of scripts/setup.sh if missing. Leaves
# nothing behind: Dovecot is stopped and the temp dir and PAM service file removed on exit.
# Exits non-zero if any outcome differs from the expected one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "demo: $*" >&2; exit 1; }
VERSION=2.3
case "$(cut -d. -f1 /etc/debian_version 2>/dev/null)" in 13 | trixie*) VERSION=2.4 ;; esac
while (($#)); do
  case "$1" in
    --dovecot) VERSION=${2:-}; shift ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[ "$VERSION" = 2.3 ] || [ "$VERSION" = 2.4 ] || die "--dovecot takes 2.3 or 2.4"
[ "$(id -u)" = 0 ] || die "run as root (starts Dovecot as root, writes a file in /etc/pam.d)"
bash scripts/setup.sh
for cmd in cargo dovecot doveadm; do
  command -v "$cmd" >/dev/null || die "$cmd not found; run scripts/setup.sh first"
done
if [ "$VERSION" = 2.3 ]; then
  REPLY_PROGRAM=/usr/lib/dovecot/checkpassword-reply
  [ -x "$REPLY_PROGRAM" ] || die "$REPLY_PROGRAM missing (dovecot-core 2.3 required; try --dovecot 2.4)"
  PAM_MATRIX=$(ls /usr/lib/*/pam_wrapper/pam_matrix.so 2>/dev/null | head -n1 || true)
  [ -n "$PAM_MATRIX" ] || die "pam_matrix.so not found (apt-get install libpam-wrapper)"
  getent group dovecot >/dev/null || die "group dovecot missing (is dovecot-core installed?)"
else
  TRIXIE=$(bash scripts/trixie-root.sh)
fi

USER_NAME=alice
NORMAL_PW='Winter2026!'
OFF=203.0.113.9        # off campus
CAMPUS=192.0.2.10      # campus
EDUROAM=192.0.2.200    # inside campus, but in an except network
OFF6=2001:db9::1       # off campus, IPv6

echo "==> Building (cargo build --release --workspace)"
cargo build --release --workspace --quiet
BIN=$ROOT/target/release

T=$(mktemp -d /tmp/apppw-demo.XXXXXX)
chmod 0755 "$T"
# A free unprivileged port (nothing answers on it).
PORT=
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free port found"

# Dovecot 2.3: checkpassword, a PAM service file for the normal password.
setup_23() {
PAM_SERVICE=apppw-demo-$$
GROUP_CREATED=
cleanup() {
  if [ -f "$T/run/master.pid" ]; then
    doveadm -c "$T/dovecot.conf" stop >/dev/null 2>&1 || true
  fi
  rm -f "/etc/pam.d/$PAM_SERVICE"
  rm -rf "$T"
  if [ -n "$GROUP_CREATED" ]; then groupdel apppw 2>/dev/null || true; fi
}
trap cleanup EXIT
# The package's layout: group apppw, the database's directory root:apppw 2770 (setgid: what
# root's "apppw create" makes there belongs to the group), Dovecot's auth process in the group
# through extra_groups (dovecot.conf below). Files that decide a login must not be writable by
# anyone else (pam_apppw(8), "Trust").
if ! getent group apppw >/dev/null; then
  groupadd --system apppw
  GROUP_CREATED=1
fi
mkdir -p "$T/run" "$T/state" "$T/home" "$T/db"
chmod 1777 "$T/home"
chown root:apppw "$T/db"
chmod 2770 "$T/db"

echo "==> Primary password service: /etc/pam.d/$PAM_SERVICE (pam_matrix, stands in for pam_unix/pam_sss)"
printf '%s:%s:%s\n' "$USER_NAME" "$NORMAL_PW" "$PAM_SERVICE" > "$T/passdb"
chmod 0644 "$T/passdb"
cat > "/etc/pam.d/$PAM_SERVICE" <<EOF
auth    required $PAM_MATRIX passdb=$T/passdb
account required $PAM_MATRIX passdb=$T/passdb
EOF

cat > "$T/apppw.toml" <<EOF
database = "$T/db/apppw.db"

[network]
campus = ["192.0.2.0/24", "2001:db8::/48"]
except = ["192.0.2.128/25"]

[primary]
pam_service = "$PAM_SERVICE"

[dovecot]
# This Dovecot's own base_dir: where apppw revoke finds it to flush its auth cache.
auth_master_socket = "$T/run/auth-master"
EOF
chmod 0644 "$T/apppw.toml"

apppw() { "$BIN/apppw" --config "$T/apppw.toml" "$@"; }
echo "==> Creating an app password: apppw create $USER_NAME phone"
APP_PW=$(apppw create "$USER_NAME" phone --json |
  sed -n 's/.*"password":"\([a-z ]*\)".*/\1/p')
[ -n "$APP_PW" ] || die "apppw create printed no password"
echo "    app password for $USER_NAME: $APP_PW   (shown once; stored only as an Argon2id hash)"

cat > "$T/dovecot.conf" <<EOF
base_dir = $T/run
state_dir = $T/state
log_path = $T/dovecot.log
instance_name = apppw-demo-$$
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Lets this script forward a client address with IMAP ID (x-originating-ip), as a proxy would.
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
passdb {
  driver = checkpassword
  args = $BIN/apppw-checkpassword --config $T/apppw.toml
}
# The checkpassword backend runs as Dovecot's auth user: group apppw reads the database.
service auth {
  extra_groups = apppw
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$T/home/%u allow_all_users=yes
}
service imap-login {
  inet_listener imap {
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
echo "==> Starting Dovecot on 127.0.0.1:$PORT (config $T/dovecot.conf)"
dovecot -c "$T/dovecot.conf" </dev/null >/dev/null 2>"$T/startup.log" ||
  { cat "$T/startup.log" >&2; die "dovecot did not start"; }
dovecot_adm() { doveadm -c "$T/dovecot.conf" "$@"; }
LOG_PATTERN='checkpassword|Login:'
}


# Dovecot 2.4: a private overlay of the Debian 13 root (scripts/trixie-root.sh jail), where
# /etc/pam.d, users and packages can be changed without touching this machine or the cache.
setup_24() {
mkdir -p "$T/share"
chmod 0755 "$T/share"
exec 7> >(exec unshare --mount --propagation private bash scripts/trixie-root.sh jail "$T" "$T/share" >"$T/holder.out")
HOLDER=$!
cleanup() {
  if [ -e "/proc/$HOLDER/root/run/dovecot/master.pid" ]; then
    in_root doveadm -c "$T/share/dovecot.conf" stop >/dev/null 2>&1 || true
  fi
  exec 7>&-
  sleep 0.2
  rm -rf "$T"
}
trap cleanup EXIT
for _ in $(seq 100); do
  [ -e "/proc/$HOLDER/root/.apppw-root" ] && break
  sleep 0.1
done
[ -e "/proc/$HOLDER/root/.apppw-root" ] || die "the Debian 13 root did not come up: $(cat "$T/holder.out")"
R=/proc/$HOLDER/root
in_root() { nsenter -t "$HOLDER" -m -r -w -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
echo "==> Dovecot $(in_root dovecot --version) in a private overlay of $TRIXIE"

echo "==> Installing this build where the package puts it: /usr/bin/apppw, pam_apppw.so"
install -m 0755 "$BIN/apppw" "$R/usr/bin/apppw"
install -m 0644 "$BIN/libpam_apppw.so" "$R/usr/lib/x86_64-linux-gnu/security/pam_apppw.so"
install -d -m 0755 "$R/etc/apppw"
install -d -m 0700 "$R/var/lib/apppw"
cat > "$R/etc/apppw/apppw.toml" <<EOF
database = "/var/lib/apppw/apppw.db"

[network]
campus = ["192.0.2.0/24", "2001:db8::/48"]
except = ["192.0.2.128/25"]
EOF
chmod 0640 "$R/etc/apppw/apppw.toml"
apppw() { in_root apppw "$@"; }

echo "==> PAM: packaging/examples/pam.d/dovecot as /etc/pam.d/imap (pam_apppw, then pam_unix)"
for s in imap smtp submission; do
  install -m 0644 packaging/examples/pam.d/dovecot "$R/etc/pam.d/$s"
done
echo "==> A user with a normal password: useradd $USER_NAME (pam_unix checks it on campus)"
in_root useradd -m -s /usr/sbin/nologin "$USER_NAME"
printf '%s:%s\n' "$USER_NAME" "$NORMAL_PW" | in_root chpasswd

echo "==> Creating an app password: apppw create $USER_NAME phone"
APP_PW=$(apppw create "$USER_NAME" phone --json | sed -n 's/.*"password":"\([a-z ]*\)".*/\1/p')
[ -n "$APP_PW" ] || die "apppw create printed no password"
echo "    app password for $USER_NAME: $APP_PW   (shown once; stored only as an Argon2id hash)"

install -m 0644 packaging/examples/dovecot-2.4/auth-apppw-pam.conf.ext "$R/etc/dovecot/conf.d/"
cat > "$T/share/dovecot.conf" <<EOF
dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
log_path = $T/share/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_verbose = yes
# As many sites do: Dovecot's auth cache on. The shipped example keeps apppw out of it.
auth_cache_size = 1M
# Lets this script forward a client address with IMAP ID (x-originating-ip), as a proxy would.
login_trusted_networks = 127.0.0.0/8
mail_driver = maildir
mail_path = ~/Maildir
# The shipped example, unchanged.
!include /etc/dovecot/conf.d/auth-apppw-pam.conf.ext
service imap-login {
  inet_listener imap {
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
echo "==> Starting Dovecot 2.4 on 127.0.0.1:$PORT (config $T/share/dovecot.conf)"
in_root dovecot -c "$T/share/dovecot.conf" </dev/null >/dev/null 2>"$T/startup.log" ||
  { cat "$T/startup.log" >&2; die "dovecot did not start"; }
dovecot_adm() { in_root doveadm -c "$T/share/dovecot.conf" "$@"; }
LOG_PATTERN='pam_authenticate|Logged in'
}

if [ "$VERSION" = 2.3 ]; then setup_23; else setup_24; fi
for _ in $(seq 100); do
  (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

# doveadm auth test with a chosen client address: prints "accepted" or "refused".
auth_test() { # RIP USER PASS
  local code=0
  dovecot_adm auth test -x service=imap -x "rip=$1" "$2" "$3" >/dev/null 2>&1 || code=$?
  case $code in
    0) echo accepted ;;
    77) echo refused ;;
    *) echo "error($code)" ;;
  esac
}

# A real IMAP LOGIN over TCP; the client address is forwarded with ID first.
imap_login() { # RIP USER PASS
  local fd line result=
  exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
  read -r -t 10 line <&"$fd" || true
  printf 'a1 ID ("x-originating-ip" "%s")\r\n' "$1" >&"$fd"
  while read -r -t 10 line <&"$fd"; do [[ $line == "a1 "* ]] && break; done
  printf 'a2 LOGIN "%s" "%s"\r\n' "$2" "$3" >&"$fd"
  while read -r -t 20 line <&"$fd"; do
    if [[ $line == "a2 "* ]]; then result=${line#a2 }; break; fi
  done
  printf 'a3 LOGOUT\r\n' >&"$fd" 2>/dev/null || true
  exec {fd}>&-
  if [[ $result == OK* ]]; then echo accepted; else echo refused; fi
}

FAILED=0
show() { # EXPECTED ACTUAL DESCRIPTION
  if [ "$1" = "$2" ]; then
    printf '  ok    %-9s %s\n' "$2" "$3"
  else
    printf '  FAIL  %-9s %s (expected %s)\n' "$2" "$3" "$1"
    FAILED=1
  fi
}

echo
echo "==> Where is who? (apppw explain)"
for ip in $OFF $CAMPUS $EDUROAM; do
  where=$(apppw explain "$ip")
  printf '  %-13s %s\n' "$ip" "${where%%$'\n'*}"
done

echo
echo "==> Logins (doveadm auth test -x service=imap -x rip=IP, and real IMAP LOGIN)"
show accepted "$(auth_test $OFF "$USER_NAME" "$APP_PW")"       "app password,    off campus $OFF   (doveadm)"
show accepted "$(imap_login $OFF "$USER_NAME" "$APP_PW")"      "app password,    off campus $OFF   (IMAP LOGIN)"
show refused  "$(auth_test $OFF "$USER_NAME" "$NORMAL_PW")"    "normal password, off campus $OFF   (doveadm)"
show refused  "$(imap_login $OFF "$USER_NAME" "$NORMAL_PW")"   "normal password, off campus $OFF   (IMAP LOGIN)"
show accepted "$(auth_test $CAMPUS "$USER_NAME" "$NORMAL_PW")" "normal password, campus     $CAMPUS    (doveadm)"
show accepted "$(imap_login $CAMPUS "$USER_NAME" "$NORMAL_PW")" "normal password, campus     $CAMPUS    (IMAP LOGIN)"
show refused  "$(auth_test $EDUROAM "$USER_NAME" "$NORMAL_PW")" "normal password, eduroam    $EDUROAM   (doveadm)"
show refused  "$(auth_test $OFF6 "$USER_NAME" "$NORMAL_PW")"   "normal password, off campus $OFF6 (doveadm)"
show accepted "$(auth_test $EDUROAM "$USER_NAME" "$APP_PW")"   "app password,    eduroam    $EDUROAM   (doveadm)"

echo
echo "==> Revoking the app password: apppw revoke $USER_NAME phone"
apppw revoke "$USER_NAME" phone | sed 's/^/    /'
show refused "$(auth_test $OFF "$USER_NAME" "$APP_PW")"        "revoked app password, next attempt  (doveadm)"

echo
echo "==> Dovecot's log of the attempts"
cat "$T/dovecot.log" "$T/share/dovecot.log" 2>/dev/null | grep -E "$LOG_PATTERN" | sed 's/^/  /' |
  tail -n 12 || true
echo
if [ "$FAILED" != 0 ]; then
  echo "demo: FAILED: some outcomes were not as expected (Dovecot log above)" >&2
  exit 1
fi
echo "demo: all outcomes as expected"
