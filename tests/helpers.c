/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: kernel oracles, bounded waits, test pagers and the Check
 * plumbing the tests share.  See helpers.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "helpers.h"

/*
 * PAGEMAP_SCAN arrived in 6.7; the installed headers are older.  Our own
 * names keep us clear of the real ones when newer headers are installed.
 */
#define H_PAGEMAP_SCAN		_IOWR('f', 16, struct h_pm_scan_arg)
#define H_PAGE_IS_PRESENT	(1ULL << 3)
#define H_PAGE_IS_PFNZERO	(1ULL << 5)

struct h_page_region {
	uint64_t	start;
	uint64_t	end;
	uint64_t	categories;
};

struct h_pm_scan_arg {
	uint64_t	size;
	uint64_t	flags;
	uint64_t	start;
	uint64_t	end;
	uint64_t	walk_end;
	uint64_t	vec;
	uint64_t	vec_len;
	uint64_t	max_pages;
	uint64_t	category_inverted;
	uint64_t	category_mask;
	uint64_t	category_anyof_mask;
	uint64_t	return_mask;
};

/* /dev/userfaultfd (6.1) hands out userfaultfds with this ioctl. */
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif

size_t page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

/* ---- the running kernel ------------------------------------------- */

/* Where each feature bit arrived (include/uapi/linux/userfaultfd.h). */
#define SCAN_SINCE	"6.7"

/* The release that added feature @bit, "?" when unknown. */
static const char *feature_since(unsigned int bit)
{
	const char *v = uffd_feature_since(bit);

	return v ? v : "?";
}

/* "6.8" -> 608, for comparing versions. */
static int version_code(const char *v)
{
	int major = 0, minor = 0;

	if (sscanf(v, "%d.%d", &major, &minor) < 1)
		return -1;
	return major * 100 + minor;
}

static uint64_t hidden_features;
static int hidden_scan;

/* Parse $UFFD_TEST_HIDE once; an unknown word is a broken environment. */
static void parse_hide(void)
{
	static int done;
	const char *env = getenv("UFFD_TEST_HIDE");
	char buf[256], *tok, *save = NULL;
	unsigned int bit;
	int v;

	if (done)
		return;
	done = 1;
	if (!env || !*env)
		return;
	snprintf(buf, sizeof(buf), "%s", env);
	for (tok = strtok_r(buf, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (!strcmp(tok, "PAGEMAP_SCAN")) {
			hidden_scan = 1;
			continue;
		}
		if (tok[0] >= '0' && tok[0] <= '9') {
			v = version_code(tok);
			for (bit = 0; bit < LIBUFFD_FEATURE_NBITS; bit++)
				if (uffd_feature_since(bit) &&
				    version_code(uffd_feature_since(bit)) > v)
					hidden_features |= 1ULL << bit;
			if (version_code(SCAN_SINCE) > v)
				hidden_scan = 1;
			continue;
		}
		for (bit = 0; bit < LIBUFFD_FEATURE_NBITS; bit++)
			if (uffd_feature_name(bit) &&
			    !strcmp(uffd_feature_name(bit), tok))
				break;
		if (bit == LIBUFFD_FEATURE_NBITS) {
			fprintf(stderr, "ERROR: UFFD_TEST_HIDE: unknown '%s'\n",
				tok);
			exit(TEST_EXIT_HARD_ERROR);
		}
		hidden_features |= 1ULL << bit;
	}
}

uint64_t kernel_features(void)
{
	static uint64_t features;
	static int probed;
	struct uffd_probe p = { .size = sizeof(p) };

	if (!probed) {
		parse_hide();
		if (!uffd_probe(&p))
			features = p.features & ~hidden_features;
		probed = 1;
	}
	return features;
}

/* Count pages of [addr, addr + len) in a PAGEMAP_SCAN category. */
static long scan_pages(const void *addr, size_t len, uint64_t category);

int kernel_has_scan(void)
{
	static int has = -1;
	uintptr_t stack_page = (uintptr_t)&has & ~(uintptr_t)(page_size() - 1);

	if (has < 0) {
		parse_hide();
		has = !hidden_scan &&
		      scan_pages((void *)stack_page, page_size(),
				 H_PAGE_IS_PRESENT) != -ENOTTY;
	}
	return has;
}

void require_kernel(uint64_t features, int need_scan)
{
	struct uffd_probe p = { .size = sizeof(p) };
	uint64_t missing;
	unsigned int bit;
	int ret;

	ret = uffd_probe(&p);
	if (ret == -ENOSYS) {
		fprintf(stderr, "SKIP: kernel without userfaultfd\n");
		exit(TEST_EXIT_SKIP);
	}
	if (ret) {
		fprintf(stderr, "ERROR: userfaultfd unusable: %s\n",
			strerror(-ret));
		exit(TEST_EXIT_HARD_ERROR);
	}
	missing = features & ~kernel_features();
	if (missing) {
		bit = (unsigned int)__builtin_ctzll(missing);
		fprintf(stderr, "SKIP: kernel lacks UFFD_FEATURE_%s (%s)\n",
			uffd_feature_name(bit) ? uffd_feature_name(bit) : "?",
			feature_since(bit));
		exit(TEST_EXIT_SKIP);
	}
	if (need_scan && !kernel_has_scan()) {
		fprintf(stderr, "SKIP: kernel lacks PAGEMAP_SCAN (%s)\n",
			SCAN_SINCE);
		exit(TEST_EXIT_SKIP);
	}
}

void require_zero_count(void)
{
	if (!kernel_has_scan())
		require_pfns();
}

void require_pfns(void)
{
	if (zero_page_pfn())
		return;
	if (!strncmp(zero_page_error(), "no zero page", 12)) {
		fprintf(stderr, "SKIP: %s\n", zero_page_error());
		exit(TEST_EXIT_SKIP);
	}
	fprintf(stderr, "ERROR: %s\n", zero_page_error());
	exit(TEST_EXIT_HARD_ERROR);
}

/* ---- test cases a kernel may not run ------------------------------ */

/* This program's name, as the build names it (not libtool's lt-). */
static const char *prog_name(void)
{
	const char *n = program_invocation_short_name;

	return strncmp(n, "lt-", 3) ? n : n + 3;
}

void skip_case(const char *name, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "SKIP-CASE: %s: %s: %s\n", prog_name(), name, why);
}

int case_runs(const char *name, uint64_t features, unsigned int needs)
{
	uint64_t missing = features & ~kernel_features();
	unsigned int bit;

	if (missing) {
		bit = (unsigned int)__builtin_ctzll(missing);
		skip_case(name, "kernel lacks UFFD_FEATURE_%s (%s)",
			  uffd_feature_name(bit) ? uffd_feature_name(bit) :
			  "?", feature_since(bit));
		return 0;
	}
	if ((needs & NEED_PAGEMAP_SCAN) && !kernel_has_scan()) {
		skip_case(name, "kernel lacks PAGEMAP_SCAN (%s)", SCAN_SINCE);
		return 0;
	}
	return 1;
}

void add_test_if(TCase *tc, const TTest *t, uint64_t features,
		 unsigned int needs)
{
	if (case_runs(t->name, features, needs))
		tcase_add_test(tc, t);
}

void add_loop_test_if(TCase *tc, const TTest *t, int start, int end,
		      uint64_t features, unsigned int needs)
{
	if (case_runs(t->name, features, needs))
		tcase_add_loop_test(tc, t, start, end);
}

/* ---- Check plumbing ---------------------------------------------- */

struct uffd_ctx *ctx;

void ctx_setup_stopped(void)
{
	struct uffd_ctx_opts o = { .size = sizeof(o) };

	parse_hide();
	o.features_off = hidden_features;
	ck_assert_int_eq(uffd_ctx_create(&ctx, &o), 0);
}

void ctx_setup(void)
{
	ctx_setup_stopped();
	ck_assert_int_eq(uffd_ctx_start(ctx), 0);
}

void ctx_teardown(void)
{
	uffd_ctx_destroy(ctx);
	ctx = NULL;
}

TCase *add_tcase(Suite *s, const char *name, void (*setup)(void),
		 void (*teardown)(void))
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	if (setup || teardown)
		tcase_add_checked_fixture(tc, setup, teardown);
	suite_add_tcase(s, tc);
	return tc;
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/* ---- pagemap ------------------------------------------------------ */

int pagemap_entries(const void *addr, size_t n, uint64_t *out)
{
	off_t off = (off_t)((uintptr_t)addr / page_size() * sizeof(*out));
	size_t want = n * sizeof(*out), got = 0;
	ssize_t r;
	int fd, ret = 0;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A long read may come back in parts. */
	while (got < want) {
		r = pread(fd, (char *)out + got, want - got, off + (off_t)got);
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	return ret;
}

int pagemap_entry(const void *addr, uint64_t *entry)
{
	return pagemap_entries(addr, 1, entry);
}

int page_lookup(const void *addr, int *present, uint64_t *pfn)
{
	uint64_t e;
	int ret;

	ret = pagemap_entry(addr, &e);
	if (ret)
		return ret;
	*present = !!(e & PM_PRESENT);
	*pfn = *present ? e & PM_PFN_MASK : 0;
	return 0;
}

int kpageflags(uint64_t pfn, uint64_t *flags)
{
	ssize_t r;
	int fd;

	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = pread(fd, flags, sizeof(*flags), (off_t)(pfn * sizeof(*flags)));
	close(fd);
	if (r != (ssize_t)sizeof(*flags))
		return r < 0 ? -errno : -EIO;
	return 0;
}

#define KPF_ZERO	(1ULL << KPF_BIT_ZERO_PAGE)
#define KPF_HUGE_ZERO	(KPF_ZERO | (1ULL << KPF_BIT_THP))

/* A userfaultfd of our own, as the kernel's selftests open one. */
static int raw_uffd(void)
{
	int fd, dev;

	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

static char zp_error[160] = "zero page not probed yet";

/*
 * Map one page with a raw UFFDIO_ZEROPAGE and read its PFN; then ask the
 * kernel what that page is.  0, or the PFN with zp_error set.
 */
static uint64_t find_zero_page(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zp = { .mode = 0 };
	size_t ps = page_size();
	uint64_t pfn = 0, flags = 0;
	int fd, present = 0, ret;
	long n;
	void *p;

	fd = raw_uffd();
	if (fd < 0) {
		snprintf(zp_error, sizeof(zp_error), "userfaultfd: %s",
			 strerror(-fd));
		return 0;
	}
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(zp_error, sizeof(zp_error), "mmap: %s",
			 strerror(errno));
		close(fd);
		return 0;
	}
	reg.range.start = zp.range.start = (uintptr_t)p;
	reg.range.len = zp.range.len = ps;
	if (ioctl(fd, UFFDIO_API, &api) ||
	    ioctl(fd, UFFDIO_REGISTER, &reg) ||
	    ioctl(fd, UFFDIO_ZEROPAGE, &zp)) {
		snprintf(zp_error, sizeof(zp_error),
			 "raw UFFDIO_API/REGISTER/ZEROPAGE: %s",
			 strerror(errno));
		goto out;
	}
	ret = page_lookup(p, &present, &pfn);
	if (ret || !present) {
		snprintf(zp_error, sizeof(zp_error), "pagemap: %s",
			 ret ? strerror(-ret) : "UFFDIO_ZEROPAGE left no page");
		pfn = 0;
		goto out;
	}
	if (!pfn) {
		snprintf(zp_error, sizeof(zp_error),
			 "PFNs hidden in pagemap (need root)");
		goto out;
	}
	ret = kpageflags(pfn, &flags);
	if (ret) {
		snprintf(zp_error, sizeof(zp_error), "/proc/kpageflags: %s",
			 strerror(-ret));
		pfn = 0;
		goto out;
	}
	if ((flags & KPF_HUGE_ZERO) != KPF_ZERO) {
		snprintf(zp_error, sizeof(zp_error),
			 "no zero page: UFFDIO_ZEROPAGE mapped PFN %#llx, "
			 "kpageflags %#llx", (unsigned long long)pfn,
			 (unsigned long long)flags);
		pfn = 0;
		goto out;
	}
	if (kernel_has_scan()) {
		n = scan_pages(p, ps, H_PAGE_IS_PFNZERO);
		if (n != 1) {
			snprintf(zp_error, sizeof(zp_error),
				 "PAGEMAP_SCAN PAGE_IS_PFNZERO says %ld of "
				 "the UFFDIO_ZEROPAGE page", n);
			pfn = 0;
			goto out;
		}
	}
	zp_error[0] = '\0';
out:
	munmap(p, ps);
	close(fd);
	return pfn;
}

uint64_t zero_page_pfn(void)
{
	static uint64_t zpfn;

	if (!zpfn)
		zpfn = find_zero_page();
	return zpfn;
}

const char *zero_page_error(void)
{
	zero_page_pfn();
	return zp_error;
}

int is_zero_page(const void *addr)
{
	uintptr_t pg = (uintptr_t)addr & ~(uintptr_t)(page_size() - 1);
	uint64_t pfn, flags, zpfn = zero_page_pfn();
	int present, ret, by_pfn, by_flags;
	long n;

	if (!zpfn)
		return -ENODATA;
	ret = page_lookup((void *)pg, &present, &pfn);
	if (ret)
		return ret;
	if (!present)
		return 0;
	ret = kpageflags(pfn, &flags);
	if (ret)
		return ret;
	by_pfn = pfn == zpfn;
	by_flags = (flags & KPF_HUGE_ZERO) == KPF_ZERO;
	n = kernel_has_scan() ? scan_pages((void *)pg, page_size(),
					   H_PAGE_IS_PFNZERO) : by_pfn;
	if (n < 0)
		return (int)n;
	if (by_flags != by_pfn || n != by_pfn) {
		fprintf(stderr, "is_zero_page(%p): PFN %#llx %s the zero page "
			"%#llx, kpageflags %#llx, PAGEMAP_SCAN %ld\n", addr,
			(unsigned long long)pfn, by_pfn ? "is" : "is not",
			(unsigned long long)zpfn, (unsigned long long)flags, n);
		return -EPROTO;
	}
	return by_pfn;
}

/* Count pages of [addr, addr + len) in a PAGEMAP_SCAN category. */
static long scan_pages(const void *addr, size_t len, uint64_t category)
{
	struct h_page_region vec[64];
	struct h_pm_scan_arg arg;
	uint64_t start = (uintptr_t)addr, end = start + len;
	long total = 0;
	int fd, i, n;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (start < end) {
		memset(&arg, 0, sizeof(arg));
		arg.size = sizeof(arg);
		arg.start = start;
		arg.end = end;
		arg.vec = (uintptr_t)vec;
		arg.vec_len = ARRAY_SIZE(vec);
		arg.category_mask = category;
		arg.return_mask = category;
		n = ioctl(fd, H_PAGEMAP_SCAN, &arg);
		if (n < 0) {
			total = -errno;
			break;
		}
		for (i = 0; i < n; i++)
			total += (long)((vec[i].end - vec[i].start) /
					page_size());
		/* The walk stops early only when the vector is full. */
		if (arg.walk_end <= start)
			break;
		start = arg.walk_end;
	}
	close(fd);
	return total;
}

/*
 * Pages of [addr, addr + len) whose pagemap PFN /proc/kpageflags calls a
 * zero page.  The 4 KiB zero page is known by its PFN (which
 * zero_page_pfn() checked once); any other PFN is looked up, a run of
 * consecutive PFNs in one read.
 */
static long pagemap_zero_pages(const void *addr, size_t len)
{
	size_t n = len / page_size(), i, j, k;
	uint64_t *pm, flags[64], zpfn = zero_page_pfn(), pfn;
	long count = 0;
	ssize_t r;
	int fd, ret;

	if (!zpfn)
		return -ENODATA;
	pm = calloc(n ? n : 1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	ret = pagemap_entries(addr, n, pm);
	if (ret) {
		free(pm);
		return ret;
	}
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(pm);
		return -errno;
	}
	for (i = 0; i < n; i = j) {
		j = i + 1;
		if (!(pm[i] & PM_PRESENT))
			continue;
		pfn = pm[i] & PM_PFN_MASK;
		if (pfn == zpfn) {
			count++;
			continue;
		}
		while (j < n && j - i < ARRAY_SIZE(flags) &&
		       (pm[j] & PM_PRESENT) &&
		       (pm[j] & PM_PFN_MASK) == pfn + (j - i))
			j++;
		r = pread(fd, flags, (j - i) * sizeof(flags[0]),
			  (off_t)(pfn * sizeof(flags[0])));
		if (r != (ssize_t)((j - i) * sizeof(flags[0]))) {
			count = r < 0 ? -errno : -EIO;
			break;
		}
		for (k = 0; k < j - i; k++)
			count += (flags[k] & KPF_ZERO) != 0;
	}
	close(fd);
	free(pm);
	return count;
}

long pfnzero_pages(const void *addr, size_t len)
{
	long pm = pagemap_zero_pages(addr, len), sc;

	if (!kernel_has_scan())
		return pm;
	sc = scan_pages(addr, len, H_PAGE_IS_PFNZERO);
	/* PFNs hidden (not root): PAGEMAP_SCAN alone, as it needs none. */
	if (sc < 0 || pm == -ENODATA)
		return sc;
	if (pm < 0)
		return pm;
	if (sc != pm) {
		fprintf(stderr, "pfnzero_pages(%p, %zu): PAGEMAP_SCAN counts "
			"%ld, pagemap and kpageflags %ld\n", addr, len, sc, pm);
		return -EPROTO;
	}
	return pm;
}

long scan_present_pages(const void *addr, size_t len)
{
	long pm = present_pages(addr, len), sc;

	if (pm < 0 || !kernel_has_scan())
		return pm;
	sc = scan_pages(addr, len, H_PAGE_IS_PRESENT);
	if (sc < 0)
		return sc;
	if (sc != pm) {
		fprintf(stderr, "scan_present_pages(%p, %zu): PAGEMAP_SCAN "
			"counts %ld, pagemap %ld\n", addr, len, sc, pm);
		return -EPROTO;
	}
	return pm;
}

long kpagecount(uint64_t pfn)
{
	uint64_t n;
	ssize_t r;
	int fd;

	fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = pread(fd, &n, sizeof(n), (off_t)(pfn * sizeof(n)));
	close(fd);
	if (r != (ssize_t)sizeof(n))
		return r < 0 ? -errno : -EIO;
	return (long)n;
}

long present_pages(const void *addr, size_t len)
{
	size_t n = len / page_size(), i;
	uint64_t *pm = calloc(n ? n : 1, sizeof(*pm));
	long count = 0;
	int ret;

	if (!pm)
		return -ENOMEM;
	ret = pagemap_entries(addr, n, pm);
	for (i = 0; !ret && i < n; i++)
		count += (pm[i] & PM_PRESENT) != 0;
	free(pm);
	return ret ? ret : count;
}

/* ---- userfaultfd fdinfo ------------------------------------------- */

static FILE *fdinfo_open(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return fopen(path, "re");
}

long uffd_fdinfo_pending(int fd)
{
	FILE *f = fdinfo_open(fd);
	long pending = -ENOENT;
	char line[256];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "pending: %ld", &pending) == 1)
			break;
	}
	fclose(f);
	return pending;
}

int uffd_fdinfo_features(int fd, uint64_t *features)
{
	unsigned long long api, feat, ioctls;
	FILE *f = fdinfo_open(fd);
	int ret = -ENOENT;
	char line[256];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "API: %llx:%llx:%llx", &api, &feat,
			   &ioctls) == 3) {
			/* Bit 31: the kernel's internal "initialised" mark. */
			*features = feat & ~(1ULL << 31);
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

long wait_pending(int fd, long n, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	long p;

	for (;;) {
		p = uffd_fdinfo_pending(fd);
		if (p < 0 || p >= n)
			return p;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		sleep_us(200);
	}
}

/* ---- memory accounting -------------------------------------------- */

/*
 * Find the smaps block of the mapping holding @addr and hand each of its
 * lines to @fn until it returns non-zero.  Returns fn's value, or -ENOENT
 * when no mapping holds @addr.
 */
static int smaps_block(const void *addr,
		       int (*fn)(const char *line, void *arg), void *arg)
{
	uintptr_t a = (uintptr_t)addr;
	unsigned long start, end;
	char line[512];
	int in = 0, ret = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* Header lines are the only ones starting "hex-hex ". */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (in)
				break;
			in = a >= start && a < end;
			continue;
		}
		if (in) {
			ret = fn(line, arg);
			if (ret)
				break;
		}
	}
	fclose(f);
	/* Found the block but fn never said so: treat as "0 / absent". */
	if (in && ret == -ENOENT)
		ret = 0;
	return ret;
}

static int rss_line(const char *line, void *arg)
{
	long *kib = arg;

	if (sscanf(line, "Rss: %ld kB", kib) == 1)
		return 1;
	return 0;
}

long rss_kib(const void *addr)
{
	long kib = -1;
	int ret;

	ret = smaps_block(addr, rss_line, &kib);
	if (ret < 0)
		return ret;
	return kib < 0 ? -EIO : kib;
}

struct field_arg {
	const char	*field;
	long		kib;
};

static int field_line(const char *line, void *arg)
{
	struct field_arg *fa = arg;
	size_t n = strlen(fa->field);

	if (strncmp(line, fa->field, n) || line[n] != ':')
		return 0;
	return sscanf(line + n + 1, "%ld kB", &fa->kib) == 1 ? 1 : -EIO;
}

long smaps_kib(const void *addr, const char *field)
{
	struct field_arg fa = { .field = field, .kib = -1 };
	int ret;

	ret = smaps_block(addr, field_line, &fa);
	if (ret < 0)
		return ret;
	return fa.kib < 0 ? -ENOENT : fa.kib;
}

struct flag_arg {
	const char	*flag;
	int		found;
};

static int flags_line(const char *line, void *arg)
{
	struct flag_arg *fa = arg;
	const char *p;
	size_t n = strlen(fa->flag);

	if (strncmp(line, "VmFlags:", 8))
		return 0;
	for (p = line + 8; *p; p++) {
		if (p[-1] == ' ' && !strncmp(p, fa->flag, n) &&
		    (p[n] == ' ' || p[n] == '\n' || !p[n])) {
			fa->found = 1;
			break;
		}
	}
	return 1;
}

int vma_has_flag(const void *addr, const char *flag)
{
	struct flag_arg fa = { .flag = flag };
	int ret;

	ret = smaps_block(addr, flags_line, &fa);
	if (ret < 0)
		return ret;
	return fa.found;
}

long thread_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -errno;
	return ru.ru_minflt;
}

long thread_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -errno;
	return ru.ru_minflt + ru.ru_majflt;
}

long meminfo_value(const char *field)
{
	size_t n = strlen(field);
	char line[256];
	long val = -ENOENT;
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, n) && line[n] == ':') {
			val = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

int read_long_file(const char *path, long *val)
{
	int ret = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fscanf(f, "%ld", val) != 1)
		ret = -EIO;
	fclose(f);
	return ret;
}

int write_long_file(const char *path, long val)
{
	char buf[32];
	int fd, len, ret = 0;
	ssize_t n;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%ld\n", val);
	n = write(fd, buf, (size_t)len);
	if (n != len)
		ret = n < 0 ? -errno : -EIO;
	close(fd);
	return ret;
}

/* ---- the kernel's own behaviour ----------------------------------- */

#define THP_DIR	"/sys/kernel/mm/transparent_hugepage"
#define PROBE_PAGES	16

/* The bracketed word of a sysfs choice ("always [madvise] never"). */
static int sysfs_choice(const char *path, char *out, size_t len)
{
	char line[256], *a, *b;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	a = strchr(line, '[');
	b = a ? strchr(a, ']') : NULL;
	if (!b)
		return -EIO;
	snprintf(out, len, "%.*s", (int)(b - a - 1), a + 1);
	return 0;
}

/*
 * Read every page of a fresh 4 KiB-page mapping, as a program would, and
 * ask two oracles what the reads mapped: Rss (0 for the zero page, which
 * is nobody's memory) and, with PFNs, pagemap against the zero page.
 */
static int probe_read_maps_zero(void)
{
	size_t ps = page_size(), i, zero = 0;
	uint64_t pm[PROBE_PAGES], zpfn = zero_page_pfn();
	int by_rss, by_pfn = -1;
	long rss;
	char *p;

	p = mmap(NULL, PROBE_PAGES * ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	madvise(p, PROBE_PAGES * ps, MADV_NOHUGEPAGE);
	for (i = 0; i < PROBE_PAGES; i++)
		(void)peek(p + i * ps);
	rss = rss_kib(p);
	by_rss = rss == 0 ? 1 :
		 rss == (long)(PROBE_PAGES * ps / 1024) ? 0 : -1;
	if (zpfn && !pagemap_entries(p, PROBE_PAGES, pm)) {
		for (i = 0; i < PROBE_PAGES; i++)
			zero += (pm[i] & PM_PRESENT) &&
				(pm[i] & PM_PFN_MASK) == zpfn;
		by_pfn = zero == PROBE_PAGES ? 1 : zero == 0 ? 0 : -1;
	}
	munmap(p, PROBE_PAGES * ps);
	if (by_pfn >= 0 && by_pfn != by_rss) {
		fprintf(stderr, "native read probe: Rss %ld KiB, but %zu of %d "
			"pages map the zero page\n", rss, zero, PROBE_PAGES);
		return -1;
	}
	return by_rss;
}

/* Whether some anonymous THP size applies to memory nobody advised. */
static int probe_thp_unadvised(enum thp_mode top)
{
	char path[512], word[32];
	struct dirent *de;
	DIR *d;
	int any = 0;

	d = opendir(THP_DIR);
	if (!d)
		return 0;
	/* mTHP (6.8): a setting per size; the PMD size may "inherit". */
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "hugepages-", 10))
			continue;
		snprintf(path, sizeof(path), THP_DIR "/%s/enabled",
			 de->d_name);
		if (sysfs_choice(path, word, sizeof(word)))
			continue;
		if (!strcmp(word, "always") ||
		    (!strcmp(word, "inherit") && top == THP_ALWAYS))
			any = 1;
	}
	closedir(d);
	/* Before mTHP the top-level setting was the only one. */
	return any || top == THP_ALWAYS;
}

const struct native_facts *native_facts(void)
{
	static struct native_facts nf;
	static int probed;
	char word[32];
	long v;

	if (probed)
		return &nf;
	probed = 1;
	nf.read_maps_zero = probe_read_maps_zero();
	nf.thp_enabled = THP_ABSENT;
	if (!sysfs_choice(THP_DIR "/enabled", word, sizeof(word)))
		nf.thp_enabled = !strcmp(word, "always") ? THP_ALWAYS :
				 !strcmp(word, "madvise") ? THP_MADVISE :
				 THP_NEVER;
	nf.thp_use_zero_page = -1;
	if (!read_long_file(THP_DIR "/use_zero_page", &v))
		nf.thp_use_zero_page = (int)v;
	nf.thp_unadvised = nf.thp_enabled != THP_ABSENT &&
			   probe_thp_unadvised(nf.thp_enabled);
	nf.hugetlb_total = meminfo_value("HugePages_Total");
	nf.hugetlb_free = meminfo_value("HugePages_Free");
	return &nf;
}

void print_native_facts(FILE *f)
{
	static const char *const thp[] = { "never", "madvise", "always" };
	const struct native_facts *nf = native_facts();

	fprintf(f, "NATIVE: reads map the zero page: %s; THP %s, "
		"use_zero_page %d, unadvised memory %s; huge pages %ld "
		"(%ld free)\n",
		nf->read_maps_zero < 0 ? "unknown" :
		nf->read_maps_zero ? "yes" : "no",
		nf->thp_enabled == THP_ABSENT ? "absent" :
		thp[nf->thp_enabled], nf->thp_use_zero_page,
		nf->thp_unadvised ? "may be huge" : "4 KiB",
		nf->hugetlb_total, nf->hugetlb_free);
}

#if defined(__x86_64__)
struct rmw_arg {
	uint8_t	*page;
};

static void *rmw_touch(void *arg)
{
	struct rmw_arg *a = arg;

	__asm__ volatile("addb $1, %0" : "+m"(*a->page));
	return NULL;
}

int rmw_faults_as_write(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy copy = { .mode = 0 };
	struct uffd_msg msg;
	struct rmw_arg a;
	struct pollfd pfd;
	size_t ps = page_size();
	pthread_t t;
	int fd, ret;
	char *src;

	fd = raw_uffd();
	if (fd < 0)
		return fd;
	a.page = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a.page == MAP_FAILED) {
		ret = -errno;
		goto out_fd;
	}
	src = (char *)a.page + ps;
	memset(src, 0, ps);
	reg.range.start = copy.dst = (uintptr_t)a.page;
	reg.range.len = copy.len = ps;
	copy.src = (uintptr_t)src;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg)) {
		ret = -errno;
		goto out_map;
	}
	ret = -pthread_create(&t, NULL, rmw_touch, &a);
	if (ret)
		goto out_map;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, TEST_WAIT_MS) != 1 ||
	    read(fd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		ret = -EIO;
	else
		ret = !!(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
	/* let the toucher finish whatever we learnt */
	if (ioctl(fd, UFFDIO_COPY, &copy) && errno != EEXIST)
		ret = -errno;
	if (ret >= 0)
		ret = join_timeout(t, NULL, TEST_WAIT_MS) ? -ETIMEDOUT : ret;
	else
		pthread_detach(t);
out_map:
	munmap(a.page, 2 * ps);
out_fd:
	close(fd);
	return ret;
}
#else
int rmw_faults_as_write(void)
{
	return -ENOTSUP;
}
#endif

#define HUGE_2M	(2UL << 20)

int native_thp_read(struct thp_read *out)
{
	size_t ps = page_size(), off;
	uint64_t pfn, flags;
	int present, ret = 0;
	char *map, *p;

	map = mmap(NULL, 2 * HUGE_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return -errno;
	p = (char *)(((uintptr_t)map + HUGE_2M - 1) & ~(HUGE_2M - 1));
	if (madvise(p, HUGE_2M, MADV_HUGEPAGE)) {
		ret = -errno;
		goto out;
	}
	for (off = 0; off < HUGE_2M; off += ps)
		(void)peek(p + off);
	out->rss_kib = rss_kib(p);
	out->anon_huge_kib = smaps_kib(p, "AnonHugePages");
	if (out->rss_kib < 0 || out->anon_huge_kib < 0) {
		ret = out->rss_kib < 0 ? (int)out->rss_kib :
		      (int)out->anon_huge_kib;
		goto out;
	}
	out->huge_zero = -1;
	if (!page_lookup(p, &present, &pfn) && present && pfn &&
	    !kpageflags(pfn, &flags))
		out->huge_zero = (flags & KPF_HUGE_ZERO) == KPF_HUGE_ZERO;
out:
	munmap(map, 2 * HUGE_2M);
	return ret;
}

/* ---- process state ------------------------------------------------ */

/* Entries of a /proc directory such as /proc/self/task, or -errno. */
static int count_entries(const char *path)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int count_fds(void)
{
	int n = count_entries("/proc/self/fd");

	/* Do not count the descriptor opendir() itself holds. */
	return n < 0 ? n : n - 1;
}

#ifdef TEST_TSAN
static void *no_op_thread(void *arg)
{
	return arg;
}

/*
 * gcc 12's TSan starts a background thread in a forked child, and one
 * more at the child's first pthread_create (its flag is still clear);
 * after that, none.  Make that first thread ours, before anything counts.
 */
static void start_tsan_threads(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, no_op_thread, NULL) == 0)
		pthread_join(t, NULL);
}
#endif

int count_threads(void)
{
#ifdef TEST_TSAN
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, start_tsan_threads);
#endif
	return count_entries("/proc/self/task");
}

int wait_threads(int n, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int seen;

	for (;;) {
		seen = count_threads();
		if (seen < 0 || seen == n || now_ns() > deadline)
			return seen;
		sleep_us(1000);
	}
}

long mapped_pages(const void *addr, size_t len)
{
	unsigned char vec;
	size_t off;
	long n = 0;

	for (off = 0; off < len; off += page_size()) {
		/* mincore never faults pages in, and says ENOMEM for holes. */
		if (!mincore((char *)addr + off, page_size(), &vec))
			n++;
		else if (errno != ENOMEM)
			return -errno;
	}
	return n;
}

/*
 * AddressSanitizer maps and unmaps anonymous memory of its own at any
 * time; under it only file-backed lines (memfd, hugetlb) are compared.
 */
#if defined(__SANITIZE_ADDRESS__)
#define MAPS_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MAPS_ASAN	1
#endif
#endif

static int maps_line_wanted(const char *line)
{
	if (strstr(line, "[heap]"))
		return 0;
#ifdef MAPS_ASAN
	if (!strchr(line, '/'))
		return 0;
#endif
	return 1;
}

char *maps_snapshot(void)
{
	char line[1024], *buf = NULL, *tmp;
	size_t len = 0, n;
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return NULL;
	buf = calloc(1, 1);
	while (buf && fgets(line, sizeof(line), f)) {
		if (!maps_line_wanted(line))
			continue;
		n = strlen(line);
		tmp = realloc(buf, len + n + 1);
		if (!tmp) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = tmp;
		memcpy(buf + len, line, n + 1);
		len += n;
	}
	fclose(f);
	return buf;
}

int maps_equal(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* Whether the line starting at @line occurs as a whole line in @text. */
static int has_line(const char *text, const char *line, size_t n)
{
	const char *p = text;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t m = e ? (size_t)(e - p) : strlen(p);

		if (m == n && !memcmp(p, line, n))
			return 1;
		p += m + (e ? 1 : 0);
	}
	return 0;
}

/* Append the lines of @x missing from @y, each prefixed with @sign. */
static void diff_one(const char *x, const char *y, char sign, char *buf,
		     size_t len)
{
	const char *p = x;
	size_t used = strlen(buf);

	while (*p && used + 1 < len) {
		const char *e = strchr(p, '\n');
		size_t m = e ? (size_t)(e - p) : strlen(p);

		if (!has_line(y, p, m)) {
			used += (size_t)snprintf(buf + used, len - used,
						 "%c%.*s\n", sign, (int)m, p);
			if (used >= len)
				break;
		}
		p += m + (e ? 1 : 0);
	}
}

void maps_diff(const char *a, const char *b, char *buf, size_t len)
{
	if (!len)
		return;
	buf[0] = '\0';
	if (!a || !b) {
		snprintf(buf, len, "(no snapshot)");
		return;
	}
	diff_one(a, b, '-', buf, len);
	if (strlen(buf) + 1 < len)
		diff_one(b, a, '+', buf, len);
}

void expect_create_fails(const struct uffd_region_opts *o, int err)
{
	struct uffd_region *r = NULL;
	char *maps0 = maps_snapshot();
	int fds = count_fds();

	ck_assert_ptr_nonnull(maps0);
	clear_last_error();
	ck_assert_int_eq(uffd_region_create(ctx, o, &r), err);
	ck_assert_ptr_null(r);
	ck_assert_msg(*uffd_last_error(), "no reason given for %d", err);
	ck_assert_int_eq(count_fds(), fds);
	assert_maps_unchanged(maps0);
}

char thread_state(pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The name may hold spaces and parentheses: find the last ')'. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

#define MAX_RUNTIME_THREADS	8

static pid_t runtime_tids[MAX_RUNTIME_THREADS];
static int nr_runtime_tids;
static pid_t runtime_pid;	/* the process they were noted in */

void note_runtime_threads(void)
{
#ifdef TEST_TSAN
	pid_t self = gettid(), t;
	struct dirent *de;
	DIR *d;

	if (runtime_pid == getpid())
		return;
	nr_runtime_tids = 0;
	runtime_pid = getpid();
	(void)count_threads();	/* starts them */
	d = opendir("/proc/self/task");
	if (!d)
		return;
	while ((de = readdir(d))) {
		t = (pid_t)atoi(de->d_name);
		if (t > 0 && t != self &&
		    nr_runtime_tids < MAX_RUNTIME_THREADS)
			runtime_tids[nr_runtime_tids++] = t;
	}
	closedir(d);
#endif
}

bool runtime_thread(pid_t tid)
{
	int i;

	if (runtime_pid != getpid())
		return false;
	for (i = 0; i < nr_runtime_tids; i++)
		if (runtime_tids[i] == tid)
			return true;
	return false;
}

int other_threads(pid_t *tids, int max)
{
	pid_t self = gettid(), t;
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		t = (pid_t)atoi(de->d_name);
		if (t <= 0 || t == self || runtime_thread(t))
			continue;
		if (n < max)
			tids[n] = t;
		n++;
	}
	closedir(d);
	return n;
}

int thread_cpus(pid_t tid, char *out, size_t len)
{
	static const char key[] = "Cpus_allowed_list:";
	char path[64], line[256], *v;
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, sizeof(key) - 1))
			continue;
		v = line + sizeof(key) - 1;
		v += strspn(v, " \t");
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, len, "%s", v);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* ---- SIGBUS ------------------------------------------------------- */

/*
 * volatile: the compiler must not move these stores across the access
 * that faults, which it may do for plain stores around a volatile load.
 */
static __thread sigjmp_buf *volatile sigbus_jmp;
static __thread void *volatile sigbus_addr;
static __thread volatile int sigbus_code;
static pthread_once_t sigbus_once = PTHREAD_ONCE_INIT;

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *jb = sigbus_jmp;

	(void)sig;
	(void)uc;
	if (!jb) {
		/* Not ours: let the re-executed access kill us as usual. */
		signal(SIGBUS, SIG_DFL);
		return;
	}
	sigbus_addr = si->si_addr;
	sigbus_code = si->si_code;
	siglongjmp(*jb, 1);
}

static void install_catcher(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static void installed_already(void)
{
}

void sigbus_catcher_install(void)
{
	/* the first touch must not install it again over the library's */
	pthread_once(&sigbus_once, installed_already);
	install_catcher();
}

int direct_resume_possible(void)
{
#if defined(TEST_TSAN)
	return 0;	/* the library never resumes directly under TSan */
#elif defined(__x86_64__)
	unsigned int a, b, c, d;
	char sig[12];

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 31)))
		return 1;
	__cpuid(0x40000000, a, b, c, d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	return memcmp(sig, "TCGTCGTCGTCG", sizeof(sig)) != 0;
#else
	return 0;
#endif
}

int last_sigbus_code(void)
{
	return sigbus_code;
}

int touch_catch_sigbus(void *addr, int do_write, uint8_t *val,
		       void **fault_addr)
{
	sigjmp_buf jb;
	volatile int fired = 0;

	pthread_once(&sigbus_once, install_catcher);
	sigbus_addr = NULL;
	sigbus_code = 0;
	/* savemask: the handler runs with SIGBUS blocked; undo that. */
	if (sigsetjmp(jb, 1)) {
		fired = 1;
	} else {
		sigbus_jmp = &jb;
		atomic_signal_fence(memory_order_seq_cst);
		if (do_write)
			poke(addr, *val);
		else if (val)
			*val = peek(addr);
		else
			(void)peek(addr);
	}
	atomic_signal_fence(memory_order_seq_cst);
	sigbus_jmp = NULL;
	if (fault_addr)
		*fault_addr = sigbus_addr;
	return fired;
}

void clear_last_error(void)
{
	uffd_set_error("%s", "");
}

/* ---- time and waiting --------------------------------------------- */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void sleep_us(unsigned int us)
{
	struct timespec ts = {
		.tv_sec = us / 1000000,
		.tv_nsec = (long)(us % 1000000) * 1000,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int get_stats(const void *obj, int is_ctx, struct uffd_stats *st)
{
	if (is_ctx)
		return uffd_ctx_stats(obj, st, sizeof(*st));
	return uffd_region_stats(obj, st, sizeof(*st));
}

static int64_t wait_stat(const void *obj, int is_ctx, size_t off,
			 uint64_t want, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct uffd_stats st;
	uint64_t v;
	int ret;

	for (;;) {
		ret = get_stats(obj, is_ctx, &st);
		if (ret)
			return ret;
		memcpy(&v, (const char *)&st + off, sizeof(v));
		if (v >= want)
			return (int64_t)v;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		sleep_us(200);
	}
}

int64_t wait_region_stat(const struct uffd_region *r, size_t off,
			 uint64_t want, int timeout_ms)
{
	return wait_stat(r, 0, off, want, timeout_ms);
}

int64_t wait_ctx_stat(const struct uffd_ctx *c, size_t off,
		      uint64_t want, int timeout_ms)
{
	return wait_stat(c, 1, off, want, timeout_ms);
}

uint64_t hist_total(const struct uffd_stats *st)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		n += st->hist_us[i];
	return n;
}

static uint64_t faults_total(const struct uffd_stats *st)
{
	return st->faults_read + st->faults_write + st->faults_wp +
	       st->faults_minor;
}

static int wait_settled(const void *obj, int is_ctx, struct uffd_stats *st,
			int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int ret;

	for (;;) {
		ret = get_stats(obj, is_ctx, st);
		if (ret)
			return ret;
		if (hist_total(st) == faults_total(st))
			return 0;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		sleep_us(100);
	}
}

int settled_region_stats(const struct uffd_region *r, struct uffd_stats *st,
			 int timeout_ms)
{
	return wait_settled(r, 0, st, timeout_ms);
}

int settled_ctx_stats(const struct uffd_ctx *c, struct uffd_stats *st,
		      int timeout_ms)
{
	return wait_settled(c, 1, st, timeout_ms);
}

struct uffd_stats settled_stats(const struct uffd_region *r)
{
	struct uffd_stats st = { 0 };
	int ret = settled_region_stats(r, &st, TEST_WAIT_MS);

	ck_assert_msg(ret == 0, "statistics never settled (%d): %llu faults, "
		      "%llu served", ret, (unsigned long long)faults_total(&st),
		      (unsigned long long)hist_total(&st));
	return st;
}

/* ---- running the demos -------------------------------------------- */

static char *slurp_fd(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf;

	ck_assert_int_ge(len, 0);
	buf = calloc(1, (size_t)len + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
	return buf;
}

/* The last @n bytes of @s (all of it when shorter). */
static const char *tail_of(const char *s, size_t n)
{
	size_t len = s ? strlen(s) : 0;

	return !s ? "" : len > n ? s + len - n : s;
}

void run_program(struct result *res, const char *path,
		 const char *const *args, int timeout_s, int sigint_after_ms,
		 int (*child_setup)(void *), void *arg)
{
	const char *argv[64];
	struct timespec tick = { 0, 10000000 };
	int ofd, efd, status, i, waited_ms = 0;
	bool sent = false;
	pid_t pid;

	argv[0] = path;
	for (i = 0; args[i] && i < 62; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	ofd = memfd_create("out", MFD_CLOEXEC);
	efd = memfd_create("err", MFD_CLOEXEC);
	ck_assert_int_ge(ofd, 0);
	ck_assert_int_ge(efd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		/* its own group: a timeout kills what it started, too */
		setpgid(0, 0);
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		if (child_setup && child_setup(arg))
			_exit(126);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		ck_assert_int_eq(r, 0);
		if (sigint_after_ms > 0 && !sent &&
		    waited_ms >= sigint_after_ms) {
			kill(pid, SIGINT);
			sent = true;
		}
		if (waited_ms >= timeout_s * 1000) {
			char *out, *err;

			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			out = slurp_fd(ofd);
			err = slurp_fd(efd);
			ck_abort_msg("%s %s did not finish in %d s; the end of "
				     "its stdout:\n%s\nstderr:\n%s", path,
				     args[0] ? args[0] : "", timeout_s,
				     tail_of(out, 1500), tail_of(err, 1500));
		}
		nanosleep(&tick, NULL);
		waited_ms += 10;
	}
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) :
		      128 + WTERMSIG(status);
	res->out = slurp_fd(ofd);
	res->err = slurp_fd(efd);
	close(ofd);
	close(efd);
}

void result_free(struct result *res)
{
	free(res->out);
	free(res->err);
}

int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- threads ------------------------------------------------------ */

int join_timeout(pthread_t t, void **ret, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return -pthread_timedjoin_np(t, ret, &ts);
}

/* ---- sample regions ------------------------------------------------ */

int make_region(struct uffd_ctx *c, enum uffd_mem_type type, size_t npages,
		const char *pager, struct uffd_region **out)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = type,
		.len = npages * page_size(),
		.pager = pager ? pager : "zero",
	};

	return uffd_region_create(c, &o, out);
}

struct uffd_region *new_region(enum uffd_mem_type type, const char *pager,
			       size_t npages, void *addr)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = type,
		.addr = addr,
		.len = npages * page_size(),
		.pager = pager ? pager : "zero",
	};
	struct uffd_region *r = NULL;
	int ret = uffd_region_create(ctx, &o, &r);

	ck_assert_msg(ret == 0, "create %s: %d (%s)", o.pager, ret,
		      uffd_last_error());
	return r;
}

void *map_anon(size_t npages)
{
	void *p = mmap(NULL, npages * page_size(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* ---- test pagers --------------------------------------------------- */

int init_region_state(struct uffd_region *region,
		      const struct uffd_args *args, void **state)
{
	(void)args;
	*state = region;
	return 0;
}

int fault_like_zero(void *state, struct uffd_resolver *res,
		    const struct uffd_fault *f)
{
	size_t len = uffd_region_page_size(uffd_resolver_region(res));
	long ret;

	(void)state;
	if (f->flags & LIBUFFD_FAULT_WRITE)
		ret = uffd_resolve_zerofill(res, f->offset, len);
	else
		ret = uffd_resolve_zeropage(res, f->offset, len);
	return ret < 0 ? (int)ret : 0;
}

bool find_above_exe(const char *rel, char *path, size_t len)
{
	char exe[PATH_MAX - 32], *slash;
	ssize_t n;
	int up;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	for (up = 0; up < 4; up++) {
		slash = strrchr(exe, '/');
		if (!slash)
			return false;
		*slash = '\0';
		snprintf(path, len, "%s/%s", exe, rel);
		if (!access(path, X_OK))
			return true;
	}
	return false;
}
