/* SPDX-License-Identifier: MIT */
/*
 * memfd: a page store in memory, for tests and as the fastest bound a
 * store can reach.  A memfd mapped shared once at open; reads and writes
 * are memcpy, done inside submit (synchronous).  Contents die with the
 * handle.
 *
 *   memfd[:inject_eio=PAGE]
 *
 * A length must be given: memory has no size of its own.  Discarded
 * pages are punched out of the memfd, so they cost no memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <libuffd.h>
#include "inject.h"

#define MS_NONE		UINT64_MAX

struct memfd_store {
	int		fd;
	char		*map;
	uint64_t	len;
	uint64_t	ps;
	uint64_t	inject;		/* page that fails, or MS_NONE */
	int		refs;		/* handles beyond the first (dups) */
};

static const char *const memfd_keys[] = { "inject_eio", NULL };

static void memfd_close(void *state)
{
	struct memfd_store *ms = state;

	/* memcpy needs no lock: dups share the whole state */
	if (__atomic_fetch_sub(&ms->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (ms->map)
		munmap(ms->map, ms->len);
	if (ms->fd >= 0)
		close(ms->fd);
	free(ms);
}

static int memfd_open(const struct uffd_args *args, uint64_t *len,
		      void **state)
{
	struct memfd_store *ms;
	int ret;

	ret = uffd_args_check(args, memfd_keys);
	if (ret < 0)
		return ret;
	if (!*len) {
		uffd_set_error("memfd: a length is needed");
		return -EINVAL;
	}
	ms = calloc(1, sizeof(*ms));
	if (!ms) {
		uffd_set_error("memfd: out of memory");
		return -ENOMEM;
	}
	ms->fd = -1;
	ms->len = *len;
	ms->ps = (uint64_t)sysconf(_SC_PAGESIZE);
	ms->inject = MS_NONE;
	ret = uffd_args_u64(args, "inject_eio", &ms->inject, 0, UINT64_MAX - 1);
	if (ret < 0)
		goto fail;
	ms->fd = memfd_create("uffd-store", MFD_CLOEXEC);
	if (ms->fd < 0 || ftruncate(ms->fd, (off_t)ms->len) < 0) {
		ret = -errno;
		uffd_set_error("memfd: %llu bytes: %s",
			       (unsigned long long)ms->len, strerror(errno));
		goto fail;
	}
	ms->map = luffd_mmap(NULL, ms->len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       ms->fd, 0);
	if (ms->map == MAP_FAILED) {
		ms->map = NULL;
		ret = -errno;
		uffd_set_error("memfd: mmap: %s", strerror(errno));
		goto fail;
	}
	*state = ms;
	return 0;
fail:
	memfd_close(ms);
	return ret;
}

static int memfd_submit(void *state, struct uffd_store_io *const *ios,
			unsigned int n)
{
	struct memfd_store *ms = state;
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct uffd_store_io *io = ios[i];
		char *at = ms->map + io->page * ms->ps;
		size_t len = io->npages * ms->ps;

		if (ms->inject >= io->page &&
		    ms->inject < io->page + io->npages) {
			uffd_store_complete(io, -EIO);
			continue;
		}
		if (io->op == LIBUFFD_STORE_WRITE)
			memcpy(at, io->buf, len);
		else
			memcpy(io->buf, at, len);
		uffd_store_complete(io, 0);
	}
	return 0;
}

static int memfd_discard(void *state, uint64_t page, uint64_t npages)
{
	struct memfd_store *ms = state;

	if (fallocate(ms->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(page * ms->ps), (off_t)(npages * ms->ps)) < 0) {
		uffd_set_error("memfd: punching a hole: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int memfd_dup(void *state, void **out)
{
	struct memfd_store *ms = state;

	__atomic_fetch_add(&ms->refs, 1, __ATOMIC_RELAXED);
	*out = ms;
	return 0;
}

const struct uffd_store_ops luffd_store_memfd = {
	.version	= LIBUFFD_STORE_OPS_VERSION,
	.name		= "memfd",
	.open		= memfd_open,
	.submit		= memfd_submit,
	.discard	= memfd_discard,
	.close		= memfd_close,
	.dup		= memfd_dup,
};
