/* SPDX-License-Identifier: MIT */
/*
 * Push a snapshot into a page store (snapshot-push.h): read it a chunk
 * at a time, from a file or another process, and write each chunk
 * through the store's handle in one request (the memcached store sends
 * a chunk's sets in one batch per server).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <libuffd.h>

#include "snapshot-push.h"

#define CHUNK_PAGES	256

struct source {
	int		fd;		/* a file, or -1 */
	pid_t		pid;		/* a process */
	uint64_t	addr;
	uint64_t	size;		/* bytes to push */
};

/* Read [off, off + len) of @src into @buf; past a file's end: zeros. */
static int source_read(const struct source *src, uint64_t off, char *buf,
		       size_t len, char *why, size_t wlen)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n;

		if (src->fd >= 0) {
			n = pread(src->fd, buf + done, len - done,
				  (off_t)(off + done));
		} else {
			struct iovec l = { buf + done, len - done };
			struct iovec r = {
				(void *)(uintptr_t)(src->addr + off + done),
				len - done,
			};

			n = process_vm_readv(src->pid, &l, 1, &r, 1, 0);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, wlen, "read at byte %llu: %s",
				 (unsigned long long)(off + done),
				 strerror(errno));
			return -errno;
		}
		if (n == 0) {
			if (src->fd < 0) {
				snprintf(why, wlen, "process %d: nothing "
					 "readable at %#llx", (int)src->pid,
					 (unsigned long long)(src->addr + off +
							      done));
				return -EFAULT;
			}
			memset(buf + done, 0, len - done);	/* the tail */
			break;
		}
		done += (size_t)n;
	}
	return 0;
}

static bool zero_page(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int push(const char *spec, const struct source *src,
		struct push_result *r, char *why, size_t len)
{
	uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE), pages, p, t0;
	struct uffd_store *st = NULL;
	char *buf;
	int ret;

	memset(r, 0, sizeof(*r));
	pages = (src->size + ps - 1) / ps;
	if (!pages) {
		snprintf(why, len, "nothing to push (0 bytes)");
		return -EINVAL;
	}
	buf = aligned_alloc(ps, CHUNK_PAGES * ps);
	if (!buf) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	t0 = now_ns();
	ret = uffd_store_open(spec, pages * ps, &st);
	if (ret < 0) {
		snprintf(why, len, "store %s: %s", spec, uffd_last_error());
		goto out;
	}
	for (p = 0; p < pages; p += CHUNK_PAGES) {
		uint64_t n = pages - p < CHUNK_PAGES ? pages - p : CHUNK_PAGES;
		uint64_t i, bytes = n * ps;

		if (p * ps + bytes > src->size)
			bytes = src->size - p * ps;
		memset(buf + bytes, 0, n * ps - bytes);
		ret = source_read(src, p * ps, buf, bytes, why, len);
		if (ret < 0)
			goto out;
		for (i = 0; i < n; i++) {
			if (zero_page(buf + i * ps, ps))
				r->zero++;
			else
				r->stored++;
		}
		ret = uffd_store_write(st, p, n, buf);
		if (ret < 0) {
			snprintf(why, len, "writing pages %llu+%llu: %s",
				 (unsigned long long)p, (unsigned long long)n,
				 uffd_last_error());
			goto out;
		}
		r->pages += n;
	}
	ret = uffd_store_sync(st);
	if (ret < 0)
		snprintf(why, len, "sync: %s", uffd_last_error());
out:
	uffd_store_close(st);
	r->ns = now_ns() - t0;
	free(buf);
	return ret;
}

int snapshot_push_file(const char *spec, const char *path, uint64_t size,
		       struct push_result *r, char *why, size_t len)
{
	struct source src = { .fd = open(path, O_RDONLY | O_CLOEXEC) };
	struct stat sb;
	int ret;

	if (src.fd < 0) {
		snprintf(why, len, "open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(src.fd, &sb) < 0) {
		ret = -errno;
		snprintf(why, len, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	src.size = size ? size : (uint64_t)sb.st_size;
	ret = push(spec, &src, r, why, len);
out:
	close(src.fd);
	return ret;
}

int snapshot_push_process(const char *spec, pid_t pid, uint64_t addr,
			  uint64_t size, struct push_result *r, char *why,
			  size_t len)
{
	struct source src = { .fd = -1, .pid = pid, .addr = addr,
			      .size = size };

	return push(spec, &src, r, why, len);
}
