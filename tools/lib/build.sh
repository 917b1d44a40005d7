# shellcheck shell=bash
# The skeleton tools/*/build.sh share: finding Go, one build per cache directory at a time, the cached-stamp
# check, the build log and the report when a step fails. Sourced, never run; each build script keeps its own
# versions, steps and messages.
#
# A script sets CACHE_ROOT before sourcing this, then calls, in order:
#   lock_build DIR WHAT            wait for any other build holding DIR/.lock (fd 9, held until exit)
#   exit_if_cached STAMP WANT BIN...   done (print the bin dir, exit 0) when STAMP says WANT and each BIN is there
#   need_go                        exit 3 saying how to get Go when there is none
#   log_build_to LOG GO_HINT RERUN_HINT   stderr also to LOG from here on; a failing step reports and hints

if [ -z "${GO:-}" ]; then
    if command -v go >/dev/null; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi

say() { printf '>> %s\n' "$*" >&2; }

# required_version MODULE FILE: the version FILE's require line gives MODULE (go.mod is the single place
# that names a pinned version).
required_version() {
    awk -v m="$1" '{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/ && $(i - 1) != "=>") { print $(i + 1); exit } }' \
        "$2" 2>/dev/null
}

need_go() {
    if ! [ -x "$GO" ] && ! command -v "$GO" >/dev/null; then
        say "Go is not installed (looked for 'go' on PATH and /usr/local/go/bin/go)."
        say "Install Go >= 1.26 (https://go.dev/dl/ or your package manager), or set GO=/path/to/go, then rerun."
        exit 3
    fi
}

# One build per version at a time: parallel test sessions wait for the first one instead of racing it.
lock_build() { # DIR WHAT
    exec 9>"$1/.lock"
    if ! flock -n 9; then
        say "another build of $2 is running; waiting for it"
        flock 9
    fi
}

exit_if_cached() { # STAMP WANT BIN...: BINs are names in STAMP's directory
    local stamp="$1" want="$2" bins name
    shift 2
    bins="$(dirname "$stamp")"
    if ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then return 0; fi
    for name in "$@"; do
        if ! [ -x "$bins/$name" ]; then return 0; fi
    done
    say "cached: $want in $bins"
    echo "$bins"
    exit 0
}

log_build_to() { # LOG GO_HINT RERUN_HINT
    BUILD_LOG="$1"
    BUILD_GO_HINT="$2"
    BUILD_RERUN_HINT="$3"
    : >"$BUILD_LOG"
    exec 2> >(tee -a "$BUILD_LOG" >&2)
    trap on_build_failure ERR
}

on_build_failure() {
    # Report once: not in the subshells that inherit the trap (set -E; the top-level shell reports when
    # they fail), and not once per function on the failing call stack.
    if [ "$BASHPID" != "$$" ]; then return 0; fi
    trap - ERR
    local last # read before saying anything: what is said here goes to the log too
    last="$(tail -n 25 "$BUILD_LOG" || true)"
    say "BUILD FAILED. Last lines of $BUILD_LOG:"
    printf '%s\n' "$last" >&2
    say "What to do next:"
    say "  - 'go: ... requires go >= X': $BUILD_GO_HINT"
    say "  - download/TLS/'dial tcp' errors: check that $("$GO" env GOPROXY 2>/dev/null) is reachable, then rerun"
    say "  - 'no space left on device': free space under $("$GO" env GOMODCACHE 2>/dev/null) and $CACHE_ROOT"
    say "  - rerunning is safe: $BUILD_RERUN_HINT"
}
