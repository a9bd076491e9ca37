/* SPDX-License-Identifier: MIT */
/*
 * zero-double-fault (seed 000): `x *= 3` over 64 Mi int32 (256 MiB) that
 * start as calloc'd zeros, against the same walk over memory written with
 * ones first.  A fresh anonymous mapping reads as the shared zero page, so
 * the walk's load faults once (map the zero page) and its store faults
 * again (copy-on-write to a real page): 2 faults per page.  Memory written
 * first took one write fault per page during the fill and none in the walk.
 *
 * Natively and through the zero and prealloc pagers; and the seed's own
 * Rust program, compiled here in both variants and run as a child, its
 * minor faults read from wait4().
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"

/* The seed's program, verbatim but for the initial value. */
static const char rust_src[] =
"use std::time::Instant;\n"
"\n"
"fn main() {\n"
"    let mut array = vec![%di32; 64 * 1024 * 1024];\n"
"\n"
"    let start = Instant::now();\n"
"    workload(&mut array);\n"
"    let dur = start.elapsed().as_millis();\n"
"\n"
"    println!(\"duration: {}ms\", dur);\n"
"}\n"
"\n"
"fn workload(arr: &mut [i32]) {\n"
"    for i in 0..arr.len() {\n"
"        arr[i] *= 3;\n"
"    }\n"
"}\n";

#define RUST_BYTES	(256 * MIB)	/* 64 Mi int32, fixed by the seed */

/* ------------------------------------------------------------------ */
/* Our walk                                                           */
/* ------------------------------------------------------------------ */

/* What `vec![1i32; n]` does after allocating: write every element. */
static BENCH_NOSAN void fill_ones(int32_t *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		((volatile int32_t *)a)[i] = 1;
}

/*
 * The seed's loop.  x86 has no multiply with a memory destination, so
 * this is a load, a multiply and a store per element whatever the
 * compiler makes of it: the load faults first on untouched memory.
 */
static BENCH_NOSAN void times3(int32_t *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		a[i] *= 3;
	__asm__ __volatile__("" : : "r" (a) : "memory");
}

struct zsample {
	bool		valid;
	double		fill_ns, walk_ns;
	uint64_t	fill_minflt, walk_minflt;
	uint64_t	majflt;		/* fill and walk */
	uint64_t	walk_majflt;
	uint64_t	uffd_fill, uffd_walk;
	uint64_t	rss_kib, helper_ns;
};

static uint64_t uffd_count(const struct mapping *m, uint64_t *helper)
{
	struct uffd_stats st;

	*helper = 0;
	if (!m->region)
		return 0;
	if (uffd_region_stats(m->region, &st, sizeof(st)))
		return 0;
	*helper = st.helper_cpu_ns + uffd_ctx_handler_cpu_ns(m->ctx);
	return st.faults_read + st.faults_write;
}

static void run_zdf(const struct strategy *s, bool ones, struct zsample *o)
{
	struct mapping m;
	struct rusage r0, r1, r2;
	uint64_t t0, t1, t2, u0, u1, u2, h0, h1, h2;
	size_t n;

	strategy_setup(s, cfg.size, &m);
	n = m.len / sizeof(int32_t);
	u0 = uffd_count(&m, &h0);
	getrusage(RUSAGE_THREAD, &r0);
	t0 = now_ns();
	if (ones)
		fill_ones((int32_t *)m.addr, n);
	t1 = now_ns();
	getrusage(RUSAGE_THREAD, &r1);
	u1 = uffd_count(&m, &h1);
	times3((int32_t *)m.addr, n);
	t2 = now_ns();
	getrusage(RUSAGE_THREAD, &r2);
	u2 = uffd_count(&m, &h2);

	o->valid = true;
	o->fill_ns = (double)(t1 - t0);
	o->walk_ns = (double)(t2 - t1);
	o->fill_minflt = (uint64_t)(r1.ru_minflt - r0.ru_minflt);
	o->walk_minflt = (uint64_t)(r2.ru_minflt - r1.ru_minflt);
	/* a fault userfaultfd served counts as major on some kernels (6.1) */
	o->majflt = (uint64_t)(r2.ru_majflt - r0.ru_majflt);
	o->walk_majflt = (uint64_t)(r2.ru_majflt - r1.ru_majflt);
	o->uffd_fill = u1 - u0;
	o->uffd_walk = u2 - u1;
	o->helper_ns = h2 - h0;
	o->rss_kib = smaps_rss_kib(m.addr, m.len, NULL);
	strategy_teardown(s, &m);
}

/* ------------------------------------------------------------------ */
/* The seed's Rust program                                            */
/* ------------------------------------------------------------------ */

static bool find_rustc(char *out, size_t len)
{
	const char *env = getenv("RUSTC"), *home = getenv("HOME");
	const char *path = getenv("PATH"), *p, *e;

	if (env && *env && !access(env, X_OK)) {
		snprintf(out, len, "%s", env);
		return true;
	}
	for (p = path ? path : ""; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		snprintf(out, len, "%.*s/rustc", (int)(e - p), p);
		if (e > p && !access(out, X_OK))
			return true;
	}
	if (home) {
		snprintf(out, len, "%s/.cargo/bin/rustc", home);
		if (!access(out, X_OK))
			return true;
	}
	snprintf(out, len, "/root/.cargo/bin/rustc");
	return !access(out, X_OK);
}

struct rust {
	char	dir[64];
	char	bin[2][96];	/* [0] zeros, [1] ones */
	bool	ok;
};

/* Compile both variants into a temporary directory (not timed). */
static void rust_build(struct rust *rs)
{
	char rustc[4096], src[96], text[sizeof(rust_src) + 8];
	char *argv[8];
	int v, pid, status;
	FILE *f;

	memset(rs, 0, sizeof(*rs));
	if (!find_rustc(rustc, sizeof(rustc))) {
		note("rustc not found (PATH, $RUSTC, ~/.cargo/bin): the seed's "
		     "Rust program is not run");
		return;
	}
	snprintf(rs->dir, sizeof(rs->dir), "/tmp/uffd-bench-rust.XXXXXX");
	if (!mkdtemp(rs->dir)) {
		note("mkdtemp: %s: the seed's Rust program is not run",
		     strerror(errno));
		rs->dir[0] = '\0';
		return;
	}
	for (v = 0; v < 2; v++) {
		snprintf(src, sizeof(src), "%s/%s.rs", rs->dir,
			 v ? "ones" : "zeros");
		snprintf(rs->bin[v], sizeof(rs->bin[v]), "%s/%s", rs->dir,
			 v ? "ones" : "zeros");
		snprintf(text, sizeof(text), rust_src, v);
		f = fopen(src, "we");
		if (!f || fputs(text, f) < 0 || fclose(f)) {
			note("cannot write %s: the seed's Rust program is not "
			     "run", src);
			return;
		}
		/* rustc -O is opt-level=2; cargo --release is 3 */
		argv[0] = rustc;
		argv[1] = (char *)"-C";
		argv[2] = (char *)"opt-level=3";
		argv[3] = (char *)"-o";
		argv[4] = rs->bin[v];
		argv[5] = src;
		argv[6] = NULL;
		if (spawn(argv, STDERR_FILENO, &pid) ||
		    waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			note("%s failed to compile the seed's program: it is "
			     "not run", rustc);
			return;
		}
	}
	rs->ok = true;
}

static void rust_clean(struct rust *rs)
{
	char path[128];
	int v;

	if (!rs->dir[0])
		return;
	for (v = 0; v < 2; v++) {
		snprintf(path, sizeof(path), "%s/%s.rs", rs->dir,
			 v ? "ones" : "zeros");
		unlink(path);
		unlink(rs->bin[v]);
	}
	rmdir(rs->dir);
}

struct rsample {
	bool		valid;
	double		wall_ns, walk_ns;
	uint64_t	minflt, majflt, maxrss_kib;
};

static void rust_run(const struct rust *rs, int v, struct rsample *o)
{
	char *argv[2] = { (char *)rs->bin[v], NULL };
	char buf[256];
	struct rusage ru;
	uint64_t t0, t1;
	int fds[2], pid, status;
	ssize_t n;
	size_t len = 0;
	long ms = -1;
	char *p;

	memset(o, 0, sizeof(*o));
	if (pipe2(fds, O_CLOEXEC))
		die_sys("pipe");
	t0 = now_ns();
	if (spawn(argv, fds[1], &pid)) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	close(fds[1]);
	while (len + 1 < sizeof(buf) &&
	       (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fds[0]);
	if (wait4(pid, &status, 0, &ru) != pid)
		die_sys("wait4");
	t1 = now_ns();
	p = strstr(buf, "duration: ");
	if (p)
		ms = strtol(p + 10, NULL, 10);
	if (!WIFEXITED(status) || WEXITSTATUS(status) || ms < 0)
		return;
	o->valid = true;
	o->wall_ns = (double)(t1 - t0);
	o->walk_ns = (double)ms * 1e6;
	o->minflt = (uint64_t)ru.ru_minflt;
	o->majflt = (uint64_t)ru.ru_majflt;
	o->maxrss_kib = (uint64_t)ru.ru_maxrss;
}

/* ------------------------------------------------------------------ */
/* The experiment                                                     */
/* ------------------------------------------------------------------ */

#define ZMEDIAN(field, cond, expr)					\
	({								\
		size_t _n = 0;						\
		for (rep = 0; rep < cfg.reps; rep++) {			\
			const struct zsample *field =			\
				&zs[(rep * 2 + v) * ns + si];		\
			if (cond)					\
				tmp[_n++] = (expr);			\
		}							\
		median(tmp, _n);					\
	})

void experiment_zero_double_fault(void)
{
	static const struct col cols[] = {
		{ "memory", "workload", 0, 0, COL_LEFT },
		{ "strategy", "strategy", 0, 0, COL_LEFT },
		{ "ns/page", "ns_per_page", 1, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "fill ms", "fill_ms", 1, 0, 0 },
		{ "walk ms", "walk_ms", 1, 0, 0 },
		{ "faults/page", "faults_per_page", 3, 0, 0 },
		{ "walk flt/page", "walk_faults", 3, 0, COL_PER_PAGE },
		{ "uffd/page", "uffd_faults", 3, 0, COL_PER_PAGE },
		{ "rss KiB", "rss_kib", 0, 0, 0 },
	};
	static const char *const variant[2] = { "zeros", "ones" };
	struct strategy s[16];
	struct zsample *zs;
	struct rsample *rsm;
	struct rust rs;
	struct rows rows = { 0 };
	struct progress pg;
	double *tmp, *tmp2;
	size_t ns = 0, si, i;
	unsigned int rep;
	int v;

	ns = native_strategies(s, false, false);
	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers && ns < ARRAY_SIZE(s); i++)
			s[ns++] = (struct strategy){ .name = cfg.pagers[i],
						     .kind = S_PAGER,
						     .spec = cfg.pagers[i] };
	} else {
		if (have_pager("zero"))
			s[ns++] = (struct strategy){ .name = "zero",
						     .kind = S_PAGER,
						     .spec = "zero" };
		if (have_pager("prealloc"))
			s[ns++] = (struct strategy){ .name = "prealloc",
						     .kind = S_PAGER,
						     .spec = "prealloc" };
	}
	zs = xcalloc((size_t)cfg.reps * 2 * ns, sizeof(*zs));
	rsm = xcalloc((size_t)cfg.reps * 2, sizeof(*rsm));
	tmp = xcalloc(cfg.reps, sizeof(*tmp));
	tmp2 = xcalloc(cfg.reps, sizeof(*tmp2));

	rust_build(&rs);
	warm_up(cfg.size);
	progress_start(&pg, cfg.reps * 2 * ((unsigned int)ns + rs.ok));
	for (rep = 0; rep < cfg.reps && !bench_stopped(); rep++)
		for (v = 0; v < 2; v++) {
			for (si = 0; si < ns; si++) {
				struct zsample *z = &zs[(rep * 2 + v) * ns +
							si];

				if (bench_stopped())
					goto done;
				run_zdf(&s[si], v, z);
				progress_step(&pg, "rep %u %s %s: walk %.0f "
					      "ms", rep + 1, variant[v],
					      s[si].name, z->walk_ns / 1e6);
			}
			if (rs.ok && !bench_stopped()) {
				rust_run(&rs, v, &rsm[rep * 2 + v]);
				progress_step(&pg, "rep %u %s seed-rust",
					      rep + 1, variant[v]);
			}
		}
done:
	progress_end(&pg);
	rust_clean(&rs);

	for (v = 0; v < 2; v++) {
		for (si = 0; si < ns; si++) {
			struct row *r;
			size_t n = 0, nr = 0;

			for (rep = 0; rep < cfg.reps; rep++) {
				const struct zsample *a =
					&zs[(rep * 2 + v) * ns + si];
				const struct zsample *b =
					&zs[(rep * 2 + v) * ns];

				if (!a->valid)
					continue;
				tmp[n++] = (a->fill_ns + a->walk_ns) /
					   (double)cfg.pages;
				if (b->valid)
					tmp2[nr++] = (a->fill_ns + a->walk_ns) /
						     (b->fill_ns + b->walk_ns);
			}
			if (!n)
				continue;
			r = rows_add(&rows);
			row_init(r, variant[v], s[si].name, cfg.size,
				 cfg.pages, n);
			r->ns_per_page = median(tmp, n);
			r->ratio_vs_native = median(tmp2, nr);
			r->minflt = (uint64_t)ZMEDIAN(z, z->valid,
				(double)(z->fill_minflt + z->walk_minflt));
			r->majflt = (uint64_t)ZMEDIAN(z, z->valid,
						      (double)z->majflt);
			r->uffd_faults = (uint64_t)ZMEDIAN(z, z->valid,
				(double)(z->uffd_fill + z->uffd_walk));
			r->rss_kib = (uint64_t)ZMEDIAN(z, z->valid,
						       (double)z->rss_kib);
			r->helper_cpu_ns = (uint64_t)ZMEDIAN(z, z->valid,
				(double)z->helper_ns);
			row_dbl(r, "faults_per_page",
				(double)(r->minflt + r->majflt) /
				(double)cfg.pages);
			row_dbl(r, "fill_ms", ZMEDIAN(z, z->valid,
						      z->fill_ns / 1e6));
			row_dbl(r, "walk_ms", ZMEDIAN(z, z->valid,
						      z->walk_ns / 1e6));
			row_dbl(r, "walk_ns_per_page", ZMEDIAN(z, z->valid,
				z->walk_ns / (double)cfg.pages));
			row_u64(r, "fill_minflt", (uint64_t)ZMEDIAN(z,
				z->valid, (double)z->fill_minflt));
			row_u64(r, "walk_minflt", (uint64_t)ZMEDIAN(z,
				z->valid, (double)z->walk_minflt));
			row_u64(r, "walk_faults", (uint64_t)ZMEDIAN(z,
				z->valid,
				(double)(z->walk_minflt + z->walk_majflt)));
			row_u64(r, "walk_uffd_faults", (uint64_t)ZMEDIAN(z,
				z->valid, (double)z->uffd_walk));
			row_str(r, "timed", "fill + walk");
		}
		if (rs.ok) {
			const struct rsample *a;
			size_t n = 0, nr = 0, nw = 0;
			double nat = NAN;
			struct row *r;

			for (i = 0; i < rows.n; i++)
				if (!strcmp(rows.v[i].workload, variant[v]) &&
				    !strcmp(rows.v[i].strategy, "native"))
					nat = rows.v[i].ns_per_page;
			for (rep = 0; rep < cfg.reps; rep++) {
				a = &rsm[rep * 2 + v];
				if (a->valid)
					tmp[n++] = a->wall_ns;
			}
			if (!n)
				continue;
			r = rows_add(&rows);
			row_init(r, variant[v], "seed-rust", RUST_BYTES,
				 RUST_BYTES / page_size, n);
			r->ns_per_page = median(tmp, n) / (double)r->pages;
			r->ratio_vs_native = r->ns_per_page / nat;
			for (rep = 0; rep < cfg.reps; rep++) {
				a = &rsm[rep * 2 + v];
				if (a->valid) {
					tmp[nr++] = (double)a->minflt;
					tmp2[nw++] = a->walk_ns;
				}
			}
			r->minflt = (uint64_t)median(tmp, nr);
			for (n = 0, rep = 0; rep < cfg.reps; rep++)
				if (rsm[rep * 2 + v].valid)
					tmp[n++] = (double)
						rsm[rep * 2 + v].majflt;
			r->majflt = (uint64_t)median(tmp, n);
			for (n = 0, rep = 0; rep < cfg.reps; rep++)
				if (rsm[rep * 2 + v].valid)
					tmp[n++] = (double)
						rsm[rep * 2 + v].maxrss_kib;
			r->rss_kib = (uint64_t)median(tmp, n);
			row_dbl(r, "faults_per_page",
				(double)(r->minflt + r->majflt) /
				(double)r->pages);
			row_dbl(r, "fill_ms", NAN);
			row_dbl(r, "walk_ms", median(tmp2, nw) / 1e6);
			row_dbl(r, "walk_ns_per_page",
				median(tmp2, nw) / (double)r->pages);
			/* its walk faults are unknown: only the total is */
			row_str(r, "fill_minflt", NULL);
			row_str(r, "walk_minflt", NULL);
			row_str(r, "walk_faults", NULL);
			row_str(r, "walk_uffd_faults", NULL);
			row_str(r, "timed", "whole child process");
		}
	}
	bench_emit(&rows, 0, bench_fmt("zero-double-fault: x *= 3 over "
				       "int32, %s, %s",
				       bench_what(cfg.size, cfg.reps),
				       bench_pin_desc()),
		   cols, ARRAY_SIZE(cols));

	if (!cfg.json && rows.n) {
		note("ns/page times the fill (ones only) plus the walk; faults "
		     "are the faults of both, minor and major, per page");
		note("seed-rust: the seed's program (%llu MiB), wall time of "
		     "the whole child; its walk ms is what it printed; faults "
		     "from wait4(), Rss is its peak", RUST_BYTES / MIB);
		for (si = 0; si < ns + rs.ok; si++) {
			const char *name = si < ns ? s[si].name : "seed-rust";
			const struct row *z = NULL, *o = NULL;

			for (i = 0; i < rows.n; i++) {
				if (strcmp(rows.v[i].strategy, name))
					continue;
				if (!strcmp(rows.v[i].workload, "zeros"))
					z = &rows.v[i];
				else
					o = &rows.v[i];
			}
			if (!z || !o)
				continue;
			note("%-10s walk over zeros %.0f ms vs over ones %.0f "
			     "ms (%.1fx); faults/page %.2f vs %.2f", name,
			     row_get(z, "walk_ms").d, row_get(o, "walk_ms").d,
			     row_get(z, "walk_ms").d / row_get(o, "walk_ms").d,
			     row_get(z, "faults_per_page").d,
			     row_get(o, "faults_per_page").d);
		}
		note("seed 000 (Rust --release, 256 MiB, playground): zeros "
		     "278 ms vs ones 17 ms (16x); perf: 2x the faults on "
		     "zeros, 65K (1/page) on ones");
		if (native_zero_page() == 0)
			note("this kernel maps no zero page on a native read "
			     "(pvm_no_zero_page=1, say): natively seed 000 "
			     "takes 1 fault per page; the zero pager's rows "
			     "show its double fault (a uffd read fault, then "
			     "the kernel's copy-on-write)");
	}
	if (cfg.plot_path && rows.n)
		plot_clusters(&rows, "ns per page, fill + walk (median)",
			      "ns_per_page");
	rows_free(&rows);
	free(zs);
	free(rsm);
	free(tmp);
	free(tmp2);
}
