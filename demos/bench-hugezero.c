/* SPDX-License-Identifier: MIT */
/*
 * huge-zero (seed 003): Kirill Shutemov's huge zero page (Linux 3.8).
 * Reading 200 MiB of untouched memory maps the 4 KiB zero page everywhere
 * and costs almost no memory; with transparent huge pages and no huge zero
 * page, each read fault allocated a real, zeroed 2 MiB page: Rss grew to
 * 200 MiB.  The huge zero page brought it back to ~0.
 *
 * Rows: the kernel without THP, with THP and the huge zero page, with THP
 * and use_zero_page=0 (set for the run, put back after), and the hugezero
 * pager with and without its emulated huge zero page.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static bool thp_possible(char *why, size_t len)
{
	char en[128] = "";
	FILE *f;

	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	if (!f || !fgets(en, sizeof(en), f)) {
		snprintf(why, len, "no transparent_hugepage in sysfs");
		if (f)
			fclose(f);
		return false;
	}
	fclose(f);
	if (strstr(en, "[never]")) {
		snprintf(why, len, "THP is disabled ([never])");
		return false;
	}
	return true;
}

/* Can the run have use_zero_page = @on?  Tries it and puts it back. */
static void thp_check(struct strategy *s, int on)
{
	char why[256];

	if (!thp_possible(why, sizeof(why)) ||
	    thp_zero_page_set(on, why, sizeof(why))) {
		s->skip = true;
		s->why = bench_strdup(why);
	}
	thp_zero_page_restore();
}

void experiment_huge_zero(void)
{
	static const struct col cols[] = {
		{ "strategy", "strategy", 0, 0, COL_LEFT },
		{ "ns/page", "ns_per_page", 1, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "uffd faults", "uffd_faults", 0, 0, 0 },
		{ "faults", "faults", 0, 0, 0 },
		{ "flt/2MiB", "faults_per_2mib", 2, 0, 0 },
		{ "rss KiB", "rss_kib", 0, 0, 0 },
		{ "AnonHuge KiB", "anon_huge_kib", 0, 0, 0 },
		{ "seed / expected", "expected", 0, 0, COL_LEFT },
	};
	const struct workload *w[1] = { workload_find("seq-read") };
	struct strategy s[16];
	struct matrix m = { 0 };
	struct rows rows = { 0 };
	const char *expect[16];
	size_t i, n;
	char mib[32];

	fmt_size(mib, sizeof(mib), cfg.size);
	n = native_strategies(s, false, false);
	/* what a native read walk leaves depends on the kernel */
	expect[0] = native_zero_page() == 0 ?
		    bench_fmt("%s: reads map no zero page here", mib) :
		    "seed: ~400 KB (4 KiB zero page)";
	s[n] = (struct strategy){ .name = "thp", .kind = S_THP,
				  .thp_zero_page = 1 };
	expect[n++] = "small: the huge zero page (3.8+)";
	s[n] = (struct strategy){ .name = "thp:use_zero_page=0",
				  .kind = S_THP, .thp_zero_page = 0 };
	expect[n++] = bench_fmt("seed: %s (THP before 3.8)", mib);
	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers && n < ARRAY_SIZE(s); i++) {
			s[n] = (struct strategy){ .name = cfg.pagers[i],
						  .kind = S_PAGER,
						  .spec = cfg.pagers[i] };
			expect[n++] = "";
		}
	} else if (have_pager("hugezero")) {
		s[n] = (struct strategy){ .name = "hugezero",
					  .kind = S_PAGER,
					  .spec = "hugezero" };
		expect[n++] = "~0, 1 fault per 2 MiB";
		s[n] = (struct strategy){ .name = "hugezero:nohzp=1",
					  .kind = S_PAGER,
					  .spec = "hugezero:nohzp=1" };
		expect[n++] = bench_fmt("%s, 1 fault per 2 MiB", mib);
	} else {
		note("the hugezero pager is not built in: kernel rows only");
	}
	for (i = 0; i < n; i++)
		if (s[i].kind == S_THP) {
			thp_check(&s[i], s[i].thp_zero_page);
			if (s[i].skip)
				note("%s: %s: skipped", s[i].name, s[i].why);
		}

	m.s = s;
	m.ns = n;
	m.w = w;
	m.nw = 1;
	m.reps = cfg.reps;
	/* whole extents, as the seed's posix_memalign(2 MiB) gave */
	m.size = (cfg.size + HUGE_2M - 1) / HUGE_2M * HUGE_2M;
	matrix_run(&m, "huge-zero");
	matrix_rows(&m, &rows);
	for (i = 0; i < rows.n; i++) {
		struct row *r = &rows.v[i];
		size_t si;
		uint64_t huge;

		for (si = 0; strcmp(m.s[si].name, r->strategy); si++)
			;
		matrix_median_u64(&m, 0, si, offsetof(struct sample,
						      anon_huge_kib), &huge);
		row_u64(r, "anon_huge_kib", huge);
		row_dbl(r, "faults_per_2mib",
			(double)(r->minflt + r->majflt) /
			(double)(m.size / HUGE_2M));
		row_str(r, "expected", expect[si]);
		row_str(r, "thp_use_zero_page", m.s[si].kind != S_THP ? NULL :
			m.s[si].thp_zero_page ? "1" : "0");
	}
	bench_emit(&rows, 0, bench_fmt("huge-zero: read one byte per page, "
				       "%s, %s",
				       bench_what(m.size, cfg.reps),
				       bench_pin_desc()),
		   cols, ARRAY_SIZE(cols));
	if (!cfg.json && rows.n) {
		note("faults: every fault the walk took, minor + major (uffd "
		     "faults included); rss after the walk, from smaps");
		note("seed 003 (LWN, 2012): 200 MiB read walk: ~400 KB Rss "
		     "without THP, 200 MB with THP, small again with the huge "
		     "zero page");
	}
	if (cfg.plot_path && rows.n)
		plot_clusters(&rows, "ns per page (median)", "ns_per_page");
	rows_free(&rows);
	matrix_free(&m);
}
