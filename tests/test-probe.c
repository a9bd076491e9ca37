/* SPDX-License-Identifier: MIT */
/*
 * uffd_probe() and the opening of a userfaultfd: what the library reports
 * must be what the kernel says, checked against our own raw handshake and
 * against the kernel's fdinfo of the context's descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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
		/* Harmless to the handler, and off by default. */
		.features = LIBUFFD_FEATURE_EXACT_ADDRESS,
		.handler_cpu = -1,
	};
	struct uffd_ctx *c = NULL;
	int fds = count_fds();

	ck_assert_int_eq(uffd_ctx_create(&c, &o), 0);
	ck_assert(uffd_ctx_features(c) & LIBUFFD_FEATURE_EXACT_ADDRESS);
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
	tcase_add_test(tc, open_syscall_blocked);
	tcase_add_test(tc, open_dev_blocked);
	tcase_add_test(tc, open_both_blocked);
#endif
	return s;
}

int main(void)
{
	if (access("/dev/userfaultfd", R_OK | W_OK)) {
		fprintf(stderr, "SKIP: /dev/userfaultfd not usable\n");
		return TEST_EXIT_SKIP;
	}
	return run_suite(probe_suite());
}
