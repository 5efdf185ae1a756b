"""hvac (Python) against a real Nexus over mTLS (vault-kv2.md §7 conformance suite).

Environment: VAULT_URL, VAULT_SEALED_URL, CA_FILE, and <NAME>_CERT / <NAME>_KEY for PILOT,
DENIED and READER (files written from Workload API SVIDs by tests/support/vault-server.ts).
Hostname verification is ON (verify=CA_FILE against the SVID's localhost SAN).
Prints one line per check and, last, `hvac: N passed, M failed`.
"""
import os
import sys
import traceback

import hvac
from hvac import exceptions

URL = os.environ["VAULT_URL"]
CA = os.environ["CA_FILE"]
results = []


def client(name, url=URL):
    cert = (os.environ[f"{name}_CERT"], os.environ[f"{name}_KEY"])
    return hvac.Client(url=url, cert=cert, verify=CA, strict_http=True)


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, True, ""))
        except Exception as e:  # noqa: BLE001 - report every failure and continue
            results.append((name, False, f"{type(e).__name__}: {e}"))
            traceback.print_exc(file=sys.stderr)
        return fn
    return wrap


def eq(got, want):
    if got != want:
        raise AssertionError(f"got {got!r}, want {want!r}")


def raises(exc, fn):
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


c = client("PILOT")
kv = c.secrets.kv.v2


@check("configure and read_configuration")
def _():
    kv.configure(max_versions=10, cas_required=False, delete_version_after="0s")
    conf = kv.read_configuration()["data"]
    eq(conf, {"cas_required": False, "delete_version_after": "0s", "max_versions": 10})


@check("auth.cert.login, then is_authenticated and lookup_self (caller SPIFFE ID)")
def _():
    # hvac answers is_authenticated() False client-side while it holds no token at all.
    fresh = client("PILOT")
    eq(fresh.is_authenticated(), False)
    fresh.auth.cert.login(cert_pem=os.environ["PILOT_CERT"], key_pem=os.environ["PILOT_KEY"])
    eq(fresh.is_authenticated(), True)
    me = fresh.auth.token.lookup_self()["data"]
    eq(me["display_name"], os.environ["PILOT_ID"])
    eq(me["type"], "service")


@check("create_or_update_secret, read_secret_version (latest and by version)")
def _():
    r = kv.create_or_update_secret(path="hv/a", secret={"user": "u1"})
    eq(r["data"]["version"], 1)
    kv.create_or_update_secret(path="hv/a", secret={"user": "u2", "n": 2})
    latest = kv.read_secret_version(path="hv/a", raise_on_deleted_version=True)
    eq(latest["data"]["data"], {"user": "u2", "n": 2})
    eq(latest["data"]["metadata"]["version"], 2)
    eq(kv.read_secret_version(path="hv/a", version=1, raise_on_deleted_version=True)["data"]["data"], {"user": "u1"})


@check("create_or_update_secret with cas: success and each CAS error")
def _():
    eq(kv.create_or_update_secret(path="hv/cas", secret={"a": "1"}, cas=0)["data"]["version"], 1)
    e = raises(exceptions.InvalidRequest, lambda: kv.create_or_update_secret(path="hv/cas", secret={"a": "2"}, cas=0))
    eq(e.errors, ["check-and-set parameter did not match the current version"])
    kv.update_metadata(path="hv/cas", cas_required=True)
    e = raises(exceptions.InvalidRequest, lambda: kv.create_or_update_secret(path="hv/cas", secret={"a": "2"}))
    eq(e.errors, ["check-and-set parameter required for this call"])
    eq(kv.create_or_update_secret(path="hv/cas", secret={"a": "2"}, cas=1)["data"]["version"], 2)


@check("patch (hvac style: read, merge, write with cas)")
def _():
    kv.patch(path="hv/a", secret={"extra": "x"})
    eq(kv.read_secret_version(path="hv/a", raise_on_deleted_version=True)["data"]["data"], {"user": "u2", "n": 2, "extra": "x"})


@check("HTTP PATCH (merge-patch) through the adapter")
def _():
    c.adapter.request("patch", "/v1/secret/data/hv/a", json={"data": {"extra": None}}, headers={"Content-Type": "application/merge-patch+json"})
    got = kv.read_secret_version(path="hv/a", raise_on_deleted_version=True)["data"]
    eq(got["data"], {"user": "u2", "n": 2})
    eq(got["metadata"]["version"], 4)


@check("delete_latest_version_of_secret, read deleted version (404 with metadata)")
def _():
    kv.delete_latest_version_of_secret(path="hv/a")
    body = kv.read_secret_version(path="hv/a", raise_on_deleted_version=False)
    eq(body["data"]["data"], None)
    eq(body["data"]["metadata"]["version"], 4)
    if body["data"]["metadata"]["deletion_time"] == "":
        raise AssertionError("deletion_time unset")
    raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="hv/a", raise_on_deleted_version=True))


@check("undelete_secret_versions, delete_secret_versions, destroy_secret_versions")
def _():
    kv.undelete_secret_versions(path="hv/a", versions=[4])
    eq(kv.read_secret_version(path="hv/a", raise_on_deleted_version=True)["data"]["metadata"]["version"], 4)
    kv.delete_secret_versions(path="hv/a", versions=[1])
    eq(kv.read_secret_version(path="hv/a", version=1, raise_on_deleted_version=False)["data"]["data"], None)
    kv.destroy_secret_versions(path="hv/a", versions=[2])
    meta = kv.read_secret_metadata(path="hv/a")["data"]
    eq(meta["versions"]["2"]["destroyed"], True)
    eq(meta["versions"]["1"]["destroyed"], False)


@check("update_metadata with custom_metadata, read_secret_metadata")
def _():
    kv.update_metadata(path="hv/a", max_versions=5, custom_metadata={"owner": "team-a"})
    meta = kv.read_secret_metadata(path="hv/a")["data"]
    eq(meta["max_versions"], 5)
    eq(meta["custom_metadata"], {"owner": "team-a"})
    eq(meta["current_version"], 4)
    e = raises(exceptions.InvalidRequest, lambda: kv.update_metadata(path="hv/a", custom_metadata={"k": "v" * 513}))
    if not e.errors[0].startswith("custom_metadata validation failed: "):
        raise AssertionError(e.errors)


@check("patch metadata (HTTP PATCH through the adapter)")
def _():
    c.adapter.request("patch", "/v1/secret/metadata/hv/a", json={"custom_metadata": {"owner": None, "tier": "1"}}, headers={"Content-Type": "application/merge-patch+json"})
    eq(kv.read_secret_metadata(path="hv/a")["data"]["custom_metadata"], {"tier": "1"})


@check("read_secret_subkeys (GET subkeys/ through the adapter)")
def _():
    kv.create_or_update_secret(path="hv/sub", secret={"a": 1, "b": {"c": 2}})
    got = c.adapter.get("/v1/secret/subkeys/hv/sub")
    eq(got["data"]["subkeys"], {"a": None, "b": {"c": None}})


@check("list_secrets at root and in a folder (strict_http GET ?list=true)")
def _():
    kv.create_or_update_secret(path="hv/dir/x", secret={"a": "1"})
    keys = kv.list_secrets(path="hv")["data"]["keys"]
    eq(keys, ["a", "cas", "dir/", "sub"])
    root = kv.list_secrets(path="")["data"]["keys"]
    if "hv/" not in root:
        raise AssertionError(root)
    raises(exceptions.InvalidPath, lambda: kv.list_secrets(path="nothing-here"))


@check("delete_metadata_and_all_versions, then read is InvalidPath")
def _():
    kv.delete_metadata_and_all_versions(path="hv/a")
    raises(exceptions.InvalidPath, lambda: kv.read_secret_version(path="hv/a", raise_on_deleted_version=True))
    raises(exceptions.InvalidPath, lambda: kv.read_secret_metadata(path="hv/a"))


@check("denied workload gets Forbidden; reader reads only app/")
def _():
    kv.create_or_update_secret(path="app/shared", secret={"k": "v"})
    denied = client("DENIED").secrets.kv.v2
    e = raises(exceptions.Forbidden, lambda: denied.read_secret_version(path="app/shared", raise_on_deleted_version=True))
    eq(e.errors, ["permission denied"])
    reader = client("READER").secrets.kv.v2
    eq(reader.read_secret_version(path="app/shared", raise_on_deleted_version=True)["data"]["data"], {"k": "v"})
    raises(exceptions.Forbidden, lambda: reader.create_or_update_secret(path="app/shared", secret={"k": "w"}))


@check("a token never replaces the certificate")
def _():
    t = client("DENIED")
    t.token = "root"
    raises(exceptions.Forbidden, lambda: t.secrets.kv.v2.read_secret_version(path="app/shared", raise_on_deleted_version=True))


@check("sealed Nexus: VaultDown (503) and health")
def _():
    sealed = hvac.Client(
        url=os.environ["VAULT_SEALED_URL"],
        cert=(os.environ["SEALED_PILOT_CERT"], os.environ["SEALED_PILOT_KEY"]),
        verify=os.environ["SEALED_CA_FILE"],
        strict_http=True,
    )
    raises(exceptions.VaultDown, lambda: sealed.secrets.kv.v2.read_secret_version(path="x", raise_on_deleted_version=True))
    eq(sealed.sys.read_health_status(method="GET").status_code, 503)
    eq(sealed.sys.is_sealed(), True)
    eq(c.sys.is_sealed(), False)


for name, ok, detail in results:
    print(f"{'ok  ' if ok else 'FAIL'} hvac {name}{'' if ok else ' -- ' + detail}")
passed = sum(1 for r in results if r[1])
print(f"hvac: {passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
