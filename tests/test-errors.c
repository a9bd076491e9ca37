/* SPDX-License-Identifier: MIT */
/*
 * Failure paths: a pager that fails (or lies about filling) must cost the
 * faulting thread a SIGBUS on that page only, never a hang or wrong data,
 * and the handler must live on.  Also the resolver's argument checks,
 * failing pager init, and the memfd and hugetlb memory types.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <check.h>

#include "helpers.h"

static size_t ps(void)
{
	return page_size();
}

static struct uffd_region *make_custom(const struct uffd_pager_ops *ops,
				       const char *args, size_t npages)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = npages * ps(),
		.ops = ops,
		.args = args,
	};
	struct uffd_region *r = NULL;

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	return r;
}

/* ---- touching from another thread, with a bound --------------------- */

struct touch {
	uint8_t		*addr;
	int		write;
	uint8_t		val;
	int		sigbus;
	void		*fault_addr;
	pid_t		tid;
};

static void *touch_fn(void *arg)
{
	struct touch *t = arg;

	t->tid = gettid();
	t->sigbus = touch_catch_sigbus(t->addr, t->write, &t->val,
				       &t->fault_addr);
	return NULL;
}

/*
 * Touch @addr in a new thread: a SIGBUS must reach that thread, and a
 * hang must fail the test rather than time it out.  Returns 1 on SIGBUS.
 */
static int touch_thread(uint8_t *addr, int write, uint8_t *val)
{
	struct touch t = { .addr = addr, .write = write, .val = *val };
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, touch_fn, &t), 0);
	ck_assert_msg(join_timeout(th, NULL, TEST_WAIT_MS) == 0,
		      "access to %p hangs", (void *)addr);
	if (t.sigbus)
		ck_assert_ptr_eq(t.fault_addr, addr);
	*val = t.val;
	return t.sigbus;
}

/* ---- a pager that fails one page ---------------------------------- */

static uint64_t bad_page;
static atomic_int eio_calls;
static struct uffd_fault last_fault;

static int eio_init(struct uffd_region *region, const struct uffd_args *args,
		    void **state)
{
	static const char *const keys[] = { "bad", NULL };
	int ret;

	ret = uffd_args_check(args, keys);
	if (ret)
		return ret;
	bad_page = 0;
	ret = uffd_args_u64(args, "bad", &bad_page, 0, 1023);
	if (ret)
		return ret;
	*state = region;
	return 0;
}

static int eio_fault(void *state, struct uffd_resolver *res,
		     const struct uffd_fault *f)
{
	last_fault = *f;
	atomic_fetch_add(&eio_calls, 1);
	if (f->offset == bad_page * uffd_region_page_size(state))
		return -EIO;
	return fault_like_zero(state, res, f);
}

static const struct uffd_pager_ops eio_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "eio",
	.init = eio_init,
	.fault = eio_fault,
};

/*
 * With POISON the failed page is poisoned and the kernel answers every
 * later touch; without it (6.1) the library answers them, without the
 * pager.  tests/test-failure.c covers both in every delivery mode.
 */
static int poisons(void)
{
	return !!(uffd_ctx_features(ctx) & LIBUFFD_FEATURE_POISON);
}

START_TEST(failed_fault_sigbus)
{
	struct uffd_region *r = make_custom(&eio_ops, "bad=3", 8);
	struct uffd_stats st, st2;
	uint8_t *p = uffd_region_addr(r), v = 0;
	void *fa = NULL;

	/* In the test thread itself... */
	ck_assert_int_eq(touch_catch_sigbus(p + 3 * ps() + 8, 0, &v, &fa), 1);
	ck_assert_ptr_eq(fa, p + 3 * ps() + 8);
	ck_assert_int_eq(settled_region_stats(r, &st, TEST_WAIT_MS), 0);
	ck_assert_uint_eq(st.poisoned, poisons());
	ck_assert_uint_eq(st.pager_errors, 1);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_zero + st.pages_copy, 0);

	/* ...the handler lives on for the other pages... */
	ck_assert_uint_eq(peek(p + 2 * ps()), 0);
	poke(p + 4 * ps(), 0x99);
	ck_assert_uint_eq(peek(p + 4 * ps()), 0x99);
	v = 1;
	ck_assert_int_eq(touch_thread(p + 5 * ps(), 1, &v), 0);
	ck_assert_uint_eq(peek(p + 5 * ps()), 1);

	/* ...and the bad page stays failed without asking the pager. */
	v = 7;
	ck_assert_int_eq(touch_thread(p + 3 * ps(), 1, &v), 1);
	ck_assert_int_eq(touch_catch_sigbus(p + 3 * ps(), 0, &v, NULL), 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st2, sizeof(st2)), 0);
	ck_assert_uint_eq(st2.poisoned, poisons());
	ck_assert_uint_eq(st2.pager_errors, 1);
	/* without POISON the two later touches fault, to the library */
	ck_assert_uint_eq(st2.failed_refaults, poisons() ? 0 : 2);
	ck_assert_uint_eq(st2.faults_read + st2.faults_write,
			  poisons() ? 4 : 6);
	ck_assert_int_eq(atomic_load(&eio_calls), 4);
	/* A failed fault was served too, if not happily. */
	ck_assert_uint_eq(hist_total(&st2), poisons() ? 4 : 6);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.poisoned, poisons());
	ck_assert_uint_eq(st.pager_errors, 1);
}
END_TEST

START_TEST(failed_fault_other_thread)
{
	struct uffd_region *r = make_custom(&eio_ops, "bad=0", 4);
	uint8_t *p = uffd_region_addr(r), v = 0;

	/* The signal goes to the toucher, not the handler or us. */
	ck_assert_int_eq(touch_thread(p, 0, &v), 1);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(pager_errors), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_uint_eq(peek(p + ps()), 0);
}
END_TEST

START_TEST(fault_descriptor)
{
	struct uffd_region *r = make_custom(&eio_ops, "bad=1023", 8);
	uint8_t *p = uffd_region_addr(r), v = 5;
	pid_t tid;

	ck_assert_int_eq(touch_thread(p + 6 * ps() + 123, 1, &v), 0);
	ck_assert_uint_eq(last_fault.addr, (uintptr_t)p + 6 * ps());
	ck_assert_uint_eq(last_fault.offset, 6 * ps());
	ck_assert_uint_eq(last_fault.flags, LIBUFFD_FAULT_WRITE);
	tid = gettid();
	ck_assert_uint_ne(last_fault.tid, (uint32_t)tid);
	ck_assert_uint_ne(last_fault.tid, 0);

	ck_assert_uint_eq(peek(p + 2 * ps() + 1), 0);
	ck_assert_uint_eq(last_fault.offset, 2 * ps());
	ck_assert_uint_eq(last_fault.flags, 0);
	/* THREAD_ID is on by default: the faulting thread is named. */
	ck_assert_uint_eq(last_fault.tid, (uint32_t)tid);
}
END_TEST

/* ---- pagers that claim success without filling --------------------- */

static int nofill_fault(void *state, struct uffd_resolver *res,
			const struct uffd_fault *f)
{
	(void)state;
	(void)res;
	(void)f;
	return 0;
}

/* Fills the next page instead of the faulting one. */
static int wrongfill_fault(void *state, struct uffd_resolver *res,
			   const struct uffd_fault *f)
{
	long ret = uffd_resolve_zeropage(res, f->offset + ps(), ps());

	(void)state;
	return ret < 0 ? (int)ret : 0;
}

static const struct uffd_pager_ops nofill_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "nofill",
	.init = init_region_state,
	.fault = nofill_fault,
};

static const struct uffd_pager_ops wrongfill_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "wrongfill",
	.init = init_region_state,
	.fault = wrongfill_fault,
};

START_TEST(zero_without_fill)
{
	struct uffd_region *r = make_custom(&nofill_ops, NULL, 4);
	struct uffd_stats st;
	uint8_t *p = uffd_region_addr(r), v = 0;

	ck_assert_int_eq(touch_thread(p + ps(), 0, &v), 1);
	v = 2;
	ck_assert_int_eq(touch_thread(p + 2 * ps(), 1, &v), 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.poisoned, poisons() ? 2 : 0);
	ck_assert_uint_eq(st.sigbus_queued, poisons() ? 0 : 2);
	ck_assert_uint_eq(st.pager_errors, 2);
	ck_assert_int_eq(present_pages(p, 4 * ps()), 0);
}
END_TEST

START_TEST(fill_wrong_page)
{
	struct uffd_region *r = make_custom(&wrongfill_ops, NULL, 4);
	struct uffd_stats st;
	uint8_t *p = uffd_region_addr(r), v = 0;
	uint64_t pfn;
	int present;

	ck_assert_int_eq(touch_thread(p + ps(), 0, &v), 1);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(pager_errors), 1,
					  TEST_WAIT_MS), 1);
	/* The page it did fill is mapped and reads as zeros, no fault. */
	ck_assert_int_eq(page_lookup(p + 2 * ps(), &present, &pfn), 0);
	ck_assert_int_eq(present, 1);
	ck_assert_uint_eq(pfn, zero_page_pfn());
	ck_assert_uint_eq(peek(p + 2 * ps()), 0);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_zero, 1);
	ck_assert_uint_eq(st.pager_errors, 1);
}
END_TEST

/* ---- init failing ------------------------------------------------- */

static atomic_int fini_calls;

static int failing_init(struct uffd_region *region,
			const struct uffd_args *args, void **state)
{
	uint64_t err = ENOTRECOVERABLE;

	(void)region;
	(void)state;
	uffd_args_u64(args, "err", &err, 1, 4095);
	return -(int)err;
}

static void count_fini(void *state)
{
	(void)state;
	atomic_fetch_add(&fini_calls, 1);
}

static const struct uffd_pager_ops failinit_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "failinit",
	.init = failing_init,
	.fault = nofill_fault,
	.fini = count_fini,
};

static void expect_init_failure(enum uffd_mem_type type, void *addr,
				const char *args, int err)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = type,
		.addr = addr,
		.len = 4 * ps(),
		.ops = &failinit_ops,
		.args = args,
	};

	/* The pager gives no reason: the library must give one. */
	expect_create_fails(&o, err);
	/* init failed: there is no state for fini to release. */
	ck_assert_int_eq(atomic_load(&fini_calls), 0);
}

START_TEST(init_fails)
{
	uint8_t *map;

	expect_init_failure(LIBUFFD_MEM_ANON, NULL, NULL, -ENOTRECOVERABLE);
	expect_init_failure(LIBUFFD_MEM_ANON, NULL, "err=12", -ENOMEM);
	expect_init_failure(LIBUFFD_MEM_MEMFD, NULL, NULL, -ENOTRECOVERABLE);

	map = map_anon(4);
	poke(map, 0x11);
	expect_init_failure(LIBUFFD_MEM_ADOPT, map, NULL, -ENOTRECOVERABLE);
	/* The caller's mapping is untouched and not registered. */
	ck_assert_int_eq(vma_has_flag(map, "um"), 0);
	ck_assert_uint_eq(peek(map), 0x11);
	poke(map + ps(), 0x12);
	ck_assert_uint_eq(peek(map + ps()), 0x12);
	munmap(map, 4 * ps());
}
END_TEST

START_TEST(init_fails_range_reusable)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ADOPT,
		.len = 4 * ps(),
		.pager = "zero",
	};
	struct uffd_region *r = NULL;
	uint8_t *map = map_anon(4);

	expect_init_failure(LIBUFFD_MEM_ADOPT, map, NULL, -ENOTRECOVERABLE);
	/* The failed attempt did not keep a claim on the range. */
	o.addr = map;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_uint_eq(peek(map + ps()), 0);
	ck_assert_int_ge(wait_region_stat(r, STAT_OFF(faults_read), 1,
					  TEST_WAIT_MS), 1);
	uffd_region_destroy(r);
	munmap(map, 4 * ps());
}
END_TEST

/* ---- the resolver's own checks ----------------------------------- */

#define NCHECKS	16

static long checks[NCHECKS];
static struct uffd_region *check_region;
static void *move_src;
static atomic_int checks_done;

/* Runs once, on the first fault, at page 1 of a 4-page region. */
static int checker_fault(void *state, struct uffd_resolver *res,
			 const struct uffd_fault *f)
{
	static char buf[2 * 65536] __attribute__((aligned(65536)));
	size_t len = uffd_region_len(state);
	int i = 0;

	if (atomic_load(&checks_done))
		return fault_like_zero(state, res, f);
	checks[i++] = uffd_resolver_region(res) == state;
	checks[i++] = uffd_resolve_zeropage(res, f->offset + 1, ps());
	checks[i++] = uffd_resolve_zeropage(res, f->offset, ps() + 1);
	checks[i++] = uffd_resolve_zeropage(res, f->offset, 0);
	checks[i++] = uffd_resolve_zeropage(res, len, ps());
	checks[i++] = uffd_resolve_copy(res, f->offset, NULL, ps());
	checks[i++] = uffd_resolve_wake(res, f->offset, 0);
	checks[i++] = uffd_resolve_move(res, f->offset, NULL, ps());
	/* Windows are clipped: two pages from the last one fill one. */
	memset(buf, 0x3c, sizeof(buf));
	checks[i++] = uffd_resolve_copy(res, len - ps(), buf, 2 * ps());
	/* Pages 1 and 2, zero-mapped in one call. */
	checks[i++] = uffd_resolve_zeropage(res, f->offset, 2 * ps());
	/* Page 2 again: present, so nothing new. */
	checks[i++] = uffd_resolve_zeropage(res, 2 * ps(), ps());
	/* MOVE a populated private page into page 0. */
	checks[i++] = uffd_resolve_move(res, 0, move_src, ps());
	checks[i++] = uffd_resolve_wake(res, f->offset, ps());
	atomic_store(&checks_done, 1);
	return 0;
}

static const struct uffd_pager_ops checker_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "checker",
	.init = init_region_state,
	.fault = checker_fault,
};

/*
 * _i = 0: the default context, with MOVE where the kernel has it (6.8);
 * _i = 1: MOVE turned off, which the resolver must refuse with
 * -EOPNOTSUPP, as on an older kernel, leaving the source where it was.
 */
START_TEST(resolver_checks)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.features_off = LIBUFFD_FEATURE_MOVE,
	};
	struct uffd_stats st;
	uint64_t deadline;
	uint8_t *p, *src;
	int i = 0, mv;

	if (_i) {
		uffd_ctx_destroy(ctx);
		ck_assert_int_eq(uffd_ctx_create(&ctx, &o), 0);
		ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	}
	mv = !!(uffd_ctx_features(ctx) & LIBUFFD_FEATURE_MOVE);
	src = map_anon(1);
	memset(src, 0x4d, ps());
	move_src = src;
	check_region = make_custom(&checker_ops, NULL, 4);
	p = uffd_region_addr(check_region);

	ck_assert_uint_eq(peek(p + ps()), 0);
	/* The zero fill woke us; the hook may still be running its checks. */
	deadline = now_ns() + TEST_WAIT_MS * 1000000ULL;
	while (!atomic_load(&checks_done) && now_ns() < deadline)
		sleep_us(100);
	ck_assert_int_eq(atomic_load(&checks_done), 1);
	ck_assert_int_eq(checks[i++], 1);
	ck_assert_int_eq(checks[i++], -EINVAL);	/* unaligned offset */
	ck_assert_int_eq(checks[i++], -EINVAL);	/* unaligned length */
	ck_assert_int_eq(checks[i++], -EINVAL);	/* empty */
	ck_assert_int_eq(checks[i++], -EINVAL);	/* past the end */
	ck_assert_int_eq(checks[i++], -EINVAL);	/* no source */
	ck_assert_int_eq(checks[i++], -EINVAL);	/* empty wake */
	/* move, no source */
	ck_assert_int_eq(checks[i++], mv ? -EINVAL : -EOPNOTSUPP);
	ck_assert_int_eq(checks[i++], 1);		/* clipped copy */
	ck_assert_int_eq(checks[i++], 2);		/* two zero pages */
	ck_assert_int_eq(checks[i++], 0);		/* already there */
	ck_assert_int_eq(checks[i++], mv ? 1 : -EOPNOTSUPP);	/* moved */
	ck_assert_int_eq(checks[i++], 0);		/* woken */

	ck_assert_int_eq(pfnzero_pages(p, 4 * ps()), 2);
	ck_assert_int_eq(present_pages(p, 4 * ps()), mv ? 4 : 3);
	ck_assert_uint_eq(peek(p + 3 * ps()), 0x3c);
	ck_assert_uint_eq(peek(p + 3 * ps() + ps() - 1), 0x3c);
	ck_assert_uint_eq(peek(p + 2 * ps()), 0);
	/* MOVE took the page away from its source; or left it there. */
	ck_assert_int_eq(present_pages(src, ps()), mv ? 0 : 1);
	ck_assert_uint_eq(peek(mv ? p : src), 0x4d);

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(check_region, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_copy, 1);
	ck_assert_uint_eq(st.pages_zero, 2);
	ck_assert_uint_eq(st.pages_move, (uint64_t)mv);
	ck_assert_uint_eq(st.bytes_copied, ps());
	ck_assert_uint_eq(st.pager_errors, 0);
	ck_assert_uint_eq(st.poisoned, 0);
	munmap(src, ps());
}
END_TEST

/* ---- memfd -------------------------------------------------------- */

START_TEST(memfd_region)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	struct stat sb;
	uint8_t *p, b = 0xff;
	int fd, fds = count_fds();

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_MEMFD, 8, "zero", &r),
			 0);
	ck_assert_int_eq(uffd_region_type(r), LIBUFFD_MEM_MEMFD);
	p = uffd_region_addr(r);
	fd = uffd_region_memfd(r);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(count_fds(), fds + 1);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_int_eq(sb.st_size, (off_t)(8 * ps()));
	ck_assert_int_eq(vma_has_flag(p, "um"), 1);
	/* Shared: the mapping is the file. */
	ck_assert_int_eq(vma_has_flag(p, "sh"), 1);

	ck_assert_uint_eq(peek(p + 2 * ps() + 3), 0);
	poke(p + 5 * ps() + 7, 0xab);
	ck_assert_uint_eq(peek(p + 5 * ps() + 7), 0xab);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)(5 * ps() + 7)), 1);
	ck_assert_uint_eq(b, 0xab);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)(2 * ps() + 3)), 1);
	ck_assert_uint_eq(b, 0);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)(7 * ps())), 1);
	ck_assert_uint_eq(b, 0);

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.poisoned, 0);
	uffd_region_destroy(r);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(mapped_pages(p, 8 * ps()), 0);
}
END_TEST

/* ---- hugetlb ------------------------------------------------------ */

#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"
#define HUGE_SZ		(2UL << 20)

static long saved_nr_hugepages = -1;

/*
 * Unchecked fixtures: they run in the parent, so the setting is put back
 * even when a test dies.
 */
static void huge_setup(void)
{
	long nr;

	if (read_long_file(NR_HUGEPAGES, &nr))
		return;
	saved_nr_hugepages = nr;
	write_long_file(NR_HUGEPAGES, nr + 4);
}

static void nohuge_setup(void)
{
	long nr;

	if (read_long_file(NR_HUGEPAGES, &nr))
		return;
	saved_nr_hugepages = nr;
	write_long_file(NR_HUGEPAGES, 0);
}

static void huge_teardown(void)
{
	if (saved_nr_hugepages >= 0)
		write_long_file(NR_HUGEPAGES, saved_nr_hugepages);
	saved_nr_hugepages = -1;
}

START_TEST(hugetlb_region)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_HUGETLB,
		.len = 2 * HUGE_SZ,
		.pager = "zero",
	};
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	long free0, free1;
	int fds = count_fds();
	uint8_t *p, b = 0;

	ck_assert_msg(saved_nr_hugepages >= 0, "cannot read " NR_HUGEPAGES);
	free0 = meminfo_value("HugePages_Free");
	ck_assert_msg(free0 >= 2, "only %ld huge pages free", free0);

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_uint_eq(uffd_region_page_size(r), HUGE_SZ);
	ck_assert_uint_eq(uffd_region_len(r), 2 * HUGE_SZ);
	ck_assert_int_eq(uffd_region_type(r), LIBUFFD_MEM_HUGETLB);
	p = uffd_region_addr(r);
	ck_assert_uint_eq((uintptr_t)p % HUGE_SZ, 0);
	ck_assert_int_eq(vma_has_flag(p, "ht"), 1);
	ck_assert_int_eq(vma_has_flag(p, "um"), 1);

	ck_assert_uint_eq(peek(p + 12345), 0);
	ck_assert_uint_eq(peek(p + HUGE_SZ - 1), 0);
	/* One huge page taken for the whole first extent. */
	free1 = meminfo_value("HugePages_Free");
	ck_assert_int_eq(free1, free0 - 1);

	poke(p + HUGE_SZ + 5, 0x5e);
	ck_assert_uint_eq(peek(p + HUGE_SZ + 5), 0x5e);
	ck_assert_uint_eq(peek(p + HUGE_SZ + 4), 0);
	ck_assert_int_eq(meminfo_value("HugePages_Free"), free0 - 2);
	if (uffd_region_memfd(r) >= 0) {
		ck_assert_int_eq(pread(uffd_region_memfd(r), &b, 1,
				       (off_t)(HUGE_SZ + 5)), 1);
		ck_assert_uint_eq(b, 0x5e);
	}

	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.poisoned, 0);
	uffd_region_destroy(r);
	ck_assert_int_eq(meminfo_value("HugePages_Free"), free0);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(hugetlb_unaligned)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_HUGETLB,
		.len = HUGE_SZ + ps(),
		.pager = "zero",
	};
	struct uffd_region *r = NULL;

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), -EINVAL);
	o.len = ps();
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), -EINVAL);
	ck_assert_ptr_null(r);
}
END_TEST

/*
 * Adopting a hugetlb mapping: its faults come in 2 MiB pages, and the
 * region must say so, or every fill would fail and the toucher spin.
 */
START_TEST(hugetlb_adopt)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ADOPT,
		.len = 2 * HUGE_SZ,
		.pager = "zero",
	};
	struct uffd_region *r = NULL;
	uint8_t *p;

	p = mmap(NULL, 2 * HUGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	o.addr = p;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_uint_eq(uffd_region_page_size(r), HUGE_SZ);
	ck_assert_uint_eq(peek(p + HUGE_SZ + 12345), 0);
	poke(p + 77, 0x77);
	ck_assert_uint_eq(peek(p + 77), 0x77);
	uffd_region_destroy(r);
	/* an adopted range that is not huge-page aligned is refused */
	o.addr = p + ps();
	o.len = HUGE_SZ;
	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), -EINVAL);
	munmap(p, 2 * HUGE_SZ);
}
END_TEST

START_TEST(hugetlb_none_free)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_HUGETLB,
		.len = 2 * HUGE_SZ,
		.pager = "zero",
	};

	ck_assert_msg(saved_nr_hugepages >= 0, "cannot read " NR_HUGEPAGES);
	ck_assert_int_eq(meminfo_value("HugePages_Free"), 0);
	expect_create_fails(&o, -ENOMEM);
}
END_TEST

/* VmPeak of this process, KiB (the most address space it ever held). */
static uint64_t vm_peak_kib(void)
{
	char line[256];
	uint64_t kib = 0;
	FILE *f = fopen("/proc/self/status", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmPeak:", 7))
			kib = strtoull(line + 7, NULL, 10);
	fclose(f);
	ck_assert_uint_gt(kib, 0);
	return kib;
}

/*
 * A length no mmap can give (1 << 49 = 512 TiB, above x86-64's 128 TiB
 * of user space; 1 << 60 for REMOTE, which maps nothing) is refused
 * before any per-page bookkeeping: the library used to calloc three
 * bitmaps of the region's pages first (16 GiB each for 1 << 49, 32 TiB
 * for 1 << 60).  VmPeak would show them; it grows by less than 1 GiB.
 */
START_TEST(huge_length_refused)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = 1ull << 49, .pager = "zero",
	};
	uint64_t peak = vm_peak_kib();
	struct uffd_region *r = NULL;

	ck_assert_int_lt(uffd_region_create(ctx, &o, &r), 0);
	ck_assert_ptr_null(r);
	o.type = LIBUFFD_MEM_REMOTE;
	o.addr = (void *)(uintptr_t)(1ull << 20);
	o.len = 1ull << 60;
	expect_create_fails(&o, -EINVAL);
	ck_assert_msg(vm_peak_kib() - peak < (1ull << 20),
		      "VmPeak grew by %llu KiB",
		      (unsigned long long)(vm_peak_kib() - peak));
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = add_tcase(s, "pager-failure", ctx_setup, ctx_teardown);
	const uint64_t hugetlb = LIBUFFD_FEATURE_MISSING_HUGETLBFS;

	/* the library names the faulting thread by THREAD_ID (4.14) */
	add_test_if(tc, failed_fault_sigbus, LIBUFFD_FEATURE_THREAD_ID, 0);
	add_test_if(tc, failed_fault_other_thread, LIBUFFD_FEATURE_THREAD_ID,
		    0);
	add_test_if(tc, fault_descriptor, LIBUFFD_FEATURE_THREAD_ID, 0);
	add_test_if(tc, zero_without_fill, LIBUFFD_FEATURE_THREAD_ID, 0);
	add_test_if(tc, fill_wrong_page, LIBUFFD_FEATURE_THREAD_ID, 0);
	tcase_add_test(tc, init_fails);
	tcase_add_test(tc, init_fails_range_reusable);
	tcase_add_loop_test(tc, resolver_checks, 0, 2);
	tcase_add_test(tc, huge_length_refused);

	tc = add_tcase(s, "memfd", ctx_setup, ctx_teardown);
	add_test_if(tc, memfd_region, LIBUFFD_FEATURE_MISSING_SHMEM, 0);

	tc = add_tcase(s, "hugetlb", ctx_setup, ctx_teardown);
	tcase_add_unchecked_fixture(tc, huge_setup, huge_teardown);
	add_test_if(tc, hugetlb_region, hugetlb, 0);
	add_test_if(tc, hugetlb_unaligned, hugetlb, 0);
	add_test_if(tc, hugetlb_adopt, hugetlb, 0);

	tc = add_tcase(s, "hugetlb-none", ctx_setup, ctx_teardown);
	tcase_add_unchecked_fixture(tc, nohuge_setup, huge_teardown);
	add_test_if(tc, hugetlb_none_free, hugetlb, 0);
	return s;
}

int main(void)
{
	/* Features newer than userfaultfd itself are asked per case. */
	require_kernel(0, 0);
	if (geteuid() != 0) {
		fprintf(stderr, "ERROR: needs root (nr_hugepages, PFNs)\n");
		return TEST_EXIT_HARD_ERROR;
	}
	require_pfns();
	return run_suite(errors_suite());
}
