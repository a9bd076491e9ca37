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
 * The file is read through a page store (libuffd.h, "Page stores"): a
 * read-only file store over the region's length,
 *
 *   file:path=P,readonly=1,offset=O,pool=N[,direct=1],engine=uring|pread
 *
 * so that the library has one way to read a snapshot, not two: io_uring
 * with registered buffers, O_DIRECT, short reads, the end of the file
 * and its holes are the store's business, and this pager only decides
 * what to read and how to map it.  O must be a multiple of the page size
 * (the store's I/O stays page aligned).
 *
 * A fault reads its window of N pages (the N-aligned block holding it,
 * clipped to the region, trimmed of pages already filled).  The store's
 * map of never-written pages (uffd_store_extent: the file's holes at
 * init, seeded from SEEK_DATA/SEEK_HOLE, and whatever lies past its end)
 * splits the window into runs: runs of holes are mapped with
 * UFFDIO_ZEROPAGE without any I/O (the shared zero page: no memory);
 * runs of data are read in one batch (one submit and one reap, so one
 * io_uring_enter for all of them) into the store's buffer pool, then
 * copied with UFFDIO_COPY, except pages that turn out to hold only
 * zeros, which are zero-mapped too.  A write fault on a zero page gets a
 * fresh zeroed page instead, as the zero pager does, so that the write
 * does not take a second, copy-on-write fault.  The run holding the
 * faulting page is resolved first, so the faulting thread waits for its
 * own page and not for the rest of the window.
 *
 * Engines:
 *  uring (default)  the store's io_uring: READ_FIXED into its pool of N
 *                   pages, registered with the ring at init.  With one
 *                   run per fault, the usual case, it is no faster than
 *                   pread (measured by bench-restore: within noise, with
 *                   and without read-ahead); it pays off where a window
 *                   has several runs, and with O_DIRECT, where the
 *                   registered buffers save pinning the pages for every
 *                   read.
 *  pread            the store's pread, one per run: the simple handler.
 *  mmap             UFFDIO_COPY straight from a MAP_PRIVATE mapping of the
 *                   file, as Firecracker's example handler does.  The one
 *                   exception to reading through the store, kept because
 *                   it is not a read at all (the kernel copies from the
 *                   page cache; no buffer, no I/O request) and because it
 *                   is the baseline bench-restore measures the others
 *                   against, so it must do what Firecracker does: copy
 *                   every page the file holds, zeros and holes included.
 *                   The pager never reads that mapping itself (a page the
 *                   file lost would raise SIGBUS in the handler; the
 *                   kernel's copy fails with EFAULT instead), so it
 *                   cannot tell zero pages.  The page straddling the end
 *                   of the file and the pages past it are not in the
 *                   mapping: they go through the store, as with the
 *                   other engines (with engine=pread).
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
 * (uffd_resolver_create) and its own read-only store handle.  A store
 * handle is used by one thread at a time; the helper opens a second
 * one rather than share the fault path's under a lock, because the
 * fault path must never wait for the helper: the lock would be held
 * across the helper's reads (up to 4 MiB), and in SIGBUS delivery mode
 * a fault is served in a signal handler, where waiting for a lock the
 * interrupted thread may hold never ends.  The price: a second
 * descriptor, ring and pool, a second bitmap of one bit per page, and a
 * second SEEK_DATA walk of the file at init.  Like CRIU's lazy-pages it
 * reads in chunks that double (from 64 KiB to 4 MiB) while no fault
 * arrives and drop back to the minimum as soon as one does, so that its
 * I/O never queues a fault behind a large read.  Faults take priority:
 * the fault path never waits for the helper (no lock, no shared buffer;
 * a page both want is filled by whoever comes first, the other sees
 * EEXIST), and the helper runs as SCHED_IDLE (nice 19 where that is
 * refused), so that on a shared CPU the handler and the application
 * always win.  Each page is filled exactly once: the resolvers skip
 * pages they know are present and the kernel's EEXIST settles the races.
 *
 * direct=1 opens the file O_DIRECT (the store's pool is page aligned).
 * Not with engine=mmap.
 *
 * Errors never become zeros.  The file's length and holes at init are
 * what "no data" means: region pages past the end, or in a hole, are
 * zero-mapped without any I/O (a page straddling the end is read and its
 * tail zeroed, even if the file has grown since).  A read that fails, or
 * that the file ends before its length at init (it shrank under us),
 * fails the fault: the library poisons the faulting page, the toucher
 * gets SIGBUS, and the handler goes on serving other pages.  A window
 * read that fails is retried for the faulting page alone, so one bad
 * page does not take its neighbours down with it.  A hole filled in
 * after init still reads as zeros: the snapshot is the file at init.
 *
 * inject_eio=PAGE is a testing aid: every run of a window that holds
 * region page PAGE fails with EIO, before any I/O: a run to read, a run
 * of holes or of pages past the end, or (engine=mmap) a run to copy.
 * The pager does it rather than the store, whose inject_eio only a
 * request that reaches the file meets: a hole's page fails here too.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <libuffd.h>

#define FP_RA_DEFAULT		16
#define FP_RA_MAX		4096
#define FP_WINDOW_MAX		(64ull << 20)	/* bytes */
/* prefetch chunk bounds, bytes */
#define FP_PF_MIN_BYTES		(64ull << 10)
#define FP_PF_MAX_BYTES		(4ull << 20)
#define FP_NONE			UINT64_MAX

enum fp_engine { ENG_URING, ENG_PREAD, ENG_MMAP };

/* What to do with each page of a window (one byte per page). */
enum {
	K_SKIP,		/* filled already, or not ours to fill */
	K_WANT,		/* to be read */
	K_BUF,		/* data, in the buffer */
	K_MAP,		/* data, in the file mapping (engine=mmap) */
	K_ZERO,		/* all zero, a hole, or past the end of the file */
	K_ERR,		/* the read failed or came back short */
};

/*
 * A reader: the fault path has one, the prefetch thread another, each
 * with a store handle of its own (one thread at a time uses a handle).
 */
struct fp_io {
	struct uffd_store	*st;
	char			*buf;	/* the store's pool */
	uint8_t			*kind;	/* per page of a window */
	struct uffd_store_io	*ios;	/* per run of a window */
	struct uffd_store_io	**req;
};

struct file_pager {
	struct uffd_region *region;
	enum fp_engine	engine;
	bool		direct;
	uint64_t	ps;
	unsigned int	shift;
	uint64_t	npages;
	uint64_t	k;		/* store pages per region page */
	uint64_t	foff;		/* file offset of region byte 0 */
	uint64_t	window;		/* pages per fault */
	uint64_t	inject;		/* page that fails, or FP_NONE */

	char		*map;		/* engine=mmap */
	size_t		map_len;
	uint64_t	map_pages;	/* region pages wholly in the map */

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

/*
 * The K_WANT pages of the window [p0, p0 + n) that the store holds no
 * data for (holes, past the end) become K_ZERO: no I/O for them.  A
 * region page is a hole only if all its store pages are (hugetlb).
 */
static void mark_holes(const struct file_pager *fp, const struct fp_io *io,
		       uint64_t p0, uint64_t n, uint8_t *kind)
{
	uint64_t i = 0, j, whole;
	int64_t run;
	int written;

	while (i < n) {
		run = uffd_store_extent(io->st, (p0 + i) * fp->k,
					(n - i) * fp->k, &written);
		if (run <= 0)
			return;		/* cannot happen: in range */
		whole = (uint64_t)run / fp->k;
		if (!whole) {		/* this page mixes both: data */
			i++;
			continue;
		}
		for (j = i; !written && j < i + whole; j++)
			if (kind[j] == K_WANT)
				kind[j] = K_ZERO;
		i += whole;
	}
}

/*
 * inject_eio: the run of the window holding the page, all of one kind,
 * fails as a read of it would.
 */
static void fail_injected(const struct file_pager *fp, uint64_t p0,
			  uint64_t n, uint8_t *kind)
{
	uint64_t a, b;
	uint8_t k;

	if (fp->inject < p0 || fp->inject >= p0 + n)
		return;
	a = fp->inject - p0;
	k = kind[a];
	if (k == K_SKIP)
		return;
	for (b = a + 1; b < n && kind[b] == k; b++)
		;
	while (a > 0 && kind[a - 1] == k)
		a--;
	memset(kind + a, K_ERR, b - a);
}

/*
 * Before a read reuses the buffer, reap what an earlier read left in
 * flight when its reap failed: the kernel may still write into it.
 */
static int drain(struct fp_io *io)
{
	unsigned int out = uffd_store_inflight(io->st);
	int ret;

	if (!out)
		return 0;
	ret = uffd_store_reap(io->st, io->req, out, out);
	return ret < 0 ? ret : uffd_store_inflight(io->st) ? -EIO : 0;
}

/*
 * Classify the pages of [p0, p0 + n) marked K_WANT in @kind and read
 * those that need it into @buf (page p0 at @buf): each becomes K_BUF,
 * K_MAP, K_ZERO or K_ERR.
 */
static void fp_read(struct file_pager *fp, struct fp_io *io, uint64_t p0,
		    uint64_t n, uint8_t *kind, char *buf)
{
	unsigned int nr = 0, i;
	uint64_t a, b, p;
	int got;

	for (a = 0; a < n && p0 + a < fp->map_pages; a++)
		if (kind[a] == K_WANT)
			kind[a] = K_MAP;	/* engine=mmap: no read */
	mark_holes(fp, io, p0, n, kind);
	fail_injected(fp, p0, n, kind);
	for (a = 0; a < n; a = b) {
		b = a + 1;
		if (kind[a] != K_WANT)
			continue;
		while (b < n && kind[b] == K_WANT)
			b++;
		io->ios[nr] = (struct uffd_store_io){
			.op = LIBUFFD_STORE_READ,
			.page = (p0 + a) * fp->k,
			.npages = (b - a) * fp->k,
			.buf = buf + (a << fp->shift),
		};
		io->req[nr] = &io->ios[nr];
		nr++;
		memset(kind + a, K_ERR, b - a);	/* until it comes back */
	}
	if (!nr || drain(io) < 0 || uffd_store_submit(io->st, io->req, nr) < 0)
		return;
	got = uffd_store_reap(io->st, io->req, nr, nr);
	for (i = 0; got > 0 && i < (unsigned int)got; i++) {
		const struct uffd_store_io *d = io->req[i];

		if (d->res < 0)
			continue;
		for (p = d->page / fp->k; p < (d->page + d->npages) / fp->k;
		     p++)
			kind[p - p0] = page_is_zero(buf + ((p - p0) << fp->shift),
						    fp->ps) ? K_ZERO : K_BUF;
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
		ret = uffd_resolve_copy(res, off, fp->map + off, len);
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
		memset(fp->pio.kind, K_WANT, n);
		fp_read(fp, &fp->pio, p, n, fp->pio.kind, fp->pio.buf);
		ret = fp_fill(fp, fp->pres, p, n, fp->pio.kind, fp->pio.buf,
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

/*
 * A reader for windows of up to @pages region pages: a read-only store
 * handle of its own, and the store's buffer pool of that size.
 */
static int io_setup(struct file_pager *fp, struct fp_io *io,
		    const char *path, uint64_t pages)
{
	size_t len = strlen(path) + 128, pool_len = 0;
	char *spec = malloc(len);
	void *pool = NULL;
	int ret;

	if (!spec) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	/* engine=mmap reads through the store only past its mapping */
	snprintf(spec, len, "file:path=%s,readonly=1,offset=%llu,pool=%llu,"
		 "engine=%s%s", path, (unsigned long long)fp->foff,
		 (unsigned long long)(pages * fp->k),
		 fp->engine == ENG_URING ? "uring" : "pread",
		 fp->direct ? ",direct=1" : "");
	ret = uffd_store_open(spec, fp->npages << fp->shift, &io->st);
	free(spec);
	if (ret < 0)
		return ret;
	/* asked for with pool=N: there with every engine, page aligned */
	ret = uffd_store_pool(io->st, &pool, &pool_len);
	if (ret < 0)
		return ret;
	io->buf = pool;
	io->kind = calloc(pages, 1);
	io->ios = calloc(pages, sizeof(*io->ios));
	io->req = calloc(pages, sizeof(*io->req));
	if (!io->kind || !io->ios || !io->req) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void io_teardown(struct fp_io *io)
{
	uffd_store_close(io->st);	/* waits for what is in flight */
	free(io->kind);
	free(io->ios);
	free(io->req);
	memset(io, 0, sizeof(*io));
}

static int parse_bool(const struct uffd_args *args, const char *key,
		      bool *out)
{
	uint64_t v = 0;
	int ret = uffd_args_u64(args, key, &v, 0, 1);

	*out = v;
	return ret;
}

static void file_fini(void *state);

static int file_parse(struct file_pager *fp, const struct uffd_args *args,
		      const char **path)
{
	const char *eng;
	uint64_t len = fp->npages << fp->shift;
	uint64_t sys_ps = (uint64_t)sysconf(_SC_PAGESIZE);
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
	/* the store's I/O, and the mapping, start on a page */
	if (fp->foff % sys_ps) {
		uffd_set_error("file: offset=%llu is not a multiple of the "
			       "page size (%llu)",
			       (unsigned long long)fp->foff,
			       (unsigned long long)sys_ps);
		return -EINVAL;
	}
	return 0;
}

/*
 * engine=mmap: map the region pages wholly inside the file (the store,
 * opened already, has checked that it is a file and can be read).
 */
static int map_file(struct file_pager *fp, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;
	off_t size;
	uint64_t held;

	if (fd < 0) {
		uffd_set_error("file: open %s: %s", path, strerror(errno));
		return -errno;
	}
	size = lseek(fd, 0, SEEK_END);		/* a block device's too */
	if (size < 0) {
		ret = -errno;
		uffd_set_error("file: size of %s: %s", path, strerror(errno));
		goto out;
	}
	held = (uint64_t)size > fp->foff ? (uint64_t)size - fp->foff : 0;
	fp->map_pages = held >> fp->shift;
	if (fp->map_pages > fp->npages)
		fp->map_pages = fp->npages;
	if (!fp->map_pages)
		goto out;
	fp->map_len = fp->map_pages << fp->shift;
	fp->map = mmap(NULL, fp->map_len, PROT_READ, MAP_PRIVATE, fd,
		       (off_t)fp->foff);
	if (fp->map == MAP_FAILED) {
		ret = -errno;
		fp->map = NULL;
		fp->map_pages = 0;
		uffd_set_error("file: mmap: %s", strerror(errno));
	}
out:
	close(fd);
	return ret;
}

static int file_init(struct uffd_region *region, const struct uffd_args *args,
		     void **state)
{
	const char *path = NULL;
	struct file_pager *fp;
	uint64_t words;
	int ret;

	fp = calloc(1, sizeof(*fp));
	if (!fp) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	fp->inject = FP_NONE;
	fp->region = region;
	fp->ps = uffd_region_page_size(region);
	fp->shift = (unsigned int)__builtin_ctzll(fp->ps);
	fp->k = fp->ps / (uint64_t)sysconf(_SC_PAGESIZE);
	fp->npages = uffd_region_len(region) >> fp->shift;
	ret = file_parse(fp, args, &path);
	if (ret < 0)
		goto fail;

	words = (fp->npages + 63) / 64;
	fp->done = calloc(words, sizeof(uint64_t));
	fp->removed = calloc(words, sizeof(uint64_t));
	if (!fp->done || !fp->removed) {
		uffd_set_error("file: out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	ret = io_setup(fp, &fp->fio, path, fp->window);
	if (ret < 0)
		goto fail;
	if (fp->engine == ENG_MMAP) {
		ret = map_file(fp, path);
		if (ret < 0)
			goto fail;
	}

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
		ret = io_setup(fp, &fp->pio, path, fp->pf_max);
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
	uint8_t *kind = fp->fio.kind;
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
		kind[p - w0] = p == pf || !page_skip(fp, p) ? K_WANT : K_SKIP;

	fp_read(fp, &fp->fio, w0, w1 - w0, kind, fp->fio.buf);
	if (kind[pf - w0] == K_ERR && w1 - w0 > 1) {
		/* one bad page must not fail its neighbours: just ours */
		kind[pf - w0] = K_WANT;
		fp_read(fp, &fp->fio, pf, 1, &kind[pf - w0],
			fp->fio.buf + ((pf - w0) << fp->shift));
	}
	ret = fp_fill(fp, res, w0, w1 - w0, kind, fp->fio.buf, pf, wf);
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
