// SPDX-License-Identifier: MIT
/*
 * The stress engine (tests/stress.c) in its short mode: every built-in
 * pager on anonymous, memfd and hugetlb memory, in both delivery modes,
 * with one and three handler threads, each for a short round, while the
 * chaos thread discards, moves, forks, stops and recreates.  A test case
 * per pager.  Each must see no mismatch, no failure, and exactly the
 * configurations the library refuses by design left out:
 *  - file, file with prefetch and memcached (the file pager over a
 *    memcached pool, three servers of its own): not in SIGBUS mode (not
 *    CONCURRENT);
 *  - evict, and evict-mc (over the pool): anonymous memory only, and
 *    not in SIGBUS mode (it registers write-protect faults), and only
 *    with UFFDIO_MOVE (6.8).
 * $LIBUFFD_STRESS_MS sets the round (default 400 ms): `uffd-bench
 * stress` is the long mode.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "stress.h"

static const char *const pagers[] = {
	"zero", "prealloc", "prezero", "hugezero", "file", "file-prefetch",
	"evict",
#ifdef HAVE_MEMCACHED
	"memcached",	/* the file pager over a pool of its own servers */
	"evict-mc",	/* evict over the same pool */
#endif
};

/* Whether the hugetlb rounds can have their pages; why not, if not. */
static const char *huge_missing;

static unsigned int round_ms(void)
{
	const char *s = getenv("LIBUFFD_STRESS_MS");
	long v = s ? strtol(s, NULL, 10) : 0;

	return v > 0 && v < 600000 ? (unsigned int)v : 400;
}

/* Configurations the library must refuse, of the 12 (3 x 2 x 2). */
static uint64_t expected_na(const char *pager, bool huge)
{
	unsigned int mems = huge ? 3 : 2;

	if (!strcmp(pager, "file") || !strcmp(pager, "file-prefetch") ||
	    !strcmp(pager, "memcached"))
		return mems * 2;			/* SIGBUS mode */
	if (!strcmp(pager, "evict") || !strcmp(pager, "evict-mc"))
		return (kernel_features() & LIBUFFD_FEATURE_MOVE) ?
		       mems * 4 - 2 : mems * 4;	/* anon, threads only */
	return 0;
}

START_TEST(stress_pager)
{
	const char *pager = pagers[_i];
	struct stress_opts o = {
		.round_ms = round_ms(),
		.threads_per_cpu = 2,
		.seed = 0x5eed + (uint64_t)_i,
		.pagers = pager,
		.mems = huge_missing ? "anon,memfd" : NULL,
		.verbose = 1,
		.out = stdout,
	};
	struct stress_totals t = { 0 };
	int ret;

	ret = stress_run(&o, &t);
	printf("test-stress: %s: %" PRIu64 " rounds, %" PRIu64 " accesses, %"
	       PRIu64 " faults served, %" PRIu64 " chaos events, %" PRIu64
	       " mismatches, %" PRIu64 " failures, %" PRIu64 " n/a\n", pager,
	       t.rounds, t.accesses, t.faults,
	       t.events[SE_DONTNEED] + t.events[SE_REMOVE] +
	       t.events[SE_MREMAP] + t.events[SE_FORK] +
	       t.events[SE_STOPSTART] + t.events[SE_RECREATE] +
	       t.events[SE_FLUSH], t.mismatches, t.failures, t.unsupported);
	fflush(stdout);
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_eq(t.mismatches, 0);
	ck_assert_uint_eq(t.failures, 0);
	ck_assert_uint_eq(t.unsupported, expected_na(pager, !huge_missing));
	ck_assert_uint_eq(t.rounds + t.unsupported, huge_missing ? 8 : 12);
	if (t.rounds) {
		ck_assert_uint_gt(t.accesses, 0);
		ck_assert_uint_gt(t.faults, 0);
		/* the chaos did each of its things somewhere */
		ck_assert_uint_gt(t.events[SE_MREMAP], 0);
		ck_assert_uint_gt(t.events[SE_FORK], 0);
		ck_assert_uint_gt(t.events[SE_STOPSTART], 0);
		ck_assert_uint_gt(t.events[SE_RECREATE], 0);
		if (strcmp(pager, "file-prefetch"))
			ck_assert_uint_gt(t.events[SE_DONTNEED], 0);
		if (!strcmp(pager, "evict") || !strcmp(pager, "evict-mc"))
			ck_assert_uint_gt(t.events[SE_FLUSH], 0);
	}
}
END_TEST

/* Huge pages for the hugetlb rounds: reserved by the engine as root. */
static void probe_huge(void)
{
	long nr, free_;

	if (read_long_file("/proc/sys/vm/nr_hugepages", &nr) < 0) {
		huge_missing = "no hugetlb in this kernel";
		return;
	}
	free_ = meminfo_value("HugePages_Free");
	if (free_ >= 16)
		return;
	if (write_long_file("/proc/sys/vm/nr_hugepages", nr + 16 - free_) < 0)
		huge_missing = "cannot reserve huge pages (not root?)";
	else if (meminfo_value("HugePages_Free") < 16)
		huge_missing = "the kernel could not reserve 16 huge pages";
	write_long_file("/proc/sys/vm/nr_hugepages", nr);
}

int main(void)
{
	Suite *s = suite_create("stress");
	TCase *tc;
	unsigned int ms = round_ms();

	require_kernel(LIBUFFD_FEATURE_EVENT_REMOVE |
		       LIBUFFD_FEATURE_EVENT_UNMAP |
		       LIBUFFD_FEATURE_EVENT_REMAP, 0);
	probe_huge();
	if (huge_missing)
		skip_case("stress_pager (hugetlb rounds)", "%s", huge_missing);
	tc = add_tcase(s, "stress", NULL, NULL);
	/* 12 rounds a case, and slow sanitizer builds */
	tcase_set_timeout(tc, 12 * (ms / 1000.0 + 2) * 3 + 60);
	tcase_add_loop_test(tc, stress_pager, 0, (int)ARRAY_SIZE(pagers));
	return run_suite(s);
}
