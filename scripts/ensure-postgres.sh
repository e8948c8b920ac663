#!/usr/bin/env sh
# Start the local Debian PostgreSQL cluster if needed and make a throwaway test database.
# Prints the SQLAlchemy URL for it on stdout; prints nothing (exit 0) if PostgreSQL is unavailable.
set -e
[ -x /usr/bin/pg_ctlcluster ] || exit 0
cluster=$(pg_lsclusters -h 2>/dev/null | head -n 1)
if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    pg_createcluster "$version" main >/dev/null
    cluster=$(pg_lsclusters -h | head -n 1)
fi
set -- $cluster
version=$1; name=$2; port=$3; state=$4
[ "$state" = online ] || pg_ctlcluster "$version" "$name" start >&2
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -n -u postgres sh -c "$1"; fi; }
as_postgres "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='alarmbot'\" | grep -q 1 || psql -p $port -qc \"CREATE ROLE alarmbot LOGIN PASSWORD 'alarmbot' CREATEDB\"" >&2
as_postgres "psql -p $port -qc 'DROP DATABASE IF EXISTS alarmbot_test' && psql -p $port -qc 'CREATE DATABASE alarmbot_test OWNER alarmbot'" >&2
echo "postgresql+asyncpg://alarmbot:alarmbot@127.0.0.1:$port/alarmbot_test"
