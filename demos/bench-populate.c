/* SPDX-License-Identifier: MIT */
/*
 * populate-table (seed 001): the MADV_POPULATE benchmark David Hildenbrand
 * posted with the patch that added MADV_POPULATE_READ/WRITE (Feb 2021),
 * redone on this machine with the seed's figures beside ours.
 *
 * For each size (2 MiB, 128 MiB, 4 GiB), sharing (MAP_PRIVATE,
 * MAP_SHARED), memory (anonymous, memfd, hugetlb memfd) and method (Read,
 * Write, Read+Write, POPULATE_READ, POPULATE_WRITE), each iteration maps
 * the memory, discards it (madvise/fallocate), and prefaults it: only the
 * prefault is timed.  The seed averaged 10 iterations; so do we, and we
 * give the median too.  Each libuffd pager gets a column: the same
 * mapping registered with the pager (hugetlb: a library hugetlb region),
 * so the prefault's faults are served from user space.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "bench.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB		4U
#endif

enum { T_ANON, T_MEMFD, T_HUGETLB, NTYPES };
enum { M_READ, M_WRITE, M_RW, M_POP_READ, M_POP_WRITE, NMETHODS };

static const char *const type_name[NTYPES] = {
	"Anonymous", "Memfd 4 KiB", "Memfd 2 MiB",
};
static const char *const type_key[NTYPES] = {
	"anon", "memfd", "memfd-hugetlb",
};
static const char *const method_name[NMETHODS] = {
	"Read", "Write", "Read+Write", "POPULATE_READ", "POPULATE_WRITE",
};
static const char *const method_key[NMETHODS] = {
	"read", "write", "read+write", "populate-read", "populate-write",
};

/*
 * The seed's published averages in ms, [size][shared][type][method]:
 * sizes 2 MiB, 128 MiB, 4096 MiB.  (Its MADV_POPULATE row was the RFC's
 * own call, which was never merged: not run here.)
 */
static const uint64_t seed_size[3] = { 2 * MIB, 128 * MIB, 4 * GIB };
static const double seed_ms[3][2][NTYPES][NMETHODS] = {
	{ /* 2 MiB */
		{ { 0.159, 0.244, 0.383, 0.064, 0.165 },
		  { 0.401, 0.056, 0.075, 0.337, 0.056 },
		  { 0.041, 0.030, 0.031, 0.031, 0.031 } },
		{ { 0.071, 0.181, 0.081, 0.069, 0.115 },
		  { 0.401, 0.351, 0.414, 0.339, 0.279 },
		  { 0.031, 0.031, 0.031, 0.031, 0.031 } },
	},
	{ /* 128 MiB */
		{ { 7.517, 22.503, 33.186, 3.952, 18.354 },
		  { 34.300, 4.659, 6.531, 29.744, 5.244 },
		  { 10.228, 10.130, 10.190, 10.008, 10.010 } },
		{ { 7.295, 15.234, 7.460, 5.190, 8.245 },
		  { 34.412, 30.586, 35.157, 29.691, 25.790 },
		  { 10.210, 10.074, 10.068, 10.037, 10.031 } },
	},
	{ /* 4096 MiB */
		{ { 240.947, 712.941, 1027.636, 120.215, 570.750 },
		  { 1054.739, 145.534, 202.275, 914.747, 161.281 },
		  { 351.818, 352.357, 352.762, 351.553, 351.931 } },
		{ { 229.338, 478.964, 234.546, 160.943, 252.686 },
		  { 1052.828, 929.237, 1074.494, 915.001, 787.388 },
		  { 353.580, 353.197, 353.172, 353.465, 352.776 } },
	},
};

static double seed_figure(uint64_t size, int shared, int type, int method)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(seed_size); i++)
		if (seed_size[i] == size)
			return seed_ms[i][shared][type][method];
	return NAN;
}

/* ------------------------------------------------------------------ */
/* One prefault                                                       */
/* ------------------------------------------------------------------ */

static BENCH_NOSAN void pf_read(uint8_t *p, size_t len, size_t step)
{
	size_t off;

	for (off = 0; off < len; off += step)
		(void)*(volatile uint8_t *)(p + off);
}

static BENCH_NOSAN void pf_write(uint8_t *p, size_t len, size_t step)
{
	size_t off;

	for (off = 0; off < len; off += step)
		*(volatile uint8_t *)(p + off) = 0;
}

static BENCH_NOSAN void pf_rw(uint8_t *p, size_t len, size_t step)
{
	size_t off;
	uint8_t v;

	for (off = 0; off < len; off += step) {
		v = *(volatile uint8_t *)(p + off);
		__asm__ __volatile__("" : "+r" (v) : : "memory");
		*(volatile uint8_t *)(p + off) = v;
	}
}

/* The timed part.  Returns 0 or -errno (madvise). */
static int prefault(int method, uint8_t *p, size_t len, size_t ps)
{
	switch (method) {
	case M_READ:
		pf_read(p, len, ps);
		return 0;
	case M_WRITE:
		pf_write(p, len, ps);
		return 0;
	case M_RW:
		pf_rw(p, len, ps);
		return 0;
	case M_POP_READ:
		return madvise(p, len, MADV_POPULATE_READ) ? -errno : 0;
	default:
		return madvise(p, len, MADV_POPULATE_WRITE) ? -errno : 0;
	}
}

struct cell {
	uint64_t	size;
	int		shared, type;
	int		memfd;		/* memfd types: one file per cell */
	size_t		ps;
};

static uint8_t *cell_map(const struct cell *c)
{
	int flags = c->shared ? MAP_SHARED : MAP_PRIVATE;
	uint8_t *p;

	if (c->type == T_ANON)
		p = mmap(NULL, c->size, PROT_READ | PROT_WRITE,
			 flags | MAP_ANONYMOUS, -1, 0);
	else
		p = mmap(NULL, c->size, PROT_READ | PROT_WRITE, flags,
			 c->memfd, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* 4 KiB pages for "Anonymous", as the seed measured them */
	if (c->type == T_ANON && !c->shared)
		madvise(p, c->size, MADV_NOHUGEPAGE);
	return p;
}

/* The seed's step 2: discard whatever an earlier iteration left. */
static void cell_discard(const struct cell *c, uint8_t *p)
{
	if (c->type != T_ANON &&
	    fallocate(c->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      0, (off_t)c->size))
		die_sys("fallocate(PUNCH_HOLE)");
	if (madvise(p, c->size, c->type == T_ANON && c->shared ?
		    MADV_REMOVE : MADV_DONTNEED))
		die_sys("madvise(discard)");
}

struct psample {
	bool		valid;
	double		ns;
	uint64_t	minflt, uffd_faults, rss_kib, helper_ns;
};

/* Native: map, discard, prefault (timed), unmap. */
static int measure_native(const struct cell *c, int method,
			  struct psample *o)
{
	struct rusage r0, r1;
	uint64_t t0, t1;
	uint8_t *p;
	int ret;

	p = cell_map(c);
	if (!p)
		return -errno;
	cell_discard(c, p);
	getrusage(RUSAGE_THREAD, &r0);
	t0 = now_ns();
	ret = prefault(method, p, c->size, c->ps);
	t1 = now_ns();
	getrusage(RUSAGE_THREAD, &r1);
	if (!ret) {
		o->valid = true;
		o->ns = (double)(t1 - t0);
		o->minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
		o->rss_kib = smaps_rss_kib(p, c->size, NULL);
	}
	if (munmap(p, c->size))
		die_sys("munmap");
	/* free the file's pages now: a pager's region may need them */
	if (c->type != T_ANON &&
	    fallocate(c->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      0, (off_t)c->size))
		die_sys("fallocate(PUNCH_HOLE)");
	return ret;
}

/*
 * A pager: the same mapping, discarded, then registered with the pager
 * (ADOPT), or for hugetlb a library region (ADOPT assumes base pages).
 */
static int measure_pager(struct uffd_ctx *ctx, const char *spec,
			 const struct cell *c, int method, struct psample *o)
{
	struct uffd_region_opts ro = {
		.size	= sizeof(ro),
		.len	= c->size,
		.pager	= spec,
	};
	struct uffd_region *r;
	struct uffd_stats s0, s1;
	struct rusage r0, r1;
	uint64_t t0, t1, h0, h1;
	uint8_t *p = NULL;
	int ret;

	if (c->type == T_HUGETLB) {
		ro.type = LIBUFFD_MEM_HUGETLB;
	} else {
		p = cell_map(c);
		if (!p)
			return -errno;
		cell_discard(c, p);
		ro.type = LIBUFFD_MEM_ADOPT;
		ro.addr = p;
	}
	ret = uffd_region_create(ctx, &ro, &r);
	if (ret)
		goto out;
	uffd_region_stats(r, &s0, sizeof(s0));
	h0 = uffd_ctx_handler_cpu_ns(ctx);
	getrusage(RUSAGE_THREAD, &r0);
	t0 = now_ns();
	ret = prefault(method, uffd_region_addr(r), c->size, c->ps);
	t1 = now_ns();
	getrusage(RUSAGE_THREAD, &r1);
	uffd_region_stats(r, &s1, sizeof(s1));
	h1 = uffd_ctx_handler_cpu_ns(ctx);
	if (!ret) {
		o->valid = true;
		o->ns = (double)(t1 - t0);
		o->minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
		o->uffd_faults = s1.faults_read + s1.faults_write -
				 s0.faults_read - s0.faults_write;
		o->helper_ns = h1 - h0 + s1.helper_cpu_ns - s0.helper_cpu_ns;
		o->rss_kib = smaps_rss_kib(uffd_region_addr(r), c->size,
					   NULL);
	}
	uffd_region_destroy(r);
out:
	if (p && munmap(p, c->size))
		die_sys("munmap");
	return ret;
}

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

#define MAX_PAGERS	8

/* Cells with more faults than this per iteration skip the pagers... */
#define PAGER_MAX_PAGES		65536
#define PAGER_MAX_PAGES_QUICK	512
/* ...unless --size asked for them. */

struct pstats {
	size_t		n;
	double		mean_ms, median_ms, ratio;
	uint64_t	minflt, uffd_faults, rss_kib, helper_ns;
};

static void summarise(const struct psample *v, const struct psample *nat,
		      unsigned int iters, struct pstats *st)
{
	double *a = xcalloc(iters, sizeof(*a)), *b = xcalloc(iters, sizeof(*b));
	double sum = 0;
	size_t n = 0, nr = 0;
	unsigned int i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < iters; i++) {
		if (!v[i].valid)
			continue;
		sum += v[i].ns;
		a[n++] = v[i].ns;
		if (nat[i].valid)
			b[nr++] = v[i].ns / nat[i].ns;
	}
	st->n = n;
	if (n) {
		st->mean_ms = sum / (double)n / 1e6;
		st->median_ms = median(a, n) / 1e6;
		st->ratio = median(b, nr);
#define MED(f, src)							\
		do {							\
			size_t _k = 0;					\
			for (i = 0; i < iters; i++)			\
				if (v[i].valid)				\
					a[_k++] = (double)v[i].src;	\
			st->f = (uint64_t)median(a, _k);		\
		} while (0)
		MED(minflt, minflt);
		MED(uffd_faults, uffd_faults);
		MED(rss_kib, rss_kib);
		MED(helper_ns, helper_ns);
#undef MED
	}
	free(a);
	free(b);
}

struct ptable {
	const char		*pagers[MAX_PAGERS];
	struct uffd_ctx		*ctx[MAX_PAGERS];
	size_t			np;
	unsigned int		iters;
	struct psample		*sm;	/* [strategy][iteration] */
	struct progress		pg;
	struct rows		rows;
};

/*
 * All iterations of one method on one cell, native and pagers interleaved,
 * then a row per strategy.  Returns false when Ctrl-C stopped it.
 */
static bool run_method(struct ptable *t, const struct cell *c, int me,
		       bool huge_ok, bool pager_ok)
{
	size_t nstrat = 1 + t->np, k;
	uint64_t pages = c->size / c->ps;
	unsigned int it;
	char sz[32];
	int ret;

	fmt_size(sz, sizeof(sz), c->size);
	memset(t->sm, 0, nstrat * t->iters * sizeof(*t->sm));
	for (it = 0; it < t->iters; it++)
		for (k = 0; k < nstrat; k++) {
			struct psample *o = &t->sm[k * t->iters + it];
			const char *name = k ? t->pagers[k - 1] : "native";

			if (bench_stopped())
				goto rows;
			ret = 0;
			if (!huge_ok)
				;
			else if (!k)
				ret = measure_native(c, me, o);
			else if (pager_ok &&
				 !(c->type == T_HUGETLB && !c->shared))
				ret = measure_pager(t->ctx[k - 1], name, c, me,
						    o);
			if (ret && !it)
				note("%s, %s %s %s: %s", name,
				     type_name[c->type], c->shared ? "shared"
				     : "private", method_name[me],
				     strerror(-ret));
			progress_step(&t->pg, "%s %s %s %s %s", sz,
				      c->shared ? "shared" : "private",
				      type_name[c->type], method_name[me],
				      name);
		}
rows:
	for (k = 0; k < nstrat; k++) {
		struct pstats st;
		struct row *r;

		summarise(&t->sm[k * t->iters], t->sm, t->iters, &st);
		if (!st.n)
			continue;
		r = rows_add(&t->rows);
		row_init(r, method_key[me], k ? t->pagers[k - 1] : "native",
			 c->size, pages, st.n);
		r->ns_per_page = st.median_ms * 1e6 / (double)pages;
		r->ratio_vs_native = st.ratio;
		r->uffd_faults = st.uffd_faults;
		r->minflt = st.minflt;
		r->rss_kib = st.rss_kib;
		r->helper_cpu_ns = st.helper_ns;
		row_str(r, "memory", type_key[c->type]);
		row_str(r, "sharing", c->shared ? "shared" : "private");
		row_u64(r, "page_size", c->ps);
		row_dbl(r, "ms_mean", st.mean_ms);
		row_dbl(r, "ms_median", st.median_ms);
		row_dbl(r, "seed_ms", seed_figure(c->size, c->shared,
						  c->type, me));
		row_str(r, "method", method_name[me]);
		row_str(r, "type", type_name[c->type]);
	}
	return !bench_stopped();
}

/* One memory type at one size and sharing. */
static bool run_cell(struct ptable *t, uint64_t size, int sh, int ty)
{
	struct cell c = {
		.size = size, .shared = sh, .type = ty, .memfd = -1,
		.ps = ty == T_HUGETLB ? HUGE_2M : page_size,
	};
	bool huge_ok = true, pager_ok, more = true;
	uint64_t pages = size / c.ps;
	char why[256] = "";
	int me;

	if (ty == T_HUGETLB && hugetlb_reserve(pages + 1, why, sizeof(why))) {
		huge_ok = false;
		progress_end(&t->pg);
		note("%s MAP_%s: %s: skipped", type_name[ty],
		     sh ? "SHARED" : "PRIVATE", why);
	}
	if (huge_ok && ty != T_ANON) {
		c.memfd = memfd_create("uffd-bench", MFD_CLOEXEC |
				       (ty == T_HUGETLB ? MFD_HUGETLB : 0));
		if (c.memfd < 0 || ftruncate(c.memfd, (off_t)size))
			die_sys("memfd");
	}
	pager_ok = cfg.have_size || pages <= (cfg.quick ?
					      PAGER_MAX_PAGES_QUICK :
					      PAGER_MAX_PAGES);
	for (me = 0; me < NMETHODS && more; me++)
		more = run_method(t, &c, me, huge_ok, pager_ok);
	if (c.memfd >= 0)
		close(c.memfd);
	if (ty == T_HUGETLB)
		hugetlb_release();
	return more;
}

/* The seed's layout: a block per size and sharing. */
static void print_block(struct ptable *t, size_t first, uint64_t size,
			int sh)
{
	struct rows piv = { 0 };
	struct col *cols;
	char sz[32];
	size_t k, i;
	int ty, me;

	cols = xcalloc(5 + t->np, sizeof(*cols));
	cols[0] = (struct col){ "memory", "type", 0, 0, COL_LEFT };
	cols[1] = (struct col){ "method", "method", 0, 0, COL_LEFT };
	cols[2] = (struct col){ "seed ms", "seed_ms", 3, 0, 0 };
	cols[3] = (struct col){ "ours ms", "ours", 3, 0, 0 };
	cols[4] = (struct col){ "x seed", "xseed", 2, 0, 0 };
	for (k = 0; k < t->np; k++)
		cols[5 + k] = (struct col){ bench_fmt("%s ms", t->pagers[k]),
					    t->pagers[k], 3, 0, 0 };
	for (ty = 0; ty < NTYPES; ty++)
		for (me = 0; me < NMETHODS; me++) {
			struct row *p = rows_add(&piv);
			bool found = false;

			row_init(p, "", "", size, 0, t->iters);
			row_str(p, "type", type_name[ty]);
			row_str(p, "method", method_name[me]);
			row_dbl(p, "seed_ms", seed_figure(size, sh, ty, me));
			row_str(p, "ours", "n/a");
			row_str(p, "xseed", NULL);
			for (k = 0; k < t->np; k++)
				row_str(p, t->pagers[k],
					ty == T_HUGETLB && !sh ? "n/a" :
					"skip");
			for (i = first; i < t->rows.n; i++) {
				const struct row *r = &t->rows.v[i];
				double ms = row_get(r, "ms_mean").d;

				if (strcmp(row_get(r, "type").s,
					   type_name[ty]) ||
				    strcmp(row_get(r, "method").s,
					   method_name[me]))
					continue;
				found = true;
				if (strcmp(r->strategy, "native")) {
					row_dbl(p, r->strategy, ms);
					continue;
				}
				row_dbl(p, "ours", ms);
				row_dbl(p, "xseed",
					ms / row_get(p, "seed_ms").d);
			}
			/* Ctrl-C: no line for what was never reached */
			if (!found && bench_stopped())
				piv.n--;
		}
	fmt_size(sz, sizeof(sz), size);
	bench_table(&piv, 0, bench_fmt("%s MAP_%s: mean ms of %u iteration%s "
				       "(the prefault only), %s", sz,
				       sh ? "SHARED" : "PRIVATE", t->iters,
				       t->iters == 1 ? "" : "s",
				       bench_pin_desc()),
		    cols, 5 + t->np);
	free(cols);
	rows_free(&piv);
}

void experiment_populate_table(void)
{
	static const uint64_t def_sizes[] = { 2 * MIB, 128 * MIB, 4 * GIB };
	struct ptable t = { .iters = cfg.reps };
	uint64_t sizes[3], max_size = 0;
	size_t nsizes = 0, z, k, first;
	unsigned int total;
	bool more = true;
	int sh, ty;

	if (cfg.have_size) {
		sizes[nsizes++] = cfg.size;
	} else {
		for (z = 0; z < ARRAY_SIZE(def_sizes); z++)
			if (!cfg.quick || def_sizes[z] <= 128 * MIB)
				sizes[nsizes++] = def_sizes[z];
	}
	for (z = 0; z < nsizes; z++) {
		/* hugetlb wants whole huge pages */
		sizes[z] = (sizes[z] + HUGE_2M - 1) / HUGE_2M * HUGE_2M;
		if (sizes[z] > max_size)
			max_size = sizes[z];
	}
	if (cfg.npagers) {
		for (k = 0; k < cfg.npagers && t.np < MAX_PAGERS; k++)
			t.pagers[t.np++] = cfg.pagers[k];
	} else {
		if (have_pager("zero"))
			t.pagers[t.np++] = "zero";
		if (have_pager("prealloc"))
			t.pagers[t.np++] = "prealloc";
	}
	for (k = 0; k < t.np; k++)
		t.ctx[k] = bench_ctx();
	t.sm = xcalloc((1 + t.np) * t.iters, sizeof(*t.sm));
	total = (unsigned int)nsizes * 2 * NTYPES * NMETHODS * t.iters *
		(unsigned int)(1 + t.np);

	warm_up(max_size);
	progress_start(&t.pg, total);
	for (z = 0; z < nsizes && more; z++)
		for (sh = 0; sh < 2 && more; sh++) {
			first = t.rows.n;
			for (ty = 0; ty < NTYPES && more; ty++)
				more = run_cell(&t, sizes[z], sh, ty);
			bench_emit(&t.rows, first, NULL, NULL, 0);
			if (cfg.json || t.rows.n == first)
				continue;
			progress_end(&t.pg);
			print_block(&t, first, sizes[z], sh);
		}
	progress_end(&t.pg);
	if (!cfg.json && t.rows.n) {
		note("seed 001: David Hildenbrand, [PATCH RFC] MADV_POPULATE, "
		     "Feb 2021, mean of 10 iterations; x seed = ours / seed");
		note("pager columns: the same mapping registered with the "
		     "pager (hugetlb: a library region; n/a: private "
		     "hugetlb)");
		if (!cfg.have_size)
			note("skip: more than %d faults per iteration through "
			     "a pager; give --size to run them",
			     cfg.quick ? PAGER_MAX_PAGES_QUICK :
			     PAGER_MAX_PAGES);
	}
	for (k = 0; k < t.np; k++)
		uffd_ctx_destroy(t.ctx[k]);
	rows_free(&t.rows);
	free(t.sm);
}
