/* SPDX-License-Identifier: MIT */
/*
 * dirty: ways of finding which pages a program wrote, the first thing a
 * pager that writes back (or a checkpoint, or a live migration) needs.
 *
 * A mapping of --size is populated (every page written once), armed,
 * then a round writes a fraction of its pages (distinct, random, the same
 * pages for every method), and the dirty set is collected and armed
 * again.  Methods:
 *
 *   native      plain writes, nothing tracked: the baseline for the writes
 *   soft-dirty  the kernel's own way (CRIU's): clear_refs "4" to arm, the
 *               pagemap's soft-dirty bit (55) to collect
 *   wp-sync     libuffd write-protect faults: each first write to a page
 *               is a fault the pager records, then releases; re-armed by
 *               uffd_resolve_writeprotect() over the region
 *   wp-async    UFFD_FEATURE_WP_ASYNC: the kernel resolves the faults by
 *               itself; uffd_region_scan_written() (PAGEMAP_SCAN) collects
 *               and re-arms in one walk
 *
 * Every method's dirty set is checked against the pages written; a
 * mismatch stops the experiment (soft-dirty may report more pages than
 * were written, never fewer: "found" says how many).  Reported per fraction: the write time
 * per written page, the collection (+ re-arm) time, and their total
 * against native's writes and against soft-dirty, medians over --reps,
 * methods interleaved.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libuffd.h>

#include "bench.h"

enum method { M_NATIVE, M_SOFT, M_WPSYNC, M_WPASYNC, M_NUM };

static const char *const method_name[M_NUM] = {
	"native", "soft-dirty", "wp-sync", "wp-async",
};

/* ---- the sync tracking pager: a bit per page written ------------- */

struct tracker {
	uint64_t	*bits;
	size_t		ps;
};

static int trk_init(struct uffd_region *r, const struct uffd_args *args,
		    void **state)
{
	struct tracker *t = calloc(1, sizeof(*t));
	size_t pages = uffd_region_len(r) / uffd_region_page_size(r);

	(void)args;
	if (!t)
		return -ENOMEM;
	t->ps = uffd_region_page_size(r);
	t->bits = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!t->bits) {
		free(t);
		return -ENOMEM;
	}
	*state = t;
	return 0;
}

static int trk_fault(void *state, struct uffd_resolver *res,
		     const struct uffd_fault *f)
{
	struct tracker *t = state;
	size_t i = f->offset / t->ps;
	long ret;

	if (f->flags & LIBUFFD_FAULT_WP) {
		__atomic_or_fetch(&t->bits[i / 64], 1ull << (i % 64),
				  __ATOMIC_RELAXED);
		ret = uffd_resolve_writeprotect(res, f->offset, t->ps, 0);
	} else if (f->flags & LIBUFFD_FAULT_WRITE) {
		__atomic_or_fetch(&t->bits[i / 64], 1ull << (i % 64),
				  __ATOMIC_RELAXED);
		ret = uffd_resolve_zerofill(res, f->offset, t->ps);
	} else {
		ret = uffd_resolver_set_fill(res, LIBUFFD_FILL_WP);
		if (ret == 0)
			ret = uffd_resolve_zeropage(res, f->offset, t->ps);
	}
	return ret < 0 ? (int)ret : 0;
}

static void trk_fini(void *state)
{
	struct tracker *t = state;

	free(t->bits);
	free(t);
}

/* The tracker's state: the pager's, reached through a known pointer. */
static struct tracker *last_tracker;

static int trk_init_hook(struct uffd_region *r, const struct uffd_args *args,
			 void **state)
{
	int ret = trk_init(r, args, state);

	if (ret == 0)
		last_tracker = *state;
	return ret;
}

static const struct uffd_pager_ops tracker_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "dirty-tracker",
	.flags = LIBUFFD_PAGER_WP | LIBUFFD_PAGER_CONCURRENT,
	.init = trk_init_hook,
	.fault = trk_fault,
	.fini = trk_fini,
};

/* ---- one method's memory ---------------------------------------- */

struct area {
	enum method		m;
	uint8_t			*p;
	size_t			len, pages;
	struct uffd_ctx		*ctx;
	struct uffd_region	*r;
	struct uffd_resolver	*res;	/* wp-sync: re-arming */
	struct tracker		*trk;	/* wp-sync: the pager's state */
	uint64_t		*bits;	/* the collected set */
	int			pagemap;
};

static int soft_dirty_clear(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

static bool area_open(struct area *a, enum method m)
{
	struct uffd_ctx_opts co = { .size = sizeof(co) };
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON, .len = cfg.size,
		.ops = &tracker_ops,
		.modes = LIBUFFD_REG_MISSING | LIBUFFD_REG_WP,
	};
	size_t i;
	int ret;

	memset(a, 0, sizeof(*a));
	a->m = m;
	a->len = cfg.size;
	a->pages = cfg.pages;
	a->pagemap = -1;
	a->bits = xcalloc((a->pages + 63) / 64, sizeof(uint64_t));
	if (m == M_NATIVE || m == M_SOFT) {
		a->p = mmap(NULL, a->len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a->p == MAP_FAILED)
			die_sys("mmap");
		/*
		 * 4 KiB pages, as the regions have: a huge page is one
		 * soft-dirty bit, so one write would report 512 pages.
		 */
		madvise(a->p, a->len, MADV_NOHUGEPAGE);
	} else {
		if (m == M_WPASYNC)
			co.features = LIBUFFD_FEATURE_WP_ASYNC;
		ret = uffd_ctx_create(&a->ctx, &co);
		if (ret == -EOPNOTSUPP) {
			note("%s: %s: left out", method_name[m],
			     uffd_last_error());
			free(a->bits);
			a->bits = NULL;
			return false;
		}
		if (ret < 0)
			die_uffd("uffd_ctx_create", ret);
		ret = uffd_ctx_start(a->ctx);
		if (ret < 0)
			die_uffd("uffd_ctx_start", ret);
		ret = uffd_region_create(a->ctx, &o, &a->r);
		if (ret < 0)
			die_uffd("uffd_region_create", ret);
		a->p = uffd_region_addr(a->r);
		ret = uffd_resolver_create(a->r, &a->res);
		if (ret < 0)
			die_uffd("uffd_resolver_create", ret);
	}
	/* populate: every page written once (write faults, unprotected) */
	for (i = 0; i < a->len; i += 4096)
		a->p[i] = 1;
	if (m == M_SOFT) {
		uint64_t e = 0;

		a->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (a->pagemap < 0)
			die_sys("/proc/self/pagemap");
		/* a page just written is soft-dirty, where the kernel has it */
		if (pread(a->pagemap, &e, 8,
			  (off_t)((uintptr_t)a->p / 4096 * 8)) != 8 ||
		    !(e & (1ull << 55))) {
			note("soft-dirty: this kernel keeps no soft-dirty bits "
			     "(CONFIG_MEM_SOFT_DIRTY): left out");
			close(a->pagemap);
			munmap(a->p, a->len);
			free(a->bits);
			return false;
		}
	}
	return true;
}

static void area_close(struct area *a)
{
	if (a->res)
		uffd_resolver_destroy(a->res);
	if (a->ctx)
		uffd_ctx_destroy(a->ctx);	/* unmaps the region */
	else
		munmap(a->p, a->len);
	if (a->pagemap >= 0)
		close(a->pagemap);
	free(a->bits);
}

/* Arm (or re-arm) tracking; collect what was written into a->bits. */
static long collect(struct area *a, bool keep)
{
	uint64_t buf[4096];
	size_t i, k, n;
	long count = 0;
	int ret;

	memset(a->bits, 0, (a->pages + 63) / 64 * sizeof(uint64_t));
	switch (a->m) {
	case M_NATIVE:
		return 0;
	case M_SOFT:
		for (i = 0; keep && i < a->pages; i += n) {
			n = a->pages - i < ARRAY_SIZE(buf) ?
			    a->pages - i : ARRAY_SIZE(buf);
			if (pread(a->pagemap, buf, n * 8,
				  (off_t)(((uintptr_t)a->p / 4096 + i) * 8)) !=
			    (ssize_t)(n * 8))
				die_sys("pread pagemap");
			for (k = 0; k < n; k++)
				if (buf[k] & (1ull << 55)) {
					a->bits[(i + k) / 64] |=
						1ull << ((i + k) % 64);
					count++;
				}
		}
		ret = soft_dirty_clear();
		if (ret < 0)
			die_uffd("clear_refs", ret);
		return count;
	case M_WPSYNC: {
		struct tracker *t = a->trk;
		long p;

		/* the pager's bits: swap them out, then protect everything */
		if (t && keep)
			for (i = 0; i < (a->pages + 63) / 64; i++) {
				a->bits[i] = __atomic_exchange_n(&t->bits[i], 0,
							__ATOMIC_RELAXED);
				count += __builtin_popcountll(a->bits[i]);
			}
		else if (t)
			memset(t->bits, 0, (a->pages + 63) / 64 * 8);
		p = uffd_resolve_writeprotect(a->res, 0, a->len, 1);
		if (p < 0)
			die_uffd("uffd_resolve_writeprotect", (int)p);
		return count;
	}
	case M_WPASYNC:
		count = uffd_region_scan_written(a->r, 0, a->len, a->bits,
						 LIBUFFD_SCAN_REPROTECT);
		if (count < 0)
			die_uffd("uffd_region_scan_written", (int)count);
		return keep ? count : 0;
	default:
		return 0;
	}
}

BENCH_NOSAN static void write_pages(uint8_t *p, const uint32_t *order,
				    size_t k, uint8_t v)
{
	size_t i;

	for (i = 0; i < k; i++)
		((volatile uint8_t *)p)[(size_t)order[i] * 4096 + 8] = v;
}

static void check_set(const struct area *a, const uint32_t *order, size_t k,
		      long count)
{
	size_t i;

	if (a->m == M_NATIVE)
		return;
	/* soft-dirty may say more (the kernel sets it for other reasons) */
	if ((size_t)count != k && !(a->m == M_SOFT && (size_t)count > k)) {
		fprintf(stderr, "uffd-bench: dirty: %s found %ld written pages,"
			" %zu were\n", method_name[a->m], count, k);
		exit(1);
	}
	for (i = 0; i < k; i++)
		if (!(a->bits[order[i] / 64] & (1ull << (order[i] % 64)))) {
			fprintf(stderr, "uffd-bench: dirty: %s missed page "
				"%u\n", method_name[a->m], order[i]);
			exit(1);
		}
}

void experiment_dirty(void)
{
	static const double fractions[] = { 0.01, 0.1, 0.5, 1.0 };
	static const struct col cols[] = {
		{ "written", "workload", 0, 0, COL_LEFT },
		{ "method", "strategy", 0, 0, COL_LEFT },
		{ "write ns/page", "write_ns_per_page", 1, 0, 0 },
		{ "collect ms", "collect_ms", 2, 0, 0 },
		{ "total ms", "total_ms", 2, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "found", "found", 0, 0, 0 },
		{ "x soft-dirty", "ratio_vs_soft_dirty", 2, 0, 0 },
		{ "", "", 0, 0, 0 },
	};
	struct rows rows = { 0 };
	struct area a[M_NUM];
	uint32_t *order = page_order(cfg.pages, 42);
	double w[M_NUM][64], c[M_NUM][64];
	long found[M_NUM];
	bool have[M_NUM];
	unsigned int rep, reps = cfg.reps < 64 ? cfg.reps : 64;
	size_t fi, k;
	int m;

	for (m = 0; m < M_NUM; m++) {
		last_tracker = NULL;
		have[m] = area_open(&a[m], (enum method)m);
		a[m].trk = last_tracker;
	}
	for (fi = 0; fi < ARRAY_SIZE(fractions) && !bench_stopped(); fi++) {
		k = (size_t)(fractions[fi] * (double)cfg.pages);
		if (!k)
			k = 1;
		for (m = 0; m < M_NUM; m++)
			if (have[m])
				collect(&a[m], false);		/* arm */
		for (rep = 0; rep <= reps && !bench_stopped(); rep++) {
			for (m = 0; m < M_NUM; m++) {
				uint64_t t0, t1, t2;
				long n;

				if (!have[m])
					continue;
				t0 = now_ns();
				write_pages(a[m].p, order, k,
					    (uint8_t)(rep + 2));
				t1 = now_ns();
				n = collect(&a[m], true);
				t2 = now_ns();
				check_set(&a[m], order, k, n);
				found[m] = n;
				if (rep == 0)
					continue;	/* warm-up */
				w[m][rep - 1] = (double)(t1 - t0);
				c[m][rep - 1] = (double)(t2 - t1);
			}
		}
		if (bench_stopped())
			break;
		{
			double tot[M_NUM];

			for (m = 0; m < M_NUM; m++)
				tot[m] = have[m] ? median(w[m], reps) +
						   median(c[m], reps) : NAN;
			for (m = 0; m < M_NUM; m++) {
				struct row *r;
				double ws, cs;

				if (!have[m])
					continue;
				r = rows_add(&rows);
				ws = median(w[m], reps);
				cs = median(c[m], reps);
				row_init(r, bench_fmt("%g%%", fractions[fi] *
						      100), method_name[m],
					 cfg.size, k, reps);
				r->ns_per_page = (ws + cs) / (double)k;
				r->ratio_vs_native = (ws + cs) / tot[M_NATIVE];
				row_dbl(r, "write_ns_per_page",
					ws / (double)k);
				row_dbl(r, "collect_ms", cs / 1e6);
				row_dbl(r, "total_ms", (ws + cs) / 1e6);
				if (have[M_SOFT])
					row_dbl(r, "ratio_vs_soft_dirty",
						(ws + cs) / tot[M_SOFT]);
				row_u64(r, "found", m == M_NATIVE ? 0 :
					(uint64_t)found[m]);
			}
		}
	}
	/* without soft-dirty, its column would be empty */
	bench_emit(&rows, 0, bench_fmt("dirty: finding written pages, %s; "
				       "handler unpinned",
				       bench_what(cfg.size, reps)),
		   cols, ARRAY_SIZE(cols) - (have[M_SOFT] ? 0 : 2));
	if (!cfg.json && !have[M_SOFT])
		printf("# found: pages the method reported written\n");
	if (!cfg.json)
		printf("# each round writes one byte in N distinct random pages of a "
	       "populated mapping, then collects the set and arms again;\n"
	       "# write ns/page: the writes / N; collect: finding the set + "
	       "re-arming; x native, x soft-dirty: total against those rows\n"
	       "# every method's set is checked against the pages written\n");
	for (m = 0; m < M_NUM; m++)
		if (have[m])
			area_close(&a[m]);
	rows_free(&rows);
	free(order);
}
