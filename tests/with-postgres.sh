#!/usr/bin/env bash
# Runs a command (the test suite) with DATABASE_URL pointing at a throwaway
# PostgreSQL server on 127.0.0.1, stopped and removed afterwards.
#
# With DATABASE_URL already set, that server is used as it is. Without a
# PostgreSQL server installed, the database tests skip and say so, except in
# CI (CI=true), where that is an error.
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
    echo "with-postgres: no PostgreSQL server installed; the database tests will say they were skipped" >&2
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
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$DIR/server.log" >&2; exit 1; }
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U gm gm_test

export DATABASE_URL="postgresql://gm@127.0.0.1:$PORT/gm_test"
echo "with-postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
"$@"
