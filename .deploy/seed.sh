#!/bin/sh
# One-shot Pilot of compose.yaml, running as the superuser identity (uid 1002): waits until SPIKE
# Nexus is ready, lets the demo workload read secrets/demo/* with a policy, and writes a demo
# secret with a random password. The value is never printed.
set -eu

tries=0
until spike status >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then echo "seed: SPIKE Nexus not ready after 120 s" >&2; exit 1; fi
  sleep 1
done

spike policy apply --name demo-workload-read \
  --spiffeid-pattern '^spiffe://spike\.ist/workload/demo$' \
  --path-pattern '^secrets/demo/.*$' \
  --permissions read

password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
spike secret put secrets/demo/db username=demo "password=$password"
echo "seed: policy demo-workload-read applied; secrets/demo/db written"
