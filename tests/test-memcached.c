// SPDX-License-Identifier: MIT
/*
 * The memcached store and pager, against memcached servers this program
 * starts itself on free loopback ports (demos/mc-servers.c), never one
 * someone else started; no memcached binary: exit 77.
 *
 *  - round trip: a 256 MiB region pushed to a 3-server pool and restored
 *    lazily in a fresh process by the memcached pager, two threads
 *    faulting, byte for byte;
 *  - zero pages take no space: the servers' own curr_items, get_hits and
 *    get_misses (asked over a plain socket) count the stored pages only,
 *    and pushing again over a namespace leaves nothing stale;
 *  - replicas=1: a server killed in the middle of a restore, which still
 *    completes byte for byte;
 *  - replicas=0: the lost server's pages (libmemcached's hashing says
 *    which; the server's curr_items agrees) raise SIGBUS in the toucher,
 *    each once, counted by the library, never read as zeros, and every
 *    other page reads right;
 *  - far memory: the evict pager over the pool, a working set four times
 *    its budget, two threads, contents and Rss checked; and over a pool
 *    that fills up, where refused writes keep pages resident, never lost;
 *  - a full server (-M) refuses sets: the write fails, never later reads
 *    as zeros; a server nobody listens on fails reads and writes;
 *  - uffd-snapshot push, the command; bad specs and read-only writes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <check.h>
#include <libmemcached/memcached.h>

#include "helpers.h"
#include "mc-servers.h"
#include "snapshot-push.h"

#define MEM_MB		1024		/* per server, as the issue asks */
#define RT_PAGES	(256ull << 20 >> 12)	/* 256 MiB of 4 KiB pages */
#define MAGIC		0x6d656d6361636865ull	/* "memcache" */

static struct mc_servers srv;

static void servers(unsigned int n, unsigned int mem_mb)
{
	char why[256];
	int ret = mc_servers_start(&srv, n, mem_mb, why, sizeof(why));

	ck_assert_msg(ret == 0, "memcached: %s", why);
}

static void servers_setup(void)
{
	servers(3, MEM_MB);
}

static void servers_teardown(void)
{
	mc_servers_stop(&srv);
}

/* ---- the image ---------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A quarter of the pages zero, chosen by a hash of the page number. */
static bool img_zero(uint64_t p, uint64_t seed)
{
	return (mix(p ^ seed) & 3) == 0;
}

static uint64_t img_word(uint64_t p, uint64_t w, uint64_t seed)
{
	return img_zero(p, seed) ? 0 : MAGIC ^ seed ^ (p << 9 | w);
}

static char *img_make(uint64_t pages, uint64_t seed, uint64_t *nonzero)
{
	char *m = map_anon(pages);
	uint64_t p, w, n = 0, ps = page_size();

	for (p = 0; p < pages; p++) {
		uint64_t *pg = (uint64_t *)(m + p * ps);

		if (img_zero(p, seed))
			continue;
		n++;
		for (w = 0; w < ps / 8; w++)
			pg[w] = img_word(p, w, seed);
	}
	*nonzero = n;
	return m;
}

static bool img_page_ok(const void *page, uint64_t p, uint64_t seed)
{
	const uint64_t *w = page;
	uint64_t i, diff = 0;

	for (i = 0; i < page_size() / 8; i++)
		diff |= w[i] ^ img_word(p, i, seed);
	return !diff;
}

static void spec_of(char *buf, size_t len, const char *kind, const char *ns,
		    unsigned int replicas, const char *more)
{
	snprintf(buf, len, "%s:servers=%s,namespace=%s-%d%s%u%s%s", kind,
		 srv.list, ns, (int)getpid(), ",replicas=", replicas,
		 more ? "," : "", more ? more : "");
}

static long long items(void)
{
	long long sum = 0;
	unsigned int i;

	for (i = 0; i < srv.n; i++) {
		long long v;

		if (!srv.pid[i])
			continue;
		v = mc_servers_stat(&srv, i, "curr_items");
		ck_assert_int_ge(v, 0);
		sum += v;
	}
	return sum;
}

static long long stat_sum(const char *name)
{
	long long sum = 0;
	unsigned int i;

	for (i = 0; i < srv.n; i++)
		if (srv.pid[i])
			sum += mc_servers_stat(&srv, i, name);
	return sum;
}

/* Push @pages of the image from this process's memory. */
static void push_image(const char *spec, uint64_t pages, uint64_t seed,
		       uint64_t *nonzero)
{
	struct push_result r;
	char why[512];
	char *m = img_make(pages, seed, nonzero);
	int ret;

	ret = snapshot_push_process(spec, getpid(), (uintptr_t)m,
				    pages * page_size(), &r, why, sizeof(why));
	ck_assert_msg(ret == 0, "push: %s", why);
	ck_assert_uint_eq(r.pages, pages);
	ck_assert_uint_eq(r.stored, *nonzero);
	ck_assert_uint_eq(r.zero, pages - *nonzero);
	munmap(m, pages * page_size());
}

/* ---- a restore in a fresh process -------------------------------- */

struct toucher {
	char		*base;
	const uint32_t	*order;
	uint64_t	from, to, seed;
	uint64_t	bad;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t i;

	for (i = t->from; i < t->to; i++) {
		uint64_t p = t->order[i];

		t->bad += !img_page_ok(t->base + p * page_size(), p, t->seed);
	}
	return NULL;
}

static uint32_t *shuffle(uint64_t n, uint64_t seed)
{
	uint32_t *v = malloc(n * sizeof(*v));
	uint64_t i;

	if (!v)
		return NULL;
	for (i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	for (i = n - 1; i > 0; i--) {
		uint64_t j = mix(seed + i) % (i + 1), t = v[i];

		v[i] = v[j];
		v[j] = (uint32_t)t;
	}
	return v;
}

/*
 * In a child: restore @pages with pager @spec, touched by @nthreads
 * threads in a shuffled order, every page checked whole.  After @pause
 * pages (if not 0) the first thread writes a byte to @tell and waits for
 * one on @hear.  Exit status: 0 all right, 2 could not set up, 3 pages
 * wrong, 4 pages poisoned or not all copied.
 */
static int restore_child(const char *spec, uint64_t pages, uint64_t seed,
			 uint64_t nonzero, unsigned int nthreads,
			 uint64_t pause, int tell, int hear)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = pages * page_size(), .pager = spec,
	};
	struct toucher t[2];
	pthread_t tid[2];
	struct uffd_region *r;
	struct uffd_ctx *c;
	struct uffd_stats st;
	uint32_t *order = shuffle(pages, seed);
	uint64_t bad = 0;
	unsigned int i;
	char b = 0;

	if (!order || uffd_ctx_create(&c, NULL) ||
	    uffd_region_create(c, &o, &r) || uffd_ctx_start(c)) {
		fprintf(stderr, "restore: %s: %s\n", spec, uffd_last_error());
		return 2;
	}
	for (i = 0; i < nthreads; i++) {
		t[i] = (struct toucher){
			.base = uffd_region_addr(r), .order = order,
			.from = pages * i / nthreads,
			.to = pages * (i + 1) / nthreads, .seed = seed,
		};
	}
	if (pause) {
		/* the first part, then the signal, then the rest */
		struct toucher head = t[0];

		head.to = head.from + pause;
		touch_main(&head);
		t[0].from = head.to;
		bad += head.bad;
		if (write(tell, "h", 1) != 1 || read(hear, &b, 1) != 1)
			return 2;
	}
	for (i = 1; i < nthreads; i++)
		if (pthread_create(&tid[i], NULL, touch_main, &t[i]))
			return 2;
	touch_main(&t[0]);
	for (i = 1; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < nthreads; i++)
		bad += t[i].bad;
	uffd_ctx_stop(c);
	uffd_region_stats(r, &st, sizeof(st));
	fprintf(stderr, "restore: %llu pages, %llu copied, %llu zero-mapped, "
		"%llu faults, %llu store requests, %llu poisoned, %llu wrong\n",
		(unsigned long long)pages, (unsigned long long)st.pages_copy,
		(unsigned long long)st.pages_zero,
		(unsigned long long)(st.faults_read + st.faults_write),
		(unsigned long long)st.store_ios,
		(unsigned long long)st.poisoned, (unsigned long long)bad);
	uffd_ctx_destroy(c);
	free(order);
	if (bad)
		return 3;
	/* each data page copied once, each zero page zero-mapped */
	if (st.poisoned || st.pages_copy != nonzero ||
	    st.pages_zero != pages - nonzero || !st.store_ios)
		return 4;
	return 0;
}

/* In a test: ctx with @handlers handler threads, serving @pages of @spec. */
static struct uffd_region *served(const char *spec, size_t pages,
				  unsigned int handlers)
{
	struct uffd_ctx_opts co = { .size = sizeof(co), .handlers = handlers };
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = pages * page_size(), .pager = spec,
	};
	struct uffd_region *r;

	ck_assert_int_eq(uffd_ctx_create(&ctx, &co), 0);
	ck_assert_msg(uffd_region_create(ctx, &o, &r) == 0, "%s: %s", spec,
		      uffd_last_error());
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	return r;
}

static int wait_child(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "restore died of signal %d",
		      WTERMSIG(status));
	return WEXITSTATUS(status);
}

START_TEST(round_trip)
{
	const char *given = getenv("LIBUFFD_MC_SERVERS");
	char store[1024], pager[1024], why[256];
	long long before;
	uint64_t nonzero;
	pid_t pid;
	int st;

	/*
	 * CI (.ci/run) starts three servers of its own and names them:
	 * the round trip goes through those, and this program uses them
	 * for nothing else.  Without them, through ours.
	 */
	if (given) {
		mc_servers_stop(&srv);
		ck_assert_msg(!mc_servers_attach(&srv, given, why,
						 sizeof(why)),
			      "LIBUFFD_MC_SERVERS: %s", why);
	}
	fprintf(stderr, "round trip: through %s servers %s\n",
		given ? "CI's (LIBUFFD_MC_SERVERS)" : "this test's", srv.list);
	spec_of(store, sizeof(store), "memcached", "rt", 0, NULL);
	spec_of(pager, sizeof(pager), "memcached", "rt", 0, NULL);
	before = items();
	push_image(store, RT_PAGES, 1, &nonzero);
	ck_assert_int_eq(items() - before, (long long)nonzero);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(restore_child(pager, RT_PAGES, 1, nonzero, 2, 0, -1,
				    -1));
	st = wait_child(pid);
	ck_assert_msg(st == 0, "restore exit %d (3: pages wrong, 4: poisoned "
		      "or miscounted; see the log)", st);
}
END_TEST

/* ---- zero pages ---------------------------------------------------- */

START_TEST(zero_pages_no_space)
{
	const uint64_t pages = 1024;
	struct uffd_store *st;
	char spec[1024], *buf;
	uint64_t nonzero, nonzero2, p;
	long long hits, misses;
	size_t i;

	spec_of(spec, sizeof(spec), "memcached", "zero", 0, NULL);
	push_image(spec, pages, 2, &nonzero);
	ck_assert_uint_gt(pages - nonzero, pages / 8);
	/* the servers' own count: one item per data page, none per zero */
	ck_assert_int_eq(items(), (long long)nonzero);

	/* every key asked once: data pages hit, zero pages miss */
	hits = stat_sum("get_hits");
	misses = stat_sum("get_misses");
	ck_assert_int_eq(uffd_store_open(spec, pages * page_size(), &st), 0);
	buf = map_anon(pages);
	ck_assert_int_eq(uffd_store_read(st, 0, pages, buf), 0);
	for (p = 0; p < pages; p++)
		ck_assert_msg(img_page_ok(buf + p * page_size(), p, 2),
			      "page %llu", (unsigned long long)p);
	ck_assert_int_eq(stat_sum("get_hits") - hits, (long long)nonzero);
	ck_assert_int_eq(stat_sum("get_misses") - misses,
			 (long long)(pages - nonzero));

	/* a data page written as zeros gives its space back */
	for (p = 0; img_zero(p, 2); p++)
		;
	memset(buf, 0, page_size());
	ck_assert_int_eq(uffd_store_write(st, p, 1, buf), 0);
	ck_assert_int_eq(items(), (long long)nonzero - 1);
	memset(buf, 0xff, page_size());
	ck_assert_int_eq(uffd_store_read(st, p, 1, buf), 0);
	for (i = 0; i < page_size(); i++)
		ck_assert_int_eq(buf[i], 0);
	uffd_store_close(st);
	munmap(buf, pages * page_size());

	/* another image over the same namespace: nothing of the first stays */
	push_image(spec, pages, 3, &nonzero2);
	ck_assert_int_eq(items(), (long long)nonzero2);
}
END_TEST

/* ---- replicas ------------------------------------------------------ */

START_TEST(replica_survives_kill)
{
	const uint64_t pages = 8192;	/* 32 MiB */
	char spec[1024];
	uint64_t nonzero;
	int tell[2], hear[2], st;
	pid_t pid;
	char b;

	spec_of(spec, sizeof(spec), "memcached", "rep", 1, NULL);
	push_image(spec, pages, 4, &nonzero);
	ck_assert_int_eq(items(), 2 * (long long)nonzero);	/* two copies */
	ck_assert_int_eq(pipe(tell), 0);
	ck_assert_int_eq(pipe(hear), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(restore_child(spec, pages, 4, nonzero, 1, pages / 3,
				    tell[1], hear[0]));
	/* a third restored: one of the three servers goes */
	ck_assert_int_eq(read(tell[0], &b, 1), 1);
	mc_servers_kill(&srv, 1);
	ck_assert_int_eq(write(hear[1], "k", 1), 1);
	st = wait_child(pid);
	ck_assert_msg(st == 0, "restore after the kill: exit %d", st);
}
END_TEST

/*
 * Which server libmemcached's consistent hashing gives each page's key:
 * that of its extent's name, NS/e for e = p / 16 (stores/memcached.c).
 */
static unsigned int *homes(const char *ns, uint64_t pages)
{
	unsigned int *h = malloc(pages * sizeof(*h));
	memcached_st *m = memcached_create(NULL);
	uint64_t p;
	unsigned int i;

	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(m);
	for (i = 0; i < srv.n; i++)
		ck_assert_int_eq(memcached_server_add(m, "127.0.0.1",
						      (in_port_t)srv.port[i]),
				 MEMCACHED_SUCCESS);
	ck_assert_int_eq(memcached_behavior_set(m,
				MEMCACHED_BEHAVIOR_DISTRIBUTION,
				MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA),
			 MEMCACHED_SUCCESS);
	for (p = 0; p < pages; p++) {
		char key[256];
		int n = snprintf(key, sizeof(key), "%s/%llx", ns,
				 (unsigned long long)(p / 16));

		h[p] = memcached_generate_hash(m, key, (size_t)n);
	}
	memcached_free(m);
	return h;
}

START_TEST(lost_server_sigbus)
{
	const uint64_t pages = 2048;
	struct uffd_region *r;
	struct uffd_stats st;
	char spec[1024], ns[64];
	uint64_t nonzero, p, lost = 0, lost_data = 0, sigbus = 0;
	unsigned int *home;
	char *base;

	snprintf(ns, sizeof(ns), "lost-%d", (int)getpid());
	spec_of(spec, sizeof(spec), "memcached", "lost", 0, NULL);
	push_image(spec, pages, 5, &nonzero);
	home = homes(ns, pages);
	for (p = 0; p < pages; p++) {
		lost += home[p] == 1;
		lost_data += home[p] == 1 && !img_zero(p, 5);
	}
	ck_assert_uint_gt(lost, 0);
	/* the oracle agrees with the server: its items are its data pages */
	ck_assert_int_eq(mc_servers_stat(&srv, 1, "curr_items"),
			 (long long)lost_data);
	mc_servers_kill(&srv, 1);

	sigbus_catcher_install();
	r = served(spec, pages, 1);
	base = uffd_region_addr(r);
	for (p = 0; p < pages; p++) {
		char *pg = base + p * page_size();
		uint8_t v;
		int bus = touch_catch_sigbus(pg, 0, &v, NULL);

		if (bus) {
			ck_assert_msg(home[p] == 1, "page %llu (server %u) "
				      "raised SIGBUS", (unsigned long long)p,
				      home[p]);
			sigbus++;
			continue;
		}
		ck_assert_msg(home[p] != 1, "page %llu of the lost server "
			      "(%s) read without SIGBUS",
			      (unsigned long long)p,
			      img_zero(p, 5) ? "a zero page" : "data");
		ck_assert_msg(img_page_ok(pg, p, 5), "page %llu wrong",
			      (unsigned long long)p);
	}
	ck_assert_uint_eq(sigbus, lost);
	st = settled_stats(r);
	/* counted by the library: each lost page failed once, poisoned */
	ck_assert_uint_eq(st.poisoned + st.sigbus_queued, lost);
	ck_assert_uint_ge(st.pager_errors, lost);
	fprintf(stderr, "lost server: %llu of %llu pages on it (%llu data), "
		"%llu SIGBUS, poisoned %llu, queued %llu, pager errors %llu\n",
		(unsigned long long)lost, (unsigned long long)pages,
		(unsigned long long)lost_data, (unsigned long long)sigbus,
		(unsigned long long)st.poisoned,
		(unsigned long long)st.sigbus_queued,
		(unsigned long long)st.pager_errors);
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	free(home);
}
END_TEST

/* ---- far memory ---------------------------------------------------- */

#define FAR_PAGES	16384	/* 64 MiB */
#define FAR_BUDGET	4096	/* 16 MiB: a quarter */
#define FAR_OPS		12000

struct far_worker {
	uint8_t		*base;
	unsigned int	id;
	uint32_t	*ver;
	uint64_t	seed;
	pthread_barrier_t *pause;
	long		max_rss_kib;
	int		bad;
	size_t		bad_page;
};

static uint64_t far_word(size_t pg, uint32_t v, size_t i)
{
	return v ? ((uint64_t)pg << 40 | (uint64_t)v << 8 | (i & 0xff)) : 0;
}

static void *far_main(void *arg)
{
	struct far_worker *w = arg;
	size_t ps = page_size(), i, k;

	/* every page of its half written once, then at random */
	/* to the end even after a bad page: the other waits at the pause */
	for (i = 0; i < FAR_PAGES / 2 + FAR_OPS; i++) {
		size_t pg;
		uint64_t *p;

		w->seed = w->seed * 6364136223846793005ULL +
			  1442695040888963407ULL;
		pg = i < FAR_PAGES / 2 ? i * 2 + w->id :
		     (size_t)(w->seed >> 33) % (FAR_PAGES / 2) * 2 + w->id;
		p = (uint64_t *)(w->base + pg * ps);
		if (i < FAR_PAGES / 2 || (w->seed >> 20) % 3 == 0) {
			uint32_t v = ++w->ver[pg];

			for (k = 0; k < ps / 8; k++)
				p[k] = far_word(pg, v, k);
		} else {
			for (k = 0; k < ps / 8; k++)
				if (p[k] != far_word(pg, w->ver[pg], k))
					break;
			if (k < ps / 8 && !w->bad) {
				w->bad = 1;
				w->bad_page = pg;
			}
		}
		/*
		 * Rss with both threads between accesses: smaps walks the
		 * page tables while pages move out and others come in, and
		 * a walk over 64 MiB during that churn counts some of both
		 * (measured: up to 70 pages over, with the memfd store too,
		 * while the pager's own count never passed the budget).
		 * Paused, nothing comes in; the evictor only takes out.
		 */
		if (i % 256 == 0) {
			pthread_barrier_wait(w->pause);
			if (w->id == 0) {
				long rss = rss_kib(w->base);

				if (rss > w->max_rss_kib)
					w->max_rss_kib = rss;
			}
			pthread_barrier_wait(w->pause);
		}
	}
	return NULL;
}

START_TEST(far_memory)
{
	struct far_worker w[2];
	pthread_barrier_t pause;
	pthread_t t[2];
	struct uffd_region *r;
	struct uffd_stats st;
	uint32_t *ver = calloc(FAR_PAGES, sizeof(*ver));
	char spec[1024], more[64];
	size_t pg;
	int i;

	ck_assert_ptr_nonnull(ver);
	snprintf(more, sizeof(more), "limit=%zu", FAR_BUDGET * page_size());
	snprintf(spec, sizeof(spec), "evict:%s,store=memcached,servers=%s,"
		 "namespace=far-%d", more, srv.list, (int)getpid());
	r = served(spec, FAR_PAGES, 2);
	ck_assert_int_eq(pthread_barrier_init(&pause, NULL, 2), 0);
	for (i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].base = uffd_region_addr(r);
		w[i].id = (unsigned int)i;
		w[i].ver = ver;
		w[i].pause = &pause;
		w[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		ck_assert_int_eq(pthread_create(&t[i], NULL, far_main, &w[i]),
				 0);
	}
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(join_timeout(t[i], NULL, 600000), 0);
	pthread_barrier_destroy(&pause);
	for (i = 0; i < 2; i++) {
		ck_assert_msg(!w[i].bad, "thread %d: page %zu read back wrong",
			      i, w[i].bad_page);
		ck_assert_msg(w[i].max_rss_kib <=
			      (long)(FAR_BUDGET * page_size() / 1024),
			      "Rss %ld KiB over the budget %zu KiB",
			      w[i].max_rss_kib,
			      FAR_BUDGET * page_size() / 1024);
	}
	/* at the end, every page once more, against the shadow */
	for (pg = 0; pg < FAR_PAGES; pg++) {
		const uint64_t *p = (const uint64_t *)
			((uint8_t *)uffd_region_addr(r) + pg * page_size());
		size_t k;

		for (k = 0; k < page_size() / 8; k++)
			ck_assert_msg(p[k] == far_word(pg, ver[pg], k),
				      "page %zu word %zu", pg, k);
	}
	ck_assert_int_le(rss_kib(uffd_region_addr(r)),
			 (long)(FAR_BUDGET * page_size() / 1024));
	st = settled_stats(r);
	ck_assert_uint_gt(st.pages_written_back, FAR_PAGES - FAR_BUDGET);
	ck_assert_uint_gt(st.pages_read_in, 0);
	ck_assert_uint_eq(st.writeback_errors, 0);
	ck_assert_uint_eq(st.poisoned, 0);
	/* what left the region is in the pool */
	ck_assert_int_ge(items(), FAR_PAGES - FAR_BUDGET);
	fprintf(stderr, "far memory: %d pages over a budget of %d: %llu "
		"evicted, %llu written back, %llu read in, max Rss %ld/%ld "
		"KiB, %lld items in the pool\n", FAR_PAGES, FAR_BUDGET,
		(unsigned long long)st.pages_evicted,
		(unsigned long long)st.pages_written_back,
		(unsigned long long)st.pages_read_in,
		w[0].max_rss_kib > w[1].max_rss_kib ? w[0].max_rss_kib :
		w[1].max_rss_kib, (long)(FAR_BUDGET * page_size() / 1024),
		items());
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	free(ver);
}
END_TEST

/*
 * Far memory over a pool that fills up: a 2 MiB server refuses sets, the
 * evict pager keeps what it cannot write (over its budget, dirty), and
 * no page may read back wrong.  A refused set also deletes the key in
 * memcached: evict once let a page go out twice, its fault path's write
 * landing first and its round's, refused, after, which deleted the page
 * just written (5 wrong pages in 5 of 5 runs before).
 */
START_TEST(far_memory_full_pool)
{
	const size_t pages = 8192, ops = 60000;
	uint32_t *ver = calloc(pages, sizeof(*ver));
	uint64_t seed = 42, *base;
	struct uffd_region *r;
	struct uffd_stats st;
	char spec[512];
	size_t i, k;

	ck_assert_ptr_nonnull(ver);
	servers(1, 2);
	snprintf(spec, sizeof(spec), "evict:limit=2M,batch=16,store=memcached,"
		 "servers=%s,namespace=fullpool-%d", srv.list, (int)getpid());
	r = served(spec, pages, 1);
	base = uffd_region_addr(r);
	for (i = 0; i < ops; i++) {
		size_t pg;
		uint64_t *p;

		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		pg = (size_t)(seed >> 33) % pages;
		p = base + pg * (page_size() / 8);
		if ((seed >> 20) % 3 == 0) {
			uint32_t v = ++ver[pg];

			for (k = 0; k < page_size() / 8; k++)
				p[k] = far_word(pg, v, k);
			continue;
		}
		for (k = 0; k < page_size() / 8; k++)
			ck_assert_msg(p[k] == far_word(pg, ver[pg], k),
				      "op %zu: page %zu (version %u) word %zu "
				      "is %#llx", i, pg, ver[pg], k,
				      (unsigned long long)p[k]);
	}
	st = settled_stats(r);
	/* the pool did refuse: the case tested the refusals */
	ck_assert_uint_gt(st.writeback_errors, 0);
	ck_assert_uint_gt(st.pages_written_back, 0);
	fprintf(stderr, "full pool: %llu written back, %llu refused, %llu "
		"read in, %lld items\n",
		(unsigned long long)st.pages_written_back,
		(unsigned long long)st.writeback_errors,
		(unsigned long long)st.pages_read_in, items());
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	free(ver);
}
END_TEST

/* ---- failures ------------------------------------------------------ */

/* A server out of memory (-M): sets refused, reported, never zeros. */
START_TEST(full_server_refuses)
{
	const uint64_t batch = 64, batches = 64;	/* 16 MiB into 2 */
	struct uffd_store *st;
	char spec[1024], *buf;
	uint64_t b, p, ok = 0;
	int ret, failed = 0;

	servers(1, 2);
	spec_of(spec, sizeof(spec), "memcached", "full", 0, NULL);
	ck_assert_int_eq(uffd_store_open(spec, batch * batches * page_size(),
					 &st), 0);
	buf = map_anon(batch);
	for (b = 0; b < batches; b++) {
		for (p = 0; p < batch; p++)
			memset(buf + p * page_size(), (int)(b % 255 + 1),
			       page_size());
		ret = uffd_store_write(st, b * batch, batch, buf);
		if (ret == -EIO) {
			failed++;
			continue;
		}
		ck_assert_int_eq(ret, 0);
		ok = b + 1;
		/* all that was acknowledged so far reads back */
		ck_assert_int_eq(uffd_store_read(st, b * batch, batch, buf),
				 0);
		for (p = 0; p < batch * page_size(); p++)
			ck_assert_int_eq((uint8_t)buf[p], b % 255 + 1);
	}
	ck_assert_msg(failed > 0, "16 MiB went into a 2 MiB server");
	ck_assert_uint_gt(ok, 0);
	uffd_store_close(st);
	munmap(buf, batch * page_size());
}
END_TEST

START_TEST(nobody_listening)
{
	struct uffd_store *st;
	char spec[256], *buf = map_anon(4);
	int port;

	/* a port the kernel hands out, then closed: refused at once */
	servers(1, 16);
	port = srv.port[0];
	mc_servers_stop(&srv);
	snprintf(spec, sizeof(spec), "memcached:servers=127.0.0.1:%d,"
		 "namespace=none-%d,timeout=200", port, (int)getpid());
	/* connections are made when used: open succeeds */
	ck_assert_int_eq(uffd_store_open(spec, 4 * page_size(), &st), 0);
	ck_assert_int_eq(uffd_store_read(st, 0, 4, buf), -EIO);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "did not answer"));
	memset(buf, 1, 4 * page_size());
	ck_assert_int_eq(uffd_store_write(st, 0, 4, buf), -EIO);
	uffd_store_close(st);
	munmap(buf, 4 * page_size());
}
END_TEST

START_TEST(readonly_refuses_writes)
{
	struct uffd_store *st;
	char spec[1024], *buf = map_anon(1);

	spec_of(spec, sizeof(spec), "memcached", "ro", 0, "readonly=1");
	ck_assert_int_eq(uffd_store_open(spec, page_size(), &st), 0);
	memset(buf, 1, page_size());
	ck_assert_int_eq(uffd_store_write(st, 0, 1, buf), -EBADF);
	ck_assert_int_eq(items(), 0);
	ck_assert_int_eq(uffd_store_read(st, 0, 1, buf), 0);
	ck_assert_int_eq(buf[0], 0);
	uffd_store_close(st);
	munmap(buf, page_size());
}
END_TEST

static const struct {
	const char	*spec;
	uint64_t	len;
	const char	*why;
} bad_specs[] = {
	{ "memcached", 4096, "servers=" },
	{ "memcached:namespace=x", 4096, "servers=" },
	{ "memcached:servers=127.0.0.1:11211", 4096, "namespace=" },
	{ "memcached:servers=127.0.0.1:0,namespace=x", 4096, "bad port" },
	{ "memcached:servers=127.0.0.1:65536,namespace=x", 4096, "bad port" },
	{ "memcached:servers=127.0.0.1:x,namespace=x", 4096, "bad port" },
	{ "memcached:servers=;,namespace=x", 4096, "bad server" },
	{ "memcached:servers=a;b,namespace=x,replicas=2", 4096, "replicas" },
	{ "memcached:servers=a,namespace=a b", 4096, "no blanks" },
	{ "memcached:servers=a,namespace=x,bogus=1", 4096, "bogus" },
	{ "memcached:servers=a,namespace=x", 0, "a length is needed" },
};

START_TEST(bad_spec)
{
	struct uffd_store *st = (struct uffd_store *)1;
	int ret = uffd_store_open(bad_specs[_i].spec, bad_specs[_i].len, &st);

	ck_assert_int_eq(ret, -EINVAL);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(uffd_last_error(), bad_specs[_i].why),
		      "\"%s\": reason \"%s\", expected \"%s\"",
		      bad_specs[_i].spec, uffd_last_error(), bad_specs[_i].why);
}
END_TEST

START_TEST(bad_pager_spec)
{
	ck_assert_int_eq(uffd_pager_spec_check("memcached", 4096), -EINVAL);
	ck_assert_int_eq(uffd_pager_spec_check("memcached:namespace=x", 4096),
			 -EINVAL);
	ck_assert_int_eq(uffd_pager_spec_check("memcached:servers=127.0.0.1,"
					       "namespace=x,path=/y", 4096),
			 -EINVAL);
	ck_assert_ptr_nonnull(uffd_pager_find("memcached"));
	ck_assert_ptr_nonnull(uffd_store_find("memcached"));
	ck_assert(uffd_store_find("memcached")->flags &
		  LIBUFFD_STORE_PERSISTENT);
}
END_TEST

/* ---- uffd-snapshot push -------------------------------------------- */

START_TEST(snapshot_cmd)
{
	const uint64_t pages = 512;
	char path[4096], file[64], store[1024], want[128];
	const char *args[5];
	struct result res;
	uint64_t nonzero;
	char *m = img_make(pages, 6, &nonzero);
	const char *dir = getenv("LIBUFFD_DEMOS");
	int fd;

	if (dir)
		snprintf(path, sizeof(path), "%s/uffd-snapshot", dir);
	else
		ck_assert(find_above_exe("demos/uffd-snapshot", path,
					 sizeof(path)));
	snprintf(file, sizeof(file), "/tmp/test-memcached-XXXXXX");
	fd = mkstemp(file);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, m, pages * page_size()),
			 (ssize_t)(pages * page_size()));
	close(fd);
	munmap(m, pages * page_size());
	spec_of(store, sizeof(store), "memcached", "cmd", 0, NULL);
	args[0] = "push";
	args[1] = "--store";
	args[2] = store;
	args[3] = file;
	args[4] = NULL;
	run_program(&res, path, args, 60, 0, NULL, NULL);
	unlink(file);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	snprintf(want, sizeof(want), ": %llu pages, %llu stored, %llu zero "
		 "(not stored)", (unsigned long long)pages,
		 (unsigned long long)nonzero,
		 (unsigned long long)(pages - nonzero));
	ck_assert_msg(strstr(res.out, want), "\"%s\" lacks \"%s\"", res.out,
		      want);
	ck_assert_int_eq(items(), (long long)nonzero);
	result_free(&res);
}
END_TEST

static Suite *mc_suite(void)
{
	Suite *s = suite_create("memcached");
	TCase *tc;

	tc = add_tcase(s, "restore", servers_setup, servers_teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, zero_pages_no_space);
	tcase_add_test(tc, replica_survives_kill);
	tcase_add_test(tc, lost_server_sigbus);
	tcase_add_test(tc, snapshot_cmd);

	tc = add_tcase(s, "far", servers_setup, servers_teardown);
	tcase_set_timeout(tc, 600);
	add_test_if(tc, far_memory, LIBUFFD_FEATURE_MOVE |
		    LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP, 0);

	tc = add_tcase(s, "full", NULL, servers_teardown);
	tcase_set_timeout(tc, 300);
	add_test_if(tc, far_memory_full_pool, LIBUFFD_FEATURE_MOVE |
		    LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP, 0);

	tc = add_tcase(s, "errors", NULL, servers_teardown);
	tcase_add_test(tc, full_server_refuses);
	tcase_add_test(tc, nobody_listening);
	tcase_add_loop_test(tc, bad_spec, 0,
			    sizeof(bad_specs) / sizeof(bad_specs[0]));
	tcase_add_test(tc, bad_pager_spec);

	tc = add_tcase(s, "readonly", servers_setup, servers_teardown);
	tcase_add_test(tc, readonly_refuses_writes);
	return s;
}

int main(void)
{
	if (!mc_servers_binary()) {
		fprintf(stderr, "test-memcached: no memcached binary (PATH, "
			"/usr/bin, /usr/sbin, $MEMCACHED): apt-get install "
			"memcached\n");
		return 77;
	}
	require_kernel(0, 0);
	return run_suite(mc_suite());
}
