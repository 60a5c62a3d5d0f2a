#!/bin/bash
# Installs what building and testing apppw needs on Debian/Ubuntu (run as root).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config libpam0g-dev   # building the PAM module and the PAM client
  libssl-dev openssl                        # TLS to PostgreSQL; test certificates
  libsodium-dev                             # Argon2id (linked dynamically: libsodium23)
  dovecot-core dovecot-imapd                # the real Dovecot the tests start
  pamtester libpam-wrapper                  # real PAM stacks without touching /etc/pam.d
  postfix swaks                             # SMTP AUTH through Dovecot SASL
  dpkg-dev lintian man-db fail2ban          # building and checking the .deb, man pages, filter
  sqlite3 python3 ca-certificates
  postgresql                                # the shared store for several mail servers
  pgbouncer                                 # apppw behind a transaction-pooling PgBouncer
  chromium chromium-driver                  # the self-service page in a real browser
  debootstrap                               # the Debian 13 root with Dovecot 2.4 (trixie-root.sh)
  systemd curl                              # apppw-web package test: socket activation, unit rating
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks how to configure itself; the tests run their own instance.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  # Packages' own services (Dovecot, ...) must not start: tests run throwaway instances.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged Dovecot may have been started by its postinst; it would hold ports 143/993.
# (Tests start their own PostgreSQL clusters; the packaged one is not used.)
for svc in dovecot postfix postgresql pgbouncer; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
# Dovecot 2.4 for its tests: a Debian 13 root, made once (about 80 s) and reused.
if [ "$(id -u)" = 0 ]; then
  bash "$(dirname "$0")/trixie-root.sh" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust 1.85+) is required" >&2; exit 1; }
echo "setup: ok"
