/* SPDX-License-Identifier: MIT */
/*
 * Push a snapshot into a page store (a memcached pool, a file...): what
 * `uffd-snapshot push` does, and step 2b of demos/snapshot-restore.
 */
#ifndef SNAPSHOT_PUSH_H
#define SNAPSHOT_PUSH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct push_result {
	uint64_t	pages;		/* pushed */
	uint64_t	stored;		/* with data: written to the store */
	uint64_t	zero;		/* all zeros: not stored */
	uint64_t	ns;		/* wall time */
};

/*
 * Write @path (its first @size bytes; 0: all of it, rounded up to a
 * page) into the store @spec, page i of the file as store page i.
 * Zero pages are written as zeros, which a store that keeps no zero
 * pages (memcached) turns into deleting them: a namespace pushed to
 * before holds nothing stale afterwards.  0 or -errno, @why says why.
 */
int snapshot_push_file(const char *spec, const char *path, uint64_t size,
		       struct push_result *r, char *why, size_t len);

/*
 * The same from [addr, addr + size) of process @pid, read with
 * process_vm_readv (a live process's region; ptrace access needed).
 */
int snapshot_push_process(const char *spec, pid_t pid, uint64_t addr,
			  uint64_t size, struct push_result *r, char *why,
			  size_t len);

#endif /* SNAPSHOT_PUSH_H */
