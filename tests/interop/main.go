// Command interop drives our Nexus with the upstream SPIKE Go SDK (github.com/spiffe/spike-sdk-go,
// pinned in go.mod) exactly as an existing SPIKE application would: the SDK finds its SVID on the
// Workload API (SPIFFE_ENDPOINT_SOCKET), Nexus at SPIKE_NEXUS_API_URL, and accepts only a server
// whose SPIFFE ID has the nexus role under SPIKE_TRUST_ROOT_NEXUS (docs/spike-api.md §1, §2, §10).
//
// It is run by tests/spire/interop.test.ts under a real SPIRE Agent, which attests this compiled
// executable by its path (unix:path) and hands it its own SVID.
//
//	interop -mode denied -prefix P   no policy yet: every secret and cipher call must be refused
//	                                 with access_unauthorized (401)
//	interop -mode full -prefix P     every listed SDK call, each result checked
//
// Every check prints one line: "OK <Call>: <what was checked>" on success; the first failure
// prints "FAIL <Call>: <why>" and exits 1. The last line of a clean run is "INTEROP PASS <n>".
// No secret value is ever printed.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/spike-sdk-go/api"
	"github.com/spiffe/spike-sdk-go/api/entity/data"
	sdkErrors "github.com/spiffe/spike-sdk-go/errors"
	"github.com/spiffe/spike-sdk-go/spiffe"
)

var checks int

func ok(call, format string, args ...any) {
	checks++
	fmt.Printf("OK %s: %s\n", call, fmt.Sprintf(format, args...))
}

func fail(call, format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", call, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// must fails the run when err is not nil.
func must(call string, err *sdkErrors.SDKError) {
	if err != nil {
		fail(call, "unexpected error %s (%s)", err.Code, err.Error())
	}
}

// mustBe fails the run unless err carries the wanted SDK error code.
func mustBe(call string, err *sdkErrors.SDKError, want *sdkErrors.SDKError) {
	if err == nil {
		fail(call, "succeeded, want error %s", want.Code)
	}
	if !err.Is(want) {
		fail(call, "error %s, want %s", err.Code, want.Code)
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, found := b[k]; !found || w != v {
			return false
		}
	}
	return true
}

func main() {
	mode := flag.String("mode", "full", "full | denied")
	prefix := flag.String("prefix", "", "unique path and policy-name prefix for this run")
	expectID := flag.String("expect-id", "", "the SPIFFE ID this program must have been issued")
	flag.Parse()
	if *prefix == "" {
		fail("flags", "-prefix is required")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The SDK's own source constructor, as api.New() uses it; we keep the returned ID to prove
	// which identity SPIRE issued to this executable.
	source, id, sourceErr := spiffe.Source(ctx, spiffe.EndpointSocket())
	if sourceErr != nil {
		fail("Source", "no SVID from the Workload API: %s", sourceErr.Error())
	}
	fmt.Printf("IDENTITY %s\n", id)
	if *expectID != "" && id != *expectID {
		fail("Source", "SVID ID %s, want %s", id, *expectID)
	}
	client := api.NewWithSource(source)
	defer func() { _ = client.Close() }()

	switch *mode {
	case "denied":
		denied(ctx, client, *prefix)
	case "full":
		full(ctx, client, *prefix)
	default:
		fail("flags", "unknown -mode %q", *mode)
	}
	fmt.Printf("INTEROP PASS %d\n", checks)
}

// denied: a workload with no policy is refused everything but nothing is leaked (spec §7).
func denied(ctx context.Context, c *api.API, prefix string) {
	path := prefix + "/denied"
	mustBe("PutSecret", c.PutSecret(ctx, path, map[string]string{"k": "v"}), sdkErrors.ErrAccessUnauthorized)
	ok("PutSecret", "refused with access_unauthorized without a policy")
	_, err := c.GetSecret(ctx, path)
	mustBe("GetSecret", err, sdkErrors.ErrAccessUnauthorized)
	ok("GetSecret", "refused with access_unauthorized without a policy")
	_, err = c.ListSecretKeys(ctx)
	mustBe("ListSecretKeys", err, sdkErrors.ErrAccessUnauthorized)
	ok("ListSecretKeys", "refused with access_unauthorized without a policy")
	_, err = c.CipherEncryptStream(ctx, bytes.NewReader([]byte("x")))
	mustBe("CipherEncryptStream", err, sdkErrors.ErrAccessUnauthorized)
	ok("CipherEncryptStream", "refused with access_unauthorized without a policy")
	_, err = c.ListPolicies(ctx, "", "")
	mustBe("ListPolicies", err, sdkErrors.ErrAccessUnauthorized)
	ok("ListPolicies", "refused with access_unauthorized without a policy")
}

func full(ctx context.Context, c *api.API, prefix string) {
	path := prefix + "/db"
	v1 := map[string]string{"user": "app", "pass": "first-" + prefix}
	v2 := map[string]string{"user": "app", "pass": "second-" + prefix, "extra": ""}

	// --- secrets -------------------------------------------------------------------------------
	before := time.Now().Add(-5 * time.Second)
	must("PutSecret", c.PutSecret(ctx, path, v1))
	must("PutSecret", c.PutSecret(ctx, path, v2))
	ok("PutSecret", "two versions written")

	got, err := c.GetSecret(ctx, path)
	must("GetSecret", err)
	if got == nil || !sameMap(got.Data, v2) {
		fail("GetSecret", "current version does not hold the second write (%d keys)", len(got.Data))
	}
	ok("GetSecret", "current version = second write (%d keys, empty value kept)", len(got.Data))

	old, err := c.GetSecretVersion(ctx, path, 1)
	must("GetSecretVersion", err)
	if old == nil || !sameMap(old.Data, v1) {
		fail("GetSecretVersion", "version 1 does not hold the first write")
	}
	_, err = c.GetSecretVersion(ctx, path, 99)
	mustBe("GetSecretVersion", err, sdkErrors.ErrAPINotFound)
	ok("GetSecretVersion", "version 1 = first write; version 99 -> api_not_found")

	md, err := c.GetSecretMetadata(ctx, path, 0)
	must("GetSecretMetadata", err)
	m := md.Metadata
	if m.CurrentVersion != 2 || m.OldestVersion != 1 || m.MaxVersions != 10 {
		fail("GetSecretMetadata", "current=%d oldest=%d max=%d, want 2 1 10",
			m.CurrentVersion, m.OldestVersion, m.MaxVersions)
	}
	if m.CreatedTime.Before(before) || m.UpdatedTime.Before(m.CreatedTime) {
		fail("GetSecretMetadata", "times out of order: created %s updated %s", m.CreatedTime, m.UpdatedTime)
	}
	if len(md.Versions) != 2 {
		fail("GetSecretMetadata", "%d versions, want 2", len(md.Versions))
	}
	for n := 1; n <= 2; n++ {
		info, found := md.Versions[n]
		if !found || info.Version != n || info.DeletedTime != nil || info.CreatedTime.Before(before) {
			fail("GetSecretMetadata", "version %d entry wrong: %+v", n, info)
		}
	}
	_, err = c.GetSecretMetadata(ctx, prefix+"/missing", 0)
	mustBe("GetSecretMetadata", err, sdkErrors.ErrAPINotFound)
	ok("GetSecretMetadata", "current 2, oldest 1, max 10, both versions live; missing -> api_not_found")

	keys, err := c.ListSecretKeys(ctx)
	must("ListSecretKeys", err)
	if keys == nil || !slices.Contains(*keys, path) {
		fail("ListSecretKeys", "path not listed")
	}
	if !sort.StringsAreSorted(*keys) {
		fail("ListSecretKeys", "keys are not sorted")
	}
	ok("ListSecretKeys", "path listed among %d sorted keys", len(*keys))

	must("DeleteSecret", c.DeleteSecret(ctx, path))
	_, err = c.GetSecretVersion(ctx, path, 2)
	mustBe("DeleteSecret", err, sdkErrors.ErrAPINotFound)
	got, err = c.GetSecret(ctx, path)
	must("DeleteSecret", err)
	if !sameMap(got.Data, v1) {
		fail("DeleteSecret", "after deleting version 2 the current version is not version 1")
	}
	md, err = c.GetSecretMetadata(ctx, path, 1)
	must("DeleteSecret", err)
	if md.Metadata.CurrentVersion != 1 || md.Versions[2].DeletedTime == nil || md.Versions[1].DeletedTime != nil {
		fail("DeleteSecret", "metadata after delete: current=%d", md.Metadata.CurrentVersion)
	}
	mustBe("DeleteSecret", c.DeleteSecret(ctx, prefix+"/missing"), sdkErrors.ErrAPINotFound)
	ok("DeleteSecret", "current version 2 soft-deleted, version 1 current again; missing path -> api_not_found")

	must("UndeleteSecret", c.UndeleteSecret(ctx, path, []int{2}))
	got, err = c.GetSecret(ctx, path)
	must("UndeleteSecret", err)
	if !sameMap(got.Data, v2) {
		fail("UndeleteSecret", "version 2 is not current again")
	}
	mustBe("UndeleteSecret", c.UndeleteSecret(ctx, path, []int{2}), sdkErrors.ErrAPINotFound)
	ok("UndeleteSecret", "version 2 restored and current; undeleting a live version -> api_not_found")

	// --- policies ------------------------------------------------------------------------------
	name := strings.ReplaceAll(prefix, "/", "-") + "-readers"
	idPattern := `^spiffe://spike\.ist/workload/` + strings.ReplaceAll(prefix, "/", "-") + `-[0-9]+$`
	pathPattern := "^" + prefix + "/apps/"
	created := time.Now().Add(-5 * time.Second)
	must("CreatePolicy", c.CreatePolicy(ctx, name, idPattern, pathPattern,
		[]data.PolicyPermission{data.PermissionRead, data.PermissionList}))
	mustBe("CreatePolicy", c.CreatePolicy(ctx, name+"-bad", idPattern, pathPattern,
		[]data.PolicyPermission{"fly"}), sdkErrors.ErrAPIBadRequest)
	mustBe("CreatePolicy", c.CreatePolicy(ctx, name+"-bad", idPattern, "^(unclosed",
		[]data.PolicyPermission{data.PermissionRead}), sdkErrors.ErrAPIBadRequest)
	ok("CreatePolicy", "policy created; unknown permission and uncompilable pattern -> api_bad_request")

	p, err := c.GetPolicy(ctx, name)
	must("GetPolicy", err)
	if p.Name != name || p.SPIFFEIDPattern != idPattern || p.PathPattern != pathPattern {
		fail("GetPolicy", "fields differ: name %q id-pattern %q path-pattern %q", p.Name, p.SPIFFEIDPattern, p.PathPattern)
	}
	if !slices.Equal(p.Permissions, []data.PolicyPermission{data.PermissionRead, data.PermissionList}) {
		fail("GetPolicy", "permissions %v", p.Permissions)
	}
	if p.CreatedAt.Before(created) || p.UpdatedAt.Before(p.CreatedAt) {
		fail("GetPolicy", "times out of order: created %s updated %s", p.CreatedAt, p.UpdatedAt)
	}
	firstCreated := p.CreatedAt
	// Upsert by name keeps createdAt (spec §7).
	must("GetPolicy", c.CreatePolicy(ctx, name, idPattern, pathPattern,
		[]data.PolicyPermission{data.PermissionRead}))
	p, err = c.GetPolicy(ctx, name)
	must("GetPolicy", err)
	if !slices.Equal(p.Permissions, []data.PolicyPermission{data.PermissionRead}) || !p.CreatedAt.Equal(firstCreated) {
		fail("GetPolicy", "upsert: permissions %v, createdAt %s (was %s)", p.Permissions, p.CreatedAt, firstCreated)
	}
	ok("GetPolicy", "all fields round-trip (spiffiedPattern key); upsert keeps createdAt")

	all, err := c.ListPolicies(ctx, "", "")
	must("ListPolicies", err)
	if !containsPolicy(*all, name) {
		fail("ListPolicies", "policy not in the full list (%d items)", len(*all))
	}
	byID, err := c.ListPolicies(ctx, idPattern, "")
	must("ListPolicies", err)
	if len(*byID) != 1 || (*byID)[0].Name != name {
		fail("ListPolicies", "filter by SPIFFE ID pattern gave %d items", len(*byID))
	}
	byPath, err := c.ListPolicies(ctx, "", pathPattern)
	must("ListPolicies", err)
	if len(*byPath) != 1 || (*byPath)[0].Name != name {
		fail("ListPolicies", "filter by path pattern gave %d items", len(*byPath))
	}
	none, err := c.ListPolicies(ctx, "^nothing-matches-this$", "")
	must("ListPolicies", err)
	if none == nil || len(*none) != 0 {
		fail("ListPolicies", "filter that matches nothing gave items")
	}
	ok("ListPolicies", "full list has it; exact filters by SPIFFE ID and by path give exactly it")

	must("DeletePolicy", c.DeletePolicy(ctx, name))
	// Deliberate difference (spec §13 #1): upstream answers 500 for a missing policy, which this
	// SDK reports as net_peer_connection; our Nexus answers 404 -> api_not_found.
	_, err = c.GetPolicy(ctx, name)
	mustBe("DeletePolicy", err, sdkErrors.ErrAPINotFound)
	mustBe("DeletePolicy", c.DeletePolicy(ctx, name), sdkErrors.ErrAPINotFound)
	all, err = c.ListPolicies(ctx, "", "")
	must("DeletePolicy", err)
	if containsPolicy(*all, name) {
		fail("DeletePolicy", "policy still listed")
	}
	ok("DeletePolicy", "policy gone; get and delete of it -> api_not_found (spec §13 #1)")

	// --- cipher --------------------------------------------------------------------------------
	plaintext := make([]byte, 3000)
	for i := range plaintext {
		plaintext[i] = byte(i * 7)
	}
	sealed, err := c.CipherEncryptStream(ctx, bytes.NewReader(plaintext))
	must("CipherEncryptStream", err)
	if len(sealed) != 1+12+len(plaintext)+16 || sealed[0] != 1 {
		fail("CipherEncryptStream", "layout: %d bytes, version byte %d", len(sealed), sealed[0])
	}
	again, err := c.CipherEncryptStream(ctx, bytes.NewReader(plaintext))
	must("CipherEncryptStream", err)
	if bytes.Equal(sealed[1:13], again[1:13]) {
		fail("CipherEncryptStream", "two encryptions used the same nonce")
	}
	ok("CipherEncryptStream", "0x01 || nonce(12) || ciphertext || tag(16), fresh nonce per call")

	opened, err := c.CipherDecryptStream(ctx, bytes.NewReader(sealed))
	must("CipherDecryptStream", err)
	if !bytes.Equal(opened, plaintext) {
		fail("CipherDecryptStream", "plaintext differs after the round trip")
	}
	forged := bytes.Clone(sealed)
	forged[len(forged)-1] ^= 0x01
	_, err = c.CipherDecryptStream(ctx, bytes.NewReader(forged))
	mustBe("CipherDecryptStream", err, sdkErrors.ErrAPIBadRequest)
	wrongVersion := bytes.Clone(sealed)
	wrongVersion[0] = 2
	_, err = c.CipherDecryptStream(ctx, bytes.NewReader(wrongVersion))
	mustBe("CipherDecryptStream", err, sdkErrors.ErrAPIBadRequest)
	ok("CipherDecryptStream", "round trip exact; forged tag and unknown version -> api_bad_request")

	// JSON mode (not in the list, checked as well): the stream layout split into its JSON
	// fields decrypts to the same plaintext, so both modes share one key and one format.
	opened, err = c.CipherDecrypt(ctx, sealed[0], sealed[1:13], sealed[13:], "AES-GCM")
	must("CipherDecrypt", err)
	if !bytes.Equal(opened, plaintext) {
		fail("CipherDecrypt", "JSON decrypt of the stream ciphertext differs from the plaintext")
	}
	_, err = c.CipherDecrypt(ctx, 1, sealed[1:12], sealed[13:], "")
	mustBe("CipherDecrypt", err, sdkErrors.ErrAPIBadRequest)
	ok("CipherDecrypt", "stream ciphertext as {version,nonce,ciphertext} decrypts; 11-byte nonce -> api_bad_request")
	// Upstream's SDK keeps only the ciphertext of a JSON encryption (spiffe/spike #256), so the
	// nonce is lost and the result cannot be decrypted; its length is all there is to check.
	ct, err := c.CipherEncrypt(ctx, plaintext, "")
	must("CipherEncrypt", err)
	if len(ct) != len(plaintext)+16 {
		fail("CipherEncrypt", "ciphertext of %d bytes, want %d", len(ct), len(plaintext)+16)
	}
	ok("CipherEncrypt", "JSON mode: ciphertext plus 16-byte tag (the SDK drops the nonce, upstream #256)")
}

func containsPolicy(items []data.PolicyListItem, name string) bool {
	for _, item := range items {
		if item.Name == name {
			return true
		}
	}
	return false
}
