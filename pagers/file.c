/* SPDX-License-Identifier: MIT */
/*
 * file: serve a region lazily from a snapshot file, as checkpoint restore
 * (CRIU lazy-pages), VM snapshot resume (Firecracker) and postcopy
 * migration do by hand.  Region page i holds the file's bytes at
 * offset + i * page size.
 *
 *   file:path=P[,offset=O][,readahead=N][,prefetch=1][,direct=1]
 *       [,engine=uring|pread|mmap][,inject_eio=PAGE]
 *
 * A fault reads its window of N pages (the N-aligned block holding it,
 * clipped to the region, trimmed of pages already filled) and resolves it
 * in runs: runs of data pages with UFFDIO_COPY, runs of all-zero pages
 * with UFFDIO_ZEROPAGE (the shared zero page: no memory, and a hole in a
 * sparse image costs no copy).  A write fault on an all-zero page gets a
 * fresh zeroed page instead, as the zero pager does, so that the write
 * does not take a second, copy-on-write fault.  The run holding the
 * faulting page is resolved first, so the faulting thread waits for its
 * own page and not for the rest of the window.
 *
 * Engines:
 *  uring (default)  io_uring reads into bounce buffers registered with
 *                   the ring at init (IORING_OP_READ_FIXED).  A window
 *                   whose missing pages form several runs is read with one
 *                   SQE per run and a single io_uring_enter.  With one
 *                   run per fault, the usual case, it is no faster than
 *                   pread (measured by bench-restore: within noise, with
 *                   and without read-ahead); it pays off where a window
 *                   has holes, and with O_DIRECT, where the registered
 *                   buffers save pinning the pages for every read.
 *  pread            one pread per run of the window: the simple handler.
 *  mmap             UFFDIO_COPY straight from a MAP_PRIVATE mapping of the
 *                   file, as Firecracker's example handler does.  The
 *                   pager never reads that mapping itself (a page the file
 *                   lost would raise SIGBUS in the handler; the kernel's
 *                   copy fails with EFAULT instead), so it cannot tell
 *                   zero pages: every page inside the file is copied.
 *
 * readahead=N defaults to 16 pages (64 KiB): the kernel's own fault-around
 * size (fault_around_bytes), and where the sequential gain levels off.
 * Measured with bench-restore (256 MiB image, page cache dropped, median
 * of 3, time vs readahead=1): sequential 0.60x at 4 pages, 0.50x at 16,
 * 0.50x at 64, 0.48x at 256; the fault's p50 service time meanwhile goes
 * 16, 16, 64, 256 us.  Random touches of the whole image keep gaining
 * with bigger windows (every page read is eventually used there), but a
 * program that touches a fraction of its memory pays for each page
 * brought in needlessly, and each fault waits for the whole window.
 * readahead=1 is one page per fault.
 *
 * prefetch=1 starts a helper thread at the first fault.  It walks the
 * region once, from the first faulting page on and wrapping around, and
 * fills every page nobody has filled yet through its own resolver
 * (uffd_resolver_create), with its own ring and buffer.  Like CRIU's
 * lazy-pages it reads in chunks that double (from 64 KiB to 4 MiB) while
 * no fault arrives and drop back to the minimum as soon as one does, so
 * that its I/O never queues a fault behind a large read.  Faults take
 * priority: the fault path never waits for the helper (no lock, no shared
 * buffer; a page both want is filled by whoever comes first, the other
 * sees EEXIST), and the helper runs as SCHED_IDLE (nice 19 where that is
 * refused), so that on a shared CPU the handler and the application
 * always win.  Each page is filled exactly once:
 * the resolvers skip pages they know are present and the kernel's EEXIST
 * settles the races.
 *
 * direct=1 opens the file O_DIRECT (page-aligned buffers and offsets; the
 * offset must then be a multiple of 4096).  Not with engine=mmap.
 *
 * Errors never become zeros.  The file's length at init is where "past
 * the end" starts: region pages beyond it are zero-mapped without any I/O
 * (a page straddling it is read and its tail zeroed).  A read that fails,
 * or comes back short of what the file held at init (it shrank under
 * us), fails the fault: the library poisons the faulting page, the
 * toucher gets SIGBUS, and the handler goes on serving other pages.  A
 * window read that fails is retried for the faulting page alone, so one
 * bad page does not take its neighbours down with it.
 *
 * inject_eio=PAGE is a testing aid: every read that covers region page
 * PAGE fails with EIO (with the mmap engine, its copy does).
 *
 * After MADV_DONTNEED (a REMOVE event) a page reads back as zeros, like
 * anonymous memory: the application threw the contents away.  A prefetch
 * that was already copying such a page when the event arrived may still
 * land after the kernel zapped it: the kernel holds fills back only until
 * the event is read, and nothing tells a helper thread when the zap is
 * done.  Do not MADV_DONTNEED a region while its prefetch runs.
 *
 * Paths containing ',' cannot be given (the spec separator).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <liburing.h>
#include <libuffd.h>

#define FP_RA_DEFAULT		16
#define FP_RA_MAX		4096
#define FP_WINDOW_MAX		(64ull << 20)	/* bytes */
/* prefetch chunk bounds, bytes */
#define FP_PF_MIN_BYTES		(64ull << 10)
#define FP_PF_MAX_BYTES		(4ull << 20)
#define FP_RING_DEPTH		16
#define FP_DIRECT_ALIGN		4096
/* a read that keeps saying EINTR/EAGAIN fails after this many tries */
#define FP_RETRIES		64
#define FP_NONE			UINT64_MAX

enum fp_engine { ENG_URING, ENG_PREAD, ENG_MMAP };

/* What to do with each page of a window (one byte per page). */
enum {
	K_SKIP,		/* filled already, or not ours to fill */
	K_WANT,		/* to be read */
	K_BUF,		/* data, in the bounce buffer */
	K_MAP,		/* data, in the file mapping (engine=mmap) */
	K_ZERO,		/* all zero, or past the end of the file */
	K_ERR,		/* the read failed or came back short */
};

/* One read: a run of consecutive missing pages. */
struct fp_run {
	uint64_t	p;		/* first region page */
	uint64_t	n;		/* pages */
	uint64_t	want;		/* bytes the file held at init */
	uint64_t	got;		/* bytes read so far */
	int		err;
	unsigned int	retries;	/* EINTR/EAGAIN so far */
	bool		fin, inflight;
};

/* A reader: the fault path has one, the prefetch thread another. */
struct fp_io {
	struct io_uring	ring;
	bool		ring_init;	/* ring set up */
	bool		ring_ok;	/* ...and healthy */
	bool		fixed;		/* buf registered */
	char		*buf;
	size_t		buf_len;
	uint8_t		*st;		/* per page of a window */
	struct fp_run	*runs;
	uint64_t	max_pages;
};

struct file_pager {
	struct uffd_region *region;
	enum fp_engine	engine;
	int		fd;
	bool		direct;
	uint64_t	ps;
	unsigned int	shift;
	uint64_t	npages;
	uint64_t	foff;		/* file offset of region byte 0 */
	uint64_t	data_end;	/* region bytes in the file at init */
	uint64_t	window;		/* pages per fault */
	uint64_t	inject;		/* page that fails, or FP_NONE */

	char		*map;		/* engine=mmap */
	size_t		map_len;
	size_t		map_delta;	/* foff - mapping's offset */

	/* bitmaps, atomic: shared by the fault path and the prefetcher */
	uint64_t	*done;		/* filled (or gone) */
	uint64_t	*removed;	/* MADV_DONTNEED: zeros now */

	struct fp_io	fio;		/* the fault path's */

	/* prefetch */
	bool		prefetch;
	struct fp_io	pio;
	struct uffd_resolver *pres;
	pthread_t	thread;
	bool		running;
	uint64_t	faults;		/* atomic: faults so far */
	uint32_t	gate;		/* futex: GATE_* */
	uint64_t	first;		/* first faulting page */
	uint64_t	walked;		/* pages gone past */
	uint64_t	pos;		/* next page it looks at */
	uint64_t	chunk;		/* current chunk, pages */
	uint64_t	pf_min, pf_max;	/* chunk bounds, pages */
};

#define GATE_ARMED	1u	/* a fault happened: go */
#define GATE_STOP	2u

static const char *const file_keys[] = {
	"path", "offset", "readahead", "prefetch", "direct", "engine",
	"inject_eio", NULL
};

/* ------------------------------------------------------- bitmaps */

static bool bit_test(const uint64_t *map, uint64_t p)
{
	return __atomic_load_n(&map[p >> 6], __ATOMIC_ACQUIRE) &
	       (1ull << (p & 63));
}

static void bits_change(uint64_t *map, uint64_t p, uint64_t end, bool set)
{
	while (p < end) {
		unsigned int bit = (unsigned int)(p & 63);
		uint64_t n = end - p < 64 - bit ? end - p : 64 - bit;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;

		if (set)
			__atomic_fetch_or(&map[p >> 6], mask, __ATOMIC_RELEASE);
		else
			__atomic_fetch_and(&map[p >> 6], ~mask,
					   __ATOMIC_RELEASE);
		p += n;
	}
}

/* Nothing to fill at page @p: filled already, or zeros on demand. */
static bool page_skip(const struct file_pager *fp, uint64_t p)
{
	return bit_test(fp->done, p) || bit_test(fp->removed, p);
}

/* ------------------------------------------------------- reading */

static bool page_is_zero(const char *page, size_t len)
{
	const uint64_t *w = (const uint64_t *)(const void *)page;
	size_t i;

	/* data pages leave at the first word; only zero pages read it all */
	for (i = 0; i < len / sizeof(*w); i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
		    w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

static void run_done(struct fp_run *r, int err)
{
	r->err = err;
	r->fin = true;
	r->inflight = false;
}

/* Account @res bytes (or -errno) for a read of run @r. */
static void run_result(struct fp_run *r, long res)
{
	r->inflight = false;
	/* resubmit as it was, but a fault must not spin for ever */
	if ((res == -EINTR || res == -EAGAIN) && ++r->retries < FP_RETRIES)
		return;
	if (res < 0)
		run_done(r, (int)res);
	else if (res == 0)
		run_done(r, 0);			/* end of file: short */
	else if ((r->got += (uint64_t)res) >= r->want)
		run_done(r, 0);
}

static int read_pread(struct file_pager *fp, struct fp_run *runs, size_t nr,
		      char *buf, uint64_t p0)
{
	size_t i;

	for (i = 0; i < nr; i++) {
		struct fp_run *r = &runs[i];
		char *dst = buf + ((r->p - p0) << fp->shift);
		uint64_t len = r->n << fp->shift;
		off_t off = (off_t)(fp->foff + (r->p << fp->shift));

		while (!r->fin) {
			ssize_t got = pread(fp->fd, dst + r->got, len - r->got,
					    off + (off_t)r->got);

			run_result(r, got < 0 ? -errno : (long)got);
		}
	}
	return 0;
}

/*
 * One SQE per run, all submitted by one io_uring_enter; short reads are
 * resubmitted for the rest.  Returns 0, or -errno when the ring itself
 * failed (the caller then reads with pread).
 */
static int read_uring(struct file_pager *fp, struct fp_io *io,
		      struct fp_run *runs, size_t nr, char *buf, uint64_t p0)
{
	unsigned int inflight = 0;
	size_t left = 0, i;

	for (i = 0; i < nr; i++)
		left += !runs[i].fin;

	while (left) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;
		int ret;

		for (i = 0; i < nr; i++) {
			struct fp_run *r = &runs[i];
			struct io_uring_sqe *sqe;
			uint64_t len, off;
			char *dst;

			if (r->fin || r->inflight)
				continue;
			sqe = io_uring_get_sqe(&io->ring);
			if (!sqe)
				break;
			dst = buf + ((r->p - p0) << fp->shift) + r->got;
			len = (r->n << fp->shift) - r->got;
			off = fp->foff + (r->p << fp->shift) + r->got;
			if (io->fixed)
				io_uring_prep_read_fixed(sqe, fp->fd, dst,
							 (unsigned int)len,
							 off, 0);
			else
				io_uring_prep_read(sqe, fp->fd, dst,
						   (unsigned int)len, off);
			io_uring_sqe_set_data64(sqe, i);
			r->inflight = true;
			inflight++;
		}
		ret = io_uring_submit_and_wait(&io->ring, inflight);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY)
			return ret;
		io_uring_for_each_cqe(&io->ring, head, cqe) {
			struct fp_run *r = &runs[cqe->user_data];

			run_result(r, cqe->res);
			if (r->fin)
				left--;
			inflight--;
			seen++;
		}
		io_uring_cq_advance(&io->ring, seen);
	}
	return 0;
}

/*
 * Read what the pages of [p0, p0 + n) marked K_WANT in @st need, into
 * @buf (page p0 at @buf), and mark each K_BUF, K_MAP, K_ZERO or K_ERR.
 */
static void fp_read(struct file_pager *fp, struct fp_io *io, uint64_t p0,
		    uint64_t n, uint8_t *st, char *buf)
{
	struct fp_run *runs = io->runs;
	uint64_t i, full = fp->data_end >> fp->shift;
	size_t nr = 0, k;

	for (i = 0; i < n; i++) {
		uint64_t p = p0 + i;

		if (st[i] != K_WANT)
			continue;
		if ((p << fp->shift) >= fp->data_end) {
			st[i] = K_ZERO;	/* past the end at init */
			continue;
		}
		if (fp->engine == ENG_MMAP && p < full) {
			st[i] = p == fp->inject ? K_ERR : K_MAP;
			continue;
		}
		if (nr && runs[nr - 1].p + runs[nr - 1].n == p) {
			runs[nr - 1].n++;
			continue;
		}
		runs[nr++] = (struct fp_run){ .p = p, .n = 1 };
	}
	if (!nr)
		return;
	for (k = 0; k < nr; k++) {
		struct fp_run *r = &runs[k];
		uint64_t start = r->p << fp->shift;

		r->want = fp->data_end - start;
		if (r->want > r->n << fp->shift)
			r->want = r->n << fp->shift;
		if (fp->inject >= r->p && fp->inject < r->p + r->n)
			run_done(r, -EIO);
	}
	if (fp->engine == ENG_URING && io->ring_ok &&
	    read_uring(fp, io, runs, nr, buf, p0) < 0) {
		/*
		 * The ring failed as a whole: SQEs may be stuck in it, and
		 * would land in the buffer later.  Never use it again.
		 */
		io->ring_ok = false;
		for (k = 0; k < nr; k++)
			if (!runs[k].fin)
				runs[k].inflight = false;
	}
	read_pread(fp, runs, nr, buf, p0);	/* whatever is left */

	for (k = 0; k < nr; k++) {
		struct fp_run *r = &runs[k];
		uint64_t j;

		for (j = 0; j < r->n; j++) {
			uint64_t rel = j << fp->shift, end = rel + fp->ps;
			char *page = buf + ((r->p + j - p0) << fp->shift);
			uint8_t *s = &st[r->p + j - p0];

			if (end > r->want)
				end = r->want;
			if (r->got < end) {
				*s = K_ERR;	/* error, or short */
				continue;
			}
			/* the file may have grown since init: cut it there */
			if (rel + fp->ps > r->want)
				memset(page + (r->want - rel), 0,
				       fp->ps - (r->want - rel));
			*s = page_is_zero(page, fp->ps) ? K_ZERO : K_BUF;
		}
	}
}

/* ------------------------------------------------------- filling */

/*
 * Resolve pages [a, b) of the window at p0, all of kind st[a - p0].
 * @zfill: a write fault on a zero page (fresh page, not the zero page).
 * Marks them done on success.
 */
static long fill_run(struct file_pager *fp, struct uffd_resolver *res,
		     uint64_t p0, uint64_t a, uint64_t b, uint8_t kind,
		     const char *buf, bool zfill)
{
	uint64_t off = a << fp->shift, len = (b - a) << fp->shift;
	long ret;

	if (kind == K_ZERO && zfill)
		ret = uffd_resolve_zerofill(res, off, len);
	else if (kind == K_ZERO)
		ret = uffd_resolve_zeropage(res, off, len);
	else if (kind == K_BUF)
		ret = uffd_resolve_copy(res, off,
					buf + ((a - p0) << fp->shift), len);
	else
		ret = uffd_resolve_copy(res, off,
					fp->map + fp->map_delta + off, len);
	if (ret >= 0)
		bits_change(fp->done, a, b, true);
	return ret;
}

static bool fillable(uint8_t k)
{
	return k == K_BUF || k == K_MAP || k == K_ZERO;
}

/*
 * Resolve every fillable page of the window [p0, p0 + n), in runs of one
 * kind.  The run holding @pf (a faulting page, or FP_NONE) goes first.
 * Returns 0 when @pf was filled (or, without @pf, every page was), else
 * the error for @pf (or the first one); -ESRCH (the process is gone)
 * stops at once.  @wf: a page written to, which gets a fresh zeroed page
 * rather than the zero page if it is zero.
 */
static long fp_fill(struct file_pager *fp, struct uffd_resolver *res,
		    uint64_t p0, uint64_t n, const uint8_t *st,
		    const char *buf, uint64_t pf, uint64_t wf)
{
	uint64_t fa = FP_NONE, fb = FP_NONE, zf = FP_NONE, i, j;
	long ret, err = 0;

	if (wf != FP_NONE && st[wf - p0] == K_ZERO)
		zf = wf;		/* a run of its own */
	if (pf != FP_NONE && !fillable(st[pf - p0])) {
		err = -EIO;
	} else if (pf != FP_NONE) {
		uint8_t k = st[pf - p0];

		fa = pf;
		fb = pf + 1;
		if (pf != zf) {
			while (fa > p0 && st[fa - 1 - p0] == k && fa - 1 != zf)
				fa--;
			while (fb < p0 + n && st[fb - p0] == k && fb != zf)
				fb++;
		}
		ret = fill_run(fp, res, p0, fa, fb, k, buf, pf == zf);
		/*
		 * A multi-page copy from the mapping fails as a whole when
		 * one source page is gone: try the faulting page alone.
		 */
		if (ret < 0 && ret != -ESRCH && fb - fa > 1)
			ret = fill_run(fp, res, p0, pf, pf + 1, k, buf,
				       pf == zf);
		if (ret == -ESRCH)
			return ret;
		if (ret < 0)
			err = ret;
	}
	for (i = p0; i < p0 + n; i = j) {
		uint8_t k = st[i - p0];

		j = i + 1;
		if (i == fa) {
			j = fb;
			continue;
		}
		if (!fillable(k))
			continue;
		if (i != zf)
			while (j < p0 + n && j != fa && j != zf &&
			       st[j - p0] == k)
				j++;
		ret = fill_run(fp, res, p0, i, j, k, buf, i == zf);
		if (ret == -ESRCH)
			return ret;
		if (ret < 0 && !err && pf == FP_NONE)
			err = ret;
	}
	return err;
}

/* ------------------------------------------------------- prefetch */

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool pf_stopping(struct file_pager *fp)
{
	return __atomic_load_n(&fp->gate, __ATOMIC_ACQUIRE) & GATE_STOP;
}

/* The next page from fp->pos that needs filling; walks fp->walked on. */
static bool pf_next(struct file_pager *fp)
{
	while (fp->walked < fp->npages) {
		uint64_t w = __atomic_load_n(&fp->done[fp->pos >> 6],
					     __ATOMIC_ACQUIRE) |
			     __atomic_load_n(&fp->removed[fp->pos >> 6],
					     __ATOMIC_ACQUIRE);

		/* whole words of filled pages at a time */
		if (!(fp->pos & 63) && w == ~0ull &&
		    fp->pos + 64 <= fp->npages &&
		    fp->walked + 64 <= fp->npages) {
			fp->pos += 64;
			fp->walked += 64;
		} else if (w & (1ull << (fp->pos & 63))) {
			fp->pos++;
			fp->walked++;
		} else {
			return true;
		}
		if (fp->pos == fp->npages)
			fp->pos = 0;
	}
	return false;
}

static void *prefetch_main(void *arg)
{
	struct file_pager *fp = arg;
	uint64_t seen, cpu0, now;

	cpu0 = thread_cpu_ns();

	/*
	 * Faults first: SCHED_IDLE runs only on otherwise idle CPU time and
	 * is preempted at once by any waking thread.  Nice 19 is not
	 * enough: the scheduler lets a running task finish its slice
	 * (measured here: first faults delayed by 2 ms when the prefetcher
	 * had landed on the handler's CPU).
	 */
	{
		struct sched_param sp = { .sched_priority = 0 };

		if (sched_setscheduler(0, SCHED_IDLE, &sp) < 0)
			setpriority(PRIO_PROCESS,
				    (id_t)syscall(SYS_gettid), 19);
	}
	while (!__atomic_load_n(&fp->gate, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &fp->gate, FUTEX_WAIT_PRIVATE, 0,
			NULL, NULL, 0);
	if (pf_stopping(fp))
		return NULL;
	if (fp->pos == FP_NONE)
		fp->pos = __atomic_load_n(&fp->first, __ATOMIC_ACQUIRE);
	seen = __atomic_load_n(&fp->faults, __ATOMIC_ACQUIRE);

	while (!pf_stopping(fp) && pf_next(fp)) {
		uint64_t p = fp->pos, n, f;
		long ret;

		/* CRIU lazy-pages: grow while no fault came, else restart */
		f = __atomic_load_n(&fp->faults, __ATOMIC_ACQUIRE);
		if (f != seen)
			fp->chunk = fp->pf_min;
		else if (fp->chunk < fp->pf_max)
			fp->chunk = fp->chunk * 2 > fp->pf_max ?
				    fp->pf_max : fp->chunk * 2;
		seen = f;

		for (n = 1; n < fp->chunk && p + n < fp->npages &&
		     !page_skip(fp, p + n); n++)
			;
		memset(fp->pio.st, K_WANT, n);
		fp_read(fp, &fp->pio, p, n, fp->pio.st, fp->pio.buf);
		ret = fp_fill(fp, fp->pres, p, n, fp->pio.st, fp->pio.buf,
			      FP_NONE, FP_NONE);
		/* pages that failed stay for their faults to report */
		fp->pos = p + n == fp->npages ? 0 : p + n;
		fp->walked += n;
		if (ret == -ESRCH ||
		    (ret == -ENOENT && uffd_region_gone(fp->region)))
			break;

		now = thread_cpu_ns();
		uffd_region_add_helper_cpu(fp->region, now - cpu0);
		cpu0 = now;
	}
	now = thread_cpu_ns();
	uffd_region_add_helper_cpu(fp->region, now - cpu0);
	return NULL;
}

static void prefetch_arm(struct file_pager *fp, uint64_t pf)
{
	__atomic_add_fetch(&fp->faults, 1, __ATOMIC_RELEASE);
	if (__atomic_load_n(&fp->gate, __ATOMIC_RELAXED) & GATE_ARMED)
		return;
	/* fault hooks of one context run one at a time: no race here */
	__atomic_store_n(&fp->first, pf, __ATOMIC_RELEASE);
	__atomic_fetch_or(&fp->gate, GATE_ARMED, __ATOMIC_RELEASE);
	syscall(SYS_futex, &fp->gate, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ------------------------------------------------------- ops */

static int io_setup(struct file_pager *fp, struct fp_io *io, uint64_t pages)
{
	struct io_uring_params prm = {
		/* completions are reaped in the same call: no IPI needed */
		.flags = IORING_SETUP_COOP_TASKRUN,
	};
	struct iovec iov;
	int ret;

	io->max_pages = pages;
	io->buf_len = pages << fp->shift;
	/* page aligned (O_DIRECT), populated: no fault on first use */
	io->buf = mmap(NULL, io->buf_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (io->buf == MAP_FAILED) {
		io->buf = NULL;
		uffd_set_error("file: bounce buffer of %zu bytes: %s",
			       io->buf_len, strerror(errno));
		return -ENOMEM;
	}
	madvise(io->buf, io->buf_len, MADV_DONTFORK);
	io->st = calloc(pages, 1);
	io->runs = calloc(pages, sizeof(*io->runs));
	if (!io->st || !io->runs) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	if (fp->engine != ENG_URING)
		return 0;
	ret = io_uring_queue_init_params(FP_RING_DEPTH, &io->ring, &prm);
	if (ret == -EINVAL)		/* before 5.19: no COOP_TASKRUN */
		ret = io_uring_queue_init(FP_RING_DEPTH, &io->ring, 0);
	if (ret < 0) {
		uffd_set_error("file: io_uring: %s (try engine=pread)",
			       strerror(-ret));
		return ret;
	}
	io->ring_init = io->ring_ok = true;
	iov.iov_base = io->buf;
	iov.iov_len = io->buf_len;
	/* without (memlock limit), plain reads into the same buffer */
	io->fixed = io_uring_register_buffers(&io->ring, &iov, 1) == 0;
	return 0;
}

static void io_teardown(struct fp_io *io)
{
	if (io->ring_init)
		io_uring_queue_exit(&io->ring);
	io->ring_init = io->ring_ok = io->fixed = false;
	if (io->buf)
		munmap(io->buf, io->buf_len);
	io->buf = NULL;
	free(io->st);
	free(io->runs);
	io->st = NULL;
	io->runs = NULL;
}

static int parse_bool(const struct uffd_args *args, const char *key,
		      bool *out)
{
	uint64_t v = 0;
	int ret = uffd_args_u64(args, key, &v, 0, 1);

	*out = v;
	return ret;
}

static int file_size(int fd, const char *path, uint64_t *size)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0) {
		uffd_set_error("file: stat %s: %s", path, strerror(errno));
		return -errno;
	}
	if (S_ISREG(sb.st_mode)) {
		*size = (uint64_t)sb.st_size;
		return 0;
	}
	if (S_ISBLK(sb.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			uffd_set_error("file: size of %s: %s", path,
				       strerror(errno));
			return -errno;
		}
		return 0;
	}
	uffd_set_error("file: %s: not a regular file or block device", path);
	return -EINVAL;
}

static void file_fini(void *state);

static int file_parse(struct file_pager *fp, const struct uffd_args *args,
		      const char **path)
{
	const char *eng;
	uint64_t len = fp->npages << fp->shift;
	int ret;

	ret = uffd_args_check(args, file_keys);
	if (ret < 0)
		return ret;
	*path = uffd_args_get(args, "path");
	if (!*path) {
		uffd_set_error("file: path=FILE is required");
		return -EINVAL;
	}
	eng = uffd_args_get(args, "engine");
	if (!eng || !strcmp(eng, "uring")) {
		fp->engine = ENG_URING;
	} else if (!strcmp(eng, "pread")) {
		fp->engine = ENG_PREAD;
	} else if (!strcmp(eng, "mmap")) {
		fp->engine = ENG_MMAP;
	} else {
		uffd_set_error("file: engine=%s: expected uring, pread or mmap",
			       eng);
		return -EINVAL;
	}
	fp->window = FP_RA_DEFAULT;
	ret = uffd_args_u64(args, "offset", &fp->foff, 0, INT64_MAX - len);
	if (!ret)
		ret = uffd_args_u64(args, "readahead", &fp->window, 1,
				    FP_RA_MAX);
	if (!ret)
		ret = parse_bool(args, "prefetch", &fp->prefetch);
	if (!ret)
		ret = parse_bool(args, "direct", &fp->direct);
	if (!ret)
		ret = uffd_args_u64(args, "inject_eio", &fp->inject, 0,
				    fp->npages - 1);
	if (ret < 0)
		return ret;
	if (fp->window > fp->npages)
		fp->window = fp->npages;
	if (fp->window << fp->shift > FP_WINDOW_MAX) {
		uffd_set_error("file: readahead=%llu: windows above %llu MiB",
			       (unsigned long long)fp->window,
			       FP_WINDOW_MAX >> 20);
		return -EINVAL;
	}
	if (fp->direct && fp->engine == ENG_MMAP) {
		uffd_set_error("file: direct=1 does not go with engine=mmap");
		return -EINVAL;
	}
	if (fp->direct && fp->foff % FP_DIRECT_ALIGN) {
		uffd_set_error("file: direct=1 needs offset to be a multiple "
			       "of %d", FP_DIRECT_ALIGN);
		return -EINVAL;
	}
	return 0;
}

static int map_file(struct file_pager *fp)
{
	uint64_t sys_ps = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t full = fp->data_end - fp->data_end % fp->ps;

	if (!full)
		return 0;
	fp->map_delta = fp->foff % sys_ps;
	fp->map_len = fp->map_delta + full;
	fp->map = mmap(NULL, fp->map_len, PROT_READ, MAP_PRIVATE, fp->fd,
		       (off_t)(fp->foff - fp->map_delta));
	if (fp->map == MAP_FAILED) {
		fp->map = NULL;
		uffd_set_error("file: mmap: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int file_init(struct uffd_region *region, const struct uffd_args *args,
		     void **state)
{
	uint64_t words, size, len;
	const char *path = NULL;
	struct file_pager *fp;
	int ret;

	fp = calloc(1, sizeof(*fp));
	if (!fp) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	fp->fd = -1;
	fp->inject = FP_NONE;
	fp->region = region;
	fp->ps = uffd_region_page_size(region);
	fp->shift = (unsigned int)__builtin_ctzll(fp->ps);
	len = uffd_region_len(region);
	fp->npages = len >> fp->shift;
	ret = file_parse(fp, args, &path);
	if (ret < 0)
		goto fail;

	fp->fd = open(path, O_RDONLY | O_CLOEXEC | (fp->direct ? O_DIRECT : 0));
	if (fp->fd < 0) {
		ret = -errno;
		uffd_set_error("file: open %s%s: %s", path,
			       fp->direct ? " (O_DIRECT)" : "",
			       strerror(errno));
		goto fail;
	}
	ret = file_size(fp->fd, path, &size);
	if (ret < 0)
		goto fail;
	fp->data_end = size > fp->foff ? size - fp->foff : 0;
	if (fp->data_end > len)
		fp->data_end = len;

	words = (fp->npages + 63) / 64;
	fp->done = calloc(words, sizeof(uint64_t));
	fp->removed = calloc(words, sizeof(uint64_t));
	if (!fp->done || !fp->removed) {
		uffd_set_error("file: out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	if (fp->engine == ENG_MMAP) {
		ret = map_file(fp);
		if (ret < 0)
			goto fail;
	}
	ret = io_setup(fp, &fp->fio, fp->window);
	if (ret < 0)
		goto fail;

	if (fp->prefetch) {
		fp->pf_min = FP_PF_MIN_BYTES >> fp->shift;
		fp->pf_max = FP_PF_MAX_BYTES >> fp->shift;
		if (!fp->pf_min)
			fp->pf_min = 1;
		if (!fp->pf_max)
			fp->pf_max = 1;
		if (fp->pf_max > fp->npages)
			fp->pf_max = fp->npages;
		if (fp->pf_min > fp->pf_max)
			fp->pf_min = fp->pf_max;
		fp->chunk = fp->pf_min;
		fp->pos = FP_NONE;
		ret = io_setup(fp, &fp->pio, fp->pf_max);
		if (ret < 0)
			goto fail;
		ret = uffd_resolver_create(region, &fp->pres);
		if (ret < 0)
			goto fail;
	}
	*state = fp;
	return 0;
fail:
	file_fini(fp);
	return ret;
}

static int file_fault(void *state, struct uffd_resolver *res,
		      const struct uffd_fault *f)
{
	struct file_pager *fp = state;
	uint64_t pf = f->offset >> fp->shift, w0, w1, p;
	uint64_t wf = (f->flags & LIBUFFD_FAULT_WRITE) ? pf : FP_NONE;
	uint8_t *st = fp->fio.st;
	long ret;

	if (fp->prefetch)
		prefetch_arm(fp, pf);
	if (bit_test(fp->removed, pf)) {
		/* thrown away by the application: zeros, as anon memory */
		ret = wf == pf ? uffd_resolve_zerofill(res, f->offset, fp->ps)
			       : uffd_resolve_zeropage(res, f->offset, fp->ps);
		if (ret >= 0)
			bits_change(fp->done, pf, pf + 1, true);
		return ret < 0 ? (int)ret : 0;
	}

	/* the aligned window, trimmed at both ends of what is filled */
	w0 = pf - pf % fp->window;
	w1 = w0 + fp->window < fp->npages ? w0 + fp->window : fp->npages;
	while (w0 < pf && page_skip(fp, w0))
		w0++;
	while (w1 - 1 > pf && page_skip(fp, w1 - 1))
		w1--;
	for (p = w0; p < w1; p++)
		st[p - w0] = p == pf || !page_skip(fp, p) ? K_WANT : K_SKIP;

	fp_read(fp, &fp->fio, w0, w1 - w0, st, fp->fio.buf);
	if (st[pf - w0] == K_ERR && w1 - w0 > 1) {
		/* one bad page must not fail its neighbours: just ours */
		st[pf - w0] = K_WANT;
		fp_read(fp, &fp->fio, pf, 1, &st[pf - w0],
			fp->fio.buf + ((pf - w0) << fp->shift));
	}
	ret = fp_fill(fp, res, w0, w1 - w0, st, fp->fio.buf, pf, wf);
	return ret < 0 ? (int)ret : 0;
}

static void file_event(void *state, const struct uffd_event *ev)
{
	struct file_pager *fp = state;
	uint64_t a = ev->offset >> fp->shift;
	uint64_t b = (ev->offset + ev->len + fp->ps - 1) >> fp->shift;

	if (b > fp->npages)
		b = fp->npages;
	if (ev->type == LIBUFFD_EVENT_REMOVE) {
		/* removed before done: the prefetcher must not refill it */
		bits_change(fp->removed, a, b, true);
		bits_change(fp->done, a, b, false);
	} else if (ev->type == LIBUFFD_EVENT_UNMAP) {
		bits_change(fp->done, a, b, true);	/* nothing to fill */
	}
}

static int file_start(void *state)
{
	struct file_pager *fp = state;
	int ret;

	if (!fp->prefetch || fp->running || fp->walked >= fp->npages)
		return 0;
	__atomic_fetch_and(&fp->gate, ~GATE_STOP, __ATOMIC_RELEASE);
	ret = uffd_region_helper_create(fp->region, &fp->thread,
					prefetch_main, fp);
	if (ret < 0)
		return ret;
	fp->running = true;
	return 0;
}

static void file_stop(void *state)
{
	struct file_pager *fp = state;

	if (!fp->running)
		return;
	__atomic_fetch_or(&fp->gate, GATE_STOP, __ATOMIC_RELEASE);
	syscall(SYS_futex, &fp->gate, FUTEX_WAKE_PRIVATE, INT_MAX,
		NULL, NULL, 0);
	pthread_join(fp->thread, NULL);
	fp->running = false;
}

static void file_fini(void *state)
{
	struct file_pager *fp = state;

	if (!fp)
		return;
	file_stop(fp);
	uffd_resolver_destroy(fp->pres);
	io_teardown(&fp->fio);
	io_teardown(&fp->pio);
	if (fp->map)
		munmap(fp->map, fp->map_len);
	if (fp->fd >= 0)
		close(fp->fd);
	free(fp->done);
	free(fp->removed);
	free(fp);
}

const struct uffd_pager_ops luffd_pager_file = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "file",
	.init = file_init,
	.fault = file_fault,
	.event = file_event,
	.start = file_start,
	.stop = file_stop,
	.fini = file_fini,
};
