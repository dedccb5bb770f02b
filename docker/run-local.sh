#!/usr/bin/env bash
# `make run`: start a private redis-server (docker/redis.conf: AOF with
# appendfsync always, noeviction; unix socket and data under var/) unless
# CHATGATE_REDIS_URL is set, then the gateway in the foreground, serving
# the web client from its build tree (the compiled-in default web root).
# Once it is ready, two demo accounts are created if they do not exist yet.
# Ctrl-C stops both.
set -euo pipefail

bin=${1:?usage: run-local.sh path/to/chatgate [gateway flags...]}
shift
top=$(cd "$(dirname "$0")/.." && pwd)
var="$top/var"
mkdir -p "$var/redis"

redis_pid=
cleanup() {
  [ -n "${gw_pid:-}" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  fi
  true
}
trap cleanup EXIT INT TERM

if [ -z "${CHATGATE_REDIS_URL:-}" ]; then
  sock="$var/redis/redis.sock"
  redis-server "$top/docker/redis.conf" --port 0 --unixsocket "$sock" \
    --unixsocketperm 700 --dir "$var/redis" --daemonize no \
    --logfile "$var/redis/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || { echo "redis-server did not start: see $var/redis/redis.log" >&2; exit 1; }
  export CHATGATE_REDIS_URL="unix://$sock"
  echo "redis: private redis-server on $sock (data in var/redis)"
fi

listen=${CHATGATE_LISTEN:-127.0.0.1:8080}
"$bin" "$@" &
gw_pid=$!

base=${CHATGATE_BASE_PATH:-}
for _ in $(seq 100); do
  curl -fsS "http://$listen$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$gw_pid" 2>/dev/null || { wait "$gw_pid"; exit 1; }
  sleep 0.1
done

# Two demo accounts so a new user can chat with themself in two windows.
# 201 (created) or 409 (already there) are both fine.
demo_password=demo-password-1
for demo_user in demo-alice demo-bob; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"username\":\"$demo_user\",\"password\":\"$demo_password\"}" \
    "http://$listen$base/api/register" 2>/dev/null || true)
  case $code in
    201|409) ;;
    *) echo "note: could not create the demo account $demo_user (HTTP $code)" >&2 ;;
  esac
done

url="http://${listen/127.0.0.1/localhost}$base/"
echo
echo "chatgate is running: open $url in two windows"
echo "and log in as demo-alice and demo-bob (password: $demo_password)."
echo "Ctrl-C stops the gateway and its redis-server."
wait "$gw_pid"
