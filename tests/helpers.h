/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the libuffd tests: the kernel's own views of what the
 * library did (pagemap, PAGEMAP_SCAN, kpagecount, fdinfo, smaps, rusage,
 * /proc/self/fd, task and maps), a SIGBUS catcher, bounded waits that
 * replace fixed sleeps, hooks for test pagers, and the Check fixtures and
 * suite plumbing every test shares.
 *
 * The oracles return a negative errno (or a documented sentinel) on
 * failure and never abort, so that a test can say which oracle broke.
 * Only what is documented as "in a test" asserts (and so fails the
 * running test), and require_*() exit from main().
 */
#ifndef LIBUFFD_TESTS_HELPERS_H
#define LIBUFFD_TESTS_HELPERS_H

#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include <check.h>
#include <libuffd.h>

/* Exit codes understood by the Automake test driver. */
#define TEST_EXIT_SKIP		77
#define TEST_EXIT_HARD_ERROR	99

/* Generous: these are behaviour tests on a shared 2-CPU machine. */
#define TEST_TIMEOUT_S		30
/* Bound for every wait on the handler thread, in milliseconds. */
#define TEST_WAIT_MS		10000

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* Built with ThreadSanitizer (gcc says so one way, clang another). */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN	1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN	1
#endif
#endif

size_t page_size(void);

/* ---- the running kernel ------------------------------------------- */

/*
 * What the running kernel offers, as the tests see it: the userfaultfd
 * features (LIBUFFD_FEATURE_*) and whether it has the PAGEMAP_SCAN ioctl
 * (6.7).  Probed once.
 *
 * $UFFD_TEST_HIDE hides some of them, to try on a new kernel the paths
 * an old one takes: a comma-separated list of feature names ("MOVE"),
 * "PAGEMAP_SCAN", or a kernel version ("6.1": everything newer).  The
 * standard fixtures then turn the hidden features off in their context
 * (features_off); contexts a test makes itself keep them.
 */
uint64_t kernel_features(void);
int kernel_has_scan(void);

/*
 * For main(): exit 77 with the reason on stderr when the running kernel
 * lacks one of @features (LIBUFFD_FEATURE_*), the program's core, or,
 * when @need_scan, the PAGEMAP_SCAN ioctl (only for a program that has
 * no use without it: pagemap and kpageflags answer the counts the
 * helpers take from it); exit 99 when userfaultfd cannot be used at all.
 */
void require_kernel(uint64_t features, int need_scan);

/*
 * For main(): exit 99 when pagemap hides PFNs or /proc/kpageflags cannot
 * be read (not root), and 77 when the kernel has no shared zero page to
 * give (UFFDIO_ZEROPAGE maps another page, as where the architecture
 * forbids it).  Finding the zero page here also spares the tests the
 * cost.
 */
void require_pfns(void);

/*
 * For main(): make sure pfnzero_pages() can count, by PAGEMAP_SCAN
 * (any user) or else by PFNs (require_pfns()).
 */
void require_zero_count(void);

/* ---- test cases a kernel may not run ------------------------------ */

/* Needs of a test case besides userfaultfd features, for add_test_if(). */
#define NEED_PAGEMAP_SCAN	(1u << 0)

/*
 * Leave test case @name out, saying so in one line on stderr that a CI
 * harness counts:
 *	SKIP-CASE: <program>: <name>: <reason>
 */
void skip_case(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Whether the running kernel can run test case @name, which needs
 * @features (LIBUFFD_FEATURE_*) and @needs (NEED_*).  When it cannot,
 * the case is skipped with skip_case() ("kernel lacks
 * UFFD_FEATURE_MOVE (6.8)") and the answer is 0.
 */
int case_runs(const char *name, uint64_t features, unsigned int needs);

/* tcase_add_test() and tcase_add_loop_test(), when case_runs() says so. */
void add_test_if(TCase *tc, const TTest *t, uint64_t features,
		 unsigned int needs);
void add_loop_test_if(TCase *tc, const TTest *t, int start, int end,
		      uint64_t features, unsigned int needs);

/* ---- the kernel's own behaviour ----------------------------------- */

enum thp_mode {
	THP_ABSENT = -1,	/* no transparent_hugepage in sysfs */
	THP_NEVER,
	THP_MADVISE,
	THP_ALWAYS,
};

/*
 * How the kernel itself treats anonymous memory, probed once, so that
 * every assertion about the kernel's behaviour (not the library's) can
 * follow it.  Assertions about what libuffd does never look here.
 */
struct native_facts {
	/*
	 * 1 when a read fault on untouched private anonymous memory of
	 * 4 KiB pages (MADV_NOHUGEPAGE) maps the shared zero page, 0 when
	 * it allocates a page instead (pvm_no_zero_page=1, s390 guests),
	 * -1 when the oracles (pagemap PFNs, Rss) disagreed.
	 */
	int		read_maps_zero;
	enum thp_mode	thp_enabled;	/* .../transparent_hugepage/enabled */
	int		thp_use_zero_page;	/* 0, 1; -1 when absent */
	/*
	 * 1 when memory nobody advised may get folios larger than 4 KiB on
	 * a fault: THP "always", or an mTHP size set to "always" (or to
	 * "inherit" under "always").
	 */
	int		thp_unadvised;
	long		hugetlb_total;	/* default-size huge pages reserved */
	long		hugetlb_free;
};

const struct native_facts *native_facts(void);

/* One line describing native_facts(), for a log. */
void print_native_facts(FILE *f);

/*
 * What a native read walk over one 2 MiB-aligned MADV_HUGEPAGE extent
 * does under the THP settings of the moment: its Rss and AnonHugePages
 * after the walk, and whether its first page is then the huge zero page
 * (/proc/kpageflags KPF_ZERO_PAGE with KPF_THP; -1 when PFNs are hidden).
 * Returns 0 or -errno.
 */
struct thp_read {
	long	rss_kib;
	long	anon_huge_kib;
	int	huge_zero;
};

int native_thp_read(struct thp_read *out);

/*
 * x86-64: 1 when the CPU reports the first fault of a read-modify-write
 * instruction (addb $1, mem) as a write, as hardware does, 0 when as a
 * read (qemu's TCG loads first), asked of a raw userfaultfd; -errno
 * (-ENOTSUP elsewhere).
 */
int rmw_faults_as_write(void);

/* ---- Check plumbing ---------------------------------------------- */

/*
 * The context of the standard fixtures.  ctx_setup() creates it with the
 * default options and starts its handler, failing the test when it cannot;
 * ctx_setup_stopped() leaves the start to the test; ctx_teardown()
 * destroys it unless a test already did (and set it to NULL).  Tests that
 * need other options create it themselves.
 */
extern struct uffd_ctx *ctx;

void ctx_setup(void);
void ctx_setup_stopped(void);
void ctx_teardown(void);

/*
 * Add a test case @name to @s with the standard timeout and, unless both
 * are NULL, the checked fixture @setup and @teardown.
 */
TCase *add_tcase(Suite *s, const char *name, void (*setup)(void),
		 void (*teardown)(void));

/* Run every test of @s and free it.  Returns main()'s exit status. */
int run_suite(Suite *s);

/* ---- pagemap ------------------------------------------------------ */

/* Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)

/* Raw /proc/self/pagemap entry of the page holding @addr, or -errno. */
int pagemap_entry(const void *addr, uint64_t *entry);

/* The entries of the @n pages from @addr into @out; 0 or -errno. */
int pagemap_entries(const void *addr, size_t n, uint64_t *out);

/*
 * Present bit and PFN of the page holding @addr.  The PFN is 0 when the
 * page is not present.  Returns 0 or -errno.
 */
int page_lookup(const void *addr, int *present, uint64_t *pfn);

/*
 * PFN of the shared zero page.  Never learnt from a native read fault,
 * which some kernels serve with a fresh page: it is the page a raw
 * UFFDIO_ZEROPAGE maps on a throwaway userfaultfd of the helpers' own
 * (not libuffd's, so that the tests do not take the library's word),
 * confirmed by /proc/kpageflags (KPF_ZERO_PAGE, not KPF_THP) and, where
 * the kernel has it, PAGEMAP_SCAN's PAGE_IS_PFNZERO.  Found once.
 * Returns 0 when it cannot be found; zero_page_error() then says why.
 */
uint64_t zero_page_pfn(void);
const char *zero_page_error(void);

/*
 * 1 when the page holding @addr maps the shared (4 KiB) zero page, 0 when
 * it does not or is not present, -errno when an oracle fails, -EPROTO
 * (with the details on stderr) when the oracles disagree: its PFN against
 * zero_page_pfn(), its /proc/kpageflags, and PAGEMAP_SCAN where present.
 */
int is_zero_page(const void *addr);

/*
 * Number of pages in [addr, addr + len) that map a zero page (the 4 KiB
 * one, or the huge zero page), as PAGEMAP_SCAN's PAGE_IS_PFNZERO counts
 * them.  Counted from pagemap PFNs and /proc/kpageflags on every kernel,
 * and checked against PAGEMAP_SCAN where the kernel has it: -EPROTO,
 * with both counts on stderr, when they disagree.  Or -errno: -ENODATA
 * when PFNs are hidden (not root) and the kernel lacks PAGEMAP_SCAN.
 */
long pfnzero_pages(const void *addr, size_t len);

/* Number of present pages in [addr, addr + len) by pagemap, or -errno. */
long present_pages(const void *addr, size_t len);

/*
 * The same count by PAGEMAP_SCAN with PAGE_IS_PRESENT, one walk of the
 * page tables, checked against pagemap (-EPROTO when they disagree); by
 * pagemap alone on kernels without PAGEMAP_SCAN.  Or -errno.
 */
long scan_present_pages(const void *addr, size_t len);

/* Bits of /proc/kpageflags (Documentation/admin-guide/mm/pagemap.rst). */
#define KPF_BIT_THP		22
#define KPF_BIT_ZERO_PAGE	24

/* The /proc/kpageflags word of physical page @pfn (root only): 0 or -errno. */
int kpageflags(uint64_t pfn, uint64_t *flags);

/*
 * How many times physical page @pfn is mapped (/proc/kpagecount, root
 * only), or -errno.
 */
long kpagecount(uint64_t pfn);

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
 * Any "<field>: N kB" line of the smaps block of the mapping that
 * contains @addr ("AnonHugePages"), or -errno (-ENOENT: no such field).
 */
long smaps_kib(const void *addr, const char *field);

/*
 * 1 when the VmFlags of the mapping holding @addr include @flag (e.g.
 * "um": registered for userfaultfd missing faults), 0 when not, -ENOENT
 * when @addr is not mapped, or -errno.
 */
int vma_has_flag(const void *addr, const char *flag);

/* Minor faults taken by the calling thread so far (RUSAGE_THREAD). */
long thread_minflt(void);

/*
 * Faults taken by the calling thread so far, minor and major: a fault
 * that userfaultfd served is retried, and the retry counts as major on
 * some kernels (6.1) and as minor on others (6.18).  With no swap and no
 * file I/O, nothing else here is major.
 */
long thread_faults(void);

/* Value of a /proc/meminfo field such as "HugePages_Free", or -errno. */
long meminfo_value(const char *field);

/* Read or write one integer in a file such as /proc/sys/vm/nr_hugepages. */
int read_long_file(const char *path, long *val);
int write_long_file(const char *path, long val);

/* ---- process state ------------------------------------------------ */

/* Number of open file descriptors (/proc/self/fd), or -errno. */
int count_fds(void);

/*
 * Number of threads of this process (/proc/self/task), or -errno.  Under
 * ThreadSanitizer the count includes its background threads, which it
 * starts at a fork and at the first pthread_create: the first call makes
 * sure they exist, so that counts taken before and after the library
 * starts threads differ by the library's threads only.
 */
int count_threads(void);

/*
 * Wait until this process has exactly @n threads.  Returns the count seen
 * last: @n, another count after @timeout_ms, or -errno.
 */
int wait_threads(int n, int timeout_ms);

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

/*
 * In a test: fail when the mappings now differ from @before, a snapshot
 * taken earlier, which is freed.
 */
#define assert_maps_unchanged(before)					\
	do {								\
		char *before_ = (before), *after_ = maps_snapshot();	\
									\
		assert_maps_equal(before_, after_);			\
		free(before_);						\
		free(after_);						\
	} while (0)

/*
 * In a test: uffd_region_create() on ctx with @o fails with @err, says
 * why, and leaves the process as it was (mappings and descriptors).
 */
void expect_create_fails(const struct uffd_region_opts *o, int err);

/* One-letter state ('R', 'S', ...) of thread @tid of this process, or 0. */
char thread_state(pid_t tid);

/*
 * Ids of the threads of this process other than the caller (and than the
 * sanitizer's, see note_runtime_threads), the first @max of them into
 * @tids.  Returns how many there are (perhaps more than @max), or -errno.
 */
int other_threads(pid_t *tids, int max);

/*
 * Under ThreadSanitizer, start its background threads and note their
 * ids, once per process; elsewhere a no-op.  Call it before the library
 * starts a thread, in a test that looks at each thread: other_threads()
 * and runtime_thread() then leave TSan's threads out.
 */
void note_runtime_threads(void);

/* Is @tid one of the threads note_runtime_threads() noted? */
bool runtime_thread(pid_t tid);

/*
 * The CPUs thread @tid of this process may run on, as its status shows
 * them ("1", "0-1"), into @out of @len bytes.  Returns 0 or -errno.
 */
int thread_cpus(pid_t tid, char *out, size_t len);

/* ---- SIGBUS ------------------------------------------------------- */

/*
 * Whether the library can resume a SIGBUS-mode fault directly (x86-64,
 * and not under QEMU's TCG, whose IRETQ faults with SMAP, nor under
 * ThreadSanitizer: see libuffd/sigbus.c), asked of CPUID rather than of
 * the library.
 */
int direct_resume_possible(void);

/*
 * Touch @addr: read one byte (stored in *val when @val is not NULL), or
 * write *val when @do_write.  Returns 1 when the access raised SIGBUS (the
 * fault address goes to *fault_addr when not NULL), 0 when it completed.
 * Any thread; the catcher is installed on first use.
 */
int touch_catch_sigbus(void *addr, int do_write, uint8_t *val,
		       void **fault_addr);

/* si_code of the SIGBUS touch_catch_sigbus() last caught in this thread. */
int last_sigbus_code(void);

/*
 * Install touch_catch_sigbus()'s handler now (again, if another took
 * SIGBUS meanwhile).  A test of SIGBUS delivery does it before the
 * context starts, so that the library's handler chains to it.
 */
void sigbus_catcher_install(void);

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
int64_t wait_ctx_stat(const struct uffd_ctx *c, size_t off,
		      uint64_t want, int timeout_ms);

#define STAT_OFF(field)	offsetof(struct uffd_stats, field)

/* Sum of the service-time histogram. */
uint64_t hist_total(const struct uffd_stats *st);

/*
 * Statistics of region @r (or context @c) once every fault it took is
 * fully counted.  A fault's page counters land just after its thread is
 * woken and its histogram entry comes last, so this waits until the
 * histogram holds as many entries as there were faults.  Returns 0, or
 * -ETIMEDOUT after @timeout_ms (*st then holds the last reading), or the
 * library's error.
 */
int settled_region_stats(const struct uffd_region *r, struct uffd_stats *st,
			 int timeout_ms);
int settled_ctx_stats(const struct uffd_ctx *c, struct uffd_stats *st,
		      int timeout_ms);

/* In a test: the settled statistics of @r, within TEST_WAIT_MS. */
struct uffd_stats settled_stats(const struct uffd_region *r);

/* ---- running the demos -------------------------------------------- */

/* What a program printed, and how it ended. */
struct result {
	int	status;		/* exit status, or 128 + signal */
	char	*out, *err;
};

/*
 * In a test: run @path with @args (NULL-terminated after argv[0]), its
 * stdout and stderr captured, and wait for it; kill it and fail the test
 * after @timeout_s.  @sigint_after_ms > 0: send SIGINT after that long.
 * @child_setup, when not NULL, runs in the child before exec; when it
 * returns nonzero the child exits with 126.
 */
void run_program(struct result *res, const char *path,
		 const char *const *args, int timeout_s, int sigint_after_ms,
		 int (*child_setup)(void *), void *arg);
void result_free(struct result *res);

/*
 * @rel (say "demos/uffd-bench") in a directory above this executable,
 * into @path: tests/test-x, or tests/.libs/lt-test-x under libtool, or
 * /tests/test-x in the VM.  false when not found.
 */
bool find_above_exe(const char *rel, char *path, size_t len);

/* Number of '\n' in @s. */
int count_lines(const char *s);

/* ---- threads ------------------------------------------------------ */

/* pthread_timedjoin_np with a relative timeout; 0, -ETIMEDOUT or -errno. */
int join_timeout(pthread_t t, void **ret, int timeout_ms);

/* ---- sample regions ------------------------------------------------ */

/*
 * Create a region of @npages base pages of @type ("zero" pager unless
 * @pager is given) on @c.  Returns 0 and *out, or the library's error.
 */
int make_region(struct uffd_ctx *c, enum uffd_mem_type type, size_t npages,
		const char *pager, struct uffd_region **out);

/*
 * In a test: a region of @npages base pages of @type on ctx, served by
 * @pager ("zero" when NULL), at @addr (for LIBUFFD_MEM_ADOPT).  Fails
 * the test with the library's reason when it cannot be made.
 */
struct uffd_region *new_region(enum uffd_mem_type type, const char *pager,
			       size_t npages, void *addr);

/* In a test: @npages private anonymous pages, readable and writable. */
void *map_anon(size_t npages);

/* ---- test pagers --------------------------------------------------- */

/* An init hook that ignores its arguments: the state is the region. */
int init_region_state(struct uffd_region *region,
		      const struct uffd_args *args, void **state);

/*
 * A fault hook that serves @f as the "zero" pager does: the zero page for
 * a read, a zeroed page of its own for a write.  Returns 0 or the error.
 */
int fault_like_zero(void *state, struct uffd_resolver *res,
		    const struct uffd_fault *f);

/*
 * Read/write one byte without the compiler merging or dropping it.
 * Tests race readers against writers on purpose (a reader sees zeros or
 * a writer's tag): relaxed atomics make that defined, and ThreadSanitizer
 * quiet, and compile to the same single load or store as volatile did.
 */
static inline uint8_t peek(const void *p)
{
	return __atomic_load_n((const volatile uint8_t *)p, __ATOMIC_RELAXED);
}

static inline void poke(void *p, uint8_t v)
{
	__atomic_store_n((volatile uint8_t *)p, v, __ATOMIC_RELAXED);
}

#endif /* LIBUFFD_TESTS_HELPERS_H */
