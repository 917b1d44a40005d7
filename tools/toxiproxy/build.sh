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

if [ -z "${GO:-}" ]; then
    if command -v go >/dev/null; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi

say() { printf '>> %s\n' "$*" >&2; }

# go.mod is the single place that names the version.
pinned_version() {
    awk -v m="$MODULE" '{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/) { print $(i + 1); exit } }' \
        "$HERE/go.mod" 2>/dev/null
}

bin_dir() { printf '%s/toxiproxy/%s/bin\n' "$CACHE_ROOT" "$1"; }

need_go() {
    if ! [ -x "$GO" ] && ! command -v "$GO" >/dev/null; then
        say "Go is not installed (looked for 'go' on PATH and /usr/local/go/bin/go)."
        say "Install Go >= 1.26 (https://go.dev/dl/ or your package manager), or set GO=/path/to/go, then rerun."
        exit 3
    fi
}

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

    # One build per version at a time: parallel test sessions wait for the first one instead of racing it.
    exec 9>"$out/.lock"
    if ! flock -n 9; then
        say "another build of toxiproxy $version is running; waiting for it"
        flock 9
    fi

    local want="toxiproxy=${version}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$bins/toxiproxy-server" ]; then
        say "cached: $want in $bins"
        echo "$bins"
        exit 0
    fi

    need_go
    log="$out/build.log"
    : >"$log"
    exec 2> >(tee -a "$log" >&2)
    trap 'on_failure "$log"' ERR
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

on_failure() {
    local log="$1"
    trap - ERR # report once, not once per function on the failing call stack
    say "BUILD FAILED. Last lines of $log:"
    tail -n 25 "$log" >&2 || true
    say "What to do next:"
    say "  - 'go: ... requires go >= X': install a newer Go (go.mod here says which)"
    say "  - download/TLS/'dial tcp' errors: check that $("$GO" env GOPROXY 2>/dev/null) is reachable, then rerun"
    say "  - 'no space left on device': free space under $("$GO" env GOMODCACHE 2>/dev/null) and $CACHE_ROOT"
    say "  - rerunning is safe: nothing half-built is ever used"
}

# One compound command, read whole before it runs: editing this file during a build cannot derail bash.
{ main "$@"; exit; }
