#!/usr/bin/env bash
# The script behind action.yml: on a policy pull request, replay every changed
# policy, old and new, over recorded traces and report what changes
# (`governor diff --format markdown --exit-code`). It runs the same anywhere
# (CI or a laptop); inputs come from the environment:
#
#   GOVERNOR_TRACES       trace files or directories (required; space-separated)
#   GOVERNOR_BASE         git revision to compare with (default: origin/$GITHUB_BASE_REF on a
#                         pull request, else HEAD~1)
#   GOVERNOR_POLICIES     policy files to compare (space-separated; default: the *.yaml / *.yml
#                         under GOVERNOR_POLICY_DIR changed between GOVERNOR_BASE and HEAD,
#                         policy test files excluded)
#   GOVERNOR_POLICY_DIR   where policies live (default: policies)
#   GOVERNOR_FAIL_ON_CHANGE  "true" (default): exit 1 when any decision changed
#
# The markdown goes to stdout and, when set, to $GITHUB_STEP_SUMMARY; "changed=true|false"
# goes to $GITHUB_OUTPUT. Exit codes: 0 no decision changed (or changes allowed), 1 decisions
# changed, 2 usage error, 3 an invalid policy.
set -euo pipefail

traces=${GOVERNOR_TRACES:-}
if [ -z "$traces" ]; then
    echo "policy-diff: GOVERNOR_TRACES is required (trace files or directories)" >&2
    exit 2
fi
base=${GOVERNOR_BASE:-}
if [ -z "$base" ]; then
    if [ -n "${GITHUB_BASE_REF:-}" ]; then base="origin/$GITHUB_BASE_REF"; else base="HEAD~1"; fi
fi
dir=${GOVERNOR_POLICY_DIR:-policies}
fail_on_change=${GOVERNOR_FAIL_ON_CHANGE:-true}

if [ -n "${GOVERNOR_POLICIES:-}" ]; then
    read -r -a policies <<< "$GOVERNOR_POLICIES"
else
    mapfile -t policies < <(git diff --name-only --diff-filter=AMR "$base" HEAD -- "$dir" \
        | grep -E '\.ya?ml$' | grep -Ev '\.test\.ya?ml$' || true)
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
changed=false
status=0
read -r -a trace_args <<< "$traces"
if [ "${#policies[@]}" -eq 0 ]; then
    echo "No policy under \`$dir\` changed since \`$base\`." > "$out"
fi
for policy in "${policies[@]}"; do
    if ! git cat-file -e "$base:$policy" 2>/dev/null; then
        # a new policy: nothing to compare with, so show what it would do
        { echo "## New policy \`$policy\`"; echo; } >> "$out"
        governor replay "$policy" --traces "${trace_args[@]}" --format markdown --no-progress >> "$out" || status=$?
        continue
    fi
    rc=0
    governor diff "$base:$policy" "$policy" --traces "${trace_args[@]}" --format markdown --exit-code \
        --no-progress >> "$out" || rc=$?
    echo >> "$out"
    if [ "$rc" -eq 1 ]; then
        changed=true
    elif [ "$rc" -ne 0 ]; then
        status=$rc
    fi
done

cat "$out"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$out" >> "$GITHUB_STEP_SUMMARY"; fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "changed=$changed" >> "$GITHUB_OUTPUT"; fi
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ "$changed" = true ] && [ "$fail_on_change" = true ]; then exit 1; fi
exit 0
