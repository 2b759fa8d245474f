#!/usr/bin/env bash
# pg-local.sh — a throwaway PostgreSQL 15 server for trying gpunas's shared store and
# work queue (README "Many machines") on one machine.
#
#   scripts/pg-local.sh start DIR   initdb into DIR/data if absent, start the server,
#                                   create database gpunas if missing, print the URI
#   scripts/pg-local.sh stop DIR    pg_ctl stop -m fast
#   scripts/pg-local.sh url DIR     print the URI: postgresql:///gpunas?host=DIR&user=gpunas
#
# The server listens on a Unix socket in DIR only (listen_addresses = ''), with trust
# authentication for superuser gpunas: anyone on this machine who can reach DIR can
# connect, nobody elsewhere can.  It is for experiments, not for keeping results.
# PostgreSQL refuses to run as root, so as root it runs as user nobody (DIR is handed
# to nobody, and nobody must be able to reach DIR: e.g. /tmp/gnpg, not under /root).
# Logs: DIR/initdb.log, DIR/server.log.  PG_BIN overrides /usr/lib/postgresql/15/bin
# (package postgresql-15, installed by scripts/deps.sh).  Errors: one line, exit 1;
# bad usage exit 2.
set -euo pipefail

PROG=pg-local.sh
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

die() { echo "$PROG: $*" >&2; exit 1; }
usage() { echo "usage: scripts/pg-local.sh start DIR | stop DIR | url DIR" >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $cmd in start | stop | url) ;; *) usage ;; esac

# the URI carries DIR unencoded: keep to characters that need no percent-encoding
case $dir in
  *[!A-Za-z0-9._/-]*) die "$dir: use a folder name of letters, digits and . _ / - only (it goes into the URI)" ;;
esac
if [ "$cmd" = start ]; then
  mkdir -p -- "$dir" || die "$dir: cannot create the folder"
fi
[ -d "$dir" ] || die "$dir: no such folder"
dir=$(cd -- "$dir" && pwd -P) || die "$2: cannot resolve the folder"
# the socket DIR/.s.PGSQL.5432 must fit in sun_path (107 bytes)
[ $((${#dir} + 13)) -le 107 ] || die "$dir: path too long for a Unix socket (at most 94 characters)"

uri="postgresql:///gpunas?host=$dir&user=gpunas"
data=$dir/data

as=()
if [ "$(id -u)" = 0 ]; then
  id nobody >/dev/null 2>&1 || die "running as root and there is no user nobody to run PostgreSQL as"
  as=(runuser -u nobody --)
fi

running() { "${as[@]}" "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; }

case $cmd in
url)
  [ -f "$data/PG_VERSION" ] || die "$dir: no server here (run: scripts/pg-local.sh start $dir)"
  echo "$uri"
  ;;

stop)
  [ -f "$data/PG_VERSION" ] || die "$dir: no server here"
  [ -x "$PG_BIN/pg_ctl" ] || die "$PG_BIN/pg_ctl not found (package postgresql-15: bash scripts/deps.sh)"
  if ! running; then
    echo "$PROG: $dir: not running" >&2
    exit 0
  fi
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    die "$dir: pg_ctl stop failed, see $dir/server.log"
  ;;

start)
  for b in initdb pg_ctl pg_isready psql; do
    [ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b not found (package postgresql-15: bash scripts/deps.sh)"
  done
  if [ ${#as[@]} -gt 0 ]; then
    chown nobody: "$dir" || die "$dir: cannot hand the folder to user nobody"
    chmod 0755 "$dir"
    "${as[@]}" test -w "$dir" -a -x "$dir" ||
      die "$dir: user nobody cannot reach or write the folder (a parent is closed to it; try a folder under /tmp)"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    [ ! -e "$data" ] || die "$data exists but is not a PostgreSQL data folder"
    "${as[@]}" "$PG_BIN/initdb" -D "$data" -U gpunas --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
      die "$dir: initdb failed, see $dir/initdb.log"
    cat >>"$data/postgresql.conf" <<EOF || die "$data/postgresql.conf: cannot write"

# scripts/pg-local.sh: Unix socket in $dir only, no TCP
listen_addresses = ''
unix_socket_directories = '$dir'
EOF
  fi
  if ! running; then
    "${as[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1 ||
      die "$dir: pg_ctl start failed, see $dir/server.log"
  fi
  ok=
  for _ in $(seq 1 60); do
    if "$PG_BIN/pg_isready" -q -h "$dir" -U gpunas -d postgres; then ok=1; break; fi
    sleep 0.5
  done
  [ -n "$ok" ] || die "$dir: the server did not become ready within 30 s, see $dir/server.log"
  psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -U gpunas -d postgres -tA)
  have=$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'gpunas'" 2>&1) ||
    die "$dir: cannot query the server: ${have//$'\n'/ }"
  if [ "$have" != 1 ]; then
    out=$("${psql[@]}" -c "CREATE DATABASE gpunas" 2>&1) || die "$dir: CREATE DATABASE gpunas: ${out//$'\n'/ }"
  fi
  echo "$uri"
  ;;
esac
