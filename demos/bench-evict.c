/* SPDX-License-Identifier: MIT */
/*
 * evict: a working set W larger or smaller than a resident budget B, and
 * what paging it costs.  The rows:
 *
 *   kernel   the kernel's own swap: the workload in a child process inside
 *            a memory cgroup limited to B, with a swap file of at least the
 *            largest W on the disk of --swap-dir, both made by this bench
 *            for the run and removed afterwards (on error and Ctrl-C too)
 *   native   the same child with no limit: W fits in memory, the floor
 *   evict-*  the same child, its area a region of the evict pager with
 *            limit=B: a file store beside the swap file (FIFO, CLOCK), a
 *            memfd store, or far memory in a pool of three memcached
 *            servers of the bench's own on loopback (see enum row_kind)
 *
 * The workload is one function over a memory area (evict_populate() then
 * evict_walk()), so that every row runs the very same accesses.
 *
 * Each run is a fresh child: its first pass writes every page of W, then
 * the timed pass makes N accesses from a sequence computed by the parent
 * from a fixed seed (every row sees the same pages, reads and writes).
 * Every page carries stamps of its last write; a read checks them against
 * the version the sequence expects, and a mismatch ends the bench before
 * any number of it is printed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "bench.h"
#include "mc-servers.h"

#define MAX_RATIOS	8
#define MAX_REPS_EVICT	1000	/* --reps' bound */
#define STAMP_MAGIC	0x5157a3e9c0ffee00ULL
#define ACC_WRITE	(1ULL << 63)
#define ZIPF_S		0.99
#define SEED		0x5eedE71C7ULL
#define CG_V1		"/sys/fs/cgroup/memory"
#define CG_V2		"/sys/fs/cgroup"

enum pattern { P_SEQ, P_RANDOM, P_ZIPF, NPATTERNS };
enum mix { M_READ, M_WRITE, NMIXES };

static const char *const pattern_names[NPATTERNS] = {
	"seq", "random", "zipf"
};
static const char *const mix_names[NMIXES] = { "read", "write" };

/*
 * The rows.  The evict pager's run the same child with the area a region
 * whose pager is "evict:limit=<budget>,...": with a file store on the
 * swap file's disk (O_DIRECT, as swap: no page cache), FIFO and CLOCK,
 * with the memfd store (memory: the bound, not a budget), and with the
 * memcached store over three servers the bench starts (far memory: each
 * run a namespace of its own).  Their swap out/in columns are pages
 * written back and read in, their faults the userfaultfd faults.
 */
enum row_kind { R_KERNEL, R_NATIVE, R_UFILE, R_UCLOCK, R_UMEM, R_UMC,
		NKINDS };

static const char *const kind_names[NKINDS] = {
	"kernel", "native", "evict-file", "evict-file-clock", "evict-memfd",
	"evict-mc"
};

static struct {
	uint64_t	budget;
	double		ratio[MAX_RATIOS];
	size_t		nratios;
	bool		pattern[NPATTERNS];
	bool		mix[NMIXES];
	unsigned int	passes;
	const char	*swap_dir;
	bool		row[NKINDS];
} opt;

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

void evict_usage(FILE *f)
{
	fprintf(f,
"Usage: %s evict [OPTIONS]\n"
"A working set W of 0.5, 1, 2 and 4 times a budget B, paged by the kernel's\n"
"swap in a memory cgroup limited to B (a swap file the bench makes and\n"
"removes), by the evict pager (limit=B; a file store on the same disk,\n"
"FIFO and CLOCK, a memfd store, a pool of 3 memcached servers of its own)\n"
"and natively with no limit.  Patterns seq, random and zipf\n"
"(s=%.2f) x read (90%% reads) and write (90%% writes); every read checks\n"
"the page's stamp.  Reports ns/access, faults, pages swapped out/in, peak\n"
"Rss, ratios against the kernel row.\n"
"Options:\n"
"  -B, --budget SIZE    resident budget, K/M/G suffix (default 256M; -q: 32M)\n"
"      --ws LIST        W/B ratios, comma-separated (default 0.5,1,2,4)\n"
"      --pattern LIST   seq, random, zipf (default all)\n"
"      --mix LIST       read, write (default both)\n"
"      --passes N       timed accesses = N x W's pages (default 3)\n"
"      --swap-dir DIR   where the swap file and the store go (default /tmp)\n"
"      --rows LIST      of kernel, native, evict-file, evict-file-clock,\n"
"                       evict-memfd, evict-mc (default all; kernel and\n"
"                       native always)\n"
"  -r, --reps N         repetitions, interleaved (default 3; -q: 1)\n"
"  -j, --json, -c, --csv FILE, --plot FILE (ns/access against W/B)\n"
"Needs root, a memory cgroup and a filesystem that takes swap files for the\n"
"kernel row; without them it says why and prints the native row only.\n"
"Exit: 0 done, 1 failed (a wrong page too), 2 bad usage, 130 Ctrl-C\n",
		prog, ZIPF_S);
}

/* "a,b,c": calls @one on each item; false when an item is empty. */
static bool each_item(const char *list, bool (*one)(const char *, size_t))
{
	const char *p = list;

	for (;;) {
		size_t n = strcspn(p, ",");

		if (!n || !one(p, n))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

static bool name_in(const char *const *names, size_t nn, bool *set,
		    const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < nn; i++)
		if (strlen(names[i]) == n && !strncmp(names[i], s, n)) {
			set[i] = true;
			return true;
		}
	return false;
}

static bool one_pattern(const char *s, size_t n)
{
	return name_in(pattern_names, NPATTERNS, opt.pattern, s, n);
}

static bool one_mix(const char *s, size_t n)
{
	return name_in(mix_names, NMIXES, opt.mix, s, n);
}

static bool one_row(const char *s, size_t n)
{
	return name_in(kind_names, NKINDS, opt.row, s, n);
}

static bool one_ratio(const char *s, size_t n)
{
	char buf[32], *end;
	double v;

	if (n >= sizeof(buf) || opt.nratios == MAX_RATIOS)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (errno || *end || end == buf || !(v >= 0.0625 && v <= 64))
		return false;
	opt.ratio[opt.nratios++] = v;
	return true;
}

static size_t ws_pages(double ratio)
{
	return (size_t)((double)(opt.budget / page_size) * ratio);
}

void evict_check_args(void)
{
	static const double ratios[] = { 0.5, 1, 2, 4 };
	uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * page_size;
	unsigned long v;
	char *end;
	size_t i;

	if (cfg.have_size || cfg.nworkloads || cfg.npagers)
		usage_error("evict takes no --size, --workload or --pager: "
			    "--budget, --ws, --pattern, --mix");
	opt.budget = cfg.evict.budget ? cfg.evict.budget : cfg.size;
	if (cfg.evict.ws && !each_item(cfg.evict.ws, one_ratio))
		usage_error("bad --ws '%s': W/B ratios 0.0625..64, "
			    "comma-separated, at most %d", cfg.evict.ws,
			    MAX_RATIOS);
	if (!cfg.evict.ws)
		for (i = 0; i < ARRAY_SIZE(ratios); i++)
			opt.ratio[opt.nratios++] = ratios[i];
	if (cfg.evict.pattern && !each_item(cfg.evict.pattern, one_pattern))
		usage_error("bad --pattern '%s': seq, random, zipf",
			    cfg.evict.pattern);
	if (!cfg.evict.pattern)
		for (i = 0; i < NPATTERNS; i++)
			opt.pattern[i] = true;
	if (cfg.evict.mix && !each_item(cfg.evict.mix, one_mix))
		usage_error("bad --mix '%s': read, write", cfg.evict.mix);
	if (!cfg.evict.mix)
		for (i = 0; i < NMIXES; i++)
			opt.mix[i] = true;
	if (cfg.evict.rows && !each_item(cfg.evict.rows, one_row))
		usage_error("bad --rows '%s': kernel, native, evict-file, "
			    "evict-file-clock, evict-memfd, evict-mc",
			    cfg.evict.rows);
	if (!cfg.evict.rows)
		for (i = 0; i < NKINDS; i++)
			opt.row[i] = true;
	/* the x kernel and x native ratios need their rows */
	opt.row[R_KERNEL] = opt.row[R_NATIVE] = true;
	opt.passes = 3;
	if (cfg.evict.passes) {
		errno = 0;
		v = strtoul(cfg.evict.passes, &end, 10);
		if (errno || *end || end == cfg.evict.passes || !v ||
		    v > 100 || *cfg.evict.passes == '-')
			usage_error("bad --passes '%s' (1..100)",
				    cfg.evict.passes);
		opt.passes = (unsigned int)v;
	}
	opt.swap_dir = cfg.evict.swap_dir ? cfg.evict.swap_dir : "/tmp";
	if (!*opt.swap_dir || strlen(opt.swap_dir) > 200)
		usage_error("bad --swap-dir: empty, or over 200 bytes");
	for (i = 0; i < opt.nratios; i++) {
		if (ws_pages(opt.ratio[i]) < 16)
			usage_error("--ws %g of --budget %" PRIu64 "K is under "
				    "16 pages", opt.ratio[i],
				    (uint64_t)(opt.budget / KIB));
		/* the native row holds W: leave the machine half */
		if ((uint64_t)ws_pages(opt.ratio[i]) * page_size > phys / 2)
			usage_error("--ws %g x --budget is more than half "
				    "this machine's memory", opt.ratio[i]);
	}
}

/* ------------------------------------------------------------------ */
/* The workload: a function over a memory area                        */
/* ------------------------------------------------------------------ */

/*
 * An access: the page in bits 0..31, the version its stamps must hold
 * (read) or will hold (write) in bits 32..62, and ACC_WRITE.  Version 1
 * is the populate pass's.
 */
static inline uint64_t stamp(uint64_t page, uint64_t ver)
{
	return (page | ver << 32) ^ STAMP_MAGIC;
}

/*
 * The first pass: every page written, all of it (no page is left zero,
 * which the kernel's swap would not write out).
 */
BENCH_NOSAN static void evict_populate(uint8_t *area, size_t pages)
{
	size_t pg, i;

	for (pg = 0; pg < pages; pg++) {
		volatile uint64_t *w = (uint64_t *)(area + pg * page_size);
		uint64_t s = stamp(pg, 1);

		for (i = 0; i < page_size / 8; i++)
			w[i] = s;
	}
}

/*
 * The timed pass.  A write stores the new version's stamp at the start and
 * the end of the page; a read loads both and checks them.  Returns n, or
 * the index of the first access that read something else.
 */
BENCH_NOSAN static size_t evict_walk(uint8_t *area, const uint64_t *acc,
				     size_t n)
{
	size_t last = page_size / 8 - 1, i;

	for (i = 0; i < n; i++) {
		uint64_t a = acc[i], pg = a & 0xffffffffu;
		uint64_t s = stamp(pg, (a & ~ACC_WRITE) >> 32);
		volatile uint64_t *w = (uint64_t *)(area + pg * page_size);

		if (a & ACC_WRITE) {
			w[0] = s;
			w[last] = s;
		} else if (w[0] != s || w[last] != s) {
			return i;
		}
	}
	return n;
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The CDF of Zipf(ZIPF_S) over ranks 1..@pages. */
static double *zipf_cdf(size_t pages)
{
	double *cdf = xcalloc(pages, sizeof(*cdf)), sum = 0;
	size_t i;

	for (i = 0; i < pages; i++)
		cdf[i] = sum += pow((double)(i + 1), -ZIPF_S);
	for (i = 0; i < pages; i++)
		cdf[i] /= sum;
	return cdf;
}

static size_t zipf_rank(const double *cdf, size_t pages, double u)
{
	size_t lo = 0, hi = pages - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The timed pass's accesses, the same for every row: @n accesses over
 * @pages pages, 90% reads or 90% writes, with the versions a correct
 * memory holds.  Zipf's hot ranks are spread over W by a permutation, so
 * that hot pages are not neighbours.
 */
static uint64_t *make_accesses(enum pattern p, enum mix m, size_t pages,
			       size_t n)
{
	uint64_t *acc = xcalloc(n, sizeof(*acc)), x = SEED + p * 7 + m;
	uint32_t *ver = xcalloc(pages, sizeof(*ver));
	uint32_t *perm = p == P_ZIPF ? page_order(pages, SEED) : NULL;
	double *cdf = p == P_ZIPF ? zipf_cdf(pages) : NULL;
	size_t i, pg;

	for (i = 0; i < pages; i++)
		ver[i] = 1;
	for (i = 0; i < n; i++) {
		bool write = xorshift(&x) % 10 < (m == M_WRITE ? 9u : 1u);

		if (p == P_SEQ)
			pg = i % pages;
		else if (p == P_RANDOM)
			pg = (size_t)(xorshift(&x) % pages);
		else
			pg = perm[zipf_rank(cdf, pages, (double)(xorshift(&x)
					    >> 11) * 0x1p-53)];
		if (write)
			ver[pg]++;
		acc[i] = pg | (uint64_t)ver[pg] << 32 | (write ? ACC_WRITE : 0);
	}
	free(cdf);
	free(perm);
	free(ver);
	return acc;
}

/* ------------------------------------------------------------------ */
/* The kernel's side: a memory cgroup and a swap file                 */
/* ------------------------------------------------------------------ */

static struct {
	pid_t		owner;		/* the process that made them */
	int		v2;
	char		cgroup[128];	/* made, not yet removed */
	char		swapfile[256];	/* made */
	bool		swap_on;
	uint64_t	swap_bytes;
	pid_t		child;		/* a run in progress */
	char		stat[256];	/* memory.stat with pswp*, or "" */
	char		store[256];	/* the evict rows' store file */
	struct mc_servers mc;		/* evict-mc's pool, when started */
	unsigned int	mc_runs;	/* namespaces used */
} k;

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;
	ssize_t len = (ssize_t)strlen(s);

	if (fd < 0)
		return -errno;
	if (write(fd, s, (size_t)len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

/* The first line of @path has @word as a whole word. */
static bool file_has_word(const char *path, const char *word)
{
	char line[512], *t, *save;
	bool found = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	if (fgets(line, sizeof(line), f))
		for (t = strtok_r(line, " \n", &save); t && !found;
		     t = strtok_r(NULL, " \n", &save))
			found = !strcmp(t, word);
	fclose(f);
	return found;
}

/* Value of @key in a "key value" file (memory.stat, /proc/vmstat). */
static int64_t stat_value(const char *path, const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	int64_t v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/*
 * Undo what evict_kernel_setup() did, in the process that did it (a child
 * that exits must not).  Also from atexit and the second Ctrl-C.
 */
void evict_restore(void)
{
	/* the main thread's exit and the signal thread's may race */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int status;

	if (k.owner != getpid())
		return;
	pthread_mutex_lock(&lock);
	if (k.child > 0) {
		kill(k.child, SIGKILL);
		waitpid(k.child, &status, 0);
		k.child = 0;
	}
	mc_servers_stop(&k.mc);
	/* EINVAL: not a swap area (any more) */
	if (k.swap_on && swapoff(k.swapfile) && errno != EINVAL)
		fprintf(stderr, "%s: swapoff %s: %s (run swapoff yourself)\n",
			prog, k.swapfile, strerror(errno));
	else
		k.swap_on = false;
	if (k.swapfile[0] && !k.swap_on) {
		if (unlink(k.swapfile) && errno != ENOENT)
			fprintf(stderr, "%s: unlink %s: %s\n", prog,
				k.swapfile, strerror(errno));
		k.swapfile[0] = '\0';
	}
	if (k.store[0])
		unlink(k.store);
	if (k.cgroup[0]) {
		if (rmdir(k.cgroup))
			fprintf(stderr, "%s: rmdir %s: %s\n", prog, k.cgroup,
				strerror(errno));
		k.cgroup[0] = '\0';
	}
	pthread_mutex_unlock(&lock);
}

static const char *mkswap_path(void)
{
	static const char *const paths[] = {
		"/usr/sbin/mkswap", "/sbin/mkswap", "/usr/bin/mkswap",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(paths); i++)
		if (!access(paths[i], X_OK))
			return paths[i];
	return NULL;
}

/* A file of @bytes with no holes, by fallocate or else by writing zeros. */
static int swapfile_fill(int fd, uint64_t bytes, bool zeros)
{
	static const char zero[64 * 1024];
	uint64_t off;

	if (!zeros)
		return posix_fallocate(fd, 0, (off_t)bytes) ? -EOPNOTSUPP : 0;
	for (off = 0; off < bytes; off += sizeof(zero))
		if (pwrite(fd, zero, sizeof(zero), (off_t)off) !=
		    (ssize_t)sizeof(zero))
			return -errno;
	return fsync(fd) ? -errno : 0;
}

static int swapfile_make(bool zeros, char *why, size_t len)
{
	const char *mk = mkswap_path();
	char *argv[4];
	int fd, ret, pid, status, devnull;

	if (!mk) {
		snprintf(why, len, "no mkswap in /usr/sbin, /sbin, /usr/bin");
		return -1;
	}
	unlink(k.swapfile);
	fd = open(k.swapfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, len, "cannot create %s: %s", k.swapfile,
			 strerror(errno));
		k.swapfile[0] = '\0';
		return -1;
	}
	ret = swapfile_fill(fd, k.swap_bytes, zeros);
	close(fd);
	if (ret) {
		snprintf(why, len, "cannot fill %s: %s", k.swapfile,
			 strerror(-ret));
		return -1;
	}
	argv[0] = (char *)mk;
	argv[1] = (char *)"-q";
	argv[2] = k.swapfile;
	argv[3] = NULL;
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ret = spawn(argv, devnull, &pid);
	if (devnull >= 0)
		close(devnull);
	if (ret || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		snprintf(why, len, "%s %s failed", mk, k.swapfile);
		return -1;
	}
	return 0;
}

static int cgroup_make(char *why, size_t len)
{
	char path[192], val[32];
	int ret;

	k.v2 = file_has_word(CG_V2 "/cgroup.controllers", "memory");
	if (!k.v2 && access(CG_V1 "/memory.limit_in_bytes", F_OK)) {
		snprintf(why, len, "no memory cgroup (neither v2 at " CG_V2
			 " nor v1 at " CG_V1 ")");
		return -1;
	}
	snprintf(k.cgroup, sizeof(k.cgroup), "%s/uffd-bench-%d",
		 k.v2 ? CG_V2 : CG_V1, (int)getpid());
	if (mkdir(k.cgroup, 0755)) {
		snprintf(why, len, "cannot make %s: %s", k.cgroup,
			 strerror(errno));
		k.cgroup[0] = '\0';
		return -1;
	}
	snprintf(val, sizeof(val), "%" PRIu64, opt.budget);
	snprintf(path, sizeof(path), "%s/%s", k.cgroup,
		 k.v2 ? "memory.max" : "memory.limit_in_bytes");
	ret = write_str(path, val);
	if (!ret && k.v2) {
		snprintf(path, sizeof(path), "%s/memory.swap.max", k.cgroup);
		ret = write_str(path, "max");
	}
	if (ret) {
		snprintf(why, len, "cannot write %s: %s", path,
			 strerror(-ret));
		return -1;
	}
	/* the cgroup's own swap counters where the kernel keeps them */
	snprintf(path, sizeof(path), "%s/memory.stat", k.cgroup);
	if (stat_value(path, "pswpout") >= 0)
		snprintf(k.stat, sizeof(k.stat), "%s", path);
	return 0;
}

/*
 * The cgroup and the swap file for the kernel row; 0, or -1 with a reason
 * in @why and nothing left behind.
 */
static int evict_kernel_setup(uint64_t max_ws, char *why, size_t len)
{
	struct statfs sfs;
	long avail;
	int ret;

	k.owner = getpid();
	if (geteuid()) {
		snprintf(why, len, "not root: swapon and cgroups need it");
		return -1;
	}
	/* the swap file can only fill with the cgroup's pages ... */
	avail = sysconf(_SC_AVPHYS_PAGES);
	if (avail > 0 && (uint64_t)avail * page_size < 2 * max_ws + GIB) {
		snprintf(why, len, "too little free memory for a swap file "
			 "that nothing outside the cgroup should need");
		return -1;
	}
	if (statfs(opt.swap_dir, &sfs)) {
		snprintf(why, len, "%s: %s", opt.swap_dir, strerror(errno));
		return -1;
	}
	if (cgroup_make(why, len))
		goto fail;
	/* ... and holds every page of the largest W, plus slack */
	k.swap_bytes = (max_ws + opt.budget / 4 + MIB - 1) / MIB * MIB;
	snprintf(k.swapfile, sizeof(k.swapfile), "%s/uffd-bench-swap-%d",
		 opt.swap_dir, (int)getpid());
	if (swapfile_make(false, why, len))
		goto fail;
	ret = swapon(k.swapfile, 0);
	/* some filesystems want every block written, not just allocated */
	if (ret && errno == EINVAL && !swapfile_make(true, why, len))
		ret = swapon(k.swapfile, 0);
	if (ret) {
		snprintf(why, len, "swapon %s: %s (this filesystem takes no "
			 "swap file?)", k.swapfile, strerror(errno));
		goto fail;
	}
	k.swap_on = true;
	return 0;
fail:
	evict_restore();
	return -1;
}

/* ------------------------------------------------------------------ */
/* One run: a child process                                           */
/* ------------------------------------------------------------------ */

struct evict_result {
	int		bad;		/* 1: a read found wrong contents */
	int		err;		/* errno of a failed step, or 0 */
	char		step[48];
	uint64_t	bad_at, bad_page;
	uint64_t	found;		/* what the bad read saw */
	/* read by rep_median() as int64_t: keep them 64-bit */
	int64_t		ns;		/* the timed pass; 0: no run */
	int64_t		minflt, majflt;	/* the timed pass */
	int64_t		swpout, swpin;	/* the timed pass; -1 unknown */
	int64_t		peak_rss_kib;
};

static void swap_counts(int64_t *out, int64_t *in)
{
	const char *f = k.stat[0] ? k.stat : "/proc/vmstat";

	*out = stat_value(f, "pswpout");
	*in = stat_value(f, "pswpin");
}

/*
 * An evict region of @pages for row @kind, its handler placed as --pin
 * says (helpers free).  0 or -errno.
 */
static int pager_start(enum row_kind kind, size_t pages, struct uffd_ctx **ctx,
		       struct uffd_region **region)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.flags = cfg.pin->handler_cpu >= 0 ? LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu = cfg.pin->handler_cpu,
	};
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON,
		.len = pages * page_size,
	};
	int ret;

	if (kind == R_UMEM)
		ro.pager = bench_fmt("evict:limit=%" PRIu64 ",store=memfd",
				     opt.budget);
	else if (kind == R_UMC)
		ro.pager = bench_fmt("evict:limit=%" PRIu64 ",store=memcached,"
				     "servers=%s,namespace=bench-evict-%d-%u",
				     opt.budget, k.mc.list, (int)k.owner,
				     k.mc_runs);
	else
		ro.pager = bench_fmt("evict:limit=%" PRIu64 ",store=file,"
				     "path=%s%s", opt.budget, k.store,
				     kind == R_UCLOCK ? ",policy=clock" : "");
	ret = uffd_ctx_create(ctx, &co);
	if (ret)
		return ret;
	ret = uffd_region_create(*ctx, &ro, region);
	if (!ret)
		ret = uffd_ctx_start(*ctx);
	return ret;
}

/*
 * The child's body: join the cgroup (kernel row), populate, time the
 * walk.  The area is plain anonymous memory in 4 KiB pages, as a pager's
 * region would be.
 */
static void evict_child(enum row_kind kind, size_t pages, const uint64_t *acc,
			size_t n, struct evict_result *res)
{
	int64_t out0, in0, out1, in1;
	struct uffd_stats us0 = { 0 }, us1 = { 0 };
	struct uffd_region *region = NULL;
	struct uffd_ctx *ctx = NULL;
	struct rusage r0, r1;
	uint64_t t0;
	uint8_t *area;
	size_t i;
	char path[192], pid[24];
	int ret;

	if (kind == R_KERNEL) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", k.cgroup);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		ret = write_str(path, pid);
		if (ret) {
			res->err = -ret;
			snprintf(res->step, sizeof(res->step), "join cgroup");
			return;
		}
	}
	if (kind >= R_UFILE) {
		ret = pager_start(kind, pages, &ctx, &region);
		if (ret) {
			res->err = -ret;
			snprintf(res->step, sizeof(res->step), "%s",
				 uffd_last_error());
			return;
		}
		area = uffd_region_addr(region);
	} else {
		area = mmap(NULL, pages * page_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			    0);
		if (area == MAP_FAILED) {
			res->err = errno;
			snprintf(res->step, sizeof(res->step), "mmap");
			return;
		}
		madvise(area, pages * page_size, MADV_NOHUGEPAGE);
	}
	evict_populate(area, pages);

	if (region)
		uffd_region_stats(region, &us0, sizeof(us0));
	swap_counts(&out0, &in0);
	getrusage(RUSAGE_SELF, &r0);
	t0 = now_ns();
	i = evict_walk(area, acc, n);
	res->ns = (int64_t)(now_ns() - t0);
	getrusage(RUSAGE_SELF, &r1);
	swap_counts(&out1, &in1);
	if (region)
		uffd_region_stats(region, &us1, sizeof(us1));

	if (i < n) {
		volatile uint64_t *w = (uint64_t *)(area + (acc[i] &
				       0xffffffffu) * page_size);

		res->bad = 1;
		res->bad_at = i;
		res->bad_page = acc[i] & 0xffffffffu;
		res->found = w[0];
		return;
	}
	res->minflt = r1.ru_minflt - r0.ru_minflt;
	res->majflt = r1.ru_majflt - r0.ru_majflt;
	res->swpout = out0 >= 0 && out1 >= 0 ? out1 - out0 : -1;
	res->swpin = in0 >= 0 && in1 >= 0 ? in1 - in0 : -1;
	res->peak_rss_kib = r1.ru_maxrss;
	if (!res->ns)
		res->ns = 1;	/* 0 means "no run" */
	if (region) {
		res->minflt = (int64_t)(us1.faults_read + us1.faults_write +
					us1.faults_wp - us0.faults_read -
					us0.faults_write - us0.faults_wp);
		res->majflt = 0;
		res->swpout = (int64_t)(us1.pages_written_back -
					us0.pages_written_back);
		res->swpin = (int64_t)(us1.pages_read_in - us0.pages_read_in);
		/* a refused write keeps a page resident: not this budget */
		if (us1.writeback_errors || us1.pager_errors) {
			res->err = EIO;
			snprintf(res->step, sizeof(res->step), "the store "
				 "failed %llu writes, the pager %llu faults",
				 (unsigned long long)us1.writeback_errors,
				 (unsigned long long)us1.pager_errors);
		}
		uffd_ctx_destroy(ctx);
		return;
	}
	munmap(area, pages * page_size);
}

/*
 * One run in a child.  false: the kernel row's child was SIGKILLed and
 * @may_retry: the cgroup's OOM killer, when swap-out could not keep up
 * (a busy machine, the disk slow); the caller runs it again.
 */
static bool evict_run(enum row_kind kind, size_t pages, const uint64_t *acc,
		      size_t n, const char *what, struct evict_result *res,
		      bool may_retry)
{
	int pfd[2], status;
	ssize_t got;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (kind == R_UMC)
		k.mc_runs++;	/* a namespace of its own */
	if (pipe2(pfd, O_CLOEXEC))
		die_sys("pipe2");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die_sys("fork");
	if (!pid) {
		close(pfd[0]);
		evict_child(kind, pages, acc, n, res);
		_exit(write(pfd[1], res, sizeof(*res)) == sizeof(*res) ? 0 :
		      1);
	}
	k.child = pid;
	close(pfd[1]);
	got = read(pfd[0], res, sizeof(*res));
	close(pfd[0]);
	/*
	 * The second Ctrl-C kills (and may reap) it and cleans up: quit
	 * quietly.
	 */
	if (waitpid(pid, &status, 0) < 0 && !(errno == ECHILD &&
					      bench_stopped()))
		die_sys("waitpid");
	if (bench_stopped() && (errno == ECHILD || WIFSIGNALED(status)))
		exit(130);
	k.child = 0;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	    kind == R_KERNEL && may_retry) {
		fprintf(stderr, "%s: %s: killed (SIGKILL: the cgroup out of "
			"memory, swap-out too slow?): run again\n", prog,
			what);
		return false;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: %s: the run was killed by signal %d%s\n",
			prog, what, WTERMSIG(status), WTERMSIG(status) ==
			SIGKILL && kind == R_KERNEL ? " (out of memory and "
			"swap in the cgroup?)" : "");
		exit(1);
	}
	if (got != sizeof(*res) || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "%s: %s: the run failed\n", prog, what);
		exit(1);
	}
	/* the next run finds the pool's memory free */
	if (kind == R_UMC && mc_servers_flush(&k.mc)) {
		fprintf(stderr, "%s: %s: a memcached server did not flush\n",
			prog, what);
		exit(1);
	}
	if (res->err) {
		fprintf(stderr, "%s: %s: %s: %s\n", prog, what, res->step,
			strerror(res->err));
		exit(1);
	}
	if (res->bad) {
		fprintf(stderr, "%s: %s: WRONG CONTENTS: access %" PRIu64
			" read page %" PRIu64 " and found %#" PRIx64 ", not "
			"its last write %#" PRIx64 "; no numbers printed\n",
			prog, what, res->bad_at, res->bad_page,
			res->found,
			stamp(res->bad_page, (acc[res->bad_at] & ~ACC_WRITE)
			      >> 32));
		exit(1);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* The experiment                                                     */
/* ------------------------------------------------------------------ */

struct evict_wl {
	enum pattern	p;
	enum mix	m;
	double		ratio;
	size_t		pages, n;
};

static void evict_plot(const struct rows *rows)
{
	char *data, *script, title[256], b[32];
	const char **ser = xcalloc(rows->n, sizeof(*ser));
	const char **swl = xcalloc(rows->n, sizeof(*swl));
	const char **wls = xcalloc(rows->n, sizeof(*wls));
	size_t ns = 0, nw = 0, len, i, s, r, w;
	FILE *f;

	for (i = 0; i < rows->n; i++) {
		const char *name = bench_fmt("%s %s", rows->v[i].strategy,
					     rows->v[i].workload);

		for (s = 0; s < ns && strcmp(ser[s], name); s++)
			;
		if (s == ns) {
			swl[ns] = rows->v[i].workload;
			ser[ns++] = name;
		}
		for (w = 0; w < nw && strcmp(wls[w], rows->v[i].workload); w++)
			;
		if (w == nw)
			wls[nw++] = rows->v[i].workload;
	}
	f = xmemstream(&data, &len);
	fputs("ws", f);
	for (s = 0; s < ns; s++)
		fprintf(f, "\t%s", ser[s]);
	fputc('\n', f);
	for (r = 0; r < opt.nratios; r++) {
		fprintf(f, "%g", opt.ratio[r]);
		for (s = 0; s < ns; s++) {
			const struct row *x = NULL;

			for (i = 0; i < rows->n && !x; i++) {
				struct val v = row_get(&rows->v[i], "ws_ratio");

				if (v.t == V_DBL && v.d == opt.ratio[r] &&
				    !strcmp(ser[s], bench_fmt("%s %s",
						rows->v[i].strategy,
						rows->v[i].workload)))
					x = &rows->v[i];
			}
			if (x && isfinite(x->ns_per_page))
				fprintf(f, "\t%.1f", x->ns_per_page);
			else
				fputs("\t?", f);
		}
		fputc('\n', f);
	}
	fclose(f);

	fmt_size(b, sizeof(b), opt.budget);
	snprintf(title, sizeof(title), "evict: budget %s, %u x W accesses, "
		 "median of %u rep%s", b, opt.passes, cfg.reps,
		 cfg.reps == 1 ? "" : "s");
	f = xmemstream(&script, &len);
	gp_line_plot(f, title, "working set / budget (log2)",
		     "ns per access, median (log scale)");
	/* one panel per workload: its rows, the kernel's among them */
	fprintf(f, "set terminal pngcairo size 1500,%d noenhanced\n"
		"set output out\nset logscale y\nset key inside right center font ',9'\n"
		"set multiplot layout %zu,%zu title '%s'\n",
		nw > 3 ? 900 : 500, (nw + 2) / 3, nw < 3 ? nw : (size_t)3,
		title);
	for (w = 0; w < nw; w++) {
		bool first = true;

		fprintf(f, "set title '%s'\nplot ", wls[w]);
		for (s = 0; s < ns; s++) {
			if (strcmp(swl[s], wls[w]))
				continue;
			fprintf(f, "%sdata using 1:%zu with linespoints lw 2 %s"
				"title '%.*s'", first ? "" : ", ", s + 2,
				strncmp(ser[s], "native", 6) ? "" : "dt 2 ",
				(int)strcspn(ser[s], " "), ser[s]);
			first = false;
		}
		fputc('\n', f);
	}
	fputs("unset multiplot\n", f);
	fclose(f);
	if (gnuplot_found())
		gnuplot_run(script, data);
	free(data);
	free(script);
	free(ser);
	free(swl);
	free(wls);
}

/*
 * Whether the evict rows can run: a kernel with UFFDIO_MOVE.  Names the
 * store file in k.store.  false with a reason in @why.
 */
static bool pager_usable(char *why, size_t len)
{
	struct uffd_ctx *c;
	int ret;

	k.owner = getpid();
	snprintf(k.store, sizeof(k.store), "%s/uffd-bench-store-%d",
		 opt.swap_dir, (int)getpid());
	ret = uffd_ctx_create(&c, NULL);
	if (ret) {
		snprintf(why, len, "no userfaultfd: %s", strerror(-ret));
		return false;
	}
	ret = (uffd_ctx_features(c) & LIBUFFD_FEATURE_MOVE) != 0;
	uffd_ctx_destroy(c);
	if (!ret)
		snprintf(why, len, "the evict pager needs UFFDIO_MOVE (6.8)");
	return ret;
}

/* The median over the valid reps of @kind of a field, or of a ratio. */
static double rep_median(const struct evict_result *res, size_t nwl, size_t w,
			 enum row_kind kind, size_t off, int against)
{
	double v[MAX_REPS_EVICT];
	size_t nv = 0;
	unsigned int rep;

	for (rep = 0; rep < cfg.reps && nv < MAX_REPS_EVICT; rep++) {
		const struct evict_result *e = &res[(rep * nwl + w) * NKINDS +
						    kind];
		const struct evict_result *b = &res[(rep * nwl + w) * NKINDS +
						    (size_t)against];
		int64_t val;

		if (!e->ns)
			continue;
		if (against >= 0) {
			if (b->ns)
				v[nv++] = (double)e->ns / (double)b->ns;
			continue;
		}
		memcpy(&val, (const char *)e + off, sizeof(val));
		if (val < 0)	/* a counter the kernel does not keep */
			return NAN;
		v[nv++] = (double)val;
	}
	return median(v, nv);
}

#define RMED(field)	rep_median(res, nwl, w, kind, \
				   offsetof(struct evict_result, field), -1)

static void evict_row(struct rows *rows, const struct evict_wl *wl,
		      enum row_kind kind, const struct evict_result *res,
		      size_t nwl, size_t w, bool kernel)
{
	double ns = RMED(ns), so = RMED(swpout), si = RMED(swpin);
	struct row *r;

	if (!isfinite(ns))
		return;
	r = rows_add(rows);
	row_init(r, bench_fmt("%s-%s", pattern_names[wl->p],
			      mix_names[wl->m]),
		 kind_names[kind], wl->pages * page_size, wl->pages,
		 cfg.reps);
	r->ns_per_page = ns / (double)wl->n;
	r->ratio_vs_native = rep_median(res, nwl, w, kind, 0, R_NATIVE);
	r->minflt = (uint64_t)RMED(minflt);
	r->majflt = (uint64_t)RMED(majflt);
	r->rss_kib = (uint64_t)RMED(peak_rss_kib);
	row_dbl(r, "ratio_vs_kernel", kernel ? rep_median(res, nwl, w, kind,
							  0, R_KERNEL) : NAN);
	row_dbl(r, "ws_ratio", wl->ratio);
	row_u64(r, "budget_bytes", opt.budget);
	row_u64(r, "accesses", wl->n);
	row_str(r, "pattern", pattern_names[wl->p]);
	row_str(r, "mix", mix_names[wl->m]);
	if (isfinite(so))
		row_u64(r, "swap_out", (uint64_t)so);
	else
		row_str(r, "swap_out", NULL);
	if (isfinite(si))
		row_u64(r, "swap_in", (uint64_t)si);
	else
		row_str(r, "swap_in", NULL);
}

void experiment_evict(void)
{
	static const struct col cols[] = {
		{ "workload", "workload", 0, 0, COL_LEFT },
		{ "W/B", "ws_ratio", 2, 0, 0 },
		{ "row", "strategy", 0, 0, COL_LEFT },
		{ "ns/access", "ns_per_page", 1, 0, 0 },
		{ "x kernel", "ratio_vs_kernel", 3, 0, 0 },
		{ "faults", "faults", 0, 0, 0 },
		{ "swap out", "swap_out", 0, 0, 0 },
		{ "swap in", "swap_in", 0, 0, 0 },
		{ "peak rss MiB", "rss_kib", 1, 1.0 / 1024, 0 },
		{ "budget MiB", "budget_bytes", 0, 1.0 / MIB, 0 },
	};
	struct evict_wl *wl = xcalloc(NPATTERNS * NMIXES * MAX_RATIOS,
				      sizeof(*wl));
	struct evict_result *res;
	struct rows rows = { 0 };
	struct progress pg;
	bool kernel, pager;
	size_t nwl = 0, w, kk, i, nk, nrun;
	uint64_t max_ws = 0;
	unsigned int rep;
	char why[1024], b[32], sw[32];
	int p, m;

	for (p = 0; p < NPATTERNS; p++)
		for (m = 0; m < NMIXES; m++)
			for (i = 0; i < opt.nratios; i++) {
				struct evict_wl *e = &wl[nwl];

				if (!opt.pattern[p] || !opt.mix[m])
					continue;
				e->p = (enum pattern)p;
				e->m = (enum mix)m;
				e->ratio = opt.ratio[i];
				e->pages = ws_pages(e->ratio);
				e->n = e->pages * opt.passes;
				if (e->pages * page_size > max_ws)
					max_ws = e->pages * page_size;
				nwl++;
			}

	fmt_size(b, sizeof(b), opt.budget);
	pager = pager_usable(why, sizeof(why));
	if (pager)
		note("evict rows: handler %s; store file %s (direct I/O, "
		     "removed afterwards)", bench_pin_desc(), k.store);
	else
		note("evict rows left out: %s", why);
	if (pager && opt.row[R_UMC]) {
		/* each server room for a third of W, twice over */
		unsigned int mb = (unsigned int)(max_ws >> 20) * 2 / 3 + 256;

		if (!uffd_store_find("memcached"))
			snprintf(why, sizeof(why), "libuffd was built without "
				 "libmemcached");
		if (!uffd_store_find("memcached") ||
		    mc_servers_start(&k.mc, 3, mb, why, sizeof(why))) {
			note("evict-mc row left out: %s", why);
			opt.row[R_UMC] = false;
		} else {
			note("evict-mc: 3 memcached servers of the bench's "
			     "own, %u MiB each: %s (flushed after each run)",
			     mb, k.mc.list);
		}
	}
	kernel = !evict_kernel_setup(max_ws, why, sizeof(why));
	if (kernel) {
		fmt_size(sw, sizeof(sw), k.swap_bytes);
		note("kernel: cgroup %s %s, limit %s, swap file %s %s "
		     "(created and removed)", k.v2 ? "v2" : "v1", k.cgroup, b,
		     k.swapfile, sw);
		note("kernel: swapped pages from %s; while the swap file is "
		     "on, only the cgroup's limit makes the kernel swap (no "
		     "other swap, memory free)", k.stat[0] ? k.stat :
		     "/proc/vmstat (the whole machine)");
	} else {
		note("kernel row left out: %s", why);
	}
	nk = NKINDS;
	res = xcalloc((size_t)cfg.reps * nwl * nk, sizeof(*res));
	for (kk = 0, nrun = 0; kk < nk; kk++)
		nrun += opt.row[kk] && (kk != R_KERNEL || kernel) &&
			(kk < R_UFILE || pager);
	progress_start(&pg, cfg.reps * (unsigned int)(nwl * nrun));
	for (rep = 0; rep < cfg.reps && !bench_stopped(); rep++)
		for (w = 0; w < nwl && !bench_stopped(); w++) {
			uint64_t *acc = make_accesses(wl[w].p, wl[w].m,
						      wl[w].pages, wl[w].n);

			for (kk = 0; kk < nk && !bench_stopped(); kk++) {
				const char *what;

				if ((kk == R_KERNEL && !kernel) ||
				    (kk >= R_UFILE && !pager) ||
				    !opt.row[kk])
					continue;
				what = bench_fmt("%s %s-%s W/B %g rep %u",
						 kind_names[kk],
						 pattern_names[wl[w].p],
						 mix_names[wl[w].m],
						 wl[w].ratio, rep + 1);
				progress_step(&pg, "%s", what);
				for (i = 0; !evict_run((enum row_kind)kk,
						       wl[w].pages, acc,
						       wl[w].n, what,
						       &res[(rep * nwl + w) *
							    nk + kk], i < 2);
				     i++)
					;
			}
			free(acc);
		}
	progress_end(&pg);
	evict_restore();

	for (w = 0; w < nwl; w++)
		for (kk = 0; kk < nk; kk++)
			evict_row(&rows, &wl[w], (enum row_kind)kk, res, nwl,
				  w, kernel);

	bench_emit(&rows, 0, bench_fmt("evict: budget %s, W = W/B x budget, "
				       "%u x W's pages accesses per run, "
				       "median of %u rep%s", b, opt.passes,
				       cfg.reps, cfg.reps == 1 ? "" : "s"),
		   cols, ARRAY_SIZE(cols));
	if (!cfg.json && rows.n) {
		note("read: 90%% reads, write: 90%% writes; seq, random, zipf "
		     "(s=%.2f) over W; every read checked its page's stamp",
		     ZIPF_S);
		note("faults, swap out/in: the timed pass (median of the "
		     "reps); peak rss: the child's whole life (ru_maxrss)");
		note("x kernel: median of per-rep ratios of ns/access against "
		     "the kernel row of the same workload");
	}
	if (cfg.plot_path && rows.n)
		evict_plot(&rows);
	rows_free(&rows);
	free(res);
	free(wl);
}
