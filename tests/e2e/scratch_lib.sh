# Sourced by the e2e scripts.
#
# scratch NAME: makes the scratch directory `work`, unique, so that the run directories
# inside it appear in the command lines of this test's processes only. At exit no
# process of the test outlives it (e.g. after a failed check mid-run), and the
# directory is removed on success and kept for inspection on failure.
scratch() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/hnas-e2e-$1.XXXXXX")
  trap scratch_cleanup EXIT
}
scratch_cleanup() {
  local status=$?
  local left
  left=$(pgrep -f -- "$work" || true)
  if [ -n "$left" ]; then
    echo "killing leftover processes of this test: $left"
    kill -9 $left 2>/dev/null || true
  fi
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "kept $work for inspection"; fi
}

# text_shards MAKE_SHARDS PREFIX SOURCE_DIR: byte-level shards (10% validation) of text
# that does not change with this checkout (curves are compared across world sizes within
# a tolerance, and how far float rounding carries depends on the data): the licence
# texts every Debian and Ubuntu system has, else the project's own text.
text_shards() {
  local corpus=(/usr/share/common-licenses/*)
  if [ ! -e "${corpus[0]}" ]; then
    echo "no /usr/share/common-licenses: training on the project's own text"
    corpus=("$3"/README.md "$3"/inputs/README.md "$3"/src/*/*.cpp)
  fi
  "$1" --output-prefix "$2" --val-fraction 0.1 "${corpus[@]}" >/dev/null
}
