#!/usr/bin/env bash
# Azurite (Azure Storage emulator) for local development and CI.
#   infra/azurite.sh install   npm-installs azurite@$AZURITE_VERSION into infra/.tools (local prefix, idempotent)
#   infra/azurite.sh start     starts it on 127.0.0.1 with its own data folder, waits for the ports, writes a pid file
#   infra/azurite.sh stop      stops the instance started by `start`
#   infra/azurite.sh status    says whether it runs and whether the blob port answers (exit 0 only when it does)
# Environment: AZURITE_BLOB_PORT (10000), AZURITE_QUEUE_PORT (10001), AZURITE_TABLE_PORT (10002),
#   AZURITE_HOST (127.0.0.1), AZURITE_DATA_DIR (<repo>/.data/azurite), AZURITE_START_TIMEOUT_S (30).
set -euo pipefail

AZURITE_VERSION="3.37.0"
INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/.." && pwd)"
TOOLS_DIR="$INFRA_DIR/.tools"
AZURITE_BIN="$TOOLS_DIR/node_modules/.bin/azurite"

HOST="${AZURITE_HOST:-127.0.0.1}"
BLOB_PORT="${AZURITE_BLOB_PORT:-10000}"
QUEUE_PORT="${AZURITE_QUEUE_PORT:-10001}"
TABLE_PORT="${AZURITE_TABLE_PORT:-10002}"
DATA_DIR="${AZURITE_DATA_DIR:-$REPO_ROOT/.data/azurite}"
START_TIMEOUT_S="${AZURITE_START_TIMEOUT_S:-30}"
PID_FILE="$DATA_DIR/azurite.pid"
LOG_FILE="$DATA_DIR/azurite.log"

fail() { echo "azurite.sh: $*" >&2; exit 1; }

port_answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# True when the blob port is served by Azurite (its Server header), whoever started it.
blob_port_is_azurite() {
  local reply
  reply="$( (exec 3<>"/dev/tcp/$HOST/$BLOB_PORT" || exit 1
    printf 'GET /devstoreaccount1?comp=list HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$HOST" >&3
    timeout 3 head -c 2048 <&3) 2>/dev/null || true)"
  [[ "$reply" == *"Server: Azurite-Blob"* ]]
}

installed_version() {
  local manifest="$TOOLS_DIR/node_modules/azurite/package.json"
  [[ -f "$manifest" ]] || return 1
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$manifest"
}

cmd_install() {
  command -v node >/dev/null || fail "node is not installed (apt-get install nodejs npm)"
  command -v npm >/dev/null || fail "npm is not installed (apt-get install npm)"
  if [[ "$(installed_version 2>/dev/null || true)" == "$AZURITE_VERSION" && -x "$AZURITE_BIN" ]]; then
    echo "azurite $AZURITE_VERSION already installed in $TOOLS_DIR"
    return 0
  fi
  mkdir -p "$TOOLS_DIR"
  echo "installing azurite@$AZURITE_VERSION into $TOOLS_DIR"
  npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --no-save --loglevel=error "azurite@$AZURITE_VERSION" \
    || fail "npm install azurite@$AZURITE_VERSION failed"
  [[ -x "$AZURITE_BIN" ]] || fail "npm finished but $AZURITE_BIN is missing"
  [[ "$(installed_version)" == "$AZURITE_VERSION" ]] || fail "installed azurite is $(installed_version), expected $AZURITE_VERSION"
  echo "azurite $AZURITE_VERSION installed"
}

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid; pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

cmd_start() {
  [[ -x "$AZURITE_BIN" ]] || fail "azurite is not installed: run '$0 install' first"
  if pid="$(running_pid)"; then
    if blob_port_is_azurite; then echo "azurite already running (pid $pid)"; return 0; fi
  fi
  if blob_port_is_azurite; then
    echo "azurite already serves $HOST:$BLOB_PORT (started elsewhere; not managed by this script's pid file)"
    return 0
  fi
  for port in "$BLOB_PORT" "$QUEUE_PORT" "$TABLE_PORT"; do
    port_answers "$HOST" "$port" && fail "port $HOST:$port is already taken by another process (set AZURITE_*_PORT)"
  done
  mkdir -p "$DATA_DIR"
  # setsid: Azurite must outlive the shell (and the test process) that started it.
  setsid "$AZURITE_BIN" \
    --blobHost "$HOST" --blobPort "$BLOB_PORT" \
    --queueHost "$HOST" --queuePort "$QUEUE_PORT" \
    --tableHost "$HOST" --tablePort "$TABLE_PORT" \
    --location "$DATA_DIR" \
    --skipApiVersionCheck --loose --silent \
    >"$LOG_FILE" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until port_answers "$HOST" "$BLOB_PORT" && port_answers "$HOST" "$QUEUE_PORT" && port_answers "$HOST" "$TABLE_PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      fail "azurite exited during start-up; log $LOG_FILE:
$(tail -n 20 "$LOG_FILE" 2>/dev/null)"
    fi
    if (( SECONDS >= deadline )); then
      kill "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      fail "azurite did not answer on $HOST:$BLOB_PORT/$QUEUE_PORT/$TABLE_PORT within ${START_TIMEOUT_S}s; log $LOG_FILE"
    fi
    sleep 0.2
  done
  echo "azurite started (pid $pid) blob http://$HOST:$BLOB_PORT/devstoreaccount1, data $DATA_DIR"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then rm -f "$PID_FILE"; echo "azurite is not running (no live pid in $PID_FILE)"; return 0; fi
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$PID_FILE"
  echo "azurite stopped (pid $pid)"
}

cmd_status() {
  local pid=""
  pid="$(running_pid)" || pid=""
  if port_answers "$HOST" "$BLOB_PORT"; then
    echo "azurite blob endpoint answers on $HOST:$BLOB_PORT${pid:+ (pid $pid)}"
    return 0
  fi
  echo "azurite is not answering on $HOST:$BLOB_PORT${pid:+ (pid $pid alive)}"
  return 1
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
