# Shared by the command-line tests (sourced; needs $CGLOW and a scratch folder $T).
# Each check prints "PASS name" or "FAIL name: why".
ok()   { echo "PASS $1"; }
bad()  { echo "FAIL $1${2:+: $2}"; }
check() { if eval "$2"; then ok "$1"; else bad "$1" "$3"; fi; }

# Runs the tool; sets rc, out, err.
run() { "$CGLOW" "$@" > "$T/out" 2> "$T/err"; rc=$?; out=$(cat "$T/out"); err=$(cat "$T/err"); }

# expect_fail NAME EXIT WORD... -- ARGS: exit code EXIT, stderr one line containing every WORD.
expect_fail() {
    local name=$1 want=$2; shift 2
    local words=()
    while [ "$1" != "--" ]; do words+=("$1"); shift; done
    shift
    run "$@"
    local lines; lines=$(grep -c . "$T/err")
    if [ "$rc" != "$want" ]; then bad "$name" "exit $rc, want $want ($err)"; return; fi
    if [ "$lines" != 1 ]; then bad "$name" "stderr has $lines lines: $err"; return; fi
    for w in "${words[@]}"; do
        case "$err" in *"$w"*) ;; *) bad "$name" "message lacks '$w': $err"; return ;; esac
    done
    ok "$name"
}
