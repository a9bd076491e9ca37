/* SPDX-License-Identifier: MIT */
/*
 * Pager specs: "name" or "name:key=value,key=value".  The same string works
 * in the API, on a command line and in an environment variable.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void luffd_args_free(struct uffd_args *a)
{
	if (!a)
		return;
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

/* Split "k=v,k=v" held in a->buf starting at @s (which a->buf owns). */
static int split_pairs(char *s, struct uffd_args *a)
{
	char *save = NULL, *tok;

	if (*s == '\0')
		return luffd_fail(-EINVAL, "empty argument list");
	/* strtok_r would silently merge ",,": reject empty items first */
	if (s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		return luffd_fail(-EINVAL, "empty item in \"%s\"", s);
	for (tok = strtok_r(s, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int i;

		if (!eq)
			return luffd_fail(-EINVAL, "\"%s\": expected key=value",
					  tok);
		*eq = '\0';
		if (tok[0] == '\0' || eq[1] == '\0')
			return luffd_fail(-EINVAL, "empty key or value near \"%s=\"",
					  tok);
		for (i = 0; i < a->n; i++)
			if (!strcmp(a->key[i], tok))
				return luffd_fail(-EINVAL, "key \"%s\" given twice",
						  tok);
		if (a->n == LUFFD_MAX_ARGS)
			return luffd_fail(-EINVAL, "more than %d arguments",
					  LUFFD_MAX_ARGS);
		a->key[a->n] = tok;
		a->val[a->n] = eq + 1;
		a->n++;
	}
	return 0;
}

int luffd_args_parse(const char *s, struct uffd_args *a)
{
	int ret;

	memset(a, 0, sizeof(*a));
	if (!s || !*s)
		return 0;
	a->buf = strdup(s);
	if (!a->buf)
		return luffd_fail(-ENOMEM, "out of memory");
	ret = split_pairs(a->buf, a);
	if (ret < 0)
		luffd_args_free(a);
	return ret;
}

int luffd_spec_parse(const char *spec, struct uffd_args *a)
{
	return luffd_spec_parse_as("pager", spec, a);
}

/* @what ("pager", "store") names the thing in error reasons. */
int luffd_spec_parse_as(const char *what, const char *spec,
			struct uffd_args *a)
{
	char *colon, *p;
	int ret;

	memset(a, 0, sizeof(*a));
	if (!spec || !*spec)
		return luffd_fail(-EINVAL, "empty %s spec", what);
	a->buf = strdup(spec);
	if (!a->buf)
		return luffd_fail(-ENOMEM, "out of memory");
	a->name = a->buf;
	colon = strchr(a->buf, ':');
	if (colon)
		*colon = '\0';
	ret = -EINVAL;
	if (a->name[0] == '\0') {
		luffd_fail(-EINVAL, "%s spec \"%s\": no %s name", what,
			   spec, what);
		goto out;
	}
	for (p = a->name; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
			luffd_fail(-EINVAL, "%s spec \"%s\": bad name", what,
				   spec);
			goto out;
		}
	}
	if (colon) {
		ret = split_pairs(colon + 1, a);
		if (ret < 0) {
			char why[200];

			snprintf(why, sizeof(why), "%s", uffd_last_error());
			luffd_fail(ret, "%s spec \"%s\": %s", what, spec, why);
			goto out;
		}
	}
	return 0;
out:
	luffd_args_free(a);
	return -EINVAL;
}

LUFFD_API const char *uffd_args_get(const struct uffd_args *args,
				    const char *key)
{
	int i;

	if (!args || !key)
		return NULL;
	for (i = 0; i < args->n; i++)
		if (!strcmp(args->key[i], key))
			return args->val[i];
	return NULL;
}

LUFFD_API int uffd_args_u64(const struct uffd_args *args, const char *key,
			    uint64_t *val, uint64_t min, uint64_t max)
{
	const char *s = uffd_args_get(args, key);
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!val)
		return luffd_fail(-EINVAL, "uffd_args_u64: NULL value");
	if (!s)
		return 0;
	if (!isdigit((unsigned char)s[0]))
		return luffd_fail(-EINVAL, "%s=%s: not a number", key, s);
	errno = 0;
	v = strtoull(s, &end, 10);	/* "010" is ten, not eight */
	if (errno)
		return luffd_fail(-EINVAL, "%s=%s: out of range", key, s);
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return luffd_fail(-EINVAL, "%s=%s: trailing garbage", key, s);
	if (shift && v > (UINT64_MAX >> shift))
		return luffd_fail(-EINVAL, "%s=%s: out of range", key, s);
	v <<= shift;
	if (v < min || v > max)
		return luffd_fail(-EINVAL, "%s=%s: must be in [%llu, %llu]",
				  key, s, (unsigned long long)min,
				  (unsigned long long)max);
	*val = v;
	return 0;
}

LUFFD_API int uffd_args_check(const struct uffd_args *args,
			      const char *const *known)
{
	int i, j;

	if (!args)
		return 0;
	for (i = 0; i < args->n; i++) {
		bool ok = false;

		for (j = 0; known && known[j]; j++)
			if (!strcmp(args->key[i], known[j]))
				ok = true;
		if (!ok)
			return luffd_fail(-EINVAL, "unknown key \"%s\"",
					  args->key[i]);
	}
	return 0;
}
