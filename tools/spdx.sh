#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tools/spdx.sh — put `SPDX-License-Identifier: Apache-2.0` at the top of every source file that
# lacks it (LICENSE has the text).
#
#   tools/spdx.sh [--check] [PATHS...]
#
# PATHS (files or directories; default: the whole repository except build/ and .git/):
#   *.cpp *.hpp *.h *.go            // SPDX-License-Identifier: Apache-2.0   (first line)
#   CMakeLists.txt *.cmake *.cmake.in *.pc.in *.py *.sh, tools/dev, .ci/run, .clang-format,
#   .clang-tidy                     # SPDX-License-Identifier: Apache-2.0    (first line, or
#                                   right after a #! line)
# A file that has the identifier anywhere in its first five lines is left alone, so the script
# can run again at any time. --check changes nothing, lists the files that lack it, and fails if
# there are any.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ID="SPDX-License-Identifier: Apache-2.0"
check=0
paths=()
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    -h|--help) sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "tools/spdx.sh: unknown option '$a'" >&2; exit 2 ;;
    *) paths+=("$a") ;;
  esac
done
((${#paths[@]})) || paths=(.)

# comment_for FILE — the line comment that starts the SPDX line, or nothing if not a source file.
comment_for() {
  local f=$1 base=${1##*/}
  case "$base" in
    *.cpp|*.hpp|*.h|*.go) echo "//" ;;
    CMakeLists.txt|*.cmake|*.cmake.in|*.pc.in|*.py|*.sh|.clang-format|.clang-tidy) echo "#" ;;
    *)
      case "$f" in
        tools/dev|./tools/dev|.ci/run|./.ci/run) echo "#" ;;
      esac
      ;;
  esac
}

missing=()
while IFS= read -r -d '' f; do
  c=$(comment_for "$f")
  [ -n "$c" ] || continue
  head -n 5 "$f" | grep -q "$ID" && continue
  missing+=("${f#./}")
  ((check)) && continue
  tmp=$(mktemp)
  if head -n 1 "$f" | grep -q '^#!'; then
    { head -n 1 "$f"; echo "$c $ID"; tail -n +2 "$f"; } >"$tmp"
  else
    { echo "$c $ID"; cat "$f"; } >"$tmp"
  fi
  cat "$tmp" >"$f"  # keeps the file's mode (tools/dev stays executable)
  rm -f "$tmp"
done < <(find "${paths[@]}" -type d \( -name .git -o -name build \) -prune -o -type f -print0 | sort -z)

if ((check)); then
  if ((${#missing[@]})); then
    printf '%s\n' "${missing[@]}"
    echo "tools/spdx.sh --check: ${#missing[@]} file(s) lack '$ID' (tools/spdx.sh adds it)" >&2
    exit 1
  fi
  echo "tools/spdx.sh: every source file has '$ID'"
else
  echo "tools/spdx.sh: added '$ID' to ${#missing[@]} file(s)"
  ((${#missing[@]} == 0)) || printf '  %s\n' "${missing[@]}"
fi
