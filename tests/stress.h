/* SPDX-License-Identifier: MIT */
/*
 * The stress engine, in the spirit of the kernel's uffd-stress: threads
 * fault concurrently on regions of every built-in pager, memory type and
 * delivery mode while a chaos thread discards, moves, forks, stops and
 * recreates under them, and every access is checked against a shadow
 * kept outside the regions.  tests/test-stress runs it briefly under
 * Check; `uffd-bench stress` runs it for as long as asked.
 */
#ifndef LIBUFFD_TESTS_STRESS_H
#define LIBUFFD_TESTS_STRESS_H

#include <stdint.h>
#include <stdio.h>

/* Chaos events, counted in stress_totals.events[]. */
enum stress_event {
	SE_DONTNEED,	/* MADV_DONTNEED of a few pages */
	SE_REMOVE,	/* MADV_REMOVE (memfd, hugetlb): a hole punched */
	SE_MREMAP,	/* the whole region moved */
	SE_FORK,	/* a child checked a snapshot of every region */
	SE_STOPSTART,	/* uffd_ctx_stop, a pause, uffd_ctx_start */
	SE_RECREATE,	/* a region destroyed and a new one created */
	SE_FLUSH,	/* uffd_region_flush (evict) */
	SE_NEVENTS
};

extern const char *const stress_event_names[SE_NEVENTS];

struct stress_opts {
	unsigned int	round_ms;	/* each configuration's run */
	uint64_t	duration_ms;	/* 0: every configuration once */
	unsigned int	threads_per_cpu; /* faulting threads, per CPU */
	uint64_t	seed;
	/*
	 * Comma lists of names to run (NULL: all): pagers "zero",
	 * "prealloc", "prezero", "hugezero", "file", "file-prefetch",
	 * "evict"; memory "anon", "memfd", "hugetlb"; delivery "thread",
	 * "sigbus"; handlers "1", "3".
	 */
	const char	*pagers, *mems, *deliveries, *handlers;
	const char	*dir;		/* for the snapshot image (NULL: /tmp) */
	int		verbose;	/* a line per round */
	FILE		*out;		/* reports (NULL: stdout) */
};

struct stress_totals {
	uint64_t	rounds;		/* configurations run */
	uint64_t	accesses;	/* checked locked accesses */
	uint64_t	faults;		/* faults the library served */
	uint64_t	events[SE_NEVENTS];
	uint64_t	mismatches;	/* wrong bytes seen (must be 0) */
	uint64_t	failures;	/* other broken promises (must be 0) */
	uint64_t	unsupported;	/* configurations the kernel refused */
};

/*
 * Run configurations (each once; or round after round, cycling, until
 * @o->duration_ms passed).  Returns 0 when every round ran without a
 * mismatch or failure, 1 otherwise, -errno when it could not start.
 * Totals accumulate into @t.
 */
int stress_run(const struct stress_opts *o, struct stress_totals *t);

/* uffd-bench stress: parse options, run, print totals.  Exit status. */
int stress_main(int argc, char **argv);

#endif /* LIBUFFD_TESTS_STRESS_H */
