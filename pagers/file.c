/* SPDX-License-Identifier: MIT */
/*
 * file: serve a region lazily from a snapshot file, as checkpoint restore
 * (CRIU lazy-pages), VM snapshot resume (Firecracker) and postcopy
 * migration do by hand.  Region page i holds the file's bytes at
 * offset + i * page size.
 *
 *   file:path=P[,offset=O][,readahead=N][,readahead_max=M][,prefetch=1]
 *       [,direct=1][,engine=uring|pread|mmap][,hole_gap=G][,inject_eio=PAGE]
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
 * Streams, as the kernel's readahead (mm/readahead.c) does them.  A
 * fault that continues a sequential stream (it falls in or at the end
 * of the pages read for one; up to FP_STREAMS at once, so each thread
 * walking its own part of the region has its own) doubles the stream's
 * window, up to readahead_max, and keeps FP_AHEAD windows in flight
 * past the fault, several reads at once (io_uring queue depth > 1).  A
 * read-ahead window that comes back is filled all but its first page,
 * the marker (the kernel's PG_readahead): the application's next fault
 * in the stream is on the marker, while the windows after it are still
 * being read, and reads further ahead.  Any other fault is random
 * access: it starts its thread's stream over at the readahead-aligned
 * block of N pages holding it, so a stream broken by random access
 * shrinks back to N.  readahead_max=1 turns streams off: a page a fault.
 *
 * One reader per page.  A page being read is claimed (a bit per page),
 * by the fault path or the prefetch thread, from before its read starts
 * until it is filled: nobody else reads it.  A fault on a page the fault
 * path is reading waits for that read (and fills what else came back
 * meanwhile); on one the prefetcher is reading, it waits until the
 * prefetcher fills it or gives it up.  pager_misses counts the faults
 * that found their page neither filled nor being read, and read it
 * themselves; pages_read_in counts the pages read from the file (holes
 * excluded): each at most once.
 *
 * The store's map of never-written pages (uffd_store_extent: the file's
 * holes at init, seeded from SEEK_DATA/SEEK_HOLE, and whatever lies past
 * its end) splits a window into runs: runs of holes are mapped with
 * UFFDIO_ZEROPAGE without any I/O (the shared zero page: no memory);
 * runs of data are read, each run one request, all in one submit, into
 * the store's buffer pool, then copied with UFFDIO_COPY, except pages
 * that turn out to hold only zeros, which are zero-mapped too.
 * hole_gap=G (default 0: holes are never read) reads a hole of fewer
 * than G pages that has data on both sides in the same window together
 * with that data: one request instead of two, the hole's pages coming
 * back as zeros from the filesystem, without disk I/O, and zero-mapped
 * all the same (a snapshot with many small holes costs far fewer
 * requests; their pages go through the page cache).  A write fault on a
 * zero page gets a fresh zeroed page instead, as the zero pager does, so
 * that the write does not take a second, copy-on-write fault.  The run
 * holding the faulting page is resolved first, so the faulting thread
 * waits for its own page and not for the rest of the window.
 *
 * Engines:
 *  uring (default)  the store's io_uring: READ_FIXED into its pool,
 *                   registered with the ring at init; the only engine
 *                   with reads really in flight at once (a window's
 *                   runs, and the windows read ahead).
 *  pread            the store's pread, one per run, done when submitted:
 *                   streams and windows as with uring, but the reads
 *                   ahead are done before the fault is answered.
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
 * size (fault_around_bytes).  It is what a random fault reads, and a
 * stream's first window.  readahead_max=M defaults to the kernel's own
 * bound for the file, its device's read_ahead_kb (/sys/class/bdi), up
 * to 1 MiB: the fault path keeps up to 8 windows of M pages of buffer,
 * as many as 8 MiB holds but at least 3 (huge pages, a large M),
 * pinned for io_uring.  The kernel's
 * mmap of a file reads its whole bound around every random fault
 * (do_sync_mmap_readahead), until a hundred such reads went unused; this
 * pager cannot see which pages were used (it maps them all), so random
 * faults read N pages, and a whole-image restore in random order wants
 * prefetch=1.
 *
 * prefetch=1 starts a helper thread at the first fault.  It walks the
 * region once, from the first faulting page on and wrapping around, and
 * fills every page nobody has filled or claimed yet through its own
 * resolver (uffd_resolver_create) and its own read-only store handle.
 * A store handle is used by one thread at a time; the helper opens a
 * second one rather than share the fault path's under a lock, because
 * the fault path must never wait for a lock the helper holds across its
 * reads (up to 4 MiB), and in SIGBUS delivery mode a fault is served in
 * a signal handler, where waiting for a lock the interrupted thread may
 * hold never ends.  The price: a second descriptor, ring and pool, and
 * a second SEEK_DATA walk of the file at init.  It reads in chunks that
 * double from 64 KiB to 4 MiB, two in flight, so that the disk reads
 * the next while the last is filled.  It does not shrink them when
 * faults come (CRIU's lazy-pages does, and so did this pager before
 * pages had one reader): a fault on a page of its chunk waits for that
 * chunk instead of reading the page a second time, so the restore ends
 * soonest with the disk kept busy; the price is the p99 of faults that
 * land in a chunk in flight.  The helper runs as SCHED_IDLE (nice 19
 * where that is refused), so that on a shared CPU the handler and the
 * application always win.
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
 * anonymous memory: the application threw the contents away.  On memfd
 * and hugetlb regions a DONTNEED keeps the pages (they are in the memfd)
 * and MADV_REMOVE punches them out, with the same event: there a page
 * already filled, or being read, reads zeros after it (if it faults
 * again at all), and one never filled is still restored from the file
 * when first touched.  A prefetch
 * that was already copying such a page when the event arrived may still
 * land after the kernel zapped it: the kernel holds fills back only until
 * the event is read, and nothing tells a helper thread when the zap is
 * done.  Do not MADV_DONTNEED a region while its prefetch runs.
 *
 * Paths containing ',' cannot be given (the spec separator).
 *
 * The memcached pager is this pager over a memcached pool:
 *
 *   memcached:servers=H:P;H:P...,namespace=NS[,replicas=N][,timeout=MS]
 *             [,offset=BYTES]
 *       [,readahead=N][,readahead_max=M][,prefetch=1][,inject_eio=PAGE]
 *
 * reads through a read-only memcached store (stores/memcached.c) the
 * same way, with engine=pread's flow (the store answers in submit).
 * The pool has no holes to report (every page counts as written): a
 * window is one request, which the store reads in one multi-get round
 * trip to all its servers; absent keys come back as zeros and are
 * zero-mapped like any zero page, and a key whose servers did not
 * answer fails its request, so the faulting page is retried alone and
 * poisoned if it fails again.  readahead_max defaults to 1 MiB, the
 * largest bound (size_windows()); offset= as the file pager's (a region
 * of a snapshot pushed whole); no direct or engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "internal.h"

#define FP_RA_DEFAULT		16
#define FP_RA_MAX		4096
#define FP_WINDOW_MAX		(64ull << 20)	/* bytes, one window */
/* a stream's bound when the file's device says nothing, and the cap */
#define FP_RAMAX_FALLBACK	(128ull << 10)	/* the kernel's default */
#define FP_RAMAX_CAP		(1ull << 20)
#define FP_POOL_MAX		(256ull << 20)	/* bytes, the fault path's */
#define FP_SLOTS		8	/* the fault path's reads in flight, at most */
#define FP_POOL_DEFAULT		(8ull << 20)	/* bytes: fewer slots past it */
#define FP_STREAMS		8
#define FP_AHEAD		3	/* windows in flight ahead of a stream */
/* prefetch chunk bounds, bytes */
#define FP_PF_MIN_BYTES		(64ull << 10)
#define FP_PF_MAX_BYTES		(4ull << 20)
#define FP_NONE			UINT64_MAX
/* a stream that has not moved for this long is left to the prefetcher */
#define FP_FRONT_IDLE_NS	(10ull * 1000 * 1000)

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

/*
 * One window the fault path is reading: its pages are claimed (fp->own)
 * from the moment it is planned until they are filled or given up.
 */
struct fp_slot {
	bool		busy;
	bool		held;		/* all filled but its marker */
	unsigned int	out;		/* requests not back yet */
	uint64_t	marker;		/* page left for a fault, or FP_NONE */
	uint64_t	age;		/* when it was started */
	uint64_t	p0, n;		/* region pages [p0, p0 + n) */
	char		*buf;		/* page p0 at buf */
	uint8_t		*kind;
	struct uffd_store_io *ios;	/* its runs */
	struct uffd_store_io **req;
};

/*
 * A sequential stream, the kernel's file_ra_state for one faulting
 * thread: [start, next) has been read or is being read for it, and the
 * next window it reads is @win pages.
 */
struct fp_stream {
	uint32_t	tid;
	uint64_t	start, next, win;
	uint64_t	used;		/* for replacement: last fault's tick */
};

struct file_pager {
	bool			shared;	/* memfd, hugetlb: REMOVE may keep data */
	bool			mc;	/* the memcached pager: pages in a pool */
	char			*src;	/* the store's spec, less its pool */
	struct uffd_region *region;
	enum fp_engine	engine;
	bool		direct;
	uint64_t	ps;
	unsigned int	shift;
	uint64_t	npages;
	uint64_t	k;		/* store pages per region page */
	uint64_t	foff;		/* file offset of region byte 0 */
	uint64_t	window;		/* readahead: a fault's first window */
	uint64_t	ra_max;		/* readahead_max: a stream's bound */
	uint64_t	inject;		/* page that fails, or FP_NONE */
	uint64_t	hole_gap;	/* holes shorter are read through */

	int		hint_fd;	/* buffered reads: WILLNEED hints */
	char		*map;		/* engine=mmap */
	size_t		map_len;
	uint64_t	map_pages;	/* region pages wholly in the map */

	/* bitmaps, atomic: shared by the fault path and the prefetcher */
	uint64_t	*done;		/* filled (or gone) */
	uint64_t	*removed;	/* MADV_DONTNEED: zeros now */
	uint64_t	*own;		/* being read: one reader per page */

	/* the fault path */
	struct fp_io	fio;
	struct fp_slot	slot[FP_SLOTS];
	unsigned int	nslots;		/* in use: 3 to FP_SLOTS */
	struct fp_stream stream[FP_STREAMS];
	uint64_t	tick;
	/* sequential streams' fronts, atomic: the prefetcher keeps away */
	uint64_t	front[FP_STREAMS];	/* next page, or FP_NONE */
	uint64_t	front_ns[FP_STREAMS];	/* when it last moved */

	/* prefetch */
	bool		prefetch;
	struct fp_io	pio;
	struct uffd_resolver *pres;
	pthread_t	thread;
	bool		running;
	uint32_t	gate;		/* futex: GATE_* */
	uint32_t	pf_seq;		/* futex: bumped as it lets pages go */
	uint32_t	pf_waiters;	/* faults waiting on pf_seq */
	uint64_t	first;		/* first faulting page */
	uint64_t	walked;		/* pages gone past */
	uint64_t	pos;		/* next page it looks at */
	uint64_t	chunk;		/* current chunk, pages */
	uint64_t	pf_min, pf_max;	/* chunk bounds, pages */
};

#define GATE_ARMED	1u	/* a fault happened: go */
#define GATE_STOP	2u

static const char *const file_keys[] = {
	"path", "offset", "readahead", "readahead_max", "prefetch", "direct",
	"engine", "inject_eio", "hole_gap", NULL
};

/* the memcached pager: the store's own keys, passed on, and the reading */
static const char *const mc_keys[] = {
	"servers", "namespace", "replicas", "timeout", "offset", "readahead",
	"readahead_max", "prefetch", "inject_eio", NULL
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

/*
 * Claim the pages of [p0, p0 + n) that are neither filled nor being
 * read by anyone: they become K_WANT in @kind, the others K_SKIP.  A
 * page is claimed by setting its bit in fp->own, so two readers never
 * both read it; the filler sets its done bit before it lets the claim
 * go, so a claim won after that sees done and is let go at once.
 * Returns how many pages were claimed.
 */
static uint64_t claim(struct file_pager *fp, uint64_t p0, uint64_t n,
		      uint8_t *kind)
{
	uint64_t p = p0, end = p0 + n, got_n = 0;

	while (p < end) {
		unsigned int bit = (unsigned int)(p & 63), i;
		uint64_t m = end - p < 64 - bit ? end - p : 64 - bit;
		uint64_t mask = (m == 64 ? ~0ull : ((1ull << m) - 1)) << bit;
		uint64_t w = p >> 6, want, got, lost;

		want = mask & ~(__atomic_load_n(&fp->done[w], __ATOMIC_ACQUIRE) |
				__atomic_load_n(&fp->removed[w],
						__ATOMIC_ACQUIRE));
		got = want ? want & ~__atomic_fetch_or(&fp->own[w], want,
						       __ATOMIC_ACQ_REL) : 0;
		lost = got & (__atomic_load_n(&fp->done[w], __ATOMIC_ACQUIRE) |
			      __atomic_load_n(&fp->removed[w],
					      __ATOMIC_ACQUIRE));
		if (lost) {
			__atomic_fetch_and(&fp->own[w], ~lost,
					   __ATOMIC_RELEASE);
			got &= ~lost;
		}
		for (i = 0; i < m; i++)
			kind[p - p0 + i] = got & (1ull << (bit + i)) ?
					   K_WANT : K_SKIP;
		got_n += (uint64_t)__builtin_popcountll(got);
		p += m;
	}
	return got_n;
}

/* Let go of the claims of [p0, p0 + n): the pages not K_SKIP. */
static void unclaim(struct file_pager *fp, uint64_t p0, uint64_t n,
		    const uint8_t *kind)
{
	uint64_t a, b;

	for (a = 0; a < n; a = b) {
		b = a + 1;
		if (kind[a] == K_SKIP)
			continue;
		while (b < n && kind[b] != K_SKIP)
			b++;
		bits_change(fp->own, p0 + a, p0 + b, false);
	}
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
 * With hole_gap=G, a hole of fewer than G pages with data on both sides
 * inside the window is read with them, in one request instead of two.
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
		if (!written && whole < fp->hole_gap && i > 0 &&
		    i + whole < n && kind[i - 1] == K_WANT &&
		    kind[i + whole] == K_WANT)
			written = 1;	/* read through: zeros, no disk I/O */
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
 * Buffered reads of a stream's window: tell the page cache the whole
 * span the window's reads cover, holes between them included (which
 * cost no disk I/O; the page cache holds them as zero pages, as its own
 * readahead would), before they start (POSIX_FADV_WILLNEED, through a
 * descriptor of the pager's own: the page cache is the file's).  Left
 * to itself, its readahead takes runs split by holes for random reads,
 * or not, depending on how its state happens to start: measured here,
 * sequential restores of a 1 GiB image with a quarter of its pages in
 * one-page holes took 0.8 s or 1.7-2.6 s from run to run (fault p50
 * 128 us or 2 ms, with the same faults and misses), and 1.0-1.3 s every
 * time with the hint.  Not for random windows, nor for the prefetcher's
 * chunks: there the hint cost more than it saved (random restores of
 * 256 MiB with prefetch 2.3x the kernel's time with it, 1.3x without).
 */
static void hint(const struct file_pager *fp, uint64_t p0, uint64_t n,
		 const uint8_t *kind)
{
	uint64_t a = 0, b = n;

	if (fp->hint_fd < 0)
		return;
	while (a < b && kind[a] != K_WANT)
		a++;
	while (b > a && kind[b - 1] != K_WANT)
		b--;
	if (b - a > 1)
		posix_fadvise(fp->hint_fd,
			      (off_t)(fp->foff + ((p0 + a) << fp->shift)),
			      (off_t)((b - a) << fp->shift),
			      POSIX_FADV_WILLNEED);
}

/*
 * Plan the reads of the pages of [p0, p0 + n) marked K_WANT in @kind
 * (page p0 at @buf): those that need no I/O become K_MAP (engine=mmap),
 * K_ZERO (holes, past the end) or K_ERR (inject_eio); each run of the
 * others becomes one request in @ios, tagged with @data, its pages
 * K_ERR until it comes back.  Returns the number of requests.
 */
static unsigned int plan_reads(const struct file_pager *fp,
			       const struct fp_io *io, uint64_t p0,
			       uint64_t n, uint8_t *kind, char *buf,
			       struct uffd_store_io *ios, void *data)
{
	unsigned int nr = 0;
	uint64_t a, b;

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
		ios[nr] = (struct uffd_store_io){
			.op = LIBUFFD_STORE_READ,
			.page = (p0 + a) * fp->k,
			.npages = (b - a) * fp->k,
			.buf = buf + (a << fp->shift),
			.data = data,
		};
		nr++;
		memset(kind + a, K_ERR, b - a);	/* until it comes back */
	}
	return nr;
}

/*
 * A request planned for the window at @p0 (page p0 at @buf) came back:
 * its pages become K_BUF or K_ZERO, or stay K_ERR.
 */
static void read_done(struct file_pager *fp, const struct uffd_store_io *d,
		      uint64_t p0, uint8_t *kind, const char *buf)
{
	uint64_t p;

	if (d->res < 0)
		return;
	for (p = d->page / fp->k; p < (d->page + d->npages) / fp->k; p++)
		kind[p - p0] = page_is_zero(buf + ((p - p0) << fp->shift),
					    fp->ps) ? K_ZERO : K_BUF;
	luffd_count(&fp->region->ctr, LUFFD_CTR(pages_read_in),
		    (d->npages - d->holes) / fp->k);
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

/* ------------------------------------------------------- the fault path */

static struct fp_slot *slot_of(struct file_pager *fp, uint64_t p)
{
	unsigned int i;

	for (i = 0; i < fp->nslots; i++) {
		struct fp_slot *s = &fp->slot[i];

		if (s->busy && p >= s->p0 && p < s->p0 + s->n &&
		    s->kind[p - s->p0] != K_SKIP)
			return s;
	}
	return NULL;
}

/*
 * Let go of the pages of window @s that the application threw away
 * (REMOVE) while they were being read: they read zeros now, and a copy
 * of the snapshot's data would bring back what it discarded.  Every
 * fill of a window goes through here first.
 */
static void drop_removed(struct file_pager *fp, struct fp_slot *s)
{
	uint64_t i;

	for (i = 0; i < s->n; i++)
		if (s->kind[i] != K_SKIP && bit_test(fp->removed, s->p0 + i)) {
			bits_change(fp->own, s->p0 + i, s->p0 + i + 1, false);
			s->kind[i] = K_SKIP;
		}
}

/*
 * Fill what slot @s read, faulting page @pf first (FP_NONE: none of
 * its pages is waited for), and let its pages go, but for those
 * discarded meanwhile (drop_removed).  Returns fp_fill's verdict.
 */
static long slot_finish(struct file_pager *fp, struct uffd_resolver *res,
			struct fp_slot *s, uint64_t pf, uint64_t wf)
{
	long ret;

	drop_removed(fp, s);
	if (pf != FP_NONE && (pf < s->p0 || pf >= s->p0 + s->n))
		pf = FP_NONE;
	if (wf != FP_NONE && (wf < s->p0 || wf >= s->p0 + s->n))
		wf = FP_NONE;
	ret = fp_fill(fp, res, s->p0, s->n, s->kind, s->buf, pf, wf);
	unclaim(fp, s->p0, s->n, s->kind);
	s->busy = false;
	s->held = false;
	return ret;
}

/*
 * Fill a read-ahead window that came back, all but its marker page: the
 * kernel's PG_readahead.  The application's next fault in the stream is
 * then on the marker, with the windows after it still in flight, and
 * that fault reads further ahead (stream_ahead): filled all at once, the
 * window would let the application run past everything read and meet
 * no page in flight, and each of its faults would wait for a read of
 * its own.  The marker's page stays in the slot's buffer, claimed.
 */
static long slot_hold(struct file_pager *fp, struct uffd_resolver *res,
		      struct fp_slot *s)
{
	uint64_t m = s->marker - s->p0;
	uint8_t k = s->kind[m];
	long ret;

	if (!fillable(k) || bit_test(fp->removed, s->marker))
		return slot_finish(fp, res, s, FP_NONE, FP_NONE);
	s->kind[m] = K_SKIP;
	drop_removed(fp, s);
	ret = fp_fill(fp, res, s->p0, s->n, s->kind, s->buf, FP_NONE,
		      FP_NONE);
	unclaim(fp, s->p0, s->n, s->kind);
	memset(s->kind, K_SKIP, s->n);
	s->kind[m] = k;
	s->held = true;
	return ret;
}

/*
 * Take back what @io's store has finished, waiting for at least @min
 * requests, each credited to the window it names (its data), one of
 * @slots.  Once nothing is out in the store, no window waits any longer:
 * a failed ring, drained here, took its requests back without a word,
 * and their pages, not back, stay K_ERR (their faults fail).
 */
static void take_back(struct file_pager *fp, struct fp_io *io,
		      unsigned int min, struct fp_slot *slots,
		      unsigned int nslots)
{
	unsigned int out = uffd_store_inflight(io->st), i;
	int got;

	if (out) {
		got = uffd_store_reap(io->st, io->req, out,
				      min < out ? min : out);
		for (i = 0; got > 0 && i < (unsigned int)got; i++) {
			struct fp_slot *s = io->req[i]->data;

			read_done(fp, io->req[i], s->p0, s->kind, s->buf);
			s->out--;
		}
		if (got < 0 && got != -EINTR)
			drain(io);	/* the ring failed */
	}
	if (!uffd_store_inflight(io->st))
		for (i = 0; i < nslots; i++)
			slots[i].out = 0;
}

/*
 * Take what came back (waiting for at least @min requests), and fill
 * every slot whose reads are all back, except @keep, which the caller
 * fills itself.  Returns -ESRCH when the process is gone, else 0.
 */
static int harvest(struct file_pager *fp, struct uffd_resolver *res,
		   unsigned int min, const struct fp_slot *keep)
{
	unsigned int i;

	take_back(fp, &fp->fio, min, fp->slot, fp->nslots);
	for (i = 0; i < fp->nslots; i++) {
		struct fp_slot *s = &fp->slot[i];

		if (!s->busy || s->out || s->held || s == keep)
			continue;
		if ((s->marker != FP_NONE ? slot_hold(fp, res, s) :
		     slot_finish(fp, res, s, FP_NONE, FP_NONE)) == -ESRCH)
			return -ESRCH;
	}
	return 0;
}

/* Wait until slot @s has all its reads back. */
static void slot_wait(struct file_pager *fp, struct uffd_resolver *res,
		      struct fp_slot *s)
{
	while (s->out)
		harvest(fp, res, 1, s);	/* ends: see harvest */
}

/*
 * A free slot: when all are busy, the oldest holding only its marker
 * (the application went elsewhere) is filled, else the first read to
 * come back.
 */
static struct fp_slot *slot_get(struct file_pager *fp,
				struct uffd_resolver *res)
{
	struct fp_slot *old;
	unsigned int i;

	for (;;) {
		old = NULL;
		for (i = 0; i < fp->nslots; i++) {
			struct fp_slot *s = &fp->slot[i];

			if (!s->busy)
				return s;
			if (s->held && (!old || s->age < old->age))
				old = s;
		}
		if (old) {
			if (slot_finish(fp, res, old, FP_NONE, FP_NONE) ==
			    -ESRCH)
				return NULL;
		} else if (harvest(fp, res, 1, NULL) < 0) {
			return NULL;
		}
	}
}

/*
 * Read the window [p0, p0 + n) into a slot: the pages nobody has filled
 * or claimed.  Returns the slot (reads started, or none needed), or
 * NULL when no page was left to read or the process is gone.
 */
static struct fp_slot *window_start(struct file_pager *fp,
				    struct uffd_resolver *res,
				    uint64_t p0, uint64_t n, bool ahead,
				    bool stream)
{
	struct fp_io *io = &fp->fio;
	struct fp_slot *s = slot_get(fp, res);
	unsigned int nr, i;
	int ret;

	if (!s)
		return NULL;
	if (n > fp->ra_max)
		n = fp->ra_max;
	if (p0 + n > fp->npages)
		n = fp->npages - p0;
	if (!claim(fp, p0, n, s->kind))
		return NULL;
	s->busy = true;
	s->held = false;
	s->p0 = p0;
	s->n = n;
	s->age = ++fp->tick;
	s->marker = FP_NONE;
	if (ahead)
		for (i = 0; i < n && s->marker == FP_NONE; i++)
			if (s->kind[i] == K_WANT)
				s->marker = p0 + i;
	if (stream)
		hint(fp, p0, n, s->kind);
	nr = plan_reads(fp, io, p0, n, s->kind, s->buf, s->ios, s);
	for (i = 0; i < nr; i++)
		s->req[i] = &s->ios[i];
	s->out = 0;
	if (nr) {
		ret = uffd_store_submit(io->st, s->req, nr);
		if (ret >= 0) {
			s->out = nr;	/* else they stay K_ERR */
			luffd_count(&fp->region->ctr, LUFFD_CTR(store_ios),
				    nr);
		}
	}
	return s;
}

/*
 * The stream a fault at @p by thread @tid continues (*seq: p is in or
 * at the end of what was read for it), or the one it replaces: its
 * thread's, else the least recently used.
 */
static struct fp_stream *stream_find(struct file_pager *fp, uint64_t p,
				     uint32_t tid, bool *seq)
{
	struct fp_stream *s, *victim = &fp->stream[0];
	unsigned int i;

	fp->tick++;
	*seq = false;
	/* readahead_max=1: a page a fault, nothing read ahead */
	for (i = 0; fp->ra_max > 1 && i < FP_STREAMS; i++) {
		s = &fp->stream[i];
		if (s->win && p >= s->start && p <= s->next) {
			*seq = true;
			victim = s;
			goto out;
		}
	}
	for (i = 0; i < FP_STREAMS; i++) {
		s = &fp->stream[i];
		if (tid && s->tid == tid) {
			victim = s;
			break;
		}
		if (s->used < victim->used)
			victim = s;
	}
out:
	victim->tid = tid;
	victim->used = fp->tick;
	return victim;
}

/*
 * Keep up to FP_AHEAD windows of stream @st in flight past @p: the
 * kernel's asynchronous readahead, so that the next faults find their
 * pages read or being read.
 */
static void stream_ahead(struct file_pager *fp, struct uffd_resolver *res,
			 struct fp_stream *st, uint64_t p)
{
	unsigned int i, freed;

	while (st->next < fp->npages &&
	       st->next < p + (FP_AHEAD + 1) * st->win) {
		for (i = 0, freed = 0; i < fp->nslots; i++)
			freed += !fp->slot[i].busy;
		if (freed < 2)	/* one stays for a fault of another thread */
			return;
		window_start(fp, res, st->next, st->win, true, true);
		st->next += st->win;
	}
}

/* A prefetcher read holds page @p: wait until it is filled or let go. */
/*
 * Wait for the prefetcher to fill or let go of page @p.  Not for long
 * at a time: the prefetcher's fill may itself be waiting for an event
 * to be read (an mremap or a MADV_DONTNEED elsewhere holds every fill
 * back with EAGAIN until then), and this handler may be the one to read
 * it.  So every millisecond, read what the userfaultfd has.
 */
static void owner_wait(struct file_pager *fp, struct uffd_resolver *res,
		       uint64_t p)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&fp->pf_seq, __ATOMIC_ACQUIRE);
		struct timespec ts = { .tv_nsec = 1000000 };
		unsigned int tries = 0;

		if (page_skip(fp, p) || !bit_test(fp->own, p))
			return;
		__atomic_add_fetch(&fp->pf_waiters, 1, __ATOMIC_ACQ_REL);
		if (syscall(SYS_futex, &fp->pf_seq, FUTEX_WAIT_PRIVATE, seq,
			    &ts, NULL, 0) < 0 && errno == ETIMEDOUT)
			luffd_absorb_events(res, &tries);
		__atomic_sub_fetch(&fp->pf_waiters, 1, __ATOMIC_ACQ_REL);
	}
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

/* Pages were let go: wake the faults waiting for them (owner_wait). */
static void pf_notify(struct file_pager *fp)
{
	__atomic_add_fetch(&fp->pf_seq, 1, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&fp->pf_waiters, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &fp->pf_seq, FUTEX_WAKE_PRIVATE, INT_MAX,
			NULL, NULL, 0);
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

/* The fault path publishes where stream @st is going (FP_NONE: nowhere). */
static void front_set(struct file_pager *fp, const struct fp_stream *st,
		      uint64_t next)
{
	size_t i = (size_t)(st - fp->stream);

	if (!fp->prefetch)
		return;
	if (next != FP_NONE)
		__atomic_store_n(&fp->front_ns[i], luffd_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&fp->front[i], next, __ATOMIC_RELEASE);
}

/*
 * Keep the prefetcher out of the way of the application's sequential
 * streams: where it would start a chunk just ahead of a stream that
 * moved lately, it jumps past the stream's next few chunks instead
 * (they are the stream's to read), and no chunk of it reaches into a
 * stream's front.  Walking the same way as a stream, it would otherwise
 * keep claiming the pages the stream is about to fault on, and each of
 * those faults would wait for a 4 MiB chunk of a SCHED_IDLE thread
 * (measured: sequential restores of 1 GiB 1.0-1.3x the kernel's time
 * with it, 0.4-0.8x without).  Walking the other way instead costs
 * random restores dearly (2.0x against 1.4x at 256 MiB): the page
 * cache's own readahead follows the prefetcher's reads going up.
 * Returns the page its chunk at fp->pos must stop before, having moved
 * fp->pos past any stream (pages jumped over are not counted walked:
 * the walk comes round to them again).
 */
static uint64_t pf_dodge(struct file_pager *fp)
{
	uint64_t guard = 4 * fp->pf_max + FP_AHEAD * fp->ra_max;
	uint64_t now = luffd_now_ns(), lim, nx;
	unsigned int i, jumps = 0;

again:
	lim = fp->npages;
	for (i = 0; i < FP_STREAMS; i++) {
		nx = __atomic_load_n(&fp->front[i], __ATOMIC_ACQUIRE);
		if (nx == FP_NONE || now - __atomic_load_n(&fp->front_ns[i],
				__ATOMIC_RELAXED) > FP_FRONT_IDLE_NS)
			continue;
		if (fp->pos >= nx && fp->pos < nx + guard &&
		    jumps++ < FP_STREAMS) {
			fp->pos = nx + guard < fp->npages ? nx + guard : 0;
			goto again;
		}
		if (nx > fp->pos && nx < lim)
			lim = nx;
	}
	return lim;
}

/*
 * Start the prefetcher's next chunk in @c: from fp->pos on, the pages
 * nobody has filled or claimed.  Returns false when the walk is over.
 */
static bool pf_start(struct file_pager *fp, struct fp_slot *c)
{
	struct fp_io *io = &fp->pio;
	unsigned int nr, i, dodged = 0;
	uint64_t p, n, lim;

	for (;;) {
		if (pf_stopping(fp) || !pf_next(fp))
			return false;
		p = fp->pos;
		lim = pf_dodge(fp);
		if (fp->pos != p && dodged++ < FP_STREAMS)
			continue;	/* moved on: to what needs filling */
		p = fp->pos;
		for (n = 1; n < fp->chunk && p + n < lim &&
		     !page_skip(fp, p + n); n++)
			;
		fp->pos = p + n == fp->npages ? 0 : p + n;
		fp->walked += n;
		if (fp->chunk < fp->pf_max)
			fp->chunk = fp->chunk * 2 > fp->pf_max ?
				    fp->pf_max : fp->chunk * 2;
		/* pages a fault is reading are its own: claimed, skipped */
		if (claim(fp, p, n, c->kind))
			break;
	}
	c->busy = true;
	c->p0 = p;
	c->n = n;
	c->out = 0;
	nr = plan_reads(fp, io, p, n, c->kind, c->buf, c->ios, c);
	for (i = 0; i < nr; i++)
		c->req[i] = &c->ios[i];
	if (nr && uffd_store_submit(io->st, c->req, nr) >= 0) {
		c->out = nr;		/* else they stay K_ERR */
		luffd_count(&fp->region->ctr, LUFFD_CTR(store_ios), nr);
	}
	return true;
}

/* Fill chunk @i once its reads are back, and let its pages go. */
static long pf_finish(struct file_pager *fp, struct fp_slot *chunks,
		      unsigned int i)
{
	struct fp_slot *c = &chunks[i];
	long ret;

	while (c->out)
		take_back(fp, &fp->pio, 1, chunks, 2);
	drop_removed(fp, c);
	ret = fp_fill(fp, fp->pres, c->p0, c->n, c->kind, c->buf, FP_NONE,
		      FP_NONE);
	/* pages that failed stay for their faults to report */
	unclaim(fp, c->p0, c->n, c->kind);
	pf_notify(fp);
	c->busy = false;
	return ret;
}

/*
 * The prefetcher keeps two chunks in flight, so that the disk reads the
 * next while the last is being filled.  Chunks double from 64 KiB to
 * 4 MiB and stay there: a fault never reads a page twice (it waits for
 * the chunk that holds it), so the restore is over soonest with the
 * disk kept busy.
 */
static void *prefetch_main(void *arg)
{
	struct file_pager *fp = arg;
	struct fp_slot c[2];
	uint64_t cpu0, now;
	unsigned int i, next = 0;
	long ret = 0;

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

	for (i = 0; i < 2; i++) {
		c[i] = (struct fp_slot){
			.buf = fp->pio.buf + ((i * fp->pf_max) << fp->shift),
			.kind = fp->pio.kind + i * fp->pf_max,
			.ios = fp->pio.ios + i * fp->pf_max,
			.req = fp->pio.req + (2 + i) * fp->pf_max,
		};
	}
	for (i = 0; i < 2 && pf_start(fp, &c[i]); i++)
		;
	while (c[next].busy) {
		ret = pf_finish(fp, c, next);
		if (ret == -ESRCH ||
		    (ret == -ENOENT && uffd_region_gone(fp->region)))
			break;
		pf_start(fp, &c[next]);
		next ^= 1;

		now = thread_cpu_ns();
		uffd_region_add_helper_cpu(fp->region, now - cpu0);
		cpu0 = now;
	}
	for (i = 0; i < 2; i++)		/* stopping: let the claims go */
		if (c[i].busy)
			pf_finish(fp, c, i);
	now = thread_cpu_ns();
	uffd_region_add_helper_cpu(fp->region, now - cpu0);
	return NULL;
}

static void prefetch_arm(struct file_pager *fp, uint64_t pf)
{
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
		    uint64_t pages, uint64_t reqs)
{
	size_t len = strlen(fp->src) + 32, pool_len = 0;
	char *spec = malloc(len);
	void *pool = NULL;
	int ret;

	if (!spec) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	snprintf(spec, len, "%s,pool=%llu", fp->src,
		 (unsigned long long)(pages * fp->k));
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
	io->ios = calloc(reqs, sizeof(*io->ios));
	io->req = calloc(reqs, sizeof(*io->req));
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

static int spec_printf(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int spec_printf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(out, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*out = NULL;
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	return 0;
}

/*
 * What both pagers read the same way: the windows, prefetch and
 * inject_eio; @who names the pager in the reasons.
 */
static int parse_reading(struct file_pager *fp, const struct uffd_args *args,
			 const char *who)
{
	int ret;

	fp->window = FP_RA_DEFAULT;
	ret = uffd_args_u64(args, "readahead", &fp->window, 1, FP_RA_MAX);
	if (!ret)
		ret = parse_bool(args, "prefetch", &fp->prefetch);
	if (!ret)
		ret = uffd_args_u64(args, "inject_eio", &fp->inject, 0,
				    fp->npages - 1);
	if (!ret)
		ret = uffd_args_u64(args, "readahead_max", &fp->ra_max, 1,
				    FP_RA_MAX);
	if (ret < 0)
		return ret;
	if (fp->window << fp->shift > FP_WINDOW_MAX) {
		uffd_set_error("%s: readahead=%llu: windows above %llu MiB",
			       who, (unsigned long long)fp->window,
			       FP_WINDOW_MAX >> 20);
		return -EINVAL;
	}
	if (fp->ra_max && fp->ra_max < fp->window) {
		uffd_set_error("%s: readahead_max=%llu is below readahead=%llu",
			       who, (unsigned long long)fp->ra_max,
			       (unsigned long long)fp->window);
		return -EINVAL;
	}
	if (fp->ra_max && 3 * (fp->ra_max << fp->shift) > FP_POOL_MAX) {
		uffd_set_error("%s: readahead_max=%llu: three windows in "
			       "flight would take over %llu MiB", who,
			       (unsigned long long)fp->ra_max,
			       FP_POOL_MAX >> 20);
		return -EINVAL;
	}
	return 0;
}

/*
 * The memcached pager: the file pager's machinery over a read-only
 * memcached store.  The store does one multi-get round trip per
 * request, and without holes a window is one request; it reads
 * synchronously, as engine=pread does.
 */
static int mc_parse(struct file_pager *fp, const struct uffd_args *args)
{
	const char *servers = uffd_args_get(args, "servers");
	const char *ns = uffd_args_get(args, "namespace");
	const char *rep = uffd_args_get(args, "replicas");
	const char *tmo = uffd_args_get(args, "timeout");
	const char *off = uffd_args_get(args, "offset");
	int ret;

	fp->engine = ENG_PREAD;
	ret = parse_reading(fp, args, "memcached");
	if (ret < 0)
		return ret;
	if (!servers || !ns) {
		uffd_set_error("memcached: servers=H:P;H:P... and namespace=NS "
			       "are required");
		return -EINVAL;
	}
	return spec_printf(&fp->src, "memcached:servers=%s,namespace=%s,"
			   "readonly=1%s%s%s%s%s%s", servers, ns,
			   rep ? ",replicas=" : "", rep ? rep : "",
			   tmo ? ",timeout=" : "", tmo ? tmo : "",
			   off ? ",offset=" : "", off ? off : "");
}

static int file_parse(struct file_pager *fp, const struct uffd_args *args,
		      const char **path)
{
	const char *eng;
	uint64_t len = fp->npages << fp->shift;
	uint64_t sys_ps = (uint64_t)sysconf(_SC_PAGESIZE);
	int ret;

	ret = uffd_args_check(args, fp->mc ? mc_keys : file_keys);
	if (ret < 0)
		return ret;
	*path = uffd_args_get(args, "path");
	if (fp->mc)
		return mc_parse(fp, args);
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
	ret = uffd_args_u64(args, "offset", &fp->foff, 0, INT64_MAX - len);
	if (!ret)
		ret = parse_bool(args, "direct", &fp->direct);
	if (!ret)
		ret = uffd_args_u64(args, "hole_gap", &fp->hole_gap, 0,
				    FP_RA_MAX);
	if (!ret)
		ret = parse_reading(fp, args, "file");
	if (ret < 0)
		return ret;
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
	/* engine=mmap reads through the store only past its mapping */
	return spec_printf(&fp->src, "file:path=%s,readonly=1,offset=%llu,"
			   "engine=%s%s", *path,
			   (unsigned long long)fp->foff,
			   fp->engine == ENG_URING ? "uring" : "pread",
			   fp->direct ? ",direct=1" : "");
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
	fp->map = luffd_mmap(NULL, fp->map_len, PROT_READ, MAP_PRIVATE, fd,
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

/*
 * The read-ahead bound the kernel uses for @path: its device's
 * read_ahead_kb (its backing_dev_info), in bytes; 0 if unknown (not a
 * block device's filesystem, no sysfs).
 */
static uint64_t bdi_readahead(const char *path)
{
	char name[96], line[32];
	struct stat sb;
	uint64_t kb = 0;
	FILE *f;

	if (stat(path, &sb) < 0)
		return 0;
	snprintf(name, sizeof(name), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(sb.st_dev), minor(sb.st_dev));
	f = fopen(name, "re");
	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f))
		kb = strtoull(line, NULL, 10);
	fclose(f);
	return kb << 10;
}

/*
 * readahead_max's default: the kernel's own bound for the file (its
 * device's read_ahead_kb), up to FP_RAMAX_CAP, so that the windows in
 * flight stay a few MiB; never below readahead or above the region.
 */
static void size_windows(struct file_pager *fp, const char *path)
{
	uint64_t bytes;

	if (!fp->ra_max) {
		/*
		 * A pool's round trip costs more than its pages: the
		 * largest bound (measured with uffd-bench restore --store
		 * memcached, 256 MiB sequential, warm, 5 reps: 128 KiB
		 * windows 3.0x the file pager's time, 512 KiB 2.2x, 1 MiB
		 * 2.1x).
		 */
		bytes = fp->mc ? FP_RAMAX_CAP : bdi_readahead(path);
		if (!bytes)
			bytes = FP_RAMAX_FALLBACK;
		if (bytes > FP_RAMAX_CAP)
			bytes = FP_RAMAX_CAP;
		fp->ra_max = bytes >> fp->shift;
		if (fp->ra_max < fp->window)
			fp->ra_max = fp->window;
	}
	if (fp->window > fp->npages)
		fp->window = fp->npages;
	if (fp->ra_max > fp->npages)
		fp->ra_max = fp->npages;
	/*
	 * FP_SLOTS windows, or as many as 8 MiB holds, but 3: one read
	 * ahead besides a fault's own and another thread's.
	 */
	fp->nslots = (unsigned int)(FP_POOL_DEFAULT /
				    (fp->ra_max << fp->shift));
	if (fp->nslots > FP_SLOTS)
		fp->nslots = FP_SLOTS;
	if (fp->nslots < 3)
		fp->nslots = 3;
}

/* The fault path's reader: nslots windows of ra_max pages in flight. */
static int slots_setup(struct file_pager *fp)
{
	uint64_t w = fp->ra_max;
	unsigned int i;
	int ret;

	ret = io_setup(fp, &fp->fio, fp->nslots * w, fp->nslots * w);
	if (ret < 0)
		return ret;
	for (i = 0; i < fp->nslots; i++) {
		struct fp_slot *s = &fp->slot[i];

		s->buf = fp->fio.buf + ((i * w) << fp->shift);
		s->kind = fp->fio.kind + i * w;
		s->ios = fp->fio.ios + i * w;
		s->req = calloc(w, sizeof(*s->req));
		if (!s->req) {
			uffd_set_error("file: out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static int pager_init(struct uffd_region *region, const struct uffd_args *args,
		      void **state, bool mc)
{
	const char *path = NULL;
	struct file_pager *fp;
	unsigned int i;
	uint64_t words;
	int ret;

	fp = calloc(1, sizeof(*fp));
	if (!fp) {
		uffd_set_error("file: out of memory");
		return -ENOMEM;
	}
	fp->mc = mc;
	fp->inject = FP_NONE;
	fp->hint_fd = -1;
	fp->region = region;
	fp->shared = uffd_region_type(region) == LIBUFFD_MEM_MEMFD ||
		     uffd_region_type(region) == LIBUFFD_MEM_HUGETLB;
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
	fp->own = calloc(words, sizeof(uint64_t));
	if (!fp->done || !fp->removed || !fp->own) {
		uffd_set_error("file: out of memory");
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < FP_STREAMS; i++)
		fp->front[i] = FP_NONE;
	if (!fp->mc && !fp->direct && fp->engine != ENG_MMAP)
		fp->hint_fd = open(path, O_RDONLY | O_CLOEXEC); /* -1: none */
	size_windows(fp, path);
	ret = slots_setup(fp);
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
		/* two chunks; req: the reaped, then each chunk's own */
		ret = io_setup(fp, &fp->pio, 2 * fp->pf_max, 4 * fp->pf_max);
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

static int file_init(struct uffd_region *region, const struct uffd_args *args,
		     void **state)
{
	return pager_init(region, args, state, false);
}

#ifdef HAVE_MEMCACHED
static int memcached_init(struct uffd_region *region,
			  const struct uffd_args *args, void **state)
{
	return pager_init(region, args, state, true);
}
#endif

/*
 * A fault: fill what came back meanwhile; then the page is filled, or
 * being read (by this path: wait for that read; by the prefetcher: wait
 * for it to fill or let go), or it is a miss and its window is read.
 * A fault in or at the end of a stream's windows continues the stream:
 * the window doubles, up to readahead_max, and FP_AHEAD windows stay in
 * flight past it.  Any other fault starts its thread's stream over with
 * the readahead-aligned block around it: random access reads small.
 */
static int file_fault(void *state, struct uffd_resolver *res,
		      const struct uffd_fault *f)
{
	struct file_pager *fp = state;
	uint64_t pf = f->offset >> fp->shift;
	uint64_t wf = (f->flags & LIBUFFD_FAULT_WRITE) ? pf : FP_NONE;
	struct fp_stream *st;
	struct fp_slot *s;
	bool seq;
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
	if (harvest(fp, res, 0, NULL) < 0)
		return -ESRCH;

	st = stream_find(fp, pf, f->tid, &seq);
	if (seq) {
		st->win = st->win * 2 < fp->ra_max ? st->win * 2 : fp->ra_max;
	} else {
		st->start = pf - pf % fp->window;
		st->next = st->start;
		st->win = fp->window;
	}
	for (;;) {
		if (page_skip(fp, pf)) {
			s = NULL;
			break;
		}
		s = slot_of(fp, pf);
		if (s)
			break;
		if (bit_test(fp->own, pf)) {
			/* the prefetcher's: filled, or let go to us */
			owner_wait(fp, res, pf);
			continue;
		}
		/* a miss: read its window, from the fault on if a stream */
		uffd_region_add_miss(fp->region, 1);
		if (seq) {
			s = window_start(fp, res, pf, st->win, false, true);
			if (s && pf + st->win > st->next)
				st->next = s->p0 + s->n;
		} else {
			s = window_start(fp, res, st->start, fp->window,
					 false, false);
			if (s)
				st->next = s->p0 + s->n;
		}
		/* the window may have started without it: claimed since */
		if (s && s->kind[pf - s->p0] != K_SKIP)
			break;
		if (harvest(fp, res, 0, NULL) < 0)
			return -ESRCH;
	}
	if (seq)
		stream_ahead(fp, res, st, pf);
	front_set(fp, st, seq ? st->next : FP_NONE);
	if (!s)			/* filled meanwhile, maybe by the prefetcher */
		return uffd_resolve_wake(res, f->offset, fp->ps);

	slot_wait(fp, res, s);
	if (s->kind[pf - s->p0] == K_ERR && s->n > 1) {
		/* one bad page must not fail its neighbours: just ours */
		s->kind[pf - s->p0] = K_SKIP;
		bits_change(fp->own, pf, pf + 1, false);
		if (slot_finish(fp, res, s, FP_NONE, FP_NONE) == -ESRCH)
			return -ESRCH;
		s = window_start(fp, res, pf, 1, false, false);
		while (!s && !page_skip(fp, pf) && bit_test(fp->own, pf)) {
			/*
			 * The prefetcher claimed it again meanwhile: it
			 * fills it, or fails and lets it go to us (CI under
			 * TSan: a good page next to a bad one poisoned).
			 */
			owner_wait(fp, res, pf);
			if (!page_skip(fp, pf))
				s = window_start(fp, res, pf, 1, false, false);
		}
		if (!s)		/* filled by the prefetcher meanwhile */
			return page_skip(fp, pf) ?
			       uffd_resolve_wake(res, f->offset, fp->ps) : -EIO;
		slot_wait(fp, res, s);
	}
	ret = slot_finish(fp, res, s, pf, wf);
	if (harvest(fp, res, 0, NULL) < 0)
		return -ESRCH;
	return ret < 0 ? (int)ret : 0;
}

static void file_event(void *state, const struct uffd_event *ev)
{
	struct file_pager *fp = state;
	uint64_t a = ev->offset >> fp->shift;
	uint64_t b = (ev->offset + ev->len + fp->ps - 1) >> fp->shift;

	if (b > fp->npages)
		b = fp->npages;
	if (ev->type == LIBUFFD_EVENT_REMOVE && fp->shared) {
		/*
		 * Shared memory keeps its pages through MADV_DONTNEED (they
		 * are in the memfd) and loses them to MADV_REMOVE, and both
		 * send REMOVE.  A page filled already (or being filled)
		 * faults again only if it was punched out: zeros.  One never
		 * filled still faults for its first time: the snapshot's, as
		 * if not discarded.  So a page whose read was in flight reads
		 * zeros even after a DONTNEED.
		 */
		for (uint64_t p = a; p < b; p++)
			/* claimed: being read, or filled a moment ago (the
			 * done bit comes after the copy has woken its
			 * thread), so perhaps written since */
			if (bit_test(fp->done, p) || bit_test(fp->own, p)) {
				bits_change(fp->removed, p, p + 1, true);
				bits_change(fp->done, p, p + 1, false);
			}
	} else if (ev->type == LIBUFFD_EVENT_REMOVE) {
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
	unsigned int i;

	if (!fp)
		return;
	file_stop(fp);
	uffd_resolver_destroy(fp->pres);
	io_teardown(&fp->fio);
	io_teardown(&fp->pio);
	for (i = 0; i < FP_SLOTS; i++)
		free(fp->slot[i].req);
	if (fp->map)
		munmap(fp->map, fp->map_len);
	if (fp->hint_fd >= 0)
		close(fp->hint_fd);
	free(fp->done);
	free(fp->removed);
	free(fp->own);
	free(fp->src);
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

#ifdef HAVE_MEMCACHED
const struct uffd_pager_ops luffd_pager_memcached = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "memcached",
	.init = memcached_init,
	.fault = file_fault,
	.event = file_event,
	.start = file_start,
	.stop = file_stop,
	.fini = file_fini,
};
#endif
