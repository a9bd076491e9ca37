/* SPDX-License-Identifier: MIT */
/*
 * uffd-bench - measure libuffd pagers against the kernel's own demand paging.
 *
 * Machines here are shared 2-CPU VMs whose absolute speed drifts, so every
 * number is taken in one process, interleaved (for each repetition, for each
 * workload, for each strategy), and reported as a median and as a median of
 * per-repetition ratios against "native".
 *
 * To add a workload, add a walk to workloads[]; a kind of strategy, a
 * struct strategy_ops; an experiment, a function producing struct row
 * entries and a line in experiments[].  Rows print the same way for all.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <libuffd.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define DEFAULT_SIZE	(256ULL << 20)
#define DEFAULT_REPS	5
#define QUICK_SIZE	(32ULL << 20)
#define QUICK_REPS	3
#define MAX_REPS	1000
#define PROGRESS_AFTER_NS	2000000000ULL

static const char *prog = "uffd-bench";
static size_t page_size;

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	exit(2);
}

/* A libuffd call failed: @err is its negative errno. */
static void __attribute__((noreturn)) die_uffd(const char *call, int err)
{
	fprintf(stderr, "%s: %s: %s (%s)\n", prog, call, uffd_last_error(),
		strerror(-err));
	exit(1);
}

/* A system call failed with errno set. */
static void __attribute__((noreturn)) die_sys(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die_sys("calloc");
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Handler placement                                                  */
/* ------------------------------------------------------------------ */

struct placement {
	const char	*name;
	int		app_cpu;	/* -1: leave the application alone */
	int		handler_cpu;	/* uffd_ctx_opts.handler_cpu */
	const char	*desc;
};

static const struct placement placements[] = {
	{ "same",   0,  0, "app and handler on CPU 0" },
	{ "other",  0,  1, "app on CPU 0, handler on CPU 1" },
	{ "none",  -1, -1, "nothing pinned" },
};

/* ------------------------------------------------------------------ */
/* Workloads: what the application thread does, and all that is timed */
/* ------------------------------------------------------------------ */

struct workload {
	const char	*name;
	void		(*walk)(uint8_t *p, size_t len);
	const char	*desc;
};

static void walk_seq_read(uint8_t *p, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += page_size)
		(void)*(volatile uint8_t *)(p + off);
}

static void walk_seq_write(uint8_t *p, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += page_size)
		*(volatile uint8_t *)(p + off) = 1;
}

/*
 * A load, then a separate store, as compiled `a[i] *= 3` does.  One x86
 * read-modify-write instruction would fault once, as a write, and hide the
 * zero-page double fault; the empty asm keeps the compiler from fusing them.
 */
static void walk_seq_rw(uint8_t *p, size_t len)
{
	size_t off;
	uint8_t v;

	for (off = 0; off < len; off += page_size) {
		v = *(volatile uint8_t *)(p + off);
		__asm__ __volatile__("" : "+r" (v) : : "memory");
		*(volatile uint8_t *)(p + off) = (uint8_t)(v + 1);
	}
}

static const struct workload workloads[] = {
	{ "seq-read",  walk_seq_read,  "a load per page" },
	{ "seq-write", walk_seq_write, "a store per page" },
	{ "seq-rw",    walk_seq_rw,    "a load, then a store, per page" },
};

/* ------------------------------------------------------------------ */
/* Strategies: who provides the memory and serves its faults          */
/* ------------------------------------------------------------------ */

struct config;

/* The memory of one run, whatever strategy made it. */
struct mapping {
	uint8_t			*addr;
	size_t			len;
	void			*resv;		/* native: with guard pages */
	size_t			resv_len;
	struct uffd_ctx		*ctx;
	struct uffd_region	*region;
};

/* Counters a strategy keeps beyond what getrusage sees. */
struct counters {
	uint64_t	uffd_faults;
	uint64_t	helper_cpu_ns;
};

struct strategy;

/* Each hook exits the program on failure; none of them is timed. */
struct strategy_ops {
	void	(*setup)(const struct config *cfg, const struct strategy *s,
			 struct mapping *m);
	void	(*counters)(const struct mapping *m, struct counters *c);
	void	(*teardown)(struct mapping *m);
};

struct strategy {
	const char			*name;	/* "native" or a pager spec */
	const struct strategy_ops	*ops;
	const char			*spec;	/* pager strategies */
};

struct config {
	const char		*experiment;
	size_t			size;
	size_t			pages;
	unsigned int		reps;
	const struct placement	*pin;
	struct strategy		*strategies;
	size_t			nstrategies;
	bool			json;
	const char		*csv_path;
	FILE			*csv;
};

/*
 * native: a fresh private anonymous mapping demand paged by the kernel.
 * PROT_NONE guard pages keep it from merging with a neighbour, so its smaps
 * entry is exactly the run's memory; MADV_NOHUGEPAGE keeps it on 4 KiB pages
 * like the pager regions whatever the THP setting (THP is its own strategy).
 */
static void native_setup(const struct config *cfg, const struct strategy *s,
			 struct mapping *m)
{
	(void)s;
	m->len = cfg->size;
	m->resv_len = cfg->size + 2 * page_size;
	m->resv = mmap(NULL, m->resv_len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->resv == MAP_FAILED)
		die_sys("mmap");
	m->addr = (uint8_t *)m->resv + page_size;
	if (mprotect(m->addr, m->len, PROT_READ | PROT_WRITE))
		die_sys("mprotect");
	if (madvise(m->addr, m->len, MADV_NOHUGEPAGE))
		die_sys("madvise(MADV_NOHUGEPAGE)");
}

static void native_counters(const struct mapping *m, struct counters *c)
{
	(void)m;
	memset(c, 0, sizeof(*c));
}

static void native_teardown(struct mapping *m)
{
	if (munmap(m->resv, m->resv_len))
		die_sys("munmap");
}

static const struct strategy_ops native_ops = {
	.setup		= native_setup,
	.counters	= native_counters,
	.teardown	= native_teardown,
};

/* pager: a fresh LIBUFFD_MEM_ANON region in a context started for the run. */
static void pager_setup(const struct config *cfg, const struct strategy *s,
			struct mapping *m)
{
	struct uffd_ctx_opts copts = {
		.size		= sizeof(copts),
		.flags		= cfg->pin->handler_cpu >= 0 ?
				  LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu	= cfg->pin->handler_cpu,
	};
	struct uffd_region_opts ropts = {
		.size	= sizeof(ropts),
		.type	= LIBUFFD_MEM_ANON,
		.len	= cfg->size,
		.pager	= s->spec,
	};
	int ret;

	ret = uffd_ctx_create(&m->ctx, &copts);
	if (ret)
		die_uffd("uffd_ctx_create", ret);
	ret = uffd_ctx_start(m->ctx);
	if (ret)
		die_uffd("uffd_ctx_start", ret);
	ret = uffd_region_create(m->ctx, &ropts, &m->region);
	if (ret)
		die_uffd("uffd_region_create", ret);
	m->addr = uffd_region_addr(m->region);
	m->len = uffd_region_len(m->region);
}

static void pager_counters(const struct mapping *m, struct counters *c)
{
	struct uffd_stats st;
	int ret;

	ret = uffd_region_stats(m->region, &st, sizeof(st));
	if (ret)
		die_uffd("uffd_region_stats", ret);
	c->uffd_faults = st.faults_read + st.faults_write;
	c->helper_cpu_ns = st.helper_cpu_ns + uffd_ctx_handler_cpu_ns(m->ctx);
}

static void pager_teardown(struct mapping *m)
{
	uffd_region_destroy(m->region);
	uffd_ctx_destroy(m->ctx);
}

static const struct strategy_ops pager_ops = {
	.setup		= pager_setup,
	.counters	= pager_counters,
	.teardown	= pager_teardown,
};

/* ------------------------------------------------------------------ */
/* Measuring one run                                                  */
/* ------------------------------------------------------------------ */

struct sample {
	double		ns_per_page;
	uint64_t	uffd_faults;
	uint64_t	minflt;
	uint64_t	majflt;
	uint64_t	rss_kib;
	uint64_t	helper_cpu_ns;
};

/* Rss of the mappings in [addr, addr + len) from /proc/self/smaps, in KiB. */
static uint64_t smaps_rss_kib(const void *addr, size_t len)
{
	static bool warned;
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	unsigned long start, end, kib;
	uint64_t total = 0;
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
		}
	}
	free(line);
	fclose(f);
	return total;
}

static void run_one(const struct config *cfg, const struct workload *w,
		    const struct strategy *s, struct sample *out)
{
	struct mapping m = { 0 };
	struct counters c0, c1;
	struct rusage r0, r1;
	uint64_t t0, t1;

	s->ops->setup(cfg, s, &m);
	s->ops->counters(&m, &c0);
	if (getrusage(RUSAGE_THREAD, &r0))
		die_sys("getrusage");
	t0 = now_ns();
	w->walk(m.addr, m.len);
	t1 = now_ns();
	if (getrusage(RUSAGE_THREAD, &r1))
		die_sys("getrusage");
	s->ops->counters(&m, &c1);

	out->ns_per_page = (double)(t1 - t0) / (double)(m.len / page_size);
	out->uffd_faults = c1.uffd_faults - c0.uffd_faults;
	out->helper_cpu_ns = c1.helper_cpu_ns - c0.helper_cpu_ns;
	out->minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
	out->majflt = (uint64_t)(r1.ru_majflt - r0.ru_majflt);
	out->rss_kib = smaps_rss_kib(m.addr, m.len);
	s->ops->teardown(&m);
}

/*
 * First writes to memory this VM has not used recently are slow for reasons
 * outside the guest: touch and free the run size once before timing.
 */
static void warm_up(size_t len)
{
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die_sys("mmap");
	walk_seq_write(p, len);
	if (munmap(p, len))
		die_sys("munmap");
}

/* ------------------------------------------------------------------ */
/* Progress, on stderr once a run has taken a couple of seconds       */
/* ------------------------------------------------------------------ */

struct progress {
	uint64_t	t0;
	unsigned int	done;
	unsigned int	total;
};

static void __attribute__((format(printf, 2, 3)))
progress_step(struct progress *pg, const char *fmt, ...)
{
	uint64_t el = now_ns() - pg->t0;
	va_list ap;

	pg->done++;
	if (el < PROGRESS_AFTER_NS)
		return;
	fprintf(stderr, "%s: [%*u/%u] ", prog,
		pg->total >= 100 ? 3 : pg->total >= 10 ? 2 : 1,
		pg->done, pg->total);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ", ETA %.0f s\n", (double)el / 1e9 / pg->done *
		(pg->total - pg->done));
}

/* ------------------------------------------------------------------ */
/* Rows: what every experiment reports                                */
/* ------------------------------------------------------------------ */

struct row {
	const char	*experiment;
	const char	*workload;
	const char	*strategy;
	uint64_t	size_bytes;
	uint64_t	pages;
	uint64_t	reps;
	double		ns_per_page;
	double		ratio_vs_native;
	uint64_t	uffd_faults;	/* medians per run, not per page */
	uint64_t	minflt;
	uint64_t	majflt;
	uint64_t	rss_kib;
	uint64_t	helper_cpu_ns;
	const char	*pin;
};

enum field_type { F_STR, F_U64, F_NS, F_RATIO };

struct field {
	const char	*key;
	enum field_type	type;
	size_t		off;
};

#define FIELD(k, t)	{ #k, t, offsetof(struct row, k) }

/* The keys of --json and the columns of --csv, in order. */
static const struct field row_fields[] = {
	FIELD(experiment, F_STR),
	FIELD(workload, F_STR),
	FIELD(strategy, F_STR),
	FIELD(size_bytes, F_U64),
	FIELD(pages, F_U64),
	FIELD(reps, F_U64),
	FIELD(ns_per_page, F_NS),
	FIELD(ratio_vs_native, F_RATIO),
	FIELD(uffd_faults, F_U64),
	FIELD(minflt, F_U64),
	FIELD(majflt, F_U64),
	FIELD(rss_kib, F_U64),
	FIELD(helper_cpu_ns, F_U64),
	FIELD(pin, F_STR),
};

struct rows {
	struct row	*v;
	size_t		n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts @v. */
static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void csv_str(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void field_print(FILE *f, const struct row *r, const struct field *fd,
			bool json)
{
	const void *p = (const char *)r + fd->off;

	switch (fd->type) {
	case F_STR:
		if (json)
			json_str(f, *(const char *const *)p);
		else
			csv_str(f, *(const char *const *)p);
		break;
	case F_U64:
		fprintf(f, "%" PRIu64, *(const uint64_t *)p);
		break;
	case F_NS:
		fprintf(f, "%.1f", *(const double *)p);
		break;
	case F_RATIO:
		fprintf(f, "%.3f", *(const double *)p);
		break;
	}
}

static void print_json(FILE *f, const struct rows *rows)
{
	size_t i, k;

	for (i = 0; i < rows->n; i++) {
		fputc('{', f);
		for (k = 0; k < ARRAY_SIZE(row_fields); k++) {
			fprintf(f, "%s\"%s\":", k ? "," : "",
				row_fields[k].key);
			field_print(f, &rows->v[i], &row_fields[k], true);
		}
		fputs("}\n", f);
	}
}

static void print_csv(FILE *f, const struct rows *rows)
{
	size_t i, k;

	for (k = 0; k < ARRAY_SIZE(row_fields); k++)
		fprintf(f, "%s%s", k ? "," : "", row_fields[k].key);
	fputc('\n', f);
	for (i = 0; i < rows->n; i++) {
		for (k = 0; k < ARRAY_SIZE(row_fields); k++) {
			if (k)
				fputc(',', f);
			field_print(f, &rows->v[i], &row_fields[k], false);
		}
		fputc('\n', f);
	}
}

static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB" };
	size_t u = 0;

	while (u + 1 < ARRAY_SIZE(units) && bytes && !(bytes % 1024)) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%" PRIu64 " %s", bytes, units[u]);
}

static void print_table(FILE *f, const struct config *cfg,
			const struct rows *rows)
{
	int sw = (int)strlen("strategy");
	char size[32];
	size_t i;

	for (i = 0; i < rows->n; i++)
		if ((int)strlen(rows->v[i].strategy) > sw)
			sw = (int)strlen(rows->v[i].strategy);
	fmt_size(size, sizeof(size), cfg->size);
	fprintf(f, "# %s: %s (%zu pages of %zu KiB), median of %u reps, "
		"pin=%s (%s)\n", cfg->experiment, size, cfg->pages,
		page_size / 1024, cfg->reps, cfg->pin->name, cfg->pin->desc);
	fprintf(f, "%-10s %-*s %9s %9s %10s %11s %9s %9s\n", "workload", sw,
		"strategy", "ns/page", "x native", "uffd/page", "minflt/page",
		"rss KiB", "helper ms");
	for (i = 0; i < rows->n; i++) {
		const struct row *r = &rows->v[i];

		fprintf(f, "%-10s %-*s %9.1f %9.2f %10.2f %11.2f %9" PRIu64
			" %9.1f\n", r->workload, sw, r->strategy,
			r->ns_per_page, r->ratio_vs_native,
			(double)r->uffd_faults / (double)r->pages,
			(double)r->minflt / (double)r->pages, r->rss_kib,
			(double)r->helper_cpu_ns / 1e6);
	}
}

/* ------------------------------------------------------------------ */
/* Experiments                                                        */
/* ------------------------------------------------------------------ */

/* Median over @reps samples spaced @stride apart of the field at @off. */
static uint64_t median_u64(const struct sample *s, size_t reps,
			   size_t stride, size_t off, double *tmp)
{
	size_t i;

	for (i = 0; i < reps; i++)
		tmp[i] = (double)*(const uint64_t *)
			((const char *)&s[i * stride] + off);
	return (uint64_t)(median(tmp, reps) + 0.5);
}

/* Every workload under every strategy, ratios against native. */
static void experiment_compare(const struct config *cfg, struct rows *out)
{
	size_t nw = ARRAY_SIZE(workloads), ns = cfg->nstrategies;
	size_t stride = nw * ns, rep, w, s;
	struct progress pg = { .total = cfg->reps * stride };
	struct sample *samples, *sm;
	double *tmp;

	samples = xcalloc(cfg->reps * stride, sizeof(*samples));
	tmp = xcalloc(cfg->reps, sizeof(*tmp));

	warm_up(cfg->size);
	pg.t0 = now_ns();
	for (rep = 0; rep < cfg->reps; rep++)
		for (w = 0; w < nw; w++)
			for (s = 0; s < ns; s++) {
				sm = &samples[rep * stride + w * ns + s];
				run_one(cfg, &workloads[w],
					&cfg->strategies[s], sm);
				progress_step(&pg, "rep %zu/%u %s %s: "
					      "%.1f ns/page", rep + 1,
					      cfg->reps, workloads[w].name,
					      cfg->strategies[s].name,
					      sm->ns_per_page);
			}

	out->n = nw * ns;
	out->v = xcalloc(out->n, sizeof(*out->v));
	for (w = 0; w < nw; w++) {
		for (s = 0; s < ns; s++) {
			struct row *r = &out->v[w * ns + s];
			const struct sample *col = &samples[w * ns + s];
			const struct sample *nat = &samples[w * ns];

			*r = (struct row){
				.experiment	= cfg->experiment,
				.workload	= workloads[w].name,
				.strategy	= cfg->strategies[s].name,
				.size_bytes	= cfg->size,
				.pages		= cfg->pages,
				.reps		= cfg->reps,
				.pin		= cfg->pin->name,
			};
			/* native is strategies[0] */
			for (rep = 0; rep < cfg->reps; rep++)
				tmp[rep] = col[rep * stride].ns_per_page /
					   nat[rep * stride].ns_per_page;
			r->ratio_vs_native = median(tmp, cfg->reps);
			for (rep = 0; rep < cfg->reps; rep++)
				tmp[rep] = col[rep * stride].ns_per_page;
			r->ns_per_page = median(tmp, cfg->reps);
#define MEDIAN(f)	(r->f = median_u64(col, cfg->reps, stride, \
					   offsetof(struct sample, f), tmp))
			MEDIAN(uffd_faults);
			MEDIAN(minflt);
			MEDIAN(majflt);
			MEDIAN(rss_kib);
			MEDIAN(helper_cpu_ns);
#undef MEDIAN
		}
	}
	free(tmp);
	free(samples);
}

struct experiment {
	const char	*name;
	void		(*run)(const struct config *cfg, struct rows *out);
	const char	*desc;
};

static const struct experiment experiments[] = {
	{ "compare", experiment_compare,
	  "every workload under native and each --pager" },
};

/* ------------------------------------------------------------------ */
/* Command line                                                       */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
"Usage: %s [EXPERIMENT] [OPTIONS]\n"
"Time workloads under the kernel's demand paging (native: a fresh anonymous\n"
"mmap) and under libuffd pagers (a fresh region each), interleaved in one\n"
"process; report medians and median ratios against native.\n"
"Experiments:\n", prog);
	for (i = 0; i < ARRAY_SIZE(experiments); i++)
		fprintf(f, "  %-10s %s%s\n", experiments[i].name,
			experiments[i].desc, i ? "" : " (default)");
	fprintf(f, "Workloads:\n");
	for (i = 0; i < ARRAY_SIZE(workloads); i++)
		fprintf(f, "  %-10s %s\n", workloads[i].name,
			workloads[i].desc);
	fprintf(f,
"Options:\n"
"  -s, --size SIZE    bytes per run, K/M/G suffixes (default 256M)\n"
"  -r, --reps N       repetitions (default %d)\n"
"  -p, --pager SPEC   pager spec to measure; repeatable (default: zero)\n"
"      --pin WHERE    same: app and handler on CPU 0 (default);\n"
"                     other: app on CPU 0, handler on CPU 1; none\n"
"  -q, --quick        --size 32M --reps %d, unless given\n"
"  -j, --json         one JSON object per row on stdout instead of the table\n"
"  -c, --csv FILE     also write the rows to FILE as CSV\n"
"  -h, --help         this text\n"
"Exit status: 0 done, 1 a call failed, 2 bad usage.\n",
		DEFAULT_REPS, QUICK_REPS);
}

/* "256M" -> bytes; false when malformed, zero or too big. */
static bool parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	case '\0':
		break;
	default:
		return false;
	}
	if (shift && *++end)
		return false;
	if (!v || v > (UINT64_MAX >> 1) >> shift)
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static void check_cpu(int cpu, const cpu_set_t *allowed)
{
	if (cpu >= 0 && !CPU_ISSET(cpu, allowed))
		usage_error("--pin needs CPU %d, which this process may not "
			    "use", cpu);
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
	enum { OPT_PIN = 256 };
	static const struct option longopts[] = {
		{ "size",  required_argument, NULL, 's' },
		{ "reps",  required_argument, NULL, 'r' },
		{ "pager", required_argument, NULL, 'p' },
		{ "pin",   required_argument, NULL, OPT_PIN },
		{ "quick", no_argument,       NULL, 'q' },
		{ "json",  no_argument,       NULL, 'j' },
		{ "csv",   required_argument, NULL, 'c' },
		{ "help",  no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char **specs;
	size_t nspecs = 0, i;
	bool quick = false, have_size = false, have_reps = false;
	uint64_t size = DEFAULT_SIZE;
	cpu_set_t allowed;
	char *end;
	unsigned long reps;
	int c, ret;

	specs = xcalloc((size_t)argc, sizeof(*specs));
	cfg->reps = DEFAULT_REPS;
	cfg->pin = &placements[0];
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:r:p:qjc:h", longopts,
				NULL)) != -1) {
		switch (c) {
		case 's':
			if (!parse_size(optarg, &size))
				usage_error("bad --size '%s'", optarg);
			have_size = true;
			break;
		case 'r':
			errno = 0;
			reps = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || !reps ||
			    reps > MAX_REPS || *optarg == '-')
				usage_error("bad --reps '%s' (1..%d)", optarg,
					    MAX_REPS);
			cfg->reps = (unsigned int)reps;
			have_reps = true;
			break;
		case 'p':
			specs[nspecs++] = optarg;
			break;
		case OPT_PIN:
			for (i = 0; i < ARRAY_SIZE(placements); i++)
				if (!strcmp(optarg, placements[i].name))
					break;
			if (i == ARRAY_SIZE(placements))
				usage_error("bad --pin '%s' (same, other or "
					    "none)", optarg);
			cfg->pin = &placements[i];
			break;
		case 'q':
			quick = true;
			break;
		case 'j':
			cfg->json = true;
			break;
		case 'c':
			cfg->csv_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error("option '%s' needs an argument",
				    argv[optind - 1]);
		default:
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}

	cfg->experiment = experiments[0].name;
	if (optind < argc)
		cfg->experiment = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	for (i = 0; i < ARRAY_SIZE(experiments); i++)
		if (!strcmp(cfg->experiment, experiments[i].name))
			break;
	if (i == ARRAY_SIZE(experiments))
		usage_error("unknown experiment '%s'", cfg->experiment);

	if (quick && !have_size)
		size = QUICK_SIZE;
	if (quick && !have_reps)
		cfg->reps = QUICK_REPS;
	cfg->size = (size_t)((size + page_size - 1) / page_size * page_size);
	cfg->pages = cfg->size / page_size;

	if (!nspecs)
		specs[nspecs++] = "zero";
	cfg->nstrategies = nspecs + 1;
	cfg->strategies = xcalloc(cfg->nstrategies, sizeof(*cfg->strategies));
	cfg->strategies[0] = (struct strategy){ "native", &native_ops, NULL };
	for (i = 0; i < nspecs; i++) {
		ret = uffd_pager_spec_check(specs[i], cfg->size);
		if (ret == -EINVAL)
			usage_error("bad --pager '%s': %s", specs[i],
				    uffd_last_error());
		if (ret)
			die_uffd("uffd_pager_spec_check", ret);
		cfg->strategies[i + 1] = (struct strategy){
			specs[i], &pager_ops, specs[i]
		};
	}
	free(specs);

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		die_sys("sched_getaffinity");
	check_cpu(cfg->pin->app_cpu, &allowed);
	check_cpu(cfg->pin->handler_cpu, &allowed);

	if (cfg->csv_path) {
		cfg->csv = fopen(cfg->csv_path, "we");
		if (!cfg->csv)
			die_sys(cfg->csv_path);
	}
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die_sys("sched_setaffinity");
}

int main(int argc, char **argv)
{
	struct config cfg = { 0 };
	struct rows rows = { 0 };
	size_t i;

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	parse_args(argc, argv, &cfg);
	pin_self(cfg.pin->app_cpu);

	for (i = 0; i < ARRAY_SIZE(experiments); i++)
		if (!strcmp(cfg.experiment, experiments[i].name))
			experiments[i].run(&cfg, &rows);

	if (cfg.json)
		print_json(stdout, &rows);
	else
		print_table(stdout, &cfg, &rows);
	if (cfg.csv) {
		print_csv(cfg.csv, &rows);
		if (fclose(cfg.csv))
			die_sys(cfg.csv_path);
	}
	if (fflush(stdout))
		die_sys("stdout");
	free(rows.v);
	free(cfg.strategies);
	return 0;
}
