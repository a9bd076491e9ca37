#!/bin/sh
# SPDX-License-Identifier: MIT
#
# test-man: the man pages against the library they document.
#
#  - libuffd.h and libuffd.map declare the same public functions;
#  - every one of them has a page, man/man3/NAME.3 (its family's page, or
#    a ".so man3/FAMILY.3" stub to it), whose NAME lists it and whose
#    SYNOPSIS shows the header's very prototype (whitespace aside);
#  - no page names, in NAME or SYNOPSIS, a uffd_ function (or type) that
#    the header no longer has, and every stub points at a page;
#  - Makefile.am installs and distributes exactly the pages in man/;
#  - every page renders with MANWIDTH=80 man --warnings -l, and with all
#    of groff's warnings, without a word on stderr, and fits 80 columns.
#
# Exit 77 when man-db's man(1) or groff is missing (apt-get install
# man-db groff-base), 99 when the tree is not where it should be.

LC_ALL=C
export LC_ALL
unset MANOPT MANPAGER PAGER

top=${srcdir:-.}
if ! test -f "$top/libuffd/libuffd.h" || ! test -d "$top/man/man3"; then
	echo "test-man: no libuffd/libuffd.h or man/man3 under '$top'" >&2
	exit 99
fi
top=$(cd "$top" && pwd) || exit 99

if ! command -v man >/dev/null 2>&1; then
	echo "test-man: SKIP: man(1) not found (apt-get install man-db)" >&2
	exit 77
fi
if ! man --help 2>&1 | grep -q -- '--warnings'; then
	echo "test-man: SKIP: this man(1) has no --warnings (man-db's has)" >&2
	exit 77
fi
if ! command -v groff >/dev/null 2>&1; then
	echo "test-man: SKIP: groff not found (apt-get install groff-base)" >&2
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-man.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
# failures go to a file: some checks run in a pipeline's subshell
: > "$tmp/failed"
bad() {
	echo "test-man: FAIL: $*" >&2
	echo "$*" >> "$tmp/failed"
}

# The statements of a C text, one per line: comments, preprocessor lines
# and "#ifdef __cplusplus" blocks out, split at top-level ';', whitespace
# normalised, __attribute__((...)) dropped.  Prints "NAME<TAB>prototype"
# for function declarations and "struct<TAB>NAME" / "enum<TAB>NAME" for
# the types named.  The same normalisation serves the rendered SYNOPSIS.
cat > "$tmp/protos.awk" <<'EOF'
function norm(s) {
	gsub(/__attribute__ *\(\(.*\)\)/, "", s)
	gsub(/[ \t\n]+/, " ", s)
	gsub(/\( /, "(", s); gsub(/ \)/, ")", s)
	gsub(/ ,/, ",", s)
	sub(/^ /, "", s); sub(/ $/, "", s)
	return s
}
{
	line = $0
	if (skip) { if (line ~ /^#[ \t]*endif/) skip = 0; next }
	if (line ~ /^#[ \t]*ifdef[ \t]+__cplusplus/) { skip = 1; next }
	if (line ~ /^[ \t]*#/) next
	text = text " " line
}
END {
	while ((i = index(text, "/*")) > 0) {
		rest = substr(text, i + 2)
		j = index(rest, "*/")
		if (j == 0) { text = substr(text, 1, i - 1); break }
		text = substr(text, 1, i - 1) " " substr(rest, j + 2)
	}
	depth = 0; stmt = ""; brace = 0
	n = length(text)
	for (k = 1; k <= n; k++) {
		c = substr(text, k, 1)
		if (c == "{") { depth++; brace = 1 }
		else if (c == "}") depth--
		if (c != ";" || depth != 0) { stmt = stmt c; continue }
		s = norm(stmt)
		if (match(s, /^(struct|enum) uffd_[a-z0-9_]+/)) {
			split(substr(s, RSTART, RLENGTH), w, " ")
			print w[1] "\t" w[2]
		}
		if (!brace && match(s, /[A-Za-z_][A-Za-z0-9_]* ?\(/)) {
			name = substr(s, RSTART, RLENGTH)
			sub(/ ?\($/, "", name)
			print name "\t" s ";"
		}
		stmt = ""; brace = 0
	}
}
EOF

# ---- the header and the symbol map ----
awk -f "$tmp/protos.awk" "$top/libuffd/libuffd.h" > "$tmp/header" || exit 99
awk -F '\t' '$1 ~ /^uffd_/ { print $1 }' "$tmp/header" | sort -u \
	> "$tmp/funcs"
awk -F '\t' '$1 ~ /^uffd_/ { print $2 }' "$tmp/header" | sort -u \
	> "$tmp/protos"
awk -F '\t' '$1 == "struct" || $1 == "enum" { print $2 }' "$tmp/header" |
	sort -u > "$tmp/types"
awk '/global:/ { g = 1; next } /local:/ { g = 0 }
     g && match($0, /uffd_[a-z0-9_]+;/) {
	print substr($0, RSTART, RLENGTH - 1) }' \
	"$top/libuffd/libuffd.map" | sort -u > "$tmp/mapped"
if ! test -s "$tmp/funcs" || ! test -s "$tmp/mapped"; then
	echo "test-man: found no functions in libuffd.h or libuffd.map" >&2
	exit 99
fi
for f in $(comm -23 "$tmp/funcs" "$tmp/mapped"); do
	bad "$f: declared in libuffd.h, not exported by libuffd.map"
done
for f in $(comm -13 "$tmp/funcs" "$tmp/mapped"); do
	bad "$f: exported by libuffd.map, not declared in libuffd.h"
done
sort -u "$tmp/funcs" "$tmp/mapped" > "$tmp/public"

cd "$top/man" || exit 99

# ---- every page renders without a warning, within 80 columns ----
for page in man1/*.1 man3/*.3 man7/*.7; do
	test -f "$page" || continue
	out=$tmp/$(basename "$page").txt
	# run from man/, where ".so man3/x.3" resolves, as under a manpath
	MANWIDTH=80 man --warnings -l "$page" > "$out" 2> "$tmp/err"
	st=$?
	if test $st -ne 0 || test -s "$tmp/err"; then
		bad "$page: man --warnings -l (status $st): $(cat "$tmp/err")"
	fi
	MANWIDTH=80 man --warnings=w -l "$page" > /dev/null 2> "$tmp/err"
	if test -s "$tmp/err"; then
		bad "$page: groff's warnings: $(cat "$tmp/err")"
	fi
	if ! test -s "$out"; then
		bad "$page: renders nothing"
	fi
	long=$(awk 'length > 80 { n++ } END { print n + 0 }' "$out")
	if test "$long" -ne 0; then
		bad "$page: $long rendered lines wider than 80 columns"
	fi
done

# ---- man3: stubs and primary pages ----
: > "$tmp/named"	# page<TAB>name, from the NAME sections
: > "$tmp/shown"	# page<TAB>name, from the SYNOPSIS prototypes
: > "$tmp/stubs"	# stub page<TAB>target page
for page in man3/*.3; do
	first=$(grep -v '^\.\\"' "$page" | grep -v '^[ 	]*$' | head -n 1)
	case $first in
	.so\ *)
		target=${first#.so }
		printf '%s\t%s\n' "$page" "$target" >> "$tmp/stubs"
		if test "$(grep -c . "$page")" -ne 1; then
			bad "$page: a stub holds its .so line only"
		fi
		if ! test -f "$target"; then
			bad "$page: .so $target: no such page"
		elif head -n 1 "$target" | grep -q '^\.so '; then
			bad "$page: .so $target: a stub of a stub"
		fi
		continue
		;;
	esac
	# NAME: the names before "\-"
	names=$(awk '/^\.SH/ { n = ($2 == "NAME"); next } n' "$page" |
		tr '\n' ' ' | sed 's/\\-.*//' | tr ',' ' ')
	if test -z "$names"; then
		bad "$page: no NAME section"
	fi
	for n in $names; do
		printf '%s\t%s\n' "$page" "$n" >> "$tmp/named"
		case $n in
		uffd_*)
			grep -qx "$n" "$tmp/funcs" || grep -qx "$n" "$tmp/types" ||
				bad "$page: NAME lists $n, which libuffd.h does not declare"
			;;
		libuffd) ;;
		*) bad "$page: NAME lists $n, not a libuffd name" ;;
		esac
	done
	# SYNOPSIS as rendered: its prototypes, normalised like the header's
	awk '/^SYNOPSIS/ { s = 1; next } /^[^ \t]/ { s = 0 } s' \
		"$tmp/$(basename "$page").txt" |
		awk -f "$tmp/protos.awk" > "$tmp/syn"
	awk -F '\t' '$1 != "struct" && $1 != "enum"' "$tmp/syn" |
	while IFS='	' read -r n proto; do
		printf '%s\t%s\n' "$page" "$n" >> "$tmp/shown"
		if ! grep -qxF "$proto" "$tmp/protos"; then
			bad "$page: SYNOPSIS has \"$proto\", which is not libuffd.h's prototype"
		fi
		echo " $names " | grep -q " $n " ||
			bad "$page: SYNOPSIS shows $n, which NAME does not list"
	done
	awk -F '\t' '$1 == "struct" || $1 == "enum" { print $2 }' "$tmp/syn" |
	while read -r t; do
		grep -qx "$t" "$tmp/types" ||
			bad "$page: SYNOPSIS names $t, which libuffd.h does not declare"
	done
	for n in $names; do
		grep -qx "$n" "$tmp/public" || continue
		grep -qxF "$page	$n" "$tmp/shown" ||
			bad "$page: NAME lists $n, but SYNOPSIS has no prototype of it"
	done
done

# A stub's name is a public function, and its target's NAME lists it.
while IFS='	' read -r stub target; do
	n=$(basename "$stub" .3)
	grep -qx "$n" "$tmp/funcs" ||
		bad "$stub: a page for $n, which libuffd.h does not declare"
	grep -qxF "$target	$n" "$tmp/named" ||
		bad "$stub: .so $target, whose NAME does not list $n"
done < "$tmp/stubs"

# Every public function has man3/NAME.3, and the page it leads to lists it.
while read -r f; do
	page=man3/$f.3
	if ! test -f "$page"; then
		bad "$f: no man page ($page, a page or a .so stub)"
		continue
	fi
	target=$(awk -F '\t' -v p="$page" '$1 == p { print $2 }' "$tmp/stubs")
	grep -qxF "${target:-$page}	$f" "$tmp/named" ||
		bad "$f: $page does not list it in NAME"
done < "$tmp/public"

# ---- Makefile.am installs and distributes exactly these pages ----
grep -o 'man/man[0-9]/[A-Za-z0-9_.+-]*\.[0-9]' "$top/Makefile.am" | sort -u \
	> "$tmp/listed"
(cd "$top" && ls man/man*/*.[0-9]) | sort -u > "$tmp/present"
for p in $(comm -23 "$tmp/present" "$tmp/listed"); do
	bad "$p: not in Makefile.am's dist_man*_MANS (not installed)"
done
for p in $(comm -13 "$tmp/present" "$tmp/listed"); do
	bad "$p: in Makefile.am, but no such file"
done

npages=$(wc -l < "$tmp/present")
nfuncs=$(wc -l < "$tmp/public")
if test -s "$tmp/failed"; then
	echo "test-man: FAILED: $(wc -l < "$tmp/failed") problems ($npages pages, $nfuncs public functions)" >&2
	exit 1
fi
echo "test-man: $npages pages render cleanly; all $nfuncs public functions documented with the header's prototypes"
exit 0
