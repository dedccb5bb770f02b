#!/usr/bin/env bash
# bench/run-compare.sh - chatgate vs RabbitMQ Web-STOMP, side by side, in one
# invocation, with the same load generator and the same parameters.
#
#   bench/run-compare.sh [quick]        (quick: small matrix, for a smoke test)
#
# What it does, in order:
#   1. builds a Release tree in build/bench (gateway + chatgate_loadgen)
#      unless CHATGATE_BIN / LOADGEN_BIN point at existing binaries;
#   2. installs rabbitmq-server from Debian if it is missing (apt-get);
#   3. starts a private redis-server (docker/redis.conf: appendonly yes,
#      appendfsync always, noeviction; unix socket only, no TCP port) and
#      the gateway on 127.0.0.1 (--password-iterations 1000 so that
#      registering thousands of bench users is quick; --send-rate and
#      --send-burst raised so the per-connection rate limit does not cap a
#      benchmark);
#   4. starts a private RabbitMQ node (data in the output directory) bound to
#      127.0.0.1 only: AMQP, STOMP, Web-STOMP and Erlang distribution
#      listeners on loopback, epmd on loopback (ERL_EPMD_ADDRESS) on a
#      private port, rabbitmq_web_stomp enabled;
#   5. p2p (100 and 1000 users, several windows W): each configuration runs
#      on chatgate and then at once on RabbitMQ (the machine is shared and
#      its load drifts, so each pair sees the same conditions); the two
#      servers are never loaded at the same time;
#   6. both systems at half of RabbitMQ's best 100-user rate (fixed rate),
#      to compare p99 send->200 at equal load;
#   7. gateway only: fanout; backlog and idle, each on a fresh gateway
#      process; then RabbitMQ idle on a fresh node;
#   8. prints a side-by-side table; every RESULT line is kept in
#      $OUT/results.jsonl, every generator output in $OUT/*.txt.
# Everything it started is stopped on exit (trap), also on Ctrl-C.
#
# Knobs (environment): OUT (output dir, default /tmp/chatgate-bench-<time>),
# GW_PORT (28480), RABBIT_PORT (25674), USERS_LIST ("100 1000"),
# W_LIST_100 ("1 4 16 64"), W_LIST_1000 ("1 4 16"), DURATION (10),
# WARMUP (3), IDLE_CONNS (19000), BACKLOG (100000), PROFILE (1: perf
# record the gateway and redis during one p2p run), SKIP_RABBIT (1),
# GW_PROCS (1: gateway processes, on ports GW_PORT, GW_PORT+1, ...; the
# generator spreads sessions over them. One process per core is the
# deployment ARCHITECTURE.md describes; each process has its own Redis
# connections. --reuse-port does not work with Debian's lws 4.1.6, hence
# separate ports), GW_ONLY_P2P (1: only the gateway p2p matrix), GW_RATES
# (with GW_ONLY_P2P: fixed total rates to run after it, e.g. "1000 2000"),
# P2P_ONLY (1: both systems' p2p matrix and the equal-load latency run,
# then the table; no profile, fanout, backlog or idle).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-full}
OUT=${OUT:-/tmp/chatgate-bench-$(date +%Y%m%d-%H%M%S)}
GW_PORT=${GW_PORT:-28480}
RABBIT_PORT=${RABBIT_PORT:-25674}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
IDLE_CONNS=${IDLE_CONNS:-19000}
BACKLOG=${BACKLOG:-100000}
PROFILE=${PROFILE:-0}
GW_PROCS=${GW_PROCS:-1}
GW_ONLY_P2P=${GW_ONLY_P2P:-0}
SKIP_RABBIT=${SKIP_RABBIT:-0}
P2P_ONLY=${P2P_ONLY:-0}
if [ "$mode" = quick ]; then
  USERS_LIST=${USERS_LIST:-"20"}
  W_LIST_100=${W_LIST_100:-"4"}
  W_LIST_1000=${W_LIST_1000:-"4"}
  DURATION=3 WARMUP=1 IDLE_CONNS=${IDLE_CONNS_QUICK:-300} BACKLOG=2000
else
  USERS_LIST=${USERS_LIST:-"100 1000"}
  W_LIST_100=${W_LIST_100:-"1 4 16 64"}
  W_LIST_1000=${W_LIST_1000:-"1 4 16"}
fi
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- build -------------------------------------------------------------
if [ -z "${CHATGATE_BIN:-}" ] || [ -z "${LOADGEN_BIN:-}" ]; then
  log "building Release tree in build/bench"
  cmake -S "$top" -B "$top/build/bench" -DCMAKE_BUILD_TYPE=Release \
        -DCHATGATE_TESTS=OFF >/dev/null
  cmake --build "$top/build/bench" -j2 --target chatgate chatgate_loadgen >/dev/null
fi
CHATGATE_BIN=${CHATGATE_BIN:-$top/build/bench/gateway/chatgate}
LOADGEN_BIN=${LOADGEN_BIN:-$top/build/bench/bench/chatgate_loadgen}

# ---- processes we start, and their cleanup -----------------------------
port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
redis_pid= gw_pid= gw_pids=() gw_ports= rabbit_started=
RDIR=$OUT/redis
RSOCK=$RDIR/redis.sock
QDIR=$OUT/rabbit

rabbit_env() {
  export HOME=$QDIR
  export RABBITMQ_NODENAME=cgbench@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$((RABBIT_PORT - 2))
  export RABBITMQ_DIST_PORT=$((RABBIT_PORT + 8))
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=$((RABBIT_PORT - 1305))
  export RABBITMQ_CONFIG_FILE=$QDIR/rabbitmq
  export RABBITMQ_MNESIA_BASE=$QDIR/mnesia
  export RABBITMQ_LOG_BASE=$QDIR/log
  export RABBITMQ_ENABLED_PLUGINS_FILE=$QDIR/enabled_plugins
  export RABBITMQ_PLUGINS_EXPAND_DIR=$QDIR/plugins-expand
  export RABBITMQ_PID_FILE=$QDIR/rabbit.pid
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

stop_gateway() {
  local p
  for p in "${gw_pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  gw_pids=()
  gw_pid=
}
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
  fi
}
stop_rabbit() {
  if [ -n "$rabbit_started" ]; then
    ( rabbit_env
      /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
      if [ -n "${rabbit_pid:-}" ]; then
        for _ in $(seq 100); do kill -0 "$rabbit_pid" 2>/dev/null || break; sleep 0.2; done
        kill "$rabbit_pid" 2>/dev/null || true
      fi
      # epmd was started by this node's erl on our private port; it exits
      # only once no node is registered with it any more.
      for _ in $(seq 50); do
        epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
        port_busy "$ERL_EPMD_PORT" || break
        sleep 0.2
      done )
    rabbit_started=
  fi
}
cleanup() {
  stop_gateway
  stop_redis
  stop_rabbit
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis() {
  mkdir -p "$RDIR"
  redis-server "$top/docker/redis.conf" --port 0 --unixsocket "$RSOCK" \
    --unixsocketperm 700 --dir "$RDIR" --daemonize no \
    --logfile "$RDIR/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do [ -S "$RSOCK" ] && break; sleep 0.05; done
  [ -S "$RSOCK" ] || { log "redis did not start: $RDIR/redis.log"; exit 1; }
  log "redis $redis_pid: appendfsync $(redis-cli -s "$RSOCK" config get appendfsync | tail -1)," \
      "appendonly $(redis-cli -s "$RSOCK" config get appendonly | tail -1)"
}

start_gateway() {
  local i port
  gw_ports=
  for i in $(seq 0 $((GW_PROCS - 1))); do
    port=$((GW_PORT + i))
    if port_busy "$port"; then
      log "127.0.0.1:$port is already in use: set GW_PORT to a free port"
      exit 1
    fi
    "$CHATGATE_BIN" --listen "127.0.0.1:$port" --redis "unix://$RSOCK" \
      --password-iterations 1000 --send-rate 100000 --send-burst 1000000 \
      --register-addr-max 100000000 --register-max 100000000 \
      --max-addr-connections 1000000 --max-addr-sockets 1000000 --max-user-sessions 100000 \
      --metrics-listen "127.0.0.1:$((GW_PORT + 1000 + i))" \
      --node-id "bench-$i" --log-level warn >> "$OUT/gateway.log" 2>&1 &
    gw_pids+=($!)
    gw_ports=${gw_ports:+$gw_ports,}$port
  done
  gw_pid=$(IFS=,; echo "${gw_pids[*]}")
  for i in $(seq 0 $((GW_PROCS - 1))); do
    port=$((GW_PORT + i))
    for _ in $(seq 100); do
      kill -0 "${gw_pids[$i]}" 2>/dev/null || { log "gateway did not start: $OUT/gateway.log"; exit 1; }
      curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && continue 2
      sleep 0.1
    done
    log "gateway did not become ready: $OUT/gateway.log"
    exit 1
  done
}

start_rabbit() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing rabbitmq-server from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  for p in "$RABBIT_PORT" $((RABBIT_PORT - 2)) $((RABBIT_PORT + 8)) $((RABBIT_PORT + 939)) \
           $((RABBIT_PORT - 1305)); do
    if port_busy "$p"; then
      log "127.0.0.1:$p (RabbitMQ) is already in use: set RABBIT_PORT to another base"
      exit 1
    fi
  done
  rm -rf "$QDIR"
  mkdir -p "$QDIR"
  cat > "$QDIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$((RABBIT_PORT - 2))
stomp.listeners.tcp.1 = 127.0.0.1:$((RABBIT_PORT + 939))
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $RABBIT_PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
EOF
  ( rabbit_env
    /usr/lib/rabbitmq/bin/rabbitmq-plugins --offline enable rabbitmq_web_stomp >/dev/null
    /usr/lib/rabbitmq/bin/rabbitmq-server > "$QDIR/server.out" 2>&1 & )
  rabbit_started=1
  for _ in $(seq 120); do
    [ -s "$QDIR/rabbit.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$RABBIT_PORT/ws" && break
    sleep 0.5
  done
  ( rabbit_env; /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" await_startup \
      >/dev/null 2>&1 )
  rabbit_pid=$(cat "$QDIR/rabbit.pid")
  # (Not rabbitmqctl here: outside rabbit_env it would start a default
  # epmd on all interfaces.)
  log "rabbitmq $rabbit_pid: $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)," \
      "web-stomp on 127.0.0.1:$RABBIT_PORT"
}

machine_line() {
  printf 'uptime: %s\n' "$(uptime)"
}

# lg NAME ARGS...: one generator run, output kept, RESULT line collected.
lg() {
  local name=$1; shift
  log "run $name: $*"
  machine_line > "$OUT/$name.txt"
  "$LOADGEN_BIN" "$@" --label "$name" >> "$OUT/$name.txt" 2>&1 || true
  machine_line >> "$OUT/$name.txt"
  grep '^RESULT ' "$OUT/$name.txt" | sed 's/^RESULT //' >> "$RESULTS" || true
  grep -E 'confirmed|send->|lost|RSS|backlog|CPU|machine|FAILED|first error|connections' \
    "$OUT/$name.txt" | sed 's/^/    /' >&2 || true
}

best_rate() {   # best confirmed_per_s among RESULT lines with label prefix $1
  python3 - "$RESULTS" "$1" <<'EOF'
import json, sys
best = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("label", "").startswith(sys.argv[2]):
        best = max(best, r.get("confirmed_per_s", 0))
print(int(best))
EOF
}

# ---- the runs ------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "ram: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "commit: $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo none)$(
        [ -n "$(git -C "$top" status --porcelain 2>/dev/null)" ] && echo ' plus uncommitted tree')"
  echo "open files limit: $(ulimit -n)"
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  machine_line
} | tee "$OUT/machine.txt" >&2

start_redis
start_gateway
[ "$SKIP_RABBIT" = 1 ] || start_rabbit
gw_args() {
  echo --port "$gw_ports" --server-pids "$gw_pid" --redis-pid "$redis_pid" \
       --redis "unix://$RSOCK" --warmup "$WARMUP" --duration "$DURATION" --drain 5
}
rq_args() {
  echo --target rabbitmq --port "$RABBIT_PORT" --server-pids "$rabbit_pid" \
       --warmup "$WARMUP" --duration "$DURATION" --drain 5
}

# p2p: each configuration on chatgate, then at once on RabbitMQ, so both
# see the same machine (it is shared; load drifts over minutes).
for users in $USERS_LIST; do
  if [ "$users" -ge 1000 ]; then wl=$W_LIST_1000; else wl=$W_LIST_100; fi
  for w in $wl; do
    # shellcheck disable=SC2046
    lg "gw-p2p-u$users-w$w" p2p $(gw_args) --users "$users" --window "$w"
    [ "$SKIP_RABBIT" = 1 ] ||
      lg "rq-p2p-u$users-w$w" p2p $(rq_args) --users "$users" --window "$w"
  done
done
if [ "$GW_ONLY_P2P" = 1 ]; then
  for rate in ${GW_RATES:-}; do
    lg "gw-p2p-u${USERS_LIST%% *}-rate$rate" p2p $(gw_args) --users "${USERS_LIST%% *}" \
       --window 256 --rate "$rate"
  done
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); a=r["send_200_ms"]
    print("%-22s %7.0f msg/s  p50 %.2f  p99 %.2f ms  cpu %.2f+%.2f+%.2f  lost %d" % (r["label"], r["confirmed_per_s"], a["p50"], a["p99"], r["cpu_server"], r["cpu_redis"], r["cpu_generator"], r["lost"]))' "$RESULTS"
  exit 0
fi

# Latency at equal load: both at half of RabbitMQ's best 100-user rate.
first_users=${USERS_LIST%% *}
if [ "$SKIP_RABBIT" != 1 ]; then
  half=$(( $(best_rate "rq-p2p-u$first_users-") / 2 ))
  [ "$half" -ge 1 ] || half=100
  lg "rq-p2p-u$first_users-rate$half" p2p $(rq_args) --users "$first_users" \
     --window 256 --rate "$half"
  lg "gw-p2p-u$first_users-rate$half" p2p $(gw_args) --users "$first_users" \
     --window 256 --rate "$half"
fi

if [ "$P2P_ONLY" != 1 ]; then
  if [ "$PROFILE" = 1 ]; then
    log "profiling one p2p run (perf record -e cpu-clock on gateway and redis)"
    ( sleep $((WARMUP + 2)); perf record -e cpu-clock -F 999 -g -p "$gw_pid,$redis_pid" \
        -o "$OUT/perf.data" -- sleep 5 >/dev/null 2>&1 ) &
    prof=$!
    lg "gw-p2p-profiled" p2p $(gw_args) --users 100 --window 4
    wait "$prof" || true
    perf report -i "$OUT/perf.data" --no-children --sort comm,dso,sym --stdio \
      > "$OUT/perf-report.txt" 2>/dev/null || true
    perf report -i "$OUT/perf.data" --no-children --sort comm --stdio \
      > "$OUT/perf-comm.txt" 2>/dev/null || true
  fi
  lg "gw-fanout" fanout $(gw_args) --senders 4 --devices 10 --window 16
  [ "$SKIP_RABBIT" = 1 ] || stop_rabbit

  # backlog and idle each on a fresh gateway process: RSS growth must not
  # hide in the heap that earlier runs left behind.
  stop_gateway
  start_gateway
  lg "gw-backlog" backlog --port "$gw_ports" --server-pids "$gw_pid" --redis-pid "$redis_pid" \
     --redis "unix://$RSOCK" --backlog "$BACKLOG" --chat-lua "$top/gateway/store/lua/chat.lua" \
     --duration 120
  stop_gateway
  start_gateway
  lg "gw-idle" idle --port "$gw_ports" --server-pids "$gw_pid" --redis-pid "$redis_pid" \
     --conns "$IDLE_CONNS" --src-addrs 16 --prefix li --hold 5 --concurrency 128
  stop_gateway
  stop_redis

  if [ "$SKIP_RABBIT" != 1 ]; then
    start_rabbit                    # a fresh node: no queues from the runs above
    lg "rq-idle" idle --target rabbitmq --port "$RABBIT_PORT" --server-pids "$rabbit_pid" \
       --conns "$IDLE_CONNS" --src-addrs 16 --hold 5 --concurrency 128
    stop_rabbit
  fi
fi

# ---- the table -------------------------------------------------------------
python3 - "$RESULTS" <<'EOF' | tee "$OUT/table.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return r["label"].split("-", 1)[1] if "-" in r["label"] else r["label"]
by = {}
for r in rows:
    by.setdefault(key(r), {})[r["target"]] = r
def f(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)
print()
print("%-18s | %-40s | %-40s" % ("run", "chatgate (+redis)", "rabbitmq web-stomp"))
print("%-18s | %-40s | %-40s" % ("", "msg/s  p50/p99 200 ms  p99 dlv  CPU s+r+g", "msg/s  p50/p99 rcpt ms  p99 dlv  CPU s+g"))
for k, v in by.items():
    cells = []
    for t in ("gateway", "rabbitmq"):
        r = v.get(t)
        if r is None:
            cells.append("")
            continue
        if r["scenario"] in ("p2p", "fanout"):
            a, d = r["send_200_ms"], r["send_deliver_ms"]
            cpu = "%.2f+%.2f+%.2f" % (r["cpu_server"], max(r["cpu_redis"], 0), r["cpu_generator"])
            cells.append("%6.0f %7.2f/%-8.2f %8.2f %s%s" % (r["confirmed_per_s"], a["p50"], a["p99"],
                         d["p99"], cpu, "" if r["lost"] == 0 else " LOST %d" % r["lost"]))
        elif r["scenario"] == "idle":
            cells.append("%d conns %.2f KiB/conn %.0f conn/s" % (r["sessions"], r["rss_per_conn_kib"],
                         r["connect_per_s"]))
        else:
            cells.append("%d in %.2f s, RSS +%.1f MiB" % (r["delivered"], r["drain_s"], r["rss_growth_mib"]))
    print("%-18s | %-40s | %-40s" % (k, cells[0], cells[1]))
EOF
log "done: $OUT"
