/* SPDX-License-Identifier: MIT */
/*
 * compare: every workload under the kernel's paths (plain demand paging,
 * MADV_POPULATE_READ/WRITE, THP) and under each pager.
 *
 * batch-sweep (seed 004): first touch of a large region, sequential and
 * random, through prealloc and prezero at batch 1, 2, 4 ... 512 pages per
 * fault, against native; a table per pager, CSV and a gnuplot PNG.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/*
 * A pager that fills a batch of pages per fault is shown at two settings:
 * batch 1, one page per fault as the kernel does, and a batch that
 * `uffd-bench batch-sweep` found good on this project's machine: by 64
 * both prealloc and prezero have made about 97% of their way from batch 1
 * to batch 512, and a bigger batch fills more memory per fault for what
 * is left (docs/experiments.md has the sweep).  Its own
 * default batch is neither, and shown alone it would hide both the cost
 * of a user-space fault and what batching buys back.
 */
#define GOOD_BATCH	"64"

static const struct {
	const char	*pager;
	const char	*specs[2];
} batching[] = {
	{ "prealloc", { "prealloc:batch=1", "prealloc:batch=" GOOD_BATCH } },
	{ "prezero", { "prezero:batch=1", "prezero:batch=" GOOD_BATCH } },
};

/* The pager specs to measure: --pager, else every built-in as above. */
static size_t pager_strategies(struct strategy *s)
{
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	size_t n = 0, i, j, k;

	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers; i++)
			s[n++] = (struct strategy){ .name = cfg.pagers[i],
						    .kind = S_PAGER,
						    .spec = cfg.pagers[i] };
		return n;
	}
	for (i = 0; list[i]; i++) {
		/* a pager with no usable defaults (file: path=) is skipped */
		if (uffd_pager_spec_check(list[i]->name, 0)) {
			note("%s has no defaults (%s): not run; give it with "
			     "--pager", list[i]->name, uffd_last_error());
			continue;
		}
		for (j = 0; j < ARRAY_SIZE(batching); j++)
			if (!strcmp(batching[j].pager, list[i]->name))
				break;
		if (j == ARRAY_SIZE(batching)) {
			s[n++] = (struct strategy){ .name = list[i]->name,
						    .kind = S_PAGER,
						    .spec = list[i]->name };
			continue;
		}
		for (k = 0; k < ARRAY_SIZE(batching[j].specs); k++)
			s[n++] = (struct strategy){
				.name = batching[j].specs[k],
				.kind = S_PAGER,
				.spec = batching[j].specs[k] };
	}
	return n;
}

static size_t pager_count(void)
{
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	size_t n = 0;

	while (list[n])
		n++;
	/* the batching pagers are shown twice */
	n += ARRAY_SIZE(batching);
	return n > cfg.npagers ? n : cfg.npagers;
}

static const char *const compare_default[] = {
	"seq-write", "seq-read", "seq-rw", "rand-write", "partial-write",
};

/* --workload, else @def. */
static size_t pick_workloads(const struct workload **w,
			     const char *const *def, size_t ndef)
{
	size_t i;

	if (cfg.nworkloads) {
		for (i = 0; i < cfg.nworkloads; i++)
			w[i] = cfg.workloads[i];
		return cfg.nworkloads;
	}
	for (i = 0; i < ndef; i++)
		w[i] = workload_find(def[i]);
	return ndef;
}

static const char *thp_settings(void)
{
	char en[128] = "?", zp[16] = "?";
	FILE *f;

	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	if (f) {
		if (!fgets(en, sizeof(en), f))
			strcpy(en, "?");
		fclose(f);
	}
	f = fopen("/sys/kernel/mm/transparent_hugepage/use_zero_page", "re");
	if (f) {
		if (!fgets(zp, sizeof(zp), f))
			strcpy(zp, "?");
		fclose(f);
	}
	en[strcspn(en, "\n")] = '\0';
	zp[strcspn(zp, "\n")] = '\0';
	return bench_fmt("THP enabled: %s; use_zero_page: %s", en, zp);
}

void experiment_compare(void)
{
	static const struct col cols[] = {
		{ "workload", "workload", 0, 0, COL_LEFT },
		{ "strategy", "strategy", 0, 0, COL_LEFT },
		{ "ns/page", "ns_per_page", 1, 0, 0 },
		{ "x native", "ratio_vs_native", 2, 0, 0 },
		{ "uffd/page", "uffd_faults", 3, 0, COL_PER_PAGE },
		{ "faults/page", "faults", 3, 0, COL_PER_PAGE },
		{ "rss KiB", "rss_kib", 0, 0, 0 },
		{ "helper ms", "helper_cpu_ns", 1, 1e-6, 0 },
	};
	const struct workload *w[16];
	struct strategy *s = xcalloc(4 + pager_count(), sizeof(*s));
	struct matrix m = { 0 };
	struct rows rows = { 0 };

	m.s = s;
	m.ns = native_strategies(s, true, true);
	m.ns += pager_strategies(s + m.ns);
	m.nw = pick_workloads(w, compare_default,
			      ARRAY_SIZE(compare_default));
	m.w = w;
	m.reps = cfg.reps;
	m.size = cfg.size;
	m.baseline = 0;
	matrix_run(&m, "compare");
	matrix_rows(&m, &rows);
	bench_emit(&rows, 0, bench_fmt("compare: %s, %s",
				       bench_what(cfg.size, cfg.reps),
				       bench_pin_desc()),
		   cols, ARRAY_SIZE(cols));
	if (!cfg.json && rows.n) {
		note("x native: median of per-rep ratios against native on the "
		     "same workload; helper: handler thread + pager helpers");
		note("faults: the kernel's count, minor + major (6.1 counts a "
		     "fault userfaultfd served as major)");
		note("populate-*: MADV_POPULATE_* then the walk, both timed; "
		     "thp: MADV_HUGEPAGE (%s)", thp_settings());
	}
	if (cfg.plot_path && rows.n)
		plot_clusters(&rows, "ns per page (median)", "ns_per_page");
	rows_free(&rows);
	matrix_free(&m);
	free(s);
}

/* ------------------------------------------------------------------ */
/* batch-sweep                                                        */
/* ------------------------------------------------------------------ */

#define SWEEP_MAX_LOG2	9	/* batch 1 .. 512 */
#define NBATCH		(SWEEP_MAX_LOG2 + 1)

/* "prealloc" + 16 -> "prealloc:batch=16"; prezero gets a pool to match. */
static const char *batch_spec(const char *base, unsigned int batch)
{
	const char *colon = strchr(base, ':');
	bool prezero = !strncmp(base, "prezero", 7) &&
		       (!base[7] || base[7] == ':');
	const char *pool = "";

	/* a pool of 8 batches, at least the default: the scrubber keeps up */
	if (prezero && !strstr(base, "pool="))
		pool = bench_fmt(",pool=%u", batch * 8 > 1024 ? batch * 8 :
				 1024);
	return bench_fmt("%s%sbatch=%u%s", base, colon ? "," : ":", batch,
			 pool);
}

static void sweep_plot(const struct matrix *m, const char **bases,
		       size_t nb)
{
	char *data, *script, title[256], sz[32];
	size_t len, b, w, k;
	FILE *f;
	int col = 2;

	f = open_memstream(&data, &len);
	if (!f)
		die_sys("open_memstream");
	fputs("batch", f);
	for (b = 0; b < nb; b++)
		for (w = 0; w < m->nw; w++)
			fprintf(f, "\t%s %s", bases[b], m->w[w]->name);
	fputc('\n', f);
	for (k = 0; k < NBATCH; k++) {
		fprintf(f, "%u", 1u << k);
		for (b = 0; b < nb; b++)
			for (w = 0; w < m->nw; w++) {
				double ns, ratio;

				if (matrix_median_ns(m, w, 1 + b * NBATCH + k,
						     0, &ns, &ratio))
					fprintf(f, "\t%.1f", ns);
				else
					fputs("\t?", f);
			}
		fputc('\n', f);
	}
	fclose(f);

	fmt_size(sz, sizeof(sz), m->size);
	snprintf(title, sizeof(title), "batch-sweep: first touch of %s, "
		 "median of %u rep%s, pin=%s", sz, m->reps,
		 m->reps == 1 ? "" : "s", cfg.pin->name);
	f = xmemstream(&script, &len);
	gp_line_plot(f, title, "batch: pages filled per fault (log2)",
		     "ns per page, median (log scale)");
	fputs("set xrange [1:512]\nset logscale y\nplot ", f);
	for (b = 0; b < nb; b++)
		for (w = 0; w < m->nw; w++)
			fprintf(f, "%sdata using 1:%d with linespoints lw 2 "
				"title columnheader(%d)", col > 2 ? ", " : "",
				col, col), col++;
	for (w = 0; w < m->nw; w++) {
		double ns, ratio;

		if (matrix_median_ns(m, w, 0, 0, &ns, &ratio))
			fprintf(f, ", %.1f with lines dt %zu lw 2 lc rgb "
				"'%s' title 'native %s'", ns, 2 + w % 3,
				w % 2 ? "#666666" : "black", m->w[w]->name);
	}
	fputc('\n', f);
	fclose(f);
	if (gnuplot_found())
		gnuplot_run(script, data);
	free(data);
	free(script);
}

static const char *const sweep_default[] = { "seq-write", "rand-write" };

void experiment_batch_sweep(void)
{
	const struct workload *w[16];
	const char **bases = xcalloc(cfg.npagers + 2, sizeof(*bases));
	struct matrix m = { 0 };
	struct rows rows = { 0 }, piv = { 0 };
	struct strategy *s;
	struct col *cols;
	size_t nb = 0, b, k, i, ww, nc;

	if (cfg.npagers) {
		for (i = 0; i < cfg.npagers; i++)
			bases[nb++] = cfg.pagers[i];
	} else {
		if (have_pager("prealloc"))
			bases[nb++] = "prealloc";
		if (have_pager("prezero"))
			bases[nb++] = "prezero";
		if (!nb)
			note("neither prealloc nor prezero is built in: "
			     "native only");
	}
	for (b = 0; b < nb; b++) {
		int ret = uffd_pager_spec_check(batch_spec(bases[b], 512), 0);

		if (ret == -EINVAL)
			usage_error("--pager '%s' takes no batch=N: %s",
				    bases[b], uffd_last_error());
		if (ret)
			die_uffd("uffd_pager_spec_check", ret);
	}

	s = xcalloc(1 + nb * NBATCH, sizeof(*s));
	m.ns = native_strategies(s, false, false);
	for (b = 0; b < nb; b++)
		for (k = 0; k < NBATCH; k++) {
			const char *spec = batch_spec(bases[b], 1u << k);

			s[m.ns++] = (struct strategy){ .name = spec,
						       .kind = S_PAGER,
						       .spec = spec };
		}
	m.s = s;
	m.nw = pick_workloads(w, sweep_default, ARRAY_SIZE(sweep_default));
	m.w = w;
	m.reps = cfg.reps;
	m.size = cfg.size;
	matrix_run(&m, "batch-sweep");
	matrix_rows(&m, &rows);
	for (i = 0; i < rows.n; i++) {
		struct row *r = &rows.v[i];
		const char *st = r->strategy;

		for (b = 0; b < nb; b++)
			if (!strncmp(st, bases[b], strlen(bases[b])))
				break;
		row_str(r, "pager", b < nb ? bases[b] : "native");
		if (b < nb)
			row_u64(r, "batch",
				strtoull(strstr(st, "batch=") + 6, NULL, 10));
		else
			row_str(r, "batch", NULL);	/* null: no batch */
	}
	bench_emit(&rows, 0, NULL, NULL, 0);

	/* the table: one line per batch, a column pair per workload */
	if (!cfg.json && rows.n) {
		nc = 1 + 2 * m.nw;
		cols = xcalloc(nc, sizeof(*cols));
		cols[0] = (struct col){ "batch", "batch", 0, 0, 0 };
		for (ww = 0; ww < m.nw; ww++) {
			cols[1 + 2 * ww] = (struct col){
				bench_fmt("%s ns/page", m.w[ww]->name),
				bench_fmt("ns %zu", ww), 1, 0, 0 };
			cols[2 + 2 * ww] = (struct col){
				"x native", bench_fmt("ratio %zu", ww), 2,
				0, 0 };
		}
		printf("# batch-sweep: %s, %s\n", bench_what(m.size, m.reps),
		       bench_pin_desc());
		for (b = 0; b <= nb; b++) {
			size_t first = piv.n;

			for (k = 0; k < (b < nb ? NBATCH : 1); k++) {
				struct row *r = rows_add(&piv);
				size_t si = b < nb ? 1 + b * NBATCH + k : 0;

				row_init(r, "", "", m.size, 0, m.reps);
				row_u64(r, "batch", 1u << k);
				for (ww = 0; ww < m.nw; ww++) {
					double ns, ratio;

					if (!matrix_median_ns(&m, ww, si, 0,
							      &ns, &ratio))
						continue;
					row_dbl(r, bench_fmt("ns %zu", ww),
						ns);
					row_dbl(r, bench_fmt("ratio %zu", ww),
						ratio);
				}
			}
			/* native: the batch column means nothing */
			if (b == nb)
				row_str(&piv.v[first], "batch", "-");
			bench_table(&piv, first, b < nb ? bases[b] :
				    "native (no batch)", cols, nc);
		}
		free(cols);
	}
	if (cfg.plot_path && rows.n)
		sweep_plot(&m, bases, nb);
	rows_free(&rows);
	rows_free(&piv);
	matrix_free(&m);
	free(s);
	free(bases);
}
