/* SPDX-License-Identifier: MIT */
/*
 * The "restore" experiment: restore one snapshot image (bench-restore.h)
 * through each engine of the file pager, touched in order and at random,
 * and compare each with the mmap engine (Firecracker's way) in the same
 * run: total restore time, and p50/p99 fault service time from the
 * statistics histogram.  Runs are interleaved (rep, then order, then
 * strategy) and every figure is a median over the reps of per-rep ratios.
 *
 * The page cache is dropped before every run (vm.drop_caches, after
 * fdatasync), so that each restore reads the image from the disk as a
 * fresh restore would; where that is not allowed, the file's pages are
 * dropped with POSIX_FADV_DONTNEED instead, and where even that fails the
 * runs say "warm".  --warm keeps the cache on purpose.
 *
 * The application thread and the handler share CPU 0 by default (--pin
 * same): a cross-CPU wake-up costs tens of microseconds here, more than a
 * whole fault served on one CPU.  The pager's prefetch thread is left to
 * the scheduler: the contexts are started before the application thread
 * pins itself, so it does not inherit the pin.
 *
 * Self-contained (its own options and output), so that uffd-bench can
 * call bench_restore() as its "restore" experiment and snapshot-restore
 * as its "bench" subcommand.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <libuffd.h>

#include "bench-restore.h"

/* ------------------------------------------------------- the image */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

bool restore_page_zero(uint64_t p)
{
	return (mix64(p) & 3) == 0;
}

void restore_fill_page(uint64_t p, void *page)
{
	uint64_t *w = page, i;

	for (i = 0; i < RESTORE_PAGE / 8; i++)
		w[i] = restore_word(p, i);
}

bool restore_page_ok(const void *page, uint64_t p)
{
	const uint64_t *w = page;
	uint64_t diff = 0, i;

	if (restore_page_zero(p))
		for (i = 0; i < RESTORE_PAGE / 8; i++)
			diff |= w[i];
	else
		for (i = 0; i < RESTORE_PAGE / 8; i++)
			diff |= w[i] ^ (RESTORE_MAGIC ^ (p << 9 | i));
	return diff == 0;
}

uint64_t restore_verify(const void *base, uint64_t pages)
{
	uint64_t p, bad = 0;

	for (p = 0; p < pages; p++)
		bad += !restore_page_ok((const char *)base + p * RESTORE_PAGE,
					p);
	return bad;
}

int restore_image_make(const char *path, uint64_t size, char *why,
		       size_t len)
{
	uint64_t pages = size / RESTORE_PAGE, p, q, off;
	char *mem;
	int fd, ret = 0;

	/* step 1: a process's memory, a quarter of it never written */
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		snprintf(why, len, "mmap %llu bytes: %s",
			 (unsigned long long)size, strerror(errno));
		return -errno;
	}
	for (p = 0; p < pages; p++)
		if (!restore_page_zero(p))
			restore_fill_page(p, mem + p * RESTORE_PAGE);

	/* step 2: the snapshot, data pages only: zero pages stay holes */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "create %s: %s", path, strerror(errno));
		goto out;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		snprintf(why, len, "truncate %s: %s", path, strerror(errno));
		goto out_close;
	}
	for (p = 0; p < pages; p = q) {
		if (restore_page_zero(p)) {
			q = p + 1;
			continue;
		}
		for (q = p + 1; q < pages && !restore_page_zero(q); q++)
			;
		for (off = p * RESTORE_PAGE; off < q * RESTORE_PAGE;) {
			ssize_t n = pwrite(fd, mem + off,
					   q * RESTORE_PAGE - off, (off_t)off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ret = n < 0 ? -errno : -EIO;
				snprintf(why, len, "write %s: %s", path,
					 strerror(-ret));
				goto out_close;
			}
			off += (uint64_t)n;
		}
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		snprintf(why, len, "fsync %s: %s", path, strerror(errno));
	}
out_close:
	close(fd);
out:
	munmap(mem, size);
	return ret;
}

int restore_drop_cache(const char *path, char *why, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), dc, ret;

	if (fd < 0) {
		snprintf(why, len, "open %s: %s", path, strerror(errno));
		return -1;
	}
	/* dirty pages would survive a drop */
	fdatasync(fd);
	dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (dc >= 0 && write(dc, "3\n", 2) == 2) {
		close(dc);
		close(fd);
		return 1;
	}
	snprintf(why, len, "vm.drop_caches: %s", strerror(errno));
	if (dc >= 0)
		close(dc);
	ret = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	if (ret) {
		snprintf(why + strlen(why), len - strlen(why),
			 "; POSIX_FADV_DONTNEED: %s", strerror(ret));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------- the runs */

struct strat {
	const char	*name;
	const char	*args;		/* after "file:path=IMAGE," */
};

static const struct strat default_strats[] = {
	{ "mmap", "engine=mmap,readahead=1" },	/* the baseline: first */
	{ "pread", "engine=pread,readahead=1" },
	{ "uring", "engine=uring,readahead=1" },
	{ "uring+ra16", "engine=uring,readahead=16" },
	{ "uring+prefetch", "engine=uring,readahead=1,prefetch=1" },
	{ "uring+ra16+prefetch", "engine=uring,readahead=16,prefetch=1" },
	{ "pread+ra16", "engine=pread,readahead=16" },
	{ "mmap+ra16", "engine=mmap,readahead=16" },
};

#define MAX_STRATS	24

struct sample {
	bool		valid;
	double		ms;		/* total restore time */
	uint64_t	p50, p99;	/* fault service, us */
	uint64_t	faults, copy, zero, poisoned, eexist;
	uint64_t	bad;		/* pages that read wrong */
	uint64_t	helper_ns;
};

static struct {
	const char	*file;
	uint64_t	size;
	unsigned int	reps;
	int		app_cpu, handler_cpu;
	const char	*pin;
	bool		warm, json, verify_all;
	int		cache;		/* restore_drop_cache()'s */
	char		cache_why[256];
	struct strat	strats[MAX_STRATS];
	size_t		nstrats;
	bool		orders[2];	/* seq, random */
} o;

uint64_t restore_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void restore_pin_self(int cpu)
{
	cpu_set_t set;
	int i;

	CPU_ZERO(&set);
	if (cpu >= 0) {
		CPU_SET(cpu, &set);
	} else {
		for (i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	}
	sched_setaffinity(0, sizeof(set), &set);
}

uint32_t *restore_page_order(uint64_t pages, uint64_t seed)
{
	uint32_t *v = malloc(pages * sizeof(*v));
	uint64_t i;

	if (!v)
		return NULL;
	for (i = 0; i < pages; i++)
		v[i] = (uint32_t)i;
	for (i = pages - 1; i > 0; i--) {
		uint64_t j = mix64(seed + i) % (i + 1);
		uint32_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
	return v;
}

/* The touch: one word per page, checked against the image. */
static uint64_t touch(const char *base, uint64_t pages, const uint32_t *ord)
{
	uint64_t i, bad = 0;

	for (i = 0; i < pages; i++) {
		uint64_t p = ord ? ord[i] : i;
		uint64_t v = *(const volatile uint64_t *)(base +
							   p * RESTORE_PAGE);

		bad += v != restore_word(p, 0);
	}
	return bad;
}

/*
 * One restore of the image with pager @args, touched in @ord (NULL: in
 * order).  Timed from the context's creation to the last page touched.
 * Returns 0, or -errno with a message on stderr.
 */
static int restore_run(const char *args, const uint32_t *ord, bool verify,
		struct sample *out)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.flags = o.handler_cpu >= 0 ? LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu = o.handler_cpu,
	};
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON, .len = o.size,
	};
	uint64_t pages = o.size / RESTORE_PAGE, t0, t1;
	struct uffd_region *r = NULL;
	struct uffd_ctx *ctx = NULL;
	struct uffd_stats st;
	char spec[1024];
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(spec, sizeof(spec), "file:path=%s,%s", o.file, args);
	ro.pager = spec;
	if (!o.warm)
		o.cache = restore_drop_cache(o.file, o.cache_why,
					     sizeof(o.cache_why));

	/* start before pinning: helper threads must not inherit the pin */
	t0 = restore_now_ns();
	ret = uffd_ctx_create(&ctx, &co);
	if (!ret)
		ret = uffd_region_create(ctx, &ro, &r);
	if (!ret)
		ret = uffd_ctx_start(ctx);
	if (ret) {
		fprintf(stderr, "restore: %s: %s (%s)\n", spec, strerror(-ret),
			uffd_last_error());
		uffd_ctx_destroy(ctx);
		return ret;
	}
	restore_pin_self(o.app_cpu);
	out->bad = touch(uffd_region_addr(r), pages, ord);
	t1 = restore_now_ns();
	restore_pin_self(-1);
	if (verify)
		out->bad += restore_verify(uffd_region_addr(r), pages);

	uffd_ctx_stop(ctx);	/* prefetch joined: counters final */
	uffd_region_stats(r, &st, sizeof(st));
	uffd_ctx_destroy(ctx);

	out->valid = true;
	out->ms = (double)(t1 - t0) / 1e6;
	out->p50 = uffd_stats_quantile_us(&st, 0.5);
	out->p99 = uffd_stats_quantile_us(&st, 0.99);
	out->faults = st.faults_read + st.faults_write;
	out->copy = st.pages_copy;
	out->zero = st.pages_zero;
	out->poisoned = st.poisoned;
	out->eexist = st.eexist;
	out->helper_ns = st.helper_cpu_ns;
	return 0;
}

/* ------------------------------------------------------- statistics */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double med(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define AT(s, rep, ord, k)	(&(s)[((rep) * 2 + (ord)) * o.nstrats + (k)])

/* Median over reps of field f of (ord, k), or of its ratio against @base. */
static double stat_of(const struct sample *s, int ord, size_t k,
		      size_t base, size_t f)
{
	double v[64];
	size_t n = 0;
	unsigned int rep;

	for (rep = 0; rep < o.reps && n < 64; rep++) {
		const struct sample *a = AT(s, rep, ord, k);
		const struct sample *b = base == SIZE_MAX ? a :
					 AT(s, rep, ord, base);
		double x, y;

		if (!a->valid || (base != SIZE_MAX && !b->valid))
			continue;
		switch (f) {
		case 0: x = a->ms; y = b->ms; break;
		case 1: x = (double)a->p50; y = (double)b->p50; break;
		case 2: x = (double)a->p99; y = (double)b->p99; break;
		case 3: x = (double)a->faults; y = 1; break;
		case 4: x = (double)a->copy; y = 1; break;
		case 5: x = (double)a->zero; y = 1; break;
		case 6: x = (double)a->eexist; y = 1; break;
		default: x = (double)a->helper_ns / 1e6; y = 1; break;
		}
		if (base == SIZE_MAX) {
			v[n++] = x;
		} else if (y > 0) {
			v[n++] = x / y;
		}
	}
	return med(v, n);
}

#define F_MS	0
#define F_P50	1
#define F_P99	2

static size_t strat_find(const char *name)
{
	size_t k;

	for (k = 0; k < o.nstrats; k++)
		if (!strcmp(o.strats[k].name, name))
			return k;
	return SIZE_MAX;
}

static void report(const struct sample *s)
{
	static const char *const oname[2] = { "seq-read", "rand-read" };
	uint64_t pages = o.size / RESTORE_PAGE;
	const char *cache = o.warm ? "warm" : o.cache == 1 ? "dropped" :
			    o.cache == 0 ? "file-dropped" : "warm";
	size_t k, best, pr, mm;
	int ord;

	{
		struct uffd_probe facts = { .size = sizeof(facts) };
		char line[4096];

		/* the first line of every uffd-bench report (uffd-bench.c) */
		uffd_probe(&facts);
		uffd_probe_format(&facts, o.json ? LIBUFFD_FMT_JSON :
				  LIBUFFD_FMT_TEXT, line, sizeof(line));
		if (o.json)
			printf("{\"experiment\":\"probe\",%s\n", line + 1);
		else
			printf("# machine: %s\n", line);
	}
	if (!o.json) {
		printf("# restore: %llu MiB image (%llu pages, 1/4 zero, "
		       "sparse), median of %u reps, interleaved\n",
		       (unsigned long long)(o.size >> 20),
		       (unsigned long long)pages, o.reps);
		printf("# page cache: %s%s%s\n", cache,
		       o.cache == 1 || o.warm ? "" : " -- ",
		       o.cache == 1 || o.warm ? "" : o.cache_why);
		printf("# placement: %s (app CPU %d, handler CPU %d; "
		       "prefetch thread unpinned)\n", o.pin, o.app_cpu,
		       o.handler_cpu);
		printf("# ratios are per-rep ratios against \"%s\" in the "
		       "same rep (lower is better)\n", o.strats[0].name);
	}
	for (ord = 0; ord < 2; ord++) {
		if (!o.orders[ord])
			continue;
		if (!o.json)
			printf("\n%-21s %9s %7s %6s %6s %6s %6s %9s %9s %8s\n",
			       oname[ord], "ms", "ratio", "p50us", "p99us",
			       "p50r", "p99r", "faults", "copied", "zeroed");
		for (k = 0; k < o.nstrats; k++) {
			double ms = stat_of(s, ord, k, SIZE_MAX, F_MS);
			double r = stat_of(s, ord, k, 0, F_MS);
			double p50 = stat_of(s, ord, k, SIZE_MAX, F_P50);
			double p99 = stat_of(s, ord, k, SIZE_MAX, F_P99);
			double r50 = stat_of(s, ord, k, 0, F_P50);
			double r99 = stat_of(s, ord, k, 0, F_P99);
			double fl = stat_of(s, ord, k, SIZE_MAX, 3);
			double cp = stat_of(s, ord, k, SIZE_MAX, 4);
			double zr = stat_of(s, ord, k, SIZE_MAX, 5);
			double hl = stat_of(s, ord, k, SIZE_MAX, 7);

			if (isnan(ms))
				continue;
			if (o.json) {
				printf("{\"experiment\":\"restore\","
				       "\"workload\":\"%s\","
				       "\"strategy\":\"file:%s\","
				       "\"label\":\"%s\","
				       "\"size_bytes\":%llu,\"pages\":%llu,"
				       "\"reps\":%u,\"ns_per_page\":%.1f,"
				       "\"total_ms\":%.2f,"
				       "\"ratio_vs_mmap\":%.3f,"
				       "\"p50_us\":%.0f,\"p99_us\":%.0f,"
				       "\"p50_ratio_vs_mmap\":%.3f,"
				       "\"p99_ratio_vs_mmap\":%.3f,"
				       "\"uffd_faults\":%.0f,"
				       "\"pages_copy\":%.0f,"
				       "\"pages_zero\":%.0f,"
				       "\"helper_cpu_ms\":%.1f,"
				       "\"cache\":\"%s\",\"pin\":\"%s\"}\n",
				       oname[ord], o.strats[k].args,
				       o.strats[k].name,
				       (unsigned long long)o.size,
				       (unsigned long long)pages, o.reps,
				       ms * 1e6 / (double)pages, ms, r, p50,
				       p99, r50, r99, fl, cp, zr, hl, cache,
				       o.pin);
				continue;
			}
			printf("%-21s %9.1f %7.3f %6.0f %6.0f %6.2f %6.2f "
			       "%9.0f %9.0f %8.0f\n", o.strats[k].name, ms, r,
			       p50, p99, r50, r99, fl, cp, zr);
		}
	}
	if (o.json)
		return;
	/* the targets */
	best = strat_find("uring+ra16+prefetch");
	pr = strat_find("pread");
	mm = strat_find("mmap");
	printf("\n");
	if (best != SIZE_MAX && pr != SIZE_MAX && o.orders[1]) {
		double x = stat_of(s, 1, pr, best, F_MS);

		printf("# target 1: uring+ra16+prefetch %.2fx faster than "
		       "pread (one pread per fault) on random access: %s "
		       "(want >= 1.5)\n", x, x >= 1.5 ? "MET" : "NOT MET");
	}
	if (best != SIZE_MAX && mm != SIZE_MAX && o.orders[0]) {
		double x = stat_of(s, 0, best, mm, F_MS);

		printf("# target 2: uring+ra16+prefetch takes %.2fx the time "
		       "of mmap on sequential access: %s (want <= 1.0)\n", x,
		       x <= 1.0 ? "MET" : "NOT MET");
	}
}

/* Every run, interleaved: rep, then order, then strategy. */
static int run_all(struct sample *s, const uint32_t *order, bool tty)
{
	unsigned int total = o.reps * (o.orders[0] + o.orders[1]) *
			     (unsigned int)o.nstrats;
	unsigned int rep, done = 0;
	size_t k;
	int ord;

	for (rep = 0; rep < o.reps; rep++) {
		for (ord = 0; ord < 2; ord++) {
			if (!o.orders[ord])
				continue;
			for (k = 0; k < o.nstrats; k++) {
				struct sample *x = AT(s, rep, ord, k);

				fprintf(stderr, "%srestore: run %u/%u: %s %s%s",
					tty ? "\r" : "", ++done, total,
					o.strats[k].name,
					ord ? "random" : "seq",
					tty ? "   " : "\n");
				if (restore_run(o.strats[k].args,
						ord ? order : NULL,
						rep == 0 || o.verify_all, x))
					return -1;
				if (!x->bad && !x->poisoned)
					continue;
				fprintf(stderr, "\nrestore: %s: %llu pages "
					"wrong, %llu poisoned\n",
					o.strats[k].name,
					(unsigned long long)x->bad,
					(unsigned long long)x->poisoned);
				return -1;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------- command */

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
"usage: %s [options]\n"
"Restore a snapshot image through the file pager's engines, touched in\n"
"order and at random; compare with the mmap engine (first strategy).\n"
"  --file PATH     image to use (made if missing; default /tmp/restore.img)\n"
"  --remake        write the image again first\n"
"  --size N        image size, K/M/G suffix (default 1G)\n"
"  --reps N        repetitions, interleaved (default 3)\n"
"  --quick         128M, 1 rep\n"
"  --order O       seq, random or both (default both)\n"
"  --strategy N=A  add strategy N with pager args A (repeatable); the\n"
"                  first one given replaces the default list and is the\n"
"                  baseline: give mmap first\n"
"  --pin P         same (app and handler on CPU 0; default), split\n"
"                  (app CPU 0, handler CPU 1) or none\n"
"  --warm          keep the page cache (default: drop it before each run)\n"
"  --verify-all    check every byte in every run (default: first rep)\n"
"  --json          one JSON object per row\n", prog);
}

int restore_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end || !v || v % RESTORE_PAGE)
		return -1;
	*out = v;
	return 0;
}

int bench_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "remake", no_argument, NULL, 'R' },
		{ "size", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "order", required_argument, NULL, 'o' },
		{ "strategy", required_argument, NULL, 'S' },
		{ "pin", required_argument, NULL, 'p' },
		{ "warm", no_argument, NULL, 'w' },
		{ "verify-all", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t *order = NULL;
	struct sample *s = NULL;
	bool remake = false, tty = isatty(STDERR_FILENO);
	struct stat sb;
	char why[256];
	int c, ret = 1;

	memset(&o, 0, sizeof(o));
	o.file = "/tmp/restore.img";
	o.size = 1ull << 30;
	o.reps = 3;
	o.pin = "same";
	o.orders[0] = o.orders[1] = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': o.file = optarg; break;
		case 'R': remake = true; break;
		case 's':
			if (restore_parse_size(optarg, &o.size)) {
				fprintf(stderr, "bad --size %s\n", optarg);
				return 2;
			}
			break;
		case 'r':
			o.reps = (unsigned int)atoi(optarg);
			if (o.reps < 1 || o.reps > 64) {
				fprintf(stderr, "--reps: 1..64\n");
				return 2;
			}
			break;
		case 'q': o.size = 128ull << 20; o.reps = 1; break;
		case 'o':
			o.orders[0] = strcmp(optarg, "random") != 0;
			o.orders[1] = strcmp(optarg, "seq") != 0;
			if (strcmp(optarg, "seq") && strcmp(optarg, "random") &&
			    strcmp(optarg, "both")) {
				fprintf(stderr, "--order: seq, random, both\n");
				return 2;
			}
			break;
		case 'S': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg || o.nstrats == MAX_STRATS) {
				fprintf(stderr, "--strategy NAME=ARGS\n");
				return 2;
			}
			*eq = '\0';
			o.strats[o.nstrats].name = optarg;
			o.strats[o.nstrats++].args = eq + 1;
			break;
		}
		case 'p': o.pin = optarg; break;
		case 'w': o.warm = true; break;
		case 'V': o.verify_all = true; break;
		case 'j': o.json = true; break;
		case 'h': usage(stdout, argv[0]); return 0;
		default: usage(stderr, argv[0]); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (!strcmp(o.pin, "same")) {
		o.app_cpu = 0;
		o.handler_cpu = 0;
	} else if (!strcmp(o.pin, "split")) {
		o.app_cpu = 0;
		o.handler_cpu = 1;
	} else if (!strcmp(o.pin, "none")) {
		o.app_cpu = -1;
		o.handler_cpu = -1;
	} else {
		fprintf(stderr, "--pin: same, split or none\n");
		return 2;
	}
	if (!o.nstrats) {
		memcpy(o.strats, default_strats, sizeof(default_strats));
		o.nstrats = sizeof(default_strats) / sizeof(default_strats[0]);
	}
	o.cache = -1;

	if (remake || stat(o.file, &sb) || (uint64_t)sb.st_size != o.size) {
		fprintf(stderr, "restore: writing a %llu MiB image to %s\n",
			(unsigned long long)(o.size >> 20), o.file);
		if (restore_image_make(o.file, o.size, why, sizeof(why))) {
			fprintf(stderr, "restore: %s\n", why);
			return 1;
		}
	}
	order = restore_page_order(o.size / RESTORE_PAGE, 2024);
	s = calloc((size_t)o.reps * 2 * o.nstrats, sizeof(*s));
	if (!order || !s) {
		fprintf(stderr, "restore: out of memory\n");
		goto out;
	}
	if (run_all(s, order, tty))
		goto out;
	if (tty)
		fprintf(stderr, "\n");
	report(s);
	ret = 0;
out:
	free(order);
	free(s);
	return ret;
}
