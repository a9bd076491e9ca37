/* SPDX-License-Identifier: MIT */
/*
 * prezero: a user-space kscrubd (seed 002).  A scrubber thread keeps a
 * pool of pages that are already zeroed and populated; a write fault
 * UFFDIO_MOVEs N of them into the fault window, so the fault path neither
 * allocates nor zeroes.  Read faults behave like "zero".
 *
 * The pool is a private anonymous staging area of M pages, cut into
 * chunks of N contiguous pages (one MOVE each).  The scrubber populates a
 * chunk with MADV_POPULATE_WRITE: the kernel allocates and clears the
 * pages in the scrubber's context, which is the work moved off the fault
 * path, and the scrubber's CPU time is reported as helper CPU.  MOVE
 * leaves the source pages unmapped, so every chunk handed out comes back
 * to the scrubber to be populated again before reuse.
 *
 * Handoff, without locks or allocation on the fault path: a ring of chunk
 * numbers.  The scrubber alone appends at tail; fault hooks take at head
 * with a compare-and-swap (safe should several threads ever serve
 * faults); a taken chunk is marked done once its MOVE returned.  The
 * scrubber walks "reclaim" behind head, re-populates done chunks and
 * appends them again, so the ring always holds every chunk once between
 * reclaim and tail.  It sleeps on a futex (no file descriptor) while the
 * pool has more than "low" pages ready, then refills up to "high"; it
 * also tops the pool up when it has been idle for a while.
 *
 * Pages of a chunk that were not moved stay in the pool: the resolver
 * skips destination pages already present (its present map or the
 * kernel's EEXIST) and the clipped tail of a window, and moves the rest at
 * matching offsets.  MADV_POPULATE_WRITE leaves such pages alone and
 * replaces only the moved ones, so the scrubber needs no account of which
 * were which; the pages it keeps were never mapped anywhere else, and so
 * are still zero.
 *
 * Without UFFD_FEATURE_MOVE, for memory MOVE cannot take (shmem,
 * hugetlb, or an adopted mapping the kernel refuses), or when the pool is
 * empty, a write fault falls back to UFFDIO_COPY of zeros and counts a
 * pool miss.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <libuffd.h>
#include "inject.h"

#define PZ_GUARD	((size_t)sysconf(_SC_PAGESIZE))

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define PZ_BATCH_MAX		4096
#define PZ_POOL_DEFAULT		1024		/* pages: 4 MiB */
#define PZ_POOL_MAX		(1ull << 20)	/* pages */
#define PZ_RUN_PAGES		256	/* most pages populated at once */
#define PZ_IDLE_NS		200000000L	/* top up while idle */
#define PZ_RETRY_NS		10000000L	/* after a failed populate */

struct prezero {
	struct uffd_region *region;
	uint64_t	ps;
	uint64_t	batch;		/* pages per fault window */
	uint64_t	chunk;		/* batch * ps */
	uint64_t	low, high;	/* watermarks, in pages ready */

	bool		use_pool;	/* MOVE possible in principle */
	int		move_off;	/* atomic: the kernel said no */
	char		*pool;
	size_t		pool_len;
	uint32_t	nchunks;
	uint64_t	mask;		/* ring capacity - 1 */
	uint32_t	*ring;		/* chunk numbers, atomic access */
	uint8_t		*done;		/* per chunk: its MOVE returned */

	/* fault hooks write head, the scrubber tail: apart */
	uint64_t	head __attribute__((aligned(64)));
	uint64_t	tail __attribute__((aligned(64)));
	uint64_t	reclaim;	/* scrubber only */

	uint32_t	kick __attribute__((aligned(64)));	/* futex */
	int		sleeping;
	int		stop;
	pthread_t	thread;
	bool		running;
};

static const char *const prezero_keys[] = {
	"batch", "pool", "low", "high", NULL
};

/* ------------------------------------------------------- handoff */

static uint64_t ready_pages(const struct prezero *z)
{
	uint64_t t = __atomic_load_n(&z->tail, __ATOMIC_ACQUIRE);
	uint64_t h = __atomic_load_n(&z->head, __ATOMIC_ACQUIRE);

	return (t - h) * z->batch;
}

/* Take a ready chunk, or return -1 when the pool is empty. */
static long pool_take(struct prezero *z)
{
	uint64_t h = __atomic_load_n(&z->head, __ATOMIC_ACQUIRE);

	for (;;) {
		uint64_t t = __atomic_load_n(&z->tail, __ATOMIC_ACQUIRE);
		uint32_t c;

		if (h == t)
			return -1;
		c = __atomic_load_n(&z->ring[h & z->mask], __ATOMIC_RELAXED);
		/* on failure h is reloaded, and the entry read again */
		if (__atomic_compare_exchange_n(&z->head, &h, h + 1, true,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return c;
	}
}

static void scrubber_kick(struct prezero *z)
{
	__atomic_add_fetch(&z->kick, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&z->sleeping, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &z->kick, FUTEX_WAKE_PRIVATE, 1,
			NULL, NULL, 0);
}

/* A chunk's MOVE returned: give it back and wake the scrubber if low. */
static void pool_done(struct prezero *z, uint32_t c)
{
	__atomic_store_n(&z->done[c], 1, __ATOMIC_SEQ_CST);
	if (ready_pages(z) <= z->low)
		scrubber_kick(z);
}

/* ------------------------------------------------------- scrubber */

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Make [p, p + len) populated, private and zero.  Pages still present
 * are left alone (they were never mapped anywhere else); missing ones are
 * allocated and cleared by the kernel, here, not on the fault path.
 * (Any kernel with UFFDIO_MOVE, 6.8, has MADV_POPULATE_WRITE, 5.14.)
 */
static int populate(char *p, size_t len)
{
	return madvise(p, len, MADV_POPULATE_WRITE) ? -errno : 0;
}

/*
 * Re-populate chunks that fault hooks are done with and hand them back,
 * until "high" pages are ready.  Returns -errno if populating failed.
 */
static int refill(struct prezero *z)
{
	for (;;) {
		uint64_t head = __atomic_load_n(&z->head, __ATOMIC_ACQUIRE);
		uint64_t ready = z->tail - head;
		uint64_t n, i, max;
		uint32_t first;
		int ret;

		if (__atomic_load_n(&z->stop, __ATOMIC_ACQUIRE))
			return 0;
		if (ready * z->batch >= z->high || z->reclaim == head)
			return 0;
		first = z->ring[z->reclaim & z->mask];
		if (!__atomic_load_n(&z->done[first], __ATOMIC_ACQUIRE))
			return 0;	/* its MOVE is still running */

		/* a run of chunks adjacent in memory: one madvise */
		max = PZ_RUN_PAGES / z->batch;
		if (max < 1)
			max = 1;
		for (n = 1; n < max && z->reclaim + n < head &&
		     (ready + n) * z->batch < z->high; n++) {
			uint32_t c = z->ring[(z->reclaim + n) & z->mask];

			if (c != first + n ||
			    !__atomic_load_n(&z->done[c], __ATOMIC_ACQUIRE))
				break;
		}
		ret = populate(z->pool + (uint64_t)first * z->chunk,
			       n * z->chunk);
		if (ret < 0)
			return ret;
		for (i = 0; i < n; i++) {
			__atomic_store_n(&z->done[first + i], 0,
					 __ATOMIC_RELAXED);
			__atomic_store_n(&z->ring[(z->tail + i) & z->mask],
					 first + (uint32_t)i, __ATOMIC_RELAXED);
		}
		z->reclaim += n;
		__atomic_store_n(&z->tail, z->tail + n, __ATOMIC_RELEASE);
	}
}

static bool needs_refill(struct prezero *z)
{
	uint64_t head = __atomic_load_n(&z->head, __ATOMIC_SEQ_CST);

	if (z->reclaim == head || (z->tail - head) * z->batch > z->low)
		return false;
	return __atomic_load_n(&z->done[z->ring[z->reclaim & z->mask]],
			       __ATOMIC_SEQ_CST);
}

static void *scrubber_main(void *arg)
{
	struct prezero *z = arg;
	uint64_t last, now;
	bool failing = false;

	last = thread_cpu_ns();

	while (!__atomic_load_n(&z->stop, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, PZ_IDLE_NS };
		uint32_t k;

		failing = refill(z) < 0;
		now = thread_cpu_ns();
		uffd_region_add_helper_cpu(z->region, now - last);
		last = now;

		/*
		 * Dekker with pool_done(): either it sees us sleeping and
		 * wakes us, or we see its kick (and what it did before).
		 */
		__atomic_store_n(&z->sleeping, 1, __ATOMIC_SEQ_CST);
		k = __atomic_load_n(&z->kick, __ATOMIC_SEQ_CST);
		if (failing)
			ts.tv_nsec = PZ_RETRY_NS;
		if (!__atomic_load_n(&z->stop, __ATOMIC_SEQ_CST) &&
		    (failing || !needs_refill(z)))
			syscall(SYS_futex, &z->kick, FUTEX_WAIT_PRIVATE, k,
				&ts, NULL, 0);
		__atomic_store_n(&z->sleeping, 0, __ATOMIC_SEQ_CST);
	}
	now = thread_cpu_ns();
	uffd_region_add_helper_cpu(z->region, now - last);
	return NULL;
}

/* ------------------------------------------------------- ops */

static int prezero_parse(struct prezero *z, const struct uffd_args *args)
{
	uint64_t batch = 1, pool = PZ_POOL_DEFAULT, low, high;
	int ret;

	ret = uffd_args_check(args, prezero_keys);
	if (ret < 0)
		return ret;
	ret = uffd_args_u64(args, "batch", &batch, 1, PZ_BATCH_MAX);
	if (ret < 0)
		return ret;
	/*
	 * A pool of a few batches runs dry under a fast writer (measured:
	 * 30% of batch-16 faults missed with 1024 pages): by default hold
	 * at least 16 batches, and refill from half empty.
	 */
	pool = PZ_POOL_DEFAULT > 16 * batch ? PZ_POOL_DEFAULT : 16 * batch;
	ret = uffd_args_u64(args, "pool", &pool, 1, PZ_POOL_MAX);
	if (ret < 0)
		return ret;
	if (pool < batch) {
		uffd_set_error("pool=%llu: smaller than one batch of %llu",
			       (unsigned long long)pool,
			       (unsigned long long)batch);
		return -EINVAL;
	}
	high = pool;
	ret = uffd_args_u64(args, "high", &high, 1, pool);
	if (ret < 0)
		return ret;
	low = high / 2;
	ret = uffd_args_u64(args, "low", &low, 0, pool);
	if (ret < 0)
		return ret;
	if (low >= high) {
		uffd_set_error("low=%llu, high=%llu: low must be below high",
			       (unsigned long long)low,
			       (unsigned long long)high);
		return -EINVAL;
	}
	z->batch = batch;
	z->low = low;
	z->high = high;
	/* whole chunks only: a remainder of the pool is never used */
	z->nchunks = (uint32_t)(pool / batch);
	return 0;
}

static int pool_setup(struct prezero *z)
{
	uint64_t cap = 1, i;

	while (cap < z->nchunks)
		cap <<= 1;
	z->mask = cap - 1;
	z->ring = calloc(cap, sizeof(*z->ring));
	z->done = calloc(z->nchunks, 1);
	if (!z->ring || !z->done)
		return -ENOMEM;
	z->pool_len = (size_t)z->nchunks * z->chunk;
	/* must match the region's protection, or MOVE refuses */
	/*
	 * A guard page after it: two regions' pools mapped back to back,
	 * with the same flags, would merge into one mapping, which tools
	 * (and test-prezero) tell apart by size.
	 */
	z->pool = luffd_mmap(NULL, z->pool_len + PZ_GUARD,
			     PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (z->pool == MAP_FAILED) {
		z->pool = NULL;
		return -errno;
	}
	mprotect(z->pool + z->pool_len, PZ_GUARD, PROT_NONE);
	/*
	 * MOVE takes only exclusive, small folios: no THP or mTHP to
	 * split, and no copy-on-write sharing with a forked child.
	 */
	madvise(z->pool, z->pool_len, MADV_NOHUGEPAGE);
	madvise(z->pool, z->pool_len, MADV_DONTFORK);
	/* every chunk starts out taken and done: the first refill fills */
	for (i = 0; i < z->nchunks; i++) {
		z->ring[i] = (uint32_t)i;
		z->done[i] = 1;
	}
	z->reclaim = 0;
	z->head = z->nchunks;
	z->tail = z->nchunks;
	return 0;
}

static void prezero_fini(void *state);

static int prezero_init(struct uffd_region *region,
			const struct uffd_args *args, void **state)
{
	uint64_t features = uffd_ctx_features(uffd_region_ctx(region));
	enum uffd_mem_type type = uffd_region_type(region);
	struct prezero *z;
	int ret;

	/* calloc does not honour the cache-line alignment of the struct */
	if (posix_memalign((void **)&z, 64, sizeof(*z))) {
		uffd_set_error("prezero: out of memory");
		return -ENOMEM;
	}
	memset(z, 0, sizeof(*z));
	ret = prezero_parse(z, args);
	if (ret < 0) {
		free(z);
		return ret;
	}
	z->region = region;
	z->ps = uffd_region_page_size(region);
	z->chunk = z->batch * z->ps;
	/* MOVE takes private anonymous memory only: not shmem, not hugetlb */
	z->use_pool = (features & LIBUFFD_FEATURE_MOVE) &&
		      (type == LIBUFFD_MEM_ANON || type == LIBUFFD_MEM_ADOPT) &&
		      z->ps == (uint64_t)sysconf(_SC_PAGESIZE);
	if (z->use_pool) {
		ret = pool_setup(z);
		if (ret < 0) {
			uffd_set_error("prezero: pool of %llu pages: %s",
				       (unsigned long long)z->nchunks *
				       z->batch, strerror(-ret));
			prezero_fini(z);
			return ret;
		}
	}
	*state = z;
	return 0;
}

static int prezero_fault(void *state, struct uffd_resolver *res,
			 const struct uffd_fault *f)
{
	struct prezero *z = state;
	uint64_t start = f->offset - f->offset % z->chunk;
	long ret, c;

	if (!(f->flags & LIBUFFD_FAULT_WRITE)) {
		ret = uffd_resolve_zeropage(res, f->offset, z->ps);
		return ret < 0 ? (int)ret : 0;
	}
	if (!z->use_pool || __atomic_load_n(&z->move_off, __ATOMIC_RELAXED))
		goto copy;
	c = pool_take(z);
	if (c < 0)
		goto copy;
	/* the resolver clips the window and moves only missing pages */
	ret = uffd_resolve_move(res, start, z->pool + (uint64_t)c * z->chunk,
				z->chunk);
	pool_done(z, (uint32_t)c);
	if (ret >= 0 || ret == -ESRCH)
		return ret < 0 ? (int)ret : 0;
	/*
	 * EINVAL/EOPNOTSUPP: the kernel will not MOVE into this memory
	 * (shared or locked, say): stop trying.  Anything else: copy this
	 * once; pages moved before the error stay moved.
	 */
	if (ret == -EINVAL || ret == -EOPNOTSUPP)
		__atomic_store_n(&z->move_off, 1, __ATOMIC_RELAXED);
copy:
	uffd_region_add_miss(z->region, 1);
	ret = uffd_resolve_zerofill(res, start, z->chunk);
	return ret < 0 ? (int)ret : 0;
}

static int prezero_start(void *state)
{
	struct prezero *z = state;
	int ret;

	if (!z->use_pool || z->running)
		return 0;
	__atomic_store_n(&z->stop, 0, __ATOMIC_RELEASE);
	/* off the application's CPU unless the context says otherwise */
	ret = uffd_region_helper_create(z->region, &z->thread, scrubber_main,
					z);
	if (ret < 0)
		return ret;
	z->running = true;
	return 0;
}

static void prezero_stop(void *state)
{
	struct prezero *z = state;

	if (!z->running)
		return;
	__atomic_store_n(&z->stop, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&z->kick, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &z->kick, FUTEX_WAKE_PRIVATE, INT_MAX,
		NULL, NULL, 0);
	pthread_join(z->thread, NULL);
	z->running = false;
}

static void prezero_fini(void *state)
{
	struct prezero *z = state;

	if (!z)
		return;
	prezero_stop(z);
	if (z->pool)
		munmap(z->pool, z->pool_len + PZ_GUARD);
	free(z->ring);
	free(z->done);
	free(z);
}

const struct uffd_pager_ops luffd_pager_prezero = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "prezero",
	.flags = LIBUFFD_PAGER_CONCURRENT,	/* the pool ring is taken by CAS */
	.init = prezero_init,
	.fault = prezero_fault,
	.start = prezero_start,
	.stop = prezero_stop,
	.fini = prezero_fini,
};
