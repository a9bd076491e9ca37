/* SPDX-License-Identifier: MIT */
/*
 * The "restore" experiment: restore one snapshot image (bench-restore.h)
 * through each engine of the file pager, and through the kernel's own
 * mmap(MAP_PRIVATE) of the file (the path a VM or checkpoint tool takes
 * without userfaultfd: Firecracker's default File backend), in the same
 * run: touched in order and at random, a word read per page or read and
 * then written back, by 1 or more application threads, from a cold or a
 * warm page cache.  Each table reports total restore time and p50/p99
 * fault service time from the statistics histogram, against the pager's
 * own engine=mmap ("ratio") and against kernel-mmap ("x mmap").  Runs are
 * interleaved (rep, then table, then row; each table opens with an
 * untimed kernel-mmap run of its own order, see run_all) and every
 * figure is a median over the reps of per-rep ratios.  Every run's touch checks the word it
 * reads and the first rep's (every rep's with --verify-all) checks every
 * byte: a wrong page stops the bench before any table.
 *
 * The page cache is dropped before every cold run (vm.drop_caches, after
 * fdatasync), so that each restore reads the image from the disk as a
 * fresh restore would; where that is not allowed, the file's pages are
 * dropped with POSIX_FADV_DONTNEED instead, and where even that fails the
 * header says so.  A warm run reads the whole image first, untimed.
 *
 * The application thread and the handler share CPU 0 by default (--pin
 * same): a cross-CPU wake-up costs tens of microseconds here, more than a
 * whole fault served on one CPU.  A second application thread goes on the
 * next CPU.  The pager's prefetch thread is left to the scheduler: the
 * contexts are started before the application thread pins itself, so it
 * does not inherit the pin.
 *
 * --store memcached[:servers=H:P;H:P...] adds a memcached pool: the
 * image is pushed to it once (uffd-snapshot push's code), and the rows
 * become the file pager from the local file and the memcached pager
 * from the pool, each with its default read-ahead and with none
 * (readahead=1,readahead_max=1), beside the kernel's mmap of the file.
 * Without servers= the bench starts three of its own on loopback ports
 * (mc-servers.c).  The pool's rows ignore the page cache (what "cold"
 * drops is the file's); "req/pg" is the store requests per page the
 * pager sent (store_ios), for the pool one multi-get round trip each.
 * A line per table then says how the pool did against the issue's
 * targets: random within 2x of the file, sequential with read-ahead
 * within 1.2x.
 *
 * Self-contained (its own options and output), so that uffd-bench can
 * call bench_restore() as its "restore" experiment and snapshot-restore
 * as its "bench" subcommand.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <libuffd.h>

#include "bench-restore.h"
#include "mc-servers.h"
#include "snapshot-push.h"

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

/* ------------------------------------------------------- the rows */

/*
 * The rows of every table.  The kernel's own restore comes first:
 * kernel-mmap is mmap(MAP_PRIVATE) of the image, writable as a VM's
 * memory is, faulted in by the touch itself (page cache readahead, and
 * fault-around on read faults; a write after the read costs a
 * copy-on-write fault per page); kernel-populate is the same mapping
 * with MAP_POPULATE, which on a writable private mapping breaks
 * copy-on-write for every page up front (populate_vma_page_range()
 * faults such a mapping for write): the eager restore, in either touch.
 * Then the file pager's strategies; the first of them is the baseline
 * of the "ratio" columns, as before the kernel rows existed.
 */
struct strat {
	const char	*name;
	const char	*args;		/* after "file:path=IMAGE," */
	bool		pool;		/* memcached pager: after its servers */
};

static const struct strat default_strats[] = {
	/* the baseline, first: Firecracker's example handler, a page a fault */
	{ "mmap", "engine=mmap,readahead=1,readahead_max=1", false },
	{ "pread", "engine=pread", false },		/* streams, one pread a run */
	{ "uring", "engine=uring", false },		/* the pager's defaults */
	{ "uring+direct", "engine=uring,direct=1", false },
	{ "uring+prefetch", "engine=uring,prefetch=1", false },
	{ "uring+prefetch+gap8", "engine=uring,prefetch=1,hole_gap=8",
	  false },
};

/* --store memcached: the file pager and the pool, read-ahead on and off */
static const struct strat pool_strats[] = {
	{ "file", "engine=uring", false },
	{ "file-ra1", "engine=uring,readahead=1,readahead_max=1", false },
	{ "pool", "", true },
	{ "pool-ra1", "readahead=1,readahead_max=1", true },
};

#define MAX_STRATS	24
#define R_MMAP		0	/* kernel-mmap: baseline of "x mmap" */
#define R_POPULATE	1	/* kernel-populate */
#define R_PAGERS	2	/* the first pager: the baseline of "ratio" */
#define MAX_THREADS	8
#define MAX_TLIST	4	/* thread counts in one run */

/*
 * One table of the report, and the unit of interleaving: the page
 * cache's state, the thread count (an index into o.threads), the order
 * and the touch.
 */
struct cell {
	int	cache;		/* 0 cold, 1 warm */
	int	ti;
	int	ord;		/* 0 in order, 1 at random */
	int	touch;		/* 0 read, 1 read then write */
};

#define NCELLS		(2 * MAX_TLIST * 2 * 2)

struct sample {
	bool		valid;
	double		ms;		/* total restore time */
	uint64_t	p50, p99;	/* fault service, us */
	uint64_t	faults, copy, zero, poisoned, eexist;
	uint64_t	bad;		/* pages that read wrong */
	uint64_t	helper_ns;
	uint64_t	minflt, majflt;	/* the process's, timed part */
	uint64_t	rss_kib;	/* of the restored range, after it */
	uint64_t	reqs;		/* store requests (store_ios) */
};

static struct {
	const char	*file;
	uint64_t	size;
	unsigned int	reps;
	int		app_cpu, handler_cpu, ncpus;
	const char	*pin;
	bool		json, verify_all;
	int		cache;		/* last restore_drop_cache() */
	char		cache_why[256];
	struct strat	strats[MAX_STRATS];
	size_t		nstrats;
	bool		orders[2];	/* seq, random */
	bool		touches[2];	/* read, read then write */
	bool		caches[2];	/* cold, warm */
	unsigned int	threads[MAX_TLIST];
	unsigned int	nthreads;
	const char	*store;		/* --store memcached[:...] */
	char		pool[2048];	/* "memcached:servers=...,namespace=..." */
	struct mc_servers own;		/* servers started for the run */
} o;

static size_t nrows(void)
{
	return R_PAGERS + o.nstrats;
}

static const char *row_name(size_t k, int touch)
{
	if (k == R_MMAP)
		return touch ? "kernel-mmap-rw" : "kernel-mmap";
	if (k == R_POPULATE)
		return "kernel-populate";
	return o.strats[k - R_PAGERS].name;
}

static struct cell cell_at(int i)
{
	struct cell c = {
		.touch = i % 2,
		.ord = i / 2 % 2,
		.ti = i / 4 % MAX_TLIST,
		.cache = i / (4 * MAX_TLIST),
	};

	return c;
}

static bool cell_on(const struct cell *c)
{
	return o.caches[c->cache] && (unsigned int)c->ti < o.nthreads &&
	       o.orders[c->ord] && o.touches[c->touch];
}

/* "seq-read", "rand-rw"...: the workload of a cell */
static const char *cell_workload(const struct cell *c)
{
	static const char *const names[2][2] = {
		{ "seq-read", "seq-rw" }, { "rand-read", "rand-rw" },
	};

	return names[c->ord][c->touch];
}

static const char *cell_cache(const struct cell *c)
{
	if (c->cache)
		return "warm";
	return o.cache == 1 ? "dropped" : o.cache == 0 ? "file-dropped" :
	       "not-dropped";
}

/* ------------------------------------------------------- the runs */

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

/*
 * The touch of one thread: entries [from, to) of @ord (NULL: the page
 * numbers in order), one word per page read and checked against the
 * image.  With @write the word is written back after its read, so that
 * every page takes a write after the read that brought it in: in a
 * private mapping of the file, a copy-on-write fault per page.  Returns
 * the pages that read wrong.
 */
static uint64_t touch(char *base, const uint32_t *ord, uint64_t from,
		      uint64_t to, bool write)
{
	uint64_t i, bad = 0;

	for (i = from; i < to; i++) {
		uint64_t p = ord ? ord[i] : i;
		volatile uint64_t *w = (volatile uint64_t *)(base +
							      p * RESTORE_PAGE);
		uint64_t v = *w;

		bad += v != restore_word(p, 0);
		if (write)
			*w = v;
	}
	return bad;
}

/*
 * The application threads of one run.  Member 0 is the calling thread;
 * the others are made before the clock starts and wait until the
 * restored memory exists, so that no thread creation is timed.  Member i
 * touches the i-th slice of the order: a contiguous part of the image in
 * order, a part of one shuffle (pages all over the image) at random.
 */
struct team;

struct member {
	struct team	*team;
	pthread_t	tid;
	unsigned int	idx;
	uint64_t	bad;
};

struct team {
	pthread_mutex_t	lock;
	pthread_cond_t	cond;
	bool		go;
	unsigned int	busy;		/* made members not done yet */
	unsigned int	n, made;
	char		*base;		/* NULL at go: no touch */
	const uint32_t	*ord;
	bool		write;
	struct member	m[MAX_THREADS];
};

/* Member i's CPU: the next ones after the application CPU. */
static int member_cpu(unsigned int i)
{
	return o.app_cpu < 0 ? -1 : (int)((o.app_cpu + i) % o.ncpus);
}

static void member_touch(struct team *t, struct member *m)
{
	uint64_t pages = o.size / RESTORE_PAGE;

	m->bad = touch(t->base, t->ord, pages * m->idx / t->n,
		       pages * (m->idx + 1) / t->n, t->write);
}

static void *member_main(void *arg)
{
	struct member *m = arg;
	struct team *t = m->team;
	bool run;

	restore_pin_self(member_cpu(m->idx));
	pthread_mutex_lock(&t->lock);
	while (!t->go)
		pthread_cond_wait(&t->cond, &t->lock);
	run = t->base != NULL;
	pthread_mutex_unlock(&t->lock);
	if (run)
		member_touch(t, m);
	pthread_mutex_lock(&t->lock);
	if (!--t->busy)
		pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/*
 * Let the members touch @base (NULL: only let them go), touch the
 * caller's own slice, and wait for the others.  Returns the pages that
 * read wrong.
 */
static uint64_t team_run(struct team *t, char *base)
{
	uint64_t bad = 0;
	unsigned int i;

	pthread_mutex_lock(&t->lock);
	t->base = base;
	t->go = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (base)
		member_touch(t, &t->m[0]);
	pthread_mutex_lock(&t->lock);
	while (t->busy)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	for (i = 0; i < t->n; i++)
		bad += t->m[i].bad;
	return bad;
}

static void team_join(struct team *t)
{
	unsigned int i;

	for (i = 1; i <= t->made; i++)
		pthread_join(t->m[i].tid, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

/* @n members touching in @ord; 0, or -errno with nothing left running. */
static int team_make(struct team *t, unsigned int n, const uint32_t *ord,
		     bool write)
{
	unsigned int i;
	int ret;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->n = n;
	t->ord = ord;
	t->write = write;
	for (i = 0; i < n; i++) {
		t->m[i].team = t;
		t->m[i].idx = i;
	}
	for (i = 1; i < n; i++) {
		pthread_mutex_lock(&t->lock);
		ret = pthread_create(&t->m[i].tid, NULL, member_main,
				     &t->m[i]);
		if (!ret) {
			t->made++;
			t->busy++;
		}
		pthread_mutex_unlock(&t->lock);
		if (ret) {
			team_run(t, NULL);
			team_join(t);
			return -ret;
		}
	}
	return 0;
}

/* Rss of the mappings inside [addr, addr + len), from /proc/self/smaps. */
static uint64_t rss_kib(const void *addr, uint64_t len)
{
	unsigned long long lo = (uintptr_t)addr, hi = lo + len, s, e, v;
	uint64_t kib = 0;
	char line[512];
	bool in = false;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &s, &e) == 2)
			in = s >= lo && e <= hi;
		else if (in && sscanf(line, "Rss: %llu kB", &v) == 1)
			kib += v;
	}
	fclose(f);
	return kib;
}

/*
 * A warm run starts with the whole image in the page cache: read it
 * once, untimed (what is cached already costs a copy, no I/O).
 */
static int warm_cache(void)
{
	static char buf[1 << 20];
	ssize_t n;
	off_t off = 0;
	int fd, ret = 0;

	fd = open(o.file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = pread(fd, buf, sizeof(buf), off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		off += n;
	}
	close(fd);
	return ret;
}

/* The kernel's restore: a private, writable mapping of the image. */
static char *kernel_map(bool populate)
{
	void *mem;
	int fd;

	fd = open(o.file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "restore: open %s: %s\n", o.file,
			strerror(errno));
		return NULL;
	}
	mem = mmap(NULL, o.size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "restore: mmap %s: %s\n", o.file,
			strerror(errno));
		mem = NULL;
	}
	close(fd);
	return mem;
}

/* The file pager's restore: a context, a region, its handler running. */
static char *pager_map(const char *args, bool pool, struct uffd_ctx **ctx,
		       struct uffd_region **r)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.flags = o.handler_cpu >= 0 ? LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu = o.handler_cpu,
	};
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON, .len = o.size,
	};
	char spec[3072];
	int ret;

	if (pool)
		snprintf(spec, sizeof(spec), "%s%s%s", o.pool, *args ? "," : "",
			 args);
	else
		snprintf(spec, sizeof(spec), "file:path=%s,%s", o.file, args);
	ro.pager = spec;
	ret = uffd_ctx_create(ctx, &co);
	if (!ret)
		ret = uffd_region_create(*ctx, &ro, r);
	if (!ret)
		ret = uffd_ctx_start(*ctx);
	if (ret) {
		fprintf(stderr, "restore: %s: %s (%s)\n", spec, strerror(-ret),
			uffd_last_error());
		return NULL;
	}
	return uffd_region_addr(*r);
}

/*
 * One restore of the image by row @k in cell @c: the page cache dropped
 * or warmed first, then timed from the mapping's (or the context's)
 * creation to the last page touched by the last thread.  @verify: check
 * every byte afterwards, untimed.  Returns 0, or -1 with a message on
 * stderr.
 */
static int run_one(size_t k, const struct cell *c, const uint32_t *order,
		   bool verify, struct sample *out)
{
	uint64_t pages = o.size / RESTORE_PAGE, t0, t1;
	struct uffd_region *r = NULL;
	struct uffd_ctx *ctx = NULL;
	struct rusage ru0, ru1;
	struct uffd_stats st;
	struct team team;
	char *base;
	int ret;

	memset(out, 0, sizeof(*out));
	if (c->cache) {
		ret = warm_cache();
		if (ret) {
			fprintf(stderr, "restore: read %s: %s\n", o.file,
				strerror(-ret));
			return -1;
		}
	} else {
		o.cache = restore_drop_cache(o.file, o.cache_why,
					     sizeof(o.cache_why));
	}
	ret = team_make(&team, o.threads[c->ti], c->ord ? order : NULL,
			c->touch);
	if (ret) {
		fprintf(stderr, "restore: threads: %s\n", strerror(-ret));
		return -1;
	}

	/* made before pinning: the pager's threads must not inherit it */
	getrusage(RUSAGE_SELF, &ru0);
	t0 = restore_now_ns();
	if (k < R_PAGERS)
		base = kernel_map(k == R_POPULATE);
	else
		base = pager_map(o.strats[k - R_PAGERS].args,
				 o.strats[k - R_PAGERS].pool, &ctx, &r);
	restore_pin_self(member_cpu(0));
	out->bad = team_run(&team, base);
	t1 = restore_now_ns();
	getrusage(RUSAGE_SELF, &ru1);
	restore_pin_self(-1);
	team_join(&team);
	if (!base) {
		uffd_ctx_destroy(ctx);
		return -1;
	}
	out->rss_kib = rss_kib(base, o.size);
	if (verify)
		out->bad += restore_verify(base, pages);
	if (k < R_PAGERS) {
		munmap(base, o.size);
	} else {
		uffd_ctx_stop(ctx);	/* prefetch joined: counters final */
		uffd_region_stats(r, &st, sizeof(st));
		uffd_ctx_destroy(ctx);
		out->p50 = uffd_stats_quantile_us(&st, 0.5);
		out->p99 = uffd_stats_quantile_us(&st, 0.99);
		out->faults = st.faults_read + st.faults_write;
		out->copy = st.pages_copy;
		out->zero = st.pages_zero;
		out->poisoned = st.poisoned;
		out->eexist = st.eexist;
		out->helper_ns = st.helper_cpu_ns;
		out->reqs = st.store_ios;
	}
	out->valid = true;
	out->ms = (double)(t1 - t0) / 1e6;
	out->minflt = (uint64_t)(ru1.ru_minflt - ru0.ru_minflt);
	out->majflt = (uint64_t)(ru1.ru_majflt - ru0.ru_majflt);
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

#define AT(s, rep, cell, k)	(&(s)[((size_t)(rep) * NCELLS + (cell)) * \
				      nrows() + (k)])

enum field {
	F_MS, F_P50, F_P99, F_FAULTS, F_COPY, F_ZERO, F_EEXIST, F_HELPER,
	F_MINFLT, F_MAJFLT, F_RSS, F_REQS,
};

static double field_of(const struct sample *a, enum field f)
{
	switch (f) {
	case F_MS: return a->ms;
	case F_P50: return (double)a->p50;
	case F_P99: return (double)a->p99;
	case F_FAULTS: return (double)a->faults;
	case F_COPY: return (double)a->copy;
	case F_ZERO: return (double)a->zero;
	case F_EEXIST: return (double)a->eexist;
	case F_HELPER: return (double)a->helper_ns;
	case F_MINFLT: return (double)a->minflt;
	case F_MAJFLT: return (double)a->majflt;
	case F_RSS: return (double)a->rss_kib;
	case F_REQS: return (double)a->reqs;
	}
	return NAN;
}

/*
 * Median over the reps of field @f of row @k in @cell, or of its ratio
 * against row @base of the same cell and rep (SIZE_MAX: the value).
 */
static double stat_of(const struct sample *s, int cell, size_t k,
		      size_t base, enum field f)
{
	double v[64];
	size_t n = 0;
	unsigned int rep;

	for (rep = 0; rep < o.reps && n < 64; rep++) {
		const struct sample *a = AT(s, rep, cell, k);
		const struct sample *b = base == SIZE_MAX ? a :
					 AT(s, rep, cell, base);
		double x = field_of(a, f), y = field_of(b, f);

		if (!a->valid || !b->valid)
			continue;
		if (base == SIZE_MAX)
			v[n++] = x;
		else if (y > 0)
			v[n++] = x / y;
	}
	return med(v, n);
}

static size_t strat_find(const char *name)
{
	size_t k;

	for (k = 0; k < o.nstrats; k++)
		if (!strcmp(o.strats[k].name, name))
			return R_PAGERS + k;
	return SIZE_MAX;
}

/* ,"key":value with @prec decimals, or null where there is none */
static void json_num(const char *key, double v, int prec)
{
	if (isnan(v))
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%.*f", key, prec, v);
}

static void report_json(const struct sample *s, int ci, size_t k)
{
	const struct cell c = cell_at(ci);
	uint64_t pages = o.size / RESTORE_PAGE;
	bool pager = k >= R_PAGERS;
	double ms = stat_of(s, ci, k, SIZE_MAX, F_MS);
	double none = NAN;

	printf("{\"experiment\":\"restore\",\"workload\":\"%s\","
	       "\"strategy\":\"%s%s\",\"label\":\"%s\",\"touch\":\"%s\","
	       "\"threads\":%u,\"cache\":\"%s\",\"size_bytes\":%llu,"
	       "\"pages\":%llu,\"reps\":%u", cell_workload(&c),
	       !pager ? "" : o.strats[k - R_PAGERS].pool ? "memcached:" :
	       "file:",
	       pager ? o.strats[k - R_PAGERS].args : row_name(k, c.touch),
	       row_name(k, c.touch), c.touch ? "rw" : "read",
	       o.threads[c.ti], cell_cache(&c), (unsigned long long)o.size,
	       (unsigned long long)pages, o.reps);
	json_num("ns_per_page", ms * 1e6 / (double)pages, 1);
	json_num("total_ms", ms, 2);
	json_num("ratio_vs_native", stat_of(s, ci, k, R_MMAP, F_MS), 3);
	json_num("ratio_vs_mmap", stat_of(s, ci, k, R_PAGERS, F_MS), 3);
	json_num("p50_us", pager ? stat_of(s, ci, k, SIZE_MAX, F_P50) : none,
		 0);
	json_num("p99_us", pager ? stat_of(s, ci, k, SIZE_MAX, F_P99) : none,
		 0);
	json_num("p50_ratio_vs_mmap",
		 pager ? stat_of(s, ci, k, R_PAGERS, F_P50) : none, 3);
	json_num("p99_ratio_vs_mmap",
		 pager ? stat_of(s, ci, k, R_PAGERS, F_P99) : none, 3);
	json_num("uffd_faults", stat_of(s, ci, k, SIZE_MAX, F_FAULTS), 0);
	json_num("pages_copy", stat_of(s, ci, k, SIZE_MAX, F_COPY), 0);
	json_num("pages_zero", stat_of(s, ci, k, SIZE_MAX, F_ZERO), 0);
	json_num("minflt", stat_of(s, ci, k, SIZE_MAX, F_MINFLT), 0);
	json_num("majflt", stat_of(s, ci, k, SIZE_MAX, F_MAJFLT), 0);
	json_num("rss_kib", stat_of(s, ci, k, SIZE_MAX, F_RSS), 0);
	json_num("helper_cpu_ns", stat_of(s, ci, k, SIZE_MAX, F_HELPER), 0);
	json_num("helper_cpu_ms",
		 stat_of(s, ci, k, SIZE_MAX, F_HELPER) / 1e6, 1);
	json_num("store_ios_per_page",
		 pager ? stat_of(s, ci, k, SIZE_MAX, F_REQS) / (double)pages :
		 none, 4);
	printf(",\"pin\":\"%s\"}\n", o.pin);
}

static void report_row(const struct sample *s, int ci, size_t k)
{
	const struct cell c = cell_at(ci);
	double ms = stat_of(s, ci, k, SIZE_MAX, F_MS);
	double pages = (double)(o.size / RESTORE_PAGE);

	printf("%-21s %9.1f %7.3f %7.3f", row_name(k, c.touch), ms,
	       stat_of(s, ci, k, R_PAGERS, F_MS),
	       stat_of(s, ci, k, R_MMAP, F_MS));
	if (k < R_PAGERS) {
		/* no fault of the kernel's reaches a histogram */
		printf(" %6s %6s %6s %6s %9s %9s %8s %7.0f %7s\n", "-", "-",
		       "-", "-", "-", "-", "-", ms * 1e6 / pages, "-");
		return;
	}
	printf(" %6.0f %6.0f %6.2f %6.2f %9.0f %9.0f %8.0f %7.0f %7.4f\n",
	       stat_of(s, ci, k, SIZE_MAX, F_P50),
	       stat_of(s, ci, k, SIZE_MAX, F_P99),
	       stat_of(s, ci, k, R_PAGERS, F_P50),
	       stat_of(s, ci, k, R_PAGERS, F_P99),
	       stat_of(s, ci, k, SIZE_MAX, F_FAULTS),
	       stat_of(s, ci, k, SIZE_MAX, F_COPY),
	       stat_of(s, ci, k, SIZE_MAX, F_ZERO), ms * 1e6 / pages,
	       stat_of(s, ci, k, SIZE_MAX, F_REQS) / pages);
}

/*
 * --store memcached: the targets of issue 15, in every table measured:
 * a random restore from the pool within 2x of the same from the file
 * (read-ahead on against on, off against off), a sequential one with
 * read-ahead within 1.2x.  Medians of per-rep ratios.
 */
static void report_pool_targets(const struct sample *s)
{
	static const struct {
		const char	*pool, *file;
	} pairs[] = { { "pool", "file" }, { "pool-ra1", "file-ra1" } };
	unsigned int i;
	int ci;

	printf("\n# targets (issue 15), x the file pager from the local "
	       "file, same table, same read-ahead: random within 2x, "
	       "sequential with read-ahead within 1.2x\n");
	for (ci = 0; ci < NCELLS; ci++) {
		const struct cell c = cell_at(ci);

		if (!cell_on(&c) || c.touch)
			continue;
		printf("# %-5s %-9s %u thread%s:", c.cache ? "warm" : "cold",
		       cell_workload(&c), o.threads[c.ti],
		       o.threads[c.ti] > 1 ? "s" : " ");
		for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
			size_t kp = strat_find(pairs[i].pool);
			size_t kf = strat_find(pairs[i].file);
			double x, want;
			bool ra = i == 0;

			if (kp == SIZE_MAX || kf == SIZE_MAX)
				continue;
			x = stat_of(s, ci, kp, kf, F_MS);
			if (c.ord)
				want = 2.0;
			else if (ra)
				want = 1.2;
			else
				want = 0;	/* no target: shown only */
			printf("  %s %.2fx", pairs[i].pool, x);
			if (want > 0)
				printf(" %s (by %+.0f%%)", x <= want ? "MET" :
				       "MISSED", (x / want - 1) * 100);
		}
		printf("\n");
	}
}

/*
 * The targets of issue 13, for the default pager ("uring") and its
 * prefetch: cold cache, read-only, within 1.5x of kernel-mmap (1.0x the
 * stretch); read then write, faster than kernel-mmap-rw.  One line per
 * cold table measured.
 */
static void report_targets(const struct sample *s)
{
	static const char *const names[] = { "uring", "uring+prefetch",
					     "uring+prefetch+gap8" };
	unsigned int i;
	bool any = false;
	int ci;

	if (!o.caches[0])
		return;
	for (ci = 0; ci < NCELLS; ci++) {
		const struct cell c = cell_at(ci);

		if (c.cache || !cell_on(&c))
			continue;
		if (!any)
			printf("\n# targets (issue 13), cold cache, x kernel-mmap "
			       "of the same table: read within 1.5x, read then "
			       "write below 1.0x\n");
		any = true;
		printf("# %-8s %u thread%s:", cell_workload(&c),
		       o.threads[c.ti], o.threads[c.ti] > 1 ? "s" : " ");
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			size_t k = strat_find(names[i]);
			double x, want = c.touch ? 1.0 : 1.5;

			if (k == SIZE_MAX)
				continue;
			x = stat_of(s, ci, k, R_MMAP, F_MS);
			printf("  %s %.2fx %s", names[i], x,
			       (c.touch ? x < want : x <= want) ? "MET" :
			       "NOT MET");
		}
		printf("\n");
	}
}

static void report(const struct sample *s)
{
	uint64_t pages = o.size / RESTORE_PAGE;
	int ci, group = -1;
	size_t k;

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
		if (o.caches[0])
			printf("# page cache, cold runs: %s%s%s\n",
			       o.cache == 1 ? "dropped before each run" :
			       o.cache == 0 ? "the image's pages dropped "
			       "before each run" : "NOT dropped",
			       o.cache == 1 ? "" : " -- ",
			       o.cache == 1 ? "" : o.cache_why);
		if (o.caches[1])
			printf("# page cache, warm runs: the whole image read "
			       "before each run\n");
		if (o.app_cpu >= 0)
			printf("# placement: %s (app thread i on CPU %d+i, "
			       "handler CPU %d, one handler thread; prefetch "
			       "thread unpinned)\n", o.pin, o.app_cpu,
			       o.handler_cpu);
		else
			printf("# placement: none (app threads, the one "
			       "handler thread and prefetch unpinned)\n");
		printf("# kernel-mmap: mmap(MAP_PRIVATE) of the image, faulted "
		       "by the touch; kernel-populate: the same with "
		       "MAP_POPULATE, timed with the mmap\n");
		if (o.store)
			printf("# pool: %s (the image pushed once, before the "
			       "runs); pool rows read no file\n", o.pool);
		printf("# ratio: against \"%s\" (the first strategy); x mmap: "
		       "against kernel-mmap of the same table (-rw for "
		       "read-then-write); medians of per-rep ratios, lower is "
		       "better\n", o.strats[0].name);
	}
	for (ci = 0; ci < NCELLS; ci++) {
		const struct cell c = cell_at(ci);

		if (!cell_on(&c))
			continue;
		if (o.json) {
			for (k = 0; k < nrows(); k++)
				report_json(s, ci, k);
			continue;
		}
		if (ci / 4 != group) {
			group = ci / 4;
			printf("\n## %s cache, %u thread%s\n",
			       c.cache ? "warm" : "cold", o.threads[c.ti],
			       o.threads[c.ti] > 1 ? "s" : "");
		}
		printf("\n%-21s %9s %7s %7s %6s %6s %6s %6s %9s %9s %8s %7s "
		       "%7s\n", cell_workload(&c), "ms", "ratio", "x mmap",
		       "p50us", "p99us", "p50r", "p99r", "faults", "copied",
		       "zeroed", "ns/pg", "req/pg");
		for (k = 0; k < nrows(); k++)
			report_row(s, ci, k);
	}
	if (!o.json && o.store)
		report_pool_targets(s);
	else if (!o.json)
		report_targets(s);
}

/*
 * Every run, interleaved: rep, then cell (cache, threads, order, touch),
 * then row; cell_at() enumerates the cells in that order.
 */
static int run_all(struct sample *s, const uint32_t *order, bool tty)
{
	unsigned int total = 0, rep, done = 0;
	int ci;
	size_t k;

	for (ci = 0; ci < NCELLS; ci++) {
		const struct cell c = cell_at(ci);

		total += cell_on(&c) ? o.reps * (unsigned int)nrows() : 0;
	}
	for (rep = 0; rep < o.reps; rep++) {
		for (ci = 0; ci < NCELLS; ci++) {
			const struct cell c = cell_at(ci);

			if (!cell_on(&c))
				continue;
			/*
			 * Untimed, first: a run of the table's own order, so
			 * that every timed run follows one of its kind.  The
			 * disk under this VM keeps state from run to run,
			 * outside the guest (it outlives drop_caches and the
			 * process): the kernel's sequential mmap restore of
			 * 1 GiB took 2.2-2.4 s right after a random-order
			 * one and 0.7-0.9 s after a sequential one, and
			 * without this the kernel row, first in its table,
			 * always came after the last table's random runs.
			 */
			if (run_one(R_MMAP, &c, order, false,
				    &(struct sample){ 0 }))
				return -1;
			for (k = 0; k < nrows(); k++) {
				struct sample *x = AT(s, rep, ci, k);

				fprintf(stderr, "%srestore: run %u/%u: %s %s, "
					"%u thread%s, %s%s", tty ? "\r" : "",
					++done, total, row_name(k, c.touch),
					cell_workload(&c), o.threads[c.ti],
					o.threads[c.ti] > 1 ? "s" : "",
					c.cache ? "warm" : "cold",
					tty ? "      " : "\n");
				if (run_one(k, &c, order,
					    rep == 0 || o.verify_all, x))
					return -1;
				if (!x->bad && !x->poisoned)
					continue;
				fprintf(stderr, "\nrestore: %s %s, %u thread%s,"
					" %s: %llu pages wrong, %llu "
					"poisoned\n", row_name(k, c.touch),
					cell_workload(&c), o.threads[c.ti],
					o.threads[c.ti] > 1 ? "s" : "",
					c.cache ? "warm" : "cold",
					(unsigned long long)x->bad,
					(unsigned long long)x->poisoned);
				return -1;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------- the pool */

/*
 * --store memcached[:...]: servers (given, or three of our own, each
 * with room for its share of the image), a namespace of this run's, and
 * the image pushed.  0, or -1 with a message.
 */
static int pool_setup(void)
{
	const char *args = o.store[9] ? o.store + 10 : "";
	struct push_result r;
	char why[512];
	size_t n;

	if (!strstr(args, "servers=")) {
		unsigned int mb = (unsigned int)(o.size >> 20) * 2 / 3 + 256;

		if (mc_servers_start(&o.own, 3, mb, why, sizeof(why))) {
			fprintf(stderr, "restore: memcached: %s\n", why);
			return -1;
		}
	}
	n = (size_t)snprintf(o.pool, sizeof(o.pool), "memcached:%s%s%s%s",
			     args, *args && o.own.n ? "," : "",
			     o.own.n ? "servers=" : "",
			     o.own.n ? o.own.list : "");
	if (!strstr(args, "namespace=") && n < sizeof(o.pool))
		n += (size_t)snprintf(o.pool + n, sizeof(o.pool) - n,
				      ",namespace=bench-restore-%d",
				      (int)getpid());
	if (n >= sizeof(o.pool)) {
		fprintf(stderr, "restore: --store: too long\n");
		return -1;
	}
	fprintf(stderr, "restore: pushing %s to %s\n", o.file, o.pool);
	if (snapshot_push_file(o.pool, o.file, 0, &r, why, sizeof(why))) {
		fprintf(stderr, "restore: push: %s\n", why);
		return -1;
	}
	fprintf(stderr, "restore: pushed %llu pages: %llu stored, %llu zero "
		"(not stored), %.0f ms\n", (unsigned long long)r.pages,
		(unsigned long long)r.stored, (unsigned long long)r.zero,
		(double)r.ns / 1e6);
	return 0;
}

/* ------------------------------------------------------- command */

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
"usage: %s [options]\n"
"Restore a snapshot image through the file pager's engines and the kernel's\n"
"own mmap(MAP_PRIVATE) of it (faulted, or MAP_POPULATE), in the same run.\n"
"  --file PATH     image to use (made if missing; default /tmp/restore.img)\n"
"  --remake        write the image again first\n"
"  --size N        image size, K/M/G suffix (default 1G)\n"
"  --reps N        repetitions, interleaved (default 3)\n"
"  --quick         128M, 1 rep\n"
"  --order O       seq, random or both (default both)\n"
"  --touch T       read (a word per page), rw (the word written back after\n"
"                  the read) or both (default both)\n"
"  --threads LIST  application threads, e.g. 1,2 (default); they split the\n"
"                  pages: halves of the image, or halves of one shuffle\n"
"  --cache C       cold (dropped before each run; default), warm (the image\n"
"                  read before each run) or both; --warm: warm\n"
"  --strategy N=A  add strategy N with pager args A (repeatable); the\n"
"                  first one given replaces the default list and is the\n"
"                  baseline of \"ratio\": give mmap first\n"
"  --pin P         same (app and handler on CPU 0; default), split\n"
"                  (app CPU 0, handler CPU 1) or none; app thread i on\n"
"                  the i-th CPU from the app's\n"
"  --store S       memcached[:servers=H:P;H:P...]: also restore from a\n"
"                  pool (the image pushed to it first; without servers=,\n"
"                  three servers of its own): rows file, file-ra1, pool,\n"
"                  pool-ra1 (ra1: no read-ahead); --strategy N=pool:ARGS\n"
"                  adds a memcached pager row\n"
"  --verify-all    check every byte in every run (default: first rep)\n"
"  --json          one JSON object per row\n"
"A page that reads wrong stops the bench (exit 1) before any table.\n", prog);
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

/* "1,2": thread counts of 1..MAX_THREADS, at most MAX_TLIST; 0 or -1 */
static int parse_threads(const char *s)
{
	const char *p = s;
	char *end;
	unsigned long v;

	o.nthreads = 0;
	for (;;) {
		if (*p < '0' || *p > '9' || o.nthreads == MAX_TLIST)
			return -1;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v < 1 || v > MAX_THREADS)
			return -1;
		o.threads[o.nthreads++] = (unsigned int)v;
		if (!*end)
			return 0;
		if (*end != ',')
			return -1;
		p = end + 1;
	}
}

/* @a, @b or both: which of the two is on; 0 or -1 */
static int parse_pair(const char *s, const char *a, const char *b,
		      bool on[2])
{
	on[0] = !strcmp(s, a) || !strcmp(s, "both");
	on[1] = !strcmp(s, b) || !strcmp(s, "both");
	return on[0] || on[1] ? 0 : -1;
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
		{ "touch", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'T' },
		{ "cache", required_argument, NULL, 'c' },
		{ "strategy", required_argument, NULL, 'S' },
		{ "pin", required_argument, NULL, 'p' },
		{ "warm", no_argument, NULL, 'w' },
		{ "verify-all", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "store", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t *order = NULL;
	struct sample *s = NULL;
	bool remake = false, tty = isatty(STDERR_FILENO);
	struct stat sb;
	char why[256];
	long ncpus;
	int c, ret = 1;

	memset(&o, 0, sizeof(o));
	o.file = "/tmp/restore.img";
	o.size = 1ull << 30;
	o.reps = 3;
	o.pin = "same";
	o.orders[0] = o.orders[1] = true;
	o.touches[0] = o.touches[1] = true;
	o.caches[0] = true;
	o.threads[0] = 1;
	o.threads[1] = 2;
	o.nthreads = 2;
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
			if (parse_pair(optarg, "seq", "random", o.orders)) {
				fprintf(stderr, "--order: seq, random, both\n");
				return 2;
			}
			break;
		case 't':
			if (parse_pair(optarg, "read", "rw", o.touches)) {
				fprintf(stderr, "--touch: read, rw, both\n");
				return 2;
			}
			break;
		case 'T':
			if (parse_threads(optarg)) {
				fprintf(stderr, "--threads: a list of 1..%d, "
					"at most %d (e.g. 1,2)\n", MAX_THREADS,
					MAX_TLIST);
				return 2;
			}
			break;
		case 'c':
			if (parse_pair(optarg, "cold", "warm", o.caches)) {
				fprintf(stderr, "--cache: cold, warm, both\n");
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
			o.strats[o.nstrats].pool = !strncmp(eq + 1, "pool:", 5);
			o.strats[o.nstrats].args = eq + 1 +
				(o.strats[o.nstrats].pool ? 5 : 0);
			o.nstrats++;
			break;
		}
		case 'p': o.pin = optarg; break;
		case 'w': o.caches[0] = false; o.caches[1] = true; break;
		case 'V': o.verify_all = true; break;
		case 'j': o.json = true; break;
		case 'M': o.store = optarg; break;
		case 'h': usage(stdout, argv[0]); return 0;
		default: usage(stderr, argv[0]); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (o.store && strcmp(o.store, "memcached") &&
	    strncmp(o.store, "memcached:", 10)) {
		fprintf(stderr, "--store: memcached[:servers=H:P;H:P...]\n");
		return 2;
	}
	for (c = 0; c < (int)o.nstrats; c++) {
		if (o.strats[c].pool && !o.store) {
			fprintf(stderr, "--strategy %s=pool:...: needs "
				"--store memcached\n", o.strats[c].name);
			return 2;
		}
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
	ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	o.ncpus = ncpus > 0 ? (int)ncpus : 1;
	if (!o.nstrats && o.store) {
		memcpy(o.strats, pool_strats, sizeof(pool_strats));
		o.nstrats = sizeof(pool_strats) / sizeof(pool_strats[0]);
	} else if (!o.nstrats) {
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
	if (o.store && pool_setup())
		goto out;
	order = restore_page_order(o.size / RESTORE_PAGE, 2024);
	s = calloc((size_t)o.reps * NCELLS * nrows(), sizeof(*s));
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
	mc_servers_stop(&o.own);
	free(order);
	free(s);
	return ret;
}
