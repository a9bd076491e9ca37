/* SPDX-License-Identifier: MIT */
/*
 * app: an unmodified program, run natively and under each pager through
 * uffd-run, interleaved over repetitions, with the whole process's cost
 * (wall time, user and sys CPU, faults, peak Rss) and the pager's own
 * counters.  With --sweep batch=LIST, prealloc at each batch, read=zero
 * and read=fill: seed 004's Figure 2 for a real program.
 *
 * Native runs go through "uffd-run --native" as well, so that both sides
 * pay the same launcher (a fork, an exec, a wait, the stats file) and the
 * ratio is the paging alone.  The handler thread runs inside the command's
 * process, so wait4()'s rusage counts it: the CPU columns are everything
 * the run cost, the handler included.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"

#define SWEEP_MAX	32
#define STATS_MAX	(64 * 1024)	/* the stats line is ~1 KiB */

/* The default pager list: one of each, and seed 000's fix (read=fill). */
static const char *const default_pagers[] = {
	"zero", "prealloc:batch=16", "prealloc:batch=16,read=fill",
	"prezero", "hugezero",
};

static const char *const reads[] = { "zero", "fill" };
#define NREADS	ARRAY_SIZE(reads)

static unsigned int sweep[SWEEP_MAX];
static size_t nsweep;

void app_usage(FILE *f)
{
	fprintf(f,
"Usage: %s app [OPTIONS] -- COMMAND [ARGS...]\n"
"Runs COMMAND natively and under each pager with uffd-run, interleaved over\n"
"repetitions (the first round is a warm-up, not counted), and reports medians\n"
"of wall time, user and sys CPU (the handler's included), minor faults, uffd\n"
"faults and peak Rss, with wall and CPU ratios against native.\n"
"Options:\n"
"  -r, --reps N          counted repetitions (default 5; -q: 2)\n"
"      --pagers LIST     pager specs, apart by ';', blanks or commas (a comma\n"
"                        before key=value continues the spec); default: zero,\n"
"                        prealloc:batch=16[,read=fill], prezero, hugezero\n"
"  -p, --pager SPEC      a pager to measure, repeatable\n"
"      --sweep batch=L   prealloc at each batch of L (1,4,16,64,256,512...),\n"
"                        read=zero and read=fill, and native: the best batch\n"
"      --delivery MODE   thread (default) or sigbus, passed to uffd-run\n"
"      --stdout FILE     append COMMAND's stdout of every run to FILE\n"
"                        (default: discarded; its stderr is passed through)\n"
"  -j, --json            one JSON object per row on stdout instead of tables\n"
"  -c, --csv FILE        also write the rows to FILE as CSV\n"
"      --plot FILE       with --sweep: PNG of wall time against batch\n"
"uffd-run is looked for beside uffd-bench; $LIBUFFD_UFFD_RUN overrides.\n"
"Exit: 0 done, 1 a run failed, 2 bad usage, 130 Ctrl-C (rows so far printed)\n",
		prog);
}

/* "batch=1,4,16" -> sweep[] */
static void parse_sweep(const char *arg)
{
	const char *p = arg + 6;
	unsigned long v;
	char *end;
	int ret;

	if (strncmp(arg, "batch=", 6))
		usage_error("bad --sweep '%s': only batch=LIST", arg);
	for (;;) {
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || end == p || *p == '-' || !v || v > UINT_MAX ||
		    (*end && *end != ','))
			usage_error("bad --sweep '%s': want batch=N,N,...",
				    arg);
		if (nsweep == SWEEP_MAX)
			usage_error("--sweep: at most %d batches", SWEEP_MAX);
		sweep[nsweep++] = (unsigned int)v;
		ret = uffd_pager_spec_check(bench_fmt("prealloc:batch=%lu",
						      v), 0);
		if (ret == -EINVAL)
			usage_error("--sweep batch=%lu: %s", v,
				    uffd_last_error());
		if (ret)
			die_uffd("uffd_pager_spec_check", ret);
		if (!*end)
			break;
		p = end + 1;
	}
}

void app_check_args(void)
{
	size_t i;
	int ret;

	if (!cfg.cmd || !cfg.cmd[0])
		usage_error("app needs a command: app [OPTIONS] -- COMMAND "
			    "[ARGS...]");
	if (cfg.have_size || cfg.nworkloads)
		usage_error("app takes no --size or --workload: the command "
			    "is the workload");
	if (cfg.delivery && strcmp(cfg.delivery, "thread") &&
	    strcmp(cfg.delivery, "sigbus"))
		usage_error("bad --delivery '%s' (thread or sigbus)",
			    cfg.delivery);
	if (cfg.cmd_stdout && !*cfg.cmd_stdout)
		usage_error("empty --stdout file name");
	if (cfg.sweep) {
		if (cfg.npagers)
			usage_error("--sweep measures prealloc: no --pager or "
				    "--pagers with it");
		parse_sweep(cfg.sweep);
		/* the read= setting: the spec parser of uffd-run's library */
		for (i = 0; i < NREADS; i++) {
			ret = uffd_pager_spec_check(
				bench_fmt("prealloc:batch=%u,read=%s",
					  sweep[0], reads[i]), 0);
			if (ret == -EINVAL)
				usage_error("--sweep: prealloc takes no read=%s"
					    " here: %s", reads[i],
					    uffd_last_error());
			if (ret)
				die_uffd("uffd_pager_spec_check", ret);
		}
	} else if (cfg.plot_path) {
		usage_error("app draws a plot only with --sweep (--plot)");
	}
}

/* ------------------------------------------------------------------ */
/* Running the command                                                */
/* ------------------------------------------------------------------ */

/*
 * uffd-run: $LIBUFFD_UFFD_RUN, else beside this executable.  In the build
 * tree that is demos/.libs/lt-uffd-bench (libtool) and uffd-run's wrapper
 * is one directory up: it sets up what the real binary needs.
 */
static const char *find_uffd_run(void)
{
	const char *env = getenv("LIBUFFD_UFFD_RUN");
	const char *own, *up = NULL;
	char exe[PATH_MAX], *parent;
	bool in_libs;
	ssize_t len;

	if (env && *env) {
		if (access(env, X_OK)) {
			fprintf(stderr, "%s: LIBUFFD_UFFD_RUN=%s: %s\n", prog,
				env, strerror(errno));
			exit(1);
		}
		return env;
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len <= 0)
		die_sys("readlink /proc/self/exe");
	exe[len] = '\0';
	*strrchr(exe, '/') = '\0';	/* the directory */
	own = bench_fmt("%s/uffd-run", exe);
	parent = strrchr(exe, '/');
	if (parent)
		up = bench_fmt("%.*s/uffd-run", (int)(parent - exe), exe);
	in_libs = parent && !strcmp(parent, "/.libs");
	if (!access(in_libs ? up : own, X_OK))
		return in_libs ? up : own;
	if (up && !access(in_libs ? own : up, X_OK))
		return in_libs ? own : up;
	fprintf(stderr, "%s: uffd-run not found in %s or its parent (set "
		"LIBUFFD_UFFD_RUN)\n", prog, exe);
	exit(1);
}

/* A row of the table: "native", or uffd-run with a pager spec. */
struct app_strategy {
	const char	*name;
	const char	*spec;		/* NULL: native */
	unsigned int	batch;		/* --sweep: its batch and read= */
	const char	*read;
};

/* What one run measured: wait4()'s account of the command, and uffd-run's. */
enum {
	A_WALL,		/* ns, fork to wait4 */
	A_USER,		/* ns, the command and its children */
	A_SYS,
	A_CPU,		/* user + sys */
	A_MINFLT,
	A_MAJFLT,
	A_RSS,		/* ru_maxrss, KiB */
	A_UFFD,		/* faults_read + _write + _wp + _minor */
	A_REGIONS,
	A_BYTES,	/* bytes_paged */
	A_PROCS,	/* processes paged */
	A_HANDLER,	/* handler_cpu_ns */
	A_N
};

struct app_sample {
	bool		valid;
	double		v[A_N];
};

struct app_ctx {
	const char	*uffd_run;
	char		dir[32];	/* mkdtemp: the stats file */
	const char	*stats;
	int		out_fd;		/* COMMAND's stdout */
	size_t		ncmd;
};

static struct app_ctx app;
static struct progress app_pg;

/* A number after "key": in uffd-run's one-line JSON; false if absent. */
static bool stats_u64(const char *json, const char *key, uint64_t *out)
{
	const char *p = strstr(json, bench_fmt("\"%s\":", key));
	char *end;

	if (!p)
		return false;
	p += strlen(key) + 3;
	errno = 0;
	*out = strtoull(p, &end, 10);
	return !errno && end != p;
}

static void __attribute__((noreturn, format(printf, 2, 3)))
run_failed(const struct app_strategy *s, const char *fmt, ...)
{
	va_list ap;

	progress_end(&app_pg);
	fprintf(stderr, "%s: app: COMMAND under %s: ", prog, s->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Reads the stats uffd-run wrote for @s into @o; exits when they lack. */
static void read_stats(const struct app_ctx *c, const struct app_strategy *s,
		       struct app_sample *o)
{
	static const char *const faults[] = {
		"faults_read", "faults_write", "faults_wp", "faults_minor",
	};
	char *json = xcalloc(STATS_MAX, 1);
	uint64_t v, regions, bytes, procs = 0, handler = 0;
	size_t i, n;
	FILE *f;

	f = fopen(c->stats, "re");
	if (!f)
		run_failed(s, "uffd-run wrote no stats to %s: %s", c->stats,
			   strerror(errno));
	n = fread(json, 1, STATS_MAX - 1, f);
	fclose(f);
	json[n] = '\0';
	/* a pager run that was not paged would measure nothing */
	if (s->spec && !strstr(json, "\"paged\":true"))
		run_failed(s, "uffd-run ran it unpaged (stats: %.200s)", json);
	if (!s->spec && !strstr(json, "\"paged\":false"))
		run_failed(s, "uffd-run --native paged it (stats: %.200s)",
			   json);
	for (i = 0; i < ARRAY_SIZE(faults); i++) {
		if (!stats_u64(json, faults[i], &v))
			run_failed(s, "no %s in uffd-run's stats: %.200s",
				   faults[i], json);
		o->v[A_UFFD] += (double)v;
	}
	if (!stats_u64(json, "regions", &regions) ||
	    !stats_u64(json, "bytes_paged", &bytes))
		run_failed(s, "no regions or bytes_paged in uffd-run's stats:"
			   " %.200s", json);
	/* informative only: absent is 0 */
	stats_u64(json, "processes", &procs);
	stats_u64(json, "handler_cpu_ns", &handler);
	o->v[A_REGIONS] = (double)regions;
	o->v[A_BYTES] = (double)bytes;
	o->v[A_PROCS] = (double)procs;
	o->v[A_HANDLER] = (double)handler;
	free(json);
}

static double tv_ns(const struct timeval *tv)
{
	return (double)tv->tv_sec * 1e9 + (double)tv->tv_usec * 1e3;
}

/*
 * One run of the command under @s.  Returns false when Ctrl-C came during
 * it (the command had it too: the run is not a sample); exits with one
 * line naming @s when the command fails.
 */
static bool app_run_one(const struct app_ctx *c, const struct app_strategy *s,
			struct app_sample *o)
{
	char **argv = xcalloc(c->ncmd + 12, sizeof(*argv));
	struct rusage ru;
	uint64_t t0, t1;
	int pid, status, ret;
	size_t n = 0, i;

	memset(o, 0, sizeof(*o));
	argv[n++] = (char *)c->uffd_run;
	if (s->spec) {
		argv[n++] = (char *)"--pager";
		argv[n++] = (char *)s->spec;
		/* unpaged with a warning would be no measurement: refuse */
		argv[n++] = (char *)"--strict";
		if (cfg.delivery) {
			argv[n++] = (char *)"--delivery";
			argv[n++] = (char *)cfg.delivery;
		}
	} else {
		argv[n++] = (char *)"--native";
	}
	argv[n++] = (char *)"--stats-file";
	argv[n++] = (char *)c->stats;
	argv[n++] = (char *)"--";
	for (i = 0; i < c->ncmd; i++)
		argv[n++] = cfg.cmd[i];
	if (unlink(c->stats) && errno != ENOENT)
		die_sys(c->stats);

	t0 = now_ns();
	ret = spawn(argv, c->out_fd, &pid);
	if (ret) {
		errno = -ret;
		die_sys(c->uffd_run);
	}
	while (wait4(pid, &status, 0, &ru) != pid)
		if (errno != EINTR)
			die_sys("wait4");
	t1 = now_ns();
	free(argv);

	if (bench_stopped())
		return false;
	if (WIFSIGNALED(status))
		run_failed(s, "killed by signal %d (%s)", WTERMSIG(status),
			   strsignal(WTERMSIG(status)));
	if (WEXITSTATUS(status))
		run_failed(s, "exit status %d%s", WEXITSTATUS(status),
			   WEXITSTATUS(status) == 2 && s->spec ?
			   " (or uffd-run refused: see its line above)" : "");
	read_stats(c, s, o);
	o->v[A_WALL] = (double)(t1 - t0);
	o->v[A_USER] = tv_ns(&ru.ru_utime);
	o->v[A_SYS] = tv_ns(&ru.ru_stime);
	o->v[A_CPU] = o->v[A_USER] + o->v[A_SYS];
	o->v[A_MINFLT] = (double)ru.ru_minflt;
	o->v[A_MAJFLT] = (double)ru.ru_majflt;
	o->v[A_RSS] = (double)ru.ru_maxrss;
	o->valid = true;
	return true;
}

/* ------------------------------------------------------------------ */
/* The experiment                                                     */
/* ------------------------------------------------------------------ */

/* Native first, then --pager/--pagers, the defaults, or the sweep. */
static size_t app_strategies(struct app_strategy *s)
{
	size_t n = 0, i, k;

	s[n++] = (struct app_strategy){ .name = "native" };
	if (cfg.sweep) {
		for (i = 0; i < nsweep; i++)
			for (k = 0; k < NREADS; k++) {
				const char *spec = bench_fmt(
					"prealloc:batch=%u,read=%s", sweep[i],
					reads[k]);

				s[n++] = (struct app_strategy){
					.name = spec, .spec = spec,
					.batch = sweep[i], .read = reads[k] };
			}
		return n;
	}
	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers; i++)
			s[n++] = (struct app_strategy){ .name = cfg.pagers[i],
							.spec = cfg.pagers[i] };
		return n;
	}
	for (i = 0; i < ARRAY_SIZE(default_pagers); i++) {
		int ret = uffd_pager_spec_check(default_pagers[i], 0);

		if (ret) {
			note("%s: not run here (%s)", default_pagers[i],
			     uffd_last_error());
			continue;
		}
		s[n++] = (struct app_strategy){ .name = default_pagers[i],
						.spec = default_pagers[i] };
	}
	return n;
}

struct app_results {
	struct app_sample	*smp;	/* [round][strategy]; round 0 warm-up */
	unsigned int		rounds;
	size_t			ns;
};

static struct app_sample *at(const struct app_results *a, unsigned int r,
			     size_t k)
{
	return &a->smp[r * a->ns + k];
}

/*
 * Median of value @i over the counted rounds of strategy @k, or with
 * @ratio of its per-round ratio against native (strategy 0) in the same
 * round.  *@n: the rounds used.
 */
static double app_median(const struct app_results *a, size_t k, int i,
			 bool ratio, size_t *n)
{
	double *v = xcalloc(a->rounds, sizeof(*v)), m;
	unsigned int r;
	size_t cnt = 0;

	for (r = 1; r < a->rounds; r++) {
		const struct app_sample *x = at(a, r, k), *nat = at(a, r, 0);

		if (!x->valid || (ratio && (!nat->valid || !nat->v[i])))
			continue;
		v[cnt++] = ratio ? x->v[i] / nat->v[i] : x->v[i];
	}
	m = median(v, cnt);
	free(v);
	if (n)
		*n = cnt;
	return m;
}

/* "python3 -c 'b=bytearray(64<<20)'", for titles and the workload key. */
static const char *cmd_line(void)
{
	char buf[400];
	size_t n = 0, i;

	buf[0] = '\0';
	for (i = 0; cfg.cmd[i] && n + 1 < sizeof(buf); i++) {
		/* quoted when a shell would split or expand it */
		bool q = !*cfg.cmd[i] ||
			 strpbrk(cfg.cmd[i], " \t\"'$;&|<>*?(){}");

		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s%s%s",
				      i ? " " : "", q ? "'" : "", cfg.cmd[i],
				      q ? "'" : "");
	}
	if (n >= sizeof(buf))
		strcpy(buf + sizeof(buf) - 4, "...");
	return bench_strdup(buf);
}

/*
 * The memory uffd-run paged for this command: the median over every
 * counted pager run.  Every row's size_bytes and pages (native's too), so
 * that ns_per_page compares rows as wall time does.
 */
static double paged_bytes(const struct app_results *a)
{
	double *v = xcalloc(a->rounds * a->ns, sizeof(*v)), m;
	unsigned int r;
	size_t k, n = 0;

	for (r = 1; r < a->rounds; r++)
		for (k = 1; k < a->ns; k++)
			if (at(a, r, k)->valid)
				v[n++] = at(a, r, k)->v[A_BYTES];
	m = n ? median(v, n) : 0;
	free(v);
	return m;
}

/* Extras of every row: medians of a sample value, scaled. */
static const struct {
	const char	*key;
	int		i;
	double		scale;		/* 0: an integer count */
} app_extras[] = {
	{ "wall_ms", A_WALL, 1e-6 }, { "user_ms", A_USER, 1e-6 },
	{ "sys_ms", A_SYS, 1e-6 }, { "cpu_ms", A_CPU, 1e-6 },
	{ "regions", A_REGIONS, 0 }, { "bytes_paged", A_BYTES, 0 },
	{ "processes", A_PROCS, 0 },
};

/* A row per strategy with a counted sample, into @rows. */
static void app_rows(const struct app_results *a,
		     const struct app_strategy *s, const char *what,
		     struct rows *rows)
{
	uint64_t bytes = (uint64_t)paged_bytes(a);
	uint64_t pages = bytes / page_size;
	size_t k, n, x;

	for (k = 0; k < a->ns; k++) {
		struct row *r;
		double wall = app_median(a, k, A_WALL, false, &n);

#define MED(i)	((uint64_t)app_median(a, k, (i), false, NULL))
		if (!n)
			continue;
		r = rows_add(rows);
		row_init(r, what, s[k].name, bytes, pages, n);
		r->ns_per_page = pages ? wall / (double)pages : NAN;
		r->ratio_vs_native = app_median(a, k, A_WALL, true, NULL);
		r->uffd_faults = MED(A_UFFD);
		r->minflt = MED(A_MINFLT);
		r->majflt = MED(A_MAJFLT);
		r->rss_kib = MED(A_RSS);
		r->helper_cpu_ns = MED(A_HANDLER);
		for (x = 0; x < ARRAY_SIZE(app_extras); x++) {
			int i = app_extras[x].i;

			if (app_extras[x].scale)
				row_dbl(r, app_extras[x].key,
					app_median(a, k, i, false, NULL) *
					app_extras[x].scale);
			else
				row_u64(r, app_extras[x].key, MED(i));
		}
#undef MED
		row_dbl(r, "cpu_ratio_vs_native",
			app_median(a, k, A_CPU, true, NULL));
		row_str(r, "delivery", !s[k].spec ? NULL :
			cfg.delivery ? cfg.delivery : "thread");
		row_u64(r, "warmup_rounds", 1);
		if (!cfg.sweep)
			continue;
		row_str(r, "pager", s[k].spec ? "prealloc" : "native");
		if (s[k].spec)
			row_u64(r, "batch", s[k].batch);
		else
			row_str(r, "batch", NULL);
		row_str(r, "read", s[k].read);
	}
}

static const struct row *row_of(const struct rows *rows, const char *name)
{
	size_t i;

	for (i = 0; i < rows->n; i++)
		if (!strcmp(rows->v[i].strategy, name))
			return &rows->v[i];
	return NULL;
}

/* The sweep's answer: a line per batch, read=zero beside read=fill. */
static void sweep_report(const struct rows *rows,
			 const struct app_strategy *s, size_t ns)
{
	struct col cols[1 + 3 * NREADS];
	struct rows piv = { 0 };
	const struct row *best = NULL, *x;
	size_t i, k;

	cols[0] = (struct col){ "batch", "batch", 0, 0, 0 };
	for (k = 0; k < NREADS; k++) {
		cols[1 + 3 * k] = (struct col){
			bench_fmt("read=%s ms", reads[k]),
			bench_fmt("ms %s", reads[k]), 1, 0, 0 };
		cols[2 + 3 * k] = (struct col){
			"x native", bench_fmt("x %s", reads[k]), 2, 0, 0 };
		cols[3 + 3 * k] = (struct col){
			"uffd faults", bench_fmt("uffd %s", reads[k]), 0, 0,
			0 };
	}
	for (i = 0; i < nsweep; i++) {
		struct row *r = rows_add(&piv);

		row_init(r, "", "", 0, 0, 0);
		row_u64(r, "batch", sweep[i]);
		for (k = 1; k < ns; k++) {
			if (s[k].batch != sweep[i])
				continue;
			x = row_of(rows, s[k].name);
			if (!x)
				continue;
			row_dbl(r, bench_fmt("ms %s", s[k].read),
				row_get(x, "wall_ms").d);
			row_dbl(r, bench_fmt("x %s", s[k].read),
				x->ratio_vs_native);
			row_u64(r, bench_fmt("uffd %s", s[k].read),
				x->uffd_faults);
			if (!best || row_get(x, "wall_ms").d <
				     row_get(best, "wall_ms").d)
				best = x;
		}
	}
	bench_table(&piv, 0, "prealloc by batch (wall: median ms, and median "
		    "of per-rep ratios against native)", cols,
		    ARRAY_SIZE(cols));
	rows_free(&piv);
	x = row_of(rows, "native");
	if (x)
		note("native: %.1f ms wall, %.1f ms CPU",
		     row_get(x, "wall_ms").d, row_get(x, "cpu_ms").d);
	if (best)
		note("best (lowest median wall): batch=%" PRIu64 " read=%s: "
		     "%.1f ms, %.2fx native wall, %.2fx native CPU",
		     row_get(best, "batch").u, row_get(best, "read").s,
		     row_get(best, "wall_ms").d, best->ratio_vs_native,
		     row_get(best, "cpu_ratio_vs_native").d);
}

/* seed 004's Figure 2 for this command: wall / native against batch. */
static void sweep_plot(const struct rows *rows,
		       const struct app_strategy *s, size_t ns,
		       const char *what, unsigned int reps)
{
	char *data, *script;
	const struct row *x;
	size_t len, i, k, j;
	FILE *f;

	f = xmemstream(&data, &len);
	fputs("batch", f);
	for (k = 0; k < NREADS; k++)
		fprintf(f, "\tread=%s", reads[k]);
	fputc('\n', f);
	for (i = 0; i < nsweep; i++) {
		fprintf(f, "%u", sweep[i]);
		for (k = 0; k < NREADS; k++) {
			for (j = 1, x = NULL; j < ns && !x; j++)
				if (s[j].batch == sweep[i] &&
				    !strcmp(s[j].read, reads[k]))
					x = row_of(rows, s[j].name);
			if (x && isfinite(x->ratio_vs_native))
				fprintf(f, "\t%.4f", x->ratio_vs_native);
			else
				fputs("\t?", f);
		}
		fputc('\n', f);
	}
	fclose(f);

	f = xmemstream(&script, &len);
	/* the command, cut to what fits above the plot */
	gp_line_plot(f, bench_fmt("app: %.70s%s, median of %u rep%s", what,
				  strlen(what) > 70 ? "..." : "", reps,
				  reps == 1 ? "" : "s"),
		     "prealloc batch: pages filled per fault (log2)",
		     "wall time / native (median of per-rep ratios)");
	/* from 0: native's line at 1 in view, and a pager that beats it */
	fputs("set yrange [0:*]\nplot ", f);
	for (k = 0; k < NREADS; k++)
		fprintf(f, "data using 1:%zu with linespoints lw 2 title "
			"columnheader(%zu), ", k + 2, k + 2);
	fputs("1 with lines dt 2 lw 2 lc rgb 'black' title 'native'\n", f);
	fclose(f);
	if (gnuplot_found())
		gnuplot_run(script, data);
	free(data);
	free(script);
}

/* Also on exit(): a failed run leaves no temporary directory behind. */
static void app_cleanup(void)
{
	if (!app.dir[0])
		return;
	unlink(app.stats);
	rmdir(app.dir);
	app.dir[0] = '\0';
}

void experiment_app(void)
{
	static const struct col cols[] = {
		{ "strategy", "strategy", 0, 0, COL_LEFT },
		{ "wall ms", "wall_ms", 1, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "user ms", "user_ms", 1, 0, 0 },
		{ "sys ms", "sys_ms", 1, 0, 0 },
		{ "cpu ms", "cpu_ms", 1, 0, 0 },
		{ "cpu x", "cpu_ratio_vs_native", 2, 0, 0 },
		{ "minflt", "minflt", 0, 0, 0 },
		{ "uffd faults", "uffd_faults", 0, 0, 0 },
		{ "peak rss MiB", "rss_kib", 1, 1.0 / 1024, 0 },
		{ "handler ms", "helper_cpu_ns", 1, 1e-6, 0 },
		{ "MiB paged", "bytes_paged", 1, 1.0 / MIB, 0 },
	};
	struct app_strategy *s;
	struct app_results a = { 0 };
	struct rows rows = { 0 };
	const char *what = cmd_line(), *title;
	bool stopped = false;
	unsigned int r, done;
	size_t k;

	app.uffd_run = find_uffd_run();
	while (cfg.cmd[app.ncmd])
		app.ncmd++;
	strcpy(app.dir, "/tmp/uffd-bench.XXXXXX");
	if (!mkdtemp(app.dir))
		die_sys("mkdtemp");
	app.stats = bench_fmt("%s/stats.json", app.dir);
	atexit(app_cleanup);
	if (cfg.cmd_stdout)
		app.out_fd = open(cfg.cmd_stdout, O_WRONLY | O_CREAT |
				  O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	else
		app.out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (app.out_fd < 0)
		die_sys(cfg.cmd_stdout ? cfg.cmd_stdout : "/dev/null");

	s = xcalloc(1 + cfg.npagers + ARRAY_SIZE(default_pagers) +
		    NREADS * nsweep, sizeof(*s));
	a.ns = app_strategies(s);
	a.rounds = cfg.reps + 1;
	a.smp = xcalloc(a.rounds * a.ns, sizeof(*a.smp));
	progress_start(&app_pg, a.rounds * (unsigned int)a.ns);
	for (r = 0; r < a.rounds && !stopped; r++)
		for (k = 0; k < a.ns && !stopped; k++) {
			stopped = !app_run_one(&app, &s[k], at(&a, r, k));
			progress_step(&app_pg, "%s %s", r ? bench_fmt(
					      "rep %u/%u", r, cfg.reps) :
				      "warm-up", s[k].name);
		}
	progress_end(&app_pg);
	close(app.out_fd);
	app_cleanup();

	app_rows(&a, s, what, &rows);
	/* fewer than asked after a Ctrl-C: native, first, has the most */
	done = rows.n ? (unsigned int)rows.v[0].reps : 0;
	title = bench_fmt("app: %s; median of %u rep%s after a warm-up "
			  "round (not counted); uffd-run %s%s%s", what,
			  done, done == 1 ? "" : "s", app.uffd_run,
			  cfg.delivery ? ", --delivery " : "",
			  cfg.delivery ? cfg.delivery : "");
	bench_emit(&rows, 0, title, cols, ARRAY_SIZE(cols));
	if (!cfg.json && rows.n) {
		note("the first round (native and each pager once) was a "
		     "warm-up: not counted");
		note("x native, cpu x: median of per-rep ratios of wall time "
		     "and of user+sys against native in the same round");
		note("native runs through uffd-run --native: the same "
		     "launcher, no preload");
		note("user, sys, minflt, peak rss: wait4() of the whole "
		     "command (children and the handler thread included)");
		note("uffd faults: read+write+wp+minor from uffd-run's stats;"
		     " handler ms: the handler's CPU, inside cpu ms");
		if (!rows.v[0].size_bytes)
			note("nothing was paged: the command made no mapping "
			     "of uffd-run's --min-size or more");
		if (cfg.sweep)
			sweep_report(&rows, s, a.ns);
	}
	if (cfg.plot_path && rows.n)
		sweep_plot(&rows, s, a.ns, what, done);
	rows_free(&rows);
	free(a.smp);
	free(s);
}
