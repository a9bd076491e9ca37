/* SPDX-License-Identifier: MIT */
/*
 * uffd-bench runs: the workloads (what the application thread does, and
 * all that is timed), the strategies (who provides the memory and serves
 * its faults), one measured run, and the interleaved matrix of runs that
 * most experiments are made of.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "bench.h"


/* ------------------------------------------------------------------ */
/* Workloads                                                          */
/* ------------------------------------------------------------------ */

static BENCH_NOSAN void walk_seq_read(uint8_t *p, size_t len,
				      const uint32_t *o)
{
	size_t off;

	(void)o;
	for (off = 0; off < len; off += page_size)
		(void)*(volatile uint8_t *)(p + off);
}

BENCH_NOSAN void walk_seq_write(uint8_t *p, size_t len, const uint32_t *o)
{
	size_t off;

	(void)o;
	for (off = 0; off < len; off += page_size)
		*(volatile uint8_t *)(p + off) = 1;
}

/*
 * A load, then a separate store, as compiled `a[i] *= 3` does.  One x86
 * read-modify-write instruction would fault once, as a write, and hide the
 * zero-page double fault; the empty asm keeps the compiler from fusing them.
 */
static BENCH_NOSAN void walk_seq_rw(uint8_t *p, size_t len,
				    const uint32_t *o)
{
	size_t off;
	uint8_t v;

	(void)o;
	for (off = 0; off < len; off += page_size) {
		v = *(volatile uint8_t *)(p + off);
		__asm__ __volatile__("" : "+r" (v) : : "memory");
		*(volatile uint8_t *)(p + off) = (uint8_t)(v + 1);
	}
}

/* First touch in an order drawn before the timed part (seed 004). */
static BENCH_NOSAN void walk_rand_write(uint8_t *p, size_t len,
					const uint32_t *o)
{
	size_t i, n = len / page_size;

	for (i = 0; i < n; i++)
		*(volatile uint8_t *)(p + (size_t)o[i] * page_size) = 1;
}

/* One cache line per page: the workload prezeroing is for (seed 002). */
static BENCH_NOSAN void walk_partial_write(uint8_t *p, size_t len,
					   const uint32_t *o)
{
	size_t off, i;

	(void)o;
	for (off = 0; off < len; off += page_size)
		for (i = 0; i < 64; i += 8)
			*(volatile uint64_t *)(p + off + i) = off + i;
}

/* Every byte of every page (volatile: no call to an instrumented memset). */
static BENCH_NOSAN void walk_full_write(uint8_t *p, size_t len,
					const uint32_t *o)
{
	size_t off, i;

	(void)o;
	for (off = 0; off < len; off += page_size)
		for (i = 0; i < page_size; i += 8)
			*(volatile uint64_t *)(p + off + i) = i;
}

const struct workload workloads[] = {
	{ "seq-write", walk_seq_write, "a store per page, in order", false },
	{ "seq-read", walk_seq_read, "a load per page", false },
	{ "seq-rw", walk_seq_rw, "a load, then a store, per page", false },
	{ "rand-write", walk_rand_write, "a store per page, random order",
	  true },
	{ "partial-write", walk_partial_write, "64 bytes stored per page",
	  false },
	{ "full-write", walk_full_write, "4 KiB stored per page", false },
};

const size_t nworkloads = ARRAY_SIZE(workloads);

const struct workload *workload_find(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(workloads); i++)
		if (!strcmp(name, workloads[i].name))
			return &workloads[i];
	return NULL;
}

uint32_t *page_order(size_t pages, uint64_t seed)
{
	uint32_t *o = xcalloc(pages, sizeof(*o));
	uint64_t x = seed | 1;
	size_t i, j;
	uint32_t t;

	for (i = 0; i < pages; i++)
		o[i] = (uint32_t)i;
	for (i = pages; i > 1; i--) {
		x ^= x << 13;	/* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		j = (size_t)(x % i);
		t = o[i - 1];
		o[i - 1] = o[j];
		o[j] = t;
	}
	return o;
}

/* ------------------------------------------------------------------ */
/* Strategies                                                         */
/* ------------------------------------------------------------------ */

struct uffd_ctx *bench_ctx(void)
{
	struct uffd_ctx_opts copts = {
		.size		= sizeof(copts),
		.flags		= cfg.pin->handler_cpu >= 0 ?
				  LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu	= cfg.pin->handler_cpu,
	};
	struct uffd_ctx *ctx;
	int ret;

	ret = uffd_ctx_create(&ctx, &copts);
	if (ret)
		die_uffd("uffd_ctx_create", ret);
	ret = uffd_ctx_start(ctx);
	if (ret)
		die_uffd("uffd_ctx_start", ret);
	return ctx;
}

/*
 * A fresh private anonymous mapping between PROT_NONE guard pages, so that
 * it never merges with a neighbour and its smaps entry is exactly the run's
 * memory.  @align: where the usable part starts (THP wants 2 MiB).
 */
static void map_guarded(struct mapping *m, size_t size, size_t align)
{
	uintptr_t a;

	m->len = size;
	m->resv_len = size + align + 2 * page_size;
	m->resv = mmap(NULL, m->resv_len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->resv == MAP_FAILED)
		die_sys("mmap");
	a = (uintptr_t)m->resv + page_size;
	a = (a + align - 1) / align * align;
	m->addr = (uint8_t *)a;
	if (mprotect(m->addr, m->len, PROT_READ | PROT_WRITE))
		die_sys("mprotect");
}

/*
 * Wait until the pager's helpers are idle: prezero's scrubber fills its
 * pool when the region starts, and that must not overlap the timed part.
 * The only sign the API gives is the helper CPU counter, which the
 * scrubber adds to after each whole refill: "idle" is that counter non-zero
 * and unchanged for 20 ms (a refill of a large pool takes a few ms).
 * Pagers without helpers leave it at 0 and wait 2 ms.
 */
void region_settle(struct uffd_region *r, const char *spec)
{
	bool helper = !strncmp(spec, "prezero", 7);
	struct timespec ms = { 0, 1000000 };
	uint64_t prev = UINT64_MAX, cur;
	struct uffd_stats st;
	int i, same = 0;

	for (i = 0; i < 1000; i++) {
		nanosleep(&ms, NULL);
		if (uffd_region_stats(r, &st, sizeof(st)))
			return;
		cur = st.helper_cpu_ns;
		same = cur == prev ? same + 1 : 0;
		prev = cur;
		if (!helper && same >= 1)
			return;
		if (helper && cur && same >= 20)
			return;
	}
}

void strategy_setup(const struct strategy *s, size_t size, struct mapping *m)
{
	struct uffd_region_opts ropts = {
		.size	= sizeof(ropts),
		.type	= LIBUFFD_MEM_ANON,
		.len	= size,
		.pager	= s->spec,
	};
	char why[256];
	int ret;

	memset(m, 0, sizeof(*m));
	switch (s->kind) {
	case S_NATIVE:
	case S_POPULATE_READ:
	case S_POPULATE_WRITE:
		/* 4 KiB pages like the pager regions, whatever THP says */
		map_guarded(m, size, page_size);
		if (madvise(m->addr, m->len, MADV_NOHUGEPAGE))
			die_sys("madvise(MADV_NOHUGEPAGE)");
		break;
	case S_THP:
		if (s->thp_zero_page >= 0 &&
		    thp_zero_page_set(s->thp_zero_page, why, sizeof(why))) {
			fprintf(stderr, "%s: %s\n", prog, why);
			exit(1);
		}
		map_guarded(m, size, HUGE_2M);
		if (madvise(m->addr, m->len, MADV_HUGEPAGE))
			die_sys("madvise(MADV_HUGEPAGE)");
		break;
	case S_PAGER:
		m->ctx = bench_ctx();
		ret = uffd_region_create(m->ctx, &ropts, &m->region);
		if (ret)
			die_uffd("uffd_region_create", ret);
		m->addr = uffd_region_addr(m->region);
		m->len = uffd_region_len(m->region);
		region_settle(m->region, s->spec);
		break;
	}
}

void strategy_teardown(const struct strategy *s, struct mapping *m)
{
	if (s->kind == S_PAGER) {
		/* stops the handler (no fault left waiting), then unmaps */
		uffd_ctx_destroy(m->ctx);
		return;
	}
	if (munmap(m->resv, m->resv_len))
		die_sys("munmap");
	if (s->kind == S_THP && s->thp_zero_page >= 0)
		thp_zero_page_restore();
}

size_t native_strategies(struct strategy *s, bool populate, bool thp)
{
	size_t n = 0;

	s[n++] = (struct strategy){ .name = "native", .kind = S_NATIVE,
				    .thp_zero_page = -1 };
	if (populate) {
		s[n++] = (struct strategy){ .name = "populate-read",
					    .kind = S_POPULATE_READ,
					    .thp_zero_page = -1 };
		s[n++] = (struct strategy){ .name = "populate-write",
					    .kind = S_POPULATE_WRITE,
					    .thp_zero_page = -1 };
	}
	if (thp)
		s[n++] = (struct strategy){ .name = "thp", .kind = S_THP,
					    .thp_zero_page = -1 };
	return n;
}

/* ------------------------------------------------------------------ */
/* Measuring one run                                                  */
/* ------------------------------------------------------------------ */

uint64_t smaps_rss_kib(const void *addr, size_t len, uint64_t *anon_huge)
{
	static bool warned;
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	unsigned long start, end, kib;
	uint64_t total = 0, huge = 0;
	bool in = false;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		die_sys("/proc/self/smaps");
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start < hi && end > lo;
			if (in && (start < lo || end > hi) && !warned) {
				fprintf(stderr, "%s: warning: the mapping at "
					"%#lx is merged with a neighbour; its "
					"Rss counts both\n", prog, start);
				warned = true;
			}
		} else if (in && sscanf(line, "Rss: %lu kB", &kib) == 1) {
			total += kib;
		} else if (in &&
			   sscanf(line, "AnonHugePages: %lu kB", &kib) == 1) {
			huge += kib;
		}
	}
	free(line);
	fclose(f);
	if (anon_huge)
		*anon_huge = huge;
	return total;
}

struct counters {
	struct uffd_stats	st;
	uint64_t		handler_ns;
};

static void counters(const struct mapping *m, struct counters *c)
{
	int ret;

	memset(c, 0, sizeof(*c));
	if (!m->region)
		return;
	ret = uffd_region_stats(m->region, &c->st, sizeof(c->st));
	if (ret)
		die_uffd("uffd_region_stats", ret);
	c->handler_ns = uffd_ctx_handler_cpu_ns(m->ctx);
}

static uint64_t ru_cpu_ns(const struct rusage *r)
{
	return (uint64_t)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) *
		1000000000ULL + (uint64_t)(r->ru_utime.tv_usec +
					   r->ru_stime.tv_usec) * 1000ULL;
}

void run_one(const struct workload *w, const struct strategy *s,
	     size_t size, const uint32_t *order, struct sample *out)
{
	struct mapping m;
	struct counters c0, c1;
	struct uffd_stats d;
	struct rusage r0, r1;
	uint64_t t0, t1;
	size_t i;

	strategy_setup(s, size, &m);
	counters(&m, &c0);
	if (getrusage(RUSAGE_THREAD, &r0))
		die_sys("getrusage");
	t0 = now_ns();
	if (s->kind == S_POPULATE_READ &&
	    madvise(m.addr, m.len, MADV_POPULATE_READ))
		die_sys("madvise(MADV_POPULATE_READ)");
	if (s->kind == S_POPULATE_WRITE &&
	    madvise(m.addr, m.len, MADV_POPULATE_WRITE))
		die_sys("madvise(MADV_POPULATE_WRITE)");
	w->walk(m.addr, m.len, order);
	t1 = now_ns();
	if (getrusage(RUSAGE_THREAD, &r1))
		die_sys("getrusage");
	/*
	 * Helpers report CPU when a refill is done: let the refill the walk
	 * caused finish, then stop the context (helpers join and report the
	 * rest) before reading the counters.
	 */
	if (m.region) {
		region_settle(m.region, s->spec);
		uffd_ctx_stop(m.ctx);
	}
	counters(&m, &c1);

	memset(out, 0, sizeof(*out));
	out->valid = true;
	out->ns_per_page = (double)(t1 - t0) / (double)(m.len / page_size);
	out->minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
	out->majflt = (uint64_t)(r1.ru_majflt - r0.ru_majflt);
	out->app_cpu_ns = ru_cpu_ns(&r1) - ru_cpu_ns(&r0);
	out->rss_kib = smaps_rss_kib(m.addr, m.len, &out->anon_huge_kib);
	if (m.region) {
		d = c1.st;
		for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
			d.hist_us[i] -= c0.st.hist_us[i];
		out->uffd_faults = c1.st.faults_read + c1.st.faults_write -
				   c0.st.faults_read - c0.st.faults_write;
		out->handler_cpu_ns = c1.handler_ns - c0.handler_ns;
		out->scrub_cpu_ns = c1.st.helper_cpu_ns - c0.st.helper_cpu_ns;
		out->scrub_setup_ns = c0.st.helper_cpu_ns;
		out->helper_cpu_ns = out->handler_cpu_ns + out->scrub_cpu_ns;
		out->p50_us = uffd_stats_quantile_us(&d, 0.5);
		out->p99_us = uffd_stats_quantile_us(&d, 0.99);
		out->pages_zero = c1.st.pages_zero - c0.st.pages_zero;
		out->pages_copy = c1.st.pages_copy - c0.st.pages_copy;
		out->pages_move = c1.st.pages_move - c0.st.pages_move;
		out->misses = c1.st.pager_misses - c0.st.pager_misses;
	}
	strategy_teardown(s, &m);
}

void warm_up(size_t len)
{
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die_sys("mmap");
	walk_seq_write(p, len, NULL);
	if (munmap(p, len))
		die_sys("munmap");
}

/* ------------------------------------------------------------------ */
/* The interleaved matrix                                             */
/* ------------------------------------------------------------------ */

struct sample *matrix_at(const struct matrix *m, unsigned int rep, size_t w,
			 size_t s)
{
	return &m->samples[((size_t)rep * m->nw + w) * m->ns + s];
}

void matrix_run(struct matrix *m, const char *what)
{
	struct progress pg;
	unsigned int rep, total = 0;
	bool random = false;
	size_t w, s;

	m->samples = xcalloc((size_t)m->reps * m->nw * m->ns,
			     sizeof(*m->samples));
	for (w = 0; w < m->nw; w++)
		random |= m->w[w]->random;
	if (random && !m->order)
		m->order = page_order(m->size / page_size, 0x5eed0004);
	for (s = 0; s < m->ns; s++)
		total += !m->s[s].skip;
	total *= m->reps * (unsigned int)m->nw;

	warm_up(m->size);
	progress_start(&pg, total);
	for (rep = 0; rep < m->reps; rep++)
		for (w = 0; w < m->nw; w++)
			for (s = 0; s < m->ns; s++) {
				struct sample *sm = matrix_at(m, rep, w, s);

				if (m->s[s].skip)
					continue;
				if (bench_stopped())
					goto out;
				run_one(m->w[w], &m->s[s], m->size, m->order,
					sm);
				progress_step(&pg, "%s rep %u/%u %s %s: "
					      "%.0f ns/page", what, rep + 1,
					      m->reps, m->w[w]->name,
					      m->s[s].name, sm->ns_per_page);
			}
out:
	progress_end(&pg);
}

size_t matrix_median_u64(const struct matrix *m, size_t w, size_t s,
			 size_t off, uint64_t *out)
{
	double *tmp = xcalloc(m->reps, sizeof(*tmp));
	unsigned int rep;
	size_t n = 0;

	for (rep = 0; rep < m->reps; rep++) {
		const struct sample *sm = matrix_at(m, rep, w, s);

		if (sm->valid)
			tmp[n++] = (double)*(const uint64_t *)
				   ((const char *)sm + off);
	}
	*out = n ? (uint64_t)(median(tmp, n) + 0.5) : 0;
	free(tmp);
	return n;
}

size_t matrix_median_ns(const struct matrix *m, size_t w, size_t s,
			size_t base, double *ns, double *ratio)
{
	double *a = xcalloc(m->reps, sizeof(*a));
	double *b = xcalloc(m->reps, sizeof(*b));
	unsigned int rep;
	size_t n = 0, nr = 0;

	for (rep = 0; rep < m->reps; rep++) {
		const struct sample *sm = matrix_at(m, rep, w, s);
		const struct sample *bs = matrix_at(m, rep, w, base);

		if (!sm->valid)
			continue;
		a[n++] = sm->ns_per_page;
		if (bs->valid)
			b[nr++] = sm->ns_per_page / bs->ns_per_page;
	}
	*ns = median(a, n);
	*ratio = median(b, nr);
	free(a);
	free(b);
	return n;
}

void matrix_rows(const struct matrix *m, struct rows *rows)
{
	size_t w, s, n;
	struct row *r;

	for (w = 0; w < m->nw; w++)
		for (s = 0; s < m->ns; s++) {
			double ns, ratio;

			if (m->s[s].skip)
				continue;
			n = matrix_median_ns(m, w, s, m->baseline, &ns,
					     &ratio);
			if (!n)
				continue;
			r = rows_add(rows);
			row_init(r, m->w[w]->name, m->s[s].name, m->size,
				 m->size / page_size, n);
			r->ns_per_page = ns;
			r->ratio_vs_native = ratio;
#define MEDIAN(f)	matrix_median_u64(m, w, s, \
					  offsetof(struct sample, f), &r->f)
			MEDIAN(uffd_faults);
			MEDIAN(minflt);
			MEDIAN(majflt);
			MEDIAN(rss_kib);
			MEDIAN(helper_cpu_ns);
#undef MEDIAN
		}
}

void matrix_free(struct matrix *m)
{
	free(m->samples);
	free(m->order);
	m->samples = NULL;
	m->order = NULL;
}
