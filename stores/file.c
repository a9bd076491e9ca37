/* SPDX-License-Identifier: MIT */
/*
 * file: a page store in a sparse file or on a block device.  Store page
 * p is the file's bytes at offset + p * page size.
 *
 *   file:path=P[,offset=O][,direct=1][,readonly=1][,fresh=1][,pool=N]
 *       [,engine=uring|pread][,inject_eio=PAGE]
 *
 * offset=O (bytes, 0 by default) is where page 0 starts: a snapshot
 * whose memory follows a header.  It must be a multiple of the page
 * size (of 4096 with direct=1), so that every I/O stays page aligned.
 * The bytes before it are never read or written.
 *
 * A missing file is created; a regular file shorter than offset plus the
 * length asked for is extended (sparse, so the new pages cost nothing).
 * A block device is never resized.  Length 0 takes what the file holds
 * past the offset, rounded up to a page.
 *
 * engine=uring (default) is asynchronous: submit queues one SQE per run
 * (split at 1 GiB) and enters the kernel once per batch; wait reaps
 * CQEs, resubmitting short reads and writes for the rest.  A buffer pool
 * of pool=N pages (256, 1 MiB, by default; 0: none) is registered with
 * the ring at open, and a request whose buffer lies inside it is done
 * with READ_FIXED/WRITE_FIXED, which spares the kernel pinning the pages
 * for every I/O (what matters with direct=1); other buffers get plain
 * READ/WRITE.  Where io_uring is unavailable (or engine=pread) each run
 * is one pread/pwrite inside submit.  A pool asked for is there whatever
 * the engine (with pread it saves the caller allocating its own aligned
 * buffers; by default pread has none, as it gains nothing from one).
 *
 * Holes: unless fresh=1, open asks the file system where data lies
 * (SEEK_DATA/SEEK_HOLE), and only those pages count as written, so a
 * snapshot's holes read as zeros without I/O.  A block device has no
 * holes to report: all of it counts as written, unless fresh=1 says its
 * old contents are garbage to forget.
 *
 * readonly=1 opens O_RDONLY: writes fail with -EBADF before any I/O,
 * and the file is never extended.  Its length at open is then where the
 * store's data ends: pages past it are never written (zeros without
 * I/O), the page straddling it is read and zeroed from that length on,
 * even if the file has grown since, and a read that the file ends
 * before that length (it shrank under the store) fails with -EIO.  A
 * block device shorter than the store is allowed read-only, likewise.
 *
 * inject_eio=PAGE is a testing aid: every request covering PAGE that
 * reaches the store fails with -EIO, without I/O.
 *
 * Paths containing ',' cannot be given (the spec separator).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <liburing.h>
#include <libuffd.h>
#include "inject.h"

#define FS_NONE		UINT64_MAX
#define FS_POOL_DEFAULT	256		/* pages */
#define FS_POOL_MAX	(1ull << 18)	/* pages: 1 GiB of 4 KiB pages */
#define FS_RING_DEPTH	64
#define FS_CHUNK_MAX	(1ull << 30)	/* bytes per SQE */
#define FS_DIRECT_ALIGN	4096
#define FS_RETRIES	64
/* how long a wait tries to send requests a failed submit left queued */
#define FS_SUBMIT_NS	1000000000ull

struct file_store {
	int		fd;
	bool		blk;
	bool		direct;
	bool		readonly;
	bool		fresh;
	uint64_t	ps;
	uint64_t	len;
	uint64_t	off;		/* file offset of page 0 */
	uint64_t	size0;		/* the file's size at open */
	uint64_t	eof;		/* reads are cut here (file offset) */
	uint64_t	inject;		/* page that fails, or FS_NONE */
	uint64_t	spin_ns;	/* spin=US, in ns */

	bool		uring;		/* ring set up and used */
	struct io_uring	ring;
	unsigned int	inflight;	/* requests in the ring */
	char		*pool;
	size_t		pool_len;
	bool		fixed;		/* pool registered */
};

static const char *const file_keys[] = {
	"path", "offset", "direct", "readonly", "fresh", "pool", "engine",
	"inject_eio", "spin", NULL
};

/* io->priv[0]: bytes done; io->priv[1]: EINTR/EAGAIN retries */

static void file_close(void *state)
{
	struct file_store *fs = state;

	if (fs->uring)
		io_uring_queue_exit(&fs->ring);
	if (fs->pool)
		munmap(fs->pool, fs->pool_len);
	if (fs->fd >= 0)
		close(fs->fd);
	free(fs);
}

static int file_size(struct file_store *fs, const char *path)
{
	struct stat sb;

	if (fstat(fs->fd, &sb) < 0) {
		uffd_set_error("file: stat %s: %s", path, strerror(errno));
		return -errno;
	}
	if (S_ISREG(sb.st_mode)) {
		fs->size0 = (uint64_t)sb.st_size;
		return 0;
	}
	if (S_ISBLK(sb.st_mode)) {
		fs->blk = true;
		if (ioctl(fs->fd, BLKGETSIZE64, &fs->size0) < 0) {
			uffd_set_error("file: size of %s: %s", path,
				       strerror(errno));
			return -errno;
		}
		return 0;
	}
	uffd_set_error("file: %s: not a regular file or block device", path);
	return -EINVAL;
}

/*
 * The length: the caller's, or what the file holds past the offset; a
 * regular file opened for writing grows to it.
 */
static int file_length(struct file_store *fs, const char *path,
		       uint64_t *len)
{
	uint64_t held = fs->size0 > fs->off ? fs->size0 - fs->off : 0;

	if (!*len) {
		*len = (held + fs->ps - 1) / fs->ps * fs->ps;
		if (!*len) {
			uffd_set_error("file: %s is empty%s and no length was given",
				       path, fs->off ? " past offset" : "");
			return -EINVAL;
		}
	}
	if (*len > (uint64_t)INT64_MAX - fs->off) {
		uffd_set_error("file: offset=%llu: past the largest file",
			       (unsigned long long)fs->off);
		return -EINVAL;
	}
	fs->eof = fs->size0;
	if (fs->blk && !fs->readonly && *len > held) {
		uffd_set_error("file: %s holds %llu bytes past offset %llu, %llu asked for",
			       path, (unsigned long long)held,
			       (unsigned long long)fs->off,
			       (unsigned long long)*len);
		return -EINVAL;
	}
	if (!fs->blk && !fs->readonly && held < *len) {
		if (ftruncate(fs->fd, (off_t)(fs->off + *len)) < 0) {
			uffd_set_error("file: extending %s: %s", path,
				       strerror(errno));
			return -errno;
		}
		fs->eof = fs->off + *len;
	}
	fs->len = *len;
	return 0;
}

static int file_pool_map(struct file_store *fs, uint64_t pool_pages)
{
	fs->pool_len = pool_pages * fs->ps;
	/* page aligned (O_DIRECT), populated: no fault on first use */
	fs->pool = luffd_mmap(NULL, fs->pool_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (fs->pool == MAP_FAILED) {
		fs->pool = NULL;
		uffd_set_error("file: buffer pool of %zu bytes: %s",
			       fs->pool_len, strerror(errno));
		return -ENOMEM;
	}
	madvise(fs->pool, fs->pool_len, MADV_DONTFORK);
	return 0;
}

static void file_ring(struct file_store *fs)
{
	struct io_uring_params prm = {
		/* completions are reaped by the submitter: no IPI needed */
		.flags = IORING_SETUP_COOP_TASKRUN,
	};
	struct iovec iov;
	int ret;

	ret = io_uring_queue_init_params(FS_RING_DEPTH, &fs->ring, &prm);
	if (ret == -EINVAL)		/* before 5.19: no COOP_TASKRUN */
		ret = io_uring_queue_init(FS_RING_DEPTH, &fs->ring, 0);
	if (ret < 0)
		return;			/* pread/pwrite then */
	fs->uring = true;
	if (!fs->pool)
		return;
	iov.iov_base = fs->pool;
	iov.iov_len = fs->pool_len;
	/* refused (memlock limit): the pool is used with plain I/O */
	fs->fixed = io_uring_register_buffers(&fs->ring, &iov, 1) == 0;
}

static int file_open(const struct uffd_args *args, uint64_t *len,
		     void **state)
{
	struct file_store *fs;
	const char *path = uffd_args_get(args, "path");
	const char *engine = uffd_args_get(args, "engine");
	bool uring = !engine || !strcmp(engine, "uring");
	uint64_t direct = 0, ro = 0, fresh = 0, spin = 0;
	uint64_t pool = uring ? FS_POOL_DEFAULT : 0;
	int flags, ret;

	ret = uffd_args_check(args, file_keys);
	if (ret < 0)
		return ret;
	if (!path) {
		uffd_set_error("file: path=P is needed");
		return -EINVAL;
	}
	if (engine && strcmp(engine, "uring") && strcmp(engine, "pread")) {
		uffd_set_error("file: engine=%s: uring or pread", engine);
		return -EINVAL;
	}
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	fs->fd = -1;
	fs->ps = (uint64_t)sysconf(_SC_PAGESIZE);
	fs->inject = FS_NONE;
	if ((ret = uffd_args_u64(args, "direct", &direct, 0, 1)) < 0 ||
	    (ret = uffd_args_u64(args, "readonly", &ro, 0, 1)) < 0 ||
	    (ret = uffd_args_u64(args, "fresh", &fresh, 0, 1)) < 0 ||
	    (ret = uffd_args_u64(args, "pool", &pool, 0, FS_POOL_MAX)) < 0 ||
	    (ret = uffd_args_u64(args, "offset", &fs->off, 0, INT64_MAX)) < 0 ||
	    (ret = uffd_args_u64(args, "spin", &spin, 0, 1000000)) < 0 ||
	    (ret = uffd_args_u64(args, "inject_eio", &fs->inject, 0,
				 FS_NONE - 1)) < 0)
		goto fail;
	fs->spin_ns = spin * 1000;
	if (fs->off % fs->ps || (direct && fs->off % FS_DIRECT_ALIGN)) {
		uffd_set_error("file: offset=%llu is not a multiple of %llu",
			       (unsigned long long)fs->off,
			       (unsigned long long)(fs->off % fs->ps ? fs->ps :
						    FS_DIRECT_ALIGN));
		ret = -EINVAL;
		goto fail;
	}
	fs->direct = direct;
	fs->readonly = ro;
	fs->fresh = fresh;
	flags = O_CLOEXEC | (fs->direct ? O_DIRECT : 0) |
		(fs->readonly ? O_RDONLY : O_RDWR | O_CREAT);
	fs->fd = open(path, flags, 0600);
	if (fs->fd < 0) {
		ret = -errno;
		uffd_set_error("file: open %s%s: %s", path,
			       fs->direct ? " (O_DIRECT)" : "",
			       strerror(errno));
		goto fail;
	}
	/*
	 * One writer or many readers: two handles writing one file (two
	 * evict regions given the same path) would corrupt each other
	 * silently.  A dup shares this lock (same open file).
	 */
	if (flock(fs->fd, (fs->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0 &&
	    errno != ENOLCK && errno != EINVAL) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		uffd_set_error("file: %s is %s by another store handle", path,
			       fs->readonly ? "being written" : "in use");
		goto fail;
	}
	ret = file_size(fs, path);
	if (ret < 0)
		goto fail;
	ret = file_length(fs, path, len);
	if (ret < 0)
		goto fail;
	if (pool) {
		ret = file_pool_map(fs, pool);
		if (ret < 0)
			goto fail;
	}
	if (uring)
		file_ring(fs);
	*state = fs;
	return 0;
fail:
	file_close(fs);
	return ret;
}

static void set_bits(uint64_t *map, uint64_t p, uint64_t end)
{
	for (; p < end; p++)
		map[p / 64] |= 1ull << (p % 64);
}

/* Store page of file offset @at (>= fs->off), rounded down or up. */
static uint64_t page_of(const struct file_store *fs, uint64_t at, bool up)
{
	return (at - fs->off + (up ? fs->ps - 1 : 0)) / fs->ps;
}

/*
 * The pages that hold data now, from the file system's own map; pages
 * past the file's end hold none.
 */
static int file_data(void *state, uint64_t npages, uint64_t *bitmap)
{
	struct file_store *fs = state;
	uint64_t end = fs->size0 < fs->off + fs->len ? fs->size0
						     : fs->off + fs->len;
	off_t pos = (off_t)fs->off;

	(void)npages;
	if (fs->fresh || end <= fs->off)
		return 0;
	if (fs->blk) {
		set_bits(bitmap, 0, page_of(fs, end, true));
		return 0;
	}
	while ((uint64_t)pos < end) {
		off_t data = lseek(fs->fd, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;			/* holes to the end */
		if (data < 0) {
			/* no SEEK_DATA here: all of it is data */
			set_bits(bitmap, page_of(fs, (uint64_t)pos, false),
				 page_of(fs, end, true));
			break;
		}
		if ((uint64_t)data >= end)
			break;
		hole = lseek(fs->fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		set_bits(bitmap, page_of(fs, (uint64_t)data, false),
			 page_of(fs, (uint64_t)hole, true));
		pos = hole;
	}
	return 0;
}

static bool in_pool(const struct file_store *fs, const void *buf,
		    uint64_t len)
{
	const char *b = buf;

	return fs->fixed && b >= fs->pool &&
	       len <= fs->pool_len && (size_t)(b - fs->pool) <= fs->pool_len - len;
}

/*
 * Account @res (bytes or -errno) for @io.  Returns true when the request
 * is finished (and completed), false when the rest must be resubmitted.
 */
static bool io_result(struct file_store *fs, struct uffd_store_io *io,
		      long res)
{
	uint64_t len = io->npages * fs->ps;
	uint64_t at = fs->off + io->page * fs->ps;	/* in the file */
	bool read = io->op == LIBUFFD_STORE_READ;

	if ((res == -EINTR || res == -EAGAIN) && ++io->priv[1] < FS_RETRIES)
		return false;
	if (res < 0) {
		uffd_store_complete(io, (int)res);
		return true;
	}
	if (res == 0 && (!read || at + io->priv[0] < fs->eof)) {
		/* the file ends before it did at open: it shrank */
		uffd_store_complete(io, -EIO);
		return true;
	}
	io->priv[0] += (uint64_t)res;
	if (read && at + io->priv[0] >= fs->eof) {
		/*
		 * Done at the end: zeros from there on, whatever the file
		 * gained since open.  No read past it either: with O_DIRECT
		 * the rest would start at an unaligned offset.
		 */
		uint64_t keep = fs->eof > at ? fs->eof - at : 0;

		if (keep < len)
			memset((char *)io->buf + keep, 0, len - keep);
		uffd_store_complete(io, 0);
		return true;
	}
	if (io->priv[0] < len)
		return false;
	uffd_store_complete(io, 0);
	return true;
}

static void rw_sync(struct file_store *fs, struct uffd_store_io *io)
{
	uint64_t len = io->npages * fs->ps;

	do {
		char *b = (char *)io->buf + io->priv[0];
		off_t off = (off_t)(fs->off + io->page * fs->ps + io->priv[0]);
		ssize_t got;

		if (io->op == LIBUFFD_STORE_WRITE)
			got = pwrite(fs->fd, b, len - io->priv[0], off);
		else
			got = pread(fs->fd, b, len - io->priv[0], off);
		if (got < 0)
			got = -errno;
		if (io_result(fs, io, (long)got))
			return;
	} while (1);
}

static void prep(struct file_store *fs, struct io_uring_sqe *sqe,
		 struct uffd_store_io *io)
{
	uint64_t left = io->npages * fs->ps - io->priv[0];
	unsigned int n = (unsigned int)(left < FS_CHUNK_MAX ? left
							     : FS_CHUNK_MAX);
	char *b = (char *)io->buf + io->priv[0];
	uint64_t off = fs->off + io->page * fs->ps + io->priv[0];

	if (in_pool(fs, io->buf, io->npages * fs->ps)) {
		io->out_flags |= LIBUFFD_STORE_IO_FIXED;
		if (io->op == LIBUFFD_STORE_WRITE)
			io_uring_prep_write_fixed(sqe, fs->fd, b, n, off, 0);
		else
			io_uring_prep_read_fixed(sqe, fs->fd, b, n, off, 0);
	} else if (io->op == LIBUFFD_STORE_WRITE) {
		io_uring_prep_write(sqe, fs->fd, b, n, off);
	} else {
		io_uring_prep_read(sqe, fs->fd, b, n, off);
	}
	io_uring_sqe_set_data(sqe, io);
}

/* io_uring_submit(), and a completion's result, as injection wants them */
static int ring_submit(struct file_store *fs)
{
	int err = luffd_inject(LUFFD_INJ_URING_SUBMIT);

	return err ? -err : io_uring_submit(&fs->ring);
}

static int cqe_res(const struct io_uring_cqe *cqe)
{
	int err = luffd_inject(LUFFD_INJ_URING_CQE);

	return err ? -err : cqe->res;
}

static int ring_wait(struct file_store *fs, struct io_uring_cqe **cqe)
{
	int err = luffd_inject(LUFFD_INJ_URING_WAIT);

	return err ? -err : io_uring_wait_cqe(&fs->ring, cqe);
}

static struct io_uring_sqe *get_sqe(struct file_store *fs)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fs->ring);

	if (!sqe) {
		/* the ring is full: send what is queued to make room */
		ring_submit(fs);
		sqe = io_uring_get_sqe(&fs->ring);
	}
	return sqe;
}

static int file_submit(void *state, struct uffd_store_io *const *ios,
		       unsigned int n)
{
	struct file_store *fs = state;
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		const struct uffd_store_io *io = ios[i];

		if (io->op == LIBUFFD_STORE_WRITE && fs->readonly) {
			uffd_set_error("file: opened readonly=1: no writes");
			return -EBADF;
		}
		if (fs->direct && ((uintptr_t)io->buf % FS_DIRECT_ALIGN)) {
			uffd_set_error("file: direct=1 needs buffers aligned to %d bytes",
				       FS_DIRECT_ALIGN);
			return -EINVAL;
		}
	}
	for (i = 0; i < n; i++) {
		struct uffd_store_io *io = ios[i];
		struct io_uring_sqe *sqe;

		if (fs->inject >= io->page &&
		    fs->inject < io->page + io->npages) {
			uffd_store_complete(io, -EIO);
			continue;
		}
		if (!fs->uring) {
			rw_sync(fs, io);
			continue;
		}
		sqe = get_sqe(fs);
		if (!sqe) {
			/* cannot happen after a submit; never lose one */
			rw_sync(fs, io);
			continue;
		}
		prep(fs, sqe, io);
		fs->inflight++;
	}
	if (fs->uring) {
		ret = ring_submit(fs);
		if (ret < 0 && ret != -EBUSY && ret != -EAGAIN &&
		    ret != -EINTR) {
			/* queued SQEs go out with the next submit */
			uffd_set_error("file: io_uring_submit: %s",
				       strerror(-ret));
		}
	}
	return 0;
}

/*
 * spin=US: look for a completion for up to US microseconds, running the
 * ring's task work each time, before sleeping for it.  The thread that
 * waits for a fault's read has nothing else to do, and a sleep's wake-up
 * (an interrupt, then the scheduler) is a good part of a fast disk's
 * latency in a virtual machine.
 */
static int spin_cqe(struct file_store *fs, struct io_uring_cqe **cqe)
{
	struct timespec t;
	uint64_t end;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t);
	end = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec +
	      fs->spin_ns;
	for (;;) {
		ret = io_uring_peek_cqe(&fs->ring, cqe);
		if (ret != -EAGAIN)
			return ret;
		io_uring_get_events(&fs->ring);
		ret = io_uring_peek_cqe(&fs->ring, cqe);
		if (ret != -EAGAIN)
			return ret;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec >
		    end)
			return ring_wait(fs, cqe);
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Send what a failed submit left queued: 0, or its last error. */
static int flush_sqes(struct file_store *fs)
{
	struct timespec ts = { .tv_nsec = 20000 };
	uint64_t end = 0;
	int ret;

	while (io_uring_sq_ready(&fs->ring)) {
		ret = ring_submit(fs);
		if (ret >= 0 || ret == -EINTR)
			continue;
		/* -EAGAIN, -EBUSY: completions to reap first */
		if (ret == -EAGAIN || ret == -EBUSY)
			return 0;
		/* by the clock: a sleep's length is the scheduler's */
		if (!end)
			end = now_ns() + FS_SUBMIT_NS;
		else if (now_ns() > end) {
			uffd_set_error("file: io_uring_submit: %s",
				       strerror(-ret));
			return ret;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

/*
 * The submits failed for good: take back the requests the kernel never
 * saw, and finish them with @err.  Their SQEs sit between the kernel's
 * head and our tail, published or not, and without SQPOLL the kernel
 * reads them only inside io_uring_enter(): pulling the tail back to the
 * head hands them back whole.  A request left there would go out with
 * the next submit that works, long after its caller took its buffer
 * back.  Returns how many requests that finished.
 */
static unsigned int unqueue(struct file_store *fs, int err)
{
	struct io_uring_sq *sq = &fs->ring.sq;
	unsigned int head = *sq->khead, i, n = 0;

	/* SQE i is sqes[i & mask]: liburing hands them out in order */
	for (i = head; i != sq->sqe_tail; i++) {
		struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
		struct uffd_store_io *io =
			(struct uffd_store_io *)(uintptr_t)sqe->user_data;

		uffd_store_complete(io, err);
		fs->inflight--;
		n++;
	}
	sq->sqe_head = sq->sqe_tail = head;
	io_uring_smp_store_release(sq->ktail, head);
	return n;
}

/* Queue the rest of @io (a short one, or a retry); false: it finished. */
static bool requeue(struct file_store *fs, struct uffd_store_io *io)
{
	struct io_uring_sqe *sqe = get_sqe(fs);

	if (!sqe) {
		/* the ring is full of requests a failing submit left */
		rw_sync(fs, io);
		return false;
	}
	prep(fs, sqe, io);
	ring_submit(fs);
	return true;
}

static int file_wait(void *state, unsigned int min)
{
	struct file_store *fs = state;
	unsigned int done = 0;

	while (fs->inflight) {
		struct io_uring_cqe *cqe;
		struct uffd_store_io *io;
		int ret;

		/*
		 * A submit that failed left its SQEs queued, unseen by the
		 * kernel: waiting for their completions would be for ever.
		 * Send them first, trying again for a while if need be;
		 * then they fail, taken back: the kernel never has a
		 * request its caller was told is over.
		 */
		if (done < min && io_uring_sq_ready(&fs->ring)) {
			ret = flush_sqes(fs);
			if (ret < 0) {
				done += unqueue(fs, ret);
				continue;
			}
		}
		if (done < min && fs->spin_ns)
			ret = spin_cqe(fs, &cqe);
		else if (done < min)
			ret = ring_wait(fs, &cqe);
		else
			ret = io_uring_peek_cqe(&fs->ring, &cqe);
		if (ret == -EAGAIN && done >= min)
			break;
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0) {
			uffd_set_error("file: io_uring wait: %s",
				       strerror(-ret));
			return done ? (int)done : ret;
		}
		io = io_uring_cqe_get_data(cqe);
		ret = cqe_res(cqe);
		io_uring_cqe_seen(&fs->ring, cqe);
		if (io_result(fs, io, ret)) {
			fs->inflight--;
			done++;
			continue;
		}
		/* the rest of a short one, or a retry */
		if (!requeue(fs, io)) {
			fs->inflight--;
			done++;
		}
	}
	return (int)done;
}

static int file_discard(void *state, uint64_t page, uint64_t npages)
{
	struct file_store *fs = state;

	/* the bitmap already reads them as zeros: space is a bonus */
	if (fs->readonly || fs->blk)
		return 0;
	if (fallocate(fs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(fs->off + page * fs->ps),
		      (off_t)(npages * fs->ps)) < 0 &&
	    errno != EOPNOTSUPP) {
		uffd_set_error("file: punching a hole: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int file_sync(void *state)
{
	struct file_store *fs = state;

	if (fs->readonly)
		return 0;
	if (fdatasync(fs->fd) < 0) {
		uffd_set_error("file: fdatasync: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int file_pool(void *state, void **buf, size_t *len)
{
	struct file_store *fs = state;

	if (!fs->pool) {
		uffd_set_error("file: no buffer pool (pool=0, or engine=pread "
			       "without pool=N)");
		return -EOPNOTSUPP;
	}
	*buf = fs->pool;
	*len = fs->pool_len;
	return 0;
}

/* The same file through a descriptor, a ring and a pool of its own. */
static int file_dup(void *state, void **out)
{
	struct file_store *fs = state, *d = malloc(sizeof(*d));
	int ret;

	if (!d) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	*d = *fs;
	d->uring = false;
	d->inflight = 0;
	d->pool = NULL;
	d->pool_len = 0;
	d->fixed = false;
	d->spin_ns = 0;		/* a dup is another thread's: it sleeps */
	d->fd = fcntl(fs->fd, F_DUPFD_CLOEXEC, 0);
	if (d->fd < 0) {
		ret = -errno;
		uffd_set_error("file: dup: %s", strerror(errno));
		free(d);
		return ret;
	}
	if (fs->pool) {
		ret = file_pool_map(d, fs->pool_len / fs->ps);
		if (ret < 0) {
			file_close(d);
			return ret;
		}
	}
	if (fs->uring)
		file_ring(d);
	*out = d;
	return 0;
}

const struct uffd_store_ops luffd_store_file = {
	.version	= LIBUFFD_STORE_OPS_VERSION,
	.name		= "file",
	.flags		= LIBUFFD_STORE_ASYNC | LIBUFFD_STORE_PERSISTENT,
	.open		= file_open,
	.data		= file_data,
	.submit		= file_submit,
	.wait		= file_wait,
	.discard	= file_discard,
	.sync		= file_sync,
	.pool		= file_pool,
	.close		= file_close,
	.dup		= file_dup,
};
