#!/usr/bin/env bash
# Install (if needed) and start a local RabbitMQ on 127.0.0.1:5672 without systemd.
#
# Idempotent: if something already answers AMQP on the port, nothing is done.
# Meant for Debian 12 as root (a fresh machine or CI). The default `guest`
# user (password `guest`) is ensured; RabbitMQ allows it from loopback only.
set -euo pipefail

PORT="${RABBITMQ_PORT:-5672}"
HOST=127.0.0.1
TIMEOUT="${RABBITMQ_START_TIMEOUT:-120}"
LOG_DIR=/var/log/rabbitmq

log() { printf '[rabbitmq.sh] %s\n' "$*"; }

# True when the port accepts a TCP connection and answers an AMQP 0-9-1 header
# with a frame (RabbitMQ replies with connection.start, a method frame: byte 1).
amqp_answers() {
    python3 - "$HOST" "$PORT" <<'PY' 2>/dev/null
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    with socket.create_connection((host, port), timeout=3) as s:
        s.settimeout(5)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        data = s.recv(1)
except OSError:
    sys.exit(1)
sys.exit(0 if data == b"\x01" else 1)
PY
}

port_in_use() {
    python3 - "$HOST" "$PORT" <<'PY' 2>/dev/null
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

# The management HTTP API (15672) and Prometheus metrics (15692), which the management
# comparison tests use. `rabbitmq-plugins enable` works on a running node and is
# idempotent.
enable_plugins() {
    if ! rabbitmq-plugins -q is_enabled rabbitmq_management rabbitmq_prometheus \
            >/dev/null 2>&1; then
        log "enabling rabbitmq_management and rabbitmq_prometheus"
        rabbitmq-plugins -q enable rabbitmq_management rabbitmq_prometheus >/dev/null
    fi
    local deadline=$((SECONDS + TIMEOUT)) port
    for port in 15672 15692; do
        until PORT=$port port_in_use; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                log "error: nothing listens on $HOST:$port after enabling the plugins" >&2
                exit 1
            fi
            sleep 1
        done
    done
}

if amqp_answers; then
    if [ "$(id -u)" -eq 0 ] && command -v rabbitmq-plugins >/dev/null 2>&1; then
        enable_plugins
    fi
    log "RabbitMQ already answers on $HOST:$PORT"
    exit 0
fi
if port_in_use; then
    log "error: $HOST:$PORT is in use by something that does not speak AMQP 0-9-1" >&2
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    log "error: must run as root to install and start rabbitmq-server" >&2
    exit 1
fi

# Wait for any other apt/dpkg run (e.g. a background install) to finish.
wait_for_apt() {
    local waited=0
    while pgrep -x apt-get >/dev/null || pgrep -x apt >/dev/null || pgrep -x dpkg >/dev/null; do
        if [ "$waited" -eq 0 ]; then
            log "waiting for another apt-get/dpkg process to finish"
        fi
        if [ "$waited" -ge 900 ]; then
            log "error: apt-get/dpkg still busy after ${waited}s" >&2
            exit 1
        fi
        sleep 5
        waited=$((waited + 5))
    done
}

if ! command -v rabbitmq-server >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null 2>&1; then
    wait_for_apt
fi
if ! command -v rabbitmq-server >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null 2>&1; then
    log "installing rabbitmq-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q rabbitmq-server
fi

# The node name is rabbit@<short hostname>; Erlang distribution (and so
# rabbitmqctl) needs that name to resolve. Fall back to localhost if it doesn't.
if ! getent hosts "$(hostname -s)" >/dev/null 2>&1; then
    env_conf=/etc/rabbitmq/rabbitmq-env.conf
    if ! grep -q '^NODENAME=' "$env_conf" 2>/dev/null; then
        log "hostname $(hostname -s) does not resolve; using node name rabbit@localhost"
        mkdir -p /etc/rabbitmq
        echo 'NODENAME=rabbit@localhost' >>"$env_conf"
    fi
fi

mkdir -p "$LOG_DIR" /var/lib/rabbitmq
chown rabbitmq:rabbitmq "$LOG_DIR" /var/lib/rabbitmq

# No systemd here: start the node detached (the Debian wrapper drops to the
# rabbitmq user). If a node is already running but not answering yet, just wait.
if rabbitmqctl -q status >/dev/null 2>&1; then
    log "a RabbitMQ node is already running; waiting for it"
else
    log "starting rabbitmq-server (detached)"
    rabbitmq-server -detached >"$LOG_DIR/detached.log" 2>&1 || true
fi

log "waiting up to ${TIMEOUT}s for AMQP on $HOST:$PORT"
deadline=$((SECONDS + TIMEOUT))
until amqp_answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "error: RabbitMQ did not answer on $HOST:$PORT within ${TIMEOUT}s" >&2
        for f in "$LOG_DIR"/detached.log "$LOG_DIR"/*.log; do
            [ -f "$f" ] || continue
            echo "--- $f (last 40 lines)" >&2
            tail -n 40 "$f" >&2
        done
        exit 1
    fi
    sleep 1
done
rabbitmqctl -q await_startup --timeout "$TIMEOUT" >/dev/null

# Make sure the default guest/guest user exists and may use the default vhost.
if ! rabbitmqctl -q authenticate_user guest guest >/dev/null 2>&1; then
    log "creating user guest"
    rabbitmqctl -q delete_user guest >/dev/null 2>&1 || true
    rabbitmqctl -q add_user guest guest >/dev/null
    rabbitmqctl -q set_user_tags guest administrator >/dev/null
fi
rabbitmqctl -q set_permissions -p / guest '.*' '.*' '.*' >/dev/null
enable_plugins

log "RabbitMQ is up on $HOST:$PORT (user guest, vhost /)"
