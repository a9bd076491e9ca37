/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the spec parser (libuffd/args.c), without userfaultfd.
 *
 * The input, up to its first NUL, is parsed as a pager spec
 * ("name:k=v,...", luffd_spec_parse) and as an argument list
 * ("k=v,...", luffd_args_parse).  On success the parts must spell the
 * input again exactly, the name and keys obey the grammar and every key
 * is there once; on failure the result is -EINVAL (or -ENOMEM) with a
 * reason and nothing held.  Every value then goes through uffd_args_u64
 * with bounds taken from the input, checked against a reference parser,
 * and uffd_args_get / uffd_args_check are checked against the key list.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)							\
	do {								\
		if (!(x)) {						\
			fprintf(stderr, "%s:%d: check failed: %s\n",	\
				__FILE__, __LINE__, #x);		\
			abort();					\
		}							\
	} while (0)

/* uffd_args_u64's promise, parsed here without strtoull. */
static int ref_u64(const char *s, uint64_t *v, uint64_t min, uint64_t max)
{
	unsigned __int128 x = 0;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		x = x * 10 + (unsigned)(*s - '0');
		if (x > UINT64_MAX)
			return -EINVAL;
	}
	switch (*s) {
	case 'k': case 'K': shift = 10; s++; break;
	case 'm': case 'M': shift = 20; s++; break;
	case 'g': case 'G': shift = 30; s++; break;
	}
	if (*s)
		return -EINVAL;
	x <<= shift;
	if (x > UINT64_MAX || x < min || x > max)
		return -EINVAL;
	*v = (uint64_t)x;
	return 0;
}

static bool good_name(const char *p)
{
	if (!*p)
		return false;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

static void check_args(const struct uffd_args *a, const char *in,
		       uint64_t min, uint64_t max)
{
	const char *known[LUFFD_MAX_ARGS + 1];
	char *again;
	size_t cap = strlen(in) + 2, used = 0;
	int i, j;

	CHECK(a->n >= 0 && a->n <= LUFFD_MAX_ARGS);
	again = malloc(cap);
	CHECK(again);
	again[0] = '\0';
	if (a->name)
		used += (size_t)snprintf(again, cap, "%s%s", a->name,
					 a->n ? ":" : "");
	for (i = 0; i < a->n; i++) {
		uint64_t got = 7, want = 7;
		int r1, r2;

		CHECK(*a->key[i] && *a->val[i]);
		CHECK(!strpbrk(a->key[i], ",="));
		CHECK(!strchr(a->val[i], ','));
		for (j = 0; j < i; j++)
			CHECK(strcmp(a->key[i], a->key[j]));
		CHECK(uffd_args_get(a, a->key[i]) == a->val[i]);
		CHECK(used < cap);
		used += (size_t)snprintf(again + used, cap - used, "%s%s=%s",
					 i ? "," : "", a->key[i], a->val[i]);
		r1 = uffd_args_u64(a, a->key[i], &got, min, max);
		r2 = ref_u64(a->val[i], &want, min, max);
		CHECK(r1 == r2);
		CHECK(got == want);	/* untouched (7) on failure */
		CHECK(!r1 || *uffd_last_error());
		known[i] = a->key[i];
	}
	CHECK(used < cap);
	/* the parts spell the input again: nothing lost, nothing added */
	CHECK(!strcmp(again, in));
	free(again);
	/* absent keys: NULL, and uffd_args_u64 leaves the value alone */
	CHECK(!uffd_args_get(a, ""));
	CHECK(!uffd_args_get(a, NULL));
	known[a->n] = NULL;
	CHECK(uffd_args_check(a, known) == 0);
	if (a->n) {
		CHECK(uffd_args_check(a, known + 1) == -EINVAL);
		CHECK(uffd_args_check(a, NULL) == -EINVAL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uffd_args a;
	uint64_t min = 0, max = UINT64_MAX;
	char *s;
	int ret;

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	/* bounds for uffd_args_u64 from the bytes after the first NUL */
	if (strlen(s) + 17 <= size) {
		memcpy(&min, data + strlen(s) + 1, 8);
		memcpy(&max, data + strlen(s) + 9, 8);
	}

	ret = luffd_spec_parse(s, &a);
	if (ret == 0) {
		CHECK(a.buf && a.name && good_name(a.name));
		check_args(&a, s, min, max);
		luffd_args_free(&a);
	} else {
		CHECK(ret == -EINVAL || ret == -ENOMEM);
		CHECK(*uffd_last_error());
		CHECK(!a.buf && !a.n);
	}
	CHECK(!a.buf);

	ret = luffd_args_parse(s, &a);
	if (ret == 0) {
		CHECK(!a.name);
		CHECK(!*s == !a.buf);
		check_args(&a, s, min, max);
		luffd_args_free(&a);
	} else {
		CHECK(ret == -EINVAL || ret == -ENOMEM);
		CHECK(*uffd_last_error());
		CHECK(!a.buf && !a.n);
	}
	free(s);
	return 0;
}
