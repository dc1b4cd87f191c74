#!/usr/bin/env bash
# Builds HashiCorp Vault (BUSL-1.1; used only as a test peer) from its Go module through the Go module
# proxy, as a wrapper module whose main calls command.Run like upstream's main.go.
#   usage: stack/vault-build.sh <version, e.g. v1.21.4> <outdir>   -> <outdir>/vault
# Called by stack/peers.sh (build_vault), which caches <outdir>; the wrapper lives in <outdir>/src.
#
# Upstream's go.mod replaces api, api/auth/{approle,kubernetes,userpass} and sdk with ./ paths, and a
# replace in a dependency is ignored, so the wrapper re-declares them. The proxy refuses commit
# pseudo-versions of github.com/hashicorp/vault/* (403) and does not tell the tag's commit, so the
# same-commit sub-modules cannot be had: each one is pinned to a published tag instead. For most
# versions that is the version upstream's own go.mod requires; SUBMODULE_PINS below overrides it where
# that tag does not compile. The non-local replaces and excludes are copied verbatim.
set -euo pipefail

version=${1:?usage: vault-build.sh <version> <outdir>}
out=${2:?usage: vault-build.sh <version> <outdir>}
case "$version" in v*) ;; *) version=v$version ;; esac

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# Per Vault version: sub-module pins that differ from the upstream go.mod's require lines
# ("module version" pairs, one per line).
submodule_pins() {
  case "$1" in
    *) ;;
  esac
}

work=$out/src
rm -rf "$work"
mkdir -p "$work"

vmod=$(go mod download -json "github.com/hashicorp/vault@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$vmod" ] || {
  echo "vault-build: cannot download github.com/hashicorp/vault@$version" >&2
  exit 1
}
# The tag time stands in for the build date: plugins' PluginEnv fails on an empty version.BuildDate.
build_date=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z07:00"}}' "github.com/hashicorp/vault@$version")

upstream=$(go mod edit -json "$vmod")
pins=$(submodule_pins "$version")

{
  echo "module ferry.test/vault"
  echo
  echo "go $(printf '%s' "$upstream" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')"
  echo
  echo "require github.com/hashicorp/vault $version"
  echo
  printf '%s' "$upstream" | PINS="$pins" python3 -c '
import json, os, sys
m = json.load(sys.stdin)
req = {r["Path"]: r["Version"] for r in m.get("Require") or []}
pins = dict(l.split() for l in os.environ["PINS"].splitlines() if l.strip())
for r in m.get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new["Path"].startswith("./") or new["Path"].startswith("../"):
        path = old["Path"]
        v = pins.get(path) or req.get(path)
        if not v:
            sys.exit("vault-build: no version for local replace of " + path)
        print("replace %s => %s %s" % (path, path, v))
    else:
        lhs = old["Path"] + (" " + old["Version"] if old.get("Version") else "")
        rhs = new["Path"] + (" " + new["Version"] if new.get("Version") else "")
        print("replace %s => %s" % (lhs, rhs))
for e in m.get("Exclude") or []:
    print("exclude %s %s" % (e["Path"], e["Version"]))
'
} >"$work/go.mod"

cat >"$work/main.go" <<'EOF'
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
EOF

cd "$work"
echo "vault-build: wrapper go.mod:" >&2
cat go.mod >&2
go mod tidy
go build -trimpath -ldflags "-s -w -X github.com/hashicorp/vault/version.BuildDate=$build_date" -o "$out/vault" .
"$out/vault" version
