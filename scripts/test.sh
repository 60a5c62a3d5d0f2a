#!/bin/bash
# Runs every test: unit, property, CLI, checkpassword and PAM against real Dovecot and PAM,
# then the integration tests again with PostgreSQL as the store.
# Needs the packages of scripts/setup.sh; the Dovecot and /etc/pam.d tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Dovecot 2.4 tests run in the Debian 13 root of scripts/trixie-root.sh (setup.sh makes it).
# Named here, a missing root fails those tests instead of skipping them.
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
  APPPW_TRIXIE_ROOT=$(bash scripts/trixie-root.sh)
  export APPPW_TRIXIE_ROOT
fi
cargo build --release --workspace --locked
cargo test --release --workspace --locked

# The README's demo as a user runs it, on both Dovecot versions: it must keep working.
if [ "$(id -u)" = 0 ]; then
  bash scripts/demo.sh --dovecot 2.3
  if [ -n "${APPPW_TRIXIE_ROOT:-}" ]; then
    bash scripts/demo.sh --dovecot 2.4
  fi
fi

# The PostgreSQL round: one throwaway cluster, a fresh database per test environment, reached
# over TLS only (sslmode=verify-full). The package, self-service, soak and fault tests are
# about SQLite files and stay in the first round; tests/tests/postgres.rs (above) covers what
# is PostgreSQL's own.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "SKIP PostgreSQL round: PostgreSQL server not installed (scripts/setup.sh)"
  exit 0
fi
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/apppw-pg.XXXXXX")
trap 'scripts/pg-cluster.sh stop "$pgdir"' EXIT
url=$(scripts/pg-cluster.sh start "$pgdir" --tls)
echo "PostgreSQL round: $url"
APPPW_TEST_STORE=postgres APPPW_TEST_PG_URL=$url \
  cargo test --release --locked -p apppw-integration-tests \
  --test cli --test checkpassword --test pam --test pam_host --test dovecot_checkpassword \
  --test rollout \
  --test dovecot_pam --test dovecot24
