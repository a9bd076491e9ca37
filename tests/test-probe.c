/* SPDX-License-Identifier: MIT */
/*
 * uffd_probe() and the opening of a userfaultfd: what the library reports
 * must be what the kernel says, checked against our own raw handshake and
 * registrations, the kernel's fdinfo of the context's descriptor, smaps,
 * pagemap and PAGEMAP_SCAN, sysfs, /proc/meminfo and uname.  The machine
 * facts are checked for agreement with those oracles, whatever this
 * machine's answer is (a kernel booted with pvm_no_zero_page=1 maps no
 * zero page on a native read; that must be reported, not assumed).
 * Then uffd_probe_format() and the uffd-probe command, run as a child.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>

#include <check.h>

#include "helpers.h"

/* The features a default context turns on when the kernel has them. */
#define DEFAULT_FEATURES (LIBUFFD_FEATURE_EVENT_REMOVE |		\
			  LIBUFFD_FEATURE_EVENT_UNMAP |			\
			  LIBUFFD_FEATURE_MISSING_SHMEM |		\
			  LIBUFFD_FEATURE_MISSING_HUGETLBFS |		\
			  LIBUFFD_FEATURE_THREAD_ID |			\
			  LIBUFFD_FEATURE_EXACT_ADDRESS |		\
			  LIBUFFD_FEATURE_POISON |			\
			  LIBUFFD_FEATURE_MOVE)

/*
 * Our own handshake on a fresh descriptor, the way the kernel documents
 * it: requesting no features makes the kernel list all it supports.
 */
static int raw_api(uint64_t *features, uint64_t *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int dev, fd = -1, ret;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		ret = -errno;
		goto out;
	}
	*features = api.features;
	*ioctls = api.ioctls;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	close(dev);
	return ret;
}

/* A region on @c serves a read (zeros) and a write (read back). */
static void check_ctx_serves(struct uffd_ctx *c)
{
	struct uffd_region *r;
	struct uffd_stats st;
	uint8_t *p;

	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 4, NULL, &r), 0);
	p = uffd_region_addr(r);
	ck_assert_uint_eq(peek(p), 0);
	poke(p + page_size(), 0x5a);
	ck_assert_uint_eq(peek(p + page_size()), 0x5a);
	/* The faults went through the handler, not the kernel's own path. */
	ck_assert_int_ge(wait_region_stat(r, STAT_OFF(faults_write), 1,
					  TEST_WAIT_MS), 1);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.faults_write, 1);
	uffd_region_destroy(r);
}

/* The context's descriptor is a userfaultfd opened the documented way. */
static void check_ctx_fd(struct uffd_ctx *c)
{
	char path[64], link[64];
	uint64_t feat;
	ssize_t n;
	int fd = uffd_ctx_fd(c);

	ck_assert_int_ge(fd, 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	ck_assert_int_gt(n, 0);
	link[n] = '\0';
	ck_assert_str_eq(link, "anon_inode:[userfaultfd]");
	/* poll() on a blocking userfaultfd reports POLLERR. */
	ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* What the library says it enabled is what the kernel enabled. */
	ck_assert_int_eq(uffd_fdinfo_features(fd, &feat), 0);
	ck_assert_uint_eq(feat, uffd_ctx_features(c));
}

START_TEST(probe_matches_kernel)
{
	struct uffd_probe p;
	uint64_t feat = 0, ioctls = 0;

	ck_assert_int_eq(raw_api(&feat, &ioctls), 0);
	memset(&p, 0xa5, sizeof(p));
	p.size = sizeof(p);
	ck_assert_int_eq(uffd_probe(&p), 0);
	ck_assert_uint_eq(p.size, sizeof(p));
	ck_assert_uint_eq(p.features, feat);
	ck_assert_uint_eq(p.ioctls, ioctls);
	ck_assert_int_eq(p.open_method, LIBUFFD_OPEN_DEV);
}
END_TEST

START_TEST(probe_ioctl_bits)
{
	struct uffd_probe p = { .size = sizeof(p) };

	ck_assert_int_eq(uffd_probe(&p), 0);
	/* UFFDIO_API answers with the ioctls usable before REGISTER. */
	ck_assert(p.ioctls & (1ULL << _UFFDIO_API));
	ck_assert(p.ioctls & (1ULL << _UFFDIO_REGISTER));
	ck_assert(p.ioctls & (1ULL << _UFFDIO_UNREGISTER));
	/* Fill ioctls come from REGISTER, not from the API handshake. */
	ck_assert(!(p.ioctls & (1ULL << _UFFDIO_COPY)));
}
END_TEST

START_TEST(probe_does_not_leak)
{
	struct uffd_probe p = { .size = sizeof(p) };
	int before = count_fds();

	ck_assert_int_ge(before, 0);
	ck_assert_int_eq(uffd_probe(&p), 0);
	ck_assert_int_eq(uffd_probe(&p), 0);
	/* The throwaway descriptor (and /dev/userfaultfd) must be closed. */
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(probe_bad_args)
{
	struct uffd_probe p;

	ck_assert_int_eq(uffd_probe(NULL), -EINVAL);
	/* A zero size is no struct at all: refused, nothing written. */
	memset(&p, 0xa5, sizeof(p));
	p.size = 0;
	clear_last_error();
	ck_assert_int_eq(uffd_probe(&p), -EINVAL);
	ck_assert_uint_eq(p.features, 0xa5a5a5a5a5a5a5a5ULL);
	ck_assert_uint_eq(p.ioctls, 0xa5a5a5a5a5a5a5a5ULL);
	ck_assert(*uffd_last_error());
}
END_TEST

START_TEST(feature_names)
{
	unsigned int i, j;

	ck_assert_str_eq(uffd_feature_name(16), "MOVE");
	ck_assert_str_eq(uffd_feature_name(7), "SIGBUS");
	/* Every bit the header defines has a name, and no two share one. */
	for (i = 0; i <= 16; i++) {
		ck_assert_ptr_nonnull(uffd_feature_name(i));
		ck_assert_int_gt(strlen(uffd_feature_name(i)), 0);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(uffd_feature_name(i),
					 uffd_feature_name(j));
	}
	ck_assert_ptr_null(uffd_feature_name(17));
	ck_assert_ptr_null(uffd_feature_name(31));
	ck_assert_ptr_null(uffd_feature_name(63));
	ck_assert_ptr_null(uffd_feature_name(64));
	ck_assert_ptr_null(uffd_feature_name(~0u));
}
END_TEST

START_TEST(ctx_default_features)
{
	struct uffd_probe p = { .size = sizeof(p) };
	struct uffd_ctx *c = NULL;
	uint64_t f;

	ck_assert_int_eq(uffd_probe(&p), 0);
	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	f = uffd_ctx_features(c);
	ck_assert_uint_eq(f & DEFAULT_FEATURES, p.features & DEFAULT_FEATURES);
	ck_assert_uint_eq(f & ~p.features, 0);
	check_ctx_fd(c);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(ctx_required_features)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		/* Off by default; harmless to a process that never forks. */
		.features = LIBUFFD_FEATURE_EVENT_FORK,
		.handler_cpu = -1,
	};
	struct uffd_ctx *c = NULL;
	int fds = count_fds();

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	ck_assert(uffd_ctx_features(c) & LIBUFFD_FEATURE_EVENT_FORK);
	check_ctx_fd(c);
	uffd_ctx_destroy(c);
	ck_assert_int_eq(count_fds(), fds);

	/* A bit no kernel offers: refused, and nothing left open. */
	c = NULL;
	o.features = 1ULL << 40;
	clear_last_error();
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EOPNOTSUPP);
	ck_assert_ptr_null(c);
	ck_assert(*uffd_last_error());
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(ctx_bad_args)
{
	struct uffd_ctx_opts o = { .size = sizeof(o), .handler_cpu = -1 };
	struct uffd_ctx *c = NULL;
	int fds = count_fds();

	ck_assert_int_eq(uffd_ctx_create(NULL, NULL), -EINVAL);
	o.size = 0;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	ck_assert_ptr_null(c);
	o.size = sizeof(o);
	o.flags = 1u << 31;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(ctx_opts_prefix)
{
	struct uffd_ctx_opts o;
	struct uffd_ctx *c = NULL;

	/*
	 * A caller built before handler_cpu existed: what lies beyond its
	 * size is not its to set, and must read as the default (-1).
	 */
	memset(&o, 0, sizeof(o));
	o.size = offsetof(struct uffd_ctx_opts, handler_cpu);
	o.handler_cpu = 12345;
	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	check_ctx_serves(c);
	uffd_ctx_destroy(c);
}
END_TEST

START_TEST(ctx_no_dev_works)
{
	struct uffd_ctx_opts o = {
		.size = sizeof(o),
		.flags = LIBUFFD_CTX_NO_DEV,
		.handler_cpu = -1,
	};
	struct uffd_ctx *c = NULL;

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	check_ctx_fd(c);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	check_ctx_serves(c);
	uffd_ctx_destroy(c);
}
END_TEST

/*
 * Seccomp lets us tell the two ways of opening apart: refuse one of them
 * with EPERM (what a locked-down system does) and see which calls still
 * work.  Each case runs in its own child so the filter never outlives it,
 * whatever CK_FORK says; the child reports the step that failed.
 */
#if defined(__x86_64__)
#define FILTER_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FILTER_ARCH	AUDIT_ARCH_AARCH64
#endif

#ifdef FILTER_ARCH
#define BLOCK_SYSCALL	1	/* userfaultfd(2) */
#define BLOCK_DEV	2	/* ioctl(USERFAULTFD_IOC_NEW) */
#define BLOCK_URING	4	/* io_uring_setup(2) */

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup	425
#endif

static int install_filter(int what)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, (what & BLOCK_SYSCALL) ?
			 SECCOMP_RET_ERRNO | EPERM : SECCOMP_RET_ALLOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, (what & BLOCK_URING) ?
			 SECCOMP_RET_ERRNO | EPERM : SECCOMP_RET_ALLOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, USERFAULTFD_IOC_NEW, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, (what & BLOCK_DEV) ?
			 SECCOMP_RET_ERRNO | EPERM : SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = ARRAY_SIZE(f),
		.filter = f,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return -errno;
	return 0;
}

/* Runs in the child: 0 when every expectation held, else the step. */
static int blocked_child(int what)
{
	struct uffd_ctx_opts nodev = {
		.size = sizeof(nodev),
		.flags = LIBUFFD_CTX_NO_DEV,
		.handler_cpu = -1,
	};
	struct uffd_probe p = { .size = sizeof(p) };
	struct uffd_ctx *c = NULL;
	struct uffd_region *r = NULL;
	int ret, want_probe;

	if (install_filter(what))
		return 100;

	want_probe = what == (BLOCK_SYSCALL | BLOCK_DEV) ? -EPERM : 0;
	ret = uffd_probe(&p);
	if (ret != want_probe)
		return 1;
	if (!ret && p.open_method != ((what & BLOCK_DEV) ?
				      LIBUFFD_OPEN_SYSCALL : LIBUFFD_OPEN_DEV))
		return 2;
	/* each way is reported on its own, whichever the library took */
	if (p.dev_errno != ((what & BLOCK_DEV) ? EPERM : 0) ||
	    p.syscall_errno != ((what & BLOCK_SYSCALL) ? EPERM : 0))
		return 8;
	if (ret && (p.open_errno != EPERM || p.open_method || p.features ||
		    p.ioctls || p.reg_ioctls[LIBUFFD_MEM_ANON]))
		return 9;
	if (!ret && (p.open_errno || !(p.reg_ioctls[LIBUFFD_MEM_ANON] &
				       LIBUFFD_IOCTL_COPY)))
		return 10;
	/* without a userfaultfd, the machine facts are still gathered */
	if (!*p.kernel_release || p.native_zero_page < 0)
		return 11;

	/* NO_DEV must use the syscall and nothing else. */
	ret = uffd_ctx_create(&c, &nodev);
	if (ret != ((what & BLOCK_SYSCALL) ? -EPERM : 0))
		return 3;
	uffd_ctx_destroy(c);
	c = NULL;

	/* The default falls back to whichever way is open. */
	ret = uffd_ctx_create(&c, NULL);
	if (ret != want_probe)
		return 4;
	if (ret)
		return 0;
	if (uffd_ctx_start(c))
		return 5;
	if (make_region(c, LIBUFFD_MEM_ANON, 2, NULL, &r))
		return 6;
	poke((uint8_t *)uffd_region_addr(r) + page_size(), 7);
	if (peek(uffd_region_addr(r)) != 0 ||
	    peek((uint8_t *)uffd_region_addr(r) + page_size()) != 7)
		return 7;
	uffd_ctx_destroy(c);
	return 0;
}

/*
 * The open-method and command cases block system calls with a seccomp
 * filter: a kernel built without CONFIG_SECCOMP_FILTER cannot run them.
 */
static int seccomp_filters(void)
{
	static int avail = -1;
	uint32_t action = SECCOMP_RET_ERRNO;

	if (avail < 0) {
		avail = syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0,
				&action) == 0;
		if (!avail)
			skip_case("open-method, cmd_unusable, cmd_uring_refused",
				  "kernel lacks seccomp filters "
				  "(CONFIG_SECCOMP_FILTER)");
	}
	return avail;
}

static void run_blocked(int what)
{
	int status = 0;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid)
		_exit(blocked_child(what));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "child died, status %#x", status);
	ck_assert_msg(WEXITSTATUS(status) != 100, "cannot install seccomp");
	ck_assert_msg(WEXITSTATUS(status) == 0,
		      "blocked=%d: step %d failed", what, WEXITSTATUS(status));
}

START_TEST(open_syscall_blocked)
{
	run_blocked(BLOCK_SYSCALL);
}
END_TEST

START_TEST(open_dev_blocked)
{
	run_blocked(BLOCK_DEV);
}
END_TEST

START_TEST(open_both_blocked)
{
	run_blocked(BLOCK_SYSCALL | BLOCK_DEV);
}
END_TEST
#endif /* FILTER_ARCH */

START_TEST(second_api_refused)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffd_ctx *c = NULL;
	uint64_t before, after;

	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	ck_assert_int_eq(uffd_fdinfo_features(uffd_ctx_fd(c), &before), 0);
	/* The library did its handshake; the kernel takes only one. */
	errno = 0;
	ck_assert_int_eq(ioctl(uffd_ctx_fd(c), UFFDIO_API, &api), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(uffd_fdinfo_features(uffd_ctx_fd(c), &after), 0);
	ck_assert_uint_eq(after, before);
	ck_assert_int_eq(uffd_ctx_start(c), 0);
	check_ctx_serves(c);
	uffd_ctx_destroy(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The machine facts, each against an oracle of its own               */
/* ------------------------------------------------------------------ */

#define ORACLE_PAGES	16
#define RETRIES		100

static void full_probe(struct uffd_probe *p)
{
	memset(p, 0, sizeof(*p));
	p->size = sizeof(*p);
	ck_assert_int_eq(uffd_probe(p), 0);
}

/*
 * @n fresh private anonymous pages, read natively, in a VMA of their own
 * (PROT_NONE guards on both sides) so that smaps' Rss is theirs alone.
 * Returns the first page; *guard and *len for munmap.
 */
static char *read_fresh_pages(size_t n, char **guard, size_t *len)
{
	size_t ps = page_size(), i;
	char *g;

	*len = (n + 2) * ps;
	g = mmap(NULL, *len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(g, MAP_FAILED);
	ck_assert_int_eq(mprotect(g + ps, n * ps, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(madvise(g + ps, n * ps, MADV_NOHUGEPAGE), 0);
	for (i = 0; i < n; i++)
		(void)peek(g + (i + 1) * ps);
	*guard = g;
	return g + ps;
}

/* Whatever this kernel does on a native read, the probe says the same. */
START_TEST(facts_zero_page_vs_rss)
{
	struct uffd_probe p;
	size_t len;
	char *g, *pages = read_fresh_pages(ORACLE_PAGES, &g, &len);
	long rss = rss_kib(pages), scan;
	long full = (long)(ORACLE_PAGES * page_size() / 1024);

	full_probe(&p);
	/* the kernel either maps the zero page (no Rss) or allocates */
	ck_assert_msg(rss == 0 || rss == full, "Rss %ld KiB of %ld", rss,
		      full);
	ck_assert_int_eq(p.native_zero_page, rss == 0 ? 1 : 0);
	/* a second oracle where the kernel has it (6.7): PAGE_IS_PFNZERO */
	scan = pfnzero_pages(pages, ORACLE_PAGES * page_size());
	if (scan != -ENOTTY) {
		ck_assert_int_ge(scan, 0);
		ck_assert_int_eq(scan, p.native_zero_page ? ORACLE_PAGES : 0);
	}
	munmap(g, len);
}
END_TEST

/* A raw userfaultfd, handshaken with @features; the test fails if not. */
static int raw_uffd(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int dev, fd;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(dev, 0);
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ioctl(fd, UFFDIO_API, &api), 0);
	return fd;
}

/* The PFN a raw UFFDIO_ZEROPAGE maps: the real zero page. */
static uint64_t uffdio_zeropage_pfn(void)
{
	size_t ps = page_size();
	int fd = raw_uffd(0), present = 0;
	uint64_t pfn = 0;
	char *m;
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zp = { .mode = 0 };

	m = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	reg.range.start = (uintptr_t)m;
	reg.range.len = ps;
	ck_assert_int_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0);
	zp.range = reg.range;
	ck_assert_int_eq(ioctl(fd, UFFDIO_ZEROPAGE, &zp), 0);
	ck_assert_int_eq(zp.zeropage, (int64_t)ps);
	ck_assert_int_eq(page_lookup(m, &present, &pfn), 0);
	ck_assert_int_eq(present, 1);
	munmap(m, ps);
	close(fd);
	return pfn;
}

/*
 * As root, pagemap shows PFNs: a native read maps the zero page exactly
 * when it lands on the PFN UFFDIO_ZEROPAGE maps.
 */
START_TEST(facts_zero_page_vs_pfn)
{
	struct uffd_probe p;
	uint64_t zpfn, pfn[ORACLE_PAGES];
	size_t len, i, same = 0;
	char *g, *pages;

	if (getuid() != 0) {
		fprintf(stderr, "facts_zero_page_vs_pfn: PFNs need root; "
			"the Rss and PAGEMAP_SCAN oracles stand alone\n");
		return;
	}
	zpfn = uffdio_zeropage_pfn();
	ck_assert_uint_ne(zpfn, 0);
	pages = read_fresh_pages(ORACLE_PAGES, &g, &len);
	for (i = 0; i < ORACLE_PAGES; i++) {
		int present = 0;

		ck_assert_int_eq(page_lookup(pages + i * page_size(),
					     &present, &pfn[i]), 0);
		ck_assert_int_eq(present, 1);
		same += pfn[i] == zpfn;
	}
	munmap(g, len);
	full_probe(&p);
	ck_assert_msg(same == 0 || same == ORACLE_PAGES,
		      "%zu of %d native reads on the zero page", same,
		      ORACLE_PAGES);
	ck_assert_int_eq(p.native_zero_page, same ? 1 : 0);
}
END_TEST

#define THP_DIR	"/sys/kernel/mm/transparent_hugepage/"

/* "always [madvise] never" read here, independently of the library */
static int sysfs_thp_enabled(void)
{
	char line[256] = "";
	FILE *f = fopen(THP_DIR "enabled", "re");

	if (!f)
		return -1;
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	fclose(f);
	if (strstr(line, "[always]"))
		return LIBUFFD_THP_ALWAYS;
	if (strstr(line, "[madvise]"))
		return LIBUFFD_THP_MADVISE;
	if (strstr(line, "[never]"))
		return LIBUFFD_THP_NEVER;
	ck_abort_msg("unexpected THP mode line: %s", line);
	return -2;
}

static long sysfs_thp_zero_page(void)
{
	long v = -1;

	if (read_long_file(THP_DIR "use_zero_page", &v))
		return -1;
	return v;
}

/*
 * Other tests change some of these settings for a run while this one
 * runs: compare only when the oracle read the same before and after.
 */
START_TEST(facts_thp_vs_sysfs)
{
	struct uffd_probe p;
	int mode = -2, mode2 = -3, tries;
	long zp = -2, zp2 = -3;

	for (tries = 0; tries < RETRIES; tries++) {
		mode = sysfs_thp_enabled();
		zp = sysfs_thp_zero_page();
		full_probe(&p);
		mode2 = sysfs_thp_enabled();
		zp2 = sysfs_thp_zero_page();
		if (mode == mode2 && zp == zp2)
			break;
		sleep_us(10000);
	}
	ck_assert_msg(mode == mode2 && zp == zp2, "THP settings kept moving");
	ck_assert_int_eq(p.thp_enabled, mode);
	ck_assert_int_eq(p.thp_zero_page, zp);
}
END_TEST

struct hp {
	long	total, free, rsvd, size_kib;
};

static struct hp meminfo_hp(void)
{
	struct hp h = {
		.total = meminfo_value("HugePages_Total"),
		.free = meminfo_value("HugePages_Free"),
		.rsvd = meminfo_value("HugePages_Rsvd"),
		.size_kib = meminfo_value("Hugepagesize"),
	};

	return h;
}

START_TEST(facts_huge_pages_vs_meminfo)
{
	struct uffd_probe p;
	struct hp a, b;
	int tries;

	memset(&a, 0, sizeof(a));
	memset(&b, 0xff, sizeof(b));
	for (tries = 0; tries < RETRIES; tries++) {
		a = meminfo_hp();
		full_probe(&p);
		b = meminfo_hp();
		if (!memcmp(&a, &b, sizeof(a)))
			break;
		sleep_us(10000);
	}
	ck_assert_msg(!memcmp(&a, &b, sizeof(a)), "huge pages kept moving");
	if (a.size_kib < 0) {
		/* no hugetlb in this kernel */
		ck_assert_uint_eq(p.huge_page_size, 0);
		ck_assert_int_eq(p.huge_pages_total, -1);
		return;
	}
	ck_assert_uint_eq(p.huge_page_size, (uint64_t)a.size_kib << 10);
	ck_assert_int_eq(p.huge_pages_total, a.total);
	ck_assert_int_eq(p.huge_pages_free, a.free);
	ck_assert_int_eq(p.huge_pages_rsvd, a.rsvd);
}
END_TEST

START_TEST(facts_sysctl_and_release)
{
	struct uffd_probe p;
	struct utsname u;
	long v = -1;

	full_probe(&p);
	ck_assert_int_eq(uname(&u), 0);
	ck_assert_str_eq(p.kernel_release, u.release);
	if (read_long_file("/proc/sys/vm/unprivileged_userfaultfd", &v))
		v = -1;
	ck_assert_int_eq(p.unprivileged_userfaultfd, v);
	ck_assert_int_eq(p.open_errno, 0);
	ck_assert_int_eq(p.dev_errno, 0);
	/* as root the syscall is allowed whatever the sysctl says */
	if (getuid() == 0)
		ck_assert_int_eq(p.syscall_errno, 0);
}
END_TEST

/*
 * What UFFDIO_REGISTER replies for a range of @type, registered here with
 * the modes the header documents; 0 when it cannot be registered.
 */
static uint64_t raw_register_ioctls(int type, uint64_t feat,
				    uint64_t hps)
{
	struct uffdio_register reg = { 0 };
	size_t len = page_size();
	int fd, mfd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING, out = 0;
	void *m;

	if (type == LIBUFFD_MEM_ANON) {
		if (feat & LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP)
			mode |= UFFDIO_REGISTER_MODE_WP;
	} else {
		if (type == LIBUFFD_MEM_HUGETLB)
			len = hps;
		mfd = memfd_create("test-probe", MFD_CLOEXEC |
				   (type == LIBUFFD_MEM_HUGETLB ?
				    MFD_HUGETLB : 0));
		if (mfd < 0 || ftruncate(mfd, (off_t)len)) {
			if (mfd >= 0)
				close(mfd);
			return 0;
		}
		flags = MAP_SHARED |
			(type == LIBUFFD_MEM_HUGETLB ? MAP_NORESERVE : 0);
		if (feat & LIBUFFD_FEATURE_WP_HUGETLBFS_SHMEM)
			mode |= UFFDIO_REGISTER_MODE_WP;
		if (feat & (type == LIBUFFD_MEM_HUGETLB ?
			    LIBUFFD_FEATURE_MINOR_HUGETLBFS :
			    LIBUFFD_FEATURE_MINOR_SHMEM))
			mode |= UFFDIO_REGISTER_MODE_MINOR;
	}
	fd = raw_uffd(feat & (LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP |
			      LIBUFFD_FEATURE_MISSING_SHMEM |
			      LIBUFFD_FEATURE_MISSING_HUGETLBFS |
			      LIBUFFD_FEATURE_MINOR_SHMEM |
			      LIBUFFD_FEATURE_MINOR_HUGETLBFS |
			      LIBUFFD_FEATURE_WP_HUGETLBFS_SHMEM |
			      LIBUFFD_FEATURE_POISON |
			      LIBUFFD_FEATURE_MOVE));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, mfd, 0);
	if (m != MAP_FAILED) {
		reg.range.start = (uintptr_t)m;
		reg.range.len = len;
		reg.mode = mode;
		if (!ioctl(fd, UFFDIO_REGISTER, &reg))
			out = reg.ioctls;
		munmap(m, len);
	}
	close(fd);
	if (mfd >= 0)
		close(mfd);
	return out;
}

START_TEST(facts_register_ioctls)
{
	struct uffd_probe p;
	uint64_t raw;
	int t;

	full_probe(&p);
	for (t = 0; t < LIBUFFD_PROBE_MEM_TYPES; t++) {
		raw = raw_register_ioctls(t, p.features, p.huge_page_size);
		ck_assert_msg(p.reg_ioctls[t] == raw,
			      "type %d: probe %#llx, kernel %#llx", t,
			      (unsigned long long)p.reg_ioctls[t],
			      (unsigned long long)raw);
		ck_assert_int_eq(p.reg_errno[t] != 0, raw == 0);
	}
	/* the kernel's documented shape of those replies */
	ck_assert_uint_eq(p.reg_ioctls[LIBUFFD_MEM_ANON] &
			  (LIBUFFD_IOCTL_COPY | LIBUFFD_IOCTL_ZEROPAGE |
			   LIBUFFD_IOCTL_WAKE),
			  LIBUFFD_IOCTL_COPY | LIBUFFD_IOCTL_ZEROPAGE |
			  LIBUFFD_IOCTL_WAKE);
	ck_assert_uint_eq(!!(p.reg_ioctls[LIBUFFD_MEM_ANON] &
			     LIBUFFD_IOCTL_MOVE),
			  !!(p.features & LIBUFFD_FEATURE_MOVE));
	ck_assert_uint_eq(!!(p.reg_ioctls[LIBUFFD_MEM_ANON] &
			     LIBUFFD_IOCTL_POISON),
			  !!(p.features & LIBUFFD_FEATURE_POISON));
	/* CONTINUE is for MINOR ranges, which anonymous memory has not */
	ck_assert(!(p.reg_ioctls[LIBUFFD_MEM_ANON] & LIBUFFD_IOCTL_CONTINUE));
	if (p.reg_ioctls[LIBUFFD_MEM_HUGETLB])
		ck_assert(!(p.reg_ioctls[LIBUFFD_MEM_HUGETLB] &
			    LIBUFFD_IOCTL_ZEROPAGE));
	/* the probe's throwaway mappings and descriptors are gone */
	{
		char *before = maps_snapshot();
		int fds = count_fds();

		full_probe(&p);
		ck_assert_int_eq(count_fds(), fds);
		assert_maps_unchanged(before);
	}
}
END_TEST

/*
 * A caller built against an older header: only its prefix is written,
 * and what it holds is what a full probe says.
 */
START_TEST(probe_prefix_sizes)
{
	static const size_t sizes[] = {
		offsetof(struct uffd_probe, reg_ioctls),	/* 0.1 */
		offsetof(struct uffd_probe, native_zero_page),
		offsetof(struct uffd_probe, kernel_release) + 10,
		sizeof(struct uffd_probe) - 1,
	};
	struct uffd_probe full;
	unsigned char buf[sizeof(struct uffd_probe) + 64];
	struct uffd_probe *p = (struct uffd_probe *)buf;
	size_t i, k;

	full_probe(&full);
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		memset(buf, 0xa5, sizeof(buf));
		p->size = sizes[i];
		ck_assert_int_eq(uffd_probe(p), 0);
		ck_assert_uint_eq(p->size, sizes[i]);
		for (k = sizes[i]; k < sizeof(buf); k++)
			ck_assert_msg(buf[k] == 0xa5, "size %zu: byte %zu "
				      "written", sizes[i], k);
		ck_assert_uint_eq(p->features, full.features);
		ck_assert_uint_eq(p->ioctls, full.ioctls);
		ck_assert_int_eq(p->open_method, full.open_method);
		if (sizes[i] >= offsetof(struct uffd_probe, native_zero_page))
			ck_assert_mem_eq(p->reg_ioctls, full.reg_ioctls,
					 sizeof(full.reg_ioctls));
	}
	/* a newer caller's bigger struct: ours is filled, the rest kept */
	memset(buf, 0xa5, sizeof(buf));
	p->size = sizeof(buf);
	ck_assert_int_eq(uffd_probe(p), 0);
	ck_assert_uint_eq(p->size, sizeof(buf));
	ck_assert_str_eq(p->kernel_release, full.kernel_release);
	for (k = sizeof(full); k < sizeof(buf); k++)
		ck_assert_uint_eq(buf[k], 0xa5);
}
END_TEST

START_TEST(feature_since)
{
	unsigned int i;

	ck_assert_str_eq(uffd_feature_since(16), "6.8");	/* MOVE */
	ck_assert_str_eq(uffd_feature_since(14), "6.6");	/* POISON */
	ck_assert_str_eq(uffd_feature_since(7), "4.14");	/* SIGBUS */
	ck_assert_str_eq(uffd_feature_since(1), "4.11");	/* EVENT_FORK */
	for (i = 0; uffd_feature_name(i); i++)
		ck_assert_ptr_nonnull(uffd_feature_since(i));
	ck_assert_ptr_null(uffd_feature_since(i));
	ck_assert_ptr_null(uffd_feature_since(63));
	ck_assert_ptr_null(uffd_feature_since(~0u));
}
END_TEST

/* ------------------------------------------------------------------ */
/* uffd_probe_format                                                  */
/* ------------------------------------------------------------------ */

/* A JSON validator (RFC 8259 grammar, no semantics). */
static void json_ws(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
		(*p)++;
}

static bool json_string(const char **p)
{
	int i;

	if (*(*p)++ != '"')
		return false;
	while (**p != '"') {
		unsigned char c = (unsigned char)*(*p)++;

		if (!c || c < 0x20)
			return false;
		if (c != '\\')
			continue;
		c = (unsigned char)*(*p)++;
		if (c == 'u') {
			for (i = 0; i < 4; i++)
				if (!strchr("0123456789abcdefABCDEF",
					    *(*p)++) || !(*p)[-1])
					return false;
		} else if (!c || !strchr("\"\\/bfnrt", c)) {
			return false;
		}
	}
	(*p)++;
	return true;
}

static bool json_value(const char **p, int depth);

static bool json_members(const char **p, int depth, char close, bool obj)
{
	(*p)++;
	json_ws(p);
	if (**p == close) {
		(*p)++;
		return true;
	}
	for (;;) {
		json_ws(p);
		if (obj) {
			if (!json_string(p))
				return false;
			json_ws(p);
			if (*(*p)++ != ':')
				return false;
		}
		if (!json_value(p, depth + 1))
			return false;
		json_ws(p);
		if (**p == close) {
			(*p)++;
			return true;
		}
		if (*(*p)++ != ',')
			return false;
	}
}

static bool json_value(const char **p, int depth)
{
	static const char *const words[] = { "true", "false", "null" };
	const char *s;
	size_t i;

	if (depth > 16)
		return false;
	json_ws(p);
	switch (**p) {
	case '{':
		return json_members(p, depth, '}', true);
	case '[':
		return json_members(p, depth, ']', false);
	case '"':
		return json_string(p);
	}
	for (i = 0; i < ARRAY_SIZE(words); i++)
		if (!strncmp(*p, words[i], strlen(words[i]))) {
			*p += strlen(words[i]);
			return true;
		}
	s = *p;
	if (*s == '-')
		s++;
	if (*s < '0' || *s > '9')
		return false;
	while ((*s >= '0' && *s <= '9') || *s == '.' || *s == 'e' ||
	       *s == 'E' || *s == '+' || *s == '-')
		s++;
	*p = s;
	return true;
}

static bool json_valid(const char *s)
{
	const char *p = s;

	if (!json_value(&p, 0))
		return false;
	json_ws(&p);
	return *p == '\0';
}

static char *format(const struct uffd_probe *p, int fmt)
{
	int n = uffd_probe_format(p, fmt, NULL, 0);
	char *buf;

	ck_assert_int_gt(n, 0);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(uffd_probe_format(p, fmt, buf, (size_t)n + 1), n);
	ck_assert_uint_eq(strlen(buf), (size_t)n);
	return buf;
}

#define assert_has(s, sub)						\
	ck_assert_msg(strstr((s), (sub)), "'%s' not in '%s'", (sub), (s))
#define assert_lacks(s, sub)						\
	ck_assert_msg(!strstr((s), (sub)), "'%s' in '%s'", (sub), (s))

START_TEST(format_snprintf_contract)
{
	struct uffd_probe p;
	char *full, buf[1024];
	static const size_t lens[] = { 1, 2, 17, 64 };
	int fmt, n;
	size_t i, len, want;

	full_probe(&p);
	for (fmt = LIBUFFD_FMT_TEXT; fmt <= LIBUFFD_FMT_JSON; fmt++) {
		full = format(&p, fmt);
		n = (int)strlen(full);
		ck_assert_int_lt(n, (int)sizeof(buf) - 8);
		for (i = 0; i < ARRAY_SIZE(lens) + 3; i++) {
			len = i < ARRAY_SIZE(lens) ? lens[i] :
			      (size_t)n + i - ARRAY_SIZE(lens);
			memset(buf, 'x', sizeof(buf));
			ck_assert_int_eq(uffd_probe_format(&p, fmt, buf, len),
					 n);
			want = len - 1 < (size_t)n ? len - 1 : (size_t)n;
			ck_assert_uint_eq(strlen(buf), want);
			ck_assert_int_eq(strncmp(buf, full, len - 1), 0);
			ck_assert_int_eq(buf[len], 'x');
		}
		/* one line, no newline */
		ck_assert_ptr_null(strchr(full, '\n'));
		free(full);
	}
}
END_TEST

START_TEST(format_bad_args)
{
	struct uffd_probe p;
	char buf[64];

	full_probe(&p);
	memset(buf, 'x', sizeof(buf));
	clear_last_error();
	ck_assert_int_eq(uffd_probe_format(NULL, LIBUFFD_FMT_TEXT, buf,
					   sizeof(buf)), -EINVAL);
	ck_assert(*uffd_last_error());
	ck_assert_int_eq(uffd_probe_format(&p, 2, buf, sizeof(buf)),
			 -EINVAL);
	ck_assert_int_eq(uffd_probe_format(&p, -1, buf, sizeof(buf)),
			 -EINVAL);
	ck_assert_int_eq(uffd_probe_format(&p, LIBUFFD_FMT_JSON, NULL, 8),
			 -EINVAL);
	p.size = 0;
	ck_assert_int_eq(uffd_probe_format(&p, LIBUFFD_FMT_TEXT, buf,
					   sizeof(buf)), -EINVAL);
	/* nothing changed on -EINVAL */
	ck_assert_int_eq(buf[0], 'x');
}
END_TEST

/* The text line states what the probe found, and only that. */
START_TEST(format_text_facts)
{
	struct uffd_probe p;
	char want[128], *t;

	full_probe(&p);
	t = format(&p, LIBUFFD_FMT_TEXT);
	snprintf(want, sizeof(want), "kernel %s;", p.kernel_release);
	ck_assert_int_eq(strncmp(t, want, strlen(want)), 0);
	if (p.native_zero_page == 1)
		assert_has(t, "native read: zero page;");
	else
		assert_has(t, "native read: fresh page (no zero page);");
	if ((p.features & 0x1ffff) == 0x1ffff)
		assert_has(t, "; uffd: all features (dev)");
	else
		assert_has(t, "; uffd: missing ");
	free(t);

	/* the same struct with facts changed: the line follows them */
	p.native_zero_page = 0;
	p.thp_enabled = LIBUFFD_THP_ALWAYS;
	p.thp_zero_page = 0;
	p.huge_page_size = 2 << 20;
	p.huge_pages_total = 512;
	p.huge_pages_free = 100;
	/* every feature of 6.8 but two, whatever this kernel has */
	p.features = 0x1ffff & ~(LIBUFFD_FEATURE_POISON | LIBUFFD_FEATURE_MOVE);
	p.open_method = LIBUFFD_OPEN_SYSCALL;
	t = format(&p, LIBUFFD_FMT_TEXT);
	assert_has(t, "; native read: fresh page (no zero page);");
	assert_has(t, "; THP always (huge zero page off);");
	assert_has(t, "; 512 huge pages of 2 MiB (100 free);");
	assert_has(t, "; uffd: missing ");
	assert_has(t, "POISON(6.6) MOVE(6.8) (syscall)");
	free(t);

	p.native_zero_page = -1;
	p.thp_enabled = -1;
	p.huge_page_size = 1 << 30;
	p.huge_pages_total = 0;
	p.open_method = 0;
	p.open_errno = EPERM;
	t = format(&p, LIBUFFD_FMT_TEXT);
	assert_has(t, "; native read: ?;");
	assert_has(t, "; no THP;");
	assert_has(t, "; 0 huge pages;");
	assert_has(t, "; uffd: unusable (Operation not permitted)");
	free(t);
}
END_TEST

START_TEST(format_json_facts)
{
	struct uffd_probe p;
	char want[128], *j;

	full_probe(&p);
	j = format(&p, LIBUFFD_FMT_JSON);
	ck_assert_msg(json_valid(j), "not JSON: %s", j);
	ck_assert_int_eq(j[0], '{');
	snprintf(want, sizeof(want), "\"kernel\":\"%s\"", p.kernel_release);
	assert_has(j, want);
	assert_has(j, p.native_zero_page ? "\"native_zero_page\":true" :
		   "\"native_zero_page\":false");
	snprintf(want, sizeof(want), "\"huge_pages_total\":%lld",
		 (long long)p.huge_pages_total);
	assert_has(j, want);
	snprintf(want, sizeof(want), "\"features\":%llu",
		 (unsigned long long)p.features);
	assert_has(j, want);
	assert_has(j, "\"uffd_usable\":true");
	free(j);

	p.features = 0x1ffff & ~LIBUFFD_FEATURE_MOVE;
	p.native_zero_page = -1;
	snprintf(p.kernel_release, sizeof(p.kernel_release), "a\"b\\c\td");
	j = format(&p, LIBUFFD_FMT_JSON);
	ck_assert_msg(json_valid(j), "not JSON: %s", j);
	assert_has(j, "\"features_missing\":\"MOVE\"");
	assert_has(j, "\"native_zero_page\":null");
	assert_has(j, "\"kernel\":\"a\\\"b\\\\c\\u0009d\"");
	free(j);

	p.open_method = 0;
	p.open_errno = EPERM;
	j = format(&p, LIBUFFD_FMT_JSON);
	ck_assert_msg(json_valid(j), "not JSON: %s", j);
	assert_has(j, "\"uffd_usable\":false");
	assert_has(j, "\"open_errno\":1");
	free(j);
}
END_TEST

/* A struct of an older size: what it lacks is not made up. */
START_TEST(format_prefix)
{
	struct uffd_probe p;
	char *t, *j;

	full_probe(&p);
	p.size = offsetof(struct uffd_probe, reg_ioctls);
	t = format(&p, LIBUFFD_FMT_TEXT);
	assert_has(t, "kernel ?");
	assert_lacks(t, "native read");
	assert_lacks(t, "THP");
	assert_has(t, "; uffd: ");
	j = format(&p, LIBUFFD_FMT_JSON);
	ck_assert_msg(json_valid(j), "not JSON: %s", j);
	assert_has(j, "\"native_zero_page\":null");
	assert_has(j, "\"kernel\":null");
	assert_has(j, "\"huge_pages_total\":null");
	free(t);
	free(j);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The uffd-probe command                                             */
/* ------------------------------------------------------------------ */

static char demo_dir[PATH_MAX];

/* $LIBUFFD_DEMOS (make check sets it), else demos/ above this test. */
static bool find_demos(void)
{
	const char *env = getenv("LIBUFFD_DEMOS");
	char exe[PATH_MAX - 64], *slash, path[PATH_MAX];
	ssize_t n;
	int up;

	if (env && *env) {
		snprintf(demo_dir, sizeof(demo_dir), "%.*s", PATH_MAX - 64,
			 env);
		return true;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	for (up = 0; up < 4; up++) {
		slash = strrchr(exe, '/');
		if (!slash)
			return false;
		*slash = '\0';
		snprintf(path, sizeof(path), "%s/demos/uffd-probe", exe);
		if (!access(path, X_OK)) {
			snprintf(demo_dir, sizeof(demo_dir), "%s/demos", exe);
			return true;
		}
	}
	return false;
}

/*
 * Run demos/@cmd with @args (NULL-terminated), under a seccomp filter
 * refusing @block (BLOCK_*; 0: none), and wait for it.
 */
#ifdef FILTER_ARCH
static int filter_in_child(void *arg)
{
	return install_filter(*(int *)arg);
}
#endif

static void run_cmd(struct result *res, const char *cmd, int block,
		    const char *const *args)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/%s", demo_dir, cmd);
#ifdef FILTER_ARCH
	run_program(res, path, args, 120, 0, block ? filter_in_child : NULL,
		    &block);
#else
	ck_assert_msg(!block, "no seccomp filter on this architecture");
	run_program(res, path, args, 120, 0, NULL, NULL);
#endif
	ck_assert_msg(res->status != 126, "cannot install seccomp");
	ck_assert_msg(res->status != 127, "cannot run %s", path);
}

/* Text: the facts, then a line per pager and per delivery fact. */
START_TEST(cmd_text)
{
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	const char *const args[] = { "--no-measure", NULL };
	struct uffd_probe p;
	struct result res;
	char want[128];
	size_t i;

	full_probe(&p);
	run_cmd(&res, "uffd-probe", 0, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_str_eq(res.err, "");
	snprintf(want, sizeof(want), "kernel %s;", p.kernel_release);
	ck_assert_int_eq(strncmp(res.out, want, strlen(want)), 0);
	assert_has(res.out, p.open_method == LIBUFFD_OPEN_DEV ?
		   "userfaultfd: usable, through /dev/userfaultfd" :
		   "userfaultfd: usable, through userfaultfd(2)");
	assert_has(res.out, p.native_zero_page ?
		   "native read fault maps the shared zero page" :
		   "native read fault allocates a page");
	for (i = 0; list[i]; i++) {
		snprintf(want, sizeof(want), "\n  %-17s ", list[i]->name);
		assert_has(res.out, want);
	}
	assert_has(res.out, "\n  sigbus ");
	assert_has(res.out, "\n  failures ");
	snprintf(want, sizeof(want), "MOVE               6.8  %s",
		 p.features & LIBUFFD_FEATURE_MOVE ? "yes" : "NO");
	assert_has(res.out, want);
	assert_lacks(res.out, "first touch");
	/* short enough to read: a screen or two */
	ck_assert_int_le(count_lines(res.out), 60);
	result_free(&res);
}
END_TEST

START_TEST(cmd_json)
{
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	const char *const args[] = { "--json", NULL };
	struct uffd_probe p;
	struct result res;
	char *facts, want[640];
	size_t i;
	const char *s;
	int n = 0;

	full_probe(&p);
	facts = format(&p, LIBUFFD_FMT_TEXT);
	run_cmd(&res, "uffd-probe", 0, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	ck_assert_int_eq(count_lines(res.out), 1);
	ck_assert_msg(json_valid(res.out), "not JSON: %s", res.out);
	/* the library's facts, as a library caller sees them now */
	snprintf(want, sizeof(want), "{\"facts\":\"%s\"", facts);
	ck_assert_msg(!strncmp(res.out, want, strlen(want)) ||
		      /* huge pages may move between the two probes */
		      !strncmp(res.out, "{\"facts\":\"kernel ", 17),
		      "%s", res.out);
	assert_has(res.out, "\"uffd_usable\":true");
	for (i = 0; list[i]; i++) {
		snprintf(want, sizeof(want), "{\"name\":\"%s\",\"status\":",
			 list[i]->name);
		assert_has(res.out, want);
	}
	for (s = res.out; (s = strstr(s, "\"since\":")); s++)
		n++;
	ck_assert_int_eq(n, 17);
	/* measured by default, and said to be */
	assert_has(res.out, "\"first_touch\":{\"measured_now\":true");
	free(facts);
	result_free(&res);
}
END_TEST

START_TEST(cmd_help_and_usage)
{
	const char *const help[] = { "--help", NULL };
	const char *const bad[][3] = {
		{ "--bogus", NULL }, { "-x", NULL }, { "extra", NULL },
		{ "--json", "extra", NULL },
	};
	struct result res;
	const char *p, *nl;
	size_t i;

	run_cmd(&res, "uffd-probe", 0, help);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(res.err, "");
	ck_assert_int_le(count_lines(res.out), 24);
	for (p = res.out; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_int_le(nl - p, 80);
	}
	assert_has(res.out, "--json");
	assert_has(res.out, "--no-measure");
	result_free(&res);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		run_cmd(&res, "uffd-probe", 0, bad[i]);
		ck_assert_msg(res.status == 2, "%s: exit %d", bad[i][0],
			      res.status);
		ck_assert_str_eq(res.out, "");
		ck_assert_int_eq(count_lines(res.err), 1);
		assert_has(res.err, "uffd-probe: ");
		result_free(&res);
	}
}
END_TEST

/*
 * Measured by default, and said to be; the text fits 80 columns but for
 * its first line, the one-line facts.
 */
START_TEST(cmd_measured_text)
{
	const char *const args[] = { NULL };
	struct result res;
	const char *p, *nl;

	run_cmd(&res, "uffd-probe", 0, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	assert_has(res.out, "first touch       write ");
	assert_has(res.out, "measured now");
	ck_assert_ptr_nonnull(strchr(res.out, '\n'));
	for (p = strchr(res.out, '\n') + 1; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_msg(nl - p <= 80, "long line: %.*s", (int)(nl - p),
			      p);
	}
	result_free(&res);
}
END_TEST

/* uffd-bench's reports start with the same facts. */
START_TEST(bench_first_line)
{
	const char *const args[] = {
		"compare", "--quick", "--size", "1M", "--reps", "1",
		"-p", "zero", "-w", "seq-read", NULL
	};
	struct uffd_probe p;
	struct result res;
	char want[128];
	const char *nl, *uffd;

	full_probe(&p);
	run_cmd(&res, "uffd-bench", 0, args);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	snprintf(want, sizeof(want), "# machine: kernel %s;",
		 p.kernel_release);
	ck_assert_msg(!strncmp(res.out, want, strlen(want)), "%s", res.out);
	/* the whole line, up to the userfaultfd verdict, comes first */
	nl = strchr(res.out, '\n');
	uffd = strstr(res.out, "; uffd: ");
	ck_assert_ptr_nonnull(nl);
	ck_assert_ptr_nonnull(uffd);
	ck_assert(uffd < nl);
	result_free(&res);
}
END_TEST

#ifdef FILTER_ARCH
/* No userfaultfd at all: exit 1, and everything else still printed. */
START_TEST(cmd_unusable)
{
	const char *const text[] = { "--no-measure", NULL };
	const char *const json[] = { "--json", "--no-measure", NULL };
	struct result res;

	run_cmd(&res, "uffd-probe", BLOCK_SYSCALL | BLOCK_DEV, text);
	ck_assert_msg(res.status == 1, "exit %d: %s", res.status, res.err);
	assert_has(res.out, "uffd: unusable (Operation not permitted)");
	assert_has(res.out, "userfaultfd: UNUSABLE");
	assert_has(res.out, "/dev/userfaultfd  EPERM");
	assert_has(res.out, "native read fault ");
	assert_has(res.out, "huge pages ");
	assert_has(res.out, "\n  zero              no ");
	assert_has(res.err, "userfaultfd cannot be used here");
	result_free(&res);

	run_cmd(&res, "uffd-probe", BLOCK_SYSCALL | BLOCK_DEV, json);
	ck_assert_int_eq(res.status, 1);
	ck_assert_msg(json_valid(res.out), "not JSON: %s", res.out);
	assert_has(res.out, "\"uffd_usable\":false");
	assert_has(res.out, "\"open_errno\":1");
	assert_has(res.out, "\"first_touch\":null");
	result_free(&res);

	/* one way left is enough */
	run_cmd(&res, "uffd-probe", BLOCK_DEV, text);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	assert_has(res.out, "usable, through userfaultfd(2)");
	assert_has(res.out, "/dev/userfaultfd  EPERM");
	result_free(&res);
}
END_TEST

/* io_uring refused (seccomp here, or the sysctl): the file pager's way out */
START_TEST(cmd_uring_refused)
{
	const char *const text[] = { "--no-measure", NULL };
	struct result res;

	run_cmd(&res, "uffd-probe", BLOCK_URING, text);
	ck_assert_msg(res.status == 0, "exit %d: %s", res.status, res.err);
	if (uffd_pager_find("file")) {
		assert_has(res.out, "\n  file              pread only ");
		assert_has(res.out, "io_uring refused: EPERM");
		assert_has(res.out, "engine=pread");
	}
	result_free(&res);
}
END_TEST
#endif /* FILTER_ARCH */

static Suite *probe_suite(void)
{
	Suite *s = suite_create("probe");
	TCase *tc = add_tcase(s, "probe", NULL, NULL);

	tcase_add_test(tc, probe_matches_kernel);
	tcase_add_test(tc, probe_ioctl_bits);
	tcase_add_test(tc, probe_does_not_leak);
	tcase_add_test(tc, probe_bad_args);
	tcase_add_test(tc, feature_names);

	tc = add_tcase(s, "context", NULL, NULL);
	tcase_add_test(tc, ctx_default_features);
	tcase_add_test(tc, ctx_required_features);
	tcase_add_test(tc, ctx_bad_args);
	tcase_add_test(tc, ctx_opts_prefix);
	tcase_add_test(tc, ctx_no_dev_works);
	tcase_add_test(tc, second_api_refused);

#ifdef FILTER_ARCH
	tc = add_tcase(s, "open-method", NULL, NULL);
	if (seccomp_filters()) {
		tcase_add_test(tc, open_syscall_blocked);
		tcase_add_test(tc, open_dev_blocked);
		tcase_add_test(tc, open_both_blocked);
	}
#endif

	tc = add_tcase(s, "facts", NULL, NULL);
	tcase_add_test(tc, facts_zero_page_vs_rss);
	tcase_add_test(tc, facts_zero_page_vs_pfn);
	tcase_add_test(tc, facts_thp_vs_sysfs);
	tcase_add_test(tc, facts_huge_pages_vs_meminfo);
	tcase_add_test(tc, facts_sysctl_and_release);
	tcase_add_test(tc, facts_register_ioctls);
	tcase_add_test(tc, probe_prefix_sizes);
	tcase_add_test(tc, feature_since);

	tc = add_tcase(s, "format", NULL, NULL);
	tcase_add_test(tc, format_snprintf_contract);
	tcase_add_test(tc, format_bad_args);
	tcase_add_test(tc, format_text_facts);
	tcase_add_test(tc, format_json_facts);
	tcase_add_test(tc, format_prefix);

	{
		tc = add_tcase(s, "command", NULL, NULL);
		tcase_add_test(tc, cmd_text);
		tcase_add_test(tc, cmd_json);
		tcase_add_test(tc, cmd_help_and_usage);
		tcase_add_test(tc, cmd_measured_text);
		tcase_add_test(tc, bench_first_line);
#ifdef FILTER_ARCH
		if (seccomp_filters()) {
			tcase_add_test(tc, cmd_unusable);
			tcase_add_test(tc, cmd_uring_refused);
		}
#endif
	}
	return s;
}

int main(void)
{
	if (access("/dev/userfaultfd", R_OK | W_OK)) {
		fprintf(stderr, "SKIP: /dev/userfaultfd not usable\n");
		return TEST_EXIT_SKIP;
	}
	if (!find_demos()) {
		fprintf(stderr, "demos/uffd-probe not found (build the demos "
			"or set LIBUFFD_DEMOS)\n");
		return TEST_EXIT_HARD_ERROR;
	}
	return run_suite(probe_suite());
}
