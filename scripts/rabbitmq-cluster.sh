#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, from Debian's rabbitmq-server, beside (and
# independent of) the node rabbit@HOST that scripts/rabbitmq.sh starts on port 5672.
#
#   scripts/rabbitmq-cluster.sh start          start the nodes that are not running, join
#                                              them into one cluster, wait until all 3 run
#   scripts/rabbitmq-cluster.sh stop           stop every node (SIGTERM by PID) and delete
#                                              the cluster's data (the logs stay)
#   scripts/rabbitmq-cluster.sh status         one line per node; exit 0 when all 3 run
#                                              clustered, 3 when none runs, 1 otherwise
#   scripts/rabbitmq-cluster.sh kill NODE      kill -9 one node (1, 2, 3 or its name)
#   scripts/rabbitmq-cluster.sh restart NODE   start that node again, wait until it rejoined
#   scripts/rabbitmq-cluster.sh urls           the AMQP URLs, comma-separated
#
# Nodes kiltc1@HOST..kiltc3@HOST listen for AMQP on 127.0.0.1:5681-5683 (user guest,
# password guest, vhost /) and for Erlang distribution on 25681-25683. Each node has its
# own data, log, feature-flags, plugins-expand, quorum and stream directories, pid file,
# config files, and an enabled-plugins file `[].` (no management plugin, so no HTTP
# ports). They share the Erlang cookie of the rabbitmq user, as every node on one host.
#
# Environment: KILTMQ_CLUSTER_DIR (default /var/lib/kiltmq-cluster; each node's files go
# in a subdirectory owned by the rabbitmq user), KILTMQ_CLUSTER_PORT (default 5681, the
# first AMQP port; distribution ports are 20000 higher), KILTMQ_CLUSTER_NAME (default
# kiltc: the nodes' names are NAME1@HOST..NAME3@HOST; a second cluster on the same host
# needs its own name, directory and ports), KILTMQ_CLUSTER_TIMEOUT (seconds to wait for
# a node to boot or join, default 180). Run as root (or as rabbitmq).
set -euo pipefail

BASE="${KILTMQ_CLUSTER_DIR:-/var/lib/kiltmq-cluster}"
FIRST_PORT="${KILTMQ_CLUSTER_PORT:-5681}"
NAME="${KILTMQ_CLUSTER_NAME:-kiltc}"
[[ "$NAME" =~ ^[a-z][a-z0-9_-]*$ ]] || {
    echo "[rabbitmq-cluster] error: KILTMQ_CLUSTER_NAME must be lower-case letters, digits, - or _" >&2
    exit 1
}
TIMEOUT="${KILTMQ_CLUSTER_TIMEOUT:-180}"
NODES=(1 2 3)
RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_HOME=/var/lib/rabbitmq

log() { printf '[rabbitmq-cluster] %s\n' "$*"; }
die() { printf '[rabbitmq-cluster] error: %s\n' "$*" >&2; exit 1; }

if getent hosts "$(hostname -s)" >/dev/null 2>&1; then
    HOST="$(hostname -s)"
else
    HOST=localhost
fi

node_name() { echo "$NAME$1@$HOST"; }
amqp_port() { echo $((FIRST_PORT + $1 - 1)); }
dist_port() { echo $((FIRST_PORT + 20000 + $1 - 1)); }
node_dir() { echo "$BASE/$NAME$1"; }
pid_file() { echo "$(node_dir "$1")/$NAME$1.pid"; }

# "1", "NAME1" or "NAME1@HOST" -> 1
node_number() {
    local arg="${1:-}"
    arg="${arg%@*}"
    arg="${arg#"$NAME"}"
    case "$arg" in
        1 | 2 | 3) echo "$arg" ;;
        *) die "unknown node '${1:-}' (use 1, 2, 3 or ${NAME}1..${NAME}3)" ;;
    esac
}

# Run a command as the rabbitmq user, with its home (and so its Erlang cookie).
as_rabbitmq() {
    if [ "$(id -u)" -eq "$(id -u rabbitmq)" ]; then
        env HOME="$RMQ_HOME" "$@"
    else
        runuser -u rabbitmq -- env HOME="$RMQ_HOME" "$@"
    fi
}

ctl() {
    local n="$1"
    shift
    as_rabbitmq "$RMQ_BIN/rabbitmqctl" -q -n "$(node_name "$n")" "$@"
}

check_setup() {
    command -v rabbitmq-server >/dev/null 2>&1 && [ -x "$RMQ_BIN/rabbitmq-server" ] \
        || die "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    id rabbitmq >/dev/null 2>&1 || die "there is no rabbitmq user (is rabbitmq-server installed?)"
    if [ "$(id -u)" -ne 0 ] && [ "$(id -u)" -ne "$(id -u rabbitmq)" ]; then
        die "must run as root or as the rabbitmq user"
    fi
}

# The node's OS pid if it runs (its pid file names a live process of that node), else
# nothing.
node_pid() {
    local file pid
    file="$(pid_file "$1")"
    [ -s "$file" ] || return 0
    pid="$(tr -dc '0-9' <"$file")"
    [ -n "$pid" ] && [ -r "/proc/$pid/environ" ] || return 0
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$NAME$1@$HOST"; then
        echo "$pid"
    fi
}

port_free() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

launch() {
    local n="$1" dir port dport
    dir="$(node_dir "$n")"
    port="$(amqp_port "$n")"
    dport="$(dist_port "$n")"
    port_free "$port" || die "port $port (AMQP of $(node_name "$n")) is in use by another process"
    port_free "$dport" || die "port $dport (distribution of $(node_name "$n")) is in use"
    mkdir -p "$dir"/{mnesia,log,plugins-expand,quorum,stream}
    [ -f "$dir/enabled_plugins" ] || echo '[].' >"$dir/enabled_plugins"
    : >"$dir/rabbitmq-env.conf"
    : >"$dir/rabbitmq.conf"
    [ -f "$dir/advanced.config" ] || echo '[].' >"$dir/advanced.config"
    chown -R rabbitmq:rabbitmq "$dir"
    rm -f "$(pid_file "$n")"
    log "starting $(node_name "$n") on 127.0.0.1:$port"
    local prefix=()
    if [ "$(id -u)" -ne "$(id -u rabbitmq)" ]; then
        prefix=(runuser -u rabbitmq --)
    fi
    (
        cd "$dir"
        setsid "${prefix[@]}" env HOME="$RMQ_HOME" \
            RABBITMQ_NODENAME="$(node_name "$n")" \
            RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT="$port" \
            RABBITMQ_DIST_PORT="$dport" \
            RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
            RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
            RABBITMQ_MNESIA_BASE="$dir/mnesia" \
            RABBITMQ_MNESIA_DIR="$dir/mnesia/$NAME$n" \
            RABBITMQ_FEATURE_FLAGS_FILE="$dir/mnesia/$NAME$n-feature_flags" \
            RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand" \
            RABBITMQ_QUORUM_DIR="$dir/quorum" \
            RABBITMQ_STREAM_DIR="$dir/stream" \
            RABBITMQ_LOG_BASE="$dir/log" \
            RABBITMQ_PID_FILE="$(pid_file "$n")" \
            "$RMQ_BIN/rabbitmq-server" >"$dir/log/console.log" 2>&1 </dev/null &
    )
}

# Wait until the node has booted (its pid file, then rabbitmqctl await_startup).
await_boot() {
    local n="$1" deadline=$((SECONDS + TIMEOUT))
    until [ -n "$(node_pid "$n")" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$(node_dir "$n")/log/console.log" >&2 2>/dev/null || true
            die "$(node_name "$n") did not start within ${TIMEOUT}s (logs: $(node_dir "$n")/log)"
        fi
        sleep 1
    done
    if ! ctl "$n" await_startup --timeout "$TIMEOUT" >/dev/null 2>&1; then
        die "$(node_name "$n") did not finish booting within ${TIMEOUT}s (logs: $(node_dir "$n")/log)"
    fi
}

# The names of the nodes node N sees running in its cluster, one per line.
running_nodes() {
    ctl "$1" cluster_status --formatter json 2>/dev/null | python3 -c '
import json, sys
for name in json.load(sys.stdin).get("running_nodes", []):
    print(name)
' 2>/dev/null || true
}

member_of_first() {
    ctl "$1" cluster_status --formatter json 2>/dev/null | python3 -c '
import json, sys
status = json.load(sys.stdin)
members = status.get("disk_nodes", []) + status.get("ram_nodes", [])
sys.exit(0 if sys.argv[1] in members else 1)
' "$(node_name 1)" 2>/dev/null
}

# Wait until node N sees all three nodes running.
await_cluster() {
    local n="$1" deadline=$((SECONDS + TIMEOUT))
    until [ "$(running_nodes "$n" | grep -c "^$NAME[123]@$HOST\$")" -eq 3 ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$(node_name "$n") does not see all 3 nodes running within ${TIMEOUT}s"
        fi
        sleep 1
    done
}

join() {
    local n="$1"
    member_of_first "$n" && return 0
    JOINED=1
    log "joining $(node_name "$n") to $(node_name 1)"
    ctl "$n" stop_app >/dev/null || die "rabbitmqctl stop_app failed on $(node_name "$n")"
    ctl "$n" join_cluster "$(node_name 1)" >/dev/null \
        || die "rabbitmqctl join_cluster $(node_name 1) failed on $(node_name "$n")"
    ctl "$n" start_app >/dev/null || die "rabbitmqctl start_app failed on $(node_name "$n")"
}

ensure_guest() {
    if ! ctl 1 authenticate_user guest guest >/dev/null 2>&1; then
        ctl 1 add_user guest guest >/dev/null 2>&1 || true
        ctl 1 set_user_tags guest administrator >/dev/null
    fi
    ctl 1 set_permissions -p / guest '.*' '.*' '.*' >/dev/null
}

urls() {
    local n out=()
    for n in "${NODES[@]}"; do
        out+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/")
    done
    (IFS=,; echo "${out[*]}")
}

cmd_start() {
    check_setup
    mkdir -p "$BASE"
    local n changed=0
    JOINED=0
    for n in "${NODES[@]}"; do
        if [ -z "$(node_pid "$n")" ]; then
            launch "$n"
            changed=1
        fi
    done
    for n in "${NODES[@]}"; do
        await_boot "$n"
    done
    for n in 2 3; do
        join "$n"
    done
    await_cluster 1
    ensure_guest
    if [ "$changed" -eq 0 ] && [ "$JOINED" -eq 0 ]; then
        log "already running: $(urls)"
    else
        log "cluster up: $(urls)"
    fi
}

stop_node() {
    local n="$1" pid deadline
    pid="$(node_pid "$n")"
    [ -n "$pid" ] || return 0
    log "stopping $(node_name "$n") (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$(node_name "$n") did not stop within 60s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.5
    done
}

cmd_stop() {
    check_setup
    local n
    for n in 3 2 1; do
        stop_node "$n"
    done
    for n in "${NODES[@]}"; do
        # Only test data lives here: the next start builds a fresh cluster.
        rm -rf "$(node_dir "$n")"/{mnesia,plugins-expand,quorum,stream}
        rm -f "$(pid_file "$n")"
    done
    log "stopped"
}

cmd_status() {
    local n pid up=0 clustered=0 running
    for n in "${NODES[@]}"; do
        pid="$(node_pid "$n")"
        if [ -z "$pid" ]; then
            echo "$(node_name "$n") 127.0.0.1:$(amqp_port "$n") down"
            continue
        fi
        up=$((up + 1))
        running="$(running_nodes "$n" | grep -c "^$NAME[123]@$HOST\$" || true)"
        [ "$running" -eq 3 ] && clustered=$((clustered + 1))
        echo "$(node_name "$n") 127.0.0.1:$(amqp_port "$n") running pid $pid, sees $running of 3 nodes running"
    done
    [ "$up" -eq 0 ] && exit 3
    [ "$clustered" -eq 3 ] && exit 0
    exit 1
}

cmd_kill() {
    check_setup
    local n pid
    n="$(node_number "${1:-}")"
    pid="$(node_pid "$n")"
    [ -n "$pid" ] || die "$(node_name "$n") is not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    log "killed $(node_name "$n") (pid $pid)"
}

cmd_restart() {
    check_setup
    local n other
    n="$(node_number "${1:-}")"
    if [ -z "$(node_pid "$n")" ]; then
        launch "$n"
    fi
    await_boot "$n"
    member_of_first "$n" || [ "$n" -eq 1 ] || join "$n"
    await_cluster "$n"
    for other in "${NODES[@]}"; do
        [ "$other" -eq "$n" ] || [ -z "$(node_pid "$other")" ] || await_cluster "$other"
    done
    log "$(node_name "$n") is running and clustered"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    kill) cmd_kill "${2:-}" ;;
    restart) cmd_restart "${2:-}" ;;
    urls) urls ;;
    *)
        echo "usage: $0 start|stop|status|kill NODE|restart NODE|urls" >&2
        exit 2
        ;;
esac
