#!/usr/bin/env bash
# A bounded fuzz run of the GraphQL API with schemathesis (see README.md beside this file).
#
#   OPSLEDGER_BIN   the binary (default target/release/opsledger)
#   FUZZ_SECONDS    total time budget for schemathesis, split over the three phases
#                   (operator 60 %, requester 20 %, no token 20 %; default 300)
#   FUZZ_WORKERS    schemathesis workers (default 2)
#   FUZZ_SEED       schemathesis seed (default: random; printed either way)
#   FUZZ_SCHEMA     "live" (introspection, default) or "sdl" (schema/schema.graphql)
#   FUZZ_KEEP       1 keeps the scratch directory even when the run passes
#
# Exits 0 only if every phase passed, the server is still alive, /healthz says ok and the
# server log has no panic and no ERROR line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${OPSLEDGER_BIN:-target/release/opsledger}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
seconds="${FUZZ_SECONDS:-300}"
workers="${FUZZ_WORKERS:-2}"
seed="${FUZZ_SEED:-$RANDOM$RANDOM}"
schema_mode="${FUZZ_SCHEMA:-live}"

[ -x "$bin" ] || { echo "fuzz: no executable binary at $bin (set OPSLEDGER_BIN)" >&2; exit 2; }
command -v st >/dev/null || { echo "fuzz: schemathesis is not installed (pip install schemathesis==4.32.5)" >&2; exit 2; }
command -v curl >/dev/null || { echo "fuzz: curl is needed" >&2; exit 2; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/opsledger-fuzz.XXXXXX")"
data="$scratch/data"
log="$scratch/server.log"
server_pid=""
status=0

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" = 0 ] && [ "${FUZZ_KEEP:-0}" != 1 ]; then
    rm -rf "$scratch"
  else
    echo "fuzz: scratch directory kept: $scratch (server.log, reports/)"
  fi
}
trap cleanup EXIT

export OPSLEDGER_JWT_SECRET="fuzz-secret-$seed-$$"
export OPSLEDGER_DATA_DIR="$data"
printf '%s\n' "$OPSLEDGER_JWT_SECRET" >"$scratch/jwt_secret"

echo "fuzz: loading the demo into $data"
"$bin" --data-dir "$data" demo >"$scratch/demo.out" 2>&1 || {
  cat "$scratch/demo.out" >&2; status=1; exit 1; }
token_of() { awk -v u="$1" '$1 == u { print $NF }' "$scratch/demo.out"; }
operator_token="$(token_of u-wong)"
requester_token="$(token_of u-chan)"
[ -n "$operator_token" ] && [ -n "$requester_token" ] || {
  echo "fuzz: no tokens for u-wong / u-chan in the demo's output" >&2; status=1; exit 1; }

port="${FUZZ_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
base="http://127.0.0.1:$port"
echo "fuzz: starting the server on $base (log: server.log)"
"$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" >"$log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 120); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "fuzz: the server did not become ready; its log:" >&2
  tail -n 50 "$log" >&2
  status=1
  exit 1
fi

if [ "$schema_mode" = sdl ]; then
  location=("$repo/schema/schema.graphql" --url "$base/graphql")
else
  location=("$base/graphql")
fi

# Phase budgets: 60 % operator, 20 % requester, 20 % no token (each at least 10 s).
share() { local s=$(( seconds * $1 / 100 )); [ "$s" -lt 10 ] && s=10; echo "$s"; }

declare -a summary=()
run_phase() {
  local name="$1" budget="$2" token="$3"
  local reports="$scratch/reports/$name"
  local -a auth=()
  [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
  mkdir -p "$reports"
  echo
  echo "fuzz: phase $name, ${budget}s, seed $seed"
  local rc=0
  # opsledger_error_contract (the hooks module) stands in for not_a_server_error; see the
  # module's docstring. Network errors (dropped connections, timeouts) are errors of the
  # run and make schemathesis exit non-zero whatever the checks.
  # Run from the scratch directory: schemathesis and hypothesis keep caches in the cwd.
  (cd "$scratch" && PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=opsledger_fuzz_hooks \
    st --no-color run "${location[@]}" \
      "${auth[@]}" \
      --checks opsledger_error_contract,response_schema_conformance \
      --max-time "$budget" \
      --workers "$workers" \
      --seed "$seed" \
      --request-timeout 30 \
      --suppress-health-check all \
      --generation-database none \
      --report junit,ndjson --report-dir "$reports" \
      --output-truncate false \
      >"$reports/output.txt" 2>&1) || rc=$?
  # The whole output: failures come with their reproduction (a curl command).
  cat "$reports/output.txt"
  local line
  line="$(python3 "$here/summarize.py" "$name" "$rc" "$reports")"
  summary+=("$line")
  [ "$rc" = 0 ] || status=1
}

run_phase operator "$(share 60)" "$operator_token"
run_phase requester "$(share 20)" "$requester_token"
run_phase anonymous "$(share 20)" ""

echo
alive=yes
kill -0 "$server_pid" 2>/dev/null || { alive=no; status=1; }
health="$(curl -sS --max-time 10 "$base/healthz" 2>&1 || true)"
[ "$health" = ok ] || status=1
panics="$(grep -c 'panicked' "$log" || true)"
errors="$(grep -c 'ERROR' "$log" || true)"
if [ "$panics" != 0 ] || [ "$errors" != 0 ]; then
  status=1
  echo "fuzz: the server log has panics or ERROR lines:"
  grep -n -m 20 -E 'panicked|ERROR' "$log" || true
fi

echo "fuzz summary: seed $seed, ${seconds}s budget, binary $(basename "$bin")"
for line in "${summary[@]}"; do echo "  $line"; done
echo "  server alive: $alive; /healthz: ${health:-<no answer>}; log: $panics panicked, $errors ERROR lines"
if [ "$status" = 0 ]; then echo "fuzz: PASS"; else echo "fuzz: FAIL"; fi
exit "$status"
