/* SPDX-License-Identifier: MIT */
/*
 * zero: the kernel's default anonymous fault path.  A read maps the shared
 * zero page; a write installs a fresh zeroed page.  A write to a page that
 * a read mapped to the zero page is the kernel's own copy-on-write and
 * never reaches us: the second fault of seed 000.
 */
#include <libuffd.h>

static const char *const zero_keys[] = { NULL };

static int zero_init(struct uffd_region *region, const struct uffd_args *args,
		     void **state)
{
	int ret = uffd_args_check(args, zero_keys);

	if (ret < 0)
		return ret;
	*state = region;
	return 0;
}

static int zero_fault(void *state, struct uffd_resolver *res,
		      const struct uffd_fault *f)
{
	struct uffd_region *region = state;
	size_t ps = uffd_region_page_size(region);
	long ret;

	if (f->flags & LIBUFFD_FAULT_WRITE)
		ret = uffd_resolve_zerofill(res, f->offset, ps);
	else
		ret = uffd_resolve_zeropage(res, f->offset, ps);
	return ret < 0 ? (int)ret : 0;
}

const struct uffd_pager_ops luffd_pager_zero = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "zero",
	.flags = LIBUFFD_PAGER_CONCURRENT,	/* stateless */
	.init = zero_init,
	.fault = zero_fault,
};
