/* SPDX-License-Identifier: MIT */
/*
 * fault-trace: watch a pager work.  A tracing pager wraps any pager spec:
 * its init finds the inner pager's ops with uffd_pager_find() and calls
 * the inner init with the spec's arguments; every hook is forwarded.
 * Around each inner fault hook it reads a clock and the region's counters,
 * and afterwards /proc/self/pagemap, so that each fault is logged with its
 * offset, kind, thread, service time, what the pager did (zero page, copy,
 * move) and which pages it made present.  The log is allocated before the
 * run: the fault path allocates nothing.
 *
 * The output is the log and a map of the region: how each page got its
 * memory (and whether a batch prefilled it), and which fault did it.
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

#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)

struct tent {
	uint64_t	offset;
	uint64_t	at_ns;		/* since the walk started */
	uint64_t	svc_ns;		/* the inner fault hook */
	uint32_t	tid;
	uint8_t		write;
	int		ret;
	uint32_t	zero, copy, move, eexist;	/* pages, from stats */
	uint32_t	filled;		/* pages newly present, from pagemap */
};

struct tracer {
	const struct uffd_pager_ops	*inner;
	void				*inner_state;
	struct uffd_region		*region;
	uint64_t			base;
	size_t				npages;
	struct tent			*log;
	size_t				cap, n;
	uint64_t			dropped;
	uint32_t			*filled_by;	/* 1 + log index */
	uint64_t			*pm;		/* pagemap buffer */
	int				pagemap_fd;
	uint64_t			t0;
};

/* The tracer the next region's init binds to (the ops have no argument). */
static struct tracer *trace_next;

static int trace_init(struct uffd_region *region,
		      const struct uffd_args *args, void **state)
{
	struct tracer *t = trace_next;
	int ret;

	if (!t) {
		uffd_set_error("trace: no tracer prepared");
		return -EINVAL;
	}
	ret = t->inner->init(region, args, &t->inner_state);
	if (ret)
		return ret;
	t->region = region;
	t->base = (uint64_t)(uintptr_t)uffd_region_addr(region);
	*state = t;
	return 0;
}

/* Pages of the region that became present since the last look. */
static uint32_t mark_filled(struct tracer *t, uint32_t idx)
{
	size_t bytes = t->npages * sizeof(*t->pm), i;
	uint32_t n = 0;

	if (t->pagemap_fd < 0 ||
	    pread(t->pagemap_fd, t->pm, bytes,
		  (off_t)(t->base / page_size * 8)) != (ssize_t)bytes)
		return 0;
	for (i = 0; i < t->npages; i++)
		if (!t->filled_by[i] && (t->pm[i] & PM_PRESENT)) {
			t->filled_by[i] = idx + 1;
			n++;
		}
	return n;
}

static int trace_fault(void *state, struct uffd_resolver *res,
		       const struct uffd_fault *f)
{
	struct tracer *t = state;
	struct uffd_stats s0, s1;
	struct tent *e;
	uint64_t a, b;
	int ret;

	uffd_region_stats(t->region, &s0, sizeof(s0));
	a = now_ns();
	ret = t->inner->fault(t->inner_state, res, f);
	b = now_ns();
	uffd_region_stats(t->region, &s1, sizeof(s1));
	if (t->n == t->cap) {
		t->dropped++;
		return ret;
	}
	e = &t->log[t->n];
	e->offset = f->offset;
	e->at_ns = a - t->t0;
	e->svc_ns = b - a;
	e->tid = f->tid;
	e->write = !!(f->flags & LIBUFFD_FAULT_WRITE);
	e->ret = ret;
	e->zero = (uint32_t)(s1.pages_zero - s0.pages_zero);
	e->copy = (uint32_t)(s1.pages_copy - s0.pages_copy);
	e->move = (uint32_t)(s1.pages_move - s0.pages_move);
	e->eexist = (uint32_t)(s1.eexist - s0.eexist);
	e->filled = mark_filled(t, (uint32_t)t->n);
	t->n++;
	return ret;
}

static void trace_event(void *state, const struct uffd_event *ev)
{
	struct tracer *t = state;

	if (t->inner->event)
		t->inner->event(t->inner_state, ev);
}

static int trace_start(void *state)
{
	struct tracer *t = state;

	return t->inner->start ? t->inner->start(t->inner_state) : 0;
}

static void trace_stop(void *state)
{
	struct tracer *t = state;

	if (t->inner->stop)
		t->inner->stop(t->inner_state);
}

static void trace_fini(void *state)
{
	struct tracer *t = state;

	if (t->inner->fini)
		t->inner->fini(t->inner_state);
}

static const struct uffd_pager_ops trace_ops = {
	.version	= LIBUFFD_PAGER_OPS_VERSION,
	.name		= "trace",
	.init		= trace_init,
	.fault		= trace_fault,
	.event		= trace_event,
	.start		= trace_start,
	.stop		= trace_stop,
	.fini		= trace_fini,
};

/* ------------------------------------------------------------------ */

/* The shared zero page's PFN (0 when PFNs are hidden: not root). */
static uint64_t zero_pfn(int fd)
{
	uint64_t e = 0;
	uint8_t *p;

	p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void)*(volatile uint8_t *)p;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / page_size * 8))
	    != sizeof(e))
		e = 0;
	munmap(p, page_size);
	return (e & PM_PRESENT) ? e & PM_PFN_MASK : 0;
}

static const char *how(const struct tent *e)
{
	if (e->ret)
		return "error";
	if (e->move)
		return "move";
	if (e->copy)
		return "copy";
	if (e->zero)
		return "zero";
	if (e->eexist)
		return "eexist";
	return "none";
}

static void print_ent(const struct tracer *t, size_t i)
{
	const struct tent *e = &t->log[i];
	uint64_t page = e->offset / page_size;
	uint32_t pages = e->move + e->copy + e->zero;
	char filled[48] = "-";
	size_t lo = SIZE_MAX, hi = 0, k;

	for (k = 0; k < t->npages; k++)
		if (t->filled_by[k] == i + 1) {
			if (k < lo)
				lo = k;
			hi = k;
		}
	if (lo != SIZE_MAX)
		snprintf(filled, sizeof(filled), lo == hi ? "%zu" :
			 "%zu-%zu", lo, hi);
	printf("%5zu %6" PRIu64 "  %c %7u %9.1f %7.1f  %-6s %4u  %s\n",
	       i + 1, page, e->write ? 'w' : 'r', e->tid,
	       (double)e->at_ns / 1e3, (double)e->svc_ns / 1e3, how(e),
	       pages, filled);
}

/* Handler thread and pager helper CPU so far. */
static uint64_t helper_ns(const struct uffd_ctx *ctx,
			  const struct uffd_region *r)
{
	struct uffd_stats st;

	if (uffd_region_stats(r, &st, sizeof(st)))
		st.helper_cpu_ns = 0;
	return uffd_ctx_handler_cpu_ns(ctx) + st.helper_cpu_ns;
}

static const char order_digits[] =
	"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

struct tcount {
	uint64_t	zero, copy, move, cow, prefilled, untouched, other;
};

/* The map's character for page @i; counts it into @c. */
static char page_char(const struct tracer *t, size_t i, uint64_t zpfn,
		      struct tcount *c)
{
	uint32_t by = t->filled_by[i];
	uint64_t pm = t->pm[i];
	const struct tent *e;
	bool own, at_zero;
	char ch;

	if (!(pm & PM_PRESENT)) {
		c->untouched++;
		return '.';
	}
	if (!by) {
		c->other++;
		return '?';
	}
	e = &t->log[by - 1];
	own = e->offset / page_size == i;
	at_zero = zpfn && (pm & PM_PFN_MASK) == zpfn;
	if (e->move) {
		ch = 'M';
		c->move++;
	} else if (e->copy) {
		ch = 'C';
		c->copy++;
	} else if (e->zero && (at_zero || !zpfn)) {
		ch = 'Z';
		c->zero++;
	} else if (e->zero) {
		ch = 'W';	/* zero page, then the kernel's COW */
		c->cow++;
	} else {
		c->other++;
		return '?';
	}
	if (!own) {
		c->prefilled++;
		ch = (char)(ch - 'A' + 'a');
	}
	return ch;
}

static void trace_one(const char *spec, const struct workload *w,
		      const uint32_t *order, double native_ns,
		      struct rows *rows)
{
	struct uffd_region_opts ro = {
		.size	= sizeof(ro),
		.type	= LIBUFFD_MEM_ANON,
		.len	= cfg.size,
		.ops	= &trace_ops,
	};
	char name[64], line[96];
	const char *colon = strchr(spec, ':');
	struct tracer t = { 0 };
	struct uffd_ctx *ctx;
	struct tcount cnt = { 0 };
	uint64_t zpfn, t1, rss, h0, h1;
	struct rusage r0, r1;
	double *svc;
	struct row *r;
	size_t i, k;
	int ret;

	snprintf(name, sizeof(name), "%.*s",
		 (int)(colon ? (size_t)(colon - spec) : strlen(spec)), spec);
	ro.args = colon ? colon + 1 : NULL;
	t.inner = uffd_pager_find(name);
	if (!t.inner) {
		note("%s: no such pager", name);
		return;
	}
	t.npages = cfg.pages;
	t.cap = 4 * t.npages + 64;
	t.log = xcalloc(t.cap, sizeof(*t.log));
	t.filled_by = xcalloc(t.npages, sizeof(*t.filled_by));
	t.pm = xcalloc(t.npages, sizeof(*t.pm));
	t.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	zpfn = t.pagemap_fd >= 0 ? zero_pfn(t.pagemap_fd) : 0;

	ctx = bench_ctx();
	trace_next = &t;
	ret = uffd_region_create(ctx, &ro, &t.region);
	trace_next = NULL;
	if (ret)
		die_uffd("uffd_region_create", ret);
	region_settle(t.region, spec);
	h0 = helper_ns(ctx, t.region);
	getrusage(RUSAGE_THREAD, &r0);
	t.t0 = now_ns();
	w->walk(uffd_region_addr(t.region), cfg.size, order);
	t1 = now_ns();
	getrusage(RUSAGE_THREAD, &r1);
	h1 = helper_ns(ctx, t.region);
	rss = smaps_rss_kib(uffd_region_addr(t.region), cfg.size, NULL);
	/* the final state of every page; the handler is idle now */
	if (t.pagemap_fd < 0 ||
	    pread(t.pagemap_fd, t.pm, t.npages * sizeof(*t.pm),
		  (off_t)(t.base / page_size * 8)) !=
	    (ssize_t)(t.npages * sizeof(*t.pm)))
		memset(t.pm, 0, t.npages * sizeof(*t.pm));
	uffd_ctx_destroy(ctx);

	if (!cfg.json) {
		char sz[32];

		fmt_size(sz, sizeof(sz), cfg.size);
		printf("# fault-trace: %s, %s over %s (%zu pages), %s; "
		       "application tid %d\n", spec, w->name, sz, cfg.pages,
		       bench_pin_desc(), gettid());
		printf("%5s %6s %2s %7s %9s %7s  %-6s %4s  %s\n", "fault",
		       "page", "rw", "tid", "at us", "svc us", "op", "pgs",
		       "pages made present");
		for (i = 0; i < t.n; i++) {
			if (t.n > 40 && i == 30)
				printf("%5s ... %zu more ...\n", "",
				       t.n - 35);
			if (t.n > 40 && i >= 30 && i < t.n - 5)
				continue;
			print_ent(&t, i);
		}
		if (t.dropped)
			printf("# %" PRIu64 " faults not logged (log full)\n",
			       t.dropped);
		printf("# map: how each page got its memory (left) and which "
		       "fault did it (right), %d pages a line\n", 32);
	}
	for (i = 0; i < t.npages; i += 32) {
		size_t n = 0;

		for (k = i; k < i + 32 && k < t.npages; k++)
			line[n++] = page_char(&t, k, zpfn, &cnt);
		line[n++] = ' ';
		line[n++] = ' ';
		for (k = i; k < i + 32 && k < t.npages; k++)
			line[n++] = t.filled_by[k] ?
				order_digits[(t.filled_by[k] - 1) % 62] : '.';
		line[n] = '\0';
		if (!cfg.json)
			printf("page %5zu  %s\n", i, line);
	}
	if (!cfg.json) {
		printf("# . untouched  Z zero page (read fault)  C copied: a "
		       "fresh zeroed page  M moved from\n#   a pre-zeroed pool"
		       "  W zero page, then written: the kernel's copy-on-"
		       "write\n#   (no uffd fault)  lower case: filled by "
		       "another page's fault (a batch)\n# right: the fault "
		       "that filled the page, numbered 0-9a-zA-Z from the "
		       "first (wraps at 62)\n");
		if (!zpfn)
			printf("# PFNs are hidden (not root): Z may be W\n");
		printf("# %zu faults for %zu pages: %" PRIu64 " zero page, %"
		       PRIu64 " zero page then written, %" PRIu64 " copied, %"
		       PRIu64 " moved, %" PRIu64 " untouched; %" PRIu64
		       " filled by a batch\n", t.n, t.npages, cnt.zero,
		       cnt.cow, cnt.copy, cnt.move, cnt.untouched,
		       cnt.prefilled);
		printf("\n");
	}

	svc = xcalloc(t.n ? t.n : 1, sizeof(*svc));
	for (i = 0; i < t.n; i++)
		svc[i] = (double)t.log[i].svc_ns;
	r = rows_add(rows);
	row_init(r, w->name, spec, cfg.size, cfg.pages, 1);
	r->ns_per_page = (double)(t1 - t.t0) / (double)cfg.pages;
	r->ratio_vs_native = r->ns_per_page / native_ns;
	r->uffd_faults = t.n + t.dropped;
	r->minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
	r->rss_kib = rss;
	r->helper_cpu_ns = h1 - h0;
	row_u64(r, "zero_mapped", cnt.zero);
	row_u64(r, "copied", cnt.copy);
	row_u64(r, "moved", cnt.move);
	row_u64(r, "zero_then_written", cnt.cow);
	row_u64(r, "prefilled_by_batch", cnt.prefilled);
	row_u64(r, "untouched", cnt.untouched);
	row_dbl(r, "service_median_us", median(svc, t.n) / 1e3);
	/* median() sorted svc: the last is the longest */
	row_dbl(r, "service_max_us", t.n ? svc[t.n - 1] / 1e3 : NAN);
	row_u64(r, "log_dropped", t.dropped);
	free(svc);
	if (t.pagemap_fd >= 0)
		close(t.pagemap_fd);
	free(t.log);
	free(t.filled_by);
	free(t.pm);
}

void experiment_fault_trace(void)
{
	static const char *const def[] = {
		"zero", "prealloc:batch=8", "prezero:batch=4",
	};
	const struct workload *w = cfg.nworkloads ? cfg.workloads[0] :
				   workload_find("rand-write");
	struct strategy nat;
	struct sample ns;
	struct rows rows = { 0 };
	uint32_t *order = page_order(cfg.pages, 0x5eed7ace);
	size_t i;

	native_strategies(&nat, false, false);
	run_one(w, &nat, cfg.size, order, &ns);
	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers && !bench_stopped(); i++)
			trace_one(cfg.pagers[i], w, order, ns.ns_per_page,
				  &rows);
	} else {
		for (i = 0; i < ARRAY_SIZE(def) && !bench_stopped(); i++) {
			char name[16];

			snprintf(name, sizeof(name), "%.*s",
				 (int)strcspn(def[i], ":"), def[i]);
			if (have_pager(name))
				trace_one(def[i], w, order, ns.ns_per_page,
					  &rows);
		}
	}
	bench_emit(&rows, 0, NULL, NULL, 0);
	rows_free(&rows);
	free(order);
}
