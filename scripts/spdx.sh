#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Checks that every .go file opens with the two SPDX lines released
# go-microvm requires: the copyright line, then the license identifier.
# With --fix, it adds the copyright line (this year) above a file that has
# only the license line, and both lines above a file that has neither; the
# lines go first, so a //go:build line stays below them, before the package
# clause.
set -euo pipefail
cd "$(dirname "$0")/.."

copyright_re='^// SPDX-FileCopyrightText: Copyright [0-9]{4} Stacklok, Inc\.$'
license='// SPDX-License-Identifier: Apache-2.0'

fix=false
[ "${1:-}" = "--fix" ] && fix=true

bad=()
while IFS= read -r -d '' f; do
	line1=$(sed -n 1p "$f")
	line2=$(sed -n 2p "$f")
	if [[ $line1 =~ $copyright_re ]] && [ "$line2" = "$license" ]; then
		continue
	fi
	if ! $fix; then
		bad+=("$f")
		continue
	fi
	copyright="// SPDX-FileCopyrightText: Copyright $(date +%Y) Stacklok, Inc."
	tmp=$(mktemp)
	if [ "$line1" = "$license" ]; then
		{ echo "$copyright"; cat "$f"; } >"$tmp"
	else
		{ echo "$copyright"; echo "$license"; echo; cat "$f"; } >"$tmp"
	fi
	cat "$tmp" >"$f"
	rm -f "$tmp"
	echo "fixed $f"
done < <(git ls-files -z --cached --others --exclude-standard -- '*.go')

if [ ${#bad[@]} -gt 0 ]; then
	echo "missing SPDX header (run scripts/spdx.sh --fix):"
	printf '  %s\n' "${bad[@]}"
	exit 1
fi
