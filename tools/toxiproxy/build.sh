#!/usr/bin/env bash
# Builds the Toxiproxy server from the Go module proxy for metallb-py's fault lab (tests/faults, the fault
# benchmark). metallb_py.testing.faults only looks in the cache, unless asked to build
# (ensure_toxiproxy_binary(build=True)).
#
# No release binary is downloaded: Go fetches the source module (checked against sum.golang.org and this
# directory's go.sum) and compiles it. The pinned version is the require line of this directory's go.mod
# (github.com/Shopify/toxiproxy/v2), whose cmd/server package is the toxiproxy server.
#
# Usage:
#   tools/toxiproxy/build.sh                  build the pinned version (a no-op when it is already cached)
#   tools/toxiproxy/build.sh --print-bin-dir  print where the binary is (or would be)
#
# Environment:
#   METALLB_PY_CACHE   cache root (default ~/.cache/metallb-py); the binary goes to
#                      $METALLB_PY_CACHE/toxiproxy/VERSION/bin/toxiproxy-server
#   GO                 the go command (default: go on PATH, else /usr/local/go/bin/go)
# Go's own caches (GOMODCACHE, GOCACHE) make rebuilds fast; keep them between CI runs if you can.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${METALLB_PY_CACHE:-${HOME}/.cache/metallb-py}"
MODULE=github.com/Shopify/toxiproxy/v2

# shellcheck source=../lib/build.sh
. "$HERE/../lib/build.sh"

pinned_version() { required_version "$MODULE" "$HERE/go.mod"; }

bin_dir() { printf '%s/toxiproxy/%s/bin\n' "$CACHE_ROOT" "$1"; }

main() {
    local mode=build
    case "${1:-}" in
        --print-bin-dir) mode=print; shift ;;
        -h | --help) sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        "") ;;
        *) say "unknown argument '$1' (try --help)"; exit 2 ;;
    esac
    local version
    version="$(pinned_version)"
    if ! [[ "$version" =~ ^v2\.[0-9]+\.[0-9]+$ ]]; then
        say "no $MODULE version found in $HERE/go.mod (expected a line 'require $MODULE v2.X.Y')"
        exit 2
    fi
    local bins out stamp log
    bins="$(bin_dir "$version")"
    if [ "$mode" = print ]; then
        echo "$bins"
        exit 0
    fi
    out="$(dirname "$bins")"
    stamp="$bins/.built"
    mkdir -p "$out"

    lock_build "$out" "toxiproxy $version"
    local want="toxiproxy=${version}"
    exit_if_cached "$stamp" "$want" toxiproxy-server

    need_go
    log="$out/build.log"
    log_build_to "$log" "install a newer Go (go.mod here says which)" "nothing half-built is ever used"
    local started=$SECONDS
    say "building $want into $bins (first build: ~20 s on 2 cores, plus the module download)"
    say "full log: $log"

    say "downloading source modules (checked against go.sum)"
    (cd "$HERE" && nice "$GO" mod download)

    local tmp="$out/bin.partial"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    say "compiling $MODULE/cmd/server"
    (cd "$HERE" && CGO_ENABLED=0 nice "$GO" build -trimpath -o "$tmp/toxiproxy-server" \
        -ldflags "-s -w -X $MODULE.Version=${version#v}" "$MODULE/cmd/server")

    mkdir -p "$bins"
    mv -f "$tmp/toxiproxy-server" "$bins/"
    rmdir "$tmp"
    echo "$want" >"$stamp"
    say "built in $((SECONDS - started))s: $bins/toxiproxy-server"
    echo "$bins"
}

# One compound command, read whole before it runs: editing this file during a build cannot derail bash.
{ main "$@"; exit; }
