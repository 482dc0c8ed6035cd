#!/usr/bin/env bash
# A local RAE cluster in cluster mode: Azurite (Azure Table membership + Azure Blob grain state) and N silo processes
# on loopback, each with its own silo/gateway/web ports.
#   infra/cluster.sh up N     builds the silo (Release), starts Azurite and N silos, waits until each answers, prints ports
#   infra/cluster.sh status   lists the silos (pid, ports, alive) and the dashboard addresses
#   infra/cluster.sh down     stops the silos started by `up`, then Azurite (unless CLUSTER_KEEP_AZURITE=1)
# Files: .data/cluster/silo-<i>.pid, .data/cluster/silo-<i>.log, .data/cluster/cluster.env (ids, gateways, TLS files for
#   the CLI; no storage credentials: the CLI finds the silos by the gateway list), .data/cluster/tls/ (the development
#   certificate authority, silo.pfx, client.pfx and their owner-only password file, made once by `rae cluster certificates`).
# Secrets never go on a command line (ps shows it): the connection string reaches the silos in their environment, the
#   certificate password in a file.
# Environment: CLUSTER_SILO_PORT_BASE (11111), CLUSTER_GATEWAY_PORT_BASE (30000), CLUSTER_WEB_PORT_BASE (8080),
#   CLUSTER_DEVICES (cpu; comma-separated, e.g. cuda:0), CLUSTER_THREADS_PER_RANK (1), CLUSTER_START_TIMEOUT_S (120),
#   CLUSTER_SKIP_BUILD=1, CLUSTER_FAST_FAILURE_DETECTION (1: a killed silo is declared dead in seconds, the settings
#   tests/RAE.Cluster.Tests/Failover uses; 0: Orleans' defaults, about a minute), CLUSTER_TLS (1: mutual TLS between silos
#   and between clients and silos; 0: none, only on a trusted network), plus AZURITE_* (see infra/azurite.sh).
# All silos share one data folder (.data/cluster/data), so every silo can read every checkpoint.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/.." && pwd)"
STATE_DIR="$REPO_ROOT/.data/cluster"
ENV_FILE="$STATE_DIR/cluster.env"
SILO_DLL="$REPO_ROOT/silo/bin/Release/net10.0/RAE.Silo.dll"
CLI_DLL="$REPO_ROOT/client/bin/Release/net10.0/rae.dll"
TLS_DIR="$STATE_DIR/tls"
TLS="${CLUSTER_TLS:-1}"
SILO_PORT_BASE="${CLUSTER_SILO_PORT_BASE:-11111}"
GATEWAY_PORT_BASE="${CLUSTER_GATEWAY_PORT_BASE:-30000}"
WEB_PORT_BASE="${CLUSTER_WEB_PORT_BASE:-8080}"
DEVICES="${CLUSTER_DEVICES:-cpu}"
THREADS_PER_RANK="${CLUSTER_THREADS_PER_RANK:-1}"
START_TIMEOUT_S="${CLUSTER_START_TIMEOUT_S:-120}"
FAST_FAILURE_DETECTION="${CLUSTER_FAST_FAILURE_DETECTION:-1}"
AZ_HOST="${AZURITE_HOST:-127.0.0.1}"
AZ_BLOB_PORT="${AZURITE_BLOB_PORT:-10000}"
AZ_QUEUE_PORT="${AZURITE_QUEUE_PORT:-10001}"
AZ_TABLE_PORT="${AZURITE_TABLE_PORT:-10002}"
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZ_KEY;BlobEndpoint=http://$AZ_HOST:$AZ_BLOB_PORT/devstoreaccount1;QueueEndpoint=http://$AZ_HOST:$AZ_QUEUE_PORT/devstoreaccount1;TableEndpoint=http://$AZ_HOST:$AZ_TABLE_PORT/devstoreaccount1;"

fail() { echo "cluster.sh: $*" >&2; exit 1; }
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [[ -f "$1" ]] && local pid && pid="$(cat "$1")" && [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; }

cmd_up() {
  local count="${1:-}"
  [[ "$count" =~ ^[1-9][0-9]*$ ]] || fail "up expects a positive silo count, got '${count}' (usage: $0 up N)"
  mkdir -p "$STATE_DIR"
  for pid_file in "$STATE_DIR"/silo-*.pid; do
    [[ -e "$pid_file" ]] || continue
    alive "$pid_file" && fail "silos are already running (see '$0 status'); run '$0 down' first"
    rm -f "$pid_file"
  done
  for ((i = 0; i < count; i++)); do
    for port in $((SILO_PORT_BASE + i)) $((GATEWAY_PORT_BASE + i)) $((WEB_PORT_BASE + i)); do
      port_answers "$port" && fail "port 127.0.0.1:$port is taken (set CLUSTER_*_PORT_BASE)"
    done
  done

  "$INFRA_DIR/azurite.sh" install >/dev/null
  "$INFRA_DIR/azurite.sh" start
  if [[ "${CLUSTER_SKIP_BUILD:-0}" != "1" ]]; then
    echo "building the silo and the CLI (Release)"
    dotnet build "$REPO_ROOT/client" -c Release -nologo -v quiet >"$STATE_DIR/build.log" 2>&1 || fail "build failed; see $STATE_DIR/build.log"
  fi
  [[ -f "$SILO_DLL" ]] || fail "$SILO_DLL is missing (build the client project, which builds the silo, in Release)"
  local tls_args=()
  if [[ "$TLS" == "1" ]]; then
    if [[ ! -f "$TLS_DIR/silo.pfx" || ! -f "$TLS_DIR/client.pfx" || ! -f "$TLS_DIR/authority.crt" || ! -f "$TLS_DIR/certificate.password" ]]; then
      [[ -f "$CLI_DLL" ]] || fail "$CLI_DLL is missing (build the client project in Release)"
      dotnet "$CLI_DLL" cluster certificates --out "$TLS_DIR" >/dev/null || fail "could not write the development certificates into $TLS_DIR"
      echo "development certificates written to $TLS_DIR"
    fi
    tls_args=(
      --Rae:Silo:Tls:Enabled=true "--Rae:Silo:Tls:CertificatePath=$TLS_DIR/silo.pfx"
      "--Rae:Silo:Tls:CertificatePasswordFile=$TLS_DIR/certificate.password" "--Rae:Silo:Tls:AuthorityPath=$TLS_DIR/authority.crt"
    )
  else
    tls_args=(--Rae:Silo:Tls:Enabled=false)
  fi

  # A fresh cluster id per `up`: the membership table may still list the silos of an earlier run as active.
  local cluster_id="rae-local-$(date -u +%Y%m%d%H%M%S)"
  local gateways=""
  local device_args=() d=0
  IFS=',' read -ra device_list <<<"$DEVICES"
  for device in "${device_list[@]}"; do device_args+=("--Rae:Silo:Devices:$d=$device"); d=$((d + 1)); done
  local membership_args=()
  if [[ "$FAST_FAILURE_DETECTION" == "1" ]]; then
    # 2 s probes, 2 misses, 1 vote: a killed silo is declared dead in about 5 s instead of Orleans' minute.
    membership_args=(
      --Rae:Silo:Membership:ProbeTimeoutSeconds=2 --Rae:Silo:Membership:NumMissedProbesLimit=2
      --Rae:Silo:Membership:NumVotesForDeathDeclaration=1 --Rae:Silo:Membership:DeathVoteExpirationTimeoutSeconds=20
      --Rae:Silo:Membership:TableRefreshTimeoutSeconds=2 --Rae:Silo:Membership:IAmAliveTablePublishTimeoutSeconds=2
    )
  fi

  for ((i = 0; i < count; i++)); do
    local silo_port=$((SILO_PORT_BASE + i)) gateway_port=$((GATEWAY_PORT_BASE + i)) web_port=$((WEB_PORT_BASE + i))
    # setsid: the silos must outlive this shell. The connection string goes in the environment, not on the command line.
    RAE_Rae__Silo__StorageConnectionString="$CONNECTION" setsid dotnet "$SILO_DLL" \
      --Rae:Silo:ClusterMode=Azure "${tls_args[@]}" \
      "--Rae:Silo:ClusterId=$cluster_id" --Rae:Silo:ServiceId=rae \
      "--Rae:Silo:DataFolder=$STATE_DIR/data" \
      "--Rae:Silo:SiloPort=$silo_port" "--Rae:Silo:GatewayPort=$gateway_port" "--Rae:Silo:WebPort=$web_port" \
      "--Rae:Silo:ThreadsPerRank=$THREADS_PER_RANK" "${device_args[@]}" ${membership_args[@]+"${membership_args[@]}"} \
      >"$STATE_DIR/silo-$i.log" 2>&1 </dev/null &
    echo "$!" >"$STATE_DIR/silo-$i.pid"
    echo "$i $silo_port $gateway_port $web_port" >"$STATE_DIR/silo-$i.ports"
    gateways="${gateways:+$gateways,}$gateway_port"
  done
  (umask 077; : >"$ENV_FILE")
  {
    echo "RAE_CLUSTER_ID=$cluster_id"
    echo "RAE_SERVICE_ID=rae"
    echo "RAE_GATEWAY=$gateways"
    if [[ "$TLS" == "1" ]]; then
      echo "RAE_TLS_CERTIFICATE=$TLS_DIR/client.pfx"
      echo "RAE_TLS_CERTIFICATE_PASSWORD_FILE=$TLS_DIR/certificate.password"
      echo "RAE_TLS_AUTHORITY=$TLS_DIR/authority.crt"
    fi
  } >"$ENV_FILE"

  local deadline=$((SECONDS + START_TIMEOUT_S))
  for ((i = 0; i < count; i++)); do
    local web_port=$((WEB_PORT_BASE + i)) gateway_port=$((GATEWAY_PORT_BASE + i))
    until port_answers "$gateway_port" && port_answers "$web_port"; do
      alive "$STATE_DIR/silo-$i.pid" || fail "silo $i exited during start-up; log $STATE_DIR/silo-$i.log:
$(tail -n 20 "$STATE_DIR/silo-$i.log")"
      (( SECONDS < deadline )) || fail "silo $i did not open 127.0.0.1:$gateway_port/$web_port within ${START_TIMEOUT_S}s; log $STATE_DIR/silo-$i.log"
      sleep 0.5
    done
  done
  echo "cluster '$cluster_id' is up with $count silo(s):"
  cmd_status
  echo
  echo "dashboard: http://127.0.0.1:$WEB_PORT_BASE/dashboard/ (every silo serves it on its web port)"
  if [[ "$TLS" == "1" ]]; then
    echo "CLI:  dotnet run --project client -c Release -- cluster status --gateway $gateways --cluster-id $cluster_id \\"
    echo "        --tls-certificate $TLS_DIR/client.pfx --tls-password-file $TLS_DIR/certificate.password --tls-authority $TLS_DIR/authority.crt"
  else
    echo "CLI:  dotnet run --project client -c Release -- cluster status --gateway $gateways --cluster-id $cluster_id"
  fi
  echo "      (or: set -a; . $ENV_FILE; set +a; rae cluster status)"
}

cmd_status() {
  local any=1
  printf '%-5s %-8s %-6s %-10s %-8s %-8s %s\n' silo pid state silo-port gateway web dashboard
  for ports_file in "$STATE_DIR"/silo-*.ports; do
    [[ -e "$ports_file" ]] || continue
    any=0
    read -r i silo_port gateway_port web_port <"$ports_file"
    local pid_file="$STATE_DIR/silo-$i.pid" state=down pid="-"
    [[ -f "$pid_file" ]] && pid="$(cat "$pid_file")"
    alive "$pid_file" && state=up
    printf '%-5s %-8s %-6s %-10s %-8s %-8s %s\n' "$i" "$pid" "$state" "$silo_port" "$gateway_port" "$web_port" "http://127.0.0.1:$web_port/dashboard/"
  done
  (( any == 0 )) || { echo "no silos (run '$0 up N')"; return 1; }
  "$INFRA_DIR/azurite.sh" status || true
  [[ -f "$ENV_FILE" ]] && echo "settings: $ENV_FILE"
  return 0
}

cmd_down() {
  for pid_file in "$STATE_DIR"/silo-*.pid; do
    [[ -e "$pid_file" ]] || continue
    if alive "$pid_file"; then
      local pid; pid="$(cat "$pid_file")"
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
      echo "stopped silo $(basename "$pid_file" .pid) (pid $pid)"
    fi
    rm -f "$pid_file" "${pid_file%.pid}.ports"
  done
  rm -f "$ENV_FILE"
  if [[ "${CLUSTER_KEEP_AZURITE:-0}" != "1" ]]; then "$INFRA_DIR/azurite.sh" stop; fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up N|down|status}" >&2; exit 2 ;;
esac
