#!/usr/bin/env bash
# The commands the GitHub workflows run, in one place, so that the test suite runs the very same
# ones (tests/test_workflows.py). Run from the repository root after `bash scripts/setup.sh`.
#
#   ci.sh system                      bubblewrap and the kernel setting it needs (CI runners only; uses sudo)
#   ci.sh check                       fmbuild check, as GitHub annotations
#   ci.sh verify-changed BASE [XML]   the modules a change since BASE touched, with JUnit XML
#   ci.sh verify-all [XML]            every module
#   ci.sh build [DIR]                 the website (default: site/)
#   ci.sh cut-edition NAME            cut editions/NAME (or verify it when committed), sign it when
#                                     EDITION_SIGNING_KEY holds a PEM key, verify it
#   ci.sh drift-report OUT.md         re-run every module uncached; write OUT.md when a module whose
#                                     committed record passed now fails with unchanged inputs
set -euo pipefail

FMBUILD=${FMBUILD:-.venv/bin/fmbuild}
PYTHON=${PYTHON:-.venv/bin/python}
step=${1:-}
shift || true

case "$step" in
  system)
    # Ubuntu 24.04 runners forbid unprivileged user namespaces through AppArmor, which bubblewrap needs.
    command -v bwrap >/dev/null 2>&1 || { sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; }
    if [ "$(sysctl -n kernel.apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
      sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0
    fi
    ;;
  check)
    "$FMBUILD" check --format github
    ;;
  verify-changed)
    base=${1:?usage: ci.sh verify-changed BASE [JUNIT.xml]}
    "$FMBUILD" verify --changed-since "$base" --junit "${2:-verify-junit.xml}"
    ;;
  verify-all)
    "$FMBUILD" verify --jobs "${VERIFY_JOBS:-2}" --junit "${1:-verify-junit.xml}"
    ;;
  build)
    "$FMBUILD" build --output "${1:-site}"
    ;;
  cut-edition)
    name=${1:?usage: ci.sh cut-edition NAME}
    if [ -d "editions/$name" ]; then
      echo "ci: editions/$name is committed; verifying it instead of cutting"
    else
      "$FMBUILD" edition cut "$name"
    fi
    if [ -n "${EDITION_SIGNING_KEY:-}" ] && [ ! -f "editions/$name/signature.json" ]; then
      keydir=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/fmbuild-key.XXXXXX")
      trap 'rm -rf "$keydir"' EXIT
      (umask 077 && printf '%s\n' "$EDITION_SIGNING_KEY" > "$keydir/edition.key")
      "$FMBUILD" edition sign "$name" --key "$keydir/edition.key"
    fi
    if [ -n "${EDITION_PUBLIC_KEY_FILE:-}" ]; then
      "$FMBUILD" edition verify "$name" --pubkey "$EDITION_PUBLIC_KEY_FILE"
    elif [ -f editions/KEYS ]; then
      "$FMBUILD" edition verify "$name"  # only a key the project pins passes
    else
      echo "ci: no editions/KEYS and no EDITION_PUBLIC_KEY_FILE: checking the files only (pin the key: fmbuild edition pin)"
      "$FMBUILD" edition verify "$name" --integrity-only
    fi
    ;;
  drift-report)
    out=${1:?usage: ci.sh drift-report OUT.md}
    results=$(mktemp)
    # verify exits 1 when a module fails: that is what this step looks for, not a reason to stop.
    "$FMBUILD" verify --no-cache --format json --jobs "${VERIFY_JOBS:-2}" > "$results" || [ $? -eq 1 ]
    "$PYTHON" "$(dirname "$0")/drift_report.py" "$results" "$out"
    rm -f "$results"
    ;;
  *)
    echo "usage: ci.sh system|check|verify-changed|verify-all|build|cut-edition|drift-report ..." >&2
    exit 2
    ;;
esac
