/* SPDX-License-Identifier: MIT */
/*
 * uffd-bench, run as a child process: argument parsing (bad input exits 2
 * with one line on stderr), the JSON rows (every DESIGN.md key present and
 * typed), and a --quick run of every experiment checked for structure and
 * sanity (fault counts, Rss, files written), never for speed.
 *
 * What the rows say about the kernel itself (native faults per page, Rss
 * after a native read walk, the THP rows) is checked against the kernel's
 * behaviour as native_facts() and native_thp_read() probed it here, for
 * kernels differ: some map no zero page on a native read, THP settings
 * vary.  What they say about the library's pagers holds on every kernel.
 *
 * The binary is $UFFD_BENCH, else $LIBUFFD_DEMOS/uffd-bench (make check
 * sets it), else demos/uffd-bench found by walking up from this test's
 * own executable (VPATH and libtool builds alike).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>

#include <check.h>

#include "helpers.h"

#define RUN_TIMEOUT_S	60
#define MAX_KEYS	64
#define MAX_ROWS	512

static char bench_path[PATH_MAX];
static char alloc_path[PATH_MAX];	/* tests/app-alloc */

/* ------------------------------------------------------------------ */
/* Running the bench                                                  */
/* ------------------------------------------------------------------ */

/*
 * Run the bench with @args (NULL-terminated) and wait for it, or kill it
 * after @timeout_s.  @sigint_after_ms > 0: send SIGINT after that long.
 */
static void run_bench_ex(struct result *res, const char *const *args,
			 int timeout_s, int sigint_after_ms)
{
	run_program(res, bench_path, args, timeout_s, sigint_after_ms, NULL,
		    NULL);
}

static void run_bench(struct result *res, const char *const *args)
{
	run_bench_ex(res, args, RUN_TIMEOUT_S, 0);
}

/* ------------------------------------------------------------------ */
/* A flat JSON object parser: all the rows need                       */
/* ------------------------------------------------------------------ */

enum jtype { J_STR, J_NUM, J_NULL, J_BOOL };

struct jval {
	char		key[64];
	enum jtype	t;
	char		s[256];
	double		d;
};

struct jrow {
	struct jval	v[MAX_KEYS];
	int		n;
};

/* Parses one line into @r; returns false on malformed input. */
static bool parse_string(const char **pp, char *out, size_t len)
{
	const char *p = *pp;
	size_t n = 0;

	if (*p++ != '"')
		return false;
	while (*p && *p != '"') {
		char c = *p++;

		if (c == '\\') {
			c = *p++;
			if (c == 'u') {
				if (strlen(p) < 4)
					return false;
				c = '?';
				p += 4;
			} else if (c != '"' && c != '\\' && c != '/') {
				return false;
			}
		} else if ((unsigned char)c < 0x20) {
			return false;
		}
		if (n + 1 < len)
			out[n++] = c;
	}
	if (*p != '"')
		return false;
	out[n] = '\0';
	*pp = p + 1;
	return true;
}

static bool parse_row(const char *line, struct jrow *r)
{
	const char *p = line;
	char *end;

	memset(r, 0, sizeof(*r));
	if (*p++ != '{')
		return false;
	for (;;) {
		struct jval *v;

		if (r->n == MAX_KEYS)
			return false;
		v = &r->v[r->n];
		if (!parse_string(&p, v->key, sizeof(v->key)) || *p++ != ':')
			return false;
		if (*p == '"') {
			v->t = J_STR;
			if (!parse_string(&p, v->s, sizeof(v->s)))
				return false;
		} else if (!strncmp(p, "null", 4)) {
			v->t = J_NULL;
			p += 4;
		} else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
			v->t = J_BOOL;
			p += *p == 't' ? 4 : 5;
		} else {
			if (*p != '-' && (*p < '0' || *p > '9'))
				return false;
			v->t = J_NUM;
			v->d = strtod(p, &end);
			if (end == p)
				return false;
			p = end;
		}
		r->n++;
		if (*p == ',') {
			p++;
			continue;
		}
		return *p == '}' && p[1] == '\0';
	}
}

static const struct jval *jget(const struct jrow *r, const char *key)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].key, key))
			return &r->v[i];
	return NULL;
}

static double jnum(const struct jrow *r, const char *key)
{
	const struct jval *v = jget(r, key);

	ck_assert_msg(v && v->t == J_NUM, "key %s: not a number", key);
	return v->d;
}

static const char *jstr(const struct jrow *r, const char *key)
{
	const struct jval *v = jget(r, key);

	ck_assert_msg(v && v->t == J_STR, "key %s: not a string", key);
	return v->s;
}

/* The keys DESIGN.md promises in every row, and their types. */
static const struct {
	const char	*key;
	enum jtype	t;
} design_keys[] = {
	{ "experiment", J_STR }, { "workload", J_STR },
	{ "strategy", J_STR }, { "size_bytes", J_NUM },
	{ "pages", J_NUM }, { "reps", J_NUM }, { "ns_per_page", J_NUM },
	{ "ratio_vs_native", J_NUM }, { "uffd_faults", J_NUM },
	{ "minflt", J_NUM }, { "rss_kib", J_NUM },
	{ "helper_cpu_ns", J_NUM }, { "pin", J_STR },
};

struct jrows {
	struct jrow	*v;
	int		n;
};

/* Every stdout line is a row with the DESIGN keys, typed; stderr aside. */
static void parse_rows(const char *out, const char *experiment,
		       struct jrows *rows)
{
	char *copy = strdup(out), *line, *save = NULL;
	size_t k;

	ck_assert_ptr_nonnull(copy);
	rows->v = calloc(MAX_ROWS, sizeof(*rows->v));
	rows->n = 0;
	ck_assert_ptr_nonnull(rows->v);
	/* first, the machine facts: one object, not a measured row */
	line = strtok_r(copy, "\n", &save);
	ck_assert_msg(line && !strncmp(line, "{\"experiment\":\"probe\",", 22),
		      "the first line is not the probe: %s", line ? line : "");
	ck_assert_msg(parse_row(line, &rows->v[0]), "not JSON: %s", line);
	ck_assert_ptr_nonnull(jget(&rows->v[0], "native_zero_page"));
	for (line = strtok_r(NULL, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct jrow *r = &rows->v[rows->n];

		ck_assert_int_lt(rows->n, MAX_ROWS);
		ck_assert_msg(parse_row(line, r), "not a JSON row: %s", line);
		for (k = 0; k < sizeof(design_keys) / sizeof(design_keys[0]);
		     k++) {
			const struct jval *v = jget(r, design_keys[k].key);

			ck_assert_msg(v, "key %s missing: %s",
				      design_keys[k].key, line);
			ck_assert_msg(v->t == design_keys[k].t,
				      "key %s has the wrong type: %s",
				      design_keys[k].key, line);
		}
		ck_assert_str_eq(jstr(r, "experiment"), experiment);
		ck_assert_double_ge(jnum(r, "ns_per_page"), 0);
		ck_assert_double_gt(jnum(r, "pages"), 0);
		rows->n++;
	}
	free(copy);
}

static const struct jrow *find_row(const struct jrows *rows,
				   const char *workload, const char *strategy)
{
	int i;

	for (i = 0; i < rows->n; i++)
		if (!strcmp(jstr(&rows->v[i], "workload"), workload) &&
		    !strcmp(jstr(&rows->v[i], "strategy"), strategy))
			return &rows->v[i];
	return NULL;
}

static double per_page(const struct jrow *r, const char *key)
{
	return jnum(r, key) / jnum(r, "pages");
}

/*
 * Faults per page, minor and major: the kernel counts a fault that
 * userfaultfd served as major on some kernels (6.1), minor on others.
 */
static double faults_pp(const struct jrow *r)
{
	return (jnum(r, "minflt") + jnum(r, "majflt")) / jnum(r, "pages");
}

/* Whether a native read maps the zero page here; fails if unknown. */
static bool native_read_zero(void)
{
	int z = native_facts()->read_maps_zero;

	ck_assert_msg(z >= 0, "the native read probe was inconclusive");
	return z;
}

/*
 * The Rss a native read walk left in row @r, as the kernel behaves here:
 * ~0 where a read maps the zero page, all of it where it allocates.
 */
static void assert_native_read_rss(const struct jrow *r)
{
	double size_kib;

	ck_assert_ptr_nonnull(r);
	size_kib = jnum(r, "size_bytes") / 1024;

	if (native_read_zero())
		ck_assert_double_lt(jnum(r, "rss_kib"), 64);
	else
		ck_assert_double_ge(jnum(r, "rss_kib"), size_kib);
}

/*
 * A row that read-walked MADV_HUGEPAGE memory against what a read walk of
 * one 2 MiB extent did under the same settings, @t: nothing resident
 * (the huge zero page, or 4 KiB zero pages where THP is off), or all of
 * it (a THP per extent, or 4 KiB pages where reads allocate).
 */
static void assert_thp_read_rows(const struct jrow *r,
				 const struct thp_read *t)
{
	double size_kib;

	ck_assert_ptr_nonnull(r);
	size_kib = jnum(r, "size_bytes") / 1024;

	if (t->rss_kib < 1024)
		ck_assert_double_lt(jnum(r, "rss_kib"), 1024);
	else
		ck_assert_double_ge(jnum(r, "rss_kib"), size_kib);
}

/* The data lines of the CSV at @path, whose header must hold @cols. */
static int csv_lines(const char *path, const char *cols)
{
	char line[4096];
	int lines = 0;
	FILE *f;

	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	ck_assert_msg(strstr(line, cols), "CSV header: %s", line);
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	unlink(path);
	return lines;
}

/* A PNG at @png where gnuplot is, else a word about it on stderr. */
static void assert_png(const char *png, const struct result *res)
{
	char magic[8] = "";
	struct stat st;
	FILE *f;

	if (access("/usr/bin/gnuplot", X_OK)) {
		ck_assert_ptr_nonnull(strstr(res->err, "gnuplot"));
		return;
	}
	ck_assert_int_eq(stat(png, &st), 0);
	f = fopen(png, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fread(magic, 1, 4, f), 4);
	fclose(f);
	ck_assert_int_eq(memcmp(magic, "\x89PNG", 4), 0);
	unlink(png);
}

/* ------------------------------------------------------------------ */
/* Arguments                                                          */
/* ------------------------------------------------------------------ */

static const char *const *const bad_args[] = {
	(const char *const[]){ "--bogus", NULL },
	(const char *const[]){ "-x", NULL },
	(const char *const[]){ "--size", NULL },
	(const char *const[]){ "--size", "0", NULL },
	(const char *const[]){ "--size", "12Q", NULL },
	(const char *const[]){ "--size", "-5M", NULL },
	(const char *const[]){ "--size", "999999G", NULL },
	(const char *const[]){ "--reps", "0", NULL },
	(const char *const[]){ "--reps", "two", NULL },
	(const char *const[]){ "--reps", "-1", NULL },
	(const char *const[]){ "--pin", "elsewhere", NULL },
	(const char *const[]){ "--pager", "nosuchpager", NULL },
	(const char *const[]){ "--pager", "zero:nokey=1", NULL },
	(const char *const[]){ "--pager", "prealloc:batch=0", NULL },
	(const char *const[]){ "--pager", "prealloc:batch=lots", NULL },
	(const char *const[]){ "--workload", "sideways", NULL },
	(const char *const[]){ "no-such-experiment", NULL },
	(const char *const[]){ "compare", "extra", NULL },
	(const char *const[]){ "populate-table", "--plot", "x.png", NULL },
	(const char *const[]){ "fault-trace", "--plot", "x.png", NULL },
	(const char *const[]){ "--csv", NULL },
	(const char *const[]){ "--csv", "", NULL },
	(const char *const[]){ "app", NULL },
	(const char *const[]){ "app", "--", NULL },
	(const char *const[]){ "app", "true", NULL },
	(const char *const[]){ "compare", "--", "true", NULL },
	(const char *const[]){ "app", "--pin", "same", "--", "true", NULL },
	(const char *const[]){ "app", "--plot", "x.png", "--", "true", NULL },
	(const char *const[]){ "app", "--delivery", "carrier", "--", "true",
			       NULL },
	(const char *const[]){ "app", "--sweep", "batch=0", "--", "true",
			       NULL },
	(const char *const[]){ "app", "--sweep", "size=4", "--", "true",
			       NULL },
	(const char *const[]){ "app", "--sweep", "batch=4", "-p", "zero", "--",
			       "true", NULL },
	(const char *const[]){ "app", "--pagers", "zero;nosuchpager", "--",
			       "true", NULL },
	(const char *const[]){ "evict", "--budget", "0", NULL },
	(const char *const[]){ "evict", "--budget", "lots", NULL },
	(const char *const[]){ "evict", "--ws", "0", NULL },
	(const char *const[]){ "evict", "--ws", "1,,2", NULL },
	(const char *const[]){ "evict", "--ws", "99999", NULL },
	(const char *const[]){ "evict", "--pattern", "zigzag", NULL },
	(const char *const[]){ "evict", "--mix", "rw", NULL },
	(const char *const[]){ "evict", "--passes", "0", NULL },
	(const char *const[]){ "evict", "--swap-dir", "", NULL },
	(const char *const[]){ "evict", "--size", "8M", NULL },
	(const char *const[]){ "evict", "--pager", "zero", NULL },
	(const char *const[]){ "compare", "--budget", "8M", NULL },
	(const char *const[]){ "compare", "--pattern", "seq", NULL },
};

START_TEST(bad_input_exits_2)
{
	const char *const *args = bad_args[_i];
	struct result res;

	run_bench(&res, args);
	ck_assert_msg(res.status == 2, "%s: exit %d, stderr: %s", args[0],
		      res.status, res.err);
	ck_assert_msg(count_lines(res.err) == 1 &&
		      res.err[strlen(res.err) - 1] == '\n',
		      "%s: not one line on stderr: '%s'", args[0], res.err);
	ck_assert_msg(strstr(res.err, "uffd-bench: "), "%s", res.err);
	ck_assert_str_eq(res.out, "");
	result_free(&res);
}
END_TEST

START_TEST(help_fits_a_screen)
{
	const char *const args[] = { "--help", NULL };
	struct result res;
	const char *p, *nl;

	run_bench(&res, args);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(res.err, "");
	ck_assert_int_le(count_lines(res.out), 24);
	for (p = res.out; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_int_le(nl - p, 80);
	}
	ck_assert_ptr_nonnull(strstr(res.out, "zero-double-fault"));
	ck_assert_ptr_nonnull(strstr(res.out, "batch-sweep"));
	result_free(&res);
}
END_TEST

/* ------------------------------------------------------------------ */
/* compare                                                            */
/* ------------------------------------------------------------------ */

START_TEST(compare_json_rows)
{
	const char *const args[] = {
		"compare", "--quick", "--size", "4M", "--reps", "2", "--json",
		"-w", "seq-write", "-w", "seq-read", NULL
	};
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	const char *specs[32];
	char *owned[8];
	size_t nowned = 0;
	static const char *const natives[] = {
		"native", "populate-read", "populate-write", "thp",
	};
	/* shown at the kernel's batch of 1 and at the sweep's good batch */
	static const char *const batching[] = { "prealloc", "prezero" };
	struct thp_read thp;
	const struct jrow *r;
	struct result res;
	struct jrows rows;
	size_t nspecs = 0, i, j;
	char *spec;

	/* every built-in pager that runs without arguments */
	for (i = 0; list[i]; i++) {
		if (uffd_pager_spec_check(list[i]->name, 0))
			continue;
		for (j = 0; j < ARRAY_SIZE(batching); j++)
			if (!strcmp(list[i]->name, batching[j]))
				break;
		if (j == ARRAY_SIZE(batching)) {
			specs[nspecs++] = list[i]->name;
			continue;
		}
		ck_assert_int_ne(asprintf(&spec, "%s:batch=1",
					  list[i]->name), -1);
		specs[nspecs++] = owned[nowned++] = spec;
		ck_assert_int_ne(asprintf(&spec, "%s:batch=64",
					  list[i]->name), -1);
		specs[nspecs++] = owned[nowned++] = spec;
	}
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "compare", &rows);
	ck_assert_int_eq(rows.n, 2 * (4 + (int)nspecs));
	for (i = 0; i < 4; i++)
		ck_assert_ptr_nonnull(find_row(&rows, "seq-write",
					       natives[i]));
	for (i = 0; i < nspecs; i++) {
		r = find_row(&rows, "seq-read", specs[i]);
		ck_assert_msg(r, "no row for pager %s", specs[i]);
		ck_assert_double_eq(jnum(r, "reps"), 2);
		ck_assert_double_gt(jnum(r, "uffd_faults"), 0);
	}
	/* batch 1 takes a fault per page written; 64 one per 64 pages */
	r = find_row(&rows, "seq-write", "prealloc:batch=1");
	ck_assert_double_eq(per_page(r, "uffd_faults"), 1.0);
	r = find_row(&rows, "seq-write", "prealloc:batch=64");
	ck_assert_double_eq(per_page(r, "uffd_faults"), 1.0 / 64);
	for (i = 0; i < (size_t)rows.n; i++) {
		ck_assert_str_eq(jstr(&rows.v[i], "pin"), "same");
		ck_assert_double_eq(jnum(&rows.v[i], "size_bytes"), 4 << 20);
		ck_assert_double_eq(jnum(&rows.v[i], "pages"),
				    (4 << 20) / page_size());
	}
	r = find_row(&rows, "seq-write", "native");
	ck_assert_double_eq_tol(jnum(r, "ratio_vs_native"), 1.0, 1e-9);
	ck_assert_double_eq(jnum(r, "uffd_faults"), 0);
	ck_assert_double_eq(jnum(r, "rss_kib"), 4096);
	/* a native read walk maps the zero page where the kernel does */
	r = find_row(&rows, "seq-read", "native");
	assert_native_read_rss(r);
	/* MADV_HUGEPAGE, as the kernel treats it under these settings */
	ck_assert_int_eq(native_thp_read(&thp), 0);
	assert_thp_read_rows(find_row(&rows, "seq-read", "thp"), &thp);
	/* the zero pager maps the zero page on every kernel */
	r = find_row(&rows, "seq-read", "zero");
	ck_assert_double_lt(jnum(r, "rss_kib"), 64);
	ck_assert_double_eq(per_page(r, "uffd_faults"), 1.0);
	ck_assert_double_gt(jnum(r, "helper_cpu_ns"), 0);
	free(rows.v);
	result_free(&res);
	while (nowned)
		free(owned[--nowned]);
}
END_TEST

START_TEST(compare_csv_and_table)
{
	char dir[] = "/tmp/test-bench.XXXXXX", csv[64];
	const char *args[] = {
		"--quick", "--size", "2M", "--reps", "1", "-p", "zero",
		"-p", "zero", "--pin", "none", "--csv", csv, NULL
	};
	struct result res;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(csv, sizeof(csv), "%s/rows.csv", dir);
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	/* the table says which placement ran */
	ck_assert_ptr_nonnull(strstr(res.out, "pin=none"));
	ck_assert_ptr_nonnull(strstr(res.out, "partial-write"));
	/* 5 workloads x (4 kernel rows + zero twice) */
	ck_assert_int_eq(csv_lines(csv, "experiment,workload,strategy,"
				   "size_bytes,pages,reps,ns_per_page,"
				   "ratio_vs_native,uffd_faults,minflt"),
			 5 * 6);
	rmdir(dir);
	result_free(&res);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The seed experiments                                               */
/* ------------------------------------------------------------------ */

#define assert_near(v, want, rel)					\
	ck_assert_msg(fabs((v) - (want)) <= (rel) * (want),		\
		      "%s = %f, want %f +- %.0f%%", #v, (double)(v),	\
		      (double)(want), 100 * (rel))

START_TEST(zero_double_fault)
{
	const char *const args[] = {
		"zero-double-fault", "--quick", "--json", NULL
	};
	const struct jrow *z, *o;
	struct result res;
	struct jrows rows;
	double zf;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "zero-double-fault", &rows);

	/*
	 * The seed: 2 faults per page on zeros, 1 on memory written first;
	 * natively, only where a read maps the zero page.  Elsewhere the
	 * load allocates and the store finds the page writable: 1.
	 */
	zf = native_read_zero() ? 2.0 : 1.0;
	z = find_row(&rows, "zeros", "native");
	o = find_row(&rows, "ones", "native");
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_nonnull(o);
	assert_near(faults_pp(z), zf, 0.05);
	assert_near(faults_pp(o), 1.0, 0.05);
	ck_assert_double_eq(jnum(z, "fill_minflt"), 0);
	assert_near(per_page(o, "fill_minflt"), 1.0, 0.05);
	ck_assert_double_le(per_page(o, "walk_minflt"), 0.05);

	/*
	 * The zero pager shows the seed on every kernel: the read is ours
	 * (uffd, the zero page), the write the kernel's copy-on-write.
	 */
	z = find_row(&rows, "zeros", "zero");
	o = find_row(&rows, "ones", "zero");
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_nonnull(o);
	assert_near(per_page(z, "uffd_faults"), 1.0, 0.05);
	assert_near(faults_pp(z), 2.0, 0.05);
	assert_near(per_page(o, "uffd_faults"), 1.0, 0.05);
	assert_near(faults_pp(o), 1.0, 0.05);

	/*
	 * The seed's own program, when rustc is here.  Its vector is not
	 * advised: where THP (or an mTHP size) applies to such memory, a
	 * fault may fill more than 4 KiB, and the counts per page only
	 * fall; zeros still take at least as many as ones.
	 */
	z = find_row(&rows, "zeros", "seed-rust");
	o = find_row(&rows, "ones", "seed-rust");
	if (z && o && native_facts()->thp_unadvised) {
		ck_assert_double_le(faults_pp(z), zf * 1.05);
		ck_assert_double_le(faults_pp(o), 1.05);
		ck_assert_double_ge(faults_pp(z) + 0.05,
				    faults_pp(o));
	} else if (z && o) {
		assert_near(faults_pp(z), zf, 0.05);
		assert_near(faults_pp(o), 1.0, 0.05);
	} else {
		ck_assert_ptr_nonnull(strstr(res.err, "rust"));
	}
	free(rows.v);
	result_free(&res);
}
END_TEST

START_TEST(populate_table)
{
	/* --no-tune: tests run in parallel; leave vm.nr_hugepages alone */
	const char *const args[] = {
		"populate-table", "--quick", "--no-tune", "--json", NULL
	};
	static const char *const methods[] = {
		"read", "write", "read+write", "populate-read",
		"populate-write",
	};
	static const char *const mems[] = { "anon", "memfd" };
	struct result res;
	struct jrows rows;
	int i, m, k, sh, found;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "populate-table", &rows);
	for (sh = 0; sh < 2; sh++)
		for (k = 0; k < 2; k++)
			for (m = 0; m < 5; m++) {
				found = 0;
				for (i = 0; i < rows.n; i++) {
					const struct jrow *r = &rows.v[i];

					if (strcmp(jstr(r, "workload"),
						   methods[m]) ||
					    strcmp(jstr(r, "memory"),
						   mems[k]) ||
					    strcmp(jstr(r, "sharing"),
						   sh ? "shared" : "private") ||
					    strcmp(jstr(r, "strategy"),
						   "native"))
						continue;
					found++;
					/* the seed's figure beside ours */
					ck_assert_double_gt(jnum(r, "seed_ms"),
							    0);
					ck_assert_double_gt(jnum(r, "ms_mean"),
							    0);
					ck_assert_double_eq(jnum(r, "reps"),
							    2);
				}
				/* 2 MiB and 128 MiB */
				ck_assert_msg(found == 2, "%s %s %s: %d rows",
					      mems[k], methods[m],
					      sh ? "shared" : "private",
					      found);
			}
	for (i = 0; i < rows.n; i++) {
		const struct jrow *r = &rows.v[i];
		double size_kib = jnum(r, "size_bytes") / 1024;

		if (strcmp(jstr(r, "memory"), "anon") ||
		    strcmp(jstr(r, "sharing"), "private"))
			continue;
		/*
		 * POPULATE_WRITE allocates it all; a read maps zero pages
		 * where the kernel does
		 */
		if (!strcmp(jstr(r, "workload"), "populate-write"))
			ck_assert_double_eq(jnum(r, "rss_kib"), size_kib);
		if (strcmp(jstr(r, "workload"), "read"))
			continue;
		if (!strcmp(jstr(r, "strategy"), "native"))
			assert_native_read_rss(r);
		else	/* a pager's zero page, on every kernel */
			ck_assert_double_lt(jnum(r, "rss_kib"), 64);
	}
	/* a pager column at 2 MiB */
	found = 0;
	for (i = 0; i < rows.n; i++)
		found += !strcmp(jstr(&rows.v[i], "strategy"), "zero") &&
			 jnum(&rows.v[i], "size_bytes") == 2 << 20;
	ck_assert_int_ge(found, 5);
	free(rows.v);
	result_free(&res);
}
END_TEST

START_TEST(prezero)
{
	const char *const args[] = { "prezero", "--quick", "--json", NULL };
	struct uffd_probe kp = { .size = sizeof(kp) };
	const struct jrow *r;
	struct result res;
	struct jrows rows;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "prezero", &rows);
	ck_assert_ptr_nonnull(find_row(&rows, "partial-write", "native"));
	ck_assert_ptr_nonnull(find_row(&rows, "full-write", "native"));
	r = find_row(&rows, "partial-write", "zero");
	ck_assert_ptr_nonnull(r);
	ck_assert_double_ge(jnum(r, "service_p99_us"),
			    jnum(r, "service_p50_us"));
	ck_assert_double_gt(jnum(r, "service_p50_us"), 0);
	ck_assert_double_ge(jnum(r, "total_cpu_ns"), jnum(r, "app_cpu_ns"));
	ck_assert_double_eq(jnum(r, "pages_moved"), 0);
	r = find_row(&rows, "partial-write", "prezero:batch=16");
	if (uffd_pager_find("prezero")) {
		ck_assert_ptr_nonnull(r);
		/* every page came in one way or another */
		ck_assert_double_eq(jnum(r, "pages_moved") +
				    jnum(r, "pages_copied"), jnum(r, "pages"));
		ck_assert_double_eq(per_page(r, "uffd_faults"), 1.0 / 16);
		/*
		 * A scrubber only where MOVE can hand its pages over (6.8):
		 * the bench's own view, which $UFFD_TEST_HIDE does not touch
		 */
		ck_assert_int_eq(uffd_probe(&kp), 0);
		if (kp.features & LIBUFFD_FEATURE_MOVE) {
			ck_assert_double_gt(jnum(r, "scrubber_setup_cpu_ns"),
					    0);
		} else {
			ck_assert_double_eq(jnum(r, "scrubber_setup_cpu_ns"),
					    0);
			ck_assert_double_eq(jnum(r, "pages_moved"), 0);
		}
	}
	free(rows.v);
	result_free(&res);
}
END_TEST

/* latency: one fault per page in every mode; SIGBUS mode has no wake-up */
START_TEST(latency)
{
	const char *const args[] = { "latency", "--quick", "--reps", "1",
				     "--json", NULL };
	static const char *const modes[] = {
		"thread-same", "thread-other", "thread-other-spin",
		"thread-any", "sigbus", "sigbus-sigreturn",
	};
	static const char *const floor_rows[] = {
		"native", "fill only", "sigbus write", "sigbus read",
		"thread poll", "thread read",
	};
	const struct jrow *r;
	struct result res;
	struct jrows rows;
	size_t i;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "latency", &rows);
	ck_assert_ptr_nonnull(find_row(&rows, "seq-write", "native"));
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		r = find_row(&rows, "seq-write", modes[i]);
		ck_assert_msg(r != NULL, "no row for %s", modes[i]);
		ck_assert_double_eq(per_page(r, "uffd_faults"), 1.0);
		ck_assert_double_ge(jnum(r, "p99_us"), jnum(r, "p50_us"));
		ck_assert_double_gt(jnum(r, "ratio_vs_native_write"), 0);
	}
	/* SIGBUS mode resumes directly unless told to return */
	r = find_row(&rows, "seq-write", "sigbus");
	ck_assert_double_eq(jnum(r, "sigbus_direct"),
			    direct_resume_possible() ? jnum(r, "uffd_faults") :
			    0);
	r = find_row(&rows, "seq-write", "sigbus-sigreturn");
	ck_assert_double_eq(jnum(r, "sigbus_direct"), 0);
	r = find_row(&rows, "seq-write", "thread-same");
	ck_assert_double_eq(jnum(r, "sigbus_direct"), 0);
	/* the floor table: raw userfaultfd, against native of each rep */
	for (i = 0; i < sizeof(floor_rows) / sizeof(floor_rows[0]); i++) {
		r = find_row(&rows, "floor", floor_rows[i]);
		ck_assert_msg(r != NULL, "no floor row %s", floor_rows[i]);
		ck_assert_double_gt(jnum(r, "ns_per_page"), 0);
		ck_assert_double_gt(jnum(r, "ratio_vs_native"), 0);
	}
	ck_assert_double_eq(jnum(find_row(&rows, "floor", "native"),
				 "ratio_vs_native"), 1.0);
	/* the batch table: prealloc:batch=16 takes a fault per 16 pages */
	r = find_row(&rows, "sigbus", "prealloc:batch=16");
	ck_assert_ptr_nonnull(r);
	ck_assert_double_eq(per_page(r, "uffd_faults"), 1.0 / 16);
	free(rows.v);
	result_free(&res);
}
END_TEST

static long read_sys(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

#define USE_ZERO_PAGE "/sys/kernel/mm/transparent_hugepage/use_zero_page"

/*
 * dirty: each tracking method finds exactly the pages written, at every
 * fraction (the bench stops on a wrong set; the rows say how many).
 */
START_TEST(dirty_rows)
{
	static const char *const fractions[] = { "1%", "10%", "50%", "100%" };
	const char *const args[] = { "dirty", "--quick", "--json", NULL };
	const struct jrow *r, *nat;
	struct result res;
	struct jrows rows;
	size_t i;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "dirty", &rows);
	for (i = 0; i < 4; i++) {
		nat = find_row(&rows, fractions[i], "native");
		ck_assert_ptr_nonnull(nat);
		ck_assert_double_eq(jnum(nat, "ratio_vs_native"), 1);
		r = find_row(&rows, fractions[i], "wp-sync");
		ck_assert_ptr_nonnull(r);
		ck_assert_double_eq(jnum(r, "found"), jnum(r, "pages"));
		ck_assert_double_gt(jnum(r, "pages"), 0);
		if (!(kernel_features() & LIBUFFD_FEATURE_WP_ASYNC))
			continue;
		r = find_row(&rows, fractions[i], "wp-async");
		ck_assert_ptr_nonnull(r);
		ck_assert_double_eq(jnum(r, "found"), jnum(r, "pages"));
	}
	r = find_row(&rows, "100%", "wp-sync");
	ck_assert_double_eq(jnum(r, "pages"), jnum(r, "size_bytes") / 4096);
	free(rows.v);
	result_free(&res);
}
END_TEST

/*
 * What a read walk of THP-eligible memory does with use_zero_page @v,
 * which the bench sets for its row and puts back, as this does.
 */
static struct thp_read thp_read_with(long v)
{
	long cur = read_sys(USE_ZERO_PAGE);
	struct thp_read t;
	int ret;

	if (cur != v)
		ck_assert_int_eq(write_long_file(USE_ZERO_PAGE, v), 0);
	ret = native_thp_read(&t);
	if (cur != v)
		ck_assert_int_eq(write_long_file(USE_ZERO_PAGE, cur), 0);
	ck_assert_int_eq(ret, 0);
	return t;
}

START_TEST(huge_zero)
{
	const char *const args[] = { "huge-zero", "--quick", "--json", NULL };
	long zp = read_sys(USE_ZERO_PAGE);
	const struct jrow *r;
	struct thp_read t;
	struct result res;
	struct jrows rows;
	double size_kib, extents, faults;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	/* the setting it changed for a run is back */
	ck_assert_int_eq(read_sys(USE_ZERO_PAGE), zp);
	parse_rows(res.out, "huge-zero", &rows);
	r = find_row(&rows, "seq-read", "native");
	ck_assert_ptr_nonnull(r);
	size_kib = jnum(r, "size_bytes") / 1024;
	assert_native_read_rss(r);
	if (uffd_pager_find("hugezero")) {
		/* the emulated huge zero page: ~no Rss, 1 fault per 2 MiB */
		r = find_row(&rows, "seq-read", "hugezero");
		ck_assert_ptr_nonnull(r);
		ck_assert_double_lt(jnum(r, "rss_kib"), 1024);
		extents = jnum(r, "size_bytes") / (2 << 20);
		ck_assert_double_ge(jnum(r, "uffd_faults") / extents, 1);
		ck_assert_double_le(jnum(r, "uffd_faults") / extents, 1.1);
		/* the kernel's count: faults_per_2mib has its minor ones */
		faults = jnum(r, "minflt") + jnum(r, "majflt");
		ck_assert_double_ge(faults / extents, 1);
		ck_assert_double_le(faults / extents, 1.1);
		/* without it: the whole size is resident */
		r = find_row(&rows, "seq-read", "hugezero:nohzp=1");
		ck_assert_ptr_nonnull(r);
		ck_assert_double_ge(jnum(r, "rss_kib"), size_kib);
	}
	/*
	 * The kernel's THP rows, when the settings allowed them, against
	 * what a read of one extent did here with the same use_zero_page:
	 * the huge zero page (3.8+), or a THP per extent.
	 */
	r = find_row(&rows, "seq-read", "thp");
	if (r) {
		t = thp_read_with(1);
		assert_thp_read_rows(r, &t);
		ck_assert_int_eq(jnum(r, "anon_huge_kib") > 0,
				 t.anon_huge_kib > 0);
	}
	r = find_row(&rows, "seq-read", "thp:use_zero_page=0");
	if (r) {
		t = thp_read_with(0);
		assert_thp_read_rows(r, &t);
		ck_assert_int_eq(jnum(r, "anon_huge_kib") > 0,
				 t.anon_huge_kib > 0);
	}
	free(rows.v);
	result_free(&res);
}
END_TEST

START_TEST(batch_sweep_csv_plot)
{
	char dir[] = "/tmp/test-bench.XXXXXX", csv[64], png[64];
	const char *args[] = {
		"batch-sweep", "--quick", "--size", "8M", "--csv", csv,
		"--plot", png, NULL
	};
	struct result res;
	int want;

	want = 1 + 10 * (!!uffd_pager_find("prealloc") +
			 !!uffd_pager_find("prezero"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(csv, sizeof(csv), "%s/sweep.csv", dir);
	snprintf(png, sizeof(png), "%s/sweep.png", dir);
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "seq-write ns/page"));
	/* seq-write and rand-write, native plus 10 batches per pager */
	ck_assert_int_eq(csv_lines(csv, ",batch"), 2 * want);
	assert_png(png, &res);
	rmdir(dir);
	result_free(&res);
}
END_TEST

START_TEST(fault_trace)
{
	const char *const targs[] = {
		"fault-trace", "--quick", "-p", "prealloc:batch=8", NULL
	};
	const char *const jargs[] = {
		"fault-trace", "--quick", "--json", "-p", "zero",
		"-p", "prealloc:batch=8", NULL
	};
	const struct jrow *r;
	struct result res;
	struct jrows rows;
	double pages;

	if (!uffd_pager_find("prealloc"))
		return;
	run_bench(&res, targs);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "# map:"));
	/* a batch: its own page upper case, the others lower case */
	ck_assert_ptr_nonnull(strstr(res.out, "C"));
	ck_assert_ptr_nonnull(strstr(res.out, "ccc"));
	result_free(&res);

	run_bench(&res, jargs);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "fault-trace", &rows);
	ck_assert_int_eq(rows.n, 2);
	r = find_row(&rows, "rand-write", "zero");
	ck_assert_ptr_nonnull(r);
	pages = jnum(r, "pages");
	ck_assert_double_eq(jnum(r, "uffd_faults"), pages);
	ck_assert_double_eq(jnum(r, "copied"), pages);
	ck_assert_double_eq(jnum(r, "prefilled_by_batch"), 0);
	r = find_row(&rows, "rand-write", "prealloc:batch=8");
	ck_assert_ptr_nonnull(r);
	ck_assert_double_eq(jnum(r, "uffd_faults"), pages / 8);
	ck_assert_double_eq(jnum(r, "copied"), pages);
	ck_assert_double_eq(jnum(r, "prefilled_by_batch"),
			    pages - pages / 8);
	ck_assert_double_eq(jnum(r, "untouched"), 0);
	free(rows.v);
	result_free(&res);
}
END_TEST

/* ------------------------------------------------------------------ */
/* app: an unmodified program, natively and under uffd-run            */
/* ------------------------------------------------------------------ */

#define ALLOC_MIB	32
#define ALLOC_ARG	"32"

/* --pagers splits at ';' and at commas not followed by key=value */
START_TEST(app_table)
{
	char dir[] = "/tmp/test-bench.XXXXXX", out[64], line[256];
	char first[256] = "";
	const char *args[] = {
		"app", "--reps", "2", "--pagers",
		"zero;prealloc:batch=16,window=forward", "--stdout", out, "--",
		alloc_path, ALLOC_ARG, NULL
	};
	static const char *const strategies[] = {
		"native", "zero", "prealloc:batch=16,window=forward",
	};
	const char *p, *head;
	struct result res;
	int lines = 0, cols = 0, n;
	size_t i;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/stdout", dir);
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "# app: "));
	ck_assert_ptr_nonnull(strstr(res.out, "warm-up"));
	head = strstr(res.out, "\nstrategy ");
	ck_assert_msg(head, "no table header: %s", res.out);
	ck_assert_ptr_nonnull(strstr(head, "x native"));
	ck_assert_ptr_nonnull(strstr(head, "cpu x"));
	ck_assert_ptr_nonnull(strstr(head, "uffd faults"));
	/*
	 * a line per strategy, in order, each with the same cells: wall,
	 * ratio, user, sys, cpu, ratio, minflt, uffd faults, rss at least
	 */
	p = strchr(head + 1, '\n') + 1;
	for (i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
		const char *nl = strchr(p, '\n');
		double ratio;
		int cells = 0;

		ck_assert_ptr_nonnull(nl);
		ck_assert_msg(!strncmp(p, strategies[i], strlen(strategies[i]))
			      && p[strlen(strategies[i])] == ' ',
			      "row %zu is not %s: %.*s", i, strategies[i],
			      (int)(nl - p), p);
		for (n = 0; p + n < nl; n++)
			cells += p[n] != ' ' && (n == 0 || p[n - 1] == ' ');
		if (!cols)
			cols = cells;
		ck_assert_int_eq(cells, cols);
		ck_assert_int_ge(cells, 10);
		/* wall ms, then the ratio */
		ck_assert_int_eq(sscanf(p + strlen(strategies[i]), "%*f %lf",
					&ratio), 1);
		if (i == 0)
			ck_assert_double_eq(ratio, 1.0);
		else
			ck_assert_double_gt(ratio, 0);
		p = nl + 1;
	}
	/* the command's stdout, every run, the same paged or not */
	f = fopen(out, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		if (!lines++)
			snprintf(first, sizeof(first), "%s", line);
		ck_assert_str_eq(line, first);
	}
	fclose(f);
	/* a warm-up round and two counted, of three runs each */
	ck_assert_int_eq(lines, 3 * 3);
	ck_assert_ptr_nonnull(strstr(first, " pages, sum "));
	unlink(out);
	rmdir(dir);
	result_free(&res);
}
END_TEST

START_TEST(app_json_rows)
{
	const char *const args[] = {
		"app", "--reps", "2", "--json", "-p", "zero",
		"-p", "prealloc:batch=16", "--", alloc_path, ALLOC_ARG, NULL
	};
	double pages = (ALLOC_MIB << 20) / page_size();
	const struct jrow *nat, *z, *pa;
	struct result res;
	struct jrows rows;
	int i;

	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "app", &rows);
	ck_assert_int_eq(rows.n, 3);
	for (i = 0; i < rows.n; i++) {
		ck_assert_double_eq(jnum(&rows.v[i], "reps"), 2);
		ck_assert_double_eq(jnum(&rows.v[i], "warmup_rounds"), 1);
		ck_assert_ptr_nonnull(strstr(jstr(&rows.v[i], "workload"),
					     "app-alloc " ALLOC_ARG));
		ck_assert_double_gt(jnum(&rows.v[i], "wall_ms"), 0);
		ck_assert_double_gt(jnum(&rows.v[i], "cpu_ms"), 0);
		ck_assert_double_gt(jnum(&rows.v[i], "rss_kib"), 0);
		ck_assert_double_gt(jnum(&rows.v[i], "ratio_vs_native"), 0);
		ck_assert_double_gt(jnum(&rows.v[i], "cpu_ratio_vs_native"),
				    0);
		/* the calloc'd buffer, paged by uffd-run */
		ck_assert_double_ge(jnum(&rows.v[i], "pages"), pages);
	}
	nat = find_row(&rows, jstr(&rows.v[0], "workload"), "native");
	z = find_row(&rows, jstr(&rows.v[0], "workload"), "zero");
	pa = find_row(&rows, jstr(&rows.v[0], "workload"),
		      "prealloc:batch=16");
	ck_assert_ptr_nonnull(nat);
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_nonnull(pa);
	ck_assert_double_eq(jnum(nat, "ratio_vs_native"), 1.0);
	ck_assert_double_eq(jnum(nat, "cpu_ratio_vs_native"), 1.0);
	ck_assert_double_eq(jnum(nat, "uffd_faults"), 0);
	ck_assert_double_eq(jnum(nat, "bytes_paged"), 0);
	/* a read fault per page of the buffer; its writes are the kernel's */
	ck_assert_double_ge(jnum(z, "uffd_faults"), pages);
	ck_assert_double_ge(jnum(z, "regions"), 1);
	ck_assert_double_ge(jnum(z, "bytes_paged"), ALLOC_MIB << 20);
	ck_assert_str_eq(jstr(z, "delivery"), "thread");
	/* prealloc zero-maps 16 pages a read fault */
	ck_assert_double_gt(jnum(pa, "uffd_faults"), 0);
	ck_assert_double_le(jnum(pa, "uffd_faults"),
			    jnum(z, "uffd_faults") / 8);
	free(rows.v);
	result_free(&res);
}
END_TEST

/* seed 004's Figure 2 for a program: both read= settings, a best batch */
START_TEST(app_sweep_csv_plot)
{
	char dir[] = "/tmp/test-bench.XXXXXX", csv[64], png[64];
	const char *args[] = {
		"app", "--reps", "1", "--sweep", "batch=1,16", "--csv", csv,
		"--plot", png, "--", alloc_path, "8", NULL
	};
	struct result res;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(csv, sizeof(csv), "%s/app.csv", dir);
	snprintf(png, sizeof(png), "%s/app.png", dir);
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "prealloc:batch=16,read=fill"));
	ck_assert_ptr_nonnull(strstr(res.out, "read=zero ms"));
	ck_assert_ptr_nonnull(strstr(res.out, "read=fill ms"));
	ck_assert_ptr_nonnull(strstr(res.out, "# best (lowest median wall)"
				     ": batch="));
	/* native, then 2 batches x read=zero, read=fill */
	ck_assert_int_eq(csv_lines(csv, ",batch,read"), 1 + 2 * 2);
	assert_png(png, &res);
	rmdir(dir);
	result_free(&res);
}
END_TEST

/*
 * A command that fails stops the experiment with one line naming where:
 * natively, or only under a pager (uffd-run's preload is in its
 * environment, which the native run does not have).
 */
START_TEST(app_command_fails)
{
	const char *const native[] = {
		"app", "--reps", "1", "-p", "zero", "--", "sh", "-c", "exit 3",
		NULL
	};
	const char *const paged[] = {
		"app", "--reps", "1", "-p", "zero", "--", "sh", "-c",
		"test -z \"$LD_PRELOAD\"", NULL
	};
	struct result res;

	run_bench(&res, native);
	ck_assert_int_eq(res.status, 1);
	ck_assert_msg(strstr(res.err, "under native: exit status 3"), "%s",
		      res.err);
	result_free(&res);

	run_bench(&res, paged);
	ck_assert_int_eq(res.status, 1);
	ck_assert_msg(strstr(res.err, "under zero: exit status 1"), "%s",
		      res.err);
	result_free(&res);
}
END_TEST

/* Ctrl-C: the run in progress finishes, the rows so far are printed. */
START_TEST(sigint_prints_rows)
{
	const char *const args[] = {
		"compare", "--size", "32M", "--reps", "200", "--json",
		"-w", "seq-write", "-p", "zero", NULL
	};
	struct result res;
	struct jrows rows;

	run_bench_ex(&res, args, 20, 1500);
	ck_assert_msg(res.status == 130, "exit %d: %s", res.status, res.err);
	ck_assert_ptr_nonnull(strstr(res.err, "interrupted"));
	parse_rows(res.out, "compare", &rows);
	ck_assert_int_ge(rows.n, 1);
	ck_assert_double_lt(jnum(&rows.v[0], "reps"), 200);
	free(rows.v);
	result_free(&res);
}
END_TEST

/* ------------------------------------------------------------------ */
/* restore                                                            */
/* ------------------------------------------------------------------ */

#define RESTORE_MIB	8
#define RESTORE_ARG	"8M"

/* The row of @label in the table of (@workload, @threads, @warm). */
static const struct jrow *restore_row(const struct jrows *rows,
				      const char *workload, const char *label,
				      int threads, bool warm)
{
	int i;

	for (i = 0; i < rows->n; i++) {
		const struct jrow *r = &rows->v[i];

		if (!strcmp(jstr(r, "workload"), workload) &&
		    !strcmp(jstr(r, "label"), label) &&
		    jnum(r, "threads") == threads &&
		    !strcmp(jstr(r, "cache"), "warm") == warm)
			return r;
	}
	return NULL;
}

/* Flip word @w of page @p of the image at @path. */
static void corrupt_word(const char *path, uint64_t p, uint64_t w)
{
	uint64_t v;
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &v, sizeof(v), (off_t)(p * 4096 + w * 8)),
			 sizeof(v));
	v = ~v;
	ck_assert_int_eq(pwrite(fd, &v, sizeof(v), (off_t)(p * 4096 + w * 8)),
			 sizeof(v));
	close(fd);
}

/*
 * Every table a run can hold (cold and warm, 1 and 2 threads, both
 * orders and touches), the kernel's rows and three pager strategies:
 * each row there, against kernel-mmap of its own table, with the page
 * counts of the image.  Then one word of the image flipped: the bench
 * must stop on it with exit 1 before printing anything.
 */
START_TEST(restore_json_rows)
{
	char dir[] = "/tmp/test-bench.XXXXXX", img[64];
	const char *args[] = {
		"restore", "--file", img, "--size", RESTORE_ARG, "--reps", "2",
		"--threads", "1,2", "--cache", "both", "--json",
		"--strategy", "mmap=engine=mmap,readahead=1",
		"--strategy", "uring+ra16=engine=uring,readahead=16",
		"--strategy", "prefetch=engine=uring,readahead=16,prefetch=1",
		NULL
	};
	const char *bad[] = {
		"restore", "--file", img, "--size", RESTORE_ARG, "--reps", "1",
		"--threads", "1", "--order", "seq", "--touch", "read", "--json",
		NULL
	};
	static const char *const workloads[] = {
		"seq-read", "seq-rw", "rand-read", "rand-rw",
	};
	static const char *const pagers[] = {
		"mmap", "uring+ra16", "prefetch",
	};
	double pages = (RESTORE_MIB << 20) / 4096, size_kib = pages * 4;
	const struct jrow *r;
	struct result res;
	struct jrows rows;
	int i, cell;
	size_t k;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/restore.img", dir);
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	parse_rows(res.out, "restore", &rows);
	/* 2 caches x 2 thread counts x 4 workloads x (2 kernel + 3) */
	ck_assert_int_eq(rows.n, 2 * 2 * 4 * 5);
	for (i = 0; i < rows.n; i++) {
		r = &rows.v[i];
		ck_assert_double_eq(jnum(r, "size_bytes"), RESTORE_MIB << 20);
		ck_assert_double_eq(jnum(r, "pages"), pages);
		ck_assert_double_eq(jnum(r, "reps"), 2);
		ck_assert_double_gt(jnum(r, "ns_per_page"), 0);
		ck_assert_double_gt(jnum(r, "ratio_vs_native"), 0);
		ck_assert_str_eq(jstr(r, "touch"),
				 strstr(jstr(r, "workload"), "-rw") ? "rw" :
				 "read");
	}
	/* each table: cold and warm, 1 and 2 threads, 4 workloads */
	for (cell = 0; cell < 2 * 2 * 4; cell++) {
		int warm = cell / 8, t = cell / 4 % 2 + 1, w = cell % 4;
		bool rw = strstr(workloads[w], "-rw") != NULL;
		const char *kname = rw ? "kernel-mmap-rw" : "kernel-mmap";

		/* the baseline of its own table: 1 exactly, no uffd */
		r = restore_row(&rows, workloads[w], kname, t, warm);
		ck_assert_msg(r, "no %s row in %s, %d threads, %s", kname,
			      workloads[w], t, warm ? "warm" : "cold");
		ck_assert_str_eq(jstr(r, "strategy"), kname);
		ck_assert_double_eq(jnum(r, "ratio_vs_native"), 1.0);
		ck_assert_double_eq(jnum(r, "uffd_faults"), 0);
		/* every page touched is mapped, from the cache or copied */
		ck_assert_double_ge(jnum(r, "rss_kib"), size_kib);
		/* a write after the read: a copy-on-write fault per page */
		if (rw)
			ck_assert_double_ge(jnum(r, "minflt") +
					    jnum(r, "majflt"), pages);

		/* eager: every page copied before the touch */
		r = restore_row(&rows, workloads[w], "kernel-populate", t,
				warm);
		ck_assert_ptr_nonnull(r);
		ck_assert_double_eq(jnum(r, "uffd_faults"), 0);
		ck_assert_double_ge(jnum(r, "rss_kib"), size_kib);

		for (k = 0; k < ARRAY_SIZE(pagers); k++) {
			r = restore_row(&rows, workloads[w], pagers[k], t,
					warm);
			ck_assert_msg(r, "no %s row in %s, %d threads, %s",
				      pagers[k], workloads[w], t,
				      warm ? "warm" : "cold");
			ck_assert_ptr_nonnull(strstr(jstr(r, "strategy"),
						     "file:engine="));
			/* every page filled, once */
			ck_assert_double_eq(jnum(r, "pages_copy") +
					    jnum(r, "pages_zero"), pages);
			ck_assert_double_gt(jnum(r, "uffd_faults"), 0);
			ck_assert_double_le(jnum(r, "uffd_faults"), pages);
			ck_assert_double_ge(jnum(r, "p99_us"),
					    jnum(r, "p50_us"));
			if (k == 0) {
				/* the "ratio" baseline; it copies zeros */
				ck_assert_double_eq(jnum(r, "ratio_vs_mmap"),
						    1.0);
				ck_assert_double_eq(jnum(r, "pages_zero"), 0);
			} else {
				/* holes map the zero page */
				ck_assert_double_gt(jnum(r, "pages_zero"), 0);
			}
			/*
			 * Read: the zero page costs no Rss.  Read then
			 * write: every page is the region's own.
			 */
			if (rw)
				ck_assert_double_eq(jnum(r, "rss_kib"),
						    size_kib);
			else
				ck_assert_double_eq(jnum(r, "rss_kib"),
						    jnum(r, "pages_copy") * 4);
		}
	}
	free(rows.v);
	result_free(&res);

	/* one word, not the one the touch reads: the full check finds it */
	corrupt_word(img, (uint64_t)pages / 2, 100);
	run_bench(&res, bad);
	ck_assert_msg(res.status == 1, "exit %d: %s", res.status, res.err);
	ck_assert_str_eq(res.out, "");
	ck_assert_msg(strstr(res.err, "kernel-mmap seq-read, 1 thread, cold: "
			     "1 pages wrong"), "%s", res.err);
	result_free(&res);
	unlink(img);
	rmdir(dir);
}
END_TEST

/*
 * The table: one header per cache state and thread count, an "x mmap"
 * column, kernel-mmap at 1 in its own table; the pager rows read then
 * written have a kernel-mmap-rw row to be compared with.
 */
START_TEST(restore_table)
{
	char dir[] = "/tmp/test-bench.XXXXXX", img[64];
	const char *args[] = {
		"restore", "--file", img, "--size", "4M", "--reps", "1",
		"--threads", "2", "--order", "random", "--warm",
		"--strategy", "mmap=engine=mmap,readahead=1",
		"--strategy", "pread=engine=pread,readahead=1", NULL
	};
	static const char *const names[] = {
		"\nkernel-mmap ", "\nkernel-mmap-rw ",
	};
	const char *p, *head;
	struct result res;
	double ms, ratio, x;
	size_t i;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/restore.img", dir);
	run_bench(&res, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_ptr_nonnull(strstr(res.out, "# machine: "));
	ck_assert_ptr_nonnull(strstr(res.out, "\n## warm cache, 2 threads\n"));
	ck_assert_ptr_null(strstr(res.out, "cold cache"));
	head = strstr(res.out, "\nrand-read ");
	ck_assert_msg(head, "no rand-read table: %s", res.out);
	ck_assert_ptr_nonnull(strstr(head, " x mmap "));
	ck_assert_ptr_nonnull(strstr(res.out, "\nrand-rw "));
	ck_assert_ptr_null(strstr(res.out, "\nseq-"));
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		p = strstr(res.out, names[i]);
		ck_assert_msg(p, "no %s row: %s", names[i] + 1, res.out);
		ck_assert_int_eq(sscanf(p, "%*s %lf %lf %lf", &ms, &ratio, &x),
				 3);
		ck_assert_double_gt(ms, 0);
		ck_assert_double_gt(ratio, 0);
		ck_assert_double_eq(x, 1.0);
	}
	/* both pager rows in both tables, each with an x mmap */
	for (p = res.out, i = 0; (p = strstr(p, "\npread ")); p++, i++) {
		ck_assert_int_eq(sscanf(p, "%*s %lf %lf %lf", &ms, &ratio, &x),
				 3);
		ck_assert_double_gt(x, 0);
	}
	ck_assert_int_eq(i, 2);
	unlink(img);
	rmdir(dir);
	result_free(&res);
}
END_TEST

/* restore's own options: bad values exit 2 and print no row */
static const char *const *const restore_bad_args[] = {
	(const char *const[]){ "restore", "--threads", "0", NULL },
	(const char *const[]){ "restore", "--threads", "1,,2", NULL },
	(const char *const[]){ "restore", "--threads", "9", NULL },
	(const char *const[]){ "restore", "--threads", "1,2,3,4,5", NULL },
	(const char *const[]){ "restore", "--threads", "2x", NULL },
	(const char *const[]){ "restore", "--touch", "write", NULL },
	(const char *const[]){ "restore", "--cache", "hot", NULL },
	(const char *const[]){ "restore", "--order", "zigzag", NULL },
};

START_TEST(restore_bad_input)
{
	const char *const *args = restore_bad_args[_i];
	struct result res;

	run_bench(&res, args);
	ck_assert_msg(res.status == 2, "%s %s: exit %d, stderr: %s", args[1],
		      args[2], res.status, res.err);
	ck_assert_str_eq(res.out, "");
	ck_assert_int_eq(count_lines(res.err), 1);
	result_free(&res);
}
END_TEST

/* ------------------------------------------------------------------ */
/* evict                                                              */
/* ------------------------------------------------------------------ */

/* "# kernel: cgroup v1 PATH, limit ..., swap file PATH SIZE ..." */
static void kernel_paths(const char *err, char *cg, char *swap, size_t len)
{
	const char *p = strstr(err, "# kernel: cgroup v");

	ck_assert_msg(p, "no '# kernel:' line: %s", err);
	ck_assert_int_eq(sscanf(p, "# kernel: cgroup v%*d %255[^,]", cg), 1);
	p = strstr(p, "swap file ");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p, "swap file %255s", swap), 1);
	ck_assert_int_lt(strlen(cg), len);
	ck_assert_int_lt(strlen(swap), len);
}

/*
 * The kernel row for real: a 32 MiB cgroup, W of 0.5 and 2 budgets, one
 * rep.  Over the budget the kernel must swap and keep the Rss near the
 * budget; the native row holds all of W; the swap file and the cgroup
 * are gone afterwards.  Every read checked its stamp, or the exit is 1.
 */
START_TEST(evict_kernel_swap)
{
	const char *args[] = {
		"evict", "--budget", "32M", "--ws", "0.5,2", "--reps", "1",
		"--pattern", "random", "--rows", "evict-file", "--json", NULL
	};
	/* the evict pager's row needs UFFDIO_MOVE */
	bool pager = (kernel_features() & LIBUFFD_FEATURE_MOVE) != 0;
	char cg[256], swap[256], line[512];
	struct jrows rows;
	struct result res;
	bool swapped = false, evicted = false;
	FILE *f;
	int i;

	run_bench_ex(&res, args, 2 * RUN_TIMEOUT_S, 0);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	kernel_paths(res.err, cg, swap, sizeof(cg));
	ck_assert_ptr_nonnull(strstr(res.err, "(created and removed)"));
	ck_assert_int_eq(access(swap, F_OK), -1);
	ck_assert_int_eq(access(cg, F_OK), -1);
	f = fopen("/proc/swaps", "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		ck_assert_msg(!strstr(line, swap), "still on: %s", line);
	fclose(f);

	parse_rows(res.out, "evict", &rows);
	/* random-read and random-write, 2 sizes, kernel, native, pager */
	ck_assert_int_eq(rows.n, 2 * 2 * (pager ? 3 : 2));
	for (i = 0; i < rows.n; i++) {
		const struct jrow *r = &rows.v[i];
		double ws = jnum(r, "ws_ratio"), b = jnum(r, "budget_bytes");
		bool kernel = !strcmp(jstr(r, "strategy"), "kernel");
		bool evict = !strcmp(jstr(r, "strategy"), "evict-file");

		ck_assert_double_eq(b, 32.0 * 1024 * 1024);
		ck_assert_double_eq(jnum(r, "size_bytes"), ws * b);
		ck_assert_double_eq(jnum(r, "accesses"), 3 * jnum(r, "pages"));
		ck_assert_double_gt(jnum(r, "ns_per_page"), 0);
		ck_assert_double_gt(jnum(r, "ratio_vs_kernel"), 0);
		if (kernel)
			ck_assert_double_eq(jnum(r, "ratio_vs_kernel"), 1);
		ck_assert_msg(!strncmp(jstr(r, "workload"), "random-", 7),
			      "%s", jstr(r, "workload"));
		if (ws < 2)
			continue;
		if (kernel) {
			/* a random walk over 2 budgets misses half the time */
			ck_assert_double_gt(jnum(r, "swap_out"), 0);
			ck_assert_double_gt(jnum(r, "swap_in"), 0);
			ck_assert_double_gt(jnum(r, "minflt") +
					    jnum(r, "majflt"),
					    jnum(r, "accesses") / 4);
			/*
			 * The limit holds.  Rss also counts the child's
			 * mapped program and libraries (uffd-bench, libc,
			 * libuffd, liburing: ~9 MiB here, more in a
			 * sanitizer build), which are not charged to the
			 * cgroup; 16 MiB of slack is still far below the
			 * 2 budgets an unlimited run keeps resident.
			 */
			ck_assert_double_lt(jnum(r, "rss_kib"),
					    b / 1024 + 16 * 1024);
			ck_assert_double_lt(b / 1024 + 16 * 1024,
					    ws * b / 1024);
			swapped = true;
		} else if (evict) {
			/* the pager's own write-back and read-in */
			ck_assert_double_gt(jnum(r, "swap_out"), 0);
			ck_assert_double_gt(jnum(r, "swap_in"), 0);
			ck_assert_double_gt(jnum(r, "minflt"),
					    jnum(r, "accesses") / 4);
			ck_assert_double_lt(jnum(r, "rss_kib"),
					    b / 1024 + 16 * 1024);
			evicted = true;
		} else {
			ck_assert_double_ge(jnum(r, "rss_kib"), ws * b / 1024);
		}
	}
	ck_assert(swapped);
	ck_assert(evicted == pager);
	free(rows.v);
	result_free(&res);
}
END_TEST

/*
 * Whether this machine can swap on a file in /tmp, tried for real (root,
 * a filesystem that takes swap files, mkswap): evict_kernel_swap needs it.
 */
static bool swap_file_works(char *why, size_t len)
{
	char path[64], cmd[128];
	bool ok = false;
	int fd;

	if (geteuid()) {
		snprintf(why, len, "not root: no swapon");
		return false;
	}
	if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) &&
	    access("/sys/fs/cgroup/cgroup.controllers", F_OK)) {
		snprintf(why, len, "no memory cgroup");
		return false;
	}
	snprintf(path, sizeof(path), "/tmp/test-bench-swap-%d", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || posix_fallocate(fd, 0, 4 << 20)) {
		snprintf(why, len, "cannot make a file in /tmp");
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "PATH=/usr/sbin:/sbin:$PATH mkswap -q %s "
		 ">/dev/null 2>&1", path);
	if (system(cmd)) {
		snprintf(why, len, "mkswap failed");
		goto out;
	}
	if (swapon(path, 0)) {
		snprintf(why, len, "swapon on /tmp: %s", strerror(errno));
		goto out;
	}
	ok = !swapoff(path);
	if (!ok)
		snprintf(why, len, "swapoff: %s", strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	unlink(path);
	return ok;
}

/* ------------------------------------------------------------------ */

static bool find_bench(void)
{
	const char *env = getenv("UFFD_BENCH");
	const char *demos = getenv("LIBUFFD_DEMOS");

	if (env && *env) {
		snprintf(bench_path, sizeof(bench_path), "%s", env);
		return !access(bench_path, X_OK);
	}
	if (demos && *demos) {
		snprintf(bench_path, sizeof(bench_path), "%.*s/uffd-bench",
			 PATH_MAX - 32, demos);
		if (!access(bench_path, X_OK))
			return true;
	}
	return find_above_exe("demos/uffd-bench", bench_path, sizeof(bench_path));
}

static Suite *bench_suite(void)
{
	Suite *s = suite_create("uffd-bench");
	char why[256];
	TCase *tc;

	tc = tcase_create("arguments");
	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_loop_test(tc, bad_input_exits_2, 0,
			    (int)(sizeof(bad_args) / sizeof(bad_args[0])));
	tcase_add_test(tc, help_fits_a_screen);
	tcase_add_test(tc, dirty_rows);
	suite_add_tcase(s, tc);

	tc = tcase_create("experiments");
	tcase_set_timeout(tc, 2 * RUN_TIMEOUT_S);
	tcase_add_test(tc, compare_json_rows);
	tcase_add_test(tc, compare_csv_and_table);
	tcase_add_test(tc, zero_double_fault);
	tcase_add_test(tc, populate_table);
	tcase_add_test(tc, prezero);
	tcase_add_test(tc, huge_zero);
	tcase_add_test(tc, batch_sweep_csv_plot);
	tcase_add_test(tc, fault_trace);
	tcase_add_test(tc, latency);
	tcase_add_test(tc, sigint_prints_rows);
	suite_add_tcase(s, tc);

	tc = tcase_create("app");
	tcase_set_timeout(tc, 2 * RUN_TIMEOUT_S);
	tcase_add_test(tc, app_table);
	tcase_add_test(tc, app_json_rows);
	tcase_add_test(tc, app_sweep_csv_plot);
	tcase_add_test(tc, app_command_fails);
	suite_add_tcase(s, tc);

	tc = tcase_create("restore");
	tcase_set_timeout(tc, 2 * RUN_TIMEOUT_S);
	tcase_add_loop_test(tc, restore_bad_input, 0,
			    (int)ARRAY_SIZE(restore_bad_args));
	tcase_add_test(tc, restore_json_rows);
	tcase_add_test(tc, restore_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("evict");
	tcase_set_timeout(tc, 3 * RUN_TIMEOUT_S);
	if (swap_file_works(why, sizeof(why)))
		tcase_add_test(tc, evict_kernel_swap);
	else
		skip_case("evict_kernel_swap", "%s", why);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	require_kernel(0, 0);
	/* probed once, before the tests fork */
	print_native_facts(stderr);
	if (!find_bench()) {
		fprintf(stderr, "uffd-bench not found (build demos/uffd-bench "
			"or set UFFD_BENCH)\n");
		return TEST_EXIT_HARD_ERROR;
	}
	if (!find_above_exe("tests/app-alloc", alloc_path, sizeof(alloc_path))) {
		fprintf(stderr, "tests/app-alloc not found (make check builds "
			"it)\n");
		return TEST_EXIT_HARD_ERROR;
	}
	sr = srunner_create(bench_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
