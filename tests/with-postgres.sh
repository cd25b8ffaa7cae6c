#!/usr/bin/env bash
# Runs a command (the test suite) with DATABASE_URL pointing at a throwaway
# PostgreSQL server on 127.0.0.1, stopped and removed afterwards.
#
# With DATABASE_URL already set, that server is used as it is. Without a
# PostgreSQL server installed, the database tests fail (never pass silently).
set -euo pipefail

if [[ -n "${DATABASE_URL:-}" ]]; then
    exec "$@"
fi

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$PG_BIN" || ! -x "$PG_BIN/initdb" ]]; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "with-postgres: no PostgreSQL server installed (apt-get install postgresql); CI needs one" >&2
        exit 1
    fi
    echo "with-postgres: no PostgreSQL server installed (apt-get install postgresql); the database tests will fail" >&2
    exec "$@"
fi

DIR=$(mktemp -d /tmp/gm-pipeline-pg.XXXXXX)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
AS=()
if [[ $(id -u) == 0 ]]; then
    # initdb refuses to run as root.
    chown postgres "$DIR"
    AS=(runuser -u postgres --)
fi
stop() {
    "${AS[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap stop EXIT

"${AS[@]}" "$PG_BIN/initdb" -D "$DIR/data" -U gm --auth=trust --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }

# TLS for the sslmode tests: a CA, a server certificate for "localhost" only
# (so 127.0.0.1 fails verify-full), and a second CA that signed nothing.
# The role gm_tls may connect over TLS only, which proves a connection was encrypted.
command -v openssl >/dev/null || { echo "with-postgres: openssl is needed for the TLS tests (apt-get install openssl)" >&2; exit 1; }
TLS="$DIR/tls"
mkdir -p "$TLS"
(
    cd "$TLS"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=gm-test-ca" -keyout ca.key -out ca.crt
    openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=gm-other-ca" -keyout other.key -out other-ca.crt
    openssl req "${ec[@]}" -subj "/CN=localhost" -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.crt
    chmod 600 server.key
) >"$DIR/tls.log" 2>&1 || { cat "$DIR/tls.log" >&2; exit 1; }
[[ $(id -u) == 0 ]] && chown -R postgres "$TLS"
{
    echo "hostnossl all gm_tls 127.0.0.1/32 reject"
    echo "hostssl   all gm_tls 127.0.0.1/32 trust"
    cat "$DIR/data/pg_hba.conf"
} > "$DIR/pg_hba.conf"
"${AS[@]}" cp "$DIR/pg_hba.conf" "$DIR/data/pg_hba.conf"

"${AS[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
        -c ssl=on -c ssl_cert_file=$TLS/server.crt -c ssl_key_file=$TLS/server.key" start >/dev/null \
    || { cat "$DIR/server.log" >&2; exit 1; }
psql -h 127.0.0.1 -p "$PORT" -U gm -d postgres -qc "CREATE ROLE gm_tls LOGIN SUPERUSER" >/dev/null
export PG_TEST_TLS_DIR="$TLS"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U gm gm_test

export DATABASE_URL="postgresql://gm@127.0.0.1:$PORT/gm_test"
echo "with-postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
"$@"
