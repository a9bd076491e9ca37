/* SPDX-License-Identifier: MIT */
/*
 * Stopping a context with faults queued: uffd_ctx_stop() must serve every
 * fault already waiting on the userfaultfd, whether the handler never ran
 * or was busy in a pager hook when stop was called, so that no faulting
 * thread is left blocked.  Plus start/stop state transitions.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"

#define NTOUCH	8

/* One thread, one page: even threads read, odd ones write. */
struct toucher {
	pthread_t	thread;
	uint8_t		*page;
	int		write;
	uint8_t		seen;
	atomic_int	done;
};

static void *touch_fn(void *arg)
{
	struct toucher *t = arg;

	if (t->write) {
		poke(t->page + 5, 0xa0);
		t->seen = peek(t->page + 5);
	} else {
		t->seen = (uint8_t)(peek(t->page + 5) + 1);
	}
	atomic_store(&t->done, 1);
	return NULL;
}

static void start_touchers(struct toucher *t, int n, uint8_t *base, int first)
{
	int i;

	for (i = 0; i < n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].page = base + (size_t)(first + i) * page_size();
		t[i].write = (first + i) & 1;
		ck_assert_int_eq(pthread_create(&t[i].thread, NULL, touch_fn,
						&t[i]), 0);
	}
}

static void join_touchers(struct toucher *t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		ck_assert_msg(!join_timeout(t[i].thread, NULL, TEST_WAIT_MS),
			      "faulting thread %d still blocked", i);
		/* A reader saw 0 (+1), a writer read back its byte. */
		ck_assert_uint_eq(t[i].seen, t[i].write ? 0xa0 : 1);
	}
}

/* No toucher may finish while the fault has nobody to serve it. */
static void assert_all_blocked(struct toucher *t, int n)
{
	int i;

	for (i = 0; i < n; i++)
		ck_assert_int_eq(atomic_load(&t[i].done), 0);
}

/* NTOUCH touchers of the pages at @base, queued with no handler running. */
static void queue_touchers(struct toucher *t, uint8_t *base)
{
	start_touchers(t, NTOUCH, base, 0);
	ck_assert_int_eq(wait_pending(uffd_ctx_fd(ctx), NTOUCH, TEST_WAIT_MS),
			 NTOUCH);
	assert_all_blocked(t, NTOUCH);
}

START_TEST(stop_drains_unstarted)
{
	struct toucher t[NTOUCH];
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON, NULL, NTOUCH,
					   NULL);
	struct uffd_stats st;
	int fd = uffd_ctx_fd(ctx);

	queue_touchers(t, uffd_region_addr(r));

	/* Never started: -EALREADY, but the queue is served all the same. */
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);
	ck_assert_int_eq(uffd_fdinfo_pending(fd), 0);
	join_touchers(t, NTOUCH);

	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read, NTOUCH / 2);
	ck_assert_uint_eq(st.faults_write, NTOUCH / 2);
	ck_assert_uint_eq(st.pages_zero, NTOUCH / 2);
	ck_assert_uint_eq(st.pages_copy, NTOUCH / 2);
	ck_assert_int_eq(pfnzero_pages(uffd_region_addr(r), NTOUCH *
				       page_size()), NTOUCH / 2);
}
END_TEST

START_TEST(stop_drains_stopped)
{
	struct toucher t[NTOUCH];
	struct uffd_region *r = new_region(LIBUFFD_MEM_ANON, NULL, NTOUCH,
					   NULL);
	int fd = uffd_ctx_fd(ctx);

	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	/* Raised after stop: these wait, and the next stop drains them. */
	queue_touchers(t, uffd_region_addr(r));
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);
	ck_assert_int_eq(uffd_fdinfo_pending(fd), 0);
	join_touchers(t, NTOUCH);
}
END_TEST

/* ---- a pager that holds its first fault until released ------------- */

static atomic_int hold;		/* 1: fault hooks wait */
static atomic_int in_hook;	/* hooks entered */
static atomic_int hooks_done;

static int hold_fault(void *state, struct uffd_resolver *res,
		      const struct uffd_fault *f)
{
	int i, ret;

	atomic_fetch_add(&in_hook, 1);
	/* Bounded, so a broken test cannot hang the handler forever. */
	for (i = 0; atomic_load(&hold) && i < 200000; i++)
		sleep_us(100);
	ret = fault_like_zero(state, res, f);
	atomic_fetch_add(&hooks_done, 1);
	return ret;
}

static const struct uffd_pager_ops hold_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "hold",
	.init = init_region_state,
	.fault = hold_fault,
};

static struct uffd_region *make_hold_region(int npages)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = (size_t)npages * page_size(),
		.ops = &hold_ops,
	};
	struct uffd_region *r = NULL;

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	return r;
}

static pid_t stopper_tid;
static atomic_int stop_called;

/*
 * Let the held fault go only once the test thread is inside
 * uffd_ctx_stop() and asleep there, waiting for the handler: stop then
 * finds faults queued behind a busy handler.
 */
static void *releaser_fn(void *arg)
{
	uint64_t deadline = now_ns() + 2000000000ULL;

	(void)arg;
	while (!atomic_load(&stop_called))
		sleep_us(100);
	while (thread_state(stopper_tid) != 'S' && now_ns() < deadline)
		sleep_us(100);
	sleep_us(2000);
	atomic_store(&hold, 0);
	return NULL;
}

START_TEST(stop_with_busy_handler)
{
	struct toucher t[NTOUCH];
	struct uffd_region *r;
	struct uffd_stats st;
	pthread_t releaser;
	int fd = uffd_ctx_fd(ctx);

	atomic_store(&hold, 1);
	r = make_hold_region(NTOUCH);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);

	/* The first fault occupies the handler in the hook... */
	start_touchers(t, 1, uffd_region_addr(r), 0);
	while (atomic_load(&in_hook) < 1)
		sleep_us(100);
	/* ...and the others queue up behind it in the kernel. */
	start_touchers(t + 1, NTOUCH - 1, uffd_region_addr(r), 1);
	ck_assert_int_eq(wait_pending(fd, NTOUCH - 1, TEST_WAIT_MS),
			 NTOUCH - 1);
	assert_all_blocked(t, NTOUCH);

	stopper_tid = gettid();
	ck_assert_int_eq(pthread_create(&releaser, NULL, releaser_fn, NULL),
			 0);
	atomic_store(&stop_called, 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(join_timeout(releaser, NULL, TEST_WAIT_MS), 0);

	/* Every fault queued before stop was served by the time it returned. */
	ck_assert_int_eq(uffd_fdinfo_pending(fd), 0);
	ck_assert_int_eq(atomic_load(&hooks_done), NTOUCH);
	join_touchers(t, NTOUCH);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read + st.faults_write, NTOUCH);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, NTOUCH);
}
END_TEST

START_TEST(start_stop_start)
{
	struct toucher t[2];
	struct uffd_region *r = NULL;
	uint8_t *p;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	p = uffd_region_addr(r);
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), -EALREADY);
	poke(p, 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);

	/* A fault raised while stopped waits for the next start. */
	start_touchers(t, 1, p, 2);
	ck_assert_int_eq(wait_pending(uffd_ctx_fd(ctx), 1, TEST_WAIT_MS), 1);
	assert_all_blocked(t, 1);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	join_touchers(t, 1);

	/* And the restarted handler serves new faults. */
	poke(p + 4 * page_size(), 4);
	ck_assert_uint_eq(peek(p + 4 * page_size()), 4);
	ck_assert_uint_eq(peek(p), 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	ck_assert_uint_eq(peek(p + 5 * page_size()), 0);
}
END_TEST

START_TEST(handler_cpu_time)
{
	struct uffd_region *r = NULL;
	int i;

	ck_assert_uint_eq(uffd_ctx_handler_cpu_ns(ctx), 0);
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 64, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	for (i = 0; i < 64; i++)
		poke((uint8_t *)uffd_region_addr(r) + i * page_size(), 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	/* The handler ran: it used some CPU, and the count survives stop. */
	ck_assert_uint_gt(uffd_ctx_handler_cpu_ns(ctx), 0);
}
END_TEST

/*
 * Destroy while a fault raised after stop waits: closing the descriptor
 * (and unregistering) lets it proceed as an ordinary fault.  An adopted
 * mapping, so that the memory outlives the context.
 */
START_TEST(destroy_wakes_waiters)
{
	struct toucher t[NTOUCH];
	uint8_t *map = map_anon(NTOUCH);

	new_region(LIBUFFD_MEM_ADOPT, "zero", NTOUCH, map);
	queue_touchers(t, map);
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	join_touchers(t, NTOUCH);
	munmap(map, NTOUCH * page_size());
}
END_TEST

START_TEST(unregister_wakes_waiters)
{
	struct toucher t[NTOUCH];
	uint8_t *map = map_anon(NTOUCH);
	struct uffd_region *r = new_region(LIBUFFD_MEM_ADOPT, "zero", NTOUCH,
					   map);
	struct uffd_stats st;

	queue_touchers(t, map);
	ck_assert_int_eq(uffd_region_unregister(r), 0);
	join_touchers(t, NTOUCH);
	/* The kernel served them; the region's pager never saw a fault. */
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, 0);
	uffd_region_destroy(r);
	munmap(map, NTOUCH * page_size());
}
END_TEST

/* ---- pager start/stop/fini follow the handler ---------------------- */

#define LOG_LEN	32

struct hook_log {
	char	ev[LOG_LEN];
	int	n;
};

static struct hook_log logs[2];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_hook(void *state, char c)
{
	struct hook_log *l = state;

	pthread_mutex_lock(&log_lock);
	if (l->n < LOG_LEN - 1)
		l->ev[l->n++] = c;
	pthread_mutex_unlock(&log_lock);
}

static int hooks_init(struct uffd_region *region,
		      const struct uffd_args *args, void **state)
{
	uint64_t which = 0;
	int ret = uffd_args_u64(args, "log", &which, 0, 1);

	(void)region;
	if (ret)
		return ret;
	*state = &logs[which];
	log_hook(*state, 'i');
	return 0;
}

static int hooks_fault(void *state, struct uffd_resolver *res,
		       const struct uffd_fault *f)
{
	long ret = uffd_resolve_zeropage(res, f->offset, page_size());

	log_hook(state, 'f');
	return ret < 0 ? (int)ret : 0;
}

static int hooks_start(void *state)
{
	log_hook(state, 's');
	return 0;
}

static void hooks_stop(void *state)
{
	log_hook(state, 'p');
}

static void hooks_fini(void *state)
{
	log_hook(state, 'x');
}

static const struct uffd_pager_ops hooks_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "hooks",
	.init = hooks_init,
	.fault = hooks_fault,
	.start = hooks_start,
	.stop = hooks_stop,
	.fini = hooks_fini,
};

static struct uffd_region *make_hooks_region(const char *args)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = 2 * page_size(),
		.ops = &hooks_ops,
		.args = args,
	};
	struct uffd_region *r = NULL;

	ck_assert_int_eq(uffd_region_create(ctx, &o, &r), 0);
	return r;
}

static void assert_log(int i, const char *want)
{
	pthread_mutex_lock(&log_lock);
	logs[i].ev[logs[i].n] = '\0';
	pthread_mutex_unlock(&log_lock);
	ck_assert_str_eq(logs[i].ev, want);
}

START_TEST(pager_hooks_follow_handler)
{
	struct uffd_region *a, *b;

	a = make_hooks_region("log=0");
	assert_log(0, "i");
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	assert_log(0, "is");
	/* Created while running: started at once. */
	b = make_hooks_region("log=1");
	assert_log(1, "is");
	ck_assert_uint_eq(peek(uffd_region_addr(b)), 0);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	assert_log(0, "isp");
	assert_log(1, "isfp");
	/* A second stop calls no hook. */
	ck_assert_int_eq(uffd_ctx_stop(ctx), -EALREADY);
	assert_log(0, "isp");
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	assert_log(0, "isps");
	/* Destroyed while running: stopped, then finished. */
	uffd_region_destroy(a);
	assert_log(0, "ispspx");
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	assert_log(1, "isfpspx");
}
END_TEST

START_TEST(pager_hooks_never_started)
{
	struct uffd_region *a;

	a = make_hooks_region("log=0");
	ck_assert_uint_eq(uffd_region_len(a), 2 * page_size());
	/* The handler never ran: no start, so no stop either. */
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	assert_log(0, "ix");
}
END_TEST

START_TEST(handler_pinned)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.flags = LIBUFFD_CTX_PIN_HANDLER,
		.handler_cpu = 1,
	};
	struct uffd_ctx *c = NULL;
	char cpus[64];
	pid_t h;

	ck_assert_int_ge(sysconf(_SC_NPROCESSORS_ONLN), 2);
	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	/* Ours is the only other thread: the handler. */
	ck_assert_int_ge(other_threads(&h, 1), 1);
	ck_assert_int_eq(thread_cpus(h, cpus, sizeof(cpus)), 0);
	ck_assert_str_eq(cpus, "1");
	uffd_ctx_destroy(c);

	/* A CPU this machine does not have. */
	c = NULL;
	o.handler_cpu = CPU_SETSIZE + 1;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	o.handler_cpu = -3;	/* -1 and -2 are LIBUFFD_CPU_ANY and _SAME */
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	/* a zeroed struct pins nothing: CPU 0 needs the flag */
	o.flags = 0;
	o.handler_cpu = 0;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	ck_assert_int_ge(other_threads(&h, 1), 1);
	ck_assert_int_eq(thread_cpus(h, cpus, sizeof(cpus)), 0);
	ck_assert_str_ne(cpus, "0");
	uffd_ctx_destroy(c);
	c = NULL;
	o.flags = LIBUFFD_CTX_PIN_HANDLER;
	o.handler_cpu = -3;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	ck_assert_ptr_null(c);
}
END_TEST

static Suite *stop_suite(void)
{
	Suite *s = suite_create("stop");
	/* Not started: each test decides. */
	TCase *tc = add_tcase(s, "drain", ctx_setup_stopped, ctx_teardown);

	tcase_add_test(tc, stop_drains_unstarted);
	tcase_add_test(tc, stop_drains_stopped);
	tcase_add_test(tc, stop_with_busy_handler);

	tc = add_tcase(s, "state", ctx_setup_stopped, ctx_teardown);
	tcase_add_test(tc, start_stop_start);
	tcase_add_test(tc, handler_cpu_time);
	tcase_add_test(tc, destroy_wakes_waiters);
	tcase_add_test(tc, unregister_wakes_waiters);
	tcase_add_test(tc, pager_hooks_follow_handler);
	tcase_add_test(tc, pager_hooks_never_started);
	tcase_add_test(tc, handler_pinned);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	require_zero_count();
	return run_suite(stop_suite());
}
