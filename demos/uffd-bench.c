/* SPDX-License-Identifier: MIT */
/*
 * uffd-bench - measure libuffd pagers against the kernel's own demand paging.
 *
 * Machines here are shared 2-CPU VMs whose absolute speed drifts, so every
 * number is taken in one process, interleaved (for each repetition, for each
 * workload, for each strategy), and reported as a median and as a median of
 * per-repetition ratios against "native".
 *
 * This file is the command: options, the experiment table, output (tables,
 * JSON lines, CSV, gnuplot), progress, Ctrl-C, and the system settings some
 * experiments change for a run (always put back).  The runs themselves are
 * in bench-run.c, the experiments in bench-*.c; bench.h says how they meet.
 *
 * To add a workload, add a walk to workloads[] (bench-run.c); a kind of
 * strategy, a case in strategy_setup(); an experiment, a function producing
 * rows for bench_emit() and a line in experiments[] below.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"
#include "bench-restore.h"
#include "../tests/stress.h"

#define MAX_REPS		1000
#define PROGRESS_AFTER_NS	2000000000ULL

extern char **environ;

const char *prog = "uffd-bench";
size_t page_size;
struct config cfg;

static const struct placement placements[] = {
	{ "same",   0,  0, "app and handler on CPU 0, helpers free" },
	{ "other",  0,  1, "app on CPU 0, handler on CPU 1, helpers free" },
	{ "none",  -1, -1, "nothing pinned" },
};

static const struct experiment experiments[] = {
	{ "compare", experiment_compare, 256 * MIB, 32 * MIB, 5, 3, true,
	  "native, populate, THP, pagers; 5 workloads" },
	{ "zero-double-fault", experiment_zero_double_fault,
	  256 * MIB, 32 * MIB, 5, 2, true,
	  "000: x *= 3 on zeros vs ones; seed's Rust" },
	{ "populate-table", experiment_populate_table,
	  0, 0, 10, 2, false,
	  "001: read, write, POPULATE_*; 3 memories" },
	{ "prezero", experiment_prezero, 256 * MIB, 32 * MIB, 5, 2, true,
	  "002: pre-zeroed pool vs zeroing at fault" },
	{ "huge-zero", experiment_huge_zero, 200 * MIB, 32 * MIB, 5, 2, true,
	  "003: read walk of THP memory, and its Rss" },
	{ "batch-sweep", experiment_batch_sweep, 2 * GIB, 32 * MIB, 3, 1,
	  true, "004: batch 1..512, seq and rand, native" },
	{ "fault-trace", experiment_fault_trace, 512 * KIB, 256 * KIB, 1, 1,
	  false, "each fault of a small run, as a map" },
	{ "latency", experiment_latency, 64 * MIB, 8 * MIB, 5, 2, false,
	  "one fault's cost: delivery modes, placement" },
	/* its line in --help is shared with restore's, see usage() */
	{ "app", experiment_app, 0, 0, 5, 2, true,
	  "a COMMAND natively and under pagers" },
	{ "dirty", experiment_dirty, 256 * MIB, 32 * MIB, 5, 2, false,
	  "finding written pages: sync, async WP" },
	/* the budget's defaults; its help is its own, as app's */
	{ "evict", experiment_evict, 256 * MIB, 32 * MIB, 3, 1, true,
	  "W of 0.5..4 x a budget: kernel swap in a cgroup" },
};

/* ------------------------------------------------------------------ */
/* Errors and small helpers                                           */
/* ------------------------------------------------------------------ */

void usage_error(const char *fmt, ...)
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
void die_uffd(const char *call, int err)
{
	fprintf(stderr, "%s: %s: %s (%s)\n", prog, call, uffd_last_error(),
		strerror(-err));
	exit(1);
}

/* A system call failed with errno set. */
void die_sys(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die_sys("calloc");
	return p;
}

/* Strings kept until exit, on a list so that leak checkers see them. */
struct strnode {
	struct strnode	*next;
	char		s[];
};

static struct strnode *strings;

const char *bench_strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	struct strnode *n = xcalloc(1, sizeof(*n) + len);

	memcpy(n->s, s, len);
	n->next = strings;
	strings = n;
	return n->s;
}

const char *bench_fmt(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return bench_strdup(buf);
}

static void strings_free(void)
{
	struct strnode *n;

	while ((n = strings)) {
		strings = n->next;
		free(n);
	}
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB" };
	size_t u = 0;

	while (u + 1 < ARRAY_SIZE(units) && bytes && !(bytes % 1024)) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, "%" PRIu64 " %s", bytes, units[u]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double median(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void note(const char *fmt, ...)
{
	FILE *f = cfg.json ? stderr : stdout;
	va_list ap;

	fputs("# ", f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}

bool have_pager(const char *name)
{
	return uffd_pager_find(name) != NULL;
}

/*
 * Children get the signal mask and dispositions of a fresh program: ours
 * blocks SIGINT in every thread (see signal_main).
 */
int spawn(char *const argv[], int out_fd, int *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int ret;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	ret = posix_spawn(pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -ret;
}

/* ------------------------------------------------------------------ */
/* Ctrl-C: finish the current run, print what is done                 */
/* ------------------------------------------------------------------ */

static int stop_flag;

bool bench_stopped(void)
{
	return __atomic_load_n(&stop_flag, __ATOMIC_RELAXED);
}

/*
 * Every thread blocks SIGINT and SIGTERM (threads inherit the mask), and
 * this one takes them with sigwait(): nothing is interrupted in the
 * middle of a run, a handler thread or a fault, and the experiment checks
 * bench_stopped() between runs, stops its contexts as usual and prints
 * the rows it has.  A second signal quits at once, after putting the
 * system settings back.
 */
static void *signal_main(void *arg)
{
	const sigset_t *set = arg;
	static const char msg[] = "\nuffd-bench: stopping after the current "
				  "run (again to quit now)\n";
	int sig;

	for (;;) {
		if (sigwait(set, &sig))
			continue;
		if (!__atomic_exchange_n(&stop_flag, 1, __ATOMIC_SEQ_CST)) {
			if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
				continue;
			continue;
		}
		tune_restore_all();
		_exit(130);
	}
	return NULL;
}

static void signals_setup(void)
{
	static sigset_t set;
	pthread_attr_t attr;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		die_sys("pthread_sigmask");
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	errno = pthread_create(&t, &attr, signal_main, &set);
	pthread_attr_destroy(&attr);
	if (errno)
		die_sys("pthread_create");
}

/* ------------------------------------------------------------------ */
/* System settings, changed for a run and always put back             */
/* ------------------------------------------------------------------ */

#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"
#define THP_ZERO_PAGE	"/sys/kernel/mm/transparent_hugepage/use_zero_page"

static int read_long(const char *path, long *v)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -errno;
	ok = fscanf(f, "%ld", v) == 1;
	fclose(f);
	return ok ? 0 : -EIO;
}

static int write_long(const char *path, long v)
{
	char buf[32];
	int fd, len, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%ld\n", v);
	if (write(fd, buf, (size_t)len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

static long meminfo_kib(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static long huge_added;		/* pages we added to vm.nr_hugepages */
static long thp_zero_saved = -1;	/* use_zero_page before we changed it */

int hugetlb_reserve(uint64_t pages, char *why, size_t len)
{
	long avail, nr, now;
	int ret;

	if (meminfo_kib("Hugepagesize") != 2048) {
		snprintf(why, len, "the default huge page size is not 2 MiB");
		return -1;
	}
	avail = meminfo_kib("HugePages_Free") - meminfo_kib("HugePages_Rsvd");
	if (avail >= (long)pages)
		return 0;
	if (cfg.no_tune) {
		snprintf(why, len, "%ld huge pages free, %" PRIu64 " needed, "
			 "and --no-tune", avail < 0 ? 0 : avail, pages);
		return -1;
	}
	ret = read_long(NR_HUGEPAGES, &nr);
	if (!ret)
		ret = write_long(NR_HUGEPAGES, nr + ((long)pages - avail));
	if (ret) {
		snprintf(why, len, "cannot raise " NR_HUGEPAGES ": %s",
			 strerror(-ret));
		return -1;
	}
	if (!read_long(NR_HUGEPAGES, &now) && now > nr)
		huge_added += now - nr;
	avail = meminfo_kib("HugePages_Free") - meminfo_kib("HugePages_Rsvd");
	if (avail < (long)pages) {
		hugetlb_release();
		snprintf(why, len, "only %ld of %" PRIu64 " huge pages could "
			 "be reserved (memory is fragmented or short)",
			 avail < 0 ? 0 : avail, pages);
		return -1;
	}
	return 0;
}

/* Relative, so that a concurrent change by someone else survives. */
void hugetlb_release(void)
{
	long nr;

	if (!huge_added || read_long(NR_HUGEPAGES, &nr))
		return;
	write_long(NR_HUGEPAGES, nr > huge_added ? nr - huge_added : 0);
	huge_added = 0;
}

int thp_zero_page_set(int on, char *why, size_t len)
{
	long cur;
	int ret;

	ret = read_long(THP_ZERO_PAGE, &cur);
	if (ret) {
		snprintf(why, len, "cannot read " THP_ZERO_PAGE ": %s",
			 strerror(-ret));
		return -1;
	}
	if (cur == on)
		return 0;
	if (cfg.no_tune) {
		snprintf(why, len, "use_zero_page is %ld, and --no-tune", cur);
		return -1;
	}
	if (thp_zero_saved < 0)
		thp_zero_saved = cur;
	ret = write_long(THP_ZERO_PAGE, on);
	if (ret) {
		snprintf(why, len, "cannot write " THP_ZERO_PAGE ": %s",
			 strerror(-ret));
		return -1;
	}
	return 0;
}

void thp_zero_page_restore(void)
{
	if (thp_zero_saved < 0)
		return;
	write_long(THP_ZERO_PAGE, thp_zero_saved);
	thp_zero_saved = -1;
}

void tune_restore_all(void)
{
	evict_restore();
	hugetlb_release();
	thp_zero_page_restore();
}

/* ------------------------------------------------------------------ */
/* Progress, on stderr once a run has taken a couple of seconds       */
/* ------------------------------------------------------------------ */

void progress_start(struct progress *pg, unsigned int total)
{
	memset(pg, 0, sizeof(*pg));
	pg->t0 = now_ns();
	pg->total = total ? total : 1;
}

static void fmt_secs(char *buf, size_t len, double s)
{
	long t = (long)(s + 0.5);

	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

void progress_step(struct progress *pg, const char *fmt, ...)
{
	uint64_t el = now_ns() - pg->t0;
	char msg[160], eta[32], line[512];
	struct winsize ws;
	unsigned int width = 80, fill, i;
	va_list ap;
	int n;

	pg->done++;
	if (el < PROGRESS_AFTER_NS && !pg->shown)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fmt_secs(eta, sizeof(eta), (double)el / 1e9 / pg->done *
		 (pg->total - pg->done));
	pg->shown = true;
	if (!cfg.tty) {
		fprintf(stderr, "%s: [%u/%u] %s, ETA %s\n", prog, pg->done,
			pg->total, msg, eta);
		return;
	}
	if (!ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) && ws.ws_col > 20)
		width = ws.ws_col;
	if (width >= sizeof(line))
		width = sizeof(line) - 1;
	fill = 20 * pg->done / pg->total;
	n = snprintf(line, sizeof(line), "[");
	for (i = 0; i < 20; i++)
		line[n++] = i < fill ? '#' : '.';
	snprintf(line + n, sizeof(line) - (size_t)n, "] %3u%% ETA %s  %s",
		 100 * pg->done / pg->total, eta, msg);
	line[width - 1] = '\0';
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	pg->bar = true;
}

void progress_end(struct progress *pg)
{
	if (pg->bar)
		fputs("\r\033[K", stderr);
	pg->bar = false;
}

/* ------------------------------------------------------------------ */
/* Rows                                                               */
/* ------------------------------------------------------------------ */

enum field_type { F_STR, F_U64, F_NS, F_RATIO };

struct field {
	const char	*key;
	enum field_type	type;
	size_t		off;
};

#define FIELD(k, t)	{ #k, t, offsetof(struct row, k) }

/* The DESIGN.md keys of --json and the first columns of --csv, in order. */
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

void row_init(struct row *r, const char *workload, const char *strategy,
	      uint64_t size, uint64_t pages, uint64_t reps)
{
	memset(r, 0, sizeof(*r));
	r->experiment = cfg.experiment;
	r->workload = workload;
	r->strategy = strategy;
	r->size_bytes = size;
	r->pages = pages;
	r->reps = reps;
	r->ns_per_page = NAN;
	r->ratio_vs_native = NAN;
	r->pin = cfg.pin->name;
}

static struct val *row_extra(struct row *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nx; i++)
		if (!strcmp(r->x[i].key, key))
			return &r->x[i].v;
	if (r->nx == ROW_MAX_EXTRA) {
		fprintf(stderr, "%s: internal: too many keys in a row\n",
			prog);
		exit(1);
	}
	r->x[r->nx].key = key;
	return &r->x[r->nx++].v;
}

void row_str(struct row *r, const char *key, const char *s)
{
	*row_extra(r, key) = (struct val){ .t = s ? V_STR : V_NULL, .s = s };
}

void row_u64(struct row *r, const char *key, uint64_t u)
{
	*row_extra(r, key) = (struct val){ .t = V_U64, .u = u };
}

void row_dbl(struct row *r, const char *key, double d)
{
	*row_extra(r, key) = (struct val){ .t = isfinite(d) ? V_DBL : V_NULL,
					   .d = d };
}

struct val row_get(const struct row *r, const char *key)
{
	struct val v = { .t = V_NULL };
	const void *p;
	size_t i;

	/*
	 * "faults", for tables: every fault the kernel counted.  Linux 6.1
	 * files a fault userfaultfd resolved as major (it was retried), 6.18
	 * as minor; the rows keep the two apart.
	 */
	if (!strcmp(key, "faults")) {
		v.t = V_U64;
		v.u = r->minflt + r->majflt;
		return v;
	}

	for (i = 0; i < ARRAY_SIZE(row_fields); i++) {
		if (strcmp(row_fields[i].key, key))
			continue;
		p = (const char *)r + row_fields[i].off;
		switch (row_fields[i].type) {
		case F_STR:
			v.s = *(const char *const *)p;
			v.t = v.s ? V_STR : V_NULL;
			break;
		case F_U64:
			v.t = V_U64;
			v.u = *(const uint64_t *)p;
			break;
		case F_NS:
		case F_RATIO:
			v.d = *(const double *)p;
			v.t = isfinite(v.d) ? V_DBL : V_NULL;
			break;
		}
		return v;
	}
	for (i = 0; i < r->nx; i++)
		if (!strcmp(r->x[i].key, key))
			return r->x[i].v;
	return v;
}

struct row *rows_add(struct rows *rows)
{
	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? 2 * rows->cap : 64;
		struct row *v = realloc(rows->v, cap * sizeof(*v));

		if (!v)
			die_sys("realloc");
		rows->v = v;
		rows->cap = cap;
	}
	memset(&rows->v[rows->n], 0, sizeof(rows->v[0]));
	return &rows->v[rows->n++];
}

void rows_free(struct rows *rows)
{
	free(rows->v);
	memset(rows, 0, sizeof(*rows));
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

static void val_print(FILE *f, const struct row *r, const char *key,
		      bool json)
{
	struct val v = row_get(r, key);
	size_t i;

	for (i = 0; i < ARRAY_SIZE(row_fields); i++)
		if (!strcmp(row_fields[i].key, key) && v.t == V_DBL) {
			fprintf(f, row_fields[i].type == F_NS ? "%.1f" :
				"%.3f", v.d);
			return;
		}
	switch (v.t) {
	case V_NULL:
		if (json)
			fputs("null", f);
		break;
	case V_STR:
		if (json)
			json_str(f, v.s);
		else
			csv_str(f, v.s);
		break;
	case V_U64:
		fprintf(f, "%" PRIu64, v.u);
		break;
	case V_DBL:
		if (fabs(v.d) >= 1e5)
			fprintf(f, "%.1f", v.d);
		else
			fprintf(f, "%.6g", v.d);
		break;
	}
}

static void print_json(FILE *f, const struct row *r)
{
	size_t k;

	fputc('{', f);
	for (k = 0; k < ARRAY_SIZE(row_fields); k++) {
		fprintf(f, "%s\"%s\":", k ? "," : "", row_fields[k].key);
		val_print(f, r, row_fields[k].key, true);
	}
	for (k = 0; k < r->nx; k++) {
		fprintf(f, ",\"%s\":", r->x[k].key);
		val_print(f, r, r->x[k].key, true);
	}
	fputs("}\n", f);
}

/* The CSV columns: the DESIGN keys, then the extras of the first row. */
static const char *csv_keys[ARRAY_SIZE(row_fields) + ROW_MAX_EXTRA];
static size_t ncsv_keys;

static void print_csv(FILE *f, const struct row *r)
{
	size_t k;

	if (!ncsv_keys) {
		for (k = 0; k < ARRAY_SIZE(row_fields); k++)
			csv_keys[ncsv_keys++] = row_fields[k].key;
		for (k = 0; k < r->nx; k++)
			csv_keys[ncsv_keys++] = r->x[k].key;
		for (k = 0; k < ncsv_keys; k++)
			fprintf(f, "%s%s", k ? "," : "", csv_keys[k]);
		fputc('\n', f);
	}
	for (k = 0; k < ncsv_keys; k++) {
		if (k)
			fputc(',', f);
		val_print(f, r, csv_keys[k], false);
	}
	fputc('\n', f);
}

static void cell(char *buf, size_t len, const struct row *r,
		 const struct col *c)
{
	struct val v = row_get(r, c->key);
	double d;

	switch (v.t) {
	case V_NULL:
		snprintf(buf, len, "-");
		return;
	case V_STR:
		snprintf(buf, len, "%s", v.s);
		return;
	case V_U64:
		d = (double)v.u;
		break;
	default:
		d = v.d;
		break;
	}
	if (c->scale)
		d *= c->scale;
	if (c->flags & COL_PER_PAGE)
		d = r->pages ? d / (double)r->pages : NAN;
	if (c->flags & COL_PCT)
		d *= 100;
	if (!isfinite(d))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", c->prec, d);
}

static void print_table(FILE *f, const struct rows *rows, size_t first,
			const char *title, const struct col *cols, size_t nc)
{
	char buf[128];
	int *w = xcalloc(nc, sizeof(*w));
	size_t i, k;

	for (k = 0; k < nc; k++) {
		w[k] = (int)strlen(cols[k].head);
		for (i = first; i < rows->n; i++) {
			cell(buf, sizeof(buf), &rows->v[i], &cols[k]);
			if ((int)strlen(buf) > w[k])
				w[k] = (int)strlen(buf);
		}
	}
	if (title)
		fprintf(f, "# %s\n", title);
	for (k = 0; k < nc; k++)
		fprintf(f, "%s%*s", k ? "  " : "",
			cols[k].flags & COL_LEFT && k + 1 < nc ? -w[k] :
			(int)(cols[k].flags & COL_LEFT ? strlen(cols[k].head) :
			      (size_t)w[k]), cols[k].head);
	fputc('\n', f);
	for (i = first; i < rows->n; i++) {
		for (k = 0; k < nc; k++) {
			cell(buf, sizeof(buf), &rows->v[i], &cols[k]);
			/* no trailing blanks after a left-aligned last one */
			fprintf(f, "%s%*s", k ? "  " : "",
				cols[k].flags & COL_LEFT && k + 1 < nc ?
				-w[k] : (int)(cols[k].flags & COL_LEFT ?
					      strlen(buf) : (size_t)w[k]),
				buf);
		}
		fputc('\n', f);
	}
	free(w);
	fflush(f);
}

static struct rows emitted;

void bench_table(const struct rows *rows, size_t first, const char *title,
		 const struct col *cols, size_t ncols)
{
	print_table(stdout, rows, first, title, cols, ncols);
}

const struct rows *bench_emitted(void)
{
	return &emitted;
}

void bench_emit(const struct rows *rows, size_t first, const char *title,
		const struct col *cols, size_t ncols)
{
	size_t i;

	for (i = first; i < rows->n; i++) {
		*rows_add(&emitted) = rows->v[i];
		if (cfg.json)
			print_json(stdout, &rows->v[i]);
		if (cfg.csv)
			print_csv(cfg.csv, &rows->v[i]);
	}
	if (cfg.json)
		fflush(stdout);
	else if (cols)
		print_table(stdout, rows, first, title, cols, ncols);
}

const char *bench_what(uint64_t size, unsigned int reps)
{
	char sz[32];

	fmt_size(sz, sizeof(sz), size);
	return bench_fmt("%s (%" PRIu64 " pages of %zu KiB), median of %u "
			 "rep%s", sz, size / page_size, page_size / 1024,
			 reps, reps == 1 ? "" : "s");
}

const char *bench_pin_desc(void)
{
	return bench_fmt("pin=%s (%s)", cfg.pin->name, cfg.pin->desc);
}

/* ------------------------------------------------------------------ */
/* gnuplot                                                            */
/* ------------------------------------------------------------------ */

static bool in_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	const char *p, *e;

	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		snprintf(out, len, "%.*s/%s", (int)(e - p), p, name);
		if (e > p && !access(out, X_OK))
			return true;
	}
	return false;
}

bool gnuplot_found(void)
{
	char path[4096];

	if (in_path("gnuplot", path, sizeof(path)))
		return true;
	fprintf(stderr, "%s: gnuplot not found (apt-get install gnuplot-nox):"
		" no plot%s\n", prog, cfg.csv ? "; the CSV has the numbers" :
		"");
	return false;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f) ? -1 : 0;
}

int gnuplot_run(const char *script, const char *data)
{
	char dir[] = "/tmp/uffd-bench.XXXXXX", gp[4096];
	char dpath[64], spath[64], *setv, *out;
	char *argv[6];
	int pid, status, ret = -1;
	size_t i, n;

	if (!in_path("gnuplot", gp, sizeof(gp)))
		return -1;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "%s: mkdtemp: %s\n", prog, strerror(errno));
		return -1;
	}
	snprintf(dpath, sizeof(dpath), "%s/data", dir);
	snprintf(spath, sizeof(spath), "%s/plot.gp", dir);
	/* gnuplot single quotes: '' is a quote */
	n = strlen(cfg.plot_path);
	out = xcalloc(2 * n + 1, 1);
	for (i = 0, n = 0; cfg.plot_path[i]; i++) {
		if (cfg.plot_path[i] == '\'')
			out[n++] = '\'';
		out[n++] = cfg.plot_path[i];
	}
	setv = xcalloc(strlen(out) + 128, 1);
	sprintf(setv, "data='%s'; out='%s'", dpath, out);
	if (write_file(dpath, data) || write_file(spath, script)) {
		fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
		goto out;
	}
	argv[0] = gp;
	argv[1] = (char *)"-e";
	argv[2] = setv;
	argv[3] = spath;
	argv[4] = NULL;
	if (spawn(argv, -1, &pid)) {
		fprintf(stderr, "%s: cannot run gnuplot\n", prog);
		goto out;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "%s: gnuplot failed: no plot\n", prog);
		goto out;
	}
	fprintf(stderr, "%s: plot written to %s\n", prog, cfg.plot_path);
	ret = 0;
out:
	unlink(dpath);
	unlink(spath);
	rmdir(dir);
	free(setv);
	free(out);
	return ret;
}

static void gp_quote(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 3 < len; s++) {
		if (*s == '\'')
			buf[n++] = '\'';
		buf[n++] = *s;
	}
	buf[n] = '\0';
}

void gp_line_plot(FILE *f, const char *title, const char *xlabel,
		  const char *ylabel)
{
	char q[256];

	gp_quote(q, sizeof(q), title);
	fprintf(f,
		"set terminal pngcairo size 1100,650 noenhanced\n"
		"set output out\n"
		"set datafile separator \"\\t\"\n"
		"set datafile missing \"?\"\n"
		"set logscale x 2\n"
		"set grid\n"
		"set key outside right top\n"
		"set title '%s'\n"
		"set xlabel '%s'\n"
		"set ylabel '%s'\n", q, xlabel, ylabel);
}

FILE *xmemstream(char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);

	if (!f)
		die_sys("open_memstream");
	return f;
}

/* Clusters are the workloads, bars the strategies, bars' height @key. */
void plot_clusters(const struct rows *rows, const char *ylabel,
		   const char *key)
{
	const char **grp = xcalloc(rows->n, sizeof(*grp));
	const char **ser = xcalloc(rows->n, sizeof(*ser));
	size_t ng = 0, ns = 0, i, g, s, len;
	char *data, *script, q[256];
	FILE *f;

	for (i = 0; i < rows->n; i++) {
		for (g = 0; g < ng && strcmp(grp[g], rows->v[i].workload); g++)
			;
		if (g == ng)
			grp[ng++] = rows->v[i].workload;
		for (s = 0; s < ns && strcmp(ser[s], rows->v[i].strategy); s++)
			;
		if (s == ns)
			ser[ns++] = rows->v[i].strategy;
	}
	if (!ng)
		goto out;
	f = open_memstream(&data, &len);
	if (!f)
		die_sys("open_memstream");
	fputs("workload", f);
	for (s = 0; s < ns; s++)
		fprintf(f, "\t\"%s\"", ser[s]);
	fputc('\n', f);
	for (g = 0; g < ng; g++) {
		fprintf(f, "\"%s\"", grp[g]);
		for (s = 0; s < ns; s++) {
			struct val v = { .t = V_NULL };

			for (i = 0; i < rows->n; i++)
				if (!strcmp(rows->v[i].workload, grp[g]) &&
				    !strcmp(rows->v[i].strategy, ser[s]))
					v = row_get(&rows->v[i], key);
			if (v.t == V_DBL)
				fprintf(f, "\t%.3f", v.d);
			else if (v.t == V_U64)
				fprintf(f, "\t%" PRIu64, v.u);
			else
				fputs("\t?", f);
		}
		fputc('\n', f);
	}
	fclose(f);
	gp_quote(q, sizeof(q), bench_fmt("%s: %s, pin=%s", cfg.experiment,
					 bench_what(cfg.size, cfg.reps),
					 cfg.pin->name));
	f = open_memstream(&script, &len);
	if (!f)
		die_sys("open_memstream");
	fprintf(f,
		"set terminal pngcairo size 1200,640 noenhanced\n"
		"set output out\n"
		"set datafile separator \"\\t\"\n"
		"set datafile missing \"?\"\n"
		"set style data histograms\n"
		"set style histogram clustered gap 1\n"
		"set style fill solid 0.85 border -1\n"
		"set logscale y\n"
		"set grid ytics\n"
		"set key outside right top\n"
		"set title '%s'\n"
		"set ylabel '%s (log scale)'\n"
		"plot for [i=2:%zu] data using i:xtic(1) "
		"title columnheader(i)\n",
		q, ylabel, ns + 1);
	fclose(f);
	if (gnuplot_found())
		gnuplot_run(script, data);
	free(data);
	free(script);
out:
	free(grp);
	free(ser);
}

/* ------------------------------------------------------------------ */
/* Command line                                                       */
/* ------------------------------------------------------------------ */

/* 268435456 -> "256M" */
static void short_size(char *buf, size_t len, uint64_t b)
{
	if (b >= GIB && !(b % GIB))
		snprintf(buf, len, "%" PRIu64 "G", (uint64_t)(b / GIB));
	else if (b >= MIB && !(b % MIB))
		snprintf(buf, len, "%" PRIu64 "M", (uint64_t)(b / MIB));
	else
		snprintf(buf, len, "%" PRIu64 "K", (uint64_t)(b / KIB));
}

static void usage(FILE *f)
{
	char a[32], b[32], def[80];
	size_t i;

	fprintf(f,
"Usage: %s [EXPERIMENT] [OPTIONS]\n"
"Kernel paging vs libuffd pagers, interleaved. Experiments (size x reps; -q):\n",
		prog);
	for (i = 0; i < ARRAY_SIZE(experiments); i++) {
		const struct experiment *e = &experiments[i];

		if (e->run == experiment_app || e->run == experiment_evict)
			continue;
		short_size(a, sizeof(a), e->size);
		short_size(b, sizeof(b), e->quick_size);
		if (e->size)
			snprintf(def, sizeof(def), "%sx%u; %sx%u", a, e->reps,
				 b, e->quick_reps);
		else
			snprintf(def, sizeof(def), "3 sizes x%u; 2x%u",
				 e->reps, e->quick_reps);
		fprintf(f, "  %-17s %-42s %s\n", e->name, e->desc, def);
	}
	/* one line for both: the help fits a 24-line screen */
	fprintf(f, "  %-24s %-35s %s\n", "app restore evict stress",
		"COMMAND; snapshots; swap; chaos", "EXP --help");
	fprintf(f,
"Options:\n"
"  -s, --size SIZE      bytes per run, K/M/G suffix\n"
"  -r, --reps N         repetitions (populate-table: iterations)\n"
"  -p, --pager SPEC     pager to measure, repeatable (default: each built-in)\n"
"  -w, --workload NAME  seq-{read,write,rw}, rand-write, "
"{partial,full}-write\n"
"      --pin WHERE      handler vs app CPU: same (default), other, none\n"
"  -q, --quick          small sizes, few reps: a first look, or a test\n"
"  -j, --json  -c, --csv FILE  JSON lines instead of tables; also CSV to FILE\n"
"      --plot FILE      draw a PNG with gnuplot (not populate-table, fault-trace)\n"
"      --no-tune        never change vm.nr_hugepages or THP use_zero_page\n"
"  -h, --help           this text; docs/experiments.md explains the rest\n"
"Exit: 0 done, 1 failed, 2 bad usage, 130 Ctrl-C (rows so far printed)\n");
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

/*
 * --pagers LIST: specs separated by ';' or blanks, or by commas, where a
 * comma followed by key=value continues the spec before it (no pager's
 * name has a '='): "zero,prealloc:batch=16,read=fill,prezero" is three.
 */
static void pagers_add_list(const char *list)
{
	char *copy = (char *)bench_strdup(list), *p = copy, *start = copy;

	for (;; p++) {
		bool end = !*p || strchr("; ", *p);

		if (*p == ',') {
			size_t n = strcspn(p + 1, ",; ");
			const char *eq = memchr(p + 1, '=', n);

			end = !eq || memchr(p + 1, ':', n);
		}
		if (end) {
			char c = *p;

			*p = '\0';
			if (*start)
				cfg.pagers[cfg.npagers++] = start;
			if (!c)
				break;
			start = p + 1;
		}
	}
	if (!cfg.npagers)
		usage_error("empty --pagers list");
}

static const struct experiment *parse_args(int argc, char **argv)
{
	enum { OPT_PIN = 256, OPT_PLOT, OPT_NO_TUNE, OPT_PAGERS, OPT_SWEEP,
	       OPT_DELIVERY, OPT_STDOUT, OPT_WS, OPT_PATTERN, OPT_MIX,
	       OPT_PASSES, OPT_SWAP_DIR, OPT_ROWS };
	static const struct option longopts[] = {
		{ "size",     required_argument, NULL, 's' },
		{ "reps",     required_argument, NULL, 'r' },
		{ "pager",    required_argument, NULL, 'p' },
		{ "workload", required_argument, NULL, 'w' },
		{ "pin",      required_argument, NULL, OPT_PIN },
		{ "quick",    no_argument,       NULL, 'q' },
		{ "json",     no_argument,       NULL, 'j' },
		{ "csv",      required_argument, NULL, 'c' },
		{ "plot",     required_argument, NULL, OPT_PLOT },
		{ "no-tune",  no_argument,       NULL, OPT_NO_TUNE },
		{ "pagers",   required_argument, NULL, OPT_PAGERS },
		{ "sweep",    required_argument, NULL, OPT_SWEEP },
		{ "delivery", required_argument, NULL, OPT_DELIVERY },
		{ "stdout",   required_argument, NULL, OPT_STDOUT },
		{ "budget",   required_argument, NULL, 'B' },
		{ "ws",       required_argument, NULL, OPT_WS },
		{ "pattern",  required_argument, NULL, OPT_PATTERN },
		{ "mix",      required_argument, NULL, OPT_MIX },
		{ "passes",   required_argument, NULL, OPT_PASSES },
		{ "swap-dir", required_argument, NULL, OPT_SWAP_DIR },
		{ "rows",     required_argument, NULL, OPT_ROWS },
		{ "help",     no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct experiment *e = NULL;
	uint64_t size = 0, max_size;
	const char *size_arg = NULL;
	cpu_set_t allowed;
	bool help = false, have_pin = false, have_evict = false;
	size_t i, npagers_max = (size_t)argc;
	unsigned long reps;
	char *end;
	int c, ret;

	/*
	 * app's COMMAND: everything after the first "--", which getopt
	 * must not see (its own options would be taken for ours).
	 */
	for (c = 1; c < argc; c++)
		if (!strcmp(argv[c], "--")) {
			cfg.cmd = argv + c + 1;
			argv[c] = NULL;
			argc = c;
			break;
		}
	/* a --pagers LIST has at most one spec per separator, plus one */
	for (c = 1; c < argc; c++)
		for (end = argv[c]; *end; end++)
			npagers_max += !!strchr(",; ", *end);
	cfg.pagers = xcalloc(npagers_max, sizeof(*cfg.pagers));
	cfg.workloads = xcalloc((size_t)argc, sizeof(*cfg.workloads));
	cfg.pin = &placements[0];
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:r:p:w:qjc:hB:", longopts,
				NULL)) != -1) {
		switch (c) {
		case 's':
			if (!parse_size(optarg, &size))
				usage_error("bad --size '%s'", optarg);
			size_arg = optarg;
			cfg.have_size = true;
			break;
		case 'r':
			errno = 0;
			reps = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || !reps ||
			    reps > MAX_REPS || *optarg == '-')
				usage_error("bad --reps '%s' (1..%d)", optarg,
					    MAX_REPS);
			cfg.reps = (unsigned int)reps;
			cfg.have_reps = true;
			break;
		case 'p':
			cfg.pagers[cfg.npagers++] = optarg;
			break;
		case 'w':
			cfg.workloads[cfg.nworkloads] = workload_find(optarg);
			if (!cfg.workloads[cfg.nworkloads++])
				usage_error("unknown workload '%s'", optarg);
			break;
		case OPT_PIN:
			for (i = 0; i < ARRAY_SIZE(placements); i++)
				if (!strcmp(optarg, placements[i].name))
					break;
			if (i == ARRAY_SIZE(placements))
				usage_error("bad --pin '%s' (same, other or "
					    "none)", optarg);
			cfg.pin = &placements[i];
			have_pin = true;
			break;
		case 'q':
			cfg.quick = true;
			break;
		case 'j':
			cfg.json = true;
			break;
		case 'c':
			cfg.csv_path = optarg;
			break;
		case OPT_PLOT:
			cfg.plot_path = optarg;
			break;
		case OPT_NO_TUNE:
			cfg.no_tune = true;
			break;
		case OPT_PAGERS:
			pagers_add_list(optarg);
			break;
		case OPT_SWEEP:
			cfg.sweep = optarg;
			break;
		case OPT_DELIVERY:
			cfg.delivery = optarg;
			break;
		case OPT_STDOUT:
			cfg.cmd_stdout = optarg;
			break;
		case 'B':
			if (!parse_size(optarg, &cfg.evict.budget))
				usage_error("bad --budget '%s'", optarg);
			have_evict = true;
			break;
		case OPT_WS:
			cfg.evict.ws = optarg;
			have_evict = true;
			break;
		case OPT_PATTERN:
			cfg.evict.pattern = optarg;
			have_evict = true;
			break;
		case OPT_MIX:
			cfg.evict.mix = optarg;
			have_evict = true;
			break;
		case OPT_PASSES:
			cfg.evict.passes = optarg;
			have_evict = true;
			break;
		case OPT_ROWS:
			cfg.evict.rows = optarg;
			have_evict = true;
			break;
		case OPT_SWAP_DIR:
			cfg.evict.swap_dir = optarg;
			have_evict = true;
			break;
		case 'h':
			help = true;
			break;
		case ':':
			usage_error("option '%s' needs an argument",
				    argv[optind - 1]);
		default:
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}

	cfg.experiment = experiments[0].name;
	if (optind < argc)
		cfg.experiment = argv[optind++];
	for (i = 0; i < ARRAY_SIZE(experiments); i++)
		if (!strcmp(cfg.experiment, experiments[i].name))
			e = &experiments[i];
	if (help) {
		if (e && e->run == experiment_app)
			app_usage(stdout);
		else if (e && e->run == experiment_evict)
			evict_usage(stdout);
		else
			usage(stdout);
		exit(0);
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'%s", argv[optind],
			    e && e->run == experiment_app ? ": give the "
			    "command after --" : "");
	if (!e)
		usage_error("unknown experiment '%s'", cfg.experiment);
	if (e->run == experiment_app) {
		/* the command runs where the scheduler puts it */
		if (have_pin)
			usage_error("app takes no --pin: the command and its "
				    "handler run unpinned");
		cfg.pin = &placements[ARRAY_SIZE(placements) - 1];
		app_check_args();
	} else if (cfg.cmd || cfg.sweep || cfg.delivery || cfg.cmd_stdout) {
		usage_error("%s runs no command (-- COMMAND, --sweep, "
			    "--delivery and --stdout are for app)", e->name);
	}
	if (have_evict && e->run != experiment_evict)
		usage_error("%s takes no --budget, --ws, --pattern, --mix, "
			    "--passes, --swap-dir or --rows (evict does)",
			    e->name);
	if (cfg.plot_path && !e->plot)
		usage_error("%s draws no plot (--plot)", e->name);
	if (cfg.plot_path && !*cfg.plot_path)
		usage_error("empty --plot file name");
	if (cfg.csv_path && !*cfg.csv_path)
		usage_error("empty --csv file name");

	/* what an mmap of the whole size could plausibly get */
	max_size = (uint64_t)sysconf(_SC_PHYS_PAGES) * page_size;
	if (cfg.have_size && size > max_size)
		usage_error("--size %s is more than this machine's memory",
			    size_arg);
	if (!cfg.have_size)
		size = cfg.quick ? e->quick_size : e->size;
	if (!cfg.have_reps)
		cfg.reps = cfg.quick ? e->quick_reps : e->reps;
	cfg.size = (size_t)((size + page_size - 1) / page_size * page_size);
	cfg.pages = cfg.size / page_size;
	if (e->run == experiment_evict)
		evict_check_args();

	for (i = 0; i < cfg.npagers; i++) {
		ret = uffd_pager_spec_check(cfg.pagers[i], 0);
		if (ret == -EINVAL)
			usage_error("bad --pager '%s': %s", cfg.pagers[i],
				    uffd_last_error());
		if (ret)
			die_uffd("uffd_pager_spec_check", ret);
	}

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		die_sys("sched_getaffinity");
	check_cpu(cfg.pin->app_cpu, &allowed);
	check_cpu(cfg.pin->handler_cpu, &allowed);

	if (cfg.csv_path) {
		cfg.csv = fopen(cfg.csv_path, "we");
		if (!cfg.csv)
			die_sys(cfg.csv_path);
	}
	cfg.tty = isatty(STDERR_FILENO);
	return e;
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

/* The machine's facts, probed once for the whole run. */
static const struct uffd_probe *facts(void)
{
	static struct uffd_probe p;

	if (!p.size) {
		p.size = sizeof(p);
		uffd_probe(&p);	/* a failure is in the facts too */
	}
	return &p;
}

int native_zero_page(void)
{
	return facts()->native_zero_page;
}

/*
 * The machine facts that change what the numbers mean (the native zero
 * page, THP, huge pages, missing userfaultfd features): the first line of
 * every report, with --json an object whose "experiment" is "probe".  A
 * probe that fails still says why in its facts.
 */
static void print_facts(bool json)
{
	char line[4096];

	uffd_probe_format(facts(), json ? LIBUFFD_FMT_JSON :
			  LIBUFFD_FMT_TEXT, line, sizeof(line));
	if (json)	/* one object: the facts' own keys after ours */
		printf("{\"experiment\":\"probe\",%s\n", line + 1);
	else
		printf("# machine: %s\n", line);
	/* before any row a child process or a signal handler writes */
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const struct experiment *e;
	int status = 0;

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	/* restore has options of its own (see uffd-bench restore --help) */
	if (argc > 1 && !strcmp(argv[1], "restore"))
		return bench_restore(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "stress"))
		return stress_main(argc - 1, argv + 1);
	e = parse_args(argc, argv);
	print_facts(cfg.json);
	signals_setup();
	atexit(tune_restore_all);
	pin_self(cfg.pin->app_cpu);

	e->run();
	tune_restore_all();

	if (bench_stopped()) {
		fprintf(stderr, "%s: interrupted: the rows above are the runs "
			"that finished\n", prog);
		status = 130;
	}
	if (cfg.csv && fclose(cfg.csv))
		die_sys(cfg.csv_path);
	if (fflush(stdout))
		die_sys("stdout");
	rows_free(&emitted);
	strings_free();
	free(cfg.pagers);
	free(cfg.workloads);
	return status;
}
