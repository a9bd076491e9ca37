/* SPDX-License-Identifier: MIT */
/*
 * When a pager fails, the thread touching the page gets SIGBUS: in thread
 * and SIGBUS delivery, with UFFDIO_POISON and without it (features_off on
 * a new kernel, or a kernel older than 6.6), whatever the kernel does
 * with a poisoned page (BUS_MCEERR_AR with CONFIG_MEMORY_FAILURE,
 * BUS_ADRERR without).  Never a hang, never a spin, never wrong data: the
 * failing pager runs once per page however often the page is touched,
 * until MADV_DONTNEED takes the failure away.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <check.h>

#include "helpers.h"

#ifndef BUS_MCEERR_AR
#define BUS_MCEERR_AR	4
#endif

#define NPAGES		8
#define BAD		3	/* the page the pager fails on */
#define TOUCHES		20

/* The four ways a failure can be delivered, run by every loop test. */
struct mode {
	const char	*name;
	int		delivery;
	int		poison;		/* use UFFDIO_POISON */
};

static const struct mode modes[] = {
	{ "thread+poison", LIBUFFD_DELIVER_THREAD, 1 },
	{ "thread", LIBUFFD_DELIVER_THREAD, 0 },
	{ "sigbus+poison", LIBUFFD_DELIVER_SIGBUS, 1 },
	{ "sigbus", LIBUFFD_DELIVER_SIGBUS, 0 },
};

static size_t ps(void)
{
	return page_size();
}

/* ---- the failing pager ------------------------------------------- */

static atomic_int bad_calls, good_calls;
static atomic_int fail_on = BAD;	/* -1: fail nowhere */
static atomic_int lie;			/* return 0 without filling */

static int failing_fault(void *state, struct uffd_resolver *res,
			 const struct uffd_fault *f)
{
	if ((int)(f->offset / ps()) == atomic_load(&fail_on)) {
		atomic_fetch_add(&bad_calls, 1);
		return atomic_load(&lie) ? 0 : -EIO;
	}
	atomic_fetch_add(&good_calls, 1);
	return fault_like_zero(state, res, f);
}

static const struct uffd_pager_ops failing_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "failing",
	.init = init_region_state,
	.fault = failing_fault,
	/* runs in SIGBUS handlers too: only atomics and the resolver */
	.flags = LIBUFFD_PAGER_CONCURRENT,
};

static struct uffd_region *region;
static uint8_t *base;

/* In a test: a started context in mode @m and a region of the pager. */
static void setup_mode(const struct mode *m)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.delivery = m->delivery,
		.features_off = m->poison ? 0 : LIBUFFD_FEATURE_POISON,
	};
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = NPAGES * ps(),
		.ops = &failing_ops,
	};

	atomic_store(&bad_calls, 0);
	atomic_store(&good_calls, 0);
	atomic_store(&fail_on, BAD);
	atomic_store(&lie, 0);
	ck_assert_int_eq(uffd_ctx_create(&ctx, &co), 0);
	/* the kernel's view: POISON is on exactly when asked for */
	ck_assert_int_eq(!!(uffd_ctx_features(ctx) & LIBUFFD_FEATURE_POISON),
			 m->poison);
	ck_assert_int_eq(uffd_region_create(ctx, &o, &region), 0);
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
	base = uffd_region_addr(region);
}

/* ---- catching SIGBUS with its siginfo ------------------------------ */

struct caught {
	int	fired;
	int	code;
	void	*addr;
};

/* Read @p; 1 and *c filled when it raised SIGBUS, else 0. */
static int touch(const uint8_t *p, struct caught *c)
{
	memset(c, 0, sizeof(*c));
	c->fired = touch_catch_sigbus((void *)p, 0, NULL, &c->addr);
	if (c->fired)
		c->code = last_sigbus_code();
	return c->fired;
}

/* In a test: @c is the SIGBUS the failure of page @page gives in @m. */
static void assert_failure_signal(const struct mode *m, const struct caught *c,
				  const uint8_t *touched)
{
	uintptr_t page = (uintptr_t)touched & ~(uintptr_t)(ps() - 1);

	ck_assert_int_eq(c->fired, 1);
	/* the byte touched, or its page where EXACT_ADDRESS (5.18) is not */
	if (uffd_ctx_features(ctx) & LIBUFFD_FEATURE_EXACT_ADDRESS)
		ck_assert_ptr_eq(c->addr, touched);
	else
		ck_assert_uint_eq((uintptr_t)c->addr &
				  ~(uintptr_t)(ps() - 1), page);
	if (m->delivery == LIBUFFD_DELIVER_THREAD && !m->poison)
		ck_assert_int_eq(c->code, SI_QUEUE);	/* the library's */
	else
		ck_assert_msg(c->code == BUS_ADRERR || c->code == BUS_MCEERR_AR,
			      "si_code %d", c->code);
}

/* What mode @m needs of the kernel. */
static uint64_t mode_features(const struct mode *m)
{
	return (m->poison ? LIBUFFD_FEATURE_POISON : 0) |
	       (m->delivery == LIBUFFD_DELIVER_SIGBUS ?
		LIBUFFD_FEATURE_SIGBUS : 0);
}

/* ---- the cases ----------------------------------------------------- */

START_TEST(fails_once_per_page)
{
	const struct mode *m = &modes[_i];
	uint8_t *bad = base + BAD * ps() + 100;
	struct uffd_stats st;
	struct caught c;
	int i;

	/* the first touch: the pager fails, the toucher gets SIGBUS */
	ck_assert_int_eq(touch(bad, &c), 1);
	assert_failure_signal(m, &c, bad);
	ck_assert_int_eq(atomic_load(&bad_calls), 1);

	/* the other pages are served as ever, before and after */
	for (i = 0; i < NPAGES; i++)
		if (i != BAD)
			ck_assert_uint_eq(peek(base + i * ps()), 0);
	poke(base + (BAD + 1) * ps(), 0x5a);
	ck_assert_uint_eq(peek(base + (BAD + 1) * ps()), 0x5a);

	/* every later touch: SIGBUS again, and the pager is left alone */
	for (i = 0; i < TOUCHES; i++) {
		ck_assert_int_eq(touch(bad, &c), 1);
		assert_failure_signal(m, &c, bad);
	}
	ck_assert_int_eq(atomic_load(&bad_calls), 1);
	ck_assert_int_eq(present_pages(base + BAD * ps(), ps()), 0);

	ck_assert_int_eq(settled_region_stats(region, &st, TEST_WAIT_MS), 0);
	ck_assert_uint_eq(st.pager_errors, 1);
	ck_assert_uint_eq(st.poisoned, m->poison ? 1 : 0);
	if (m->delivery == LIBUFFD_DELIVER_THREAD && !m->poison) {
		/* each touch was a fault we answered with a signal */
		ck_assert_uint_eq(st.sigbus_queued, 1 + TOUCHES);
		ck_assert_uint_eq(st.failed_refaults, TOUCHES);
	} else if (m->delivery == LIBUFFD_DELIVER_THREAD) {
		/* the kernel answers a poisoned page itself */
		ck_assert_uint_eq(st.sigbus_queued, 0);
		ck_assert_uint_eq(st.failed_refaults, 0);
	} else {
		/*
		 * SIGBUS mode: without POISON every touch is a missing page
		 * again; with it, only where the kernel reports poison as
		 * BUS_ADRERR (no CONFIG_MEMORY_FAILURE).
		 */
		ck_assert_uint_eq(st.sigbus_queued, 0);
		if (!m->poison)
			ck_assert_uint_eq(st.failed_refaults, TOUCHES);
		else
			ck_assert_uint_le(st.failed_refaults, TOUCHES);
	}

	/* MADV_DONTNEED takes the failure away: the pager is asked again */
	atomic_store(&fail_on, -1);
	ck_assert_int_eq(madvise(base + BAD * ps(), ps(), MADV_DONTNEED), 0);
	ck_assert_int_eq(touch(bad, &c), 0);
	ck_assert_uint_eq(peek(bad), 0);
	ck_assert_int_eq(present_pages(base + BAD * ps(), ps()), 1);
}
END_TEST

START_TEST(lying_pager)
{
	const struct mode *m = &modes[_i];
	uint8_t *bad = base + BAD * ps();
	struct uffd_stats st;
	struct caught c;
	int i;

	/* returns 0 without filling: a failure all the same */
	atomic_store(&lie, 1);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(touch(bad, &c), 1);
		assert_failure_signal(m, &c, bad);
	}
	ck_assert_int_eq(atomic_load(&bad_calls), 1);
	ck_assert_int_eq(uffd_region_stats(region, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.pager_errors, 1);
	ck_assert_int_eq(present_pages(bad, ps()), 0);
}
END_TEST

struct toucher {
	const uint8_t	*addr;
	struct caught	c;
	int		fired;
	int		block;		/* block SIGBUS first */
	pid_t		tid;
	atomic_int	done;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	t->tid = gettid();
	if (t->block) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGBUS);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}
	t->fired = touch(t->addr, &t->c);
	atomic_store(&t->done, 1);
	return NULL;
}

START_TEST(other_thread)
{
	const struct mode *m = &modes[_i];
	struct toucher t = { .addr = base + BAD * ps() + 7 };
	struct caught c;
	pthread_t th;

	/* the signal goes to the thread that touched, not to us */
	ck_assert_int_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	ck_assert_int_eq(join_timeout(th, NULL, TEST_WAIT_MS), 0);
	ck_assert_int_eq(t.fired, 1);
	assert_failure_signal(m, &t.c, t.addr);
	ck_assert_int_eq(touch(base, &c), 0);
	ck_assert_int_eq(c.fired, 0);
	ck_assert_int_eq(atomic_load(&bad_calls), 1);
}
END_TEST

/*
 * The kernel's own default: a failure kills a process that does not
 * handle SIGBUS, also one that ignores it (a fault's SIGBUS cannot be
 * ignored).  In a child, bounded, so a hang fails rather than stalls.
 */
static void child_touches(const struct mode *m, int ignore)
{
	pid_t pid = fork();
	int status, waited = 0;

	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		alarm(TEST_TIMEOUT_S / 2);	/* a hang dies of SIGALRM */
		signal(SIGBUS, ignore ? SIG_IGN : SIG_DFL);
		setup_mode(m);
		(void)peek(base + BAD * ps());
		_exit(0);			/* no signal: wrong */
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		ck_assert_msg(waited < TEST_WAIT_MS, "child still running");
		sleep_us(1000);
		waited++;
	}
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		      "child: %s %d", WIFSIGNALED(status) ? "signal" : "exit",
		      WIFSIGNALED(status) ? WTERMSIG(status) :
		      WEXITSTATUS(status));
}

START_TEST(default_action_kills)
{
	child_touches(&modes[_i], 0);
}
END_TEST

START_TEST(ignored_still_kills)
{
	child_touches(&modes[_i], 1);
}
END_TEST

/* ---- thread delivery only ----------------------------------------- */

static volatile sig_atomic_t flag_fired, flag_code;

static void flag_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	flag_fired++;
	flag_code = si->si_code;
}

START_TEST(kernel_access)
{
	const struct mode *m = &modes[_i];
	struct sigaction sa;
	char buf[64] = "from the pipe";
	int fds[2];
	ssize_t n;

	/* read(2) into the failed page: EFAULT, as for a poisoned page */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = flag_handler;
	sa.sa_flags = SA_SIGINFO;
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], buf, sizeof(buf)), sizeof(buf));
	n = read(fds[0], base + BAD * ps(), sizeof(buf));
	ck_assert_int_eq(n, -1);
	ck_assert_int_eq(errno, EFAULT);
	ck_assert_int_eq(atomic_load(&bad_calls), 1);
	/* without POISON the thread takes the library's signal as well */
	ck_assert_int_eq(flag_fired, m->poison ? 0 : 1);
	if (!m->poison)
		ck_assert_int_eq(flag_code, SI_QUEUE);
	/* and the page is as it was: a touch gets SIGBUS, not SIGSEGV */
	{
		struct uffd_stats st;
		struct caught c;

		ck_assert_int_eq(settled_region_stats(region, &st,
						      TEST_WAIT_MS), 0);
		ck_assert_uint_eq(st.kernel_unstuck, m->poison ? 0 : 1);
		sigbus_catcher_install();
		ck_assert_int_eq(touch(base + BAD * ps(), &c), 1);
		assert_failure_signal(m, &c, base + BAD * ps());
	}
	/* the data is still in the pipe: nothing was lost */
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), sizeof(buf));
	ck_assert_str_eq(buf, "from the pipe");
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(kernel_populate)
{
	const struct mode *m = &modes[_i];
	struct sigaction sa;
	int ret, err;

	/* MADV_POPULATE faults through get_user_pages: it must fail too */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = flag_handler;
	sa.sa_flags = SA_SIGINFO;
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
	ret = madvise(base + BAD * ps(), ps(), 22 /* MADV_POPULATE_READ */);
	err = errno;
	ck_assert_int_eq(ret, -1);
	/*
	 * EHWPOISON (133) from a poisoned page on new kernels; without
	 * POISON the library fails the access through PROT_NONE (EINVAL,
	 * or EFAULT), and the thread also takes the SIGBUS.
	 */
	ck_assert_msg(err == EFAULT || err == EINVAL || err == 133,
		      "errno %d", err);
	ck_assert_int_eq(flag_fired, m->poison ? 0 : 1);
	ck_assert_int_eq(atomic_load(&bad_calls), 1);
}
END_TEST

START_TEST(blocked_sigbus_waits)
{
	struct toucher t = { .addr = base + BAD * ps(), .block = 1 };
	struct uffd_stats st1, st2;
	pthread_t th;
	int i;

	/*
	 * Without POISON a thread that blocks SIGBUS cannot take the
	 * signal: it must wait in the fault, asleep, not fault again and
	 * again.  Unregistering lets it go on as an ordinary fault.
	 */
	ck_assert_int_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	/* woken once to take the signal, it faults again and waits */
	ck_assert_int_eq(wait_region_stat(region, STAT_OFF(failed_refaults),
					  1, TEST_WAIT_MS), 1);
	for (i = 0; i < TEST_WAIT_MS && thread_state(t.tid) != 'S'; i++)
		sleep_us(1000);
	ck_assert_int_eq(uffd_region_stats(region, &st1, sizeof(st1)), 0);
	sleep_us(100000);
	ck_assert_int_eq(uffd_region_stats(region, &st2, sizeof(st2)), 0);
	ck_assert_int_eq(atomic_load(&t.done), 0);
	ck_assert_int_eq(thread_state(t.tid), 'S');
	/* one refault only: the one that found the signal pending */
	ck_assert_uint_eq(st2.failed_refaults, 1);
	ck_assert_uint_eq(st2.sigbus_queued, 1);
	ck_assert_uint_eq(st2.faults_read, st1.faults_read);
	ck_assert_int_eq(atomic_load(&bad_calls), 1);
	ck_assert_int_eq(uffd_region_unregister(region), 0);
	ck_assert_int_eq(join_timeout(th, NULL, TEST_WAIT_MS), 0);
	ck_assert_int_eq(t.fired, 0);
	ck_assert_uint_eq(peek(t.addr), 0);
}
END_TEST

/* ---- fixtures -------------------------------------------------------- */

static void mode_teardown(void)
{
	uffd_ctx_destroy(ctx);
	ctx = NULL;
	region = NULL;
	base = NULL;
}

/*
 * Check's loop tests give the index only to the test body, so each mode
 * gets a test case of its own, with a fixture that knows the mode.
 */
#define MODE_SETUP(i)							\
	static void setup_##i(void)					\
	{								\
		sigbus_catcher_install();				\
		setup_mode(&modes[i]);					\
	}
MODE_SETUP(0)
MODE_SETUP(1)
MODE_SETUP(2)
MODE_SETUP(3)
static void (*const mode_setups[])(void) = {
	setup_0, setup_1, setup_2, setup_3,
};

static Suite *failure_suite(void)
{
	/* Check keeps the names it is given */
	static char kill_names[ARRAY_SIZE(modes)][32];
	Suite *s = suite_create("failure");
	unsigned int i;
	TCase *tc;

	for (i = 0; i < ARRAY_SIZE(modes); i++) {
		const struct mode *m = &modes[i];

		if (!case_runs(m->name, mode_features(m), 0))
			continue;
		tc = add_tcase(s, m->name, mode_setups[i], mode_teardown);
		tcase_add_loop_test(tc, fails_once_per_page, (int)i,
				    (int)i + 1);
		tcase_add_loop_test(tc, lying_pager, (int)i, (int)i + 1);
		tcase_add_loop_test(tc, other_thread, (int)i, (int)i + 1);
		if (m->delivery == LIBUFFD_DELIVER_THREAD)
			tcase_add_loop_test(tc, kernel_access, (int)i,
					    (int)i + 1);
		if (m->delivery == LIBUFFD_DELIVER_THREAD)
			tcase_add_loop_test(tc, kernel_populate, (int)i,
					    (int)i + 1);
		if (m->delivery == LIBUFFD_DELIVER_THREAD && !m->poison)
			tcase_add_test(tc, blocked_sigbus_waits);

		/* these make their own context, in a child */
		snprintf(kill_names[i], sizeof(kill_names[i]), "%s-kill",
			 m->name);
		tc = add_tcase(s, kill_names[i], NULL, NULL);
		tcase_add_loop_test(tc, default_action_kills, (int)i,
				    (int)i + 1);
		tcase_add_loop_test(tc, ignored_still_kills, (int)i,
				    (int)i + 1);
	}
	return s;
}

int main(void)
{
	/* the library names the faulting thread by THREAD_ID (4.14) */
	require_kernel(LIBUFFD_FEATURE_THREAD_ID, 0);
	return run_suite(failure_suite());
}
