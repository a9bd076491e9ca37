/* SPDX-License-Identifier: MIT */
/*
 * uffd-bench internals shared by demos/uffd-bench.c (command line, output,
 * progress, signals) and the experiments in demos/bench-*.c.
 *
 * Every experiment produces struct row entries (the keys of DESIGN.md plus
 * extras of its own) and hands them to bench_emit(), which prints a table,
 * JSON lines and CSV the same way for all.  Runs go through the strategy
 * and workload tables of bench-run.c so that "native" and every pager are
 * measured by the same code.
 */
#ifndef UFFD_BENCH_H
#define UFFD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libuffd.h>

#ifndef MADV_POPULATE_READ	/* Linux 5.14; older headers lack them */
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define KIB	1024ULL
#define MIB	(1024ULL * KIB)
#define GIB	(1024ULL * MIB)
#define HUGE_2M	(2 * MIB)

/* Walks are the measured code: ASan's shadow accesses would add faults. */
#define BENCH_NOSAN	__attribute__((no_sanitize_address, noinline))

extern const char *prog;
extern size_t page_size;

/* ------------------------------------------------------------------ */
/* Configuration                                                      */
/* ------------------------------------------------------------------ */

struct placement {
	const char	*name;
	int		app_cpu;	/* -1: leave the application alone */
	int		handler_cpu;	/* uffd_ctx_opts.handler_cpu */
	const char	*desc;
};

struct workload;

struct config {
	const char		*experiment;
	size_t			size;		/* bytes, page aligned */
	size_t			pages;
	unsigned int		reps;
	bool			have_size;	/* --size given */
	bool			have_reps;
	bool			quick;
	bool			json;
	bool			no_tune;	/* never write sysctls */
	bool			tty;		/* stderr is a terminal */
	const struct placement	*pin;
	const char		**pagers;	/* --pager specs, checked */
	size_t			npagers;
	const struct workload	**workloads;	/* --workload */
	size_t			nworkloads;
	const char		*csv_path;
	FILE			*csv;
	const char		*plot_path;
	/* app: the command after "--" and how to run it */
	char			**cmd;		/* NULL-terminated */
	const char		*sweep;		/* --sweep batch=LIST */
	const char		*delivery;	/* --delivery, NULL: default */
	const char		*cmd_stdout;	/* --stdout FILE */
	/* evict: its options, checked by evict_check_args() */
	struct {
		uint64_t	budget;		/* --budget, 0: default */
		const char	*ws, *pattern, *mix, *passes, *swap_dir;
		const char	*rows;
	} evict;
};

extern struct config cfg;

/* Set by the signal thread on the first SIGINT/SIGTERM. */
bool bench_stopped(void);

/* ------------------------------------------------------------------ */
/* Errors and small helpers (uffd-bench.c)                            */
/* ------------------------------------------------------------------ */

void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...);
void __attribute__((noreturn)) die_uffd(const char *call, int err);
void __attribute__((noreturn)) die_sys(const char *what);
void *xcalloc(size_t n, size_t size);
/* Strings that live until exit (row labels...). */
const char *bench_strdup(const char *s);
const char *__attribute__((format(printf, 1, 2))) bench_fmt(const char *fmt,
							    ...);
uint64_t now_ns(void);
uint64_t thread_cpu_ns(void);
void fmt_size(char *buf, size_t len, uint64_t bytes);
double median(double *v, size_t n);	/* sorts @v */
/* Notes: '#' lines on stdout with the table, on stderr with --json. */
void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...);
/* True when pager @name is built in (checked at run time). */
bool have_pager(const char *name);
/* Spawn @argv with signals unblocked and stdout to @out_fd (-1: ours). */
int spawn(char *const argv[], int out_fd, int *pid);

/* ------------------------------------------------------------------ */
/* System settings changed for a run and always restored (uffd-bench.c) */
/* ------------------------------------------------------------------ */

/*
 * Make @pages huge pages (2 MiB) available, raising vm.nr_hugepages by
 * what is missing.  Returns 0, or -1 with a reason in @why.
 */
int hugetlb_reserve(uint64_t pages, char *why, size_t len);
/* Give back what hugetlb_reserve() added. */
void hugetlb_release(void);
/*
 * Set /sys/kernel/mm/transparent_hugepage/use_zero_page to @on for a run.
 * Returns 0, or -1 with a reason in @why.  thp_zero_page_restore() puts
 * the original value back.
 */
int thp_zero_page_set(int on, char *why, size_t len);
void thp_zero_page_restore(void);
/* Everything above, undone (atexit and the second Ctrl-C). */
void tune_restore_all(void);

/* ------------------------------------------------------------------ */
/* Progress on stderr                                                 */
/* ------------------------------------------------------------------ */

struct progress {
	uint64_t	t0;
	unsigned int	done;
	unsigned int	total;
	bool		shown;		/* something was printed */
	bool		bar;		/* a bar is on the terminal line */
};

void progress_start(struct progress *pg, unsigned int total);
void __attribute__((format(printf, 2, 3)))
progress_step(struct progress *pg, const char *fmt, ...);
void progress_end(struct progress *pg);

/* ------------------------------------------------------------------ */
/* Rows                                                               */
/* ------------------------------------------------------------------ */

enum vtype { V_NULL, V_STR, V_U64, V_DBL };

struct val {
	enum vtype	t;
	const char	*s;
	uint64_t	u;
	double		d;
};

#define ROW_MAX_EXTRA	24

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
	size_t		nx;
	struct {
		const char	*key;
		struct val	v;
	} x[ROW_MAX_EXTRA];
};

/*
 * uffd_probe()'s answer, asked once: 1 when a native read fault maps the
 * shared zero page, 0 when it allocates a page, -1 when unknown.
 */
int native_zero_page(void);

/* A row with the common keys of this run filled in. */
void row_init(struct row *r, const char *workload, const char *strategy,
	      uint64_t size, uint64_t pages, uint64_t reps);
void row_str(struct row *r, const char *key, const char *s);
void row_u64(struct row *r, const char *key, uint64_t u);
void row_dbl(struct row *r, const char *key, double d); /* NaN: null */
/* Value of a DESIGN key or an extra; V_NULL when absent. */
struct val row_get(const struct row *r, const char *key);

struct rows {
	struct row	*v;
	size_t		n, cap;
};

struct row *rows_add(struct rows *rows);
void rows_free(struct rows *rows);

#define COL_PER_PAGE	(1u << 0)	/* divide by the row's pages */
#define COL_LEFT	(1u << 1)
#define COL_PCT		(1u << 2)	/* per cent */

struct col {
	const char	*head;
	const char	*key;
	int		prec;		/* decimals */
	double		scale;		/* 0: 1 */
	unsigned int	flags;
};

/*
 * Print rows[first..] as a table under @title (table mode), or as JSON
 * lines (--json); append them to --csv; keep them for --plot.
 */
void bench_emit(const struct rows *rows, size_t first, const char *title,
		const struct col *cols, size_t ncols);
/* Print rows[first..] as a table only: no JSON, CSV or plot data. */
void bench_table(const struct rows *rows, size_t first, const char *title,
		 const struct col *cols, size_t ncols);
/* Everything emitted so far (for plots). */
const struct rows *bench_emitted(void);
/* Header line text: "256 MiB (65536 pages of 4 KiB), median of 5 reps". */
const char *bench_what(uint64_t size, unsigned int reps);
const char *bench_pin_desc(void);

/* ------------------------------------------------------------------ */
/* Workloads and strategies (bench-run.c)                             */
/* ------------------------------------------------------------------ */

struct workload {
	const char	*name;
	void		(*walk)(uint8_t *p, size_t len, const uint32_t *order);
	const char	*desc;
	bool		random;		/* needs the page order */
};

extern const struct workload workloads[];
extern const size_t nworkloads;
const struct workload *workload_find(const char *name);
/* A random permutation of @pages page numbers, fixed seed. */
uint32_t *page_order(size_t pages, uint64_t seed);
BENCH_NOSAN void walk_seq_write(uint8_t *p, size_t len, const uint32_t *o);

enum strat_kind {
	S_NATIVE,		/* fresh anonymous mmap, 4 KiB pages */
	S_POPULATE_READ,	/* native + MADV_POPULATE_READ, timed */
	S_POPULATE_WRITE,	/* native + MADV_POPULATE_WRITE, timed */
	S_THP,			/* MADV_HUGEPAGE on a 2 MiB aligned mapping */
	S_PAGER,		/* a libuffd region with pager @spec */
};

struct strategy {
	const char	*name;		/* row label: "native", a spec... */
	enum strat_kind	kind;
	const char	*spec;		/* S_PAGER */
	int		thp_zero_page;	/* S_THP: -1 leave it, or 0/1 */
	bool		skip;		/* could not be set up: no rows */
	const char	*why;		/* ...and why */
};

/* The memory of one run, whatever strategy made it. */
struct mapping {
	uint8_t			*addr;
	size_t			len;
	void			*resv;		/* native: with guard pages */
	size_t			resv_len;
	struct uffd_ctx		*ctx;
	struct uffd_region	*region;
};

/* One run of one workload under one strategy. */
struct sample {
	bool		valid;
	double		ns_per_page;
	uint64_t	uffd_faults;
	uint64_t	minflt;
	uint64_t	majflt;
	uint64_t	rss_kib;
	uint64_t	anon_huge_kib;
	uint64_t	helper_cpu_ns;	/* handler + helpers, timed part */
	uint64_t	handler_cpu_ns;
	uint64_t	scrub_cpu_ns;	/* pager helpers (stats) */
	uint64_t	scrub_setup_ns;	/* ...before the timed part */
	uint64_t	app_cpu_ns;	/* application thread, user + sys */
	uint64_t	p50_us, p99_us;	/* service time, stats histogram */
	uint64_t	pages_zero, pages_copy, pages_move;
	uint64_t	misses;
};

/* Exit on failure; @s->kind S_PAGER needs a registered pager. */
void strategy_setup(const struct strategy *s, size_t size,
		    struct mapping *m);
void strategy_teardown(const struct strategy *s, struct mapping *m);
void run_one(const struct workload *w, const struct strategy *s,
	     size_t size, const uint32_t *order, struct sample *out);
/* Touch and free @len once: the VM's first use of memory is slow. */
void warm_up(size_t len);

/* Rss and AnonHugePages of [addr, addr + len) from smaps, in KiB. */
uint64_t smaps_rss_kib(const void *addr, size_t len, uint64_t *anon_huge);
/* Wait until a new region's pager helpers are idle (prezero's pool). */
void region_settle(struct uffd_region *r, const char *spec);
/*
 * Start a context for a pager run on the placement of --pin.  Pager helper
 * threads (prezero's scrubber) are left to the library, which places them
 * on every CPU: --pin places the application and the handler only.
 */
struct uffd_ctx *bench_ctx(void);

/* "native", the populate rows and thp (in that order) for a strategy list. */
size_t native_strategies(struct strategy *s, bool populate, bool thp);

/*
 * Workloads x strategies, interleaved: for each rep, for each workload,
 * for each strategy, one fresh run.  Stops early on Ctrl-C; samples of
 * runs not made stay invalid.
 */
struct matrix {
	const struct workload	**w;
	size_t			nw;
	struct strategy		*s;
	size_t			ns;
	unsigned int		reps;
	size_t			size;
	size_t			baseline;	/* index in s[] of "native" */
	struct sample		*samples;	/* [rep][w][s] */
	uint32_t		*order;		/* when a workload is random */
};

void matrix_run(struct matrix *m, const char *what);
struct sample *matrix_at(const struct matrix *m, unsigned int rep,
			 size_t w, size_t s);
/*
 * Median of the uint64 sample field at @off over the valid reps of (w, s);
 * returns the number of reps used (0: no valid sample).
 */
size_t matrix_median_u64(const struct matrix *m, size_t w, size_t s,
			 size_t off, uint64_t *out);
/* Median ns/page and median ratio against strategy @base of (w, s). */
size_t matrix_median_ns(const struct matrix *m, size_t w, size_t s,
			size_t base, double *ns, double *ratio);
/* A row per valid (w, s), DESIGN keys filled, added to @rows. */
void matrix_rows(const struct matrix *m, struct rows *rows);
void matrix_free(struct matrix *m);

/* ------------------------------------------------------------------ */
/* Plots (uffd-bench.c)                                               */
/* ------------------------------------------------------------------ */

/* gnuplot on PATH?  Prints one line saying so when it is missing. */
bool gnuplot_found(void);
/*
 * Run gnuplot on @script (its text) in a fresh temporary directory where
 * @data (its text) is "data".  Returns 0 or -1 (already reported).
 */
int gnuplot_run(const char *script, const char *data);
/*
 * The start of a line plot's script for gnuplot_run(): a PNG from the
 * tab-separated data ('?': missing), x on a log2 scale, a grid, the key
 * outside.  The caller adds its own settings and the plot command.
 */
void gp_line_plot(FILE *f, const char *title, const char *xlabel,
		  const char *ylabel);
/* open_memstream(), or exit. */
FILE *xmemstream(char **buf, size_t *len);

/* ------------------------------------------------------------------ */
/* Experiments                                                        */
/* ------------------------------------------------------------------ */

struct experiment {
	const char	*name;
	void		(*run)(void);
	uint64_t	size, quick_size;	/* defaults */
	unsigned int	reps, quick_reps;
	bool		plot;		/* --plot supported */
	const char	*desc;
};

void experiment_compare(void);		/* bench-compare.c */
void latency_floor(void);		/* bench-floor.c */
void experiment_batch_sweep(void);
void experiment_zero_double_fault(void);	/* bench-zero.c */
void experiment_populate_table(void);	/* bench-populate.c */
void experiment_prezero(void);		/* bench-prezero.c */
void experiment_huge_zero(void);	/* bench-hugezero.c */
void experiment_fault_trace(void);	/* bench-trace.c */
void experiment_latency(void);		/* bench-latency.c */
void experiment_app(void);		/* bench-app.c */
void experiment_dirty(void);		/* bench-dirty.c */
/* app's own options, checked before anything runs; exits 2 when bad. */
void app_check_args(void);
void app_usage(FILE *f);
void experiment_evict(void);		/* bench-evict.c */
/* evict's own options, checked before anything runs; exits 2 when bad. */
void evict_check_args(void);
void evict_usage(FILE *f);
/* Swap off and remove evict's swap file, remove its cgroup. */
void evict_restore(void);

/* The generic plot: ns/page per workload (clusters) and strategy (bars). */
void plot_clusters(const struct rows *rows, const char *ylabel,
		   const char *key);

#endif /* UFFD_BENCH_H */
