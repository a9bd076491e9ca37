/* SPDX-License-Identifier: MIT */
/*
 * The table of built-in pagers and spec checking.
 */
#include <string.h>

#include "internal.h"

static const struct uffd_pager_ops *const builtin[] = {
	&luffd_pager_zero,
	&luffd_pager_prealloc,
	&luffd_pager_prezero,
	&luffd_pager_hugezero,
	&luffd_pager_file,
	&luffd_pager_evict,
#ifdef HAVE_MEMCACHED
	&luffd_pager_memcached,
#endif
	NULL,
};

LUFFD_API const struct uffd_pager_ops *const *uffd_pager_list(void)
{
	return builtin;
}

LUFFD_API const struct uffd_pager_ops *uffd_pager_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; builtin[i]; i++)
		if (!strcmp(builtin[i]->name, name))
			return builtin[i];
	return NULL;
}

/*
 * Checking by doing: a throwaway context and region run the pager's real
 * init, so every check the pager makes applies.
 */
LUFFD_API int uffd_pager_spec_check(const char *spec, size_t len)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = len ? len : (2u << 20),
		.pager = spec,
	};
	struct uffd_args args;
	struct uffd_ctx *ctx = NULL;
	struct uffd_region *r = NULL;
	char why[256];
	int ret;

	/* parse first: a bad spec is -EINVAL even without userfaultfd */
	ret = luffd_spec_parse(spec, &args);
	if (ret < 0)
		return ret;
	if (!uffd_pager_find(args.name)) {
		ret = luffd_fail(-EINVAL, "unknown pager \"%s\"", args.name);
		luffd_args_free(&args);
		return ret;
	}
	luffd_args_free(&args);
	ret = uffd_ctx_create(&ctx, NULL);
	if (ret < 0)
		return ret;
	ret = uffd_region_create(ctx, &o, &r);
	snprintf(why, sizeof(why), "%s", uffd_last_error());
	uffd_ctx_destroy(ctx);
	if (ret < 0)
		return luffd_fail(ret, "%s", why);
	luffd_clear_error();
	return 0;
}
