/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: kernel oracles, bounded waits, test pagers and the Check
 * plumbing the tests share.  See helpers.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>

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

size_t page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

void require_kernel(uint64_t features, int need_scan)
{
	struct uffd_probe p = { .size = sizeof(p) };
	uintptr_t stack_page = (uintptr_t)&p & ~(uintptr_t)(page_size() - 1);
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
	missing = features & ~p.features;
	if (missing) {
		bit = (unsigned int)__builtin_ctzll(missing);
		fprintf(stderr, "SKIP: kernel lacks UFFD_FEATURE_%s\n",
			uffd_feature_name(bit) ? uffd_feature_name(bit) : "?");
		exit(TEST_EXIT_SKIP);
	}
	if (need_scan &&
	    pfnzero_pages((void *)stack_page, page_size()) == -ENOTTY) {
		fprintf(stderr, "SKIP: kernel lacks PAGEMAP_SCAN (6.7)\n");
		exit(TEST_EXIT_SKIP);
	}
}

void require_pfns(void)
{
	if (!zero_page_pfn()) {
		fprintf(stderr, "ERROR: PFNs hidden in pagemap (need root)\n");
		exit(TEST_EXIT_HARD_ERROR);
	}
}

/* ---- Check plumbing ---------------------------------------------- */

struct uffd_ctx *ctx;

void ctx_setup_stopped(void)
{
	ck_assert_int_eq(uffd_ctx_create(&ctx, NULL), 0);
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

uint64_t zero_page_pfn(void)
{
	static uint64_t zpfn;
	uint64_t pfn = 0;
	int present = 0;
	void *p;

	if (zpfn)
		return zpfn;
	/* One page cannot be a THP, so a read maps the 4 KiB zero page. */
	p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void)peek(p);
	if (page_lookup(p, &present, &pfn) || !present)
		pfn = 0;
	munmap(p, page_size());
	zpfn = pfn;
	return pfn;
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

long pfnzero_pages(const void *addr, size_t len)
{
	return scan_pages(addr, len, H_PAGE_IS_PFNZERO);
}

long scan_present_pages(const void *addr, size_t len)
{
	return scan_pages(addr, len, H_PAGE_IS_PRESENT);
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
	size_t off;
	long n = 0;
	uint64_t pfn;
	int present, ret;

	for (off = 0; off < len; off += page_size()) {
		ret = page_lookup((const char *)addr + off, &present, &pfn);
		if (ret)
			return ret;
		n += present;
	}
	return n;
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

int count_threads(void)
{
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
		if (t <= 0 || t == self)
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
	siglongjmp(*jb, 1);
}

static void sigbus_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

int touch_catch_sigbus(void *addr, int do_write, uint8_t *val,
		       void **fault_addr)
{
	sigjmp_buf jb;
	volatile int fired = 0;

	pthread_once(&sigbus_once, sigbus_install);
	sigbus_addr = NULL;
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
