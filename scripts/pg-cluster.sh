#!/bin/bash
# A throwaway PostgreSQL cluster for the tests (not for production):
#   pg-cluster.sh start DIR [--tls]
#                             initdb into DIR, start on a free loopback port with trust
#                             authentication, print the URL of its `postgres` database;
#                             with --tls: TCP over TLS only (a test CA made by `certs`), and
#                             the URL says sslmode=verify-full
#   pg-cluster.sh stop DIR    stop it and remove DIR
#   pg-cluster.sh certs DIR   make test certificates in DIR: ca.pem (a CA), server.pem and
#                             server.key (for localhost and 127.0.0.1, signed by ca.pem),
#                             client.pem and client.key (for the role apppw_cert), other-ca.pem
#                             (a CA that signed nothing here)
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail
cmd=${1:?start|stop|certs} dir=${2:?DIR} tls=${3:-}
if [ -n "$tls" ] && [ "$cmd $tls" != "start --tls" ]; then
  echo "usage: pg-cluster.sh start DIR [--tls] | stop DIR | certs DIR" >&2
  exit 2
fi
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

certs() {
  local d=$1
  mkdir -p "$d"
  chmod 755 "$d"
  cat >"$d/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
CNF
  local ossl=(openssl req -config "$d/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1
    -noenc)
  for ca in ca other-ca; do
    "${ossl[@]}" -x509 -days 2 -subj "/CN=apppw test $ca" -extensions ca \
      -keyout "$d/$ca.key" -out "$d/$ca.pem" 2>/dev/null
  done
  local serial=1
  for leaf in server:localhost client:apppw_cert; do
    local name=${leaf%%:*} cn=${leaf#*:}
    "${ossl[@]}" -subj "/CN=$cn" -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -days 2 \
      -set_serial $((serial += 1)) -extfile "$d/openssl.cnf" -extensions "$name" \
      -out "$d/$name.pem" 2>/dev/null
  done
  rm -f "$d"/*.csr "$d/ca.key" "$d/other-ca.key" "$d/openssl.cnf"
  chmod 644 "$d"/*.pem
  chmod 600 "$d"/*.key
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$d/server.key"; fi
}

case $cmd in
start)
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/initdb" ] || { echo "pg-cluster: PostgreSQL server not installed (apt-get install postgresql)" >&2; exit 1; }
  mkdir -p "$dir"
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
  as_server "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync \
    --no-instructions >"$dir/initdb.log"
  ssl=() query=""
  if [ "$tls" = --tls ]; then
    certs "$dir/tls"
    # TLS only over TCP, so that whatever works went through it.
    { echo "hostnossl all all 127.0.0.1/32 reject"; cat "$dir/data/pg_hba.conf"; } >"$dir/hba"
    mv "$dir/hba" "$dir/data/pg_hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir/data/pg_hba.conf"; fi
    ssl=(-c ssl=on -c "ssl_cert_file=$dir/tls/server.pem" -c "ssl_key_file=$dir/tls/server.key")
    query="&sslmode=verify-full&sslrootcert=$dir/tls/ca.pem"
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "-p $port -k $dir \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=300 ${ssl[*]}" start >/dev/null
  echo "postgresql://postgres@127.0.0.1:$port/postgres?connect_timeout=2$query"
  ;;
stop)
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -d "$dir/data" ]; then
    as_server "$bin/pg_ctl" -D "$dir/data" -w -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
certs)
  certs "$dir"
  ;;
*)
  echo "usage: pg-cluster.sh start DIR [--tls] | stop DIR | certs DIR" >&2
  exit 2
  ;;
esac
