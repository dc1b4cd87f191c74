#!/usr/bin/env bash
# Builds HashiCorp Vault (BUSL-1.1; run only as a test peer, no code of it goes into Ferry) from its Go
# module through the Go module proxy: a wrapper module whose main calls command.Run like upstream's.
#   usage: stack/vault-build.sh <version, e.g. v1.21.4> <outdir>     writes <outdir>/vault
# Called by stack/peers.sh (build_vault), which caches <outdir>; the wrapper is built in <outdir>/src.
#
# Why it is not a plain wrapper:
# - Upstream's go.mod replaces api, api/auth/{approle,kubernetes,userpass} and sdk with ./ paths, and a
#   dependency's replaces are ignored, so the wrapper re-declares every replace. The non-local ones
#   (keyring, signedxml, ...) and any excludes are copied verbatim from upstream's go.mod.
# - The right targets would be the same commit's pseudo-versions of those sub-modules, but the proxy
#   reachable here refuses commit queries for github.com/hashicorp/vault/* (403) and reports no
#   Origin (commit) for the root tag. So each sub-module is pinned to a published tag: the version
#   upstream's go.mod requires (api v1.22.0, sdk v0.21.0 for 1.21.4; the api/auth modules are only
#   imported by upstream tests and do not reach the binary).
# - The tagged sdk is cut from main, while a 1.21.x release builds against the release branch's ./sdk,
#   which differs. No published sdk tag compiles with v1.21.4 (checked v0.16.0-v0.25.1): <= v0.20.0
#   lack framework.Backend.TryRecordObservationWithRequest; v0.21.0-v0.23.0 have the 3-argument
#   ActivationFunc and the 1-result keysutil RestorePolicy; >= v0.24.0 drop
#   logical.PkiCertificateCountSystemView. For such versions sdk_overlay below assembles a local sdk:
#   the required tag, plus named files from another published sdk tag, plus exact one-line
#   substitutions that must match (the build fails loudly if upstream text moved). Only signatures
#   are adjusted to what the release branch has, nothing else is edited.
set -euo pipefail

version=${1:?usage: vault-build.sh <version> <outdir>}
out=${2:?usage: vault-build.sh <version> <outdir>}
case "$version" in v*) ;; *) version=v$version ;; esac

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
SDK=github.com/hashicorp/vault/sdk

say() { printf 'vault-build: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

# Prints the overlay for the sdk of a Vault version, one step a line (empty: the plain tag works):
#   base <sdk tag>                         the tag to start from (default: upstream's requirement)
#   file <sdk tag> <path>                  copy <path> from that published sdk tag
#   sub <path> <old> <new>                 replace the one line whose text (indentation aside) is <old>
# Fields are tab-separated.
sdk_overlay() {
  case "$1" in
    v1.21.4)
      printf 'base\tv0.21.0\n'
      # keysutil.LockManager.RestorePolicy returns (keyName, error) since sdk v0.24.0; 1.21.4's
      # transit backend (path_restore.go) uses that form, backported to the release branch.
      printf 'file\tv0.24.0\thelper/keysutil/lock_manager.go\n'
      # The release branch kept the 2-argument framework.Backend.ActivationFunc (vault/identity_store.go
      # and vault/logical_system_activation_flags.go); main changed it in sdk v0.21.0. Only Vault itself
      # sets or calls it.
      printf 'sub\tframework/backend.go\tActivationFunc func(context.Context, *logical.Request, string) error\tActivationFunc func(context.Context, *logical.Request) error\n'
      ;;
  esac
}

moddir() { go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; }

work=$out/src
rm -rf "$work"
mkdir -p "$work"

vmod=$(go mod download -json "github.com/hashicorp/vault@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$vmod" ] || die "cannot download github.com/hashicorp/vault@$version from the Go module proxy"
# Plugins' PluginEnv fails on an empty version.BuildDate; use the tag's time, which is deterministic.
build_date=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "github.com/hashicorp/vault@$version")
upstream=$(go mod edit -json "$vmod")

overlay=$(sdk_overlay "$version")
if [ -n "$overlay" ]; then
  base=$(printf '%s\n' "$overlay" | awk -F'\t' '$1 == "base" {print $2}')
  [ -n "$base" ] || base=$(printf '%s' "$upstream" | python3 -c '
import json, sys
print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"] == "'"$SDK"'"))')
  src=$(moddir "$SDK@$base")
  [ -d "$src" ] || die "cannot download $SDK@$base"
  cp -r "$src" "$work/sdk"
  chmod -R u+w "$work/sdk"
  while IFS=$'\t' read -r op a b c; do
    case "$op" in
      base) ;;
      file)
        from=$(moddir "$SDK@$a")
        [ -f "$from/$b" ] || die "sdk overlay: $SDK@$a has no $b"
        cp "$from/$b" "$work/sdk/$b"
        say "sdk overlay: $b from $SDK@$a"
        ;;
      sub)
        python3 - "$work/sdk/$a" "$b" "$c" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read().split("\n")
hits = [i for i, l in enumerate(text) if l.strip() == old]
if len(hits) != 1:
    sys.exit("sdk overlay: expected exactly one line %r in %s, found %d" % (old, path, len(hits)))
line = text[hits[0]]
text[hits[0]] = line[: len(line) - len(line.lstrip())] + new
open(path, "w").write("\n".join(text))
EOF
        say "sdk overlay: $a: '$b' -> '$c'"
        ;;
      *) die "sdk overlay: unknown step '$op'" ;;
    esac
  done <<<"$overlay"
fi

{
  echo "module ferry.test/vault"
  echo
  echo "go $(printf '%s' "$upstream" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')"
  echo
  echo "require github.com/hashicorp/vault $version"
  echo
  printf '%s' "$upstream" | LOCAL_SDK=$([ -n "$overlay" ] && echo 1 || true) python3 -c '
import json, os, sys
m = json.load(sys.stdin)
req = {r["Path"]: r["Version"] for r in m.get("Require") or []}
for r in m.get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new["Path"].startswith("./") or new["Path"].startswith("../"):
        path = old["Path"]
        if path == "github.com/hashicorp/vault/sdk" and os.environ.get("LOCAL_SDK"):
            print("replace %s => ./sdk" % path)
            continue
        if path not in req:
            sys.exit("vault-build: upstream requires no version of locally replaced " + path)
        print("replace %s => %s %s" % (path, path, req[path]))
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
say "wrapper go.mod:"
cat go.mod >&2
# -e: tidy also resolves the imports of dependencies' tests, some of which (sdk test helpers) are
# missing from a tagged sdk; they never reach the binary, and go build still fails on anything real.
go mod tidy -e
go build -trimpath -ldflags "-s -w -X github.com/hashicorp/vault/version.BuildDate=$build_date" -o "$out/vault" .
"$out/vault" version
