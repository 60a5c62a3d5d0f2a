#!/bin/bash
# Benchmarks apppw's login paths against their peers on this machine and prints Markdown tables
# (see docs/performance.md). Run as root from anywhere in a checkout:
#
#   bench/run.sh [--n N] [--seconds S] [--clients 1,2,8,32] [--big-users 100000]
#                [--only argon,lib,cp,pam,dovecot] [--plot FILE.svg]
#
# --plot FILE.svg also draws the throughput rows (logins/s against clients) with bench/plot.py.
#
# Builds the release binaries and the PAM harness, starts throwaway Dovecot instances (loopback,
# no mail listeners) and a throwaway PostgreSQL cluster (scripts/pg-cluster.sh: loopback TCP and
# a unix socket; its rows are skipped with a note when the server is not installed), creates a
# throwaway system user for the pam_unix row, and removes all of it on exit. Takes about two
# minutes with the defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: run as root (throwaway Dovecot instances and a throwaway user for pam_unix)" >&2
  exit 1
fi
for tool in cargo gcc dovecot doveadm useradd userdel chpasswd; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required (scripts/setup.sh)" >&2; exit 1; }
done

# --plot is ours; everything else goes to apppw-bench.
PLOT=""
ARGS=()
while (($#)); do
  case "$1" in
    --plot) PLOT="$2"; shift 2 ;;
    --plot=*) PLOT="${1#--plot=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
set -- "${ARGS[@]}"
if [ -n "$PLOT" ]; then
  command -v python3 >/dev/null || { echo "run.sh: --plot needs python3" >&2; exit 1; }
  PLOT=$(realpath -m "$PLOT")
fi

WORK=$(mktemp -d /tmp/apppw-bench.XXXXXX)
chmod 755 "$WORK"          # Dovecot's unprivileged auth process reads the instance files
UNIX_USER="apppwb$$"
UNIX_USER_CREATED=""
PG_DIR=""

cleanup() {
  local conf pidf pid i
  if [ -n "$PG_DIR" ]; then
    "$ROOT/scripts/pg-cluster.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
  fi
  for conf in "$WORK"/dovecot-*/dovecot.conf; do
    [ -f "$conf" ] && doveadm -c "$conf" stop >/dev/null 2>&1 || true
  done
  for pidf in "$WORK"/dovecot-*/run/master.pid; do
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf" 2>/dev/null || true)
    [ -n "$pid" ] || continue
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill "$pid" 2>/dev/null || true
  done
  # Argon2 admission gates of the run's configs: System V semaphore sets outlive their
  # processes (apppw-bench removes them itself unless it was killed).
  find "$WORK" -name argon2-gate -type f 2>/dev/null | while read -r gate; do
    id=$(sed -n 's/.* semid=\([0-9]*\)$/\1/p' "$gate")
    [ -n "$id" ] && ipcrm -s "$id" 2>/dev/null || true
  done
  if [ -n "$UNIX_USER_CREATED" ]; then
    userdel "$UNIX_USER" >/dev/null 2>&1 || true
  fi
  # PAM service files of the passdb pam rows, named after the benchmark's pid: left behind
  # only if it was killed.
  for f in /etc/pam.d/apppw-bench-*; do
    [ -f "$f" ] || continue
    pid=${f##*-}
    kill -0 "$pid" 2>/dev/null || rm -f "$f"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "run.sh: building (release)" >&2
cargo build --release --quiet -p apppw -p apppw-checkpassword -p pam_apppw -p apppw-bench >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
gcc -O2 -Wall -Wextra -o "$WORK/pam_bench" "$ROOT/bench/pam_bench.c" -lpam
gcc -O2 -Wall -Wextra -o "$WORK/bare_verify" "$ROOT/bench/bare_verify.c" -lsodium

PAM_ARGS=()
if id "$UNIX_USER" >/dev/null 2>&1; then
  echo "run.sh: user $UNIX_USER exists already; skipping the pam_unix row" >&2
else
  useradd --no-create-home --shell /usr/sbin/nologin "$UNIX_USER"
  UNIX_USER_CREATED=1
  APPPW_BENCH_UNIX_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  export APPPW_BENCH_UNIX_PASSWORD
  echo "$UNIX_USER:$APPPW_BENCH_UNIX_PASSWORD" | chpasswd   # the system's default hash
  PAM_ARGS=(--unix-user "$UNIX_USER")
fi

# PostgreSQL rows: a throwaway cluster (trust authentication, loopback only), one database that
# `apppw create` fills through a config pointing at it (apppw-bench does that).
PG_ARGS=()
PG_INFO="not measured"
sections=$(printf '%s\n' "$@" | sed -n 's/^--only=//p; /^--only$/{n;p}' | tail -n 1)
if [ -n "$sections" ] && ! printf '%s' "$sections" | grep -qE '(^|,)(lib|cp|pam)(,|$)'; then
  PG_INFO="not requested"
elif ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  PG_INFO="not installed: PostgreSQL rows skipped"
  PG_ARGS=(--pg-skip "PostgreSQL server not installed (package postgresql)")
  echo "run.sh: PostgreSQL server not installed; skipping the PostgreSQL rows" >&2
elif ! id postgres >/dev/null 2>&1; then
  PG_INFO="no postgres user: PostgreSQL rows skipped"
  PG_ARGS=(--pg-skip "no postgres user to run the server as")
  echo "run.sh: no postgres user; skipping the PostgreSQL rows" >&2
else
  PG_DIR="$WORK/pg"
  admin_url=$("$ROOT/scripts/pg-cluster.sh" start "$PG_DIR")
  port=$(printf '%s' "$admin_url" | sed -n 's|.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p')
  psql -X -q -v ON_ERROR_STOP=1 -d "$admin_url" -c 'CREATE DATABASE apppw_bench' >/dev/null
  PG_ARGS=(--pg-url "postgresql://postgres@127.0.0.1:$port/apppw_bench?connect_timeout=2"
           --pg-socket-url "postgresql://postgres@/apppw_bench?host=$PG_DIR&port=$port&connect_timeout=2")
  PG_INFO="$("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version), throwaway cluster (fsync=off, synchronous_commit=off), TCP 127.0.0.1 and unix socket"
fi

psi() { sed -n 's/^some .*avg60=\([0-9.]*\).*/\1%/p' "/proc/pressure/$1" 2>/dev/null || echo unknown; }
thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)
busy=$(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|ld)$' || true)
cat <<INFO
# apppw benchmark

| machine | |
|---|---|
| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |
| nproc | $(nproc) |
| kernel | $(uname -r) |
| transparent huge pages | $thp |
| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |
| CPU / IO pressure at start (PSI some avg60) | $(psi cpu) / $(psi io) |
| compiler/linker processes running at start | $busy |
| rustc | $(rustc --version 2>/dev/null || echo unknown) |
| Dovecot | $(dovecot --version 2>/dev/null || echo unknown) |
| PostgreSQL | $PG_INFO |

INFO

"$BIN/apppw-bench" --bin-dir "$BIN" --work "$WORK" --pam-harness "$WORK/pam_bench" \
  --bare-verify "$WORK/bare_verify" \
  --csv "$WORK/throughput.csv" "${PAM_ARGS[@]}" "${PG_ARGS[@]}" "$@"
if [ -n "$PLOT" ] && [ -s "$WORK/throughput.csv" ]; then
  python3 "$ROOT/bench/plot.py" "$WORK/throughput.csv" "$PLOT" \
    "Logins/s through a Dovecot auth socket, $(nproc) cores"
  cp "$WORK/throughput.csv" "${PLOT%.svg}.csv"
  echo "run.sh: wrote $PLOT" >&2
fi

echo
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg); CPU / IO pressure (PSI some avg60): $(psi cpu) / $(psi io)"
