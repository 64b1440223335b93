#!/usr/bin/env bash
# The image and the compose stack, built and run for real: build the image, bring up
# deploy/compose.yaml with the emulator (no deploy/.env, as on a fresh clone), wait for
# every service to be healthy, send calls through it, restart Redis and check nothing was
# lost, tear everything down. One line per step; exit 1 at the first failure, 2 on usage.
#
#   deploy/smoke-test.sh [--base-image IMAGE] [--network MODE] [--redis-image IMAGE]
#                        [--image TAG] [--project NAME] [--timeout SECONDS] [--keep]
#
# It needs only bash, a running Docker engine and Docker Compose 2.24+. It runs under a
# compose project of its own, publishes no port and ignores deploy/.env and the shell's
# settings, so a stack already running on this machine is neither touched nor in the way.
# deploy/README.md ("Smoke test") describes each step.
set -euo pipefail

usage() {
    cat <<EOF
usage: deploy/smoke-test.sh [options]
  --base-image IMAGE   the Dockerfile's BASE_IMAGE (env CALLSTREAMS_BASE_IMAGE; default the
                       Dockerfile's, python:3.11-slim), e.g. a mirror's copy
  --network MODE       network of the build's RUN steps (env CALLSTREAMS_BUILD_NETWORK;
                       default Docker's); \`host\` where containers have no outbound route
  --redis-image IMAGE  the Redis image (env REDIS_IMAGE; default redis:7)
  --image TAG          the image to build and run (default callstreams:smoke)
  --project NAME       the compose project (default callstreams-smoke)
  --timeout SECONDS    how long to wait for the services to be healthy (default 180)
  --keep               leave the stack running at the end (and after a failure)
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
compose_file=$root/deploy/compose.yaml
base_image=${CALLSTREAMS_BASE_IMAGE:-}
build_network=${CALLSTREAMS_BUILD_NETWORK:-}
redis_image=${REDIS_IMAGE:-redis:7}
image=callstreams:smoke
project=callstreams-smoke
timeout=180
keep=false

need_value() { [[ $# -ge 2 && -n $2 ]] || { echo "smoke-test: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --base-image) need_value "$@"; base_image=$2; shift 2 ;;
        --network) need_value "$@"; build_network=$2; shift 2 ;;
        --redis-image) need_value "$@"; redis_image=$2; shift 2 ;;
        --image) need_value "$@"; image=$2; shift 2 ;;
        --project) need_value "$@"; project=$2; shift 2 ;;
        --timeout) need_value "$@"; timeout=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "smoke-test: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $timeout =~ ^[0-9]+$ ]] || { echo "smoke-test: --timeout takes whole seconds" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/callstreams-smoke.XXXXXX")
started=$SECONDS
step_pid=
brought_up=false

# No published ports: every check runs inside the stack's network.
cat >"$work/no-ports.yaml" <<'EOF'
services:
  web:
    ports: !reset []
  emulator:
    ports: !reset []
EOF
: >"$work/empty.env"
# Every variable compose.yaml reads is unset (so its defaults apply, as on a fresh clone)
# except the images this run chose; the empty files stand in for deploy/.env.
unset_vars=()
while read -r name; do
    unset_vars+=(-u "$name")
done < <(grep -o '[$]{[A-Za-z_][A-Za-z0-9_]*' "$compose_file" | cut -c3- | sort -u)

compose() {
    env "${unset_vars[@]}" CALLSTREAMS_IMAGE="$image" REDIS_IMAGE="$redis_image" \
        CALLSTREAMS_ENV_FILE="$work/empty.env" \
        docker compose --project-name "$project" --env-file "$work/empty.env" \
        --file "$compose_file" --file "$work/no-ports.yaml" --profile emulator "$@"
}

# What the stack was given (read from the web container once it is healthy): the smoke
# test assumes none of compose.yaml's defaults.
SETTINGS=(TWILIO_API_BASE_URL PUBLIC_BASE_URL TWILIO_ACCOUNT_SID CALLSTREAMS_API_TOKEN)
setting() { cat "$work/setting.$1"; }
# The operator API from the stack's network, and the ports compose.yaml gives the processes.
web_url=http://web:8000
web_local=http://127.0.0.1:8000
worker_metrics_port=9101  # Settings' default, which compose.yaml leaves alone

# `callstreams ARGS...` in a throwaway container on the stack's network.
cli() { docker run --rm --network "$(<"$work/network")" "$@"; }

# GET a URL from inside a service's container (the image has Python, not curl).
fetch() {
    local service=$1 index=$2 url=$3
    compose exec -T --index "$index" "$service" python -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
    sys.stdout.write(answer.read().decode())
' "$url"
}

note() { printf '%s' "$*" >"$work/note"; }

# step TITLE FUNCTION [ARGS...]: run it (errexit applies: it runs as a job of its own),
# print `[ok] TITLE: NOTE (N s)` or `[FAIL] ...` with the end of its output, and stop.
step() {
    local title=$1 at=$SECONDS status=0
    shift
    : >"$work/note"
    "$@" >"$work/step.log" 2>&1 &
    step_pid=$!
    wait "$step_pid" || status=$?
    step_pid=
    local detail
    detail=$(<"$work/note")
    if [[ $status -ne 0 ]]; then
        echo "[FAIL] $title${detail:+: $detail} ($((SECONDS - at)) s)"
        tail -n 25 "$work/step.log" | sed 's/^/    /'
        exit 1
    fi
    echo "[ok] $title${detail:+: $detail} ($((SECONDS - at)) s)"
}

cleanup() {
    local status=$?
    [[ -n $step_pid ]] && kill "$step_pid" 2>/dev/null
    if ! $brought_up; then
        :
    elif $keep; then
        echo "[keep] stack left running: docker compose -p $project -f $compose_file --profile emulator down -v"
    else
        local at=$SECONDS
        if compose down --volumes --remove-orphans --timeout 30 >"$work/down.log" 2>&1; then
            echo "[ok] tear down ($((SECONDS - at)) s)"
        else
            echo "[FAIL] tear down ($((SECONDS - at)) s)"
            sed 's/^/    /' "$work/down.log"
            status=1
        fi
    fi
    rm -rf "$work"
    if [[ $status -eq 0 ]]; then
        echo "passed in $((SECONDS - started)) s"
    else
        echo "FAILED after $((SECONDS - started)) s"
    fi
    exit "$status"
}

engine() {
    local server
    server=$(docker version --format '{{.Server.Version}}')
    note "docker $server, compose $(docker compose version --short)"
}

build() {
    local args=(--tag "$image")
    [[ -n $base_image ]] && args+=(--build-arg "BASE_IMAGE=$base_image")
    [[ -n $build_network ]] && args+=(--network "$build_network")
    docker build "${args[@]}" "$root"
    local bytes
    bytes=$(docker image inspect --format '{{.Size}}' "$image")
    note "$image, $((bytes / 1000000)) MB${base_image:+, base $base_image}${build_network:+, network $build_network}"
}

up() {
    compose down --volumes --remove-orphans --timeout 10  # what a --keep run left behind
    compose up --detach --no-build --scale worker=2
    note "$(compose ps --format '{{.Service}}' | sort | uniq -c | awk '{print $2 ($1 > 1 ? " x" $1 : "")}' | paste -sd ' ' -)"
}

# Container, service, health of every container of the project.
states() {
    local ids
    ids=$(compose ps --all --quiet)
    [[ -n $ids ]] || return 0
    # shellcheck disable=SC2086 # one argument per container id
    docker inspect --format \
        '{{index .Config.Labels "com.docker.compose.service"}}-{{index .Config.Labels "com.docker.compose.container-number"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \
        $ids | sort
}

healthy() {
    local deadline=$((SECONDS + timeout)) lines
    while true; do
        lines=$(states)
        echo "$lines"
        if [[ $(wc -l <<<"$lines") -eq 5 ]] && ! grep -qv ' running healthy$' <<<"$lines"; then
            break
        fi
        if grep -Eq ' (exited|dead|restarting) | unhealthy$' <<<"$lines"; then
            compose logs --tail 20
            return 1
        fi
        if [[ $SECONDS -ge $deadline ]]; then
            compose logs --tail 20
            echo "not healthy within ${timeout}s"
            return 1
        fi
        sleep 2
    done
    docker inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' \
        "$(compose ps --quiet web)" >"$work/network"
    local name
    for name in "${SETTINGS[@]}"; do
        compose exec -T web printenv "$name" >"$work/setting.$name"
    done
    note "$(awk '{print $1}' <<<"$lines" | paste -sd ' ' -)"
}

# simulate-call TITLE [--inbound]: one call through emulator, web and worker; its SID is kept.
simulate() {
    local output sid
    output=$(cli "$image" callstreams simulate-call "$@" \
        --emulator "$(setting TWILIO_API_BASE_URL)" --web "$(setting PUBLIC_BASE_URL)" \
        --account "$(setting TWILIO_ACCOUNT_SID)" --token "$(setting CALLSTREAMS_API_TOKEN)")
    echo "$output"
    sid=$(grep -o 'call CA[0-9a-f]\{32\}' <<<"$output" | head -n 1 | cut -c6-)
    [[ -n $sid ]]
    echo "$sid" >>"$work/calls"
    note "$sid, streams started and stopped"
}

readyz() {
    local body
    body=$(fetch web 1 "$web_local/readyz")
    echo "$body"
    grep -q '"status": *"ready"' <<<"$body"
    note "$body"
}

web_metrics() {
    fetch web 1 "$web_local/metrics" >"$work/web.metrics"
    grep -q '^callstreams_webhooks_total{' "$work/web.metrics"
    note "callstreams_webhooks_total $(grep -c '^callstreams_webhooks_total{' "$work/web.metrics") series"
}

worker_metrics() {
    local index samples=0
    for index in 1 2; do
        fetch worker "$index" "http://127.0.0.1:$worker_metrics_port/metrics" >"$work/worker.metrics"
        grep -q '^# TYPE callstreams_twilio_requests_total counter' "$work/worker.metrics"
        samples=$((samples + $(grep -c '^callstreams_twilio_requests_total{' "$work/worker.metrics" || true)))
    done
    # The calls' creates and stops went to one worker or the other: together they counted them.
    [[ $samples -gt 0 ]]
    note "callstreams_twilio_requests_total on both workers, $samples series"
}

# Each call's records as the operator API returns them, into DIRECTORY/CALLSID.
records() {
    local directory=$1 sid token
    token=$(setting CALLSTREAMS_API_TOKEN)
    mkdir -p "$directory"
    cli -e CALLSTREAMS_API_TOKEN="$token" -e CALLSTREAMS_API_URL="$web_url" "$image" \
        callstreams streams calls --json >"$directory/calls.json"
    while read -r sid; do
        grep -q "$sid" "$directory/calls.json"
        cli -e CALLSTREAMS_API_TOKEN="$token" -e CALLSTREAMS_API_URL="$web_url" "$image" \
            callstreams streams list "$sid" --json >"$directory/$sid"
        grep -Eq '"status": *"stopped"' "$directory/$sid"
    done <"$work/calls"
}

snapshot() {
    records "$work/before"
    note "$(wc -l <"$work/calls") call(s) listed by GET /v1/calls, their streams stopped"
}

restart_redis() {
    compose restart --no-deps redis
    local deadline=$((SECONDS + timeout)) index
    until [[ $(states | grep '^redis-') == *' running healthy' ]]; do
        [[ $SECONDS -lt $deadline ]] || { echo "redis not healthy again within ${timeout}s"; return 1; }
        sleep 1
    done
    # Web and both workers are back on Redis: /readyz answers and each heartbeat is fresh.
    until fetch web 1 "$web_local/readyz" >/dev/null 2>&1; do
        [[ $SECONDS -lt $deadline ]] || { fetch web 1 "$web_local/readyz"; return 1; }
        sleep 1
    done
    for index in 1 2; do
        until compose exec -T --index "$index" worker callstreams worker --check; do
            [[ $SECONDS -lt $deadline ]] || return 1
            sleep 1
        done
    done
    note "redis, web /readyz and both workers' heartbeats healthy again"
}

kept() {
    records "$work/after"
    local sid
    while read -r sid; do
        diff "$work/before/$sid" "$work/after/$sid"
    done <"$work/calls"
    note "$(wc -l <"$work/calls") call(s), their records unchanged"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

step "docker engine" engine
step "build image" build
brought_up=true
step "compose up (emulator profile, 2 workers)" up
step "every service healthy" healthy
step "simulate-call (outbound)" simulate
step "simulate-call --inbound (through the voice front door)" simulate --inbound
step "web /readyz" readyz
step "web /metrics" web_metrics
step "worker /metrics" worker_metrics
step "records before the Redis restart" snapshot
step "restart redis" restart_redis
step "records kept across the restart" kept
step "simulate-call after the restart" simulate
