/* SPDX-License-Identifier: MIT */
/*
 * latency, table 3: the floor.  The same one-page faults served by a few
 * lines of raw userfaultfd code instead of libuffd, next to the kernel's
 * own fault, so that the library's rows can be read against what the
 * platform allows:
 *
 *   fill only      UFFDIO_COPY of each page of registered memory that was
 *                  never touched: the fill alone, no fault, no signal
 *   sigbus write   a store faults, SIGBUS, the handler copies, returns
 *                  through rt_sigreturn
 *   sigbus read    the same fill after a load instead of a store: on an
 *                  anonymous write fault the kernel allocates, charges and
 *                  zeroes a page before it sees the registration, then
 *                  frees it; a read fault does not, so the difference is
 *                  that wasted allocation
 *   thread poll    a handler thread on the same CPU: poll, read, copy
 *   thread read    the same with a blocking read instead of poll + read
 *
 * Each rep measures native, then every row, in the same process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "bench.h"

enum floor_kind {
	F_NATIVE, F_FILL, F_SIGBUS_WRITE, F_SIGBUS_READ, F_THREAD_POLL,
	F_THREAD_READ, F_KINDS
};

static const struct {
	const char	*name;
	const char	*desc;
} kinds[F_KINDS] = {
	{ "native", "the kernel's own write fault" },
	{ "fill only", "UFFDIO_COPY per page, no fault" },
	{ "sigbus write", "raw SIGBUS handler, COPY, rt_sigreturn" },
	{ "sigbus read", "as sigbus write, after a load" },
	{ "thread poll", "raw handler thread, same CPU: poll+read+COPY" },
	{ "thread read", "raw handler thread, same CPU: read+COPY" },
};

static int raw_fd = -1;
static const void *raw_zero;	/* a page of zeros to copy from */
/* a raw handler thread returns once it has served this page */
static uint64_t raw_last;

static int raw_uffd(uint64_t features, bool nonblock)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd,
			      O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));

	if (fd < 0)
		die_sys("userfaultfd");
	if (ioctl(fd, UFFDIO_API, &api))
		die_sys("UFFDIO_API");
	return fd;
}

static void raw_register(int fd, void *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		die_sys("UFFDIO_REGISTER");
}

static void raw_copy(uint64_t addr, uint64_t mode)
{
	struct uffdio_copy c = {
		.dst = addr & ~(uint64_t)(page_size - 1),
		.src = (uint64_t)(uintptr_t)raw_zero,
		.len = page_size,
		.mode = mode,
	};

	if (ioctl(raw_fd, UFFDIO_COPY, &c) && errno != EEXIST)
		abort();
}

static void raw_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	raw_copy((uint64_t)(uintptr_t)si->si_addr, UFFDIO_COPY_MODE_DONTWAKE);
}

static void *raw_handler(void *arg)
{
	bool use_poll = arg != NULL;
	struct uffd_msg m[64];

	for (;;) {
		struct pollfd pfd = { .fd = raw_fd, .events = POLLIN };
		ssize_t n, i;

		if (use_poll && poll(&pfd, 1, -1) < 0)
			continue;
		n = read(raw_fd, m, sizeof(m));
		for (i = 0; i < n / (ssize_t)sizeof(m[0]); i++) {
			uint64_t a = m[i].arg.pagefault.address &
				     ~(uint64_t)(page_size - 1);

			if (m[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			raw_copy(a, 0);
			if (a == raw_last)
				return NULL;
		}
	}
}

/*
 * One run over @size bytes; a page beyond them is registered too, and its
 * fault tells a raw handler thread to return (cancelling it instead would
 * leave a sanitizer's stack bookkeeping behind).
 */
static double floor_run(enum floor_kind k, size_t size)
{
	/* the walks every experiment uses */
	const struct workload *wr = workload_find("seq-write");
	const struct workload *rd = workload_find("seq-read");
	size_t len = size + page_size;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct sigaction sa, old;
	pthread_t t;
	uint64_t t0;
	double ns;

	if (p == MAP_FAILED)
		die_sys("mmap");
	madvise(p, len, MADV_NOHUGEPAGE);
	raw_last = (uint64_t)(uintptr_t)(p + size);
	if (k != F_NATIVE) {
		bool sig = k == F_SIGBUS_WRITE || k == F_SIGBUS_READ;

		raw_fd = raw_uffd(sig ? UFFD_FEATURE_SIGBUS : 0,
				  k == F_THREAD_POLL);
		raw_register(raw_fd, p, len);
	}
	if (k == F_SIGBUS_WRITE || k == F_SIGBUS_READ) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = raw_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old))
			die_sys("sigaction");
	}
	if ((k == F_THREAD_POLL || k == F_THREAD_READ) &&
	    pthread_create(&t, NULL, raw_handler,
			   k == F_THREAD_POLL ? (void *)1 : NULL))
		die_sys("pthread_create");

	t0 = now_ns();
	switch (k) {
	case F_FILL:
		for (size_t off = 0; off < size; off += page_size)
			raw_copy((uint64_t)(uintptr_t)(p + off),
				 UFFDIO_COPY_MODE_DONTWAKE);
		break;
	case F_SIGBUS_READ:
		rd->walk(p, size, NULL);
		break;
	default:
		wr->walk(p, size, NULL);
		break;
	}
	ns = (double)(now_ns() - t0) / (double)(size / page_size);

	if (k == F_THREAD_POLL || k == F_THREAD_READ) {
		wr->walk(p + size, page_size, NULL);
		pthread_join(t, NULL);
	}
	if (k == F_SIGBUS_WRITE || k == F_SIGBUS_READ)
		sigaction(SIGBUS, &old, NULL);
	if (raw_fd >= 0)
		close(raw_fd);
	raw_fd = -1;
	munmap(p, len);
	return ns;
}

void latency_floor(void)
{
	static const struct col cols[] = {
		{ "mode", "strategy", 0, 0, COL_LEFT },
		{ "ns/fault", "ns_per_page", 0, 0, 0 },
		{ "x native write", "ratio_vs_native", 2, 0, 0 },
		{ "what", "pin", 0, 0, COL_LEFT },
	};
	size_t size = cfg.size, pages = size / page_size;
	double *v = xcalloc((size_t)cfg.reps * F_KINDS, sizeof(*v));
	double x[64];
	struct rows rows = { 0 };
	struct progress pg;
	unsigned int rep, i, n;
	int k;

	raw_zero = mmap(NULL, page_size, PROT_READ,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (raw_zero == MAP_FAILED)
		die_sys("mmap");
	progress_start(&pg, cfg.reps * F_KINDS);
	for (rep = 0; rep < cfg.reps && !bench_stopped(); rep++)
		for (k = 0; k < F_KINDS && !bench_stopped(); k++) {
			progress_step(&pg, "latency floor rep %u %s", rep + 1,
				      kinds[k].name);
			v[rep * F_KINDS + (unsigned int)k] =
				floor_run((enum floor_kind)k, size);
		}
	progress_end(&pg);
	munmap((void *)raw_zero, page_size);

	for (k = 0; k < F_KINDS; k++) {
		struct row *r;

		for (i = n = 0; i < cfg.reps && n < 64; i++)
			if (v[i * F_KINDS + (unsigned int)k] > 0)
				x[n++] = v[i * F_KINDS + (unsigned int)k];
		if (!n)
			continue;
		r = rows_add(&rows);
		row_init(r, "floor", kinds[k].name, size, pages, cfg.reps);
		r->pin = kinds[k].desc;
		r->ns_per_page = median(x, n);
		for (i = n = 0; i < cfg.reps && n < 64; i++)
			if (v[i * F_KINDS] > 0 &&
			    v[i * F_KINDS + (unsigned int)k] > 0)
				x[n++] = v[i * F_KINDS + (unsigned int)k] /
					 v[i * F_KINDS];
		r->ratio_vs_native = n ? median(x, n) : NAN;
	}
	bench_emit(&rows, 0, bench_fmt("latency floor: raw userfaultfd, no "
				       "libuffd, %s; app and handler on CPU 0",
				       bench_what(size, cfg.reps)),
		   cols, ARRAY_SIZE(cols));
	rows_free(&rows);
	free(v);
}
