/* SPDX-License-Identifier: MIT */
/*
 * hugezero: transparent huge pages emulated at extent granularity (2 MiB
 * by default), the experiment of seed 003.
 *
 * The first read fault in an untouched extent maps the whole extent to
 * the zero page with one UFFDIO_ZEROPAGE: one fault per extent and almost
 * no Rss, as the kernel's huge zero page gives.  The first write fault in
 * an untouched extent fills the whole extent with zeroed pages, as a THP
 * allocation would.  A later write into a zero-mapped extent is the
 * kernel's own 4 KiB copy-on-write and never reaches us.  With nohzp=1 a
 * read fault also fills the extent with real pages: THP before the huge
 * zero page existed, and the memory bloat that motivated it.
 *
 * In a MISSING-registered range the kernel installs neither PMDs nor mTHP
 * folios for us, so an "extent" is 512 4 KiB entries made by one ioctl,
 * not one huge mapping: the fault count and Rss match THP, the TLB does
 * not.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <libuffd.h>

#define HZ_EXTENT_DEFAULT	(2ull << 20)
#define HZ_EXTENT_MAX		(1ull << 30)

/* Per-extent state. */
enum {
	HZ_UNTOUCHED = 0,	/* next fault fills the whole extent */
	HZ_ZERO,		/* mapped to the zero page by a read */
	HZ_FULL,		/* filled with real pages */
};

struct hugezero {
	uint64_t	ps;
	uint64_t	extent;		/* bytes, power of two */
	unsigned int	shift;		/* log2(extent) */
	uint64_t	nextents;
	int		nohzp;
	uint8_t		*state;		/* per extent, atomic access */
};

static const char *const hugezero_keys[] = { "nohzp", "extent", NULL };

static int hugezero_init(struct uffd_region *region,
			 const struct uffd_args *args, void **state)
{
	uint64_t ps = uffd_region_page_size(region);
	uint64_t len = uffd_region_len(region);
	uint64_t extent = HZ_EXTENT_DEFAULT > ps ? HZ_EXTENT_DEFAULT : ps;
	uint64_t nohzp = 0;
	struct hugezero *h;
	int ret;

	ret = uffd_args_check(args, hugezero_keys);
	if (ret < 0)
		return ret;
	ret = uffd_args_u64(args, "nohzp", &nohzp, 0, 1);
	if (ret < 0)
		return ret;
	ret = uffd_args_u64(args, "extent", &extent, ps, HZ_EXTENT_MAX);
	if (ret < 0)
		return ret;
	/* a power of two and a multiple of ps: ps is a power of two */
	if (extent & (extent - 1)) {
		uffd_set_error("extent=%s: not a power-of-two multiple of %llu",
			       uffd_args_get(args, "extent"),
			       (unsigned long long)ps);
		return -EINVAL;
	}

	h = calloc(1, sizeof(*h));
	if (!h)
		goto nomem;
	h->ps = ps;
	h->extent = extent;
	h->shift = (unsigned int)__builtin_ctzll(extent);
	h->nextents = (len + extent - 1) >> h->shift;
	h->nohzp = (int)nohzp;
	h->state = calloc(h->nextents, 1);
	if (!h->state)
		goto nomem;
	*state = h;
	return 0;
nomem:
	free(h);
	uffd_set_error("hugezero: out of memory");
	return -ENOMEM;
}

static int hugezero_fault(void *state, struct uffd_resolver *res,
			  const struct uffd_fault *f)
{
	struct hugezero *h = state;
	uint64_t e = f->offset >> h->shift;
	bool write = f->flags & LIBUFFD_FAULT_WRITE;
	bool real = write || h->nohzp;
	uint8_t st = __atomic_load_n(&h->state[e], __ATOMIC_RELAXED);
	long ret;

	if (st != HZ_UNTOUCHED) {
		/*
		 * A page went missing in an extent we already filled
		 * without an event telling us (or an earlier fill failed
		 * half way): serve just this page, as "zero" would.
		 */
		if (real)
			ret = uffd_resolve_zerofill(res, f->offset, h->ps);
		else
			ret = uffd_resolve_zeropage(res, f->offset, h->ps);
		return ret < 0 ? (int)ret : 0;
	}
	/* the resolver clips the last extent and skips present pages */
	if (real)
		ret = uffd_resolve_zerofill(res, e << h->shift, h->extent);
	else
		ret = uffd_resolve_zeropage(res, e << h->shift, h->extent);
	if (ret < 0)
		return (int)ret;
	__atomic_store_n(&h->state[e], real ? HZ_FULL : HZ_ZERO,
			 __ATOMIC_RELAXED);
	return 0;
}

/*
 * MADV_DONTNEED or munmap: the extents touched are (partly) missing
 * again, so their next fault fills them whole (present pages skipped),
 * as a THP fault would after khugepaged or a split.
 */
static void hugezero_event(void *state, const struct uffd_event *ev)
{
	struct hugezero *h = state;
	uint64_t e, last;

	if (!ev->len)
		return;
	last = (ev->offset + ev->len - 1) >> h->shift;
	for (e = ev->offset >> h->shift; e <= last && e < h->nextents; e++)
		__atomic_store_n(&h->state[e], HZ_UNTOUCHED, __ATOMIC_RELAXED);
}

static void hugezero_fini(void *state)
{
	struct hugezero *h = state;

	if (!h)
		return;
	free(h->state);
	free(h);
}

const struct uffd_pager_ops luffd_pager_hugezero = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "hugezero",
	.flags = LIBUFFD_PAGER_CONCURRENT,	/* racing fills end in EEXIST */
	.init = hugezero_init,
	.fault = hugezero_fault,
	.event = hugezero_event,
	.fini = hugezero_fini,
};
