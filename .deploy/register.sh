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
# Nexus's entry also gets DNS SANs (NEXUS_DNS_NAMES, one `-dns` each): standard TLS clients of its
# Vault KV v2 API (hvac, node-vault, the Vault Go client and CLI, External Secrets Operator) verify
# the server hostname against them. `nexus` is its name on the compose network, `localhost` the
# published port on the host. A Nexus entry registered without them is reported, not changed:
# `docker compose down -v` re-registers everything.
#
# SPIFFE IDs follow docs/spike-api.md §1 (trust domain spike.ist = every SPIKE_TRUST_ROOT_*
# default): /spike/nexus, /spike/keeper[/...], /spike/pilot/role/{superuser,recover,restore};
# anything else is a workload whose access policies decide.
set -eu

SOCKET=/run/spire/server/private/api.sock
BOOTSTRAP=/run/spire/bootstrap
TRUST_DOMAIN=spike.ist
NODE_ID="spiffe://$TRUST_DOMAIN/node/compose"
NEXUS_DNS_NAMES="nexus localhost"

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
  dns=""
  if [ "$1" = nexus ]; then
    for name in $NEXUS_DNS_NAMES; do dns="$dns -dns $name"; done
  fi
  shown=$(server entry show -spiffeID "$id" -selector "unix:uid:$2" || true)
  if printf '%s\n' "$shown" | grep -q '^Entry ID'; then
    echo "registrar: $1 $id (uid $2) already registered"
    if [ -n "$dns" ] && ! printf '%s\n' "$shown" | grep -q '^DNS name'; then
      echo "registrar: warning: $1 was registered without DNS names ($NEXUS_DNS_NAMES); Vault clients" \
        "cannot verify its hostname until it is registered again (docker compose down -v)" >&2
    fi
  else
    # $dns is unquoted on purpose: one word per flag and name.
    # shellcheck disable=SC2086
    server entry create -parentID "$NODE_ID" -spiffeID "$id" -selector "unix:uid:$2" $dns >/dev/null
    echo "registrar: $1 $id (uid $2) registered${dns:+ (DNS names: $NEXUS_DNS_NAMES)}"
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
