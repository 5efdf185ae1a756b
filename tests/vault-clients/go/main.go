// The Vault Go client (github.com/hashicorp/vault/api) against a real Nexus over mTLS
// (docs/vault-kv2.md §7). Environment as for tests/vault-clients/hvac_suite.py; the client is
// configured the standard way (VAULT_ADDR, VAULT_CACERT, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY)
// with hostname verification ON. Prints one line per check, last `go-api: N passed, M failed`.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sort"

	vault "github.com/hashicorp/vault/api"
)

type result struct {
	name string
	err  error
}

var results []result

func check(name string, fn func() error) {
	results = append(results, result{name, fn()})
}

func newClient(addr, ca, cert, key string) *vault.Client {
	os.Setenv("VAULT_ADDR", addr)
	os.Setenv("VAULT_CACERT", ca)
	os.Setenv("VAULT_CLIENT_CERT", cert)
	os.Setenv("VAULT_CLIENT_KEY", key)
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		panic(cfg.Error)
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		panic(err)
	}
	c.ClearToken()
	return c
}

func want(got, exp any) error {
	if !reflect.DeepEqual(got, exp) {
		return fmt.Errorf("got %#v, want %#v", got, exp)
	}
	return nil
}

func status(err error, code int) error {
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("want a ResponseError %d, got %v", code, err)
	}
	return want(re.StatusCode, code)
}

func main() {
	env := os.Getenv
	ctx := context.Background()
	c := newClient(env("VAULT_URL"), env("CA_FILE"), env("PILOT_CERT"), env("PILOT_KEY"))
	kv := c.KVv2("secret")

	check("Put, Get, GetVersion", func() error {
		s, err := kv.Put(ctx, "go/a", map[string]any{"user": "u1"})
		if err != nil {
			return err
		}
		if err := want(s.VersionMetadata.Version, 1); err != nil {
			return err
		}
		if _, err := kv.Put(ctx, "go/a", map[string]any{"user": "u2"}); err != nil {
			return err
		}
		got, err := kv.Get(ctx, "go/a")
		if err != nil {
			return err
		}
		if err := want(got.Data, map[string]any{"user": "u2"}); err != nil {
			return err
		}
		v1, err := kv.GetVersion(ctx, "go/a", 1)
		if err != nil {
			return err
		}
		return want(v1.Data, map[string]any{"user": "u1"})
	})

	check("Put with CAS: success and mismatch", func() error {
		if _, err := kv.Put(ctx, "go/cas", map[string]any{"a": "1"}, vault.WithCheckAndSet(0)); err != nil {
			return err
		}
		_, err := kv.Put(ctx, "go/cas", map[string]any{"a": "2"}, vault.WithCheckAndSet(0))
		return status(err, 400)
	})

	check("Patch (HTTP PATCH and read-then-write)", func() error {
		if _, err := kv.Patch(ctx, "go/a", map[string]any{"extra": "x"}); err != nil {
			return err
		}
		if _, err := kv.Patch(ctx, "go/a", map[string]any{"more": "y"}, vault.WithMergeMethod(vault.KVMergeMethodReadWrite)); err != nil {
			return err
		}
		got, err := kv.Get(ctx, "go/a")
		if err != nil {
			return err
		}
		return want(got.Data, map[string]any{"user": "u2", "extra": "x", "more": "y"})
	})

	check("Delete, Get deleted, Undelete, DeleteVersions, Destroy", func() error {
		if err := kv.Delete(ctx, "go/a"); err != nil {
			return err
		}
		// A deleted latest version: a 404 with metadata, parsed as a secret without data.
		gone, err := kv.Get(ctx, "go/a")
		if err != nil {
			return err
		}
		if gone.Data != nil || gone.VersionMetadata == nil || gone.VersionMetadata.DeletionTime.IsZero() {
			return fmt.Errorf("want a deleted version with metadata, got %#v", gone)
		}
		if err := kv.Undelete(ctx, "go/a", []int{4}); err != nil {
			return err
		}
		if _, err := kv.Get(ctx, "go/a"); err != nil {
			return err
		}
		if err := kv.DeleteVersions(ctx, "go/a", []int{1}); err != nil {
			return err
		}
		if err := kv.Destroy(ctx, "go/a", []int{2}); err != nil {
			return err
		}
		m, err := kv.GetMetadata(ctx, "go/a")
		if err != nil {
			return err
		}
		if err := want(m.Versions["2"].Destroyed, true); err != nil {
			return err
		}
		return want(m.Versions["1"].DeletionTime.IsZero(), false)
	})

	check("PutMetadata, PatchMetadata, GetMetadata", func() error {
		if err := kv.PutMetadata(ctx, "go/a", vault.KVMetadataPutInput{MaxVersions: 6, CustomMetadata: map[string]any{"owner": "me"}}); err != nil {
			return err
		}
		if err := kv.PatchMetadata(ctx, "go/a", vault.KVMetadataPatchInput{CustomMetadata: map[string]any{"tier": "1"}}); err != nil {
			return err
		}
		m, err := kv.GetMetadata(ctx, "go/a")
		if err != nil {
			return err
		}
		if err := want(m.MaxVersions, 6); err != nil {
			return err
		}
		if err := want(m.CurrentVersion, 4); err != nil {
			return err
		}
		return want(m.CustomMetadata, map[string]any{"owner": "me", "tier": "1"})
	})

	check("Rollback", func() error {
		s, err := kv.Rollback(ctx, "go/a", 3)
		if err != nil {
			return err
		}
		if err := want(s.VersionMetadata.Version, 5); err != nil {
			return err
		}
		got, err := kv.Get(ctx, "go/a")
		if err != nil {
			return err
		}
		return want(got.Data, map[string]any{"user": "u2", "extra": "x"})
	})

	check("Logical().List at root and in a folder", func() error {
		if _, err := kv.Put(ctx, "go/dir/x", map[string]any{"a": "1"}); err != nil {
			return err
		}
		s, err := c.Logical().List("secret/metadata/go")
		if err != nil {
			return err
		}
		var keys []string
		for _, k := range s.Data["keys"].([]any) {
			keys = append(keys, k.(string))
		}
		sort.Strings(keys)
		if err := want(keys, []string{"a", "cas", "dir/"}); err != nil {
			return err
		}
		root, err := c.Logical().List("secret/metadata")
		if err != nil || root == nil {
			return fmt.Errorf("root list: %v", err)
		}
		none, err := c.Logical().List("secret/metadata/none")
		if err != nil {
			return err
		}
		return want(none == nil, true)
	})

	check("DeleteMetadata, then Get is not found", func() error {
		if err := kv.DeleteMetadata(ctx, "go/a"); err != nil {
			return err
		}
		_, err := kv.Get(ctx, "go/a")
		if !errors.Is(err, vault.ErrSecretNotFound) {
			return fmt.Errorf("want ErrSecretNotFound, got %v", err)
		}
		return nil
	})

	check("denied workload: 403 permission denied", func() error {
		if _, err := kv.Put(ctx, "app/go", map[string]any{"k": "v"}); err != nil {
			return err
		}
		d := newClient(env("VAULT_URL"), env("CA_FILE"), env("DENIED_CERT"), env("DENIED_KEY"))
		d.SetToken("root")
		_, err := d.KVv2("secret").Get(ctx, "app/go")
		if err := status(err, http.StatusForbidden); err != nil {
			return err
		}
		var re *vault.ResponseError
		errors.As(err, &re)
		return want(re.Errors, []string{"permission denied"})
	})

	check("token lookup-self names the caller", func() error {
		s, err := c.Auth().Token().LookupSelf()
		if err != nil {
			return err
		}
		return want(s.Data["display_name"], env("PILOT_ID"))
	})

	check("sealed Nexus: 503 and Sys().Health sealed", func() error {
		s := newClient(env("VAULT_SEALED_URL"), env("SEALED_CA_FILE"), env("SEALED_PILOT_CERT"), env("SEALED_PILOT_KEY"))
		_, err := s.KVv2("secret").Get(ctx, "x")
		if err := status(err, http.StatusServiceUnavailable); err != nil {
			return err
		}
		h, err := s.Sys().Health()
		if err != nil {
			return err
		}
		return want(h.Sealed, true)
	})

	failed := 0
	for _, r := range results {
		if r.err != nil {
			failed++
			fmt.Printf("FAIL go-api %s -- %v\n", r.name, r.err)
		} else {
			fmt.Printf("ok   go-api %s\n", r.name)
		}
	}
	fmt.Printf("go-api: %d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
