/* SPDX-License-Identifier: MIT */
/*
 * Fault delivery: SIGBUS mode (the faulting thread serves its own fault),
 * handler placement and spinning, several handler threads on one uffd,
 * and one handler serving several contexts.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "helpers.h"

#define NTHREADS	8
#define NPAGES		256

static struct uffd_ctx *make_ctx(int delivery, unsigned int handlers,
				 int cpu, unsigned int spin_us)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.flags = cpu != LIBUFFD_CPU_ANY ? LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu = cpu,
		.delivery = delivery,
		.handlers = handlers,
		.spin_us = spin_us,
	};
	struct uffd_ctx *c = NULL;

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	return c;
}

struct walker {
	pthread_t	t;
	uint8_t		*p;
	int		idx;
	int		shared;		/* all threads on the same pages */
	int		bad;
};

/* Thread i writes its mark into its pages (or every page), then checks. */
static void *walk(void *arg)
{
	struct walker *w = arg;
	size_t ps = page_size(), i;

	for (i = 0; i < NPAGES; i++) {
		size_t pg = w->shared ? i : (size_t)w->idx * NPAGES + i;

		if (w->shared) {
			/* readers and writers race on the same pages */
			if (w->idx & 1)
				(void)peek(w->p + pg * ps);
			else
				poke(w->p + pg * ps + w->idx, (uint8_t)(w->idx + 1));
		} else {
			poke(w->p + pg * ps, (uint8_t)(w->idx + 1));
		}
	}
	for (i = 0; i < NPAGES && !w->shared; i++)
		if (peek(w->p + ((size_t)w->idx * NPAGES + i) * ps) !=
		    (uint8_t)(w->idx + 1))
			w->bad++;
	return NULL;
}

static void run_walkers(struct uffd_ctx *c, int shared)
{
	struct walker w[NTHREADS];
	struct uffd_region *r;
	struct uffd_stats st;
	size_t ps = page_size(), pages = shared ? NPAGES : NTHREADS * NPAGES;
	size_t i;
	int t;

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, pages, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	for (t = 0; t < NTHREADS; t++) {
		w[t] = (struct walker){ .p = uffd_region_addr(r), .idx = t,
					.shared = shared };
		ck_assert_int_eq(pthread_create(&w[t].t, NULL, walk, &w[t]), 0);
	}
	for (t = 0; t < NTHREADS; t++) {
		ck_assert_int_eq(join_timeout(w[t].t, NULL, TEST_WAIT_MS), 0);
		ck_assert_int_eq(w[t].bad, 0);
	}
	if (shared) {
		uint8_t *p = uffd_region_addr(r);

		for (i = 0; i < NPAGES; i++)
			for (t = 0; t < NTHREADS; t += 2)
				ck_assert_uint_eq(peek(p + i * ps + t), t + 1);
	}
	/*
	 * Counters of the last faults land just after their wake-up.  Not a
	 * wait for a first copy: on shared pages the readers may win every
	 * race, and the writes are then the kernel's copy-on-write.
	 */
	st = settled_stats(r);
	/* every page filled once; every other fault lost a race */
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, pages);
	ck_assert_uint_eq(st.faults_read + st.faults_write,
			  st.pages_copy + st.pages_zero + st.eexist);
	ck_assert_uint_eq(st.poisoned, 0);
	if (uffd_ctx_features(c) & LIBUFFD_FEATURE_SIGBUS)
		ck_assert_uint_eq(st.sigbus_faults,
				  st.faults_read + st.faults_write);
	else
		ck_assert_uint_eq(st.sigbus_faults, 0);
	if (!shared)
		ck_assert_uint_eq(st.pages_copy, pages);
	ck_assert_int_eq(present_pages(uffd_region_addr(r), pages * ps),
			 (long)pages);
}

START_TEST(sigbus_eight_threads_disjoint)
{
	struct uffd_ctx *c = make_ctx(LIBUFFD_DELIVER_SIGBUS, 0, -1, 0);

	ck_assert(uffd_ctx_features(c) & LIBUFFD_FEATURE_SIGBUS);
	run_walkers(c, 0);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(sigbus_eight_threads_shared)
{
	struct uffd_ctx *c = make_ctx(LIBUFFD_DELIVER_SIGBUS, 0, -1, 0);

	run_walkers(c, 1);
	uffd_ctx_destroy(c);
}
END_TEST

/* Every built-in pager but file serves in SIGBUS mode, contents right. */
START_TEST(sigbus_pagers)
{
	static const char *const specs[] = {
		"zero", "prealloc:batch=16", "prezero:batch=4,pool=64",
		"hugezero",
	};
	size_t ps = page_size(), i, k;

	for (k = 0; k < ARRAY_SIZE(specs); k++) {
		struct uffd_ctx *c = make_ctx(LIBUFFD_DELIVER_SIGBUS, 0, -1, 0);
		struct uffd_region *r;
		struct uffd_stats st;
		uint8_t *p;

		ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 1024,
					     specs[k], &r), 0);
		ck_assert_int_eq(uffd_ctx_start(c), 0);
		p = uffd_region_addr(r);
		for (i = 0; i < 1024; i += 3)
			poke(p + i * ps, (uint8_t)i);
		for (i = 0; i < 1024; i++)
			ck_assert_uint_eq(peek(p + i * ps),
					  i % 3 ? 0 : (uint8_t)i);
		ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
		ck_assert_uint_gt(st.sigbus_faults, 0);
		ck_assert_uint_eq(st.sigbus_faults,
				  st.faults_read + st.faults_write);
		ck_assert_uint_eq(st.poisoned, 0);
		uffd_ctx_destroy(c);
	}
}
END_TEST

/* A pager that is not CONCURRENT cannot run in a signal handler. */
static const struct uffd_pager_ops plain_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "plain",
	.init = init_region_state,
	.fault = fault_like_zero,
};

START_TEST(sigbus_refuses_plain_pager)
{
	struct uffd_ctx *c = make_ctx(LIBUFFD_DELIVER_SIGBUS, 0, -1, 0);
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = 4 * page_size(), .ops = &plain_ops,
	};
	struct uffd_region *r = NULL;
	int fds = count_fds();

	ck_assert_int_eq(uffd_region_create(c, &o, &r), -ENOTSUP);
	ck_assert_ptr_null(r);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "SIGBUS"));
	ck_assert_int_eq(count_fds(), fds);
	uffd_ctx_destroy(c);
}
END_TEST

static sigjmp_buf app_jmp;
static volatile sig_atomic_t app_hits;

static void app_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)si; (void)uc;
	app_hits++;
	siglongjmp(app_jmp, 1);
}

/* A SIGBUS that is not ours reaches the application's own handler. */
START_TEST(sigbus_foreign_chained)
{
	struct sigaction sa, old;
	struct uffd_ctx *c;
	struct uffd_region *r;
	char path[] = "/tmp/libuffd-trunc-XXXXXX";
	size_t ps = page_size();
	uint8_t *fm, *p;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = app_handler;
	sa.sa_flags = SA_SIGINFO;
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &old), 0);

	c = make_ctx(LIBUFFD_DELIVER_SIGBUS, 0, -1, 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	p = uffd_region_addr(r);
	poke(p, 1);		/* ours: served, the app never hears of it */
	ck_assert_int_eq(app_hits, 0);

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, 2 * (off_t)ps), 0);
	fm = mmap(NULL, 2 * ps, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(fm, MAP_FAILED);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	if (sigsetjmp(app_jmp, 1) == 0)
		(void)peek(fm + ps);	/* beyond EOF: SIGBUS, not ours */
	ck_assert_int_eq(app_hits, 1);

	/* still serving ours afterwards */
	poke(p + ps, 2);
	ck_assert_uint_eq(peek(p + ps), 2);
	ck_assert_int_eq(app_hits, 1);
	munmap(fm, 2 * ps);
	close(fd);
	uffd_ctx_destroy(c);
	sigaction(SIGBUS, &old, NULL);
}
END_TEST

struct toucher {
	pthread_t	t;
	uint8_t		*p;
	atomic_int	done;
};

static void *touch_one(void *arg)
{
	struct toucher *t = arg;

	poke(t->p, 0x5a);
	atomic_store(&t->done, 1);
	return NULL;
}

/* Stopped, a SIGBUS-mode fault waits for the next start, as a blocked one. */
START_TEST(sigbus_start_stop_start)
{
	struct uffd_ctx *c = make_ctx(LIBUFFD_DELIVER_SIGBUS, 0, -1, 0);
	struct uffd_region *r;
	struct toucher t = { 0 };
	size_t ps = page_size();
	uint8_t *p;

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	p = uffd_region_addr(r);
	poke(p, 1);
	ck_assert_int_eq(uffd_ctx_stop(c), 0);
	t.p = p + 3 * ps;
	ck_assert_int_eq(pthread_create(&t.t, NULL, touch_one, &t), 0);
	sleep_us(50000);
	ck_assert_int_eq(atomic_load(&t.done), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	ck_assert_int_eq(join_timeout(t.t, NULL, TEST_WAIT_MS), 0);
	ck_assert_uint_eq(peek(p + 3 * ps), 0x5a);
	ck_assert_int_eq(uffd_ctx_stop(c), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	poke(p + 4 * ps, 4);
	ck_assert_uint_eq(peek(p + 4 * ps), 4);
	ck_assert_uint_eq(peek(p), 1);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(pin_bad_cpus)
{
	struct uffd_ctx_opts o = { .size = sizeof(o) };
	struct uffd_ctx *c = NULL;
	int bad[] = { -3, -100, (int)sysconf(_SC_NPROCESSORS_CONF), 1 << 20 };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		o.flags = LIBUFFD_CTX_PIN_HANDLER;
		o.handler_cpu = bad[i];
		ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
		ck_assert_ptr_null(c);
		o.flags = LIBUFFD_CTX_PIN_HELPERS;
		o.handler_cpu = 0;
		o.helper_cpu = bad[i];
		ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
		ck_assert_ptr_null(c);
		o.helper_cpu = 0;
	}
	/* without the flags the CPU fields are not looked at */
	o.flags = 0;
	o.handler_cpu = -100;
	o.helper_cpu = 1 << 20;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	uffd_ctx_destroy(c);
	c = NULL;
	o.flags = 1u << 30;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	o.flags = 0;
	o.handler_cpu = 0;
	o.handlers = LIBUFFD_MAX_HANDLERS + 1;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	o.handlers = 0;
	o.delivery = 7;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	o.delivery = 0;
	o.features = LIBUFFD_FEATURE_SIGBUS;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	/* a forked child could not serve its own SIGBUS faults */
	o.features = LIBUFFD_FEATURE_EVENT_FORK;
	o.delivery = LIBUFFD_DELIVER_SIGBUS;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "EVENT_FORK"));
	ck_assert_ptr_null(c);
}
END_TEST

/*
 * Pager helpers (prezero's scrubber): free of the application's pinning by
 * default, on the CPU the options say with LIBUFFD_CTX_PIN_HELPERS.
 */
static void helper_cpus_with(unsigned int flags, int helper_cpu,
			     const char *want)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.flags = LIBUFFD_CTX_PIN_HANDLER | flags,
		.handler_cpu = 0,
		.helper_cpu = helper_cpu,
	};
	struct uffd_ctx *c = NULL;
	struct uffd_region *r;
	cpu_set_t one, old;
	pid_t tids[8];
	char cpus[64];
	int n, i, seen = 0;

	note_runtime_threads();
	ck_assert_int_eq(sched_getaffinity(0, sizeof(old), &old), 0);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 64,
				     "prezero:batch=4,pool=64", &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	poke(uffd_region_addr(r), 1);	/* the scrubber is up and placed */
	sleep_us(20000);
	n = other_threads(tids, 8);
	ck_assert_int_eq(n, 2);		/* handler and scrubber */
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(thread_cpus(tids[i], cpus, sizeof(cpus)), 0);
		if (!strcmp(cpus, "0"))
			continue;	/* the handler, pinned with us */
		ck_assert_str_eq(cpus, want);
		seen++;
	}
	ck_assert_int_eq(seen, strcmp(want, "0") ? 1 : 0);
	uffd_ctx_destroy(c);
	sched_setaffinity(0, sizeof(old), &old);
}

START_TEST(helpers_placed)
{
	char all[32];

	snprintf(all, sizeof(all), "0-%ld", sysconf(_SC_NPROCESSORS_CONF) - 1);
	helper_cpus_with(0, 0, all);	/* default: every CPU */
	helper_cpus_with(LIBUFFD_CTX_PIN_HELPERS, 1, "1");
}
END_TEST

START_TEST(pin_same_follows_starter)
{
	struct uffd_ctx *c = make_ctx(0, 0, LIBUFFD_CPU_SAME, 0);
	cpu_set_t one, old;
	char aff[64];
	pid_t tid;

	note_runtime_threads();
	ck_assert_int_eq(sched_getaffinity(0, sizeof(old), &old), 0);
	CPU_ZERO(&one);
	CPU_SET(1, &one);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	sched_setaffinity(0, sizeof(old), &old);
	/* The handler, the only other thread, runs where its starter did. */
	ck_assert_int_eq(other_threads(&tid, 1), 1);
	ck_assert_int_eq(thread_cpus(tid, aff, sizeof(aff)), 0);
	ck_assert_str_eq(aff, "1");
	uffd_ctx_destroy(c);
}
END_TEST

/* SigBlk of thread @tid of this process, or -1. */
static long long sigblk(const char *tid)
{
	char path[64], line[256];
	long long mask = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
	fp = fopen(path, "r");
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "SigBlk: %llx", &mask) == 1)
			break;
	fclose(fp);
	return mask;
}

/*
 * Handler threads block every signal, whatever the starter's mask: a
 * process-directed SIGTERM must reach an application thread.
 */
START_TEST(handlers_block_signals)
{
	struct uffd_ctx *hc = make_ctx(LIBUFFD_DELIVER_THREAD, 3,
				       LIBUFFD_CPU_ANY, 0);
	long long want = (1ll << (SIGTERM - 1)) | (1ll << (SIGINT - 1)) |
			 (1ll << (SIGUSR1 - 1));
	char self[32];
	struct dirent *d;
	int others = 0;
	DIR *dir;

	note_runtime_threads();
	ck_assert_int_eq(uffd_ctx_start(hc), 0);
	snprintf(self, sizeof(self), "%d", (int)gettid());
	dir = opendir("/proc/self/task");
	ck_assert_ptr_nonnull(dir);
	while ((d = readdir(dir))) {
		long long m;

		if (d->d_name[0] == '.' || !strcmp(d->d_name, self) ||
		    runtime_thread((pid_t)atoi(d->d_name)))
			continue;
		m = sigblk(d->d_name);
		ck_assert_msg(m != -1 && (m & want) == want,
			      "thread %s blocks %llx", d->d_name, m);
		others++;
	}
	closedir(dir);
	ck_assert_int_eq(others, 3);
	ck_assert_int_eq(sigblk(self) & want, 0);
	uffd_ctx_destroy(hc);
}
END_TEST

/* Spinning on the other CPU is accounted, and serves correctly. */
START_TEST(spin_reported)
{
	struct uffd_ctx *c = make_ctx(0, 0, 1, 200);
	struct uffd_region *r;
	struct uffd_stats st;
	size_t ps = page_size(), i;
	uint8_t *p;

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 64, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	p = uffd_region_addr(r);
	for (i = 0; i < 64; i++)
		poke(p + i * ps, (uint8_t)i);
	for (i = 0; i < 64; i++)
		ck_assert_uint_eq(peek(p + i * ps), (uint8_t)i);
	/*
	 * A spin is counted when it ends: under load every round may have
	 * found a fault waiting, and the first spin then ends spin_us after
	 * the last one.
	 */
	ck_assert_int_gt(wait_ctx_stat(c, STAT_OFF(spin_ns), 1, TEST_WAIT_MS),
			 0);
	ck_assert_int_eq(uffd_ctx_stats(c, &st, sizeof(st)), 0);
	ck_assert_uint_le(st.spin_hits, st.faults_write);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.spin_ns, 0);	/* context-only counter */
	ck_assert_int_eq(uffd_ctx_stop(c), 0);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(handlers_four_disjoint)
{
	struct uffd_ctx *c = make_ctx(0, 4, -1, 0);
	int before = count_threads();

	run_walkers(c, 0);
	/* a joined thread may linger in /proc/self/task a moment */
	ck_assert_int_eq(wait_threads(before + 4, TEST_WAIT_MS), before + 4);
	ck_assert_int_eq(uffd_ctx_stop(c), 0);
	ck_assert_int_eq(wait_threads(before, TEST_WAIT_MS), before);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(handlers_four_shared)
{
	struct uffd_ctx *c = make_ctx(0, 4, -1, 0);

	run_walkers(c, 1);
	uffd_ctx_destroy(c);
}
END_TEST

/* A non-CONCURRENT pager under several handlers runs one hook at a time. */
static atomic_int in_hook, max_in_hook;
static atomic_int hold_hooks;

static int slow_fault(void *state, struct uffd_resolver *res,
		      const struct uffd_fault *f)
{
	int n = atomic_fetch_add(&in_hook, 1) + 1;
	long ret;

	if (n > atomic_load(&max_in_hook))
		atomic_store(&max_in_hook, n);
	while (atomic_load(&hold_hooks))
		sleep_us(100);
	sleep_us(200);
	ret = uffd_resolve_zerofill(res, f->offset, page_size());
	atomic_fetch_sub(&in_hook, 1);
	return ret < 0 ? (int)ret : 0;
}

static const struct uffd_pager_ops slow_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "slow",
	.init = init_region_state,
	.fault = slow_fault,
};

struct pending_toucher {
	pthread_t	t;
	uint8_t		*p;
};

static void *touch_pending(void *arg)
{
	struct pending_toucher *t = arg;

	poke(t->p, 7);
	return NULL;
}

/* Several handlers: serialised hooks, and stop with faults pending. */
START_TEST(handlers_serialise_and_stop)
{
	struct uffd_ctx *c = make_ctx(0, 3, -1, 0);
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ANON,
		.len = NTHREADS * page_size(), .ops = &slow_ops,
	};
	struct pending_toucher t[NTHREADS];
	struct uffd_region *r;
	size_t ps = page_size();
	int i;

	ck_assert_int_eq(uffd_region_create(c, &o, &r), 0);
	atomic_store(&hold_hooks, 1);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	for (i = 0; i < NTHREADS; i++) {
		t[i].p = (uint8_t *)uffd_region_addr(r) + (size_t)i * ps;
		ck_assert_int_eq(pthread_create(&t[i].t, NULL, touch_pending,
						&t[i]), 0);
	}
	/* one hook holds; the other faults wait queued or for the lock */
	while (atomic_load(&in_hook) < 1)
		sleep_us(100);
	sleep_us(20000);
	ck_assert_int_eq(atomic_load(&max_in_hook), 1);
	atomic_store(&hold_hooks, 0);
	ck_assert_int_eq(uffd_ctx_stop(c), 0);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(join_timeout(t[i].t, NULL, TEST_WAIT_MS), 0);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_uint_eq(peek(t[i].p), 7);
	ck_assert_int_eq(atomic_load(&max_in_hook), 1);
	uffd_ctx_destroy(c);
}
END_TEST

/* One handler thread serves two contexts' userfaultfds. */
START_TEST(one_handler_two_contexts)
{
	struct uffd_ctx *a = make_ctx(0, 0, -1, 0), *b = NULL;
	struct uffd_ctx_opts o = { .size = sizeof(o), .handler_cpu = -1 };
	struct uffd_region *ra, *rb;
	struct uffd_stats st;
	size_t ps = page_size();
	uint8_t *pa, *pb;
	int before;

	o.served_by = a;
	ck_assert_int_eq(uffd_ctx_create(&b, &o), 0);
	ck_assert_int_eq(make_region(a, LIBUFFD_MEM_ANON, 16, NULL, &ra), 0);
	ck_assert_int_eq(make_region(b, LIBUFFD_MEM_ANON, 16,
				     "prealloc:batch=4", &rb), 0);
	before = count_threads();
	ck_assert_int_eq(uffd_ctx_start(a), 0);
	ck_assert_int_eq(uffd_ctx_start(b), 0);
	ck_assert_int_eq(count_threads(), before + 1);	/* a's only */
	pa = uffd_region_addr(ra);
	pb = uffd_region_addr(rb);
	poke(pa, 1);
	poke(pb + 5 * ps, 2);
	ck_assert_uint_eq(peek(pa), 1);
	ck_assert_uint_eq(peek(pb + 5 * ps), 2);
	ck_assert_int_eq(present_pages(pb + 4 * ps, 4 * ps), 4);
	ck_assert_int_eq(uffd_ctx_stats(b, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.handler_cpu_ns, 0);	/* a's thread did it */

	/* b detaches and comes back; a goes on serving meanwhile */
	ck_assert_int_eq(uffd_ctx_stop(b), 0);
	poke(pa + ps, 3);
	ck_assert_uint_eq(peek(pa + ps), 3);
	ck_assert_int_eq(uffd_ctx_start(b), 0);
	poke(pb + 9 * ps, 4);
	ck_assert_uint_eq(peek(pb + 9 * ps), 4);
	uffd_ctx_destroy(b);
	uffd_ctx_destroy(a);
}
END_TEST

START_TEST(served_by_bad)
{
	struct uffd_ctx *a = make_ctx(0, 0, -1, 0), *b = NULL;
	struct uffd_ctx_opts o = { .size = sizeof(o), .handler_cpu = -1,
				   .served_by = a, .handlers = 2 };

	ck_assert_int_eq(uffd_ctx_create(&b, &o), -EINVAL);
	ck_assert_ptr_null(b);
	uffd_ctx_destroy(a);
}
END_TEST

static Suite *delivery_suite(void)
{
	Suite *s = suite_create("delivery");
	TCase *tc = add_tcase(s, "sigbus", NULL, NULL);

	tcase_add_test(tc, sigbus_eight_threads_disjoint);
	tcase_add_test(tc, sigbus_eight_threads_shared);
	tcase_add_test(tc, sigbus_pagers);
	tcase_add_test(tc, sigbus_refuses_plain_pager);
	tcase_add_test(tc, sigbus_foreign_chained);
	tcase_add_test(tc, sigbus_start_stop_start);

	tc = add_tcase(s, "placement", NULL, NULL);
	tcase_add_test(tc, pin_bad_cpus);
	/* these place threads on CPU 1 */
	if (sysconf(_SC_NPROCESSORS_CONF) < 2) {
		skip_case("helpers_placed", "needs 2 CPUs");
		skip_case("pin_same_follows_starter", "needs 2 CPUs");
		skip_case("spin_reported", "needs 2 CPUs");
	} else {
		/* prezero's scrubber, the only pager helper, needs MOVE */
		add_test_if(tc, helpers_placed, LIBUFFD_FEATURE_MOVE, 0);
		tcase_add_test(tc, pin_same_follows_starter);
		tcase_add_test(tc, spin_reported);
	}

	tc = add_tcase(s, "handlers", NULL, NULL);
	tcase_add_test(tc, handlers_block_signals);
	tcase_add_test(tc, handlers_four_disjoint);
	tcase_add_test(tc, handlers_four_shared);
	tcase_add_test(tc, handlers_serialise_and_stop);
	tcase_add_test(tc, one_handler_two_contexts);
	tcase_add_test(tc, served_by_bad);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_SIGBUS | LIBUFFD_FEATURE_EVENT_UNMAP, 0);
	return run_suite(delivery_suite());
}
