/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (configure --enable-fault-injection, test builds only):
 * the library's system calls that can fail in ways a test cannot provoke
 * go through these wrappers.  Without the flag each wrapper is the plain
 * call, inlined: release builds pay nothing.  The rules and their syntax
 * are in inject.c.
 *
 * Included by internal.h, and by the few pagers and stores that include
 * only <libuffd.h> but make such calls themselves: it is a test hook,
 * not a way into the core.
 */
#ifndef LIBUFFD_INJECT_H
#define LIBUFFD_INJECT_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/types.h>

enum luffd_inject_site {
	LUFFD_INJ_COPY,		/* UFFDIO_COPY */
	LUFFD_INJ_ZEROPAGE,	/* UFFDIO_ZEROPAGE */
	LUFFD_INJ_MOVE,		/* UFFDIO_MOVE */
	LUFFD_INJ_READ,		/* read() of the userfaultfd */
	LUFFD_INJ_MMAP,		/* mmap() */
	LUFFD_INJ_THREAD,	/* pthread_create() */
	LUFFD_INJ_URING_SUBMIT,	/* io_uring_submit() */
	LUFFD_INJ_URING_CQE,	/* a completion's result */
	LUFFD_INJ_URING_WAIT,	/* io_uring_wait_cqe() */
	LUFFD_INJ_NSITES
};

#ifdef LUFFD_FAULT_INJECT
#ifdef LUFFD_PRELOAD
#define LUFFD_INJ_API
#else
#define LUFFD_INJ_API __attribute__((visibility("default")))
#endif
/* The errno this call of @site must fail with, or 0.  Signal-safe. */
LUFFD_INJ_API int luffd_inject(enum luffd_inject_site site);
/* A random 64-bit value drawn with the rules' seed (signal-safe). */
uint64_t luffd_inject_draw(enum luffd_inject_site site);
/*
 * Test-only API, exported in injection builds alone: replace every rule
 * with @spec (NULL or "": none) and zero the counters; 0 or -EINVAL
 * (nothing changed).  Not while the library runs calls on other threads.
 */
LUFFD_INJ_API int luffd_inject_set(const char *spec);
/* failures injected at @site since the last set, and calls seen there */
LUFFD_INJ_API uint64_t luffd_inject_count(enum luffd_inject_site site);
LUFFD_INJ_API uint64_t luffd_inject_calls(enum luffd_inject_site site);
#else
static inline int luffd_inject(enum luffd_inject_site site)
{
	(void)site;
	return 0;
}

static inline uint64_t luffd_inject_draw(enum luffd_inject_site site)
{
	(void)site;
	return 0;
}
#endif

static inline void *luffd_mmap(void *addr, size_t len, int prot, int flags,
			       int fd, off_t off)
{
	int err = luffd_inject(LUFFD_INJ_MMAP);

	if (err) {
		errno = err;
		return MAP_FAILED;
	}
	return mmap(addr, len, prot, flags, fd, off);
}

static inline int luffd_pthread_create(pthread_t *t,
				       const pthread_attr_t *attr,
				       void *(*fn)(void *), void *arg)
{
	int err = luffd_inject(LUFFD_INJ_THREAD);

	if (err)
		return err;
	return pthread_create(t, attr, fn, arg);
}

/* read() of a userfaultfd */
static inline ssize_t luffd_uffd_read(int fd, void *buf, size_t len)
{
	int err = luffd_inject(LUFFD_INJ_READ);

	if (err) {
		errno = err;
		return -1;
	}
	return read(fd, buf, len);
}

/*
 * A fill ioctl (COPY, ZEROPAGE, MOVE) whose request has length *@len and
 * result field *@out.  An injected failure looks like the kernel's own:
 * *@out is -errno with nothing done; EAGAIN, which the kernel also gives
 * for a fill cut short, is sometimes that instead (the first pages done,
 * *@out their length).
 */
#ifdef LUFFD_FAULT_INJECT
int luffd_fill_ioctl_inject(int err, int fd, unsigned long req, void *arg,
			    __u64 *len, __s64 *out, uint64_t page_size);
#endif
static inline int luffd_fill_ioctl(enum luffd_inject_site site, int fd,
				   unsigned long req, void *arg, __u64 *len,
				   __s64 *out, uint64_t page_size)
{
	int err = luffd_inject(site);

#ifdef LUFFD_FAULT_INJECT
	if (err)
		return luffd_fill_ioctl_inject(err, fd, req, arg, len, out,
					       page_size);
#else
	(void)err, (void)len, (void)out, (void)page_size;
#endif
	return ioctl(fd, req, arg);
}

#endif /* LIBUFFD_INJECT_H */
