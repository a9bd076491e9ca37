/* SPDX-License-Identifier: MIT */
/*
 * prezero (seed 002): Christoph Lameter's prezeroing, 2004-05.  The most
 * expensive part of an anonymous fault is clearing the new page; kscrubd
 * cleared pages ahead of time so that a fault only had to map one, and a
 * workload that allocates whole pages but touches a small part of each
 * saved most (up to ~4x the fault rate, and no cache full of zeros).
 *
 * Here: prezero (a scrubber thread keeps a pool of zeroed pages; a write
 * fault MOVEs them in) against zero (zeroes at fault time, like the kernel)
 * and native, on partial-write (64 bytes per page) and full-write (every
 * byte).  Application time; fault service time from the stats histogram
 * (p50, p99); CPU of the application, the handler and the scrubber.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Median over the valid reps of (w, s) of @f(sample). */
static double med(const struct matrix *m, size_t w, size_t s,
		  double (*f)(const struct sample *))
{
	double *v = xcalloc(m->reps, sizeof(*v)), r;
	unsigned int rep;
	size_t n = 0;

	for (rep = 0; rep < m->reps; rep++) {
		const struct sample *sm = matrix_at(m, rep, w, s);

		if (sm->valid)
			v[n++] = f(sm);
	}
	r = median(v, n);
	free(v);
	return r;
}

/* Everything the run cost, the pool's first fill included. */
static double f_total(const struct sample *s)
{
	return (double)(s->app_cpu_ns + s->handler_cpu_ns + s->scrub_cpu_ns +
			s->scrub_setup_ns);
}

static double f_app(const struct sample *s)
{
	return (double)s->app_cpu_ns;
}

static double f_handler(const struct sample *s)
{
	return (double)s->handler_cpu_ns;
}

static double f_scrub(const struct sample *s)
{
	return (double)s->scrub_cpu_ns;
}

static double f_setup(const struct sample *s)
{
	return (double)s->scrub_setup_ns;
}

static double f_p50(const struct sample *s)
{
	return (double)s->p50_us;
}

static double f_p99(const struct sample *s)
{
	return (double)s->p99_us;
}

static double f_move(const struct sample *s)
{
	return (double)s->pages_move;
}

static double f_copy(const struct sample *s)
{
	return (double)s->pages_copy;
}

static double f_miss(const struct sample *s)
{
	return (double)s->misses;
}

static const char *const prezero_default[] = {
	"partial-write", "full-write",
};

void experiment_prezero(void)
{
	static const struct col cols[] = {
		{ "workload", "workload", 0, 0, COL_LEFT },
		{ "strategy", "strategy", 0, 0, COL_LEFT },
		{ "ns/page", "ns_per_page", 1, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "x zero", "ratio_vs_zero", 2, 0, 0 },
		{ "p50 us", "service_p50_us", 0, 0, 0 },
		{ "p99 us", "service_p99_us", 0, 0, 0 },
		{ "app ms", "app_cpu_ns", 1, 1e-6, 0 },
		{ "handler ms", "handler_cpu_ns", 1, 1e-6, 0 },
		{ "scrub ms", "scrubber_cpu_ns", 1, 1e-6, 0 },
		{ "prefill ms", "scrubber_setup_cpu_ns", 1, 1e-6, 0 },
		{ "total ms", "total_cpu_ns", 1, 1e-6, 0 },
		{ "moved/page", "pages_moved", 2, 0, COL_PER_PAGE },
		{ "misses", "pool_misses", 0, 0, 0 },
	};
	const struct workload *w[16];
	struct strategy s[16];
	struct matrix m = { 0 };
	struct rows rows = { 0 };
	size_t i, zero = SIZE_MAX, n;

	m.ns = native_strategies(s, false, false);
	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers && m.ns < ARRAY_SIZE(s); i++)
			s[m.ns++] = (struct strategy){ .name = cfg.pagers[i],
						       .kind = S_PAGER,
						       .spec = cfg.pagers[i] };
	} else {
		/* prealloc:batch=16 tells batching from prezeroing */
		static const char *const def[] = {
			"zero", "prezero", "prealloc:batch=16",
			"prezero:batch=16", "prezero:batch=16,pool=16384",
		};

		for (i = 0; i < ARRAY_SIZE(def); i++) {
			char name[16];

			snprintf(name, sizeof(name), "%.*s",
				 (int)strcspn(def[i], ":"), def[i]);
			if (have_pager(name))
				s[m.ns++] = (struct strategy){
					.name = def[i], .kind = S_PAGER,
					.spec = def[i] };
		}
		if (!have_pager("prezero"))
			note("the prezero pager is not built in: native and "
			     "zero only");
	}
	for (i = 0; i < m.ns; i++)
		if (!strcmp(s[i].name, "zero"))
			zero = i;
	if (cfg.nworkloads) {
		for (i = 0; i < cfg.nworkloads; i++)
			w[i] = cfg.workloads[i];
		m.nw = cfg.nworkloads;
	} else {
		for (i = 0; i < ARRAY_SIZE(prezero_default); i++)
			w[i] = workload_find(prezero_default[i]);
		m.nw = ARRAY_SIZE(prezero_default);
	}
	m.s = s;
	m.w = w;
	m.reps = cfg.reps;
	m.size = cfg.size;
	matrix_run(&m, "prezero");
	matrix_rows(&m, &rows);

	for (i = 0; i < rows.n; i++) {
		struct row *r = &rows.v[i];
		size_t wi, si;
		double ns, ratio = NAN;

		for (wi = 0; strcmp(m.w[wi]->name, r->workload); wi++)
			;
		for (si = 0; strcmp(m.s[si].name, r->strategy); si++)
			;
		if (zero != SIZE_MAX)
			matrix_median_ns(&m, wi, si, zero, &ns, &ratio);
		row_dbl(r, "ratio_vs_zero", ratio);
		n = m.s[si].kind == S_PAGER;
		row_dbl(r, "service_p50_us", n ? med(&m, wi, si, f_p50) : NAN);
		row_dbl(r, "service_p99_us", n ? med(&m, wi, si, f_p99) : NAN);
		row_dbl(r, "app_cpu_ns", med(&m, wi, si, f_app));
		row_dbl(r, "handler_cpu_ns", med(&m, wi, si, f_handler));
		row_dbl(r, "scrubber_cpu_ns", med(&m, wi, si, f_scrub));
		row_dbl(r, "scrubber_setup_cpu_ns", med(&m, wi, si, f_setup));
		row_dbl(r, "total_cpu_ns", med(&m, wi, si, f_total));
		row_dbl(r, "pages_moved", med(&m, wi, si, f_move));
		row_dbl(r, "pages_copied", med(&m, wi, si, f_copy));
		row_dbl(r, "pool_misses", med(&m, wi, si, f_miss));
	}
	bench_emit(&rows, 0, bench_fmt("prezero: %s, %s",
				       bench_what(cfg.size, cfg.reps),
				       bench_pin_desc()),
		   cols, ARRAY_SIZE(cols));
	if (!cfg.json && rows.n) {
		note("p50/p99: fault service time (read of the message to the "
		     "resolving ioctl), log2 buckets, upper bound");
		note("scrub: the scrubber's CPU during the walk and its refill "
		     "after; prefill: its first fill of the pool, before the "
		     "walk");
		note("total = app + handler + scrub + prefill: all the CPU the "
		     "run cost");
		note("x zero: against the zero pager, which zeroes at fault "
		     "time; seed 002: up to ~4x the fault rate with "
		     "prezeroing (Lameter, 2004)");
	}
	if (cfg.plot_path && rows.n)
		plot_clusters(&rows, "ns per page (median)", "ns_per_page");
	rows_free(&rows);
	matrix_free(&m);
}
