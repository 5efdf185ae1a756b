#!/bin/sh
# One-shot registrar of compose.yaml (runs in the `registrar` image of .deploy/Dockerfile, which
# carries the spire-server CLI of the pinned official image).
#
# 1. waits for the SPIRE Server's admin socket;
# 2. writes the server's trust bundle and a one-time join token into the agent's bootstrap volume
#    (read by .deploy/spire/agent.conf: trust_bundle_path, join_token_file);
# 3. registers one entry per SPIKE component under the agent's node ID, selected by the uid the
#    component runs as (`user:` in compose.yaml). Entries that exist are left alone, so running
#    it again is harmless.
#
# SPIFFE IDs follow spec/spike-api.md §1 (trust domain spike.ist = every SPIKE_TRUST_ROOT_*
# default): /spike/nexus, /spike/keeper[/...], /spike/pilot/role/{superuser,recover,restore};
# anything else is a workload whose access policies decide.
set -eu

SOCKET=/run/spire/server/private/api.sock
BOOTSTRAP=/run/spire/bootstrap
TRUST_DOMAIN=spike.ist
NODE_ID="spiffe://$TRUST_DOMAIN/node/compose"

server() { spire-server "$@" -socketPath "$SOCKET"; }

tries=0
until spire-server healthcheck -socketPath "$SOCKET" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then echo "registrar: SPIRE Server not healthy after 120 s" >&2; exit 1; fi
  sleep 1
done

server bundle show >"$BOOTSTRAP/bundle.pem.tmp"
mv "$BOOTSTRAP/bundle.pem.tmp" "$BOOTSTRAP/bundle.pem"
token=$(server token generate -spiffeID "$NODE_ID" -ttl 600 | awk '/^Token:/ { print $2 }')
[ -n "$token" ] || { echo "registrar: no join token" >&2; exit 1; }
umask 077
printf '%s\n' "$token" >"$BOOTSTRAP/join-token.tmp"
mv "$BOOTSTRAP/join-token.tmp" "$BOOTSTRAP/join-token"
chmod 0644 "$BOOTSTRAP/bundle.pem"
echo "registrar: agent bootstrap written (node $NODE_ID)"

# entry <name> <uid> <SPIFFE ID path>
entry() {
  id="spiffe://$TRUST_DOMAIN$3"
  if server entry show -spiffeID "$id" -selector "unix:uid:$2" | grep -q '^Entry ID'; then
    echo "registrar: $1 $id (uid $2) already registered"
  else
    server entry create -parentID "$NODE_ID" -spiffeID "$id" -selector "unix:uid:$2" >/dev/null
    echo "registrar: $1 $id (uid $2) registered"
  fi
}

entry nexus 1001 /spike/nexus
entry keeper-1 1011 /spike/keeper/1
entry keeper-2 1012 /spike/keeper/2
entry keeper-3 1013 /spike/keeper/3
entry pilot 1002 /spike/pilot/role/superuser
entry recover 1003 /spike/pilot/role/recover
entry restore 1004 /spike/pilot/role/restore
entry demo-workload 1100 /workload/demo
