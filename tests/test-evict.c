/* SPDX-License-Identifier: MIT */
/*
 * The evict pager: a region four times its budget, written and read by
 * two threads through two handler threads, must read back what was last
 * written (a shadow copy outside the region says what), its Rss (smaps)
 * never above the budget; uffd_region_flush() leaves the store holding
 * exactly the region's bytes (the file store, byte for byte); the
 * application's MADV_DONTNEED reads back as zeros, resident or evicted,
 * and nothing stale comes back; a child gets no copy of the region
 * (SIGSEGV, never wrong data); a store that fails a read poisons the page
 * (SIGBUS), one that fails a write keeps the page resident and dirty; a
 * whole-region mremap keeps every byte; the refusals say why.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <check.h>

#include "helpers.h"

#define NPAGES		1024	/* the region: 4 MiB */
#define BUDGET		256	/* pages: 1 MiB */
#define OPS		6000	/* accesses per thread */

static char store_path[64];

static void path_setup(void)
{
	int fd;

	snprintf(store_path, sizeof(store_path), "/tmp/test-evict-XXXXXX");
	fd = mkstemp(store_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void path_teardown(void)
{
	if (store_path[0])
		unlink(store_path);
	store_path[0] = '\0';
}

static struct uffd_ctx *ev_ctx(unsigned int handlers, uint64_t off)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o), .handlers = handlers, .features_off = off,
	};
	struct uffd_ctx *c;

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	return c;
}

static struct uffd_region *ev_region(struct uffd_ctx *c, const char *spec,
				       size_t npages)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = npages * page_size(), .pager = spec,
	};
	struct uffd_region *r;
	int ret = uffd_region_create(c, &o, &r);

	ck_assert_msg(ret == 0, "%s: %s", spec, uffd_last_error());
	ck_assert_uint_eq(uffd_region_modes(r),
			  LIBUFFD_REG_MISSING | LIBUFFD_REG_WP);
	return r;
}

/* Page @pg at version @v: every word says so; version 0 is zeros. */
static void fill_page(uint64_t *w, size_t pg, uint32_t v)
{
	size_t i, n = page_size() / 8;

	for (i = 0; i < n; i++)
		w[i] = v ? ((uint64_t)pg << 40 | (uint64_t)v << 8 | (i & 0xff)) :
		       0;
}

static int page_is(const uint64_t *w, size_t pg, uint32_t v)
{
	size_t i, n = page_size() / 8;

	for (i = 0; i < n; i++)
		if (w[i] != (v ? ((uint64_t)pg << 40 | (uint64_t)v << 8 |
				  (i & 0xff)) : 0))
			return 0;
	return 1;
}

/* ---- two threads over a region four times the budget ---- */

struct worker {
	uint8_t		*base;
	unsigned int	id;		/* owns pages p with p % 2 == id */
	uint32_t	*ver;		/* the shadow: version per page */
	uint64_t	seed;
	long		max_rss_kib;
	int		bad;		/* a page read back wrong */
	size_t		bad_page;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t ps = page_size(), i;

	for (i = 0; i < OPS && !w->bad; i++) {
		size_t pg;
		uint64_t *p;

		w->seed = w->seed * 6364136223846793005ULL + 1442695040888963407ULL;
		pg = (size_t)(w->seed >> 33) % (NPAGES / 2) * 2 + w->id;
		p = (uint64_t *)(w->base + pg * ps);
		if ((w->seed >> 20) % 3 == 0) {
			fill_page(p, pg, ++w->ver[pg]);
		} else if (!page_is(p, pg, w->ver[pg])) {
			w->bad = 1;
			w->bad_page = pg;
		}
		if (i % 256 == 0) {
			long rss = rss_kib(w->base);

			if (rss > w->max_rss_kib)
				w->max_rss_kib = rss;
		}
	}
	return NULL;
}

static void run_two(struct uffd_region *r, uint32_t *ver)
{
	struct worker w[2];
	pthread_t t[2];
	size_t pg;
	int i;

	for (i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].base = uffd_region_addr(r);
		w[i].id = (unsigned int)i;
		w[i].ver = ver;
		w[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main,
						&w[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(!w[i].bad, "thread %d: page %zu is not its last "
			      "write (version %u)", i, w[i].bad_page,
			      ver[w[i].bad_page]);
		ck_assert_msg(w[i].max_rss_kib <= (long)(BUDGET * page_size()
							  / 1024),
			      "Rss %ld KiB over the budget %zu KiB",
			      w[i].max_rss_kib, BUDGET * page_size() / 1024);
	}
	for (pg = 0; pg < NPAGES; pg++)
		ck_assert_msg(page_is((uint64_t *)((uint8_t *)
				      uffd_region_addr(r) + pg * page_size()),
				      pg, ver[pg]),
			      "page %zu is not its last write", pg);
}

static const char *const two_specs[] = {
	"evict:limit=1M,batch=16,policy=fifo",
	"evict:limit=1M,batch=16,policy=clock",
	"evict:limit=1M,batch=16,store=file,direct=0,path=",
	"evict:limit=1M,store=file,path=",		/* O_DIRECT */
};

START_TEST(two_threads_under_budget)
{
	struct uffd_ctx *c = ev_ctx(2, 0);
	uint32_t *ver = calloc(NPAGES, sizeof(*ver));
	struct uffd_stats st;
	struct uffd_region *r;
	char spec[160];

	snprintf(spec, sizeof(spec), "%s%s", two_specs[_i],
		 strstr(two_specs[_i], "path=") ? store_path : "");
	r = ev_region(c, spec, NPAGES);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	run_two(r, ver);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_gt(st.pages_evicted, NPAGES - BUDGET);
	ck_assert_uint_gt(st.pages_written_back, 0);
	ck_assert_uint_gt(st.pages_read_in, 0);
	ck_assert_uint_gt(st.faults_wp, 0);
	ck_assert_uint_eq(st.writeback_errors, 0);
	ck_assert_uint_eq(st.pager_errors, 0);
	ck_assert_uint_eq(st.events_remove, 0);	/* evictions raise none */
	uffd_ctx_destroy(c);
	free(ver);
}
END_TEST

/* ---- flush: the store holds exactly the region's bytes ---- */

START_TEST(flush_file_exact)
{
	struct uffd_ctx *c = ev_ctx(1, 0);
	size_t ps = page_size(), pg;
	uint8_t *base, *buf = malloc(ps), *want = malloc(ps);
	struct uffd_region *r;
	struct uffd_stats st;
	char spec[160];
	int fd;

	snprintf(spec, sizeof(spec), "evict:limit=1M,batch=16,store=file,"
		 "path=%s", store_path);
	r = ev_region(c, spec, NPAGES);
	base = uffd_region_addr(r);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	/* pages 3 mod 4 are never written: zeros; the rest twice */
	for (pg = 0; pg < NPAGES; pg++)
		if (pg % 4 != 3)
			fill_page((uint64_t *)(base + pg * ps), pg, 1);
	for (pg = 0; pg < NPAGES; pg += 2)
		if (pg % 4 != 3)
			fill_page((uint64_t *)(base + pg * ps), pg, 2);
	/* a resident dirty page and an evicted one thrown away: zeros */
	madvise(base + 5 * ps, ps, MADV_DONTNEED);
	madvise(base + (NPAGES - 2) * ps, ps, MADV_DONTNEED);
	ck_assert_int_eq(uffd_region_flush(r), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.writeback_errors, 0);

	fd = open(store_path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	for (pg = 0; pg < NPAGES; pg++) {
		uint32_t v = pg % 4 == 3 || pg == 5 || pg == NPAGES - 2 ? 0 :
			     pg % 2 == 0 ? 2 : 1;

		fill_page((uint64_t *)want, pg, v);
		ck_assert_int_eq(pread(fd, buf, ps, (off_t)(pg * ps)),
				 (ssize_t)ps);
		ck_assert_msg(!memcmp(buf, want, ps), "file page %zu is not "
			      "the region's", pg);
		ck_assert_msg(!memcmp(base + pg * ps, want, ps),
			      "region page %zu", pg);
	}
	close(fd);
	uffd_ctx_destroy(c);
	free(buf);
	free(want);
}
END_TEST

/* flush with nothing resident dirty, and twice: no writes the second time */
START_TEST(flush_idempotent)
{
	struct uffd_ctx *c = ev_ctx(1, 0);
	struct uffd_region *r = ev_region(c, "evict:limit=1M", 64);
	struct uffd_stats a, b;
	uint8_t *base = uffd_region_addr(r);

	ck_assert_int_eq(uffd_ctx_start(c), 0);
	ck_assert_int_eq(uffd_region_flush(r), 0);
	memset(base, 7, 10 * page_size());
	ck_assert_int_eq(uffd_region_flush(r), 0);
	ck_assert_int_eq(uffd_region_stats(r, &a, sizeof(a)), 0);
	ck_assert_uint_eq(a.pages_written_back, 10);
	ck_assert_int_eq(uffd_region_flush(r), 0);
	ck_assert_int_eq(uffd_region_stats(r, &b, sizeof(b)), 0);
	ck_assert_uint_eq(b.pages_written_back, 10);
	/* flushed pages are clean again: a write is a WP fault again */
	base[0] = 8;
	ck_assert_int_eq(uffd_region_stats(r, &b, sizeof(b)), 0);
	ck_assert_uint_gt(b.faults_wp, a.faults_wp);
	ck_assert_int_eq(base[0], 8);
	ck_assert_int_eq(base[1], 7);
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- the application's MADV_DONTNEED ---- */

/* Touch every page but @keep (writes), pushing everything else out. */
static void churn(uint8_t *base, size_t keep)
{
	size_t pg;

	for (pg = 0; pg < NPAGES; pg++)
		if (pg != keep)
			base[pg * page_size() + 1] = (uint8_t)pg;
}

START_TEST(dontneed_reads_zeros)
{
	struct uffd_ctx *c = ev_ctx(1, 0);
	struct uffd_region *r = ev_region(c, "evict:limit=1M,batch=16",
					    NPAGES);
	uint8_t *base = uffd_region_addr(r);
	size_t ps = page_size(), i;
	struct uffd_stats st;

	ck_assert_int_eq(uffd_ctx_start(c), 0);
	/* page 10: written then evicted, then thrown away */
	memset(base + 10 * ps, 0xaa, ps);
	churn(base, 10);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_gt(st.pages_written_back, 0);
	ck_assert_int_eq(madvise(base + 10 * ps, ps, MADV_DONTNEED), 0);
	/* page 20: written, resident and dirty, then thrown away */
	memset(base + 20 * ps, 0xbb, ps);
	ck_assert_int_eq(madvise(base + 20 * ps, ps, MADV_DONTNEED), 0);
	for (i = 0; i < ps; i++) {
		ck_assert_int_eq(base[10 * ps + i], 0);
		ck_assert_int_eq(base[20 * ps + i], 0);
	}
	/* out and in again: still zeros, nothing stale from the store */
	churn(base, SIZE_MAX);
	churn(base, SIZE_MAX);
	for (i = 2; i < ps; i++) {
		ck_assert_int_eq(base[10 * ps + i], 0);
		ck_assert_int_eq(base[20 * ps + i], 0);
	}
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.events_remove, 2);
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- fork ---- */

START_TEST(fork_gets_no_copy)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o), .features = LIBUFFD_FEATURE_EVENT_FORK,
	};
	struct uffd_ctx *c;
	struct uffd_region *r;
	uint8_t *base;
	struct uffd_stats st;
	int status;
	pid_t pid;

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	r = ev_region(c, "evict:limit=1M,batch=16", NPAGES);
	base = uffd_region_addr(r);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	churn(base, SIZE_MAX);
	ck_assert_int_eq(vma_has_flag(base, "dc"), 1);	/* VM_DONTCOPY */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		volatile uint8_t x;

		/* the kernel's SIGSEGV, not a sanitizer's report and exit */
		signal(SIGSEGV, SIG_DFL);
		x = base[3 * page_size() + 1];

		(void)x;
		_exit(0);	/* read something: wrong */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		      "the child read the region (status %#x)", status);
	/* the parent is untouched, and no child region was made */
	ck_assert_int_eq(base[3 * page_size() + 1], 3);
	ck_assert_int_eq(uffd_ctx_stats(c, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.pager_errors, 0);
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- failing stores ---- */

static sigjmp_buf jb;
static volatile sig_atomic_t bus_code;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_code = si->si_code;
	siglongjmp(jb, 1);
}

START_TEST(store_read_fails_sigbus)
{
	struct uffd_ctx *c = ev_ctx(1, 0);
	struct sigaction sa = { .sa_sigaction = on_bus, .sa_flags = SA_SIGINFO };
	struct sigaction old;
	struct uffd_region *r;
	struct uffd_stats st;
	uint8_t *base;
	char spec[200];
	size_t ps = page_size();

	/* a store file that holds page 7 (written through a first region) */
	snprintf(spec, sizeof(spec), "evict:limit=1M,store=file,direct=0,"
		 "path=%s", store_path);
	r = ev_region(c, spec, 64);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	memset((uint8_t *)uffd_region_addr(r) + 7 * ps, 0x77, ps);
	ck_assert_int_eq(uffd_region_flush(r), 0);
	uffd_region_destroy(r);
	/* resumed from it (fresh=0), with reads of page 7 failing */
	snprintf(spec, sizeof(spec), "evict:limit=1M,store=file,direct=0,"
		 "fresh=0,inject_eio=7,path=%s", store_path);
	r = ev_region(c, spec, 64);
	base = uffd_region_addr(r);
	ck_assert_int_eq(base[6 * ps], 0);	/* a hole: zeros, no I/O */
	sigaction(SIGBUS, &sa, &old);
	bus_code = 0;
	if (!sigsetjmp(jb, 1)) {
		volatile uint8_t x = base[7 * ps];

		(void)x;
	}
	sigaction(SIGBUS, &old, NULL);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_msg(bus_code != 0, "no SIGBUS from a failed store read "
		      "(read in %llu, faults %llu, errors %llu, copied %llu)",
		      (unsigned long long)st.pages_read_in,
		      (unsigned long long)st.faults_read,
		      (unsigned long long)st.pager_errors,
		      (unsigned long long)st.pages_copy);
	ck_assert_uint_eq(st.pager_errors, 1);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(store_write_fails_kept)
{
	struct uffd_ctx *c = ev_ctx(1, 0);
	struct uffd_region *r = ev_region(c, "evict:limit=1M,batch=16,"
					    "store=memfd,inject_eio=2",
					    NPAGES);
	uint8_t *base = uffd_region_addr(r);
	size_t ps = page_size(), i;
	struct uffd_stats st;
	long rss;

	ck_assert_int_eq(uffd_ctx_start(c), 0);
	memset(base + 2 * ps, 0x22, ps);
	for (i = 0; i < 3; i++)
		churn(base, 2);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_ge(st.writeback_errors, 1);
	/* never lost, and resident: over the budget by that page at most */
	for (i = 0; i < ps; i++)
		ck_assert_int_eq(base[2 * ps + i], 0x22);
	rss = rss_kib(base);
	ck_assert_int_le(rss, (long)((BUDGET + 1) * ps / 1024));
	/* a flush tries it again and says it failed */
	ck_assert_int_eq(uffd_region_flush(r), -EIO);
	ck_assert_int_eq(base[2 * ps + 5], 0x22);
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- mremap of the whole region ---- */

START_TEST(mremap_keeps_bytes)
{
	struct uffd_ctx *c = ev_ctx(1, 0);
	struct uffd_region *r = ev_region(c, "evict:limit=1M,batch=16",
					    NPAGES);
	size_t ps = page_size(), len = NPAGES * ps, pg;
	uint8_t *base = uffd_region_addr(r), *to, *now;

	ck_assert_int_eq(uffd_ctx_start(c), 0);
	for (pg = 0; pg < NPAGES; pg++)
		fill_page((uint64_t *)(base + pg * ps), pg, 1);
	to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(to, MAP_FAILED);
	now = mremap(base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	ck_assert_ptr_eq(now, to);
	ck_assert_ptr_eq(uffd_region_addr(r), to);
	for (pg = 0; pg < NPAGES; pg++)
		ck_assert_msg(page_is((uint64_t *)(to + pg * ps), pg, 1),
			      "page %zu after mremap", pg);
	for (pg = 0; pg < NPAGES; pg++)
		fill_page((uint64_t *)(to + pg * ps), pg, 2);
	for (pg = 0; pg < NPAGES; pg++)
		ck_assert(page_is((uint64_t *)(to + pg * ps), pg, 2));
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- refusals ---- */

static struct uffd_region *make_region_zero(struct uffd_ctx *c)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = 64 * page_size(), .pager = "zero",
	};
	struct uffd_region *r;

	ck_assert_int_eq(uffd_region_create(c, &o, &r), 0);
	return r;
}

static int try_spec(struct uffd_ctx *c, const char *spec,
		    enum uffd_mem_type type)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = type, .len = 64 * page_size(),
		.pager = spec,
	};
	struct uffd_region *r = NULL;
	int ret = uffd_region_create(c, &o, &r);

	if (!ret)
		uffd_region_destroy(r);
	return ret;
}

START_TEST(refusals)
{
	struct uffd_ctx *c = ev_ctx(1, 0), *nomove, *sig;
	struct uffd_ctx_opts so = {
		.size = sizeof(so), .delivery = LIBUFFD_DELIVER_SIGBUS,
	};
	struct uffd_region *r;

	ck_assert_int_eq(try_spec(c, "evict", LIBUFFD_MEM_ANON), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "limit"));
	ck_assert_int_eq(try_spec(c, "evict:limit=1M,policy=lru",
				  LIBUFFD_MEM_ANON), -EINVAL);
	ck_assert_int_eq(try_spec(c, "evict:limit=1M,store=tape",
				  LIBUFFD_MEM_ANON), -EINVAL);
	ck_assert_int_eq(try_spec(c, "evict:limit=1M,store=memfd,bogus=1",
				  LIBUFFD_MEM_ANON), -EINVAL);
	ck_assert_int_eq(try_spec(c, "evict:limit=1M", LIBUFFD_MEM_MEMFD),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "anonymous"));
	nomove = ev_ctx(1, LIBUFFD_FEATURE_MOVE);
	ck_assert_int_eq(try_spec(nomove, "evict:limit=1M", LIBUFFD_MEM_ANON),
			 -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "MOVE"));
	ck_assert_int_eq(uffd_ctx_create(&sig, &so), 0);
	ck_assert_int_eq(try_spec(sig, "evict:limit=1M", LIBUFFD_MEM_ANON),
			 -ENOTSUP);
	/* two regions paging to one file would corrupt each other */
	{
		char spec[200];
		struct uffd_region *first;

		snprintf(spec, sizeof(spec), "evict:limit=1M,store=file,"
			 "direct=0,path=%s", store_path);
		first = ev_region(c, spec, 64);
		ck_assert_int_eq(try_spec(c, spec, LIBUFFD_MEM_ANON), -EBUSY);
		uffd_region_destroy(first);
	}
	/* a pager that keeps no dirty pages has nothing to flush */
	r = make_region_zero(c);
	ck_assert_int_eq(uffd_region_flush(r), -EOPNOTSUPP);
	ck_assert_int_eq(uffd_region_flush(NULL), -EINVAL);
	uffd_ctx_destroy(sig);
	uffd_ctx_destroy(nomove);
	uffd_ctx_destroy(c);
}
END_TEST

static Suite *evict_suite(void)
{
	Suite *s = suite_create("evict");
	TCase *tc = add_tcase(s, "evict", path_setup, path_teardown);

	tcase_set_timeout(tc, 120);
	add_loop_test_if(tc, two_threads_under_budget, 0,
			 (int)ARRAY_SIZE(two_specs), 0, 0);
	tcase_add_test(tc, flush_file_exact);
	tcase_add_test(tc, flush_idempotent);
	tcase_add_test(tc, dontneed_reads_zeros);
	tcase_add_test(tc, fork_gets_no_copy);
	tcase_add_test(tc, store_read_fails_sigbus);
	tcase_add_test(tc, store_write_fails_kept);
	tcase_add_test(tc, mremap_keeps_bytes);
	tcase_add_test(tc, refusals);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_MOVE | LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP,
		       0);
	return run_suite(evict_suite());
}
