/* SPDX-License-Identifier: MIT */
/*
 * Direct resume from the SIGBUS handler (x86-64): after serving a fault
 * the library restores the interrupted context itself instead of through
 * rt_sigreturn.  Everything rt_sigreturn would restore must come back:
 * every general register, the flags (DF included), the red zone, MXCSR,
 * the x87 control word, XMM/YMM/ZMM and mask registers, the alternate
 * signal stack settings; and a handler that chained to the library's, or
 * an SS_AUTODISARM alternate stack, must get a plain return.
 */
#include <check.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "helpers.h"

#if defined(__x86_64__)

struct probe_state {
	uint64_t	gpr[16];	/* rax..r15 as in the .S, rflags */
	uint64_t	redzone[16];
	uint32_t	mxcsr;
	uint16_t	fcw;
	uint8_t		pad[10];
	uint64_t	k[8];
	uint8_t		pad2[48];
	uint8_t		vec[32][64];
};
_Static_assert(offsetof(struct probe_state, redzone) == 128, "layout");
_Static_assert(offsetof(struct probe_state, mxcsr) == 256, "layout");
_Static_assert(offsetof(struct probe_state, fcw) == 260, "layout");
_Static_assert(offsetof(struct probe_state, k) == 272, "layout");
_Static_assert(offsetof(struct probe_state, vec) == 384, "layout");

void resume_probe(uint8_t *target, const struct probe_state *in,
		  struct probe_state *out, int level);
void probe_clobber(int level);

#ifndef SS_AUTODISARM
#define SS_AUTODISARM	(1u << 31)
#endif

#define R15		14
#define RFLAGS		15
/* CF PF AF ZF SF DF OF, and bit 1 which always reads 1 */
#define PROBE_FLAGS	0xcd7ull
#define MXCSR_RZ	0x7f80u		/* all masked, round toward zero */
#define FCW_RZ		0x0f7fu		/* x87: round toward zero */

static int vec_level(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return 2;
	if (__builtin_cpu_supports("avx"))
		return 1;
	return 0;
}

static void fill_in(struct probe_state *in, unsigned int seed)
{
	unsigned int i, j;

	memset(in, 0, sizeof(*in));
	for (i = 0; i < 15; i++)
		in->gpr[i] = 0x0101010101010101ull * (i + 1) ^ seed;
	in->gpr[RFLAGS] = PROBE_FLAGS;
	for (i = 0; i < 16; i++)
		in->redzone[i] = 0xa5a5a5a500000000ull | (i * 977u + seed);
	in->mxcsr = MXCSR_RZ;
	in->fcw = FCW_RZ;
	for (i = 1; i < 8; i++)
		in->k[i] = (uint16_t)(0x1111u * i ^ seed);
	for (i = 0; i < 32; i++)
		for (j = 0; j < 64; j++)
			in->vec[i][j] = (uint8_t)(i * 64 + j * 7 + 3 + seed);
}

/* Which part of the state came back wrong, or NULL. */
static const char *probe_diff(const struct probe_state *in,
			      const struct probe_state *out,
			      const uint8_t *target, int level)
{
	static char what[64];
	unsigned int i, nvec = level == 2 ? 32 : 16;
	size_t vlen = level == 2 ? 64 : level == 1 ? 32 : 16;

	for (i = 0; i < 14; i++)
		if (out->gpr[i] != in->gpr[i]) {
			snprintf(what, sizeof(what), "gpr %u", i);
			return what;
		}
	if (out->gpr[R15] != (uint64_t)(uintptr_t)target)
		return "r15";
	if ((out->gpr[RFLAGS] & 0xdd7) != (PROBE_FLAGS & 0xdd7))
		return "rflags";
	if (memcmp(out->redzone, in->redzone, sizeof(in->redzone)))
		return "red zone";
	if (out->mxcsr != in->mxcsr)
		return "mxcsr";
	if (out->fcw != in->fcw)
		return "x87 control word";
	for (i = 0; i < nvec; i++)
		if (memcmp(out->vec[i], in->vec[i], vlen)) {
			snprintf(what, sizeof(what), "vector register %u", i);
			return what;
		}
	for (i = 1; level == 2 && i < 8; i++)
		if ((uint16_t)out->k[i] != (uint16_t)in->k[i]) {
			snprintf(what, sizeof(what), "k%u", i);
			return what;
		}
	if (peek(target) != 0x5a)
		return "the store";
	return NULL;
}

/* Probe @n pages from @p, one fault each; fail the test on a difference. */
static void probe_pages(uint8_t *p, size_t n)
{
	static struct probe_state in, out;
	int level = vec_level();
	size_t ps = page_size(), i;

	for (i = 0; i < n; i++) {
		const char *bad;

		fill_in(&in, (unsigned int)i);
		memset(&out, 0, sizeof(out));
		resume_probe(p + i * ps, &in, &out, level);
		bad = probe_diff(&in, &out, p + i * ps, level);
		ck_assert_msg(bad == NULL, "page %zu: %s lost", i, bad);
	}
}

static struct uffd_ctx *sigbus_ctx(unsigned int flags)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.flags = flags,
		.delivery = LIBUFFD_DELIVER_SIGBUS,
	};
	struct uffd_ctx *c = NULL;

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	return c;
}

/* The probe itself, on ordinary memory: the control for the rest. */
START_TEST(probe_control)
{
	size_t ps = page_size();
	uint8_t *p = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	probe_pages(p, 8);	/* kernel faults */
	probe_pages(p, 8);	/* no faults */
	munmap(p, 8 * ps);
}
END_TEST

/* sigbus_direct after @n faults that could resume directly */
static uint64_t direct_count(uint64_t n)
{
	return direct_resume_possible() ? n : 0;
}

static void registers_case(unsigned int flags, bool direct)
{
	struct uffd_ctx *c = sigbus_ctx(flags);
	struct uffd_region *r;
	struct uffd_stats st;
	const size_t n = 64;

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, n, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	probe_pages(uffd_region_addr(r), n);
	st = settled_stats(r);
	ck_assert_uint_eq(st.sigbus_faults, n);
	ck_assert_uint_eq(st.faults_write, n);
	ck_assert_uint_eq(st.pages_copy, n);
	ck_assert_uint_eq(st.sigbus_direct, direct ? direct_count(n) : 0);
	uffd_ctx_destroy(c);
}

START_TEST(direct_keeps_registers)
{
	registers_case(0, true);
}
END_TEST

START_TEST(sigreturn_keeps_registers)
{
	registers_case(LIBUFFD_CTX_SIGRETURN, false);
}
END_TEST

/* ---- asynchronous signals landing in the middle of it ---- */

static atomic_int usr1_seen;
static atomic_int stop_sender;

static void on_usr1(int sig)
{
	(void)sig;
	probe_clobber(vec_level());
	atomic_fetch_add(&usr1_seen, 1);
}

static void *sender(void *arg)
{
	pthread_t target = *(pthread_t *)arg;
	struct timespec ts = { .tv_nsec = 2000 };

	while (!atomic_load(&stop_sender)) {
		pthread_kill(target, SIGUSR1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

START_TEST(async_signals_meanwhile)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct uffd_ctx *c = sigbus_ctx(0);
	struct uffd_region *r;
	struct uffd_stats st;
	pthread_t self = pthread_self(), t;
	const size_t n = 4096;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, n, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, sender, &self), 0);
	probe_pages(uffd_region_addr(r), n);
	atomic_store(&stop_sender, 1);
	ck_assert_int_eq(join_timeout(t, NULL, TEST_WAIT_MS), 0);
	st = settled_stats(r);
	ck_assert_uint_eq(st.pages_copy, n);
	ck_assert_uint_eq(st.sigbus_direct, direct_count(n));
	/* the signals did land while pages were faulting */
	ck_assert_int_gt(atomic_load(&usr1_seen), 10);
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- a handler installed after ours, chaining to it ---- */

static struct sigaction lib_action;
static atomic_int chained_after;

static void app_first(int sig, siginfo_t *si, void *uc)
{
	lib_action.sa_sigaction(sig, si, uc);
	/* only reached if the library returned to us */
	atomic_fetch_add(&chained_after, 1);
}

START_TEST(chained_handler_gets_return)
{
	struct uffd_ctx *c = sigbus_ctx(0);
	struct sigaction sa;
	struct uffd_region *r;
	struct uffd_stats st;
	uint8_t *p;

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	p = uffd_region_addr(r);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = app_first;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	ck_assert_int_eq(sigaction(SIGBUS, &sa, &lib_action), 0);
	ck_assert(lib_action.sa_flags & SA_SIGINFO);

	probe_pages(p, 4);
	ck_assert_int_eq(atomic_load(&chained_after), 4);
	st = settled_stats(r);
	ck_assert_uint_eq(st.sigbus_faults, 4);
	ck_assert_uint_eq(st.sigbus_direct, 0);

	/* the library's own handler back in place: direct again */
	ck_assert_int_eq(sigaction(SIGBUS, &lib_action, NULL), 0);
	probe_pages(p + 4 * page_size(), 4);
	st = settled_stats(r);
	ck_assert_uint_eq(st.sigbus_direct, direct_count(4));
	ck_assert_int_eq(atomic_load(&chained_after), 4);
	uffd_ctx_destroy(c);
}
END_TEST

/* ---- alternate signal stacks ---- */

static void altstack_case(int ss_flags, bool direct)
{
	static uint8_t altbuf[256 * 1024] __attribute__((aligned(64)));
	stack_t ss = { .ss_sp = altbuf, .ss_size = sizeof(altbuf),
		       .ss_flags = ss_flags }, now;
	struct uffd_ctx *c = sigbus_ctx(0);
	struct uffd_region *r;
	struct uffd_stats st;

	ck_assert_int_eq(sigaltstack(&ss, NULL), 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 16, NULL, &r), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	probe_pages(uffd_region_addr(r), 16);
	st = settled_stats(r);
	ck_assert_uint_eq(st.sigbus_faults, 16);
	ck_assert_uint_eq(st.sigbus_direct, direct ? direct_count(16) : 0);
	/* back on the thread's stack, the alternate one still armed */
	ck_assert_int_eq(sigaltstack(NULL, &now), 0);
	ck_assert_ptr_eq(now.ss_sp, altbuf);
	ck_assert_uint_eq(now.ss_size, sizeof(altbuf));
	ck_assert_int_eq(now.ss_flags & (SS_ONSTACK | SS_DISABLE), 0);
	uffd_ctx_destroy(c);
}

START_TEST(altstack_direct)
{
	altstack_case(0, true);
}
END_TEST

START_TEST(altstack_autodisarm_returns)
{
	altstack_case(SS_AUTODISARM, false);
}
END_TEST

static Suite *resume_suite(void)
{
	Suite *s = suite_create("resume");
	TCase *tc = add_tcase(s, "registers", NULL, NULL);

	tcase_add_test(tc, probe_control);
	tcase_add_test(tc, direct_keeps_registers);
	tcase_add_test(tc, sigreturn_keeps_registers);
	tcase_add_test(tc, async_signals_meanwhile);
	tc = add_tcase(s, "returns", NULL, NULL);
	tcase_add_test(tc, chained_handler_gets_return);
	tcase_add_test(tc, altstack_direct);
	tcase_add_test(tc, altstack_autodisarm_returns);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_SIGBUS, 0);
	if (!direct_resume_possible())
		fprintf(stderr, "test-resume: under QEMU TCG the library "
			"returns with rt_sigreturn: every case runs, none "
			"resumes directly\n");
	return run_suite(resume_suite());
}

#else

int main(void)
{
	fprintf(stderr, "test-resume: direct resume is x86-64 only\n");
	return TEST_EXIT_SKIP;
}

#endif
