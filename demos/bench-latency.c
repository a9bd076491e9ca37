/* SPDX-License-Identifier: MIT */
/*
 * latency: what one user-space fault costs, by delivery mode and handler
 * placement, against the kernel's own read and write faults measured in
 * the same run.  A fault served by a handler thread is a round trip: the
 * faulting thread sleeps, the handler wakes, fills, and wakes it again.
 * On a virtual machine a wake-up across CPUs costs tens of microseconds;
 * on one CPU a few; in SIGBUS mode there is no wake-up at all.
 *
 * Table 1: the zero pager, one page per fault (batch 1), for each mode.
 * Table 2: prealloc and prezero at several batch sizes in the main modes,
 * to see whether SIGBUS delivery moves the best batch size.
 * Table 3 (bench-floor.c): the same faults served by raw userfaultfd code,
 * the floor the library's rows are to be read against.
 *
 * This experiment places threads itself (the application thread on CPU 0)
 * and ignores --pin; every row says where its handler ran.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

struct mode {
	const char	*name;
	int		delivery;
	int		handler_cpu;	/* -1: not pinned */
	unsigned int	spin_us;
	unsigned int	flags;		/* LIBUFFD_CTX_* beyond pinning */
	const char	*desc;
};

static const struct mode modes[] = {
	{ "thread-same", LIBUFFD_DELIVER_THREAD, 0, 0, 0,
	  "handler thread on the app's CPU" },
	{ "thread-other", LIBUFFD_DELIVER_THREAD, 1, 0, 0,
	  "handler thread on the other CPU" },
	{ "thread-other-spin", LIBUFFD_DELIVER_THREAD, 1, 100, 0,
	  "other CPU, spins 100 us before sleeping" },
	{ "thread-any", LIBUFFD_DELIVER_THREAD, -1, 0, 0,
	  "handler not pinned" },
	{ "sigbus", LIBUFFD_DELIVER_SIGBUS, -1, 0, 0,
	  "faulting thread serves itself (SIGBUS), resumes directly" },
	{ "sigbus-sigreturn", LIBUFFD_DELIVER_SIGBUS, -1, 0,
	  LIBUFFD_CTX_SIGRETURN,
	  "SIGBUS, returning through rt_sigreturn" },
};

struct lat {
	bool		valid;
	double		ns;		/* per fault, app-visible */
	uint64_t	faults, minflt, p50_us, p99_us, helper_ns;
	uint64_t	direct;		/* SIGBUS faults resumed directly */
};

static void pin_app(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die_sys("sched_setaffinity");
}

static long thread_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		die_sys("getrusage");
	return ru.ru_minflt;
}

/* The kernel's own fault: a fresh mapping, one touch per page. */
static void run_native(const struct workload *w, size_t size, struct lat *o)
{
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	long f0;
	uint64_t t0;

	if (p == MAP_FAILED)
		die_sys("mmap");
	madvise(p, size, MADV_NOHUGEPAGE);	/* one fault per 4 KiB */
	f0 = thread_minflt();
	t0 = now_ns();
	w->walk(p, size, NULL);
	o->ns = (double)(now_ns() - t0) / (double)(size / page_size);
	o->minflt = (uint64_t)(thread_minflt() - f0);
	o->valid = true;
	munmap(p, size);
}

static uint64_t hist_sum(const struct uffd_stats *st)
{
	uint64_t t = 0;
	int i;

	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		t += st->hist_us[i];
	return t;
}

static void run_pager(const struct workload *w, const struct mode *md,
		      const char *spec, size_t size, struct lat *o)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.flags = (md->handler_cpu >= 0 ? LIBUFFD_CTX_PIN_HANDLER : 0) |
			 md->flags,
		.handler_cpu = md->handler_cpu,
		.delivery = md->delivery,
		.spin_us = md->spin_us,
	};
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON, .len = size,
		.pager = spec,
	};
	struct uffd_stats s0, s1;
	struct uffd_region *r;
	struct uffd_ctx *ctx;
	uint64_t h0, h1, t0;
	long f0;
	int ret;

	ret = uffd_ctx_create(&ctx, &co);
	if (ret)
		die_uffd("uffd_ctx_create", ret);
	ret = uffd_region_create(ctx, &ro, &r);
	if (ret)
		die_uffd("uffd_region_create", ret);
	ret = uffd_ctx_start(ctx);
	if (ret)
		die_uffd("uffd_ctx_start", ret);
	region_settle(r, spec);
	uffd_region_stats(r, &s0, sizeof(s0));
	h0 = uffd_ctx_handler_cpu_ns(ctx);
	f0 = thread_minflt();
	t0 = now_ns();
	w->walk(uffd_region_addr(r), size, NULL);
	o->ns = (double)(now_ns() - t0) / (double)(size / page_size);
	o->minflt = (uint64_t)(thread_minflt() - f0);
	h1 = uffd_ctx_handler_cpu_ns(ctx);
	/* the last fault's counters land just after its wake-up */
	do
		uffd_region_stats(r, &s1, sizeof(s1));
	while (hist_sum(&s1) < s1.faults_read + s1.faults_write);
	o->faults = s1.faults_read + s1.faults_write -
		    s0.faults_read - s0.faults_write;
	o->direct = s1.sigbus_direct - s0.sigbus_direct;
	o->p50_us = uffd_stats_quantile_us(&s1, 0.5);
	o->p99_us = uffd_stats_quantile_us(&s1, 0.99);
	o->helper_ns = h1 - h0 + s1.helper_cpu_ns - s0.helper_cpu_ns;
	o->valid = true;
	uffd_ctx_destroy(ctx);
}

static double med_field(struct lat *v, size_t n, size_t stride,
			double (*get)(const struct lat *))
{
	double x[64];
	size_t i, k = 0;

	for (i = 0; i < n && k < 64; i++)
		if (v[i * stride].valid)
			x[k++] = get(&v[i * stride]);
	return k ? median(x, k) : NAN;
}

static double get_ns(const struct lat *l) { return l->ns; }
static double get_faults(const struct lat *l) { return (double)l->faults; }
static double get_minflt(const struct lat *l) { return (double)l->minflt; }
static double get_p50(const struct lat *l) { return (double)l->p50_us; }
static double get_p99(const struct lat *l) { return (double)l->p99_us; }
static double get_helper(const struct lat *l) { return (double)l->helper_ns; }
static double get_direct(const struct lat *l) { return (double)l->direct; }

/* Median over reps of the ratio of (a) to (b), same rep. */
static double med_ratio(struct lat *a, struct lat *b, size_t n, size_t stride)
{
	double x[64];
	size_t i, k = 0;

	for (i = 0; i < n && k < 64; i++)
		if (a[i * stride].valid && b[i * stride].valid &&
		    b[i * stride].ns > 0)
			x[k++] = a[i * stride].ns / b[i * stride].ns;
	return k ? median(x, k) : NAN;
}

/* Table 1: one page per fault, every mode, both fault kinds. */
static void table_round_trip(void)
{
	static const struct col cols[] = {
		{ "workload", "workload", 0, 0, COL_LEFT },
		{ "mode", "strategy", 0, 0, COL_LEFT },
		{ "ns/fault", "ns_per_page", 0, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "x native write", "ratio_vs_native_write", 2, 0, 0 },
		{ "p50 us", "p50_us", 0, 0, 0 },
		{ "p99 us", "p99_us", 0, 0, 0 },
		{ "uffd faults", "uffd_faults", 0, 0, 0 },
		{ "helper ms", "helper_cpu_ns", 1, 1e-6, 0 },
	};
	const struct workload *w[2] = { workload_find("seq-write"),
					workload_find("seq-read") };
	size_t nm = ARRAY_SIZE(modes), ns = nm + 1, stride = 2 * ns;
	size_t size = cfg.size, pages = size / page_size;
	struct lat *v = xcalloc((size_t)cfg.reps * stride, sizeof(*v));
	struct rows rows = { 0 };
	struct progress pg;
	unsigned int rep;
	size_t wi, si;

	progress_start(&pg, cfg.reps * 2 * (unsigned int)ns);
	for (rep = 0; rep < cfg.reps && !bench_stopped(); rep++)
		for (wi = 0; wi < 2; wi++)
			for (si = 0; si < ns && !bench_stopped(); si++) {
				struct lat *o = &v[rep * stride + wi * ns + si];

				progress_step(&pg, "latency rep %u %s %s",
					      rep + 1, w[wi]->name, si ?
					      modes[si - 1].name : "native");
				if (si == 0)
					run_native(w[wi], size, o);
				else
					run_pager(w[wi], &modes[si - 1],
						  "zero", size, o);
			}
	progress_end(&pg);

	for (wi = 0; wi < 2; wi++) {
		for (si = 0; si < ns; si++) {
			struct lat *c = &v[wi * ns + si];
			struct lat *nat = &v[wi * ns];
			struct lat *natw = &v[0];
			struct row *r;

			if (isnan(med_field(c, cfg.reps, stride, get_ns)))
				continue;
			r = rows_add(&rows);
			row_init(r, w[wi]->name,
				 si ? modes[si - 1].name : "native", size,
				 pages, cfg.reps);
			r->pin = si ? bench_fmt("%s", modes[si - 1].desc) :
				 "app on CPU 0";
			r->ns_per_page = med_field(c, cfg.reps, stride, get_ns);
			r->ratio_vs_native = med_ratio(c, nat, cfg.reps,
						       stride);
			r->uffd_faults = (uint64_t)med_field(c, cfg.reps,
							     stride, get_faults);
			r->minflt = (uint64_t)med_field(c, cfg.reps, stride,
							get_minflt);
			r->helper_cpu_ns = (uint64_t)med_field(c, cfg.reps,
							       stride,
							       get_helper);
			row_dbl(r, "ratio_vs_native_write",
				med_ratio(c, natw, cfg.reps, stride));
			row_dbl(r, "ratio_vs_native_read",
				med_ratio(c, &v[ns], cfg.reps, stride));
			if (si) {
				row_u64(r, "p50_us", (uint64_t)med_field(c,
					cfg.reps, stride, get_p50));
				row_u64(r, "p99_us", (uint64_t)med_field(c,
					cfg.reps, stride, get_p99));
				row_u64(r, "sigbus_direct", (uint64_t)med_field(c,
					cfg.reps, stride, get_direct));
				row_str(r, "delivery", modes[si - 1].delivery ==
					LIBUFFD_DELIVER_SIGBUS ? "sigbus" :
					"thread");
			}
		}
	}
	bench_emit(&rows, 0, bench_fmt("latency: one page per fault, zero "
				       "pager, %s; app on CPU 0",
				       bench_what(size, cfg.reps)),
		   cols, ARRAY_SIZE(cols));
	if (!cfg.json)
		note("p50/p99: the library's service-time histogram (log2 "
		     "buckets, upper bound), from read() of the fault to the "
		     "ioctl that resolved it; in SIGBUS mode from signal entry");
	rows_free(&rows);
	free(v);
}

/* Table 2: batch sizes per mode: does SIGBUS delivery move the best N? */
static void table_batches(void)
{
	static const struct col cols[] = {
		{ "mode", "workload", 0, 0, COL_LEFT },
		{ "strategy", "strategy", 0, 0, COL_LEFT },
		{ "ns/page", "ns_per_page", 0, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "uffd faults", "uffd_faults", 0, 0, 0 },
		{ "helper ms", "helper_cpu_ns", 1, 1e-6, 0 },
		{ "best", "best", 0, 0, COL_LEFT },
	};
	static const char *const specs[] = {
		"prealloc:batch=1", "prealloc:batch=16", "prealloc:batch=64",
		"prealloc:batch=512", "prezero:batch=16,pool=4096",
		"prezero:batch=64,pool=4096", "prezero:batch=512,pool=8192",
	};
	static const size_t bmodes[] = { 0, 1, 4 };	/* same, other, sigbus */
	const struct workload *w = workload_find("seq-write");
	size_t nb = ARRAY_SIZE(bmodes), nsp = ARRAY_SIZE(specs);
	size_t ns = 1 + nb * nsp, size = cfg.size, pages = size / page_size;
	struct lat *v = xcalloc((size_t)cfg.reps * ns, sizeof(*v));
	struct rows rows = { 0 };
	struct progress pg;
	unsigned int rep;
	size_t si, mi, k;

	progress_start(&pg, cfg.reps * (unsigned int)ns);
	for (rep = 0; rep < cfg.reps && !bench_stopped(); rep++)
		for (si = 0; si < ns && !bench_stopped(); si++) {
			struct lat *o = &v[rep * ns + si];

			progress_step(&pg, "latency batches rep %u #%zu",
				      rep + 1, si);
			if (si == 0) {
				run_native(w, size, o);
				continue;
			}
			mi = bmodes[(si - 1) / nsp];
			k = (si - 1) % nsp;
			if (!have_pager(strncmp(specs[k], "prez", 4) ?
					"prealloc" : "prezero"))
				continue;
			run_pager(w, &modes[mi], specs[k], size, o);
		}
	progress_end(&pg);

	for (si = 0; si < ns; si++) {
		struct lat *c = &v[si];
		struct row *r;
		double best = INFINITY, me;
		size_t j, first;

		me = med_field(c, cfg.reps, ns, get_ns);
		if (isnan(me))
			continue;
		r = rows_add(&rows);
		mi = si ? bmodes[(si - 1) / nsp] : 0;
		k = si ? (si - 1) % nsp : 0;
		row_init(r, si ? modes[mi].name : "native", si ? specs[k] :
			 "native", size, pages, cfg.reps);
		r->pin = si ? modes[mi].desc : "app on CPU 0";
		r->ns_per_page = me;
		r->ratio_vs_native = med_ratio(c, &v[0], cfg.reps, ns);
		r->uffd_faults = (uint64_t)med_field(c, cfg.reps, ns,
						     get_faults);
		r->helper_cpu_ns = (uint64_t)med_field(c, cfg.reps, ns,
						       get_helper);
		if (!si)
			continue;
		/* best of the same pager in the same mode */
		first = 1 + (si - 1) / nsp * nsp;
		for (j = first; j < first + nsp; j++) {
			double x = med_field(&v[j], cfg.reps, ns, get_ns);

			if (!strncmp(specs[j - first], specs[k], 4) &&
			    !isnan(x) && x < best)
				best = x;
		}
		row_str(r, "best", me == best ? "<- best N" : "");
	}
	bench_emit(&rows, 0, bench_fmt("latency: seq-write, batch sizes per "
				       "mode, %s; app on CPU 0",
				       bench_what(size, cfg.reps)),
		   cols, ARRAY_SIZE(cols));
	rows_free(&rows);
	free(v);
}

void experiment_latency(void)
{
	cpu_set_t saved;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		note("latency: needs 2 CPUs for the placements; skipped");
		return;
	}
	if (sched_getaffinity(0, sizeof(saved), &saved))
		die_sys("sched_getaffinity");
	warm_up(cfg.size);
	pin_app(0);
	table_round_trip();
	if (!bench_stopped())
		table_batches();
	if (!bench_stopped())
		latency_floor();
	sched_setaffinity(0, sizeof(saved), &saved);
}
