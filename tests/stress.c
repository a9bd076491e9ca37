// SPDX-License-Identifier: MIT
/*
 * The stress engine (see stress.h), after the kernel's
 * tools/testing/selftests/mm/uffd-stress.c, over libuffd's public API.
 *
 * A round is one configuration: a pager, a memory type, a delivery mode
 * and a number of handler threads.  It makes a context with NREG regions
 * and runs, for round_ms:
 *
 *  - workers (threads_per_cpu per CPU).  A region is made of 4 KiB
 *    cells; each cell starts with a pthread mutex and a counter, as
 *    uffd-stress's pages do, then 4 KiB - 64 of bytes that are a pure
 *    function of (region key, cell, counter).  A worker picks a cell (at
 *    random, or walking its own slice in order: rounds alternate), may
 *    first read its mutex's word (a read fault: the zero page, or the
 *    snapshot's page), then takes the mutex inside the cell, checks
 *    every byte against the shadow (the counter kept outside the
 *    regions), writes the next counter's bytes and lets go.
 *  - a chaos thread.  Every few hundred microseconds it does one of:
 *    MADV_DONTNEED of a few pages (anonymous memory then reads zeros; a
 *    memfd keeps its pages, which are in its page cache), MADV_REMOVE
 *    (memfd and hugetlb: a hole, zeros), mremap of a whole region to a
 *    new address, fork with the child checking every region's written
 *    cells against the shadow it inherited, uffd_ctx_stop then start,
 *    destroy and create a region again, uffd_region_flush (evict).
 *    What changes the memory under the workers (discard, move, fork,
 *    recreate) holds the region's rwlock for writing: the workers hold
 *    it for reading around each access, so the shadow stays exact.
 *    Everything else runs under their feet.
 *
 * At the end of a round every cell of every region is checked (reading
 * untouched cells faults them in); the context's counters must show no
 * poisoned page and no pager error; the regions must be where the chaos
 * moved them; and the process must have as many descriptors, threads
 * and mappings as before the round.  A thread that does not finish
 * within 30 s of the round's end is a hang: the engine says which and
 * aborts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <libuffd.h>

#include "stress.h"
#ifdef HAVE_MEMCACHED
#include "mc-servers.h"
#include "snapshot-push.h"
#endif

#define CELL		4096u
#define HDR_WORDS	8		/* mutex (40 bytes), counter, key */
#define CELL_WORDS	(CELL / 8)
#define NREG		3
#define MAX_WORKERS	64
#define HANG_S		30
#define HUGE_SZ		(2UL << 20)
#define IMG_KEY		0x5eed0f11e5eed0f1ULL
#define MAX_REPORTS	8

const char *const stress_event_names[SE_NEVENTS] = {
	"dontneed", "remove", "mremap", "fork", "stopstart", "recreate",
	"flush",
};

/* ---- configurations ---------------------------------------------- */

enum { PG_ZERO, PG_PREALLOC, PG_PREZERO, PG_HUGEZERO, PG_FILE,
       PG_FILE_PREFETCH, PG_EVICT,
#ifdef HAVE_MEMCACHED
       PG_MEMCACHED,	/* the image pushed to servers of its own */
       PG_EVICT_MC,	/* evict over the same pool: far memory */
#endif
       PG_N };
enum { MEM_ANON, MEM_MEMFD, MEM_HUGETLB, MEM_N };

static const char *const pager_names[PG_N] = {
	"zero", "prealloc", "prezero", "hugezero", "file", "file-prefetch",
	"evict",
#ifdef HAVE_MEMCACHED
	"memcached", "evict-mc",
#endif
};
static const char *const mem_names[MEM_N] = { "anon", "memfd", "hugetlb" };
static const enum uffd_mem_type mem_types[MEM_N] = {
	LIBUFFD_MEM_ANON, LIBUFFD_MEM_MEMFD, LIBUFFD_MEM_HUGETLB,
};
static const char *const delivery_names[2] = { "thread", "sigbus" };
static const unsigned int handler_counts[2] = { 1, 3 };

struct cfg {
	int		pager, mem, delivery;
	unsigned int	handlers;
};

/* ---- small pieces ------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_us(unsigned int us)
{
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - (!strcmp(path, "/proc/self/fd"));	/* opendir's own */
}

static long read_meminfo(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	size_t n = strlen(field);
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static long read_nr_huge(void)
{
	FILE *f = fopen(NR_HUGEPAGES, "re");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int write_nr_huge(long v)
{
	FILE *f = fopen(NR_HUGEPAGES, "we");
	int ok;

	if (!f)
		return -errno;
	ok = fprintf(f, "%ld\n", v) > 0;
	return (fclose(f) || !ok) ? -EIO : 0;
}

/* ---- the snapshot image (file pager) ----------------------------- */

#define IMG_LEN		(3 * (1UL << 20) + 2048)	/* a cell straddles EOF */

/* 64-cell blocks 3, 8, 13...: holes in the image */
static bool img_hole(size_t c)
{
	return (c / 64) % 5 == 3;
}

/* Word @i of cell @c of the image (and so its pages at restore). */
static uint64_t img_word(size_t c, size_t i)
{
	if (i < HDR_WORDS || img_hole(c) || c * CELL + i * 8 >= IMG_LEN)
		return 0;
	return mix64(IMG_KEY + c * CELL_WORDS + i);
}

static int make_image(const char *dir, char *path, size_t len)
{
	uint64_t buf[CELL_WORDS];
	size_t c, i, ncells = (IMG_LEN + CELL - 1) / CELL;
	int fd;

	snprintf(path, len, "%s/uffd-stress-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)IMG_LEN))
		goto fail;
	for (c = 0; c < ncells; c++) {
		size_t n = CELL;

		if (img_hole(c))
			continue;
		for (i = 0; i < CELL_WORDS; i++)
			buf[i] = img_word(c, i);
		if (c * CELL + n > IMG_LEN)
			n = IMG_LEN - c * CELL;
		if (pwrite(fd, buf, n, (off_t)(c * CELL)) != (ssize_t)n)
			goto fail;
	}
	if (fsync(fd))
		goto fail;
	close(fd);
	return 0;
fail:
	i = (size_t)errno;
	close(fd);
	unlink(path);
	return -(int)(i ? i : EIO);
}

/* ---- a round ------------------------------------------------------ */

struct sreg {
	pthread_rwlock_t	lk;
	struct uffd_region	*r;	/* NULL: could not be created again */
	uint8_t			*base;
	size_t			len, ncells, psize;
	uint64_t		key;
	uint64_t		*ctr;	/* the shadow: each cell's counter */
	uint8_t			*zeroed; /* at counter 0: zeros, not the image */
};

#define LOG_N	16

struct round {
	const struct stress_opts *o;
	/* the chaos thread's last operations, for a crash report */
	struct { uint64_t ms; int op; int reg; void *a, *b; size_t n; }
				log[LOG_N];
	unsigned int		nlog;
	struct cfg		cfg;
	const char		*img;
	char			spec[256];
	uint64_t		seed;
	bool			seq;
	unsigned int		nworkers;
	struct uffd_ctx		*ctx;
	struct sreg		reg[NREG];
	atomic_bool		stop;
	atomic_uint_fast64_t	accesses, mismatches, failures;
	atomic_uint		reports;
	atomic_uint		done;		/* workers that have ended */
	uint64_t		events[SE_NEVENTS];
	uint64_t		next_key;
	FILE			*out;
};

static void cfg_name(const struct cfg *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/%s/h%u", pager_names[c->pager],
		 mem_names[c->mem], delivery_names[c->delivery], c->handlers);
}

#define ZEROED_OR_IMAGE	2	/* sreg.zeroed: either is right */

/* The memcached pager is the file pager reading from a pool. */
static bool is_file_pager(int pager)
{
#ifdef HAVE_MEMCACHED
	if (pager == PG_MEMCACHED)
		return true;
#endif
	return pager == PG_FILE || pager == PG_FILE_PREFETCH;
}

static bool is_file(const struct round *rd)
{
	return is_file_pager(rd->cfg.pager);
}

static bool is_evict(const struct round *rd)
{
#ifdef HAVE_MEMCACHED
	if (rd->cfg.pager == PG_EVICT_MC)
		return true;
#endif
	return rd->cfg.pager == PG_EVICT;
}

#ifdef HAVE_MEMCACHED
/* The pool the memcached rounds restore from: the image, pushed once. */
static struct mc_servers pool_srv;
static char pool_spec[200];	/* fits a round's spec */

static int pool_start(const char *img, FILE *out)
{
	struct push_result r;
	char why[512];
	int ret;

	ret = mc_servers_start(&pool_srv, 3, 64, why, sizeof(why));
	if (ret) {
		fprintf(out, "stress: memcached: %s\n", why);
		return ret;
	}
	if (snprintf(pool_spec, sizeof(pool_spec),
		     "memcached:servers=%s,namespace=stress-%d", pool_srv.list,
		     (int)getpid()) >= (int)sizeof(pool_spec)) {
		mc_servers_stop(&pool_srv);
		return -ENAMETOOLONG;
	}
	ret = snapshot_push_file(pool_spec, img, 0, &r, why, sizeof(why));
	if (ret) {
		fprintf(out, "stress: memcached: push: %s\n", why);
		mc_servers_stop(&pool_srv);
	}
	return ret;
}
#endif

static uint64_t expect_word(const struct sreg *s, const struct round *rd,
			    size_t c, size_t i, uint64_t ctr)
{
	if (!ctr)
		return (is_file(rd) && s->zeroed[c] != 1) ? img_word(c, i) : 0;
	if (i < HDR_WORDS - 2)		/* the mutex, and a word never used */
		return 0;
	if (i == HDR_WORDS - 2)
		return ctr;
	if (i == HDR_WORDS - 1)
		return s->key;
	return mix64(s->key ^ ((uint64_t)c << 40) ^ (ctr << 12) ^ i);
}

static void report(struct round *rd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(struct round *rd, const char *fmt, ...)
{
	char name[64], msg[512];
	va_list ap;

	if (atomic_fetch_add(&rd->reports, 1) >= MAX_REPORTS)
		return;
	cfg_name(&rd->cfg, name, sizeof(name));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(rd->out, "stress: %s (%s): %s\n", name, rd->spec, msg);
	fflush(rd->out);
}

/*
 * Check cell @c of @s, mapped at @p, against counter @ctr, but for the
 * mutex in its first 40 bytes (glibc's, which the checker may hold).
 * Returns true when it matches; otherwise says where
 * and how it differs (from a child, through @fd with no stdio).
 */
static bool check_cell(struct round *rd, struct sreg *s, size_t c,
		       const uint64_t *p, uint64_t ctr, int fd)
{
	size_t i;

	/* words 0-4: the mutex, which the checker may hold */
	for (i = 5; i < CELL_WORDS; i++) {
		uint64_t want = expect_word(s, rd, c, i, ctr);
		char name[64];

		if (p[i] == want || (!ctr && !p[i] &&
				     s->zeroed[c] == ZEROED_OR_IMAGE))
			continue;
		if (fd < 0) {
			report(rd, "MISMATCH region %td cell %zu (page %zu of "
			       "%zu bytes) byte %zu: expected %016" PRIx64
			       " got %016" PRIx64 " (shadow counter %" PRIu64
			       ", %s)", s - rd->reg, c,
			       c * CELL / s->psize, s->psize, i * 8, want,
			       p[i], ctr, ctr ? "written" :
			       s->zeroed[c] ? "discarded" : "never written");
		} else {
			cfg_name(&rd->cfg, name, sizeof(name));
			dprintf(fd, "stress: %s: fork child: MISMATCH region "
				"%td cell %zu byte %zu: expected %016" PRIx64
				" got %016" PRIx64 " (counter %" PRIu64 ")\n",
				name, s - rd->reg, c, i * 8, want, p[i], ctr);
		}
		return false;
	}
	return true;
}

static void fill_cell(struct sreg *s, size_t c, uint64_t *p, uint64_t ctr)
{
	size_t i;

	for (i = HDR_WORDS; i < CELL_WORDS; i++)
		p[i] = mix64(s->key ^ ((uint64_t)c << 40) ^ (ctr << 12) ^ i);
	p[HDR_WORDS - 1] = s->key;
	p[HDR_WORDS - 2] = ctr;
}

static void fail(struct round *rd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(struct round *rd, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&rd->failures, 1);
	report(rd, "FAILURE %s", msg);
}

static void note(struct round *rd, int op, struct sreg *s, void *a, void *b,
		 size_t n)
{
	unsigned int i = rd->nlog++ % LOG_N;

	rd->log[i].ms = now_ms();
	rd->log[i].op = op;
	rd->log[i].reg = s ? (int)(s - rd->reg) : -1;
	rd->log[i].a = a;
	rd->log[i].b = b;
	rd->log[i].n = n;
}

/*
 * An unexpected SIGBUS (a fault the library did not serve): say where,
 * in which region and what the chaos did last, then die of it.
 */
static struct round *volatile crash_round;

static void on_crash(int sig, siginfo_t *si, void *uc)
{
	struct round *rd = crash_round;
	char name[64];

	(void)uc;
	if (rd) {
		struct uffd_stats st;
		uint64_t t = now_ms();

		cfg_name(&rd->cfg, name, sizeof(name));
		fprintf(stderr, "stress: %s: signal %d code %d at %p\n", name,
			sig, si->si_code, si->si_addr);
		for (int i = 0; i < NREG; i++)
			fprintf(stderr, "  region %d: %p+%zu (library: %p)\n", i,
				(void *)rd->reg[i].base, rd->reg[i].len,
				rd->reg[i].r ? uffd_region_addr(rd->reg[i].r)
					     : NULL);
		for (unsigned int k = rd->nlog > LOG_N ? rd->nlog - LOG_N : 0;
		     k < rd->nlog; k++) {
			unsigned int i = k % LOG_N;

			fprintf(stderr, "  -%" PRIu64 " ms: %s region %d %p "
				"%p %zu\n", t - rd->log[i].ms,
				stress_event_names[rd->log[i].op],
				rd->log[i].reg, rd->log[i].a, rd->log[i].b,
				rd->log[i].n);
		}
		if (rd->ctx && !uffd_ctx_stats(rd->ctx, &st, sizeof(st)))
			fprintf(stderr, "  faults %" PRIu64 "r %" PRIu64 "w, "
				"poisoned %" PRIu64 ", pager errors %" PRIu64
				", stray %" PRIu64 ", remaps %" PRIu64
				" (dropped %" PRIu64 "), sigbus queued %"
				PRIu64 "\n", st.faults_read, st.faults_write,
				st.poisoned, st.pager_errors,
				st.stray_faults, st.events_remap,
				st.remap_dropped, st.sigbus_queued);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- workers ------------------------------------------------------ */

struct worker {
	struct round	*rd;
	unsigned int	id;
	uint64_t	rng;
	size_t		cursor[NREG];
	pthread_t	th;
};

static void access_cell(struct round *rd, struct worker *w, struct sreg *s,
			size_t c)
{
	uint64_t *p = (uint64_t *)(s->base + c * CELL);
	uint64_t r = rnd_next(&w->rng), ctr;

	/*
	 * A read first (the zero page, or the image's page): of the mutex's
	 * lock word, which glibc changes atomically, so that the read races
	 * with no write of ours (ThreadSanitizer would say so).
	 */
	if (r & 1)
		(void)__atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
	pthread_mutex_lock((pthread_mutex_t *)p);
	ctr = s->ctr[c];
	if (!check_cell(rd, s, c, p, ctr, -1)) {
		atomic_fetch_add(&rd->mismatches, 1);
		atomic_store(&rd->stop, true);
	} else {
		fill_cell(s, c, p, ctr + 1);
		s->ctr[c] = ctr + 1;
	}
	pthread_mutex_unlock((pthread_mutex_t *)p);
	atomic_fetch_add_explicit(&rd->accesses, 1, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct round *rd = w->rd;

	while (!atomic_load_explicit(&rd->stop, memory_order_relaxed)) {
		unsigned int i = (unsigned int)(rnd_next(&w->rng) % NREG);
		struct sreg *s = &rd->reg[i];
		size_t c;

		pthread_rwlock_rdlock(&s->lk);
		if (!s->r) {
			pthread_rwlock_unlock(&s->lk);
			sleep_us(100);
			continue;
		}
		if (rd->seq) {
			size_t per = s->ncells / rd->nworkers;

			if (!per)
				per = 1;
			c = (w->id * per + w->cursor[i]++ % per) % s->ncells;
		} else {
			c = rnd_next(&w->rng) % s->ncells;
		}
		access_cell(rd, w, s, c);
		pthread_rwlock_unlock(&s->lk);
	}
	atomic_fetch_add(&rd->done, 1);
	return NULL;
}

/* ---- regions ------------------------------------------------------ */

static size_t region_len(int mem)
{
	return mem == MEM_HUGETLB ? 2 * HUGE_SZ : 2UL << 20;
}

static void build_spec(struct round *rd)
{
	size_t len = region_len(rd->cfg.mem);

	switch (rd->cfg.pager) {
	case PG_PREALLOC:
		snprintf(rd->spec, sizeof(rd->spec), "prealloc:batch=16");
		break;
	case PG_FILE:
		snprintf(rd->spec, sizeof(rd->spec), "file:path=%s", rd->img);
		break;
	case PG_FILE_PREFETCH:
		snprintf(rd->spec, sizeof(rd->spec), "file:path=%s,prefetch=1",
			 rd->img);
		break;
#ifdef HAVE_MEMCACHED
	case PG_MEMCACHED:
		snprintf(rd->spec, sizeof(rd->spec), "%s", pool_spec);
		break;
	case PG_EVICT_MC:
		/* sreg_create() gives each region a namespace of its own */
		snprintf(rd->spec, sizeof(rd->spec),
			 "evict:limit=%zuK,batch=16,store=memcached,servers=%s",
			 len / 4 / 1024, pool_srv.list);
		break;
#endif
	case PG_EVICT:
		/* a quarter resident: evictions all the time */
		snprintf(rd->spec, sizeof(rd->spec),
			 "evict:limit=%zuK,batch=16", len / 4 / 1024);
		break;
	default:
		snprintf(rd->spec, sizeof(rd->spec), "%s",
			 pager_names[rd->cfg.pager]);
	}
}

/* Create region @s; a hugetlb shortage is retried a while. */
static int sreg_create(struct round *rd, struct sreg *s)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = mem_types[rd->cfg.mem],
		.len = region_len(rd->cfg.mem),
		.pager = rd->spec,
	};
	int ret, tries = 0;
#ifdef HAVE_MEMCACHED
	char spec[sizeof(rd->spec) + 64];

	/*
	 * Regions sharing a namespace would write each other's pages: one
	 * a slot (a slot holds one region at a time, and evict's regions
	 * have no fork children), so that the pool never holds more than
	 * the slots' pages and never fills (evict opens it fresh=1: what an
	 * earlier region of the slot left is never read).
	 */
	if (rd->cfg.pager == PG_EVICT_MC) {
		snprintf(spec, sizeof(spec), "%s,namespace=stress-%d-%d",
			 rd->spec, (int)getpid(), (int)(s - rd->reg));
		o.pager = spec;
	}
#endif

	while ((ret = uffd_region_create(rd->ctx, &o, &s->r)) == -ENOMEM &&
	       rd->cfg.mem == MEM_HUGETLB && ++tries < 50)
		sleep_us(20000);	/* another test's hugetlb fixture */
	if (ret) {
		s->r = NULL;
		return ret;
	}
	s->base = uffd_region_addr(s->r);
	s->len = uffd_region_len(s->r);
	s->psize = uffd_region_page_size(s->r);
	s->ncells = s->len / CELL;
	s->key = mix64(rd->seed ^ ++rd->next_key);
	memset(s->ctr, 0, s->ncells * sizeof(*s->ctr));
	memset(s->zeroed, 0, s->ncells);
	return 0;
}

/* ---- chaos -------------------------------------------------------- */

static void wrlock_all(struct round *rd)
{
	for (int i = 0; i < NREG; i++)
		pthread_rwlock_wrlock(&rd->reg[i].lk);
}

static void unlock_all(struct round *rd)
{
	for (int i = NREG - 1; i >= 0; i--)
		pthread_rwlock_unlock(&rd->reg[i].lk);
}

/* Discard a few pages: MADV_DONTNEED, or MADV_REMOVE on shared memory. */
static void chaos_discard(struct round *rd, struct sreg *s, uint64_t r,
			  bool remove)
{
	size_t npages = s->len / s->psize, first = (r >> 8) % npages;
	size_t n = 1 + (r >> 40) % 4, c, per = s->psize / CELL;

	if (first + n > npages)
		n = npages - first;
	if (madvise(s->base + first * s->psize, n * s->psize,
		    remove ? MADV_REMOVE : MADV_DONTNEED)) {
		fail(rd, "madvise(%s) of pages %zu+%zu: %s",
		     remove ? "REMOVE" : "DONTNEED", first, n,
		     strerror(errno));
		return;
	}
	rd->events[remove ? SE_REMOVE : SE_DONTNEED]++;
	note(rd, remove ? SE_REMOVE : SE_DONTNEED, s,
	     s->base + first * s->psize, NULL, n * s->psize);
	/*
	 * A memfd's pages stay in its page cache after DONTNEED.  But the
	 * file pager cannot tell DONTNEED from MADV_REMOVE (one event):
	 * a page never written whose read was in flight reads zeros.
	 */
	if (!remove && rd->cfg.mem != MEM_ANON) {
		if (is_file(rd))
			for (c = first * per; c < (first + n) * per; c++)
				if (!s->ctr[c] && !s->zeroed[c])
					s->zeroed[c] = ZEROED_OR_IMAGE;
		return;
	}
	for (c = first * per; c < (first + n) * per; c++) {
		/*
		 * file pager, shared memory: a page never filled is still
		 * restored after MADV_REMOVE (file.c), and which were filled
		 * (read ahead, prefetched) only the pager knows.  Punched
		 * twice, never touched between, it still may be: either
		 * stays right (a 6.1 VM found a huge page so restored).
		 */
		s->zeroed[c] = remove && !s->ctr[c] && s->zeroed[c] != 1 &&
			       is_file(rd) ? ZEROED_OR_IMAGE : 1;
		s->ctr[c] = 0;
	}
}

static void chaos_mremap(struct round *rd, struct sreg *s)
{
	size_t al = s->psize < HUGE_SZ ? HUGE_SZ : s->psize;
	uint8_t *res, *to, *q;

	res = mmap(NULL, s->len + al, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		fail(rd, "mmap for mremap: %s", strerror(errno));
		return;
	}
	to = (uint8_t *)(((uintptr_t)res + al - 1) & ~(uintptr_t)(al - 1));
	q = mremap(s->base, s->len, s->len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (q == MAP_FAILED) {
		fail(rd, "mremap of a %zu-byte region: %s", s->len,
		     strerror(errno));
		munmap(res, s->len + al);
		return;
	}
	if (to > res)
		munmap(res, (size_t)(to - res));
	if (res + s->len + al > to + s->len)
		munmap(to + s->len, (size_t)(res + s->len + al - to - s->len));
	note(rd, SE_MREMAP, s, s->base, to, s->len);
	s->base = to;
	rd->events[SE_MREMAP]++;
	/* the library knows as soon as mremap returns */
	if ((uint8_t *)uffd_region_addr(s->r) != to)
		fail(rd, "the library has region %td at %p after mremap moved "
		     "it to %p", s - rd->reg, uffd_region_addr(s->r),
		     (void *)to);
}

/* The child: every written cell as the shadow says, with no locks. */
static int fork_child(struct round *rd)
{
	int bad = 0;

	for (int i = 0; i < NREG; i++) {
		struct sreg *s = &rd->reg[i];
		unsigned char v;

		if (!s->r)
			continue;
		if (is_evict(rd)) {
			/* MADV_DONTFORK: the child has no copy at all */
			if (mincore(s->base, s->psize, &v) == 0 ||
			    errno != ENOMEM) {
				dprintf(2, "stress: evict region mapped in "
					"a fork child\n");
				bad = 1;
			}
			continue;
		}
		for (size_t c = 0; c < s->ncells; c++)
			if (s->ctr[c] &&
			    !check_cell(rd, s, c,
					(uint64_t *)(s->base + c * CELL),
					s->ctr[c], 2))
				bad = 1;
	}
	return bad;
}

static void chaos_fork(struct round *rd)
{
	uint64_t t0;
	pid_t pid, w;
	int st;

	wrlock_all(rd);
	pid = fork();
	if (pid == 0)
		_exit(fork_child(rd));
	if (pid < 0) {
		fail(rd, "fork: %s", strerror(errno));
		unlock_all(rd);
		return;
	}
	/* shared memory: the child must see nothing change under it */
	t0 = now_ms();
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 &&
	       now_ms() - t0 < HANG_S * 1000)
		sleep_us(200);
	unlock_all(rd);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail(rd, "fork child hung for %d s checking its snapshot",
		     HANG_S);
		return;
	}
	if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		atomic_fetch_add(&rd->mismatches, 1);
		report(rd, "fork child found its snapshot wrong (status "
		       "%#x)", st);
		return;
	}
	rd->events[SE_FORK]++;
	note(rd, SE_FORK, NULL, NULL, NULL, 0);
}

static void chaos_stopstart(struct round *rd, uint64_t r)
{
	int ret = uffd_ctx_stop(rd->ctx);

	if (ret) {
		fail(rd, "uffd_ctx_stop: %d (%s)", ret, uffd_last_error());
		return;
	}
	sleep_us((unsigned int)(r % 2000));	/* faults pile up meanwhile */
	ret = uffd_ctx_start(rd->ctx);
	if (ret) {
		fail(rd, "uffd_ctx_start: %d (%s)", ret, uffd_last_error());
		atomic_store(&rd->stop, true);
		return;
	}
	rd->events[SE_STOPSTART]++;
	note(rd, SE_STOPSTART, NULL, NULL, NULL, 0);
}

static void chaos_recreate(struct round *rd, struct sreg *s)
{
	int ret;

	uffd_region_destroy(s->r);
	s->r = NULL;
	ret = sreg_create(rd, s);
	if (ret)
		fail(rd, "creating a region again: %d (%s)", ret,
		     uffd_last_error());
	else
		rd->events[SE_RECREATE]++;
	note(rd, SE_RECREATE, s, s->base, NULL, s->len);
}

static void *chaos_main(void *arg)
{
	struct round *rd = arg;
	uint64_t rng = mix64(rd->seed ^ 0xc4a05);
	bool shared = rd->cfg.mem != MEM_ANON;
	/* a prefetch racing a DONTNEED may land after the zap (file.c) */
	bool discards = rd->cfg.pager != PG_FILE_PREFETCH;

	while (!atomic_load(&rd->stop)) {
		uint64_t r = rnd_next(&rng);
		struct sreg *s = &rd->reg[(r >> 4) % NREG];
		unsigned int op = (unsigned int)(r % 16);

		sleep_us(200 + (unsigned int)((r >> 20) % 1800));
		if (op == 15 && is_evict(rd)) {
			pthread_rwlock_rdlock(&s->lk);
			if (s->r) {
				int ret = uffd_region_flush(s->r);

				if (ret)
					fail(rd, "uffd_region_flush: %d (%s)",
					     ret, uffd_last_error());
				else
					rd->events[SE_FLUSH]++;
			}
			pthread_rwlock_unlock(&s->lk);
			continue;
		}
		if (op == 14) {
			chaos_fork(rd);
			continue;
		}
		if (op == 13) {
			chaos_stopstart(rd, r >> 24);
			continue;
		}
		if ((op < 10 || op == 15) && !discards)
			continue;
		pthread_rwlock_wrlock(&s->lk);
		if (!s->r)
			;
		else if (op < 10 || op == 15)
			chaos_discard(rd, s, r, shared && (r & (1 << 9)));
		else if (op < 12)
			chaos_mremap(rd, s);
		else
			chaos_recreate(rd, s);
		pthread_rwlock_unlock(&s->lk);
	}
	return NULL;
}

/* ---- running a round ---------------------------------------------- */

static unsigned int ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return (unsigned int)CPU_COUNT(&set);
}

/* Every cell of every region, after the workers stopped. */
static void final_check(struct round *rd)
{
	for (int i = 0; i < NREG; i++) {
		struct sreg *s = &rd->reg[i];

		if (!s->r)
			continue;
		if ((uint8_t *)uffd_region_addr(s->r) != s->base)
			fail(rd, "region %d is at %p for the library, moved "
			     "to %p", i, uffd_region_addr(s->r),
			     (void *)s->base);
		for (size_t c = 0; c < s->ncells; c++)
			if (!check_cell(rd, s, c,
					(uint64_t *)(s->base + c * CELL),
					s->ctr[c], -1)) {
				atomic_fetch_add(&rd->mismatches, 1);
				break;
			}
	}
}

static atomic_int bt_pending;

/* SIGURG from dump_stacks(): this thread prints its own stack. */
static void on_backtrace(int sig)
{
	void *pc[48];
	char hdr[48];
	int n = backtrace(pc, 48), len;

	(void)sig;
	len = snprintf(hdr, sizeof(hdr), "stress: user stack of %ld:\n",
		       (long)syscall(SYS_gettid));
	if (write(STDERR_FILENO, hdr, (size_t)len) < 0)
		return;
	backtrace_symbols_fd(pc, n, STDERR_FILENO);
	atomic_store(&bt_pending, 0);
}

/* A line of /proc/self/task/TID/FILE, or "" */
static void task_read(const char *tid, const char *file, char *buf,
		      size_t len)
{
	char path[96];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%s/%s", tid, file);
	buf[0] = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
}

/*
 * Every thread's stacks: what hung, and where.  First the kernel's
 * (root only), which show a thread stuck in a system call, such as an
 * mremap waiting for its UNMAP to be read.  Then the user's, each thread
 * printing its own from a signal; a thread in uninterruptible sleep
 * cannot take one and is left out, as are the library's threads, which
 * block signals.  Last gdb's, where there is one, killed after 45 s: it
 * waits for ever to stop a thread in uninterruptible sleep.
 */
static void dump_stacks(void)
{
	struct sigaction sa = { .sa_handler = on_backtrace };
	char tids[64][16], stat[512], buf[4096];
	unsigned int n = 0, i;
	struct dirent *de;
	DIR *d;

	d = opendir("/proc/self/task");
	if (!d) {
		fprintf(stderr, "stress: no stacks: /proc/self/task: %s\n",
			strerror(errno));
		return;
	}
	while ((de = readdir(d)) && n < 64)
		if (de->d_name[0] != '.')
			snprintf(tids[n++], sizeof(tids[0]), "%.15s",
				 de->d_name);
	closedir(d);
	for (i = 0; i < n; i++) {
		char *st;

		task_read(tids[i], "stat", stat, sizeof(stat));
		st = strrchr(stat, ')');
		task_read(tids[i], "stack", buf, sizeof(buf));
		fprintf(stderr, "stress: thread %s, state %c, kernel stack:\n%s",
			tids[i], st && st[1] ? st[2] : '?', buf);
	}
	fflush(stderr);
	backtrace((void *[1]){0}, 1);	/* loads libgcc before any signal */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGURG, &sa, NULL);
	for (i = 0; i < n; i++) {
		long tid = strtol(tids[i], NULL, 10);
		char *st;
		int w;

		task_read(tids[i], "stat", stat, sizeof(stat));
		st = strrchr(stat, ')');
		if (tid == syscall(SYS_gettid) || !st || !st[1] || st[2] == 'D')
			continue;
		atomic_store(&bt_pending, 1);
		if (syscall(SYS_tgkill, getpid(), tid, SIGURG))
			continue;
		for (w = 0; w < 200 && atomic_load(&bt_pending); w++)
			sleep_us(1000);
	}
	snprintf(buf, sizeof(buf), "command -v gdb >/dev/null && "
		 "timeout -s KILL 45 gdb -p %d -batch -ex 'thread apply all bt' "
		 "2>&1 | grep -v '^\\[New' 1>&2", (int)getpid());
	if (system(buf))
		fprintf(stderr, "stress: no stacks from gdb (it failed, timed "
			"out or is absent)\n");
}

static int join_or_hang(struct round *rd, pthread_t th, const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += HANG_S;
	if (pthread_timedjoin_np(th, NULL, &ts) == 0)
		return 0;
	fail(rd, "HANG: the %s thread is still running %d s after the round "
	     "ended (%u of %u workers done); aborting", what, HANG_S,
	     atomic_load(&rd->done), rd->nworkers);
	fflush(NULL);
	dump_stacks();
	abort();
}

/*
 * One round.  Returns 0 (ran; rd counts what it saw), or -errno when the
 * configuration cannot run on this kernel/machine (its reason printed).
 */
static int run_round(struct round *rd, uint64_t *faults)
{
	const struct stress_opts *o = rd->o;
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.delivery = rd->cfg.delivery ? LIBUFFD_DELIVER_SIGBUS
					     : LIBUFFD_DELIVER_THREAD,
		.handlers = rd->cfg.handlers,
	};
	struct worker *w = NULL;
	struct uffd_stats st;
	pthread_t chaos;
	char name[64];
	unsigned int i, started = 0;
	int ret = 0;

	cfg_name(&rd->cfg, name, sizeof(name));
	build_spec(rd);
	rd->nworkers = o->threads_per_cpu * ncpus();
	if (rd->nworkers > MAX_WORKERS)
		rd->nworkers = MAX_WORKERS;
	ret = uffd_ctx_create(&rd->ctx, &co);
	if (ret) {
		fprintf(rd->out, "stress: %s: n/a: context: %s\n", name,
			uffd_last_error());
		fflush(rd->out);
		return ret;
	}
	for (i = 0; i < NREG; i++) {
		struct sreg *s = &rd->reg[i];
		size_t n = region_len(rd->cfg.mem) / CELL;
		pthread_rwlockattr_t a;

		/* writers first: the chaos thread must get its turn */
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&s->lk, &a);
		pthread_rwlockattr_destroy(&a);
		s->ctr = calloc(n, sizeof(*s->ctr));
		s->zeroed = calloc(n, 1);
	}
	for (i = 0; i < NREG; i++) {
		struct sreg *s = &rd->reg[i];

		if (!s->ctr || !s->zeroed) {
			ret = -ENOMEM;
			goto out;
		}
		ret = sreg_create(rd, s);
		if (ret) {
			fprintf(rd->out, "stress: %s: n/a: %s: %d (%s)\n",
				name, rd->spec, ret, uffd_last_error());
			fflush(rd->out);
			goto out;
		}
	}
	crash_round = rd;
	ret = uffd_ctx_start(rd->ctx);
	if (ret) {
		fprintf(rd->out, "stress: %s: cannot start: %s\n", name,
			uffd_last_error());
		atomic_fetch_add(&rd->failures, 1);
		ret = 0;
		goto out;
	}
	w = calloc(rd->nworkers, sizeof(*w));
	if (!w) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < rd->nworkers; i++) {
		w[i].rd = rd;
		w[i].id = i;
		w[i].rng = mix64(rd->seed + i + 1) | 1;
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
			break;
	}
	started = i;
	if (pthread_create(&chaos, NULL, chaos_main, rd)) {
		atomic_store(&rd->stop, true);
		fail(rd, "pthread_create: cannot start the chaos thread");
	} else {
		uint64_t t0 = now_ms();

		while (!atomic_load(&rd->stop) && now_ms() - t0 < o->round_ms)
			sleep_us(5000);
		atomic_store(&rd->stop, true);
		join_or_hang(rd, chaos, "chaos");
	}
	if (started < rd->nworkers)
		fail(rd, "pthread_create: %u of %u workers", started,
		     rd->nworkers);
	for (i = 0; i < started; i++)
		join_or_hang(rd, w[i].th, "worker");
	final_check(rd);
	if (uffd_ctx_stats(rd->ctx, &st, sizeof(st)) == 0) {
		*faults = st.faults_read + st.faults_write + st.faults_wp +
			  st.faults_minor;
		if (st.poisoned || st.pager_errors)
			fail(rd, "%" PRIu64 " pages poisoned, %" PRIu64
			     " pager errors (nothing should fail here)",
			     st.poisoned, st.pager_errors);
	}
out:
	free(w);
	uffd_ctx_destroy(rd->ctx);
	rd->ctx = NULL;
	crash_round = NULL;
	/* the library unmapped what it mapped, where the chaos left it */
	for (i = 0; i < NREG; i++) {
		struct sreg *s = &rd->reg[i];
		unsigned char v;

		if (s->r && (mincore(s->base, s->psize, &v) == 0 ||
			     errno != ENOMEM))
			fail(rd, "LEAK: region %u still mapped at %p after "
			     "uffd_ctx_destroy", i, (void *)s->base);
	}
	for (i = 0; i < NREG; i++) {
		pthread_rwlock_destroy(&rd->reg[i].lk);
		free(rd->reg[i].ctr);
		free(rd->reg[i].zeroed);
	}
	return ret;
}

/* ---- the driver --------------------------------------------------- */

static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	if (!list)
		return true;
	while ((p = strstr(p, name))) {
		if ((p == list || p[-1] == ',') && (!p[n] || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}

static void *nothing(void *arg)
{
	return arg;
}

/*
 * A sanitizer's runtime starts threads of its own at the process's first
 * fork and first pthread_create (gcc's TSan does): have them started
 * now, so that the rounds' thread counts compare like with like.
 */
static void runtime_threads_start(void)
{
	pthread_t t;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (pthread_create(&t, NULL, nothing, NULL) == 0)
		pthread_join(t, NULL);
}

/* Reserve huge pages for the hugetlb rounds; -errno when it cannot. */
static int huge_reserve(long need, long *saved)
{
	long nr = read_nr_huge(), free_ = read_meminfo("HugePages_Free");

	*saved = -1;
	if (nr < 0 || free_ < 0)
		return -ENOENT;
	if (free_ >= need)
		return 0;
	if (write_nr_huge(nr + need - free_))
		return -EACCES;
	*saved = nr;
	return read_meminfo("HugePages_Free") >= need ? 0 : -ENOMEM;
}

int stress_run(const struct stress_opts *o, struct stress_totals *t)
{
	struct cfg cfgs[PG_N * MEM_N * 2 * 2];
	bool na[PG_N * MEM_N * 2 * 2] = { false };	/* said so once */
	size_t ncfg = 0, k;
	FILE *out = o->out ? o->out : stdout;
	char img[512], name[64];
	bool need_huge = false, need_img = false;
	long saved_huge = -1;
	int huge_ok = 0, ret, status = 0;
	uint64_t t0 = now_ms(), round = 0;

	for (int p = 0; p < PG_N; p++)
		for (int m = 0; m < MEM_N; m++)
			for (int d = 0; d < 2; d++)
				for (int h = 0; h < 2; h++) {
					char hs[8];

					snprintf(hs, sizeof(hs), "%u",
						 handler_counts[h]);
					if (!listed(o->pagers, pager_names[p]) ||
					    !listed(o->mems, mem_names[m]) ||
					    !listed(o->deliveries,
						    delivery_names[d]) ||
					    !listed(o->handlers, hs))
						continue;
					cfgs[ncfg++] = (struct cfg){
						p, m, d, handler_counts[h] };
					need_huge |= m == MEM_HUGETLB;
					need_img |= is_file_pager(p);
#ifdef HAVE_MEMCACHED
					need_img |= p == PG_EVICT_MC;
#endif
				}
	if (!ncfg) {
		fprintf(stderr, "stress: no configuration selected\n");
		return -EINVAL;
	}
	if (need_img) {
		ret = make_image(o->dir ? o->dir : "/tmp", img, sizeof(img));
		if (ret) {
			fprintf(stderr, "stress: cannot write the image in "
				"%s: %s\n", o->dir ? o->dir : "/tmp",
				strerror(-ret));
			return ret;
		}
	}
#ifdef HAVE_MEMCACHED
	for (k = 0; k < ncfg && cfgs[k].pager != PG_MEMCACHED &&
		    cfgs[k].pager != PG_EVICT_MC; k++)
		;
	if (k < ncfg) {
		ret = pool_start(img, out);
		if (ret) {
			unlink(img);
			return ret;
		}
	}
#endif
	if (need_huge)
		huge_ok = huge_reserve(16, &saved_huge);
	runtime_threads_start();
	{
		/* before any context: SIGBUS mode chains to it */
		struct sigaction sa = { .sa_sigaction = on_crash,
					.sa_flags = SA_SIGINFO };

		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGSEGV, &sa, NULL);
	}

	for (k = 0; ; k++) {
		struct round *rd;
		uint64_t faults = 0;
		int fds, threads;

		if (k == ncfg) {
			if (!o->duration_ms || now_ms() - t0 >= o->duration_ms)
				break;
			k = 0;
			/* long mode: where it stands, once a cycle */
			fprintf(out, "# stress: %.0f s: %" PRIu64 " rounds, %"
				PRIu64 " faults served, %" PRIu64 " mismatches, %"
				PRIu64 " failures\n",
				(double)(now_ms() - t0) / 1e3, t->rounds,
				t->faults, t->mismatches, t->failures);
			fflush(out);
		}
		if (na[k])
			continue;
		cfg_name(&cfgs[k], name, sizeof(name));
		if (cfgs[k].mem == MEM_HUGETLB && huge_ok) {
			fprintf(out, "stress: %s: n/a: no huge pages can be "
				"reserved: %s\n", name, strerror(-huge_ok));
			fflush(out);
			t->unsupported++;
			na[k] = true;
			continue;
		}
		rd = calloc(1, sizeof(*rd));
		if (!rd) {
			status = -ENOMEM;
			break;
		}
		rd->o = o;
		rd->cfg = cfgs[k];
		rd->img = img;
		rd->out = out;
		rd->seed = mix64(o->seed + round);
		rd->seq = round & 1;
		fds = count_dir("/proc/self/fd");
		threads = count_dir("/proc/self/task");
		ret = run_round(rd, &faults);
		if (ret == 0) {
			int f2 = count_dir("/proc/self/fd");
			int t2 = count_dir("/proc/self/task");

			for (int n = 0; t2 != threads && n < 200; n++) {
				sleep_us(10000);	/* exiting threads */
				t2 = count_dir("/proc/self/task");
			}
			if (f2 != fds || t2 != threads)
				fail(rd, "LEAK: descriptors %d -> %d, threads "
				     "%d -> %d", fds, f2, threads, t2);
			t->rounds++;
			round++;
			t->accesses += rd->accesses;
			t->faults += faults;
			t->mismatches += rd->mismatches;
			t->failures += rd->failures;
			for (int e = 0; e < SE_NEVENTS; e++)
				t->events[e] += rd->events[e];
			if (o->verbose || rd->mismatches || rd->failures) {
				fprintf(out, "stress: %-28s %s %8" PRIu64
					" accesses %7" PRIu64 " faults",
					name, rd->seq ? "seq " : "rand",
					(uint64_t)rd->accesses, faults);
				for (int e = 0; e < SE_NEVENTS; e++)
					if (rd->events[e])
						fprintf(out, " %s %" PRIu64,
							stress_event_names[e],
							rd->events[e]);
				fprintf(out, "%s\n", rd->mismatches ||
					rd->failures ? "  FAILED" : "");
				fflush(out);
			}
			if (rd->mismatches || rd->failures)
				status = 1;
		} else {
			t->unsupported++;
			na[k] = true;
		}
		free(rd);
	}
	if (saved_huge >= 0)
		write_nr_huge(saved_huge);
	if (need_img)
		unlink(img);
#ifdef HAVE_MEMCACHED
	mc_servers_stop(&pool_srv);
#endif
	return status;
}

/* ---- uffd-bench stress -------------------------------------------- */

static void stress_usage(FILE *f)
{
	fprintf(f,
"Usage: uffd-bench stress [OPTIONS]\n"
"Fault on every pager, memory type and delivery mode while a chaos thread\n"
"discards, moves, forks, stops and recreates; check every byte against a\n"
"shadow.  Exit: 0 no mismatch or failure, 1 some, 2 bad usage.\n"
"  -t, --time SECONDS    run this long, cycling configurations (default:\n"
"                        each configuration once)\n"
"  -r, --round-ms MS     each configuration's round (default 2000)\n"
"  -T, --threads N       faulting threads per CPU (default 2)\n"
"  -s, --seed N          random seed (default: the time)\n"
"  -p, --pagers LIST     zero,prealloc,prezero,hugezero,file,\n"
"                        file-prefetch,evict,memcached,evict-mc (default:\n"
"                        all; memcached and evict-mc, evict over the pool:\n"
"                        three servers of its own)\n"
"  -m, --mem LIST        anon,memfd,hugetlb (default: all)\n"
"  -d, --delivery LIST   thread,sigbus (default: both)\n"
"      --handlers LIST   1,3 (default: both)\n"
"      --dir DIR         where the file pager's image goes (/tmp)\n"
"  -v, --verbose         a line per round\n");
}

int stress_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "time", required_argument, NULL, 't' },
		{ "round-ms", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 'T' },
		{ "seed", required_argument, NULL, 's' },
		{ "pagers", required_argument, NULL, 'p' },
		{ "mem", required_argument, NULL, 'm' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "handlers", required_argument, NULL, 'H' },
		{ "dir", required_argument, NULL, 'D' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct stress_opts o = {
		.round_ms = 2000, .threads_per_cpu = 2,
		.seed = (uint64_t)time(NULL),
	};
	struct stress_totals t = { 0 };
	uint64_t t0 = now_ms();
	int c, ret;
	char *end;

	while ((c = getopt_long(argc, argv, "t:r:T:s:p:m:d:vh", lo,
				NULL)) != -1) {
		unsigned long long v = 0;

		if (strchr("trTs", c)) {
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "uffd-bench stress: bad "
					"number '%s'\n", optarg);
				return 2;
			}
		}
		switch (c) {
		case 't': o.duration_ms = v * 1000; break;
		case 'r':
			if (!v || v > 3600000)
				goto bad;
			o.round_ms = (unsigned int)v;
			break;
		case 'T':
			if (!v || v > 16)
				goto bad;
			o.threads_per_cpu = (unsigned int)v;
			break;
		case 's': o.seed = v; break;
		case 'p': o.pagers = optarg; break;
		case 'm': o.mems = optarg; break;
		case 'd': o.deliveries = optarg; break;
		case 'H': o.handlers = optarg; break;
		case 'D': o.dir = optarg; break;
		case 'v': o.verbose = 1; break;
		case 'h': stress_usage(stdout); return 0;
		default: stress_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
bad:
		stress_usage(stderr);
		return 2;
	}
	printf("# stress: seed %" PRIu64 ", %u threads per CPU, rounds of "
	       "%u ms%s\n", o.seed, o.threads_per_cpu, o.round_ms,
	       o.duration_ms ? ", cycling" : "");
	fflush(stdout);
	ret = stress_run(&o, &t);
	printf("# stress: %.0f s, %" PRIu64 " rounds, %" PRIu64 " accesses, %"
	       PRIu64 " faults served, events:", (double)(now_ms() - t0) / 1e3,
	       t.rounds, t.accesses, t.faults);
	for (int e = 0; e < SE_NEVENTS; e++)
		printf(" %s %" PRIu64, stress_event_names[e], t.events[e]);
	printf("; %" PRIu64 " mismatches, %" PRIu64 " failures, %" PRIu64
	       " configurations n/a\n", t.mismatches, t.failures,
	       t.unsupported);
	return ret < 0 ? 1 : ret;
}
