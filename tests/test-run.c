// SPDX-License-Identifier: MIT
/*
 * uffd-run, run as a child process on unmodified programs: every
 * built-in pager must leave a program's output exactly as a native run
 * prints it while really paging its memory (the stats file must show
 * regions, bytes and faults), the seed 000 Rust program must take the
 * faults the seed describes (two per page under "zero", one per batch
 * with read=fill), a Python job must run unchanged, bad specs and a
 * denied userfaultfd must be refused or survived as documented, and the
 * statistics must be written even when the program dies of a signal.
 *
 * Fault counts come from the stats file (uffd faults) and from the
 * kernel's own rusage of the reaped children (every fault, the kernel's
 * copy-on-write ones included).  Nothing here measures speed.
 *
 * The programs run: tests/run-workload (libc only, next to this test),
 * demos/seed000 (built when configure found rustc; otherwise its cases
 * are left out with a SKIP-CASE line), python3 ($PYTHON, else
 * /usr/bin/python3, else PATH).  uffd-run is $LIBUFFD_DEMOS/uffd-run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <check.h>

#include "helpers.h"

/* One run of a program: generous, for the zero pager on a busy machine. */
#define RUN_TIMEOUT_S	180
#define CASE_TIMEOUT_S	(2 * RUN_TIMEOUT_S + 60)
#define NOBODY		65534
/* seed 000: vec![0i32; 64 * 1024 * 1024] */
#define SEED_BYTES	(64ul * 1024 * 1024 * 4)

static char uffd_run[PATH_MAX], workload[PATH_MAX], seed000[PATH_MAX];
static char python[PATH_MAX], tmpdir[PATH_MAX / 2];
static char sparse_file[PATH_MAX], empty_file[PATH_MAX];
static bool have_python;

/* ------------------------------------------------------------------ */
/* A JSON reader: the stats file as (path, value) pairs                */
/* ------------------------------------------------------------------ */

#define JSON_MAX	512

enum jtype { J_NUM, J_STR, J_BOOL, J_NULL, J_ARR, J_OBJ };

struct jent {
	char		path[96];	/* "stats.faults_read", "stats.hist_us[3]" */
	enum jtype	t;
	double		num;
	bool		b;
	int		nelem;		/* arrays and objects */
	char		str[256];
};

struct json {
	struct jent	e[JSON_MAX];
	int		n;
};

static const char *jws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static struct jent *jfind(struct json *j, const char *path)
{
	int i;

	for (i = 0; i < j->n; i++)
		if (!strcmp(j->e[i].path, path))
			return &j->e[i];
	return NULL;
}

static struct jent *jadd(struct json *j, const char *path, enum jtype t)
{
	struct jent *e;

	if (j->n >= JSON_MAX || strlen(path) >= sizeof(e->path))
		return NULL;
	e = &j->e[j->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->t = t;
	return e;
}

static const char *jstring(const char *p, char *out, size_t len)
{
	size_t n = 0;

	if (*p != '"')
		return NULL;
	for (p++; *p && *p != '"'; p++) {
		char c = *p;

		if ((unsigned char)c < 0x20)
			return NULL;
		if (c == '\\') {
			p++;
			if (strchr("\"\\/", *p))
				c = *p;
			else if (strchr("bfnrt", *p))
				c = ' ';
			else if (*p == 'u' && strspn(p + 1,
					"0123456789abcdefABCDEF") >= 4)
				c = '?', p += 4;
			else
				return NULL;
		}
		if (n + 1 < len)
			out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

static const char *jvalue(struct json *j, const char *p, const char *path)
{
	char key[64], sub[128];
	struct jent *e;
	char *end;

	p = jws(p);
	if (*p == '{' || *p == '[') {
		bool obj = *p == '{';

		e = jadd(j, path, obj ? J_OBJ : J_ARR);
		if (!e)
			return NULL;
		p = jws(p + 1);
		if (*p == (obj ? '}' : ']'))
			return p + 1;
		for (;;) {
			if (obj) {
				p = jstring(jws(p), key, sizeof(key));
				if (!p)
					return NULL;
				p = jws(p);
				if (*p++ != ':')
					return NULL;
				snprintf(sub, sizeof(sub), "%s%s%s", path,
					 *path ? "." : "", key);
				if (jfind(j, sub))
					return NULL;	/* duplicate key */
			} else {
				snprintf(sub, sizeof(sub), "%s[%d]", path,
					 e->nelem);
			}
			p = jvalue(j, p, sub);
			if (!p)
				return NULL;
			e->nelem++;
			p = jws(p);
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p == (obj ? '}' : ']'))
				return p + 1;
			return NULL;
		}
	}
	if (*p == '"') {
		e = jadd(j, path, J_STR);
		return e ? jstring(p, e->str, sizeof(e->str)) : NULL;
	}
	if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
		e = jadd(j, path, J_BOOL);
		if (!e)
			return NULL;
		e->b = *p == 't';
		return p + (e->b ? 4 : 5);
	}
	if (!strncmp(p, "null", 4))
		return jadd(j, path, J_NULL) ? p + 4 : NULL;
	if (*p != '-' && (*p < '0' || *p > '9'))
		return NULL;
	e = jadd(j, path, J_NUM);
	if (!e)
		return NULL;
	e->num = strtod(p, &end);
	return end > p ? end : NULL;
}

/* Parse @text, one JSON object; 0, or -EINVAL with @j holding a prefix. */
static int json_parse(struct json *j, const char *text)
{
	const char *p;

	j->n = 0;
	if (*jws(text) != '{')
		return -EINVAL;
	p = jvalue(j, text, "");
	return p && !*jws(p) ? 0 : -EINVAL;
}

/* In a test: the number at @path. */
static double jnum(struct json *j, const char *path)
{
	struct jent *e = jfind(j, path);

	ck_assert_msg(e, "stats have no \"%s\"", path);
	ck_assert_msg(e->t == J_NUM, "stats \"%s\" is not a number", path);
	return e->num;
}

static const char *jstr(struct json *j, const char *path)
{
	struct jent *e = jfind(j, path);

	ck_assert_msg(e, "stats have no \"%s\"", path);
	ck_assert_msg(e->t == J_STR, "stats \"%s\" is not a string", path);
	return e->str;
}

static bool jbool(struct json *j, const char *path)
{
	struct jent *e = jfind(j, path);

	ck_assert_msg(e, "stats have no \"%s\"", path);
	ck_assert_msg(e->t == J_BOOL, "stats \"%s\" is not a boolean", path);
	return e->b;
}

static char *slurp(const char *path)
{
	struct stat st;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || !(buf = calloc(1, (size_t)st.st_size + 1))) {
		close(fd);
		return NULL;
	}
	if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	return buf;
}

/*
 * In a test: the stats file @path, which must be one JSON object on one
 * line (a newline may end it).
 */
static void read_stats(struct json *j, const char *path)
{
	char *text = slurp(path), *nl;

	ck_assert_msg(text, "no stats file %s: %s", path, strerror(errno));
	nl = strchr(text, '\n');
	ck_assert_msg(!nl || !nl[1], "stats file is not one line: %s", text);
	ck_assert_msg(!json_parse(j, text), "stats file is not JSON: %s",
		      text);
	free(text);
}

/* uffd faults of any kind, summed over the run. */
static double uffd_faults(struct json *j)
{
	return jnum(j, "stats.faults_read") + jnum(j, "stats.faults_write") +
	       jnum(j, "stats.faults_wp") + jnum(j, "stats.faults_minor");
}

/*
 * In a test: the run really paged memory through the library, and no
 * page failed.
 */
static void assert_paged(struct json *j, const char *pager)
{
	ck_assert_msg(jbool(j, "paged"), "stats say nothing was paged");
	ck_assert_str_eq(jstr(j, "pager"), pager);
	ck_assert_msg(jnum(j, "processes") >= 1, "no process reported");
	ck_assert_msg(jnum(j, "regions") > 0, "no region was paged");
	ck_assert_msg(jnum(j, "bytes_paged") > 0, "no byte was paged");
	ck_assert_msg(uffd_faults(j) > 0, "no uffd fault was served");
	ck_assert_msg(jnum(j, "stats.pages_copy") + jnum(j, "stats.pages_zero") +
		      jnum(j, "stats.pages_move") > 0, "no page was filled");
	ck_assert_msg(jnum(j, "stats.pager_errors") == 0 &&
		      jnum(j, "stats.poisoned") == 0,
		      "pager failures: %.0f, pages poisoned: %.0f",
		      jnum(j, "stats.pager_errors"), jnum(j, "stats.poisoned"));
}

/* ------------------------------------------------------------------ */
/* Running things                                                     */
/* ------------------------------------------------------------------ */

/* A file in the test's directory, named after @name and @i. */
static void tmp_path(char *out, size_t len, const char *name, int i)
{
	snprintf(out, len, "%s/%s-%d", tmpdir, name, i);
	unlink(out);
}

/*
 * Run uffd-run with @opts (NULL-terminated), then "--", then @cmd
 * (NULL-terminated).
 */
static void run_uffd(struct result *res, const char *const *opts,
		     const char *const *cmd, int (*setup)(void *), void *arg)
{
	const char *args[48];
	int n = 0, i;

	for (i = 0; opts[i]; i++)
		args[n++] = opts[i];
	args[n++] = "--";
	for (i = 0; cmd[i] && n < 47; i++)
		args[n++] = cmd[i];
	args[n] = NULL;
	run_program(res, uffd_run, args, RUN_TIMEOUT_S, 0, setup, arg);
}

/* run_program() for an argv whose [0] is the program. */
static void run_argv(struct result *res, const char *const *argv,
		     int (*setup)(void *), void *arg)
{
	run_program(res, argv[0], argv + 1, RUN_TIMEOUT_S, 0, setup, arg);
}

/* Faults (minor + major) of the children reaped so far. */
static long children_faults(void)
{
	struct rusage ru;

	ck_assert_int_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
	return ru.ru_minflt + ru.ru_majflt;
}

/* In a test: @got is what @native printed, or say where it is not. */
static void assert_same_output(const char *what, const char *native,
			       const char *got)
{
	const char *a = native, *b = got;
	int line = 1;

	if (!strcmp(native, got))
		return;
	while (*a && *a == *b) {
		if (*a == '\n') {
			line++;
			native = a + 1;
			got = b + 1;
		}
		a++;
		b++;
	}
	ck_abort_msg("%s differs from the native run at line %d:\n"
		     "native: %.*s\npaged:  %.*s", what, line,
		     (int)strcspn(native, "\n"), native,
		     (int)strcspn(got, "\n"), got);
}

/* Replace "@SPARSE" and "@EMPTY" in a pager spec by the files' paths. */
static void expand_spec(char *out, size_t len, const char *spec)
{
	const char *at = strchr(spec, '@');
	const char *file;
	size_t name;

	if (!at) {
		snprintf(out, len, "%s", spec);
		return;
	}
	name = strspn(at + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	file = !strncmp(at + 1, "SPARSE", name) ? sparse_file : empty_file;
	snprintf(out, len, "%.*s%s%s", (int)(at - spec), spec, file,
		 at + 1 + name);
}

/* ------------------------------------------------------------------ */
/* run-workload under every pager                                     */
/* ------------------------------------------------------------------ */

/*
 * Every built-in pager.  "file" reads a sparse 64 GiB file (holes read
 * as zeros: ZEROPAGE for reads, fresh pages for writes) and, with an
 * empty file, serves everything from past its end, which it maps as
 * zeros without any I/O.
 */
static const char *const pagers[] = {
	"zero",
	"prealloc:batch=64",
	"prealloc:batch=16,read=fill",
	"prezero:batch=16,pool=2048",
	"hugezero",
	"hugezero:nohzp=1",
	"file:path=@SPARSE",
	"file:path=@EMPTY,engine=pread",
};

/*
 * run-workload with @mode natively and under @opts: identical stdout
 * and stderr, exit 0; the stats file is read into @j.
 */
static void workload_both(const char *mode, const char *const *opts,
			  const char *stats, struct json *j)
{
	const char *cmd[] = { workload, mode, NULL };
	struct result nat, pag;

	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_msg(nat.status == 0, "native run-workload exited %d:\n%s%s",
		      nat.status, nat.out, nat.err);
	run_uffd(&pag, opts, cmd, NULL, NULL);
	ck_assert_msg(pag.status == 0, "paged run-workload exited %d:\n"
		      "stdout: %s\nstderr: %s", pag.status, pag.out, pag.err);
	assert_same_output("stdout", nat.out, pag.out);
	assert_same_output("stderr", nat.err, pag.err);
	read_stats(j, stats);
	result_free(&nat);
	result_free(&pag);
}

START_TEST(workload_under_pager)
{
	char spec[PATH_MAX + 64], stats[PATH_MAX];
	const char *opts[] = { "--pager", spec, "--stats-file", stats, NULL };
	static struct json j;

	expand_spec(spec, sizeof(spec), pagers[_i]);
	tmp_path(stats, sizeof(stats), "pager", _i);
	workload_both("", opts, stats, &j);
	assert_paged(&j, spec);
	ck_assert_str_eq(jstr(&j, "delivery"), "thread");
	/*
	 * The workload's fork child stays paged (EVENT_FORK) and pages
	 * what it allocates itself, and what the fork+exec child execs at
	 * last pages its own: three processes that registered regions.
	 */
	ck_assert_msg(jnum(&j, "stats.events_fork") >= 1,
		      "no fork was followed");
	ck_assert_msg(jnum(&j, "paged_processes") >= 3,
		      "%.0f paged processes reported, not the parent, its "
		      "fork child and the exec'd one",
		      jnum(&j, "paged_processes"));
	ck_assert_msg(jnum(&j, "processes") >= jnum(&j, "paged_processes"),
		      "fewer processes than paged ones");
}
END_TEST

/*
 * SIGBUS delivery, on the workload without kernel-side writes: the
 * faults are served in the faulting threads.
 */
static const char *const sigbus_pagers[] = {
	"zero", "prealloc:batch=64", "prealloc:batch=16,read=fill",
};

/* run-workload in @mode under sigbus_pagers[@i], SIGBUS delivery. */
static void workload_sigbus(int i, const char *mode, const char *tag)
{
	char stats[PATH_MAX];
	const char *opts[] = { "--pager", sigbus_pagers[i], "--delivery",
			       "sigbus", "--stats-file", stats, NULL };
	static struct json j;

	tmp_path(stats, sizeof(stats), tag, i);
	workload_both(mode, opts, stats, &j);
	assert_paged(&j, sigbus_pagers[i]);
	ck_assert_str_eq(jstr(&j, "delivery"), "sigbus");
	ck_assert_msg(jnum(&j, "stats.sigbus_faults") > 0,
		      "no fault was served in a SIGBUS handler");
}

START_TEST(workload_sigbus_user)
{
	workload_sigbus(_i, "nokernel", "sigbus-user");
}
END_TEST

/*
 * SIGBUS delivery with read(2), O_DIRECT and MADV_POPULATE_WRITE into
 * paged memory, which the kernel answers with EFAULT in that mode.  The
 * preload promises to handle them (it touches the paged part of the
 * buffer from user space and retries): the run must behave as natively.
 */
START_TEST(workload_sigbus_kernel)
{
	workload_sigbus(_i, "", "sigbus-kernel");
}
END_TEST

/*
 * --native: the same launcher without the preload.  Same output, and
 * stats that say so.
 */
START_TEST(native_launcher)
{
	char stats[PATH_MAX];
	const char *opts[] = { "--native", "--stats-file", stats, NULL };
	static struct json j;

	tmp_path(stats, sizeof(stats), "native", 0);
	workload_both("", opts, stats, &j);
	ck_assert_msg(!jbool(&j, "paged"), "--native says it paged");
	ck_assert_msg(jnum(&j, "regions") == 0 &&
		      jnum(&j, "bytes_paged") == 0 && uffd_faults(&j) == 0,
		      "--native counted regions %.0f, bytes %.0f, faults %.0f",
		      jnum(&j, "regions"), jnum(&j, "bytes_paged"),
		      uffd_faults(&j));
}
END_TEST

/*
 * --min-size 4K pages nearly everything the program maps, the library's
 * own allocations in its handler thread excepted: had those been paged,
 * the handler would wait on itself and the run would hang.
 */
START_TEST(min_size_one_page)
{
	char stats[PATH_MAX], stats_def[PATH_MAX];
	const char *opts[] = { "--min-size", "4K", "--pager",
			       "prealloc:batch=16,read=fill", "--stats-file",
			       stats, NULL };
	const char *opts_def[] = { "--pager", "prealloc:batch=16,read=fill",
				   "--stats-file", stats_def, NULL };
	static struct json j, jd;

	tmp_path(stats, sizeof(stats), "minsize", 0);
	tmp_path(stats_def, sizeof(stats_def), "minsize", 1);
	workload_both("", opts, stats, &j);
	workload_both("", opts_def, stats_def, &jd);
	assert_paged(&j, "prealloc:batch=16,read=fill");
	ck_assert_msg(jnum(&j, "min_size") == 4096, "min_size %.0f",
		      jnum(&j, "min_size"));
	ck_assert_msg(jnum(&j, "regions") > jnum(&jd, "regions"),
		      "--min-size 4K paged %.0f regions, the default %.0f",
		      jnum(&j, "regions"), jnum(&jd, "regions"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Seed 000                                                           */
/* ------------------------------------------------------------------ */

/* In a test: @out is exactly one line "duration: <digits>ms". */
static void assert_seed_line(const char *out)
{
	const char *p = out;
	size_t digits;

	ck_assert_msg(!strncmp(p, "duration: ", 10), "seed000 printed: %s",
		      out);
	p += 10;
	digits = strspn(p, "0123456789");
	ck_assert_msg(digits > 0 && !strcmp(p + digits, "ms\n"),
		      "seed000 printed: %s", out);
}

/*
 * Run seed000 (@variant: NULL or "ones") under @pager: its output line,
 * its stats in @j, and in *kernel_faults every fault the kernel counted
 * for the run (uffd-run and its children, from rusage).
 */
static void seed_run(const char *pager, const char *variant, int i,
		     struct json *j, long *kernel_faults)
{
	char stats[PATH_MAX];
	const char *opts[] = { "--pager", pager, "--stats-file", stats, NULL };
	const char *cmd[] = { seed000, variant, NULL };
	struct result res;
	long before;

	tmp_path(stats, sizeof(stats), "seed", i);
	before = children_faults();
	run_uffd(&res, opts, cmd, NULL, NULL);
	*kernel_faults = children_faults() - before;
	ck_assert_msg(res.status == 0, "seed000 under %s exited %d: %s",
		      pager, res.status, res.err);
	assert_seed_line(res.out);
	ck_assert_msg(!*res.err, "stderr: %s", res.err);
	read_stats(j, stats);
	assert_paged(j, pager);
	ck_assert_msg(jnum(j, "bytes_paged") >= SEED_BYTES,
		      "%.0f bytes paged, less than the array",
		      jnum(j, "bytes_paged"));
	result_free(&res);
}

/*
 * "zero": the zeros walk reads each page first (a uffd read fault,
 * answered with the zero page) and then writes it (the kernel's own
 * copy-on-write fault, which the pager never sees): two faults per page.
 */
START_TEST(seed_zero)
{
	double pages = (double)(SEED_BYTES / page_size()), uffd;
	static struct json j;
	long kernel;

	seed_run("zero", NULL, 0, &j, &kernel);
	uffd = uffd_faults(&j);
	ck_assert_msg(jnum(&j, "stats.faults_read") >= pages,
		      "%.0f uffd read faults for %.0f pages",
		      jnum(&j, "stats.faults_read"), pages);
	/* each uffd fault is one fault to the kernel too; the rest CoW */
	ck_assert_msg(kernel - uffd >= pages,
		      "kernel faults %ld - uffd faults %.0f: fewer than one "
		      "copy-on-write per page (%.0f)", kernel, uffd, pages);
	fprintf(stderr, "seed000 zero: uffd faults %.0f (read %.0f), "
		"kernel faults %ld, pages %.0f\n", uffd,
		jnum(&j, "stats.faults_read"), kernel, pages);
}
END_TEST

/* "zero", ones: written first, one uffd write fault per page, no CoW. */
START_TEST(seed_ones)
{
	double pages = (double)(SEED_BYTES / page_size()), uffd;
	static struct json j;
	long kernel;

	seed_run("zero", "ones", 1, &j, &kernel);
	uffd = uffd_faults(&j);
	ck_assert_msg(jnum(&j, "stats.faults_write") >= pages,
		      "%.0f uffd write faults for %.0f pages",
		      jnum(&j, "stats.faults_write"), pages);
	ck_assert_msg(kernel - uffd < pages / 8,
		      "kernel faults %ld - uffd faults %.0f: copy-on-write "
		      "faults on written memory?", kernel, uffd);
	fprintf(stderr, "seed000 ones zero: uffd faults %.0f, kernel "
		"faults %ld, pages %.0f\n", uffd, kernel, pages);
}
END_TEST

/*
 * prealloc:batch=64,read=fill: a read fault fills 64 real zeroed pages,
 * so the walk takes one uffd fault per 64 pages and no copy-on-write.
 */
START_TEST(seed_prealloc_fill)
{
	double pages = (double)(SEED_BYTES / page_size()), uffd;
	static struct json j;
	long kernel;

	seed_run("prealloc:batch=64,read=fill", NULL, 2, &j, &kernel);
	uffd = uffd_faults(&j);
	ck_assert_msg(uffd >= pages / 64 && uffd <= pages / 64 + pages / 512,
		      "%.0f uffd faults for %.0f pages in batches of 64",
		      uffd, pages);
	ck_assert_msg(kernel - uffd < pages / 8,
		      "kernel faults %ld - uffd faults %.0f: the read fills "
		      "left copy-on-write faults", kernel, uffd);
	fprintf(stderr, "seed000 prealloc fill: uffd faults %.0f, kernel "
		"faults %ld, pages %.0f\n", uffd, kernel, pages);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Python                                                             */
/* ------------------------------------------------------------------ */

/*
 * A list of 20 M small ints (one array that the comprehension grows by
 * realloc), 2 M distinct ints (pymalloc's 1 MiB arenas, mapped
 * directly), a 64 MiB bytearray written one byte a page, and digests of
 * them all.
 */
static const char python_script[] =
	"import hashlib\n"
	"l = [i & 255 for i in range(20_000_000)]\n"
	"print(len(l), sum(l))\n"
	"m = [i * 7 for i in range(2_000_000)]\n"
	"print(len(m), sum(m), m[-1])\n"
	"b = bytearray(64 << 20)\n"
	"b[1::4096] = b'\\x01' * (len(b) // 4096)\n"
	"for i in range(0, len(b), 1 << 20):\n"
	"    b[i] = (i >> 20) & 255\n"
	"print(len(b), b.count(1), hashlib.sha256(b).hexdigest())\n";

static const char *const python_pagers[] = {
	"zero", "prealloc:batch=64,read=fill",
};

START_TEST(python_job)
{
	char stats[PATH_MAX];
	const char *opts[] = { "--pager", python_pagers[_i], "--stats-file",
			       stats, NULL };
	const char *cmd[] = { python, "-c", python_script, NULL };
	struct result nat, pag;
	static struct json j;

	tmp_path(stats, sizeof(stats), "python", _i);
	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_msg(nat.status == 0, "native python exited %d: %s",
		      nat.status, nat.err);
	run_uffd(&pag, opts, cmd, NULL, NULL);
	ck_assert_msg(pag.status == 0, "paged python exited %d: %s",
		      pag.status, pag.err);
	assert_same_output("stdout", nat.out, pag.out);
	assert_same_output("stderr", nat.err, pag.err);
	ck_assert_int_eq(count_lines(pag.out), 3);
	read_stats(&j, stats);
	assert_paged(&j, python_pagers[_i]);
	/* at least the bytearray and the list of 20 M pointers */
	ck_assert_msg(jnum(&j, "bytes_paged") >= (64 << 20) + 20e6 * 8,
		      "only %.0f bytes paged", jnum(&j, "bytes_paged"));
	result_free(&nat);
	result_free(&pag);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Refusals                                                           */
/* ------------------------------------------------------------------ */

/* What a refused run must not do: a command that leaves a marker. */
static void marker_cmd(const char **cmd, char *marker, size_t len,
		       const char *name, int i)
{
	tmp_path(marker, len, name, i);
	cmd[0] = "/bin/sh";
	cmd[1] = "-c";
	cmd[2] = "echo ran > \"$0\"";
	cmd[3] = marker;
	cmd[4] = NULL;
}

static void assert_not_run(const char *marker)
{
	ck_assert_msg(access(marker, F_OK) && errno == ENOENT,
		      "the command ran (%s exists)", marker);
}

/* Bad specs and options, each with the word the line should name. */
static const struct {
	const char	*opt, *val, *word;
} bad_args[] = {
	{ "--pager", "nosuch", "nosuch" },
	{ "--pager", "prealloc:batch=0", "batch" },
	{ "--pager", "prealloc:nosuchkey=1", "nosuchkey" },
	{ "--min-size", "1Q", "1Q" },
	{ "--delivery", "nope", "nope" },
};

START_TEST(bad_arg_refused)
{
	char marker[PATH_MAX];
	const char *cmd[5];
	const char *opts[] = { bad_args[_i].opt, bad_args[_i].val, NULL };
	struct result res;

	marker_cmd(cmd, marker, sizeof(marker), "bad", _i);
	run_uffd(&res, opts, cmd, NULL, NULL);
	ck_assert_msg(res.status == 2, "%s %s: exit %d, stderr: %s",
		      bad_args[_i].opt, bad_args[_i].val, res.status, res.err);
	ck_assert_msg(count_lines(res.err) == 1,
		      "%s %s: not one line on stderr: %s", bad_args[_i].opt,
		      bad_args[_i].val, res.err);
	ck_assert_msg(strstr(res.err, bad_args[_i].word),
		      "%s %s: the line does not name \"%s\": %s",
		      bad_args[_i].opt, bad_args[_i].val, bad_args[_i].word,
		      res.err);
	ck_assert_msg(!*res.out, "stdout: %s", res.out);
	assert_not_run(marker);
	result_free(&res);
}
END_TEST

#if defined(__x86_64__)
#define SECCOMP_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH	AUDIT_ARCH_AARCH64
#endif

#ifdef SECCOMP_ARCH
/*
 * What a container's seccomp profile does to userfaultfd: the syscall
 * and /dev/userfaultfd's USERFAULTFD_IOC_NEW fail with EPERM (the ioctl
 * too, or root would still get a userfaultfd from the device).
 */
static int block_userfaultfd(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		/* the low half of the request, on a little-endian machine */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
			 (unsigned int)USERFAULTFD_IOC_NEW, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = ARRAY_SIZE(f), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}
#else
static int block_userfaultfd(void)
{
	errno = ENOSYS;
	return -1;
}
#endif

/* Become nobody: no /dev/userfaultfd, no kernel-mode userfaultfd. */
static int drop_privileges(void)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return -1;
	return getuid() == NOBODY ? 0 : -1;
}

/* child_setup for run_program: what the denied cases take away. */
enum denial {
	DENY_SECCOMP,		/* root, with the seccomp filter */
	DENY_NOBODY_SECCOMP,	/* nobody, with the seccomp filter */
	DENY_NOBODY,		/* nobody only: UFFD_USER_MODE_ONLY works */
};

static int deny(void *arg)
{
	enum denial d = *(enum denial *)arg;

	if (d != DENY_SECCOMP && drop_privileges()) {
		fprintf(stderr, "cannot become uid %d: %s\n", NOBODY,
			strerror(errno));
		return -1;
	}
	if (d != DENY_NOBODY && block_userfaultfd()) {
		fprintf(stderr, "seccomp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static const char *const denial_names[] = {
	"seccomp", "nobody+seccomp", "nobody",
};

/*
 * userfaultfd unusable: the command runs unpaged, exactly as natively,
 * after one warning line ("uffd-run: userfaultfd unusable (<reason>):
 * running COMMAND unpaged", docs/uffd-run.md).
 */
START_TEST(denied_runs_unpaged)
{
	enum denial d = (enum denial)_i;
	const char *cmd[] = { workload, NULL };
	const char *opts[] = { "--pager", "zero", NULL };
	struct result nat, pag;

	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_int_eq(nat.status, 0);
	run_uffd(&pag, opts, cmd, deny, &d);
	ck_assert_msg(pag.status == 0, "%s: exit %d, stderr: %s",
		      denial_names[d], pag.status, pag.err);
	assert_same_output("stdout", nat.out, pag.out);
	ck_assert_msg(!strncmp(pag.err, "uffd-run: ", 10) &&
		      count_lines(pag.err) == 1 &&
		      strstr(pag.err, "userfaultfd unusable"),
		      "%s: not one warning line: %s", denial_names[d],
		      pag.err);
	fprintf(stderr, "%s: %s", denial_names[d], pag.err);
	result_free(&nat);
	result_free(&pag);
}
END_TEST

/* The same with --strict: exit 2 before the command starts. */
START_TEST(denied_strict_refused)
{
	enum denial d = (enum denial)_i;
	char marker[PATH_MAX];
	const char *cmd[5];
	const char *opts[] = { "--strict", "--pager", "zero", NULL };
	struct result res;

	marker_cmd(cmd, marker, sizeof(marker), "strict", _i);
	run_uffd(&res, opts, cmd, deny, &d);
	ck_assert_msg(res.status == 2, "%s --strict: exit %d, stderr: %s",
		      denial_names[d], res.status, res.err);
	ck_assert_msg(!strncmp(res.err, "uffd-run: ", 10) &&
		      count_lines(res.err) == 1 &&
		      strstr(res.err, "userfaultfd unusable"),
		      "%s --strict: not one line on userfaultfd: %s",
		      denial_names[d], res.err);
	assert_not_run(marker);
	result_free(&res);
}
END_TEST

/*
 * Nobody without seccomp: vm.unprivileged_userfaultfd=0 leaves only
 * UFFD_USER_MODE_ONLY, under which the kernel answers read(2), O_DIRECT
 * and MADV_POPULATE into a paged buffer with EFAULT.  Whether uffd-run
 * pages the program or warns and runs it unpaged, the program must
 * behave as natively.
 */
START_TEST(unprivileged_same_output)
{
	enum denial d = DENY_NOBODY;
	const char *cmd[] = { workload, NULL };
	const char *opts[] = { "--pager", "zero", NULL };
	struct result nat, pag;

	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_int_eq(nat.status, 0);
	run_uffd(&pag, opts, cmd, deny, &d);
	ck_assert_msg(pag.status == 0, "exit %d, stdout: %s\nstderr: %s",
		      pag.status, pag.out, pag.err);
	assert_same_output("stdout", nat.out, pag.out);
	ck_assert_msg(!*pag.err || (!strncmp(pag.err, "uffd-run: ", 10) &&
				   count_lines(pag.err) == 1 &&
				   strstr(pag.err, "userfaultfd unusable")),
		      "stderr: %s", pag.err);
	fprintf(stderr, "nobody: %s\n", *pag.err ? pag.err : "(paged)");
	result_free(&nat);
	result_free(&pag);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Statistics                                                         */
/* ------------------------------------------------------------------ */

/*
 * A paged program that dies of SIGTERM: uffd-run dies of it too, and
 * the stats are written all the same.
 */
START_TEST(stats_on_signal_death)
{
	char stats[PATH_MAX];
	const char *opts[] = { "--pager", "zero", "--stats-file", stats,
			       NULL };
	const char *cmd[] = { workload, "die", NULL };
	struct result nat, pag;
	static struct json j;

	tmp_path(stats, sizeof(stats), "die", 0);
	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_int_eq(nat.status, 128 + SIGTERM);
	run_uffd(&pag, opts, cmd, NULL, NULL);
	ck_assert_msg(pag.status == 128 + SIGTERM,
		      "uffd-run ended with %d, not killed by SIGTERM: %s",
		      pag.status, pag.err);
	assert_same_output("stdout", nat.out, pag.out);
	read_stats(&j, stats);
	assert_paged(&j, "zero");
	result_free(&nat);
	result_free(&pag);
}
END_TEST

/*
 * A pager that fails a fault: the program dies of SIGBUS at that page, as
 * with the library, after what it printed before; the stats still come.
 * The file pager's inject_eio fails every read of region page 3.
 */
START_TEST(pager_failure_sigbus)
{
	char stats[PATH_MAX], spec[PATH_MAX + 64];
	const char *opts[] = { "--pager", spec, "--stats-file", stats, NULL };
	const char *cmd[] = { workload, "pagerfail", NULL };
	struct result nat, pag;
	static struct json j;

	snprintf(spec, sizeof(spec), "file:path=%s,inject_eio=3",
		 sparse_file);
	tmp_path(stats, sizeof(stats), "pagerfail", 0);
	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_int_eq(nat.status, 0);
	ck_assert_str_eq(nat.out, "pagerfail page 0: 0\npagerfail page 3: 0\n");
	run_uffd(&pag, opts, cmd, NULL, NULL);
	ck_assert_msg(pag.status == 128 + SIGBUS,
		      "uffd-run ended with %d, not killed by SIGBUS: %s",
		      pag.status, pag.err);
	ck_assert_str_eq(pag.out, "pagerfail page 0: 0\n");
	read_stats(&j, stats);
	ck_assert_msg(jnum(&j, "stats.pager_errors") >= 1,
		      "no pager error counted");
	ck_assert_msg(jnum(&j, "regions") >= 1, "nothing paged");
	result_free(&nat);
	result_free(&pag);
}
END_TEST

/*
 * The stats file: every key the interface names, with its type, and
 * every counter uffd_stats_format() writes, in "stats".
 */
START_TEST(stats_json_keys)
{
	static const char *const top_num[] = {
		"min_size", "processes", "paged_processes", "regions",
		"bytes_paged",
	};
	static const char *const stats_num[] = {
		"handler_cpu_ns", "p50_us", "p99_us",
	};
	char stats[PATH_MAX], key[128], buf[4096];
	const char *opts[] = { "--pager", "prealloc:batch=64", "--min-size",
			       "4M", "--stats-file", stats, NULL };
	struct uffd_stats zero = { 0 };
	static struct json j, lib;
	struct jent *hist;
	size_t i;
	int n;

	tmp_path(stats, sizeof(stats), "keys", 0);
	workload_both("", opts, stats, &j);
	ck_assert_str_eq(jstr(&j, "pager"), "prealloc:batch=64");
	ck_assert_str_eq(jstr(&j, "delivery"), "thread");
	ck_assert_msg(jbool(&j, "paged"), "not paged");
	for (i = 0; i < ARRAY_SIZE(top_num); i++)
		jnum(&j, top_num[i]);
	ck_assert_msg(jnum(&j, "min_size") == 4 << 20, "min_size %.0f",
		      jnum(&j, "min_size"));
	for (i = 0; i < ARRAY_SIZE(stats_num); i++) {
		snprintf(key, sizeof(key), "stats.%s", stats_num[i]);
		jnum(&j, key);
	}
	hist = jfind(&j, "stats.hist_us");
	ck_assert_msg(hist && hist->t == J_ARR &&
		      hist->nelem == LIBUFFD_HIST_BUCKETS,
		      "stats.hist_us is not an array of %d",
		      LIBUFFD_HIST_BUCKETS);

	/* every counter the library formats, by the library's own names */
	n = uffd_stats_format(&zero, LIBUFFD_FMT_JSON, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(n, (int)sizeof(buf));
	ck_assert_int_eq(json_parse(&lib, buf), 0);
	for (n = 0; n < lib.n; n++) {
		if (!lib.e[n].path[0] || strchr(lib.e[n].path, '['))
			continue;
		snprintf(key, sizeof(key), "stats.%s", lib.e[n].path);
		ck_assert_msg(jfind(&j, key), "stats file lacks \"%s\"", key);
	}
}
END_TEST

/* --stats text: the summary on stderr, stdout untouched. */
START_TEST(stats_text)
{
	const char *cmd[] = { workload, NULL };
	const char *opts[] = { "--pager", "zero", "--stats", "text", NULL };
	struct result nat, pag;

	run_argv(&nat, cmd, NULL, NULL);
	ck_assert_int_eq(nat.status, 0);
	run_uffd(&pag, opts, cmd, NULL, NULL);
	ck_assert_msg(pag.status == 0, "exit %d: %s", pag.status, pag.err);
	assert_same_output("stdout", nat.out, pag.out);
	ck_assert_msg(strstr(pag.err, "faults_read"),
		      "no summary on stderr: %s", pag.err);
	result_free(&nat);
	result_free(&pag);
}
END_TEST

/* ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

/* The test's scratch directory, writable by nobody too, and its files. */
static int make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	int fd;

	snprintf(tmpdir, sizeof(tmpdir), "%s/test-run.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir) || chmod(tmpdir, 0777))
		return -errno;
	/* run-workload writes its file here too */
	setenv("TMPDIR", tmpdir, 1);
	snprintf(sparse_file, sizeof(sparse_file), "%s/sparse", tmpdir);
	snprintf(empty_file, sizeof(empty_file), "%s/empty", tmpdir);
	fd = open(sparse_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, 64ll << 30))
		return -errno;
	close(fd);
	fd = open(empty_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static bool find_python(void)
{
	const char *env = getenv("PYTHON"), *path = getenv("PATH"), *p, *e;

	if (env && *env) {
		snprintf(python, sizeof(python), "%s", env);
		return !access(python, X_OK);
	}
	/* a real binary rather than a version manager's shell shim */
	snprintf(python, sizeof(python), "/usr/bin/python3");
	if (!access(python, X_OK))
		return true;
	for (p = path ? path : ""; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		snprintf(python, sizeof(python), "%.*s/python3", (int)(e - p),
			 p);
		if (e > p && !access(python, X_OK))
			return true;
	}
	return false;
}

/* Whether uid nobody can run uffd-run and the workload from here. */
static bool nobody_can_run(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return false;
	if (!pid)
		_exit(drop_privileges() || access(uffd_run, X_OK) ||
		      access(workload, X_OK) || access(tmpdir, W_OK));
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       !WEXITSTATUS(status);
}

static Suite *run_suite_create(void)
{
	Suite *s = suite_create("uffd-run");
	TCase *tc;
	int d;

	tc = add_tcase(s, "pagers", NULL, NULL);
	tcase_set_timeout(tc, CASE_TIMEOUT_S);
	tcase_add_loop_test(tc, workload_under_pager, 0, ARRAY_SIZE(pagers));
	tcase_add_loop_test(tc, workload_sigbus_user, 0,
			    ARRAY_SIZE(sigbus_pagers));
	tcase_add_loop_test(tc, workload_sigbus_kernel, 0,
			    ARRAY_SIZE(sigbus_pagers));
	tcase_add_test(tc, native_launcher);

	tc = add_tcase(s, "seed000", NULL, NULL);
	tcase_set_timeout(tc, CASE_TIMEOUT_S);
#ifdef HAVE_SEED000
	tcase_add_test(tc, seed_zero);
	tcase_add_test(tc, seed_ones);
	tcase_add_test(tc, seed_prealloc_fill);
#else
	skip_case("seed_zero, seed_ones, seed_prealloc_fill",
		  "configure found no rustc: demos/seed000 is not built");
#endif

	tc = add_tcase(s, "python", NULL, NULL);
	tcase_set_timeout(tc, CASE_TIMEOUT_S);
	if (have_python)
		tcase_add_loop_test(tc, python_job, 0,
				    ARRAY_SIZE(python_pagers));
	else
		skip_case("python_job", "no python3 ($PYTHON, "
			  "/usr/bin/python3, PATH)");

	tc = add_tcase(s, "refusals", NULL, NULL);
	tcase_set_timeout(tc, CASE_TIMEOUT_S);
	tcase_add_loop_test(tc, bad_arg_refused, 0, ARRAY_SIZE(bad_args));
#ifdef SECCOMP_ARCH
	d = DENY_SECCOMP;
	tcase_add_loop_test(tc, denied_runs_unpaged, d, d + 1);
	tcase_add_loop_test(tc, denied_strict_refused, d, d + 1);
	d = DENY_NOBODY_SECCOMP;
	if (nobody_can_run()) {
		tcase_add_loop_test(tc, denied_runs_unpaged, d, d + 1);
		tcase_add_loop_test(tc, denied_strict_refused, d, d + 1);
		tcase_add_test(tc, unprivileged_same_output);
	} else {
		skip_case("denied_*(nobody), unprivileged_same_output",
			  "uid %d cannot reach %s, %s or %s", NOBODY,
			  uffd_run, workload, tmpdir);
	}
#else
	(void)d;
	skip_case("denied_*", "no seccomp filter written for this "
		  "architecture");
#endif

	tc = add_tcase(s, "stats", NULL, NULL);
	tcase_set_timeout(tc, CASE_TIMEOUT_S);
	tcase_add_test(tc, stats_on_signal_death);
	tcase_add_test(tc, min_size_one_page);
	tcase_add_test(tc, pager_failure_sigbus);
	tcase_add_test(tc, stats_json_keys);
	tcase_add_test(tc, stats_text);
	return s;
}

int main(void)
{
	const char *demos = getenv("LIBUFFD_DEMOS");
	int ret;

	require_kernel(0, 0);
	if (!demos || !*demos) {
		fprintf(stderr, "ERROR: LIBUFFD_DEMOS is not set (make check "
			"sets it)\n");
		return TEST_EXIT_HARD_ERROR;
	}
	snprintf(uffd_run, sizeof(uffd_run), "%.*s/uffd-run", PATH_MAX - 16,
		 demos);
	snprintf(seed000, sizeof(seed000), "%.*s/seed000", PATH_MAX - 16,
		 demos);
	if (access(uffd_run, X_OK)) {
		fprintf(stderr, "ERROR: %s: %s\n", uffd_run, strerror(errno));
		return TEST_EXIT_HARD_ERROR;
	}
#ifdef HAVE_SEED000
	if (access(seed000, X_OK)) {
		fprintf(stderr, "ERROR: %s: %s (configure found rustc)\n",
			seed000, strerror(errno));
		return TEST_EXIT_HARD_ERROR;
	}
#endif
	if (!find_above_exe("tests/run-workload", workload, sizeof(workload))) {
		fprintf(stderr, "ERROR: tests/run-workload not found\n");
		return TEST_EXIT_HARD_ERROR;
	}
	have_python = find_python();
	ret = make_tmpdir();
	if (ret < 0) {
		fprintf(stderr, "ERROR: scratch files in %s: %s\n", tmpdir,
			strerror(-ret));
		return TEST_EXIT_HARD_ERROR;
	}
	ret = run_suite(run_suite_create());
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
