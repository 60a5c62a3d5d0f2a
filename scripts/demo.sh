#!/usr/bin/env bash
# apppw demo: a throwaway Dovecot 2.3 on a loopback port with apppw-checkpassword as passdb.
#
# Shows, with real logins:
#   - an app password from off campus: accepted (doveadm auth test and a real IMAP LOGIN);
#   - the normal password from off campus: refused;
#   - the normal password from campus: accepted (checked by a pam_matrix-backed PAM service
#     standing in for the site's password service);
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
[ "$(id -u)" = 0 ] || die "run as root (starts Dovecot as root, writes a file in /etc/pam.d)"
bash scripts/setup.sh
for cmd in cargo dovecot doveadm; do
  command -v "$cmd" >/dev/null || die "$cmd not found; run scripts/setup.sh first"
done
REPLY_PROGRAM=/usr/lib/dovecot/checkpassword-reply
[ -x "$REPLY_PROGRAM" ] || die "$REPLY_PROGRAM missing (dovecot-core 2.3 required)"
PAM_MATRIX=$(ls /usr/lib/*/pam_wrapper/pam_matrix.so 2>/dev/null | head -n1 || true)
[ -n "$PAM_MATRIX" ] || die "pam_matrix.so not found (apt-get install libpam-wrapper)"
getent group dovecot >/dev/null || die "group dovecot missing (is dovecot-core installed?)"

USER_NAME=alice
NORMAL_PW='Winter2026!'
OFF=203.0.113.9        # off campus
CAMPUS=192.0.2.10      # campus
EDUROAM=192.0.2.200    # inside campus, but in an except network

echo "==> Building (cargo build --release --workspace)"
cargo build --release --workspace --quiet
BIN=$ROOT/target/release
APPPW=$BIN/apppw

T=$(mktemp -d /tmp/apppw-demo.XXXXXX)
PAM_SERVICE=apppw-demo-$$
cleanup() {
  if [ -f "$T/run/master.pid" ]; then
    doveadm -c "$T/dovecot.conf" stop >/dev/null 2>&1 || true
  fi
  rm -f "/etc/pam.d/$PAM_SERVICE"
  rm -rf "$T"
}
trap cleanup EXIT
chmod 0755 "$T"
mkdir -p "$T/run" "$T/state" "$T/home" "$T/db"
chmod 1777 "$T/home"
# The database directory as the docs recommend: the dovecot group may create SQLite's
# -wal/-shm files next to the database.
chown root:dovecot "$T/db"
chmod 0770 "$T/db"

# A free unprivileged port (nothing answers on it).
PORT=
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || die "no free port found"

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
EOF
chmod 0644 "$T/apppw.toml"

echo "==> Creating an app password: apppw create $USER_NAME phone"
APP_PW=$("$APPPW" --config "$T/apppw.toml" create "$USER_NAME" phone --json |
  sed -n 's/.*"password":"\([a-z ]*\)".*/\1/p')
[ -n "$APP_PW" ] || die "apppw create printed no password"
echo "    app password for $USER_NAME: $APP_PW   (shown once; stored only as an Argon2id hash)"
chgrp dovecot "$T/db/apppw.db"
chmod 0660 "$T/db/apppw.db"

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
for _ in $(seq 100); do
  (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

# doveadm auth test with a chosen client address: prints "accepted" or "refused".
auth_test() { # RIP USER PASS
  local code=0
  doveadm -c "$T/dovecot.conf" auth test -x service=imap -x "rip=$1" "$2" "$3" >/dev/null 2>&1 || code=$?
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
  where=$("$APPPW" --config "$T/apppw.toml" explain "$ip")
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
show accepted "$(auth_test $EDUROAM "$USER_NAME" "$APP_PW")"   "app password,    eduroam    $EDUROAM   (doveadm)"

echo
echo "==> Revoking the app password: apppw revoke $USER_NAME phone"
"$APPPW" --config "$T/apppw.toml" revoke "$USER_NAME" phone >/dev/null
show refused "$(auth_test $OFF "$USER_NAME" "$APP_PW")"        "revoked app password, next attempt  (doveadm)"

echo
echo "==> Dovecot's log of the attempts"
grep -E 'checkpassword|Login:' "$T/dovecot.log" | sed 's/^/  /' | tail -n 12 || true
echo
if [ "$FAILED" != 0 ]; then
  echo "demo: FAILED: some outcomes were not as expected (Dovecot log above)" >&2
  exit 1
fi
echo "demo: all outcomes as expected"
