/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the libuffd tests: the kernel's own views of what the
 * library did (pagemap, fdinfo, smaps, rusage, /proc/self/fd and maps), a
 * SIGBUS catcher, and bounded waits that replace fixed sleeps.
 *
 * Every helper but require_kernel() returns a negative errno (or a
 * documented sentinel) on failure and never aborts, so that a test can
 * say which oracle broke.
 */
#ifndef LIBUFFD_TESTS_HELPERS_H
#define LIBUFFD_TESTS_HELPERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libuffd.h>

/* Exit codes understood by the Automake test driver. */
#define TEST_EXIT_SKIP		77
#define TEST_EXIT_HARD_ERROR	99

/* Generous: these are behaviour tests on a shared 2-CPU machine. */
#define TEST_TIMEOUT_S		30
/* Bound for every wait on the handler thread, in milliseconds. */
#define TEST_WAIT_MS		10000

size_t page_size(void);

/*
 * For main(): exit 77 with the reason on stderr when the running kernel
 * lacks one of @features (LIBUFFD_FEATURE_*) or, when @need_scan, the
 * PAGEMAP_SCAN ioctl; exit 99 when userfaultfd cannot be used at all.
 */
void require_kernel(uint64_t features, int need_scan);

/* ---- pagemap ------------------------------------------------------ */

/* Raw /proc/self/pagemap entry of the page holding @addr, or -errno. */
int pagemap_entry(const void *addr, uint64_t *entry);

/*
 * Present bit and PFN of the page holding @addr.  The PFN is 0 when the
 * page is not present.  Returns 0 or -errno.
 */
int page_lookup(const void *addr, int *present, uint64_t *pfn);

/*
 * PFN of the shared zero page, found by reading a fresh private anonymous
 * page.  Returns 0 when it cannot be found (PFNs hidden: not root).
 */
uint64_t zero_page_pfn(void);

/*
 * Number of pages in [addr, addr + len) that map the shared zero page,
 * counted by PAGEMAP_SCAN with PAGE_IS_PFNZERO, or -errno (-ENOTTY when
 * the kernel lacks PAGEMAP_SCAN).
 */
long pfnzero_pages(const void *addr, size_t len);

/* Number of present pages in [addr, addr + len) by pagemap, or -errno. */
long present_pages(const void *addr, size_t len);

/* ---- userfaultfd fdinfo ------------------------------------------- */

/* The "pending:" count of a userfaultfd (faults not yet read), or -errno. */
long uffd_fdinfo_pending(int fd);

/*
 * Features enabled on userfaultfd @fd, from the "API:" line of its fdinfo
 * (the kernel's view, not the library's).  Returns 0 or -errno.
 */
int uffd_fdinfo_features(int fd, uint64_t *features);

/*
 * Wait until @fd has at least @n pending faults.  Returns the pending
 * count seen, or -ETIMEDOUT after @timeout_ms (or -errno).
 */
long wait_pending(int fd, long n, int timeout_ms);

/* ---- memory accounting -------------------------------------------- */

/* Rss in KiB of the mapping that contains @addr (smaps), or -errno. */
long rss_kib(const void *addr);

/*
 * 1 when the VmFlags of the mapping holding @addr include @flag (e.g.
 * "um": registered for userfaultfd missing faults), 0 when not, -ENOENT
 * when @addr is not mapped, or -errno.
 */
int vma_has_flag(const void *addr, const char *flag);

/* Minor faults taken by the calling thread so far (RUSAGE_THREAD). */
long thread_minflt(void);

/* Value of a /proc/meminfo field such as "HugePages_Free", or -errno. */
long meminfo_value(const char *field);

/* Read or write one integer in a file such as /proc/sys/vm/nr_hugepages. */
int read_long_file(const char *path, long *val);
int write_long_file(const char *path, long val);

/* ---- process state ------------------------------------------------ */

/* Number of open file descriptors (/proc/self/fd), or -errno. */
int count_fds(void);

/* Number of pages of [addr, addr + len) that are mapped (by mincore). */
long mapped_pages(const void *addr, size_t len);

/*
 * /proc/self/maps as a malloc'ed string, without the [heap] line (malloc
 * may grow it at any time; the library's own mappings are what matters),
 * and only file-backed lines under AddressSanitizer, which maps memory
 * of its own at any time.
 * Returns NULL on failure.  maps_equal() reports whether two are equal.
 */
char *maps_snapshot(void);
int maps_equal(const char *a, const char *b);

/*
 * Describe how two snapshots differ ("+line" only in @b, "-line" only in
 * @a), at most @len bytes, for an assertion message short enough for
 * Check.
 */
void maps_diff(const char *a, const char *b, char *buf, size_t len);

/* In a test: fail with the difference when @a and @b differ. */
#define assert_maps_equal(a, b)						\
	do {								\
		char diff_[512];					\
									\
		maps_diff((a), (b), diff_, sizeof(diff_));		\
		ck_assert_msg(maps_equal((a), (b)),			\
			      "mappings changed:\n%s", diff_);		\
	} while (0)

/* One-letter state ('R', 'S', ...) of thread @tid of this process, or 0. */
char thread_state(pid_t tid);

/* ---- SIGBUS ------------------------------------------------------- */

/*
 * Touch @addr: read one byte (stored in *val when @val is not NULL), or
 * write *val when @do_write.  Returns 1 when the access raised SIGBUS (the
 * fault address goes to *fault_addr when not NULL), 0 when it completed.
 * Any thread; the catcher is installed on first use.
 */
int touch_catch_sigbus(void *addr, int do_write, uint8_t *val,
		       void **fault_addr);

/* Empty uffd_last_error(), so that a check of it sees only the next call. */
void clear_last_error(void);

/* ---- time and waiting --------------------------------------------- */

uint64_t now_ns(void);
void sleep_us(unsigned int us);

/*
 * Poll one counter of a region's (or context's) statistics until it is
 * at least @want.  @off is offsetof(struct uffd_stats, field).  Returns
 * the value seen, or -ETIMEDOUT after @timeout_ms (or -errno).
 */
int64_t wait_region_stat(const struct uffd_region *r, size_t off,
			 uint64_t want, int timeout_ms);
int64_t wait_ctx_stat(const struct uffd_ctx *ctx, size_t off,
		      uint64_t want, int timeout_ms);

#define STAT_OFF(field)	offsetof(struct uffd_stats, field)

/* Sum of the service-time histogram. */
uint64_t hist_total(const struct uffd_stats *st);

/* ---- threads ------------------------------------------------------ */

/* pthread_timedjoin_np with a relative timeout; 0, -ETIMEDOUT or -errno. */
int join_timeout(pthread_t t, void **ret, int timeout_ms);

/* ---- sample regions ------------------------------------------------ */

/*
 * Create a region of @npages base pages of @type ("zero" pager unless
 * @pager is given) on @ctx.  Returns 0 and *out, or the library's error.
 */
int make_region(struct uffd_ctx *ctx, enum uffd_mem_type type, size_t npages,
		const char *pager, struct uffd_region **out);

/* Read/write one byte without the compiler merging or dropping it. */
static inline uint8_t peek(const void *p)
{
	return *(const volatile uint8_t *)p;
}

static inline void poke(void *p, uint8_t v)
{
	*(volatile uint8_t *)p = v;
}

#endif /* LIBUFFD_TESTS_HELPERS_H */
