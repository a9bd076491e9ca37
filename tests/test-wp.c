/* SPDX-License-Identifier: MIT */
/*
 * Write-protect and minor faults: a region registered with LIBUFFD_REG_WP
 * sees the first write to a page filled write-protected as a
 * LIBUFFD_FAULT_WP fault, and again after the pager protects it anew
 * (dirty tracking); a LIBUFFD_REG_MINOR memfd region sees a page that is
 * in the page cache but not mapped as a LIBUFFD_FAULT_MINOR fault, which
 * UFFDIO_CONTINUE answers with the page cache's contents.  Checked
 * against contents and the counters; the refusals too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

#define NPAGES	32

/* The test pager: records what it saw, per page. */
struct track {
	size_t		ps;
	int		wp_mode;	/* the region is registered for WP */
	int		copy;		/* read faults: COPY a pattern, WP */
	int		fail_wp;	/* WP faults fail */
	unsigned char	dirty[NPAGES];	/* written since last protected */
	unsigned char	wp[NPAGES];	/* WP faults seen */
	unsigned char	minor[NPAGES];	/* minor faults seen */
	char		pattern[65536];
};

static struct track *last;

static int track_init(struct uffd_region *r, const struct uffd_args *args,
		      void **state)
{
	struct track *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->ps = uffd_region_page_size(r);
	t->wp_mode = (uffd_region_modes(r) & LIBUFFD_REG_WP) != 0;
	t->copy = uffd_args_get(args, "copy") != NULL;
	t->fail_wp = uffd_args_get(args, "fail_wp") != NULL;
	memset(t->pattern, 0x5a, sizeof(t->pattern));
	last = t;
	*state = t;
	return 0;
}

static int track_fault(void *state, struct uffd_resolver *res,
		       const struct uffd_fault *f)
{
	struct track *t = state;
	size_t i = f->offset / t->ps;
	long ret;

	if ((f->flags & LIBUFFD_FAULT_WP) && t->fail_wp) {
		t->wp[i]++;
		return -EIO;
	} else if (f->flags & LIBUFFD_FAULT_WP) {
		t->wp[i]++;
		t->dirty[i] = 1;
		ret = uffd_resolve_writeprotect(res, f->offset, t->ps, 0);
	} else if (f->flags & LIBUFFD_FAULT_MINOR) {
		t->minor[i]++;
		ret = uffd_resolve_continue(res, f->offset, t->ps);
	} else if (f->flags & LIBUFFD_FAULT_WRITE) {
		/* about to be written: dirty now, no protection needed */
		t->dirty[i] = 1;
		ret = uffd_resolve_zerofill(res, f->offset, t->ps);
	} else {
		ret = uffd_resolver_set_fill(res, t->wp_mode ? LIBUFFD_FILL_WP : 0);
		if (ret == 0 && t->copy)
			ret = uffd_resolve_copy(res, f->offset, t->pattern,
						t->ps);
		else if (ret == 0)
			ret = uffd_resolve_zeropage(res, f->offset, t->ps);
	}
	if (ret < 0)
		fprintf(stderr, "track: fault %#x at page %zu: %s\n", f->flags,
			i, uffd_last_error());
	return ret < 0 ? (int)ret : 0;
}

static void track_fini(void *state)
{
	free(state);
}

static const struct uffd_pager_ops track_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "track",
	.flags = LIBUFFD_PAGER_WP | LIBUFFD_PAGER_MINOR,
	.init = track_init,
	.fault = track_fault,
	.fini = track_fini,
};

/* The same pager, but not saying it handles WP or minor faults. */
static const struct uffd_pager_ops plain_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "plain",
	.init = track_init,
	.fault = track_fault,
	.fini = track_fini,
};

static struct uffd_region *region(enum uffd_mem_type type,
				  unsigned int modes, const char *args)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = type, .len = NPAGES * page_size(),
		.ops = &track_ops, .args = args, .modes = modes,
	};
	struct uffd_region *r = NULL;
	int ret = uffd_region_create(ctx, &o, &r);

	ck_assert_msg(ret == 0, "region: %s", uffd_last_error());
	ck_assert_uint_eq(uffd_region_modes(r), modes);
	return r;
}

static struct uffd_stats stats_of(struct uffd_region *r)
{
	return settled_stats(r);
}

/*
 * A read maps zeros, protected; the first write is a WP fault.  The
 * zeros are copied (pages_copy), not the shared zero page, which
 * UFFDIO_ZEROPAGE cannot map protected in the same step.
 */
static void read_then_write(enum uffd_mem_type type)
{
	struct uffd_region *r = region(type, LIBUFFD_REG_MISSING |
					     LIBUFFD_REG_WP, NULL);
	uint8_t *p = uffd_region_addr(r);
	size_t ps = page_size();
	struct uffd_stats st;

	ck_assert_uint_eq(peek(p + 3 * ps), 0);
	ck_assert_int_eq(last->dirty[3], 0);
	poke(p + 3 * ps + 10, 0x33);
	ck_assert_uint_eq(peek(p + 3 * ps + 10), 0x33);
	ck_assert_int_eq(last->wp[3], 1);
	ck_assert_int_eq(last->dirty[3], 1);
	/* released: more writes take no fault */
	poke(p + 3 * ps + 11, 0x34);
	st = stats_of(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_wp, 1);
	ck_assert_uint_ge(st.pages_protected, 1);
	ck_assert_uint_eq(st.pages_released, 1);
	ck_assert_uint_eq(st.pages_zero, 0);
	ck_assert_uint_eq(st.pages_copy, 1);
	ck_assert_int_eq(last->wp[3], 1);
	uffd_region_destroy(r);
}

START_TEST(wp_anon_read_then_write)
{
	read_then_write(LIBUFFD_MEM_ANON);
}
END_TEST

START_TEST(wp_memfd_read_then_write)
{
	read_then_write(LIBUFFD_MEM_MEMFD);
}
END_TEST

/* A write to a missing page is dirty at once: no second, WP fault. */
START_TEST(wp_write_first)
{
	struct uffd_region *r = region(LIBUFFD_MEM_ANON, LIBUFFD_REG_MISSING |
					       LIBUFFD_REG_WP, NULL);
	uint8_t *p = uffd_region_addr(r);
	struct uffd_stats st;

	poke(p + 5 * page_size(), 5);
	ck_assert_uint_eq(peek(p + 5 * page_size()), 5);
	st = stats_of(r);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.faults_wp, 0);
	ck_assert_int_eq(last->dirty[5], 1);
	uffd_region_destroy(r);
}
END_TEST

/*
 * Dirty tracking: protect the region again (from outside any fault, as
 * a write-back thread would), clear the marks, write one page: only that
 * page is dirty again, and every byte survived.
 */
START_TEST(wp_reprotect_cycle)
{
	struct uffd_region *r = region(LIBUFFD_MEM_ANON, LIBUFFD_REG_MISSING |
					       LIBUFFD_REG_WP, NULL);
	uint8_t *p = uffd_region_addr(r);
	size_t ps = page_size(), i;
	struct uffd_resolver *res;
	struct uffd_stats st;

	for (i = 0; i < 8; i++)
		poke(p + i * ps, (uint8_t)(i + 1));
	ck_assert_int_eq(uffd_resolver_create(r, &res), 0);
	ck_assert_int_eq(uffd_resolve_writeprotect(res, 0, NPAGES * ps, 1),
			 NPAGES);
	memset(last->dirty, 0, sizeof(last->dirty));
	poke(p + 6 * ps + 1, 0x66);
	for (i = 0; i < 8; i++) {
		ck_assert_uint_eq(peek(p + i * ps), i + 1);
		ck_assert_int_eq(last->dirty[i], i == 6);
	}
	ck_assert_uint_eq(peek(p + 6 * ps + 1), 0x66);
	st = stats_of(r);
	ck_assert_uint_eq(st.faults_wp, 1);
	ck_assert_uint_eq(st.faults_write, 8);
	ck_assert_uint_eq(st.pages_protected, NPAGES);
	/* and released by hand, from outside: no fault at all */
	ck_assert_int_eq(uffd_resolve_writeprotect(res, 0, NPAGES * ps, 0),
			 NPAGES);
	poke(p + 2 * ps, 9);
	ck_assert_int_eq(last->wp[2], 0);
	uffd_resolver_destroy(res);
	uffd_region_destroy(r);
}
END_TEST

/* UFFDIO_COPY with MODE_WP: the contents arrive protected. */
START_TEST(wp_copy_protected)
{
	struct uffd_region *r = region(LIBUFFD_MEM_ANON, LIBUFFD_REG_MISSING |
					       LIBUFFD_REG_WP, "copy=1");
	uint8_t *p = uffd_region_addr(r);
	struct uffd_stats st;

	ck_assert_uint_eq(peek(p + 9 * page_size() + 7), 0x5a);
	poke(p + 9 * page_size(), 1);
	ck_assert_uint_eq(peek(p + 9 * page_size()), 1);
	ck_assert_uint_eq(peek(p + 9 * page_size() + 7), 0x5a);
	st = stats_of(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_copy, 1);
	ck_assert_uint_eq(st.faults_wp, 1);
	uffd_region_destroy(r);
}
END_TEST

/*
 * MINOR: what is in the memfd's page cache but not mapped here faults as
 * minor and is mapped by CONTINUE with the page cache's bytes; a page
 * not in the cache at all is an ordinary missing fault.
 */
START_TEST(minor_continue)
{
	struct uffd_region *r = region(LIBUFFD_MEM_MEMFD, LIBUFFD_REG_MISSING |
					       LIBUFFD_REG_MINOR, NULL);
	uint8_t *p = uffd_region_addr(r);
	size_t ps = page_size();
	char buf[4096];
	struct uffd_stats st;

	memset(buf, 0x77, sizeof(buf));
	ck_assert_int_eq(pwrite(uffd_region_memfd(r), buf, sizeof(buf),
				(off_t)(7 * ps)), (ssize_t)sizeof(buf));
	ck_assert_uint_eq(peek(p + 7 * ps + 100), 0x77);
	ck_assert_int_eq(last->minor[7], 1);
	/* the mapping is the page cache: a write shows through the fd */
	poke(p + 7 * ps, 0x78);
	ck_assert_int_eq(pread(uffd_region_memfd(r), buf, 1, (off_t)(7 * ps)),
			 1);
	ck_assert_uint_eq((uint8_t)buf[0], 0x78);
	/* not in the cache: missing */
	ck_assert_uint_eq(peek(p + 8 * ps), 0);
	ck_assert_int_eq(last->minor[8], 0);
	st = stats_of(r);
	ck_assert_uint_eq(st.faults_minor, 1);
	ck_assert_uint_eq(st.pages_continued, 1);
	ck_assert_uint_eq(st.faults_read, 1);
	uffd_region_destroy(r);
}
END_TEST

/*
 * WP_ASYNC: the kernel resolves write-protect faults itself, and
 * PAGEMAP_SCAN says which pages were written; REPROTECT arms them again.
 */
START_TEST(wp_async_scan)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co), .features = LIBUFFD_FEATURE_WP_ASYNC,
	};
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = NPAGES * page_size(), .ops = &track_ops,
		.modes = LIBUFFD_REG_MISSING | LIBUFFD_REG_WP,
	};
	struct uffd_ctx *ac = NULL;
	struct uffd_region *r = NULL;
	uint64_t bits[(NPAGES + 63) / 64];
	size_t ps = page_size(), i;
	struct uffd_stats st;
	uint8_t *p;

	ck_assert_int_eq(uffd_ctx_create(&ac, &co), 0);
	ck_assert_int_eq(uffd_ctx_start(ac), 0);
	ck_assert_int_eq(uffd_region_create(ac, &o, &r), 0);
	p = uffd_region_addr(r);
	/* read everything in: zero pages, write-protected */
	for (i = 0; i < NPAGES; i++)
		ck_assert_uint_eq(peek(p + i * ps), 0);
	memset(bits, 0, sizeof(bits));
	ck_assert_int_eq(uffd_region_scan_written(r, 0, NPAGES * ps, bits,
						  LIBUFFD_SCAN_REPROTECT), 0);
	poke(p + 3 * ps, 3);
	poke(p + 17 * ps + 5, 17);
	memset(bits, 0, sizeof(bits));
	ck_assert_int_eq(uffd_region_scan_written(r, 0, NPAGES * ps, bits,
						  LIBUFFD_SCAN_REPROTECT), 2);
	ck_assert_uint_eq(bits[0], (1ull << 3) | (1ull << 17));
	/* protected again: clean until written again */
	memset(bits, 0, sizeof(bits));
	ck_assert_int_eq(uffd_region_scan_written(r, 0, NPAGES * ps, bits, 0),
			 0);
	poke(p + 17 * ps, 18);
	ck_assert_int_eq(uffd_region_scan_written(r, 16 * ps, 8 * ps, bits,
						  0), 1);
	ck_assert_uint_eq(bits[0], 1ull << 1);
	ck_assert_uint_eq(peek(p + 3 * ps), 3);
	ck_assert_uint_eq(peek(p + 17 * ps + 5), 17);
	/* the pager saw no WP fault: the kernel took them all */
	st = settled_stats(r);
	ck_assert_uint_eq(st.faults_wp, 0);
	ck_assert_uint_eq(st.faults_read, NPAGES);
	uffd_region_destroy(r);
	uffd_ctx_destroy(ac);
}
END_TEST

/* The scan needs WP_ASYNC and a WP region. */
START_TEST(scan_refused)
{
	struct uffd_region *r = region(LIBUFFD_MEM_ANON, LIBUFFD_REG_MISSING |
					       LIBUFFD_REG_WP, NULL);
	uint64_t bits[1] = { 0 };

	ck_assert_int_eq(uffd_region_scan_written(r, 0, page_size(), bits, 0),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "WP_ASYNC"));
	ck_assert_int_eq(uffd_region_scan_written(r, 1, page_size(), bits, 0),
			 -EINVAL);
	uffd_region_destroy(r);
}
END_TEST

/*
 * A pager that fails a WP fault: the writer gets SIGBUS, once, and the
 * pager is not asked again (not a fault loop on a present page).
 */
START_TEST(wp_fault_fails)
{
	struct uffd_region *r = region(LIBUFFD_MEM_ANON, LIBUFFD_REG_MISSING |
					       LIBUFFD_REG_WP, "fail_wp=1");
	uint8_t *p = uffd_region_addr(r), v = 7;
	struct uffd_stats st;

	ck_assert_uint_eq(peek(p + 4 * page_size()), 0);
	ck_assert_int_eq(touch_catch_sigbus(p + 4 * page_size(), 1, &v, NULL),
			 1);
	ck_assert_int_eq(touch_catch_sigbus(p + 4 * page_size(), 1, &v, NULL),
			 1);
	ck_assert_int_eq(last->wp[4], 1);
	/* reads go on: the page is there, only writing it failed */
	ck_assert_uint_eq(peek(p + 4 * page_size()), 0);
	st = stats_of(r);
	ck_assert_uint_eq(st.pager_errors, 1);
	ck_assert_uint_ge(st.failed_refaults, 1);
	uffd_region_destroy(r);
}
END_TEST

/* What cannot work is refused, and says why. */
START_TEST(modes_refused)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = NPAGES * page_size(), .ops = &plain_ops,
		.modes = LIBUFFD_REG_MISSING | LIBUFFD_REG_WP,
	};
	struct uffd_ctx_opts co = {
		.size = sizeof(co), .delivery = LIBUFFD_DELIVER_SIGBUS,
	};
	struct uffd_region *r = NULL, *plain;
	struct uffd_resolver *res;
	struct uffd_ctx *sc = NULL;

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "WP faults"));
	o.ops = &track_ops;
	o.modes = LIBUFFD_REG_MINOR;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "memfd"));
	o.modes = 1u << 9;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), -EINVAL);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(uffd_ctx_create(&sc, &co), 0);
	o.modes = LIBUFFD_REG_MISSING | LIBUFFD_REG_WP;
	ck_assert_int_eq(uffd_region_create(sc, &o, &r), -ENOTSUP);
	uffd_ctx_destroy(sc);

	/* a missing-only region: no WP, no CONTINUE through it */
	o.modes = 0;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &plain), 0);
	ck_assert_uint_eq(uffd_region_modes(plain), LIBUFFD_REG_MISSING);
	ck_assert_int_eq(uffd_resolver_create(plain, &res), 0);
	ck_assert_int_eq(uffd_resolver_set_fill(res, LIBUFFD_FILL_WP),
			 -EINVAL);
	ck_assert_int_eq(uffd_resolver_set_fill(res, 1u << 5), -EINVAL);
	ck_assert_int_eq(uffd_resolve_writeprotect(res, 0, page_size(), 1),
			 -EINVAL);
	ck_assert_int_eq(uffd_resolve_continue(res, 0, page_size()),
			 -EINVAL);
	uffd_resolver_destroy(res);
	uffd_region_destroy(plain);
}
END_TEST

static Suite *wp_suite(void)
{
	Suite *s = suite_create("wp");
	TCase *tc = add_tcase(s, "wp", ctx_setup, ctx_teardown);

	add_test_if(tc, wp_anon_read_then_write, 0, 0);
	add_test_if(tc, wp_memfd_read_then_write,
		    LIBUFFD_FEATURE_WP_HUGETLBFS_SHMEM, 0);
	add_test_if(tc, wp_write_first, 0, 0);
	add_test_if(tc, wp_reprotect_cycle, 0, 0);
	add_test_if(tc, wp_copy_protected, 0, 0);
	add_test_if(tc, minor_continue, LIBUFFD_FEATURE_MINOR_SHMEM, 0);
	tcase_add_test(tc, modes_refused);
	tcase_add_test(tc, wp_fault_fails);
	add_test_if(tc, wp_async_scan, LIBUFFD_FEATURE_WP_ASYNC,
		    NEED_PAGEMAP_SCAN);
	tcase_add_test(tc, scan_refused);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP, 0);
	return run_suite(wp_suite());
}
