/* SPDX-License-Identifier: MIT */
/*
 * evict: keep a region's resident pages under a budget and page the rest
 * to a page store (libuffd.h, "Page stores"), as LLNL umap's buffer,
 * FluidMem and ExtMem do, and as the kernel's swap does under a memory
 * cgroup's limit.
 *
 *   evict:limit=SIZE[,store=memfd|file|memcached][,policy=fifo|clock]
 *         [,batch=N][,readahead=N][,STORE ARGUMENTS]
 *
 * limit    at most this many bytes of the region are resident (required)
 * store    where evicted pages go (default memfd: memory, the fastest
 *          bound; file: path=P, which evict opens with direct=1 and
 *          fresh=1 unless told otherwise, because a page cache copy of
 *          evicted pages is the very memory being bounded, and an old
 *          file's contents are not this region's; and with spin=100: the
 *          handler waiting for a fault's read has nothing else to do,
 *          and in a virtual machine a sleep's wake-up costs about half a
 *          fast disk's 4 KiB read, measured with uffd-bench evict);
 *          memcached: servers=...,namespace=NS (stores/memcached.c),
 *          far memory in a pool, fresh=1 too unless told otherwise.
 *          Every argument evict
 *          does not know (path, direct, engine, pool, inject_eio...) is
 *          the store's.
 * policy   fifo (default): the page filled first leaves first.  clock: a
 *          CLOCK whose reference bit is set by write faults; when the
 *          hand passes a referenced dirty page it clears the bit and
 *          write-protects the page again, so that the next write shows.
 *          Reads after a fill are invisible to it (no accessed bit
 *          reaches user space), so for read-mostly work it is FIFO.
 * batch    pages a write-back round takes out at once (default 64)
 * readahead  most pages a fault reads (default 32): a fault right after
 *          the previous fault's window doubles the window, any other
 *          resets it to one page, so random faults read one page.
 *
 * How.  The region is registered MISSING|WP.  A page comes in from the
 * store (zeros when never written) write-protected: clean.  Its first
 * write is a WP fault that marks it dirty and lifts the protection (a
 * write fault on a missing page fills it writable and dirty at once).
 * Between a high and a low watermark (limit - batch, limit - 2 x batch)
 * a helper thread takes victims out of the region with UFFDIO_MOVE into
 * a scratch area of its own userfaultfd: the move is atomic against the
 * application's writes (a write lands before it or faults after it), it
 * raises no REMOVE event (a MADV_DONTNEED on the region would, and would
 * wait for a handler to read it), and the application's own REMOVE
 * events stay its own.  Dirty victims are written to the store from the
 * scratch slots, runs of neighbours in one I/O, then the slots are
 * dropped.  A fault on a page whose write is in flight copies it from
 * its slot; until that write has landed the page is not taken out
 * again (two writes of it in flight could land older last) nor read
 * from the store.  A fault that finds the budget full takes one victim
 * out itself (a clean one costs a move; a dirty one a write) and no
 * more.
 *
 * The scratch userfaultfd has UFFD_FEATURE_SIGBUS: nothing may ever wait
 * on it.  Needs UFFDIO_MOVE (6.8) and private anonymous memory (MOVE
 * works on nothing else); refused otherwise with -EOPNOTSUPP / -EINVAL.
 *
 * The application's MADV_DONTNEED (or MADV_FREE) throws pages away:
 * they read back as zeros and their store copies are discarded.  A fill
 * that was in flight for such a page is taken back out after it lands.
 * fork: the region is MADV_DONTFORK, so a child has no copy of it (a
 * touch is SIGSEGV, never stale or missing data), and EVENT_FORK makes
 * no child region for it.
 *
 * uffd_region_flush() writes every dirty page back: each is moved out,
 * written, and copied back write-protected (a touch meanwhile is served
 * from the slot, as during eviction).
 *
 * Failures: a store read that fails fails the fault (the library
 * poisons the page: SIGBUS).  A write that fails puts the page back,
 * resident and dirty, counts it in writeback_errors, and keeps it out of
 * later rounds (over the budget, never lost); uffd_region_flush() tries
 * it again.  A victim that cannot move now (pinned by the application's
 * O_DIRECT I/O) stays and is tried again later; pager_misses counts such
 * moves, and those 6.18 reported failed after moving (see move_out()).
 *
 * Memory: 10 bytes per region page (state, flags, list links), beside
 * the store's bit per page; batch + 16 scratch slots and 16 read buffers
 * of readahead pages, touched as used.
 *
 * Locks: lk (state, lists, slots), slk and wlk (the two store handles:
 * faults read through one, rounds write through a dup of it, so that a
 * read never queues behind a round's writes for a lock; a handle is one
 * thread at a time), elk (one write-back round at a time).  Order lk
 * then slk or wlk; nobody holding those takes lk.  Nothing holding lk waits for a
 * handler to read an event (raw ioctls that return EAGAIN drop lk and
 * retry), since a handler may be waiting for lk.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "internal.h"

enum {
	PG_ABSENT = 0,	/* not resident: in the store, or never written */
	PG_CLEAN,	/* resident, write-protected, same as the store */
	PG_DIRTY,	/* resident, written since it came in */
	PG_FILLING,	/* a fault is filling it */
	PG_OUT,		/* in a scratch slot, its write in flight */
};

#define PF_REF		0x01	/* clock: written since the hand passed */
#define PF_PROT		0x02	/* dirty, protected again by the hand */
#define PF_ZAP		0x04	/* thrown away while filling or out */
#define PF_WFAIL	0x08	/* its write-back failed: kept resident */
/*
 * A write of it is in flight (from took() to its settle()), whatever its
 * state: a fault may have taken it back from its slot meanwhile.  It is
 * not taken out again until then (two writes of one page in flight could
 * land in either order, the older last), nor read from the store.
 */
#define PF_WIP		0x10
/* thrown away while PF_WIP: the store forgets it once that write lands */
#define PF_WZAP		0x20
/*
 * Absent, its contents lost: its write-back failed and so did the copy
 * back.  A fault on it fails (SIGBUS) until an event throws it away.
 */
#define PF_LOST		0x40

#define EV_NIL		UINT32_MAX
#define EV_SYNC_SLOTS	LIBUFFD_MAX_HANDLERS	/* one per handler */
#define EV_BATCH_DEF	64
#define EV_BATCH_MAX	1024
#define EV_RA_DEF	32
#define EV_RA_MAX	256
#define EV_WCHUNK	32	/* write requests in flight at once */
#define EV_SPIN_US	100	/* file store: a fault's read spins first */

struct wb {
	uint32_t	page;
	uint32_t	slot;
	bool		dirty;
	int		res;
};

struct evict {
	struct uffd_region	*region;
	uint64_t		ps, npages;
	uint64_t		limit, high, low;	/* pages */
	unsigned int		batch, ra_max;
	bool			clock;
	int			mfd;		/* the region's userfaultfd */

	struct uffd_store	*store;		/* faults' reads, discards */
	struct uffd_store	*wstore;	/* rounds' writes (a dup) */
	pthread_mutex_t		slk;		/* store */
	pthread_mutex_t		wlk;		/* wstore */
	pthread_mutex_t		lk;
	pthread_mutex_t		elk;
	pthread_cond_t		kick;

	/* under lk */
	uint8_t			*st, *fl;
	uint32_t		*next, *prev;	/* [npages] is the list head */
	uint32_t		hand;		/* clock */
	uint64_t		resident;	/* CLEAN, DIRTY, FILLING */
	uint64_t		filling;	/* FILLING */
	uint64_t		ra_next;
	unsigned int		ra_win;
	uint32_t		*slot_page;	/* page in each slot, EV_NIL */
	uint32_t		sync_free;	/* bit i: sync slot i free */
	uint32_t		buf_free;	/* bit i: read buffer i free */

	int			sfd;		/* scratch userfaultfd */
	int			pmfd;		/* /proc/self/pagemap */
	uint8_t			*scratch;	/* batch + EV_SYNC_SLOTS slots */
	size_t			scratch_len;
	uint8_t			*bufs;		/* EV_SYNC_SLOTS x ra_max pages */
	size_t			bufs_len;
	struct wb		*wb;		/* a round's pages */
	struct uffd_store_io	*ios;
	struct uffd_store_io	**iop;

	pthread_t		thread;
	bool			running, stop;
};

static const char *const evict_keys[] = {
	"limit", "store", "policy", "batch", "readahead", NULL
};

static inline uint64_t ev_addr(struct evict *e, uint64_t page)
{
	return (uint64_t)(uintptr_t)uffd_region_addr(e->region) +
	       page * e->ps;
}

/*
 * Take lk.  A fault's server holds the library's fill gate, which keeps
 * events from being read; a holder of lk may be waiting for an event to
 * be read (its fill got EAGAIN): so wait for lk without the gate.
 */
static void lk_take(struct evict *e)
{
	if (pthread_mutex_trylock(&e->lk)) {
		struct uffd_ctx *ctx = uffd_region_ctx(e->region);
		int gate = luffd_gate_pause(ctx);

		pthread_mutex_lock(&e->lk);
		luffd_gate_resume(ctx, gate);
	}
}

static inline uint8_t *slot_addr(struct evict *e, uint32_t slot)
{
	return e->scratch + (size_t)slot * e->ps;
}

static void count(struct evict *e, size_t idx, uint64_t n)
{
	luffd_count(&e->region->ctr, idx, n);
}

/* ------------------------------------------------------------ lists */

static void list_add(struct evict *e, uint32_t p)
{
	/* before the hand (clock) or at the tail (fifo): seen last */
	uint32_t at = e->clock && e->hand != (uint32_t)e->npages ? e->hand :
		      (uint32_t)e->npages;
	uint32_t pv = e->prev[at];

	e->next[pv] = p;
	e->prev[p] = pv;
	e->next[p] = at;
	e->prev[at] = p;
}

static void list_del(struct evict *e, uint32_t p)
{
	if (e->hand == p)
		e->hand = e->next[p];
	e->next[e->prev[p]] = e->next[p];
	e->prev[e->next[p]] = e->prev[p];
	e->next[p] = e->prev[p] = EV_NIL;
}

/* A raw write-protect of one page; EAGAIN (an event pending) is returned. */
static int wp_page(struct evict *e, uint32_t p, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = ev_addr(e, p), .len = e->ps },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	count(e, LUFFD_CTR(ioctls), 1);
	if (ioctl(e->mfd, UFFDIO_WRITEPROTECT, &wp))
		return -errno;
	count(e, protect ? LUFFD_CTR(pages_protected) :
	      LUFFD_CTR(pages_released), 1);
	return 0;
}

/*
 * The next victim, under lk: a settled page (clean or dirty) whose write
 * never failed, and none of whose writes is in flight.  Clock gives
 * referenced pages a second chance.  EV_NIL when there is none.
 */
static uint32_t pick_victim(struct evict *e)
{
	uint32_t head = (uint32_t)e->npages, p;
	uint64_t steps = 2 * e->resident + 2;

	if (!e->clock) {
		for (p = e->next[head]; p != head; p = e->next[p])
			if (!(e->fl[p] & (PF_WFAIL | PF_WIP)))
				return p;
		return EV_NIL;
	}
	while (steps--) {
		p = e->hand;
		if (p == head) {
			e->hand = e->next[head];
			if (e->hand == head)
				return EV_NIL;
			continue;
		}
		e->hand = e->next[p];
		if (e->fl[p] & (PF_WFAIL | PF_WIP))
			continue;
		if (!(e->fl[p] & PF_REF))
			return p;
		e->fl[p] &= (uint8_t)~PF_REF;
		/* watch for the next write; EAGAIN: simply not this time */
		if (e->st[p] == PG_DIRTY && !(e->fl[p] & PF_PROT) &&
		    wp_page(e, p, true) == 0)
			e->fl[p] |= PF_PROT;
	}
	return EV_NIL;
}

/* ------------------------------------------------------------ slots */

/* Whether slot @slot holds a page, by /proc/self/pagemap. */
static bool slot_filled(struct evict *e, uint32_t slot)
{
	uint64_t ent = 0;
	off_t at = (off_t)((uintptr_t)slot_addr(e, slot) / e->ps * 8);

	return pread(e->pmfd, &ent, sizeof(ent), at) == sizeof(ent) &&
	       (ent >> 62) != 0;	/* present or swapped */
}

/* Move region page @p into slot @slot (a hole).  Under lk. */
static int move_out(struct evict *e, uint32_t p, uint32_t slot)
{
	struct uffdio_move mv = {
		.dst = (uint64_t)(uintptr_t)slot_addr(e, slot),
		.src = ev_addr(e, p),
		.len = e->ps,
		.mode = UFFDIO_MOVE_MODE_DONTWAKE,
	};

	int ret = 0;

	count(e, LUFFD_CTR(ioctls), 1);
	if (luffd_fill_ioctl(LUFFD_INJ_MOVE, e->sfd, UFFDIO_MOVE, &mv, &mv.len,
			     &mv.move, e->ps)) {
		ret = -errno;
		/*
		 * 6.18 may move the page and still fail: under a racing
		 * migration it retries internally after the move and then
		 * finds its own page in the slot (-EEXIST).  The slot was
		 * empty: if it holds a page now, the move happened.
		 */
		if (!slot_filled(e, slot))
			return ret;
		count(e, LUFFD_CTR(pager_misses), 1);
	}
	luffd_present_clear(e->region, (uint64_t)p * e->ps, e->ps);
	return 0;
}

static void slots_drop(struct evict *e, uint32_t slot, uint32_t n)
{
	madvise(slot_addr(e, slot), (size_t)n * e->ps, MADV_DONTNEED);
}

static uint32_t sync_slot_get(struct evict *e)
{
	unsigned int i;

	if (!e->sync_free)
		return EV_NIL;
	i = (unsigned int)__builtin_ctz(e->sync_free);
	e->sync_free &= ~(1u << i);
	return e->batch + i;
}

static void sync_slot_put(struct evict *e, uint32_t slot)
{
	slots_drop(e, slot, 1);
	e->slot_page[slot] = EV_NIL;
	e->sync_free |= 1u << (slot - e->batch);
}

/*
 * Take a page that should not be there out again (a fill that raced the
 * application's MADV_DONTNEED).  Under lk.  A hole is fine.
 */
static void drop_page(struct evict *e, uint32_t p)
{
	uint32_t slot = sync_slot_get(e);

	if (slot == EV_NIL)
		return;
	move_out(e, p, slot);
	sync_slot_put(e, slot);
}

static uint32_t slot_of(struct evict *e, uint32_t p)
{
	uint32_t i;

	for (i = 0; i < e->batch + EV_SYNC_SLOTS; i++)
		if (e->slot_page[i] == p)
			return i;
	return EV_NIL;
}

/* ------------------------------------------------------- write-back */

/*
 * Page @p has moved into slot @slot: out of the list and the count, and
 * absent (clean) or out with its write to come (dirty).  Under lk.
 */
static void took(struct evict *e, struct wb *w, uint32_t p, uint32_t slot)
{
	list_del(e, p);
	e->resident--;
	w->page = p;
	w->slot = slot;
	w->res = 0;
	w->dirty = e->st[p] == PG_DIRTY;
	if (w->dirty) {
		e->st[p] = PG_OUT;
		e->fl[p] &= (uint8_t)~(PF_ZAP | PF_PROT);
		e->fl[p] |= PF_WIP;
		e->slot_page[slot] = p;
	} else {
		e->st[p] = PG_ABSENT;
	}
}

/*
 * Take @n victims out of the region into slots @slot0...: under lk.
 * Fills w[] and returns how many were taken.  @p0 (if not EV_NIL) is
 * the only victim; otherwise the policy chooses until the count drops
 * to @floor.
 */
static unsigned int take_out(struct evict *e, struct wb *w, unsigned int max,
			     uint32_t slot0, uint64_t floor)
{
	unsigned int n = 0, tries = 0;

	while (n < max && e->resident > floor && tries < max * 4) {
		uint32_t p = pick_victim(e), slot = slot0 + n;
		int ret;

		if (p == EV_NIL)
			break;
		tries++;
		ret = move_out(e, p, slot);
		if (ret < 0) {
			/*
			 * Pinned for a while (the application's O_DIRECT
			 * I/O: -EBUSY), or raced: keep it, try another,
			 * and this one again in a later round.
			 */
			count(e, LUFFD_CTR(pager_misses), 1);
			if (!e->clock) {	/* to the tail, not first again */
				list_del(e, p);
				list_add(e, p);
			}
			continue;
		}
		took(e, &w[n++], p, slot);
		count(e, LUFFD_CTR(pages_evicted), 1);
	}
	return n;
}

/*
 * Reap until @n requests are back, setting the pages' res from each
 * one's own completion.  Holds the handle's lock.  A failed reap is
 * tried again: requests out are still the store's (the kernel may write
 * from their slots, which the next round refills, and complete them in
 * ios[], which it reuses), and none may count as written unless its
 * completion says so.
 */
static void reap_all(struct uffd_store *st, unsigned int n)
{
	struct uffd_store_io *done[EV_WCHUNK];
	struct timespec ts = { .tv_nsec = 1000000 };
	uint64_t j;
	int got, i;

	while (n) {
		got = uffd_store_reap(st, done, EV_WCHUNK, 1);
		if (got <= 0) {
			/* none in flight, the store says: none can land */
			if (!uffd_store_inflight(st))
				return;
			nanosleep(&ts, NULL);
			continue;
		}
		for (i = 0; i < got; i++) {
			struct wb *first = done[i]->data;

			for (j = 0; j < done[i]->npages; j++)
				first[j].res = done[i]->res;
		}
		n -= (unsigned int)got;
	}
}

/*
 * Write the dirty ones of w[0..n) from their slots, neighbours (next
 * page, next slot) in one request.  Without lk.  Sets each w[].res.
 */
static void write_out(struct evict *e, bool round, struct wb *w,
		      unsigned int n, struct uffd_store_io *ios,
		      struct uffd_store_io **iop)
{
	struct uffd_store *st = round ? e->wstore : e->store;
	pthread_mutex_t *lock = round ? &e->wlk : &e->slk;
	unsigned int i, j, k, nio = 0;
	int ret;

	for (i = 0; i < n; i = j) {
		struct uffd_store_io *io;

		if (!w[i].dirty) {
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < n && w[j].dirty &&
		     w[j].page == w[j - 1].page + 1 &&
		     w[j].slot == w[j - 1].slot + 1; j++)
			;
		io = &ios[nio];
		memset(io, 0, sizeof(*io));
		io->op = LIBUFFD_STORE_WRITE;
		io->page = w[i].page;
		io->npages = j - i;
		io->buf = slot_addr(e, w[i].slot);
		io->data = &w[i];
		iop[nio++] = io;
		/* failed, until a completion says otherwise */
		for (k = i; k < j; k++)
			w[k].res = -EIO;
	}
	/*
	 * Rounds write through a handle of their own: a fault's read never
	 * waits behind them for the store's lock, only for the disk.
	 */
	for (i = 0; i < nio; i += EV_WCHUNK) {
		unsigned int c = LUFFD_MIN(EV_WCHUNK, nio - i);

		pthread_mutex_lock(lock);
		ret = uffd_store_submit(st, iop + i, c);
		if (ret >= 0)
			reap_all(st, c);
		pthread_mutex_unlock(lock);
		for (k = i; ret < 0 && k < i + c; k++) {
			struct wb *first = ios[k].data;

			for (j = 0; j < ios[k].npages; j++)
				first[j].res = ret;
		}
	}
}

/* Forget the store's copy of [p, end): they read as zeros again. */
static void discard_run(struct evict *e, uint64_t p, uint64_t end)
{
	if (p >= end)
		return;
	pthread_mutex_lock(&e->slk);
	uffd_store_discard(e->store, p, end - p);
	pthread_mutex_unlock(&e->slk);
}

/*
 * Copy slot @slot back to page @p; @protect: clean.  Under lk.  -EEXIST:
 * a fault took it meanwhile; -ENOENT: thrown away meanwhile (PF_ZAP), or
 * its range is still not registered after the retries.
 */
static int copy_back(struct evict *e, uint32_t p, uint32_t slot, bool protect)
{
	struct uffdio_copy c = {
		.src = (uint64_t)(uintptr_t)slot_addr(e, slot),
		.len = e->ps,
		.mode = protect ? UFFDIO_COPY_MODE_WP : 0,
	};
	struct timespec ts = { .tv_nsec = 20000 };
	unsigned int tries = 0;
	int gate;

	for (;;) {
		/*
		 * Looked up afresh each time: an mremap of the region
		 * makes the old place ENOENT until its REMAP is read.
		 */
		c.dst = ev_addr(e, p);
		c.copy = 0;
		count(e, LUFFD_CTR(ioctls), 1);
		if (!luffd_fill_ioctl(LUFFD_INJ_COPY, e->mfd, UFFDIO_COPY, &c,
				      &c.len, &c.copy, e->ps))
			break;
		if ((errno != EAGAIN && errno != ENOENT) || ++tries > 50000)
			return -errno;
		/*
		 * An event is pending (EAGAIN), or a move's or an unmap's
		 * is on its way (ENOENT): a handler must get lk, and the
		 * fill gate this fault's server holds, to read it.
		 */
		pthread_mutex_unlock(&e->lk);
		gate = luffd_gate_pause(uffd_region_ctx(e->region));
		nanosleep(&ts, NULL);
		luffd_gate_resume(uffd_region_ctx(e->region), gate);
		lk_take(e);
		if (e->st[p] != PG_OUT)
			return -EEXIST;		/* a fault took it meanwhile */
		if (e->fl[p] & PF_ZAP)
			return -ENOENT;		/* thrown away: zeros it is */
	}
	luffd_present_set(e->region, (uint64_t)p * e->ps, e->ps);
	count(e, LUFFD_CTR(pages_copy), 1);
	return 0;
}

/*
 * After the writes, under lk: each written page is now in the store
 * (absent, or copied back clean with @keep); a page thrown away meanwhile
 * is discarded; a failed write puts the page back dirty.
 */
static void settle(struct evict *e, struct wb *w, unsigned int n, bool keep)
{
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		uint32_t p = w[i].page;

		if (!w[i].dirty)
			continue;
		e->slot_page[w[i].slot] = EV_NIL;
		if (w[i].res < 0)
			count(e, LUFFD_CTR(writeback_errors), 1);
		else
			count(e, LUFFD_CTR(pages_written_back), 1);
		e->fl[p] &= (uint8_t)~PF_WIP;
		if (e->st[p] != PG_OUT) {
			/*
			 * A fault copied it back (dirty), and it may have
			 * been thrown away since: then what this write put
			 * in the store goes (a fault waits for that).
			 */
			if (e->fl[p] & PF_WZAP) {
				discard_run(e, p, p + 1);
				e->fl[p] &= (uint8_t)~PF_WZAP;
			}
			continue;
		}
		if (e->fl[p] & PF_ZAP) {
			discard_run(e, p, p + 1);
			e->st[p] = PG_ABSENT;
			e->fl[p] &= (uint8_t)~PF_ZAP;
			continue;
		}
		if (w[i].res < 0 || keep) {
			ret = copy_back(e, p, w[i].slot, w[i].res >= 0);
			if (ret == -EEXIST)
				continue;	/* a fault took it */
			if (ret < 0) {
				e->st[p] = PG_ABSENT;
				if (e->fl[p] & PF_ZAP || w[i].res >= 0) {
					/* thrown away, or in the store */
					e->fl[p] &= (uint8_t)~PF_ZAP;
					continue;
				}
				/*
				 * Neither in the store nor resident: its
				 * contents are gone.  A fault on it fails
				 * (SIGBUS) until it is thrown away; never
				 * zeros.
				 */
				e->fl[p] |= PF_LOST;
				count(e, LUFFD_CTR(pager_errors), 1);
				luffd_fail(ret, "evict: page %u lost: its "
					   "write-back failed, and so did "
					   "its copy back", p);
				continue;
			}
			e->st[p] = w[i].res < 0 ? PG_DIRTY : PG_CLEAN;
			e->fl[p] = (uint8_t)((e->fl[p] & ~PF_WFAIL) |
					     (w[i].res < 0 ? PF_WFAIL : 0));
			e->resident++;
			list_add(e, p);
			continue;
		}
		e->st[p] = PG_ABSENT;
	}
}

/*
 * One eviction round (holds elk): down to the low watermark, or one
 * batch.  Returns pages taken out.
 */
/*
 * The second half of a round (holds elk; @n pages in e->wb and slots
 * 0..): write, settle (@keep: copy back clean), drop the slots.  Returns
 * the first write's error, or 0.
 */
static int write_round(struct evict *e, unsigned int n, bool keep)
{
	unsigned int i;
	int err = 0;

	if (!n)
		return 0;
	write_out(e, true, e->wb, n, e->ios, e->iop);
	lk_take(e);
	for (i = 0; i < n; i++)
		if (e->wb[i].res < 0 && !err)
			err = e->wb[i].res;
	settle(e, e->wb, n, keep);
	pthread_mutex_unlock(&e->lk);
	slots_drop(e, 0, n);
	return err;
}

static unsigned int evict_round(struct evict *e)
{
	unsigned int n;

	lk_take(e);
	n = take_out(e, e->wb, e->batch, 0, e->low);
	pthread_mutex_unlock(&e->lk);
	write_round(e, n, false);
	return n;
}

/*
 * The budget is full: take one victim out from a fault, now.  Under lk
 * (dropped while a dirty victim is written).  false: none could go.
 */
static bool evict_one(struct evict *e)
{
	uint32_t slot = sync_slot_get(e);
	struct wb w;

	if (slot == EV_NIL)
		return false;
	if (!take_out(e, &w, 1, slot, 0)) {
		e->sync_free |= 1u << (slot - e->batch);
		return false;
	}
	if (w.dirty) {
		struct uffd_store_io io, *iop = &io;

		pthread_mutex_unlock(&e->lk);
		write_out(e, false, &w, 1, &io, &iop);
		lk_take(e);
		settle(e, &w, 1, false);
	}
	sync_slot_put(e, slot);
	return true;
}

static void *evictor_main(void *arg)
{
	struct evict *e = arg;

	luffd_internal = 1;
	lk_take(e);
	while (!e->stop) {
		unsigned int n;

		if (e->resident <= e->high) {
			pthread_cond_wait(&e->kick, &e->lk);
			continue;
		}
		pthread_mutex_unlock(&e->lk);
		pthread_mutex_lock(&e->elk);
		n = evict_round(e);
		pthread_mutex_unlock(&e->elk);
		lk_take(e);
		if (!n && !e->stop) {
			/* nothing movable: wait for a change, not spin */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&e->kick, &e->lk, &ts);
		}
	}
	pthread_mutex_unlock(&e->lk);
	return NULL;
}

/* ------------------------------------------------------------ faults */

/* Let lk go a moment, for the thread a waiter waits for. */
static void lk_yield(struct evict *e)
{
	pthread_mutex_unlock(&e->lk);
	sched_yield();
	lk_take(e);
}

static bool page_busy(struct evict *e, uint32_t p, bool write)
{
	return write ? (e->fl[p] & PF_WIP) != 0 : e->st[p] == PG_FILLING;
}

/*
 * Wait while page @p is filling (a fill wakes its thread before it
 * settles the page's state under lk), or (@write) while a write of it is in
 * flight (PF_WIP): such a page is not read from the store until that
 * write has settled, since the store may hold an older copy, or keep
 * what the write brings after the page was thrown away (PF_WZAP).
 * Under lk, dropped meanwhile, and the fill gate with it: that fill or
 * settle may need events read.  Fills take microseconds, writes up to
 * milliseconds.
 */
static void wait_page(struct evict *e, uint32_t p, bool write)
{
	unsigned int spins = 0, most = write ? 10000000 : 1000000;
	int gate = 0;

	if (page_busy(e, p, write))
		gate = luffd_gate_pause(uffd_region_ctx(e->region));
	while (page_busy(e, p, write) && ++spins < most)
		lk_yield(e);
	luffd_gate_resume(uffd_region_ctx(e->region), gate);
}

static int wp_fault(struct evict *e, struct uffd_resolver *res, uint32_t p)
{
	uint64_t off = (uint64_t)p * e->ps;
	long ret;

	lk_take(e);
	wait_page(e, p, false);
	if (e->st[p] != PG_CLEAN && e->st[p] != PG_DIRTY) {
		/* moved out meanwhile: the retry is a missing fault */
		pthread_mutex_unlock(&e->lk);
		return uffd_resolve_wake(res, off, e->ps);
	}
	e->st[p] = PG_DIRTY;
	e->fl[p] = (uint8_t)((e->fl[p] & ~PF_PROT) | PF_REF);
	/* under lk: a page moved out and back in clean must stay protected */
	ret = uffd_resolve_writeprotect(res, off, e->ps, 0);
	pthread_mutex_unlock(&e->lk);
	return ret < 0 ? (int)ret : 0;
}

/* Make room for @need more pages: under lk. */
static void make_room(struct evict *e, uint64_t need)
{
	unsigned int guard = EV_SYNC_SLOTS * 4;

	/*
	 * Another handler may fill while a dirty victim is written (lk is
	 * dropped then): look again after each.  Over the budget only when
	 * nothing can go (every page failed to write, or no slot).
	 */
	while (e->resident + need > e->limit && guard--)
		if (!evict_one(e))
			break;
	if (e->resident + need > e->high && !e->stop)
		pthread_cond_signal(&e->kick);
}

/* A fault on a page whose write-back is in flight: copy it from its slot. */
static int fault_out(struct evict *e, struct uffd_resolver *res, uint32_t p)
{
	uint64_t off = (uint64_t)p * e->ps;
	uint32_t slot;
	long ret;

	make_room(e, 1);
	if (e->st[p] != PG_OUT)		/* make_room dropped lk */
		return 1;
	uffd_resolver_set_fill(res, 0);
	slot = slot_of(e, p);
	if (e->fl[p] & PF_ZAP || slot == EV_NIL)
		ret = uffd_resolve_zerofill(res, off, e->ps);
	else
		ret = uffd_resolve_copy(res, off, slot_addr(e, slot), e->ps);
	if (ret < 0)
		return (int)ret;
	/*
	 * dirty: the store may not get it (a failed write, a discard).  Its
	 * write is still in flight: thrown away before (PF_ZAP), the store
	 * must forget that write once it lands.
	 */
	e->st[p] = PG_DIRTY;
	e->fl[p] = (uint8_t)(PF_REF | (e->fl[p] & (PF_WIP | PF_WZAP)) |
			     (e->fl[p] & PF_ZAP ? PF_WZAP : 0));
	e->resident++;
	list_add(e, p);
	return 0;
}

/* Pages p.. that one fault fills: under lk, marks them FILLING. */
static uint64_t window(struct evict *e, uint32_t p, int *written)
{
	uint64_t n = 1, want, ext;

	if (p == e->ra_next && e->ra_win < e->ra_max)
		e->ra_win = e->ra_win * 2 > e->ra_max ? e->ra_max :
			    e->ra_win * 2;
	else if (p != e->ra_next)
		e->ra_win = 1;
	want = e->ra_win;
	if (e->resident + want > e->limit)
		want = e->limit > e->resident ? e->limit - e->resident : 1;
	while (n < want && p + n < e->npages && e->st[p + n] == PG_ABSENT &&
	       !(e->fl[p + n] & (PF_WIP | PF_LOST)))
		n++;
	ext = (uint64_t)uffd_store_extent(e->store, p, n, written);
	if (ext >= 1 && ext < n)
		n = ext;
	e->ra_next = p + n;
	return n;
}

static int fill_window(struct evict *e, struct uffd_resolver *res,
		       uint32_t p, uint64_t n, int written, bool write,
		       uint8_t *buf)
{
	uint64_t off = (uint64_t)p * e->ps, len = n * e->ps;
	long ret;

	if (written) {
		int got;

		pthread_mutex_lock(&e->slk);
		got = uffd_store_read(e->store, p, n, buf);
		pthread_mutex_unlock(&e->slk);
		if (got < 0)
			return got;
		count(e, LUFFD_CTR(pages_read_in), n);
	}
	/* the faulting page first: its thread waits for nothing else */
	uffd_resolver_set_fill(res, write ? 0 : LIBUFFD_FILL_WP);
	if (written)
		ret = uffd_resolve_copy(res, off, buf, write ? e->ps : len);
	else if (write)
		ret = uffd_resolve_zerofill(res, off, e->ps);
	else
		ret = uffd_resolve_zeropage(res, off, len);
	if (ret < 0 || !write || n == 1)
		return ret < 0 ? (int)ret : 0;
	uffd_resolver_set_fill(res, LIBUFFD_FILL_WP);
	if (written)
		ret = uffd_resolve_copy(res, off + e->ps, buf + e->ps,
					len - e->ps);
	else
		ret = uffd_resolve_zeropage(res, off + e->ps, len - e->ps);
	return ret < 0 ? (int)ret : 0;
}

static int evict_fault(void *state, struct uffd_resolver *res,
		       const struct uffd_fault *f)
{
	struct evict *e = state;
	uint32_t p = (uint32_t)(f->offset / e->ps), i;
	bool write = f->flags & LIBUFFD_FAULT_WRITE;
	unsigned int b;
	uint64_t n;
	int written = 0, ret;

	if (f->flags & LIBUFFD_FAULT_WP)
		return wp_fault(e, res, p);
	lk_take(e);
again:
	switch (e->st[p]) {
	case PG_OUT:
		ret = fault_out(e, res, p);
		if (ret == 1)
			goto again;
		pthread_mutex_unlock(&e->lk);
		return ret;
	case PG_ABSENT:
		if (e->fl[p] & PF_WIP) {
			wait_page(e, p, true);
			goto again;
		}
		if (e->fl[p] & PF_LOST) {
			pthread_mutex_unlock(&e->lk);
			return luffd_fail(-EIO, "evict: page %u was lost "
					  "(write-back and copy back failed)",
					  p);
		}
		break;
	case PG_FILLING:
		/* another handler fills it: wait, then the retry finds it */
		wait_page(e, p, false);
	/* fall through */
	default:
		/* filled by a neighbour's fault, or an event is on its way */
		pthread_mutex_unlock(&e->lk);
		return uffd_resolve_wake(res, f->offset, e->ps);
	}
	make_room(e, 1);
	if (e->st[p] != PG_ABSENT || (e->fl[p] & (PF_WIP | PF_LOST)))
		goto again;		/* make_room dropped lk */
	n = window(e, p, &written);
	b = e->buf_free ? (unsigned int)__builtin_ctz(e->buf_free) : 0;
	if (written && !e->buf_free) {
		pthread_mutex_unlock(&e->lk);
		return -EBUSY;		/* more handlers than buffers */
	}
	if (written)
		e->buf_free &= ~(1u << b);
	for (i = 0; i < n; i++) {
		e->st[p + i] = PG_FILLING;
		e->fl[p + i] = 0;
	}
	e->resident += n;
	e->filling += n;
	pthread_mutex_unlock(&e->lk);

	ret = fill_window(e, res, p, n, written, write,
			  e->bufs + (size_t)b * e->ra_max * e->ps);

	lk_take(e);
	e->filling -= n;
	if (written)
		e->buf_free |= 1u << b;
	for (i = 0; i < n; i++) {
		uint32_t q = p + i;
		/* a fill that failed part way filled what it filled */
		bool in = ret >= 0 ||
			  luffd_present_test(e->region, (uint64_t)q * e->ps);

		if (!in || (e->fl[q] & PF_ZAP)) {
			/* not filled, or thrown away while it came in */
			if (in)
				drop_page(e, q);
			e->st[q] = PG_ABSENT;
			e->fl[q] = 0;
			e->resident--;
			continue;
		}
		e->st[q] = i == 0 && write ? PG_DIRTY : PG_CLEAN;
		e->fl[q] = i == 0 && write ? PF_REF : 0;
		list_add(e, q);
	}
	pthread_mutex_unlock(&e->lk);
	/* the faulting page came in: a readahead page's failure is no error */
	if (ret < 0 && luffd_present_test(e->region, (uint64_t)p * e->ps))
		ret = 0;
	return ret;
}

/* ------------------------------------------------------------ events */

static void evict_event(void *state, const struct uffd_event *ev)
{
	struct evict *e = state;
	uint64_t p = ev->offset / e->ps, end = (ev->offset + ev->len) / e->ps;
	uint64_t run = p;

	if (ev->type == LIBUFFD_EVENT_REMAP)
		return;		/* addresses are looked up afresh each time */
	lk_take(e);
	for (; p < end; p++) {
		uint8_t s = e->st[p];

		if (s == PG_OUT) {
			/* its write-back discards it once written */
			e->fl[p] |= PF_ZAP;
			discard_run(e, run, p);
			run = p + 1;
			continue;
		}
		if (s == PG_FILLING)
			e->fl[p] |= PF_ZAP;	/* the filler drops it */
		if (s == PG_ABSENT)
			e->fl[p] &= (uint8_t)~PF_LOST;	/* zeros now */
		if (s == PG_CLEAN || s == PG_DIRTY) {
			list_del(e, (uint32_t)p);
			e->resident--;
			e->st[p] = PG_ABSENT;
			/* back from its slot, its write still in flight */
			e->fl[p] = e->fl[p] & PF_WIP ? PF_WIP | PF_WZAP : 0;
			/*
			 * A fill may have landed after the kernel zapped
			 * it: take it out (a hole when it did not).  Not
			 * after munmap: the range may hold a new mapping.
			 */
			if (ev->type == LIBUFFD_EVENT_REMOVE)
				drop_page(e, (uint32_t)p);
		}
	}
	discard_run(e, run, end);
	pthread_mutex_unlock(&e->lk);
}

/* ------------------------------------------------------------- flush */

static int evict_flush(void *state)
{
	struct evict *e = state;
	uint32_t head = (uint32_t)e->npages, p, *dirty;
	uint64_t ndirty = 0, done = 0, i;
	int err = 0, ret;

	/* not at init: a flush is rare, and this is 4 bytes a page */
	dirty = malloc((e->npages ? e->npages : 1) * sizeof(*dirty));
	if (!dirty)
		return luffd_fail(-ENOMEM, "evict: flush: out of memory");
	pthread_mutex_lock(&e->elk);
	lk_take(e);
	/* a write fault's page is dirty once its fill settles: wait */
	for (i = 0; e->filling && i < 1000000; i++)
		lk_yield(e);
	for (p = e->next[head]; p != head; p = e->next[p])
		if (e->st[p] == PG_DIRTY)
			dirty[ndirty++] = p;
	pthread_mutex_unlock(&e->lk);

	while (done < ndirty) {
		unsigned int n = 0;

		lk_take(e);
		for (; done < ndirty && n < e->batch; done++) {
			p = dirty[done];
			/* a fault's write of it first: then this one */
			wait_page(e, p, true);
			if (e->st[p] != PG_DIRTY)
				continue;
			if (move_out(e, p, n) < 0)
				continue;
			took(e, &e->wb[n], p, n);
			n++;
		}
		pthread_mutex_unlock(&e->lk);
		ret = write_round(e, n, true);
		if (ret < 0 && !err)
			err = ret;
	}
	pthread_mutex_lock(&e->wlk);
	ret = uffd_store_sync(e->wstore);
	pthread_mutex_unlock(&e->wlk);
	pthread_mutex_unlock(&e->elk);
	free(dirty);
	if (err)
		return luffd_fail(-EIO, "evict: flush: a write failed: %s "
				  "(those pages stay dirty)", strerror(-err));
	return ret;
}

/* ------------------------------------------------------- life cycle */

/* "store=file,path=/x" and the keys evict does not know, as a spec. */
static int store_spec(const struct uffd_args *args, char *spec, size_t len)
{
	const char *name = uffd_args_get(args, "store");
	bool file, mc, has_direct = false, has_fresh = false, has_spin = false;
	size_t used;
	int i;

	if (!name)
		name = "memfd";
	if (!uffd_store_find(name))
		return luffd_fail(-EINVAL, "evict: unknown store \"%s\"", name);
	file = !strcmp(name, "file");
	/* a pool's keys under this namespace are not this region's either */
	mc = !strcmp(name, "memcached");
	used = (size_t)snprintf(spec, len, "%s:", name);
	for (i = 0; i < args->n && used < len; i++) {
		const char *k = args->key[i];
		size_t j;
		bool own = false;

		for (j = 0; evict_keys[j]; j++)
			own |= !strcmp(k, evict_keys[j]);
		if (own)
			continue;
		has_direct |= !strcmp(k, "direct");
		has_fresh |= !strcmp(k, "fresh");
		has_spin |= !strcmp(k, "spin");
		used += (size_t)snprintf(spec + used, len - used, "%s=%s,", k,
					 args->val[i] ? args->val[i] : "");
	}
	if (file && !has_direct && used < len)
		used += (size_t)snprintf(spec + used, len - used, "direct=1,");
	if ((file || mc) && !has_fresh && used < len)
		used += (size_t)snprintf(spec + used, len - used, "fresh=1,");
	if (file && !has_spin && used < len)
		used += (size_t)snprintf(spec + used, len - used, "spin=%d,",
					 EV_SPIN_US);
	if (used >= len)
		return luffd_fail(-EINVAL, "evict: store arguments too long");
	spec[used - 1] = '\0';	/* the last ',' or the ':' */
	return 0;
}

static int scratch_init(struct evict *e)
{
	struct uffdio_register reg;
	int method, ret;

	e->sfd = luffd_open_uffd(0, &method);
	if (e->sfd < 0)
		return luffd_fail(e->sfd, "evict: scratch userfaultfd: %s",
				  strerror(-e->sfd));
	/* SIGBUS: a stray touch of an empty slot must never wait */
	ret = luffd_api(e->sfd, UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS,
			NULL, NULL);
	if (ret < 0)
		return luffd_fail(ret, "evict: scratch UFFDIO_API: %s",
				  strerror(-ret));
	e->scratch_len = (size_t)(e->batch + EV_SYNC_SLOTS) * e->ps;
	e->scratch = luffd_mmap(NULL, e->scratch_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (e->scratch == MAP_FAILED) {
		e->scratch = NULL;
		return luffd_fail(-ENOMEM, "evict: scratch: out of memory");
	}
	madvise(e->scratch, e->scratch_len, MADV_NOHUGEPAGE);
	madvise(e->scratch, e->scratch_len, MADV_DONTFORK);
	/* as the region's: MOVE wants the same protections on both sides */
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uint64_t)(uintptr_t)e->scratch;
	reg.range.len = e->scratch_len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
	if (ioctl(e->sfd, UFFDIO_REGISTER, &reg))
		return luffd_fail(-errno, "evict: scratch register: %s",
				  strerror(errno));
	return 0;
}

static void evict_fini(void *state);

static int evict_parse(struct evict *e, const struct uffd_args *args)
{
	uint64_t limit = 0, batch = EV_BATCH_DEF, ra = EV_RA_DEF;
	const char *pol = uffd_args_get(args, "policy");
	int ret;

	if (!uffd_args_get(args, "limit"))
		return luffd_fail(-EINVAL, "evict: limit=SIZE is required");
	ret = uffd_args_u64(args, "limit", &limit, e->ps, UINT64_MAX);
	if (!ret)
		ret = uffd_args_u64(args, "batch", &batch, 1, EV_BATCH_MAX);
	if (!ret)
		ret = uffd_args_u64(args, "readahead", &ra, 1, EV_RA_MAX);
	if (ret < 0)
		return ret;
	if (pol && strcmp(pol, "fifo") && strcmp(pol, "clock"))
		return luffd_fail(-EINVAL, "evict: policy=fifo or clock, not "
				  "\"%s\"", pol);
	e->clock = pol && !strcmp(pol, "clock");
	e->limit = limit / e->ps;
	/* a round's batch is at most a quarter of the budget */
	if (batch > e->limit / 4)
		batch = e->limit / 4 ? e->limit / 4 : 1;
	e->batch = (unsigned int)batch;
	e->ra_max = (unsigned int)LUFFD_MIN(ra, e->limit);
	e->high = e->limit - e->batch;
	e->low = e->limit > 2 * (uint64_t)e->batch ? e->limit - 2 * e->batch :
		 0;
	return 0;
}

static int evict_init(struct uffd_region *region,
		      const struct uffd_args *args, void **state)
{
	enum uffd_mem_type type = uffd_region_type(region);
	struct uffd_ctx *ctx = uffd_region_ctx(region);
	struct evict *e;
	char spec[512];
	uint64_t i;
	int ret;

	if (type != LIBUFFD_MEM_ANON && type != LIBUFFD_MEM_ADOPT)
		return luffd_fail(-EINVAL, "evict: private anonymous memory "
				  "of this process only (UFFDIO_MOVE moves "
				  "nothing else)");
	if (!(uffd_ctx_features(ctx) & LIBUFFD_FEATURE_MOVE))
		return luffd_fail(-EOPNOTSUPP, "evict: needs UFFDIO_MOVE (6.8)"
				  " to take pages out without a REMOVE event");
	if ((uffd_region_modes(region) &
	     (LIBUFFD_REG_MISSING | LIBUFFD_REG_WP)) !=
	    (LIBUFFD_REG_MISSING | LIBUFFD_REG_WP))
		return luffd_fail(-EINVAL, "evict: register MISSING|WP "
				  "(modes 0 does)");
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->region = region;
	e->sfd = -1;
	e->pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	e->ps = uffd_region_page_size(region);
	e->npages = uffd_region_len(region) / e->ps;
	e->mfd = uffd_ctx_fd(ctx);
	pthread_mutex_init(&e->slk, NULL);
	pthread_mutex_init(&e->wlk, NULL);
	pthread_mutex_init(&e->lk, NULL);
	pthread_mutex_init(&e->elk, NULL);
	pthread_cond_init(&e->kick, NULL);
	ret = e->npages >= UINT32_MAX ? luffd_fail(-EINVAL, "evict: region "
						   "over 2^32 pages") :
	      evict_parse(e, args);
	if (!ret)
		ret = store_spec(args, spec, sizeof(spec));
	if (!ret)
		ret = uffd_store_open(spec, e->npages * e->ps, &e->store);
	if (!ret)
		ret = uffd_store_dup(e->store, &e->wstore);
	if (!ret && uffd_store_page_size(e->store) != e->ps)
		ret = luffd_fail(-EINVAL, "evict: store pages are not the "
				 "region's");
	if (ret < 0)
		goto fail;
	e->st = calloc(e->npages, 1);
	e->fl = calloc(e->npages, 1);
	e->next = malloc((e->npages + 1) * sizeof(uint32_t));
	e->prev = malloc((e->npages + 1) * sizeof(uint32_t));
	e->slot_page = malloc((e->batch + EV_SYNC_SLOTS) * sizeof(uint32_t));
	e->wb = calloc(e->batch, sizeof(*e->wb));
	e->ios = calloc(e->batch, sizeof(*e->ios));
	e->iop = calloc(e->batch, sizeof(*e->iop));
	e->bufs_len = (size_t)EV_SYNC_SLOTS * e->ra_max * e->ps;
	e->bufs = luffd_mmap(NULL, e->bufs_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (e->bufs == MAP_FAILED)
		e->bufs = NULL;
	if (!e->st || !e->fl || !e->next || !e->prev ||
	    !e->slot_page || !e->wb || !e->ios || !e->iop || !e->bufs) {
		ret = luffd_fail(-ENOMEM, "evict: out of memory");
		goto fail;
	}
	for (i = 0; i <= e->npages; i++)
		e->next[i] = e->prev[i] = EV_NIL;
	e->next[e->npages] = e->prev[e->npages] = (uint32_t)e->npages;
	e->hand = (uint32_t)e->npages;
	for (i = 0; i < e->batch + EV_SYNC_SLOTS; i++)
		e->slot_page[i] = EV_NIL;
	e->sync_free = EV_SYNC_SLOTS >= 32 ? UINT32_MAX :
		       (1u << EV_SYNC_SLOTS) - 1;
	e->buf_free = e->sync_free;
	e->ra_win = 1;
	e->ra_next = UINT64_MAX;
	ret = scratch_init(e);
	if (ret < 0)
		goto fail;
	/* 4 KiB pages: a huge page can be neither moved nor written alone */
	madvise(uffd_region_addr(region), uffd_region_len(region),
		MADV_NOHUGEPAGE);
	/* a child would find evicted pages missing: it gets no copy */
	madvise(uffd_region_addr(region), uffd_region_len(region),
		MADV_DONTFORK);
	region->no_fork = true;
	*state = e;
	return 0;
fail:
	evict_fini(e);
	return ret;
}

static int evict_start(void *state)
{
	struct evict *e = state;
	int ret;

	e->stop = false;
	ret = uffd_region_helper_create(e->region, &e->thread, evictor_main,
					e);
	if (ret < 0)
		return ret;
	e->running = true;
	return 0;
}

static void evict_stop(void *state)
{
	struct evict *e = state;

	if (!e->running)
		return;
	lk_take(e);
	e->stop = true;
	pthread_cond_signal(&e->kick);
	pthread_mutex_unlock(&e->lk);
	pthread_join(e->thread, NULL);
	e->running = false;
}

static void evict_fini(void *state)
{
	struct evict *e = state;

	if (!e)
		return;
	evict_stop(e);
	uffd_store_close(e->wstore);
	uffd_store_close(e->store);
	if (e->scratch)
		munmap(e->scratch, e->scratch_len);
	if (e->bufs)
		munmap(e->bufs, e->bufs_len);
	if (e->sfd >= 0)
		close(e->sfd);
	if (e->pmfd >= 0)
		close(e->pmfd);
	free(e->st);
	free(e->fl);
	free(e->next);
	free(e->prev);
	free(e->slot_page);
	free(e->wb);
	free(e->ios);
	free(e->iop);
	pthread_cond_destroy(&e->kick);
	pthread_mutex_destroy(&e->elk);
	pthread_mutex_destroy(&e->lk);
	pthread_mutex_destroy(&e->slk);
	pthread_mutex_destroy(&e->wlk);
	free(e);
}

const struct uffd_pager_ops luffd_pager_evict = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "evict",
	.init = evict_init,
	.fault = evict_fault,
	.event = evict_event,
	.start = evict_start,
	.stop = evict_stop,
	.fini = evict_fini,
	.flags = LIBUFFD_PAGER_CONCURRENT | LIBUFFD_PAGER_WP |
		 LIBUFFD_PAGER_NEEDS_WP,
	.flush = evict_flush,
};
