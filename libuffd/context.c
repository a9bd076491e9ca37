/* SPDX-License-Identifier: MIT */
/*
 * Contexts: the userfaultfd, the region table and the handler thread.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "internal.h"

/* Features asked for when the kernel has them. */
#define DEFAULT_FEATURES (UFFD_FEATURE_EVENT_REMOVE |			\
			  UFFD_FEATURE_EVENT_UNMAP |			\
			  UFFD_FEATURE_EVENT_REMAP |			\
			  UFFD_FEATURE_MISSING_SHMEM |			\
			  UFFD_FEATURE_MISSING_HUGETLBFS |		\
			  UFFD_FEATURE_THREAD_ID |			\
			  UFFD_FEATURE_EXACT_ADDRESS |			\
			  UFFD_FEATURE_POISON |				\
			  UFFD_FEATURE_MOVE |				\
			  UFFD_FEATURE_MINOR_SHMEM |			\
			  UFFD_FEATURE_MINOR_HUGETLBFS |		\
			  UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
/*
 * Features a context cannot do without, unless the caller turns them off
 * knowingly: without the events (all in 4.11) regions cannot follow
 * MADV_DONTNEED, munmap and mremap, and a later fill could land in memory
 * that is no longer the region's.
 */
#define REQUIRED_FEATURES (UFFD_FEATURE_EVENT_REMOVE |			\
			   UFFD_FEATURE_EVENT_UNMAP |			\
			   UFFD_FEATURE_EVENT_REMAP)

/* -EOPNOTSUPP naming the first of @missing. */
static int lacks(uint64_t missing)
{
	unsigned int bit = (unsigned int)__builtin_ctzll(missing);
	const char *name = uffd_feature_name(bit);

	return luffd_fail(-EOPNOTSUPP, "kernel lacks UFFD_FEATURE_%s%s",
			  name ? name : "?",
			  missing & (missing - 1) ? " and more" : "");
}

/* Validate and copy caller options. */
static int get_opts(struct uffd_ctx_opts *opts,
		    const struct uffd_ctx_opts *uopts)
{
	long ncpu;

	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->handler_cpu = LIBUFFD_CPU_ANY;
	if (uopts) {
		if (uopts->size == 0 || uopts->size > sizeof(*opts))
			return luffd_fail(-EINVAL, "uffd_ctx_opts: bad size %zu",
					  uopts->size);
		memcpy(opts, uopts, uopts->size);
	}
	if (opts->flags & ~(LIBUFFD_CTX_NO_DEV | LIBUFFD_CTX_PIN_HANDLER |
			    LIBUFFD_CTX_PIN_HELPERS | LIBUFFD_CTX_SIGRETURN))
		return luffd_fail(-EINVAL, "uffd_ctx_opts: unknown flags %#x",
				  opts->flags);
	ncpu = sysconf(_SC_NPROCESSORS_CONF);
	if (!(opts->flags & LIBUFFD_CTX_PIN_HANDLER))
		opts->handler_cpu = LIBUFFD_CPU_ANY;
	if (!(opts->flags & LIBUFFD_CTX_PIN_HELPERS))
		opts->helper_cpu = LIBUFFD_CPU_ANY;
	if (opts->handler_cpu < LIBUFFD_CPU_SAME ||
	    opts->handler_cpu >= CPU_SETSIZE ||
	    (ncpu > 0 && opts->handler_cpu >= ncpu))
		return luffd_fail(-EINVAL, "handler_cpu %d: no such CPU",
				  opts->handler_cpu);
	if (opts->helper_cpu < LIBUFFD_CPU_SAME ||
	    opts->helper_cpu >= CPU_SETSIZE ||
	    (ncpu > 0 && opts->helper_cpu >= ncpu))
		return luffd_fail(-EINVAL, "helper_cpu %d: no such CPU",
				  opts->helper_cpu);
	if (opts->features & opts->features_off)
		return luffd_fail(-EINVAL, "features and features_off overlap");
	if (opts->features & LIBUFFD_FEATURE_SIGBUS)
		return luffd_fail(-EINVAL, "ask for SIGBUS with .delivery");
	if (opts->delivery != LIBUFFD_DELIVER_THREAD &&
	    opts->delivery != LIBUFFD_DELIVER_SIGBUS)
		return luffd_fail(-EINVAL, "unknown delivery %d",
				  opts->delivery);
	/*
	 * A forked child's faults would raise SIGBUS in the child, which
	 * has no userfaultfd of its own to serve them with.
	 */
	if (opts->delivery == LIBUFFD_DELIVER_SIGBUS &&
	    (opts->features & LIBUFFD_FEATURE_EVENT_FORK))
		return luffd_fail(-EINVAL, "EVENT_FORK needs thread delivery");
	if (opts->handlers > LIBUFFD_MAX_HANDLERS)
		return luffd_fail(-EINVAL, "at most %d handlers",
				  LIBUFFD_MAX_HANDLERS);
	if (opts->spin_us > 1000000)
		return luffd_fail(-EINVAL, "spin_us %u: at most 1 s",
				  opts->spin_us);
	if (opts->served_by && (opts->served_by->served_by ||
				opts->handlers ||
				(opts->flags & LIBUFFD_CTX_PIN_HANDLER)))
		return luffd_fail(-EINVAL, "served_by: a context served by "
				  "another has no handler options");
	return 0;
}

/* Everything but the userfaultfd itself. */
static int ctx_alloc(struct uffd_ctx **out, const struct uffd_ctx_opts *opts)
{
	struct uffd_ctx *ctx;
	int ret;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return luffd_fail(-ENOMEM, "out of memory");
	ctx->fd = -1;
	ctx->handler_cpu = opts->handler_cpu;
	ctx->helper_cpu = opts->helper_cpu;
	/* helpers' default: every CPU (the kernel keeps cpusets' limits) */
	CPU_ZERO(&ctx->create_cpus);
	for (long c = 0; c < sysconf(_SC_NPROCESSORS_CONF) && c < CPU_SETSIZE;
	     c++)
		CPU_SET(c, &ctx->create_cpus);
	ctx->delivery = opts->delivery;
	ctx->sig_sigreturn = (opts->flags & LIBUFFD_CTX_SIGRETURN) != 0;
	ctx->nworkers = opts->handlers ? opts->handlers : 1;
	ctx->spin_us = opts->spin_us;
	ctx->served_by = opts->served_by;
	pthread_rwlock_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->read_lock, NULL);
	pthread_rwlock_init(&ctx->fill_gate, NULL);
	pthread_mutex_init(&ctx->ev_lock, NULL);
	pthread_rwlock_init(&ctx->served_lock, NULL);
	pthread_mutex_init(&ctx->cpu_lock, NULL);
	pthread_mutex_init(&ctx->child_lock, NULL);
	for (unsigned int i = 0; i < LIBUFFD_MAX_HANDLERS; i++)
		ctx->workers[i].kick_fd = -1;
	*out = ctx;

	/* inbox 0 serves stop's drain, whoever serves the context */
	ret = luffd_inboxes_alloc(ctx, 1);
	if (ret < 0)
		return ret;
	ret = luffd_zero_source_init(ctx);
	if (ret < 0)
		return ret;
	if (!ctx->served_by) {
		for (unsigned int i = 0; i < ctx->nworkers; i++) {
			ctx->workers[i].kick_fd = eventfd(0, EFD_CLOEXEC |
							  EFD_NONBLOCK);
			if (ctx->workers[i].kick_fd < 0)
				return luffd_fail(-errno, "eventfd: %s",
						  strerror(errno));
			ctx->workers[i].leader = ctx;
			ctx->workers[i].idx = i;
		}
	}
	return 0;
}

LUFFD_API int uffd_ctx_create(struct uffd_ctx **out,
			      const struct uffd_ctx_opts *uopts)
{
	/* the 0.1 size: the handshake only, not the machine facts */
	struct uffd_probe p = {
		.size = offsetof(struct uffd_probe, reg_ioctls),
	};
	struct uffd_ctx_opts opts;
	struct uffd_ctx *ctx = NULL;
	uint64_t want;
	int ret;

	if (!out)
		return luffd_fail(-EINVAL, "uffd_ctx_create: NULL out");
	ret = get_opts(&opts, uopts);
	if (ret < 0)
		return ret;
	ret = uffd_probe(&p);
	if (ret < 0)
		return ret;
	if ((opts.features | (REQUIRED_FEATURES & ~opts.features_off)) &
	    ~p.features)
		return lacks((opts.features |
			      (REQUIRED_FEATURES & ~opts.features_off)) &
			     ~p.features);
	want = opts.features |
	       (DEFAULT_FEATURES & p.features & ~opts.features_off);
	if (opts.delivery == LIBUFFD_DELIVER_SIGBUS) {
		if (!(p.features & UFFD_FEATURE_SIGBUS))
			return lacks(UFFD_FEATURE_SIGBUS);
		want |= UFFD_FEATURE_SIGBUS;
	}

	ret = ctx_alloc(&ctx, &opts);
	if (ret < 0)
		goto fail;
	ret = luffd_open_uffd(opts.flags, &ctx->open_method);
	if (ret < 0)
		goto fail;
	ctx->fd = ret;
	ret = luffd_api(ctx->fd, want, NULL, &ctx->ioctls);
	if (ret < 0)
		goto fail;
	ctx->features = want;	/* what we enabled; the reply lists all */
	*out = ctx;
	return 0;
fail:
	uffd_ctx_destroy(ctx);
	return ret;
}

LUFFD_API int uffd_ctx_adopt(struct uffd_ctx **out, int fd,
			     const struct uffd_ctx_opts *uopts)
{
	struct uffd_ctx_opts opts;
	struct uffd_ctx *ctx = NULL;
	uint64_t features = 0, ioctls = 0;
	int ret, fl;

	if (!out || fd < 0) {
		ret = luffd_fail(-EINVAL, "uffd_ctx_adopt: bad arguments");
		goto fail_fd;
	}
	ret = get_opts(&opts, uopts);
	if (ret < 0)
		goto fail_fd;
	ret = luffd_fdinfo_api(fd, &features, &ioctls);
	if (ret < 0)
		goto fail_fd;
	if (features & LIBUFFD_FEATURE_SIGBUS) {
		ret = luffd_fail(-EINVAL, "a SIGBUS-mode userfaultfd has no "
				 "faults to serve");
		goto fail_fd;
	}
	/* poll() on a blocking userfaultfd reports POLLERR */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		ret = luffd_fail(-errno, "fcntl: %s", strerror(errno));
		goto fail_fd;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	ret = ctx_alloc(&ctx, &opts);
	if (!ctx)
		goto fail_fd;	/* not even the context: fd is still ours */
	ctx->fd = fd;
	if (ret < 0)
		goto fail;
	ctx->features = features;
	ctx->ioctls = ioctls;
	ctx->open_method = 0;
	*out = ctx;
	return 0;
fail_fd:
	if (fd >= 0)
		close(fd);
	return ret;
fail:
	uffd_ctx_destroy(ctx);
	return ret;
}

LUFFD_API size_t uffd_ctx_nchildren(const struct uffd_ctx *cctx)
{
	struct uffd_ctx *ctx = (struct uffd_ctx *)cctx;
	size_t n;

	if (!ctx)
		return 0;
	pthread_mutex_lock(&ctx->child_lock);
	n = ctx->nchildren;
	pthread_mutex_unlock(&ctx->child_lock);
	return n;
}

LUFFD_API struct uffd_ctx *uffd_ctx_child(const struct uffd_ctx *cctx,
					  size_t i)
{
	struct uffd_ctx *ctx = (struct uffd_ctx *)cctx, *c = NULL;

	if (!ctx)
		return NULL;
	pthread_mutex_lock(&ctx->child_lock);
	if (i < ctx->nchildren)
		c = ctx->children[i];
	pthread_mutex_unlock(&ctx->child_lock);
	return c;
}

LUFFD_API int uffd_ctx_fd(const struct uffd_ctx *ctx)
{
	return ctx ? ctx->fd : -EINVAL;
}

LUFFD_API uint64_t uffd_ctx_features(const struct uffd_ctx *ctx)
{
	return ctx ? ctx->features : 0;
}

/* ---------------------------------------------------------- table */

/* Index of the first region whose end is above @addr. */
static size_t first_ending_after(struct uffd_ctx *ctx, uint64_t addr)
{
	size_t lo = 0, hi = ctx->nregions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct uffd_region *r = ctx->regions[mid];

		if (r->base + r->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Caller holds ctx->lock (read or write).  O(log n) by the table's keys;
 * while a move read is not applied yet, the keys of moved regions are
 * stale (another region may even live over one now), so every region is
 * looked at where it is (luffd_base).
 */
struct uffd_region *luffd_lookup(struct uffd_ctx *ctx, uint64_t addr)
{
	struct uffd_region *r;
	size_t i;

	if (__atomic_load_n(&ctx->remaps_pending, __ATOMIC_SEQ_CST)) {
		for (i = 0; i < ctx->nregions; i++) {
			uint64_t b;

			r = ctx->regions[i];
			b = luffd_base(r);
			if (addr >= b && addr - b < r->len &&
			    !__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
				return r;
		}
		return NULL;
	}
	i = first_ending_after(ctx, addr);
	if (i == ctx->nregions)
		return NULL;
	r = ctx->regions[i];
	if (addr < r->base || __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
		return NULL;
	return r;
}

/*
 * Drop regions that an UNMAP event removed.  The handler only flags them
 * (it holds the lock for reading); a writer tidies up before it inserts,
 * so the table never holds two regions over the same addresses.
 */
static void table_compact(struct uffd_ctx *ctx)
{
	size_t i, j = 0;

	for (i = 0; i < ctx->nregions; i++) {
		struct uffd_region *r = ctx->regions[i];

		if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE)) {
			r->in_table = false;
			continue;
		}
		ctx->regions[j++] = r;
	}
	ctx->nregions = j;
}

/* Caller holds ctx->lock for writing. */
int luffd_table_insert(struct uffd_ctx *ctx, struct uffd_region *r)
{
	size_t i;

	table_compact(ctx);
	i = first_ending_after(ctx, r->base);
	if (i < ctx->nregions && ctx->regions[i]->base < r->base + r->len)
		return luffd_fail(-EEXIST,
				  "range %#llx+%#llx overlaps a region",
				  (unsigned long long)r->base,
				  (unsigned long long)r->len);
	if (ctx->nregions == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 8;
		struct uffd_region **n = realloc(ctx->regions,
						 cap * sizeof(*n));

		if (!n)
			return luffd_fail(-ENOMEM, "out of memory");
		ctx->regions = n;
		ctx->cap = cap;
	}
	memmove(&ctx->regions[i + 1], &ctx->regions[i],
		(ctx->nregions - i) * sizeof(*ctx->regions));
	ctx->regions[i] = r;
	ctx->nregions++;
	r->in_table = true;
	return 0;
}

/* Caller holds ctx->lock for writing. */
void luffd_table_remove(struct uffd_ctx *ctx, struct uffd_region *r)
{
	size_t i;

	if (!r->in_table)
		return;
	for (i = 0; i < ctx->nregions; i++) {
		if (ctx->regions[i] == r) {
			memmove(&ctx->regions[i], &ctx->regions[i + 1],
				(ctx->nregions - i - 1) * sizeof(*ctx->regions));
			ctx->nregions--;
			break;
		}
	}
	r->in_table = false;
}

/* ---------------------------------------------------------- events */

/* Visit the regions overlapping [start, end).  Caller holds ctx->lock. */
#define for_each_overlap(ctx, i, r, start, end)				\
	for (i = first_ending_after(ctx, start);			\
	     i < (ctx)->nregions && ((r) = (ctx)->regions[i])->base < (end); \
	     i++)

/* Forget what [s, e) of @r (mapped at @base for now) held. */
static void ingest_range(struct uffd_region *r, uint64_t base, uint64_t s,
			 uint64_t e, struct luffd_msg *lm, size_t ctr)
{
	const struct uffd_msg *m = &lm->msg;

	/* numbered, so that no copy lands on these unless decided after
	 * the pager was told (fill_gate) */
	uint64_t g = __atomic_add_fetch(&r->zap_gen, 1, __ATOMIC_SEQ_CST);

	for (uint64_t o = s - base; o < e - base; o += r->page_size)
		__atomic_store_n(&r->zap_at[o >> r->page_shift], g,
				 __ATOMIC_RELEASE);
	if (lm->nhits < LUFFD_EV_HITS) {
		lm->hit[lm->nhits] = r;
		lm->hit_off[lm->nhits] = s - base;
		lm->hit_len[lm->nhits] = e - s;
		lm->hit_gen[lm->nhits] = g;
	}
	lm->nhits++;
	luffd_present_clear(r, s - base, e - s);
	/* as the kernel's poison marker: zapped, it faults anew */
	luffd_failed_clear(r, s - base, e - s);
	if (m->event != UFFD_EVENT_UNMAP) {
		/* counted last: a reader of the count sees the rest */
		luffd_count(&r->ctr, ctr, 1);
		return;
	}
	luffd_unmapped_set(r, s - base, e - s);
	if ((s == base && e == base + r->len) || luffd_all_unmapped(r))
		__atomic_store_n(&r->gone, 1, __ATOMIC_RELEASE);
	else
		__atomic_store_n(&r->partly_unmapped, 1, __ATOMIC_RELEASE);
	luffd_count(&r->ctr, ctr, 1);
}

/*
 * A REMAP of a whole region, read: the region is at m's .to from now on
 * for every event read after it, though the table moves it only when
 * the handler reaches the message (luffd_apply_remap, write lock).
 */
static void ingest_remap(struct uffd_ctx *ctx, struct luffd_msg *lm)
{
	const struct uffd_msg *m = &lm->msg;
	uint64_t from = m->arg.remap.from;
	/* a region moved again before its first move was applied is
	 * found at its new place: the moves chain */
	struct uffd_region *r = luffd_lookup(ctx, from);

	if (!r || luffd_base(r) != from || r->len != m->arg.remap.len)
		return;		/* a part: luffd_apply_remap lets it go */
	lm->hit[0] = r;		/* a whole region: luffd_apply_remap */
	lm->nhits = 1;
	__atomic_add_fetch(&r->moves_pending, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->moving_to, m->arg.remap.to, __ATOMIC_RELEASE);
	__atomic_add_fetch(&ctx->remaps_pending, 1, __ATOMIC_SEQ_CST);
	/*
	 * Followed from here on (luffd_base): counted now, so that the
	 * count agrees with uffd_region_addr() once mremap has returned,
	 * not when a busy handler gets round to the table.
	 */
	luffd_count(&r->ctr, LUFFD_CTR(events_remap), 1);
}

/*
 * Bookkeeping done as soon as an event is read, even in the middle of a
 * fill: a REMOVE or UNMAP invalidates what we know is present, and an
 * UNMAP must stop faults being served into a range that is gone.  A
 * region a REMAP read earlier moved is matched at its new place.
 * Caller holds ctx->lock for reading.
 */
void luffd_ingest_event(struct uffd_ctx *ctx, struct luffd_msg *lm)
{
	const struct uffd_msg *m = &lm->msg;
	uint64_t start, end;
	struct uffd_region *r;
	bool hit = false;
	size_t i, ctr;

	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		ctr = LUFFD_CTR(events_remove);
		break;
	case UFFD_EVENT_UNMAP:
		ctr = LUFFD_CTR(events_unmap);
		break;
	case UFFD_EVENT_REMAP:
		ingest_remap(ctx, lm);
		return;
	default:
		return;
	}
	start = m->arg.remove.start;
	end = m->arg.remove.end;
	if (__atomic_load_n(&ctx->remaps_pending, __ATOMIC_SEQ_CST)) {
		/* keys may be stale: every region where it is now */
		for (i = 0; i < ctx->nregions; i++) {
			uint64_t b;

			r = ctx->regions[i];
			b = luffd_base(r);
			if (b >= end || b + r->len <= start ||
			    __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
				continue;
			hit = true;
			ingest_range(r, b, LUFFD_MAX(start, b),
				     LUFFD_MIN(end, b + r->len), lm, ctr);
		}
	} else {
		for_each_overlap(ctx, i, r, start, end) {
			uint64_t s = LUFFD_MAX(start, r->base);
			uint64_t e = LUFFD_MIN(end, r->base + r->len);

			if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
				continue;
			hit = true;
			ingest_range(r, r->base, s, e, lm, ctr);
		}
	}
	if (!hit)
		luffd_count(&ctx->ctr, ctr, 1);
}

/*
 * For callers that use a region's place (create, destroy, unregister;
 * never a handler): wait until every REMAP read has been applied.
 */
/*
 * Wait until every message a read() took is ingested: an mremap or
 * madvise returns as soon as its event is read, a few instructions
 * before the reader records it.  Never from a thread that is reading.
 */
void luffd_reads_settle(struct uffd_ctx *ctx)
{
	while (__atomic_load_n(&ctx->reading, __ATOMIC_ACQUIRE))
		sched_yield();
}

__thread int luffd_gate_depth;

/* fill_gate for reading, once per thread (the gate prefers writers). */
void luffd_gate_enter(struct uffd_ctx *ctx)
{
	if (luffd_gate_depth++ == 0)
		pthread_rwlock_rdlock(&ctx->fill_gate);
}

void luffd_gate_leave(struct uffd_ctx *ctx)
{
	if (--luffd_gate_depth == 0)
		pthread_rwlock_unlock(&ctx->fill_gate);
}

/*
 * For a pager's fault hook about to wait for another handler's fill:
 * let the gate go (that fill may need events read), and take it back
 * after (luffd_gate_resume).  What was discarded meanwhile, the
 * resolver skips (zap_at).  Returns what to give luffd_gate_resume().
 */
int luffd_gate_pause(struct uffd_ctx *ctx)
{
	int depth = luffd_gate_depth;

	if (depth) {
		luffd_gate_depth = 0;
		pthread_rwlock_unlock(&ctx->fill_gate);
	}
	return depth;
}

void luffd_gate_resume(struct uffd_ctx *ctx, int depth)
{
	if (depth) {
		pthread_rwlock_rdlock(&ctx->fill_gate);
		luffd_gate_depth = depth;
	}
}

/*
 * Writers first, for the REMAP a handler waits to apply: faults served
 * one after another in SIGBUS handlers (or by other handler threads)
 * could hold the table's read lock without a break for seconds, and the
 * lock prefers readers.  New readers stand aside a while; not for ever,
 * since a SIGBUS handler may have interrupted a holder of the lock.
 */
void luffd_remap_gate(struct uffd_ctx *ctx)
{
	unsigned int n;

	for (n = 0; n < 20000 &&
	     __atomic_load_n(&ctx->remap_waiting, __ATOMIC_ACQUIRE); n++)
		sched_yield();
}

void luffd_remaps_settle(struct uffd_ctx *ctx)
{
	uint64_t t0 = 0;

	luffd_reads_settle(ctx);
	while (__atomic_load_n(&ctx->remaps_pending, __ATOMIC_ACQUIRE)) {
		/* a handler applies it within a fault's service time */
		if (!t0)
			t0 = luffd_now_ns();
		else if (luffd_now_ns() - t0 > 10000000000ull)
			break;	/* never hang on it (fills use luffd_base) */
		sched_yield();
	}
}

/* Event @seq reached its pagers: move ev_done past what is done. */
static void event_done(struct uffd_ctx *ctx, uint64_t seq)
{
	uint64_t done;

	pthread_mutex_lock(&ctx->ev_lock);
	ctx->ev_ring[seq % LUFFD_EV_RING] = 1;
	done = ctx->ev_done;
	while (ctx->ev_ring[(done + 1) % LUFFD_EV_RING]) {
		ctx->ev_ring[(done + 1) % LUFFD_EV_RING] = 0;
		done++;
	}
	__atomic_store_n(&ctx->ev_done, done, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ctx->ev_lock);
}

/*
 * Wait until every REMOVE and UNMAP up to @seq has reached its pagers
 * (see ev_read).  They are in other handlers' queues, on their way; no
 * lock of ours is needed to deliver them.  Bounded all the same.
 */
void luffd_events_wait(struct uffd_ctx *ctx, uint64_t seq)
{
	uint64_t t0 = 0;

	while (__atomic_load_n(&ctx->ev_done, __ATOMIC_ACQUIRE) < seq) {
		if (!t0)
			t0 = luffd_now_ns();
		else if (luffd_now_ns() - t0 > 10000000000ull)
			break;	/* never hang on it */
		sched_yield();
	}
}

/* The pager of @r heard of discard @g over [off, off+len): copies may go. */
static void zap_told(struct uffd_region *r, uint64_t off, uint64_t len,
		     uint64_t g)
{
	for (uint64_t o = off; o < off + len; o += r->page_size) {
		uint64_t want = g;

		/* a later discard of the page keeps its own mark */
		__atomic_compare_exchange_n(&r->zap_at[o >> r->page_shift],
					    &want, g | LUFFD_ZAP_TOLD, false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
}

/* Tell pagers about an event, where it hit when it was read. */
static void deliver_event(struct uffd_ctx *ctx, const struct luffd_msg *lm)
{
	const struct uffd_msg *m = &lm->msg;
	struct uffd_region *r;
	uint64_t start, end;
	size_t i;

	if (m->event != UFFD_EVENT_REMOVE && m->event != UFFD_EVENT_UNMAP)
		return;
	if (lm->nhits <= LUFFD_EV_HITS) {
		for (i = 0; i < lm->nhits; i++) {
			struct uffd_event ev = {
				.type = m->event == UFFD_EVENT_REMOVE ?
					LIBUFFD_EVENT_REMOVE :
					LIBUFFD_EVENT_UNMAP,
				.offset = lm->hit_off[i],
				.len = lm->hit_len[i],
			};

			if (lm->hit[i]) {	/* NULL: destroyed since */
				luffd_dispatch_event(lm->hit[i], &ev);
				zap_told(lm->hit[i], lm->hit_off[i],
					 lm->hit_len[i], lm->hit_gen[i]);
			}
		}
		goto done;
	}
	/* many regions at once: where they are now */
	start = m->arg.remove.start;
	end = m->arg.remove.end;
	for_each_overlap(ctx, i, r, start, end) {
		uint64_t s = LUFFD_MAX(start, r->base);
		uint64_t e = LUFFD_MIN(end, r->base + r->len);
		struct uffd_event ev = {
			.type = m->event == UFFD_EVENT_REMOVE ?
				LIBUFFD_EVENT_REMOVE : LIBUFFD_EVENT_UNMAP,
			.offset = s - r->base,
			.len = e - s,
		};

		luffd_dispatch_event(r, &ev);
	}
done:
	event_done(ctx, lm->ev_seq);
}

/*
 * Deliver the REMOVE and UNMAP events queued in @h now, ahead of their
 * turn, for a handler that waits to apply a REMAP: faults other handlers
 * serve meanwhile wait for them (luffd_events_wait) while holding the
 * table's read lock, which the REMAP needs for writing.  They hit where
 * they were read, so no move changes where they go.  Caller holds
 * ctx->lock for reading.
 */
static void deliver_queued_events(struct luffd_handler *h)
{
	for (unsigned int k = h->head; k < h->tail; k++) {
		struct luffd_msg *lm = &h->q[k];

		if (lm->msg.event != UFFD_EVENT_REMOVE &&
		    lm->msg.event != UFFD_EVENT_UNMAP)
			continue;
		deliver_event(h->ctx, lm);
		lm->msg.event = 0;	/* done: nothing when its turn comes */
	}
}

/*
 * Region @r is being destroyed (caller holds ctx->lock for writing):
 * events queued for it are delivered to nobody.
 */
void luffd_inboxes_forget(struct uffd_ctx *ctx, struct uffd_region *r)
{
	for (unsigned int i = 0; i < LIBUFFD_MAX_HANDLERS; i++) {
		struct luffd_handler *h = ctx->inbox[i];

		if (!h)
			continue;
		for (unsigned int k = h->head; k < h->tail; k++)
			for (unsigned int j = 0; j < LUFFD_EV_HITS; j++)
				if (h->q[k].hit[j] == r)
					h->q[k].hit[j] = NULL;
	}
}

/* ---------------------------------------------------------- messages */

/*
 * Read what the uffd has into the inbox.  Returns the number of messages
 * read (0 when none were waiting), -EBUSY when a fault's server holds the
 * fill gate (try again), or -errno.  Events are ingested here.
 * Caller holds ctx->lock for reading.
 */
int luffd_read_msgs(struct luffd_handler *h)
{
	struct uffd_msg buf[LUFFD_READ_BATCH];
	unsigned int room, want, i, n;
	uint64_t now;
	ssize_t got;

	if (h->head == h->tail)
		h->head = h->tail = 0;
	if (h->tail == LUFFD_INBOX_CAP && h->head) {
		memmove(h->q, h->q + h->head,
			(h->tail - h->head) * sizeof(h->q[0]));
		h->tail -= h->head;
		h->head = 0;
	}
	room = LUFFD_INBOX_CAP - h->tail;
	if (!room)
		return -ENOSPC;
	want = LUFFD_MIN(room, LUFFD_READ_BATCH);
	/*
	 * An event's sender (the madvise caller) goes on as soon as read()
	 * takes the event, before we ingest it: ctx->reading tells a fault
	 * that finds a page failed to wait for the REMOVE that may be
	 * clearing it (see luffd_dispatch_fault()).
	 */
	/*
	 * One reader at a time, from read() to the end of ingesting: the
	 * kernel sends the next event (the UNMAP after a REMAP) as soon as
	 * read() took one, and another handler must not ingest it first.
	 */
	/*
	 * Not while a copy decided earlier may still land (fill_gate), and
	 * never waiting for it: its holder may be waiting for a lock of a
	 * pager whose holder waits for this read.  The holders read events
	 * themselves when a fill needs it (their EAGAIN lets the gate go).
	 */
	if (luffd_gate_depth)
		return -EBUSY;	/* a fill's EAGAIN path lets it go first */
	if (pthread_rwlock_trywrlock(&h->ctx->fill_gate))
		return -EBUSY;
	pthread_mutex_lock(&h->ctx->read_lock);
	__atomic_add_fetch(&h->ctx->reading, 1, __ATOMIC_SEQ_CST);
	got = luffd_uffd_read(h->ctx->fd, buf, want * sizeof(buf[0]));
	if (got < 0) {
		int err = errno;

		__atomic_sub_fetch(&h->ctx->reading, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&h->ctx->read_lock);
		pthread_rwlock_unlock(&h->ctx->fill_gate);
		if (err == EAGAIN || err == EINTR)
			return 0;
		return -err;
	}
	now = luffd_now_ns();
	n = (unsigned int)((size_t)got / sizeof(buf[0]));
	for (i = 0; i < n; i++) {
		struct luffd_msg *lm = &h->q[h->tail++];

		lm->msg = buf[i];
		lm->t_read_ns = now;
		lm->nhits = 0;
		/* numbered under read_lock; SIGBUS handlers read it too */
		if (buf[i].event == UFFD_EVENT_REMOVE ||
		    buf[i].event == UFFD_EVENT_UNMAP)
			__atomic_add_fetch(&h->ctx->ev_read, 1,
					   __ATOMIC_SEQ_CST);
		lm->ev_seq = __atomic_load_n(&h->ctx->ev_read,
					     __ATOMIC_RELAXED);
		luffd_ingest_event(h->ctx, lm);
	}
	__atomic_sub_fetch(&h->ctx->reading, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&h->ctx->read_lock);
	pthread_rwlock_unlock(&h->ctx->fill_gate);
	return (int)n;
}

/* Let the moved range go: ordinary memory is better than a livelock. */
static void drop_range(struct uffd_ctx *ctx, uint64_t start, uint64_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	ioctl(ctx->fd, UFFDIO_UNREGISTER, &range);
}

/*
 * mremap moved [from, from+len) to @to, and the kernel carried the
 * registration along.  A whole region moves with it; a part of one is
 * unregistered at its new place (libuffd regions are single ranges) and
 * counted in remap_dropped.
 */
/*
 * Every move read so far, into the table: each moved region's key (base)
 * becomes where it is, and the table is sorted again.  The REMAPs of
 * those moves still queued in other handlers find nothing left to do.
 * Caller holds ctx->lock for writing.
 */
static void apply_moves(struct uffd_ctx *ctx)
{
	size_t i, j;

	if (!__atomic_load_n(&ctx->remaps_pending, __ATOMIC_ACQUIRE))
		return;
	for (i = 0; i < ctx->nregions; i++) {
		struct uffd_region *r = ctx->regions[i];
		int n = __atomic_load_n(&r->moves_pending, __ATOMIC_ACQUIRE);
		uint64_t to;

		if (!n)
			continue;
		to = __atomic_load_n(&r->moving_to, __ATOMIC_ACQUIRE);
		/* the base first: luffd_base() reads moving_to first */
		__atomic_store_n(&r->base, to, __ATOMIC_RELEASE);
		if (r->map_len)
			r->map_addr = (void *)(uintptr_t)to;
		__atomic_store_n(&r->moving_to, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&r->moves_pending, 0, __ATOMIC_RELEASE);
		__atomic_sub_fetch(&ctx->remaps_pending, n, __ATOMIC_SEQ_CST);
	}
	/* insertion sort: a few regions moved in a short table */
	for (i = 1; i < ctx->nregions; i++) {
		struct uffd_region *r = ctx->regions[i];

		for (j = i; j > 0 && ctx->regions[j - 1]->base > r->base; j--)
			ctx->regions[j] = ctx->regions[j - 1];
		ctx->regions[j] = r;
	}
}

void luffd_apply_remap(struct luffd_handler *h, const struct luffd_msg *lm)
{
	const struct uffd_msg *m = &lm->msg;
	struct uffd_ctx *ctx = h->ctx;
	uint64_t from = m->arg.remap.from, to = m->arg.remap.to;
	uint64_t len = m->arg.remap.len;
	struct uffd_region *r = NULL;

	/*
	 * Events are read (and ingested) while waiting for the write lock:
	 * a fault served in a SIGBUS handler holds the lock for reading
	 * and may wait for the next event to be read before its fill can
	 * go on (the UNMAP every move sends after the REMAP), and nobody
	 * else reads them.
	 */
	__atomic_add_fetch(&ctx->remap_waiting, 1, __ATOMIC_SEQ_CST);
	while (pthread_rwlock_trywrlock(&ctx->lock)) {
		pthread_rwlock_rdlock(&ctx->lock);
		luffd_read_msgs(h);
		deliver_queued_events(h);
		pthread_rwlock_unlock(&ctx->lock);
		sched_yield();
	}
	__atomic_sub_fetch(&ctx->remap_waiting, 1, __ATOMIC_SEQ_CST);
	if (lm->nhits == 1) {
		/* a whole region's move, read and followed at once */
		struct uffd_event ev = {
			.type = LIBUFFD_EVENT_REMAP, .len = len, .new_base = to,
		};

		apply_moves(ctx);
		/*
		 * Still a region of ours?  The message left the queue (where
		 * destroy would have forgotten it) before the write lock was
		 * ours, and a region may have been destroyed meanwhile.
		 */
		for (r = ctx->all; r && r != lm->hit[0]; r = r->next)
			;
		if (r)
			luffd_dispatch_event(r, &ev);
		goto out;
	}
	r = luffd_lookup(ctx, from);
	if (r) {
		uint64_t off = from - luffd_base(r);
		uint64_t n = LUFFD_MIN(len, r->len - off);

		luffd_unmapped_set(r, off, n);
		__atomic_store_n(&r->partly_unmapped, 1, __ATOMIC_RELEASE);
		luffd_present_clear(r, off, n);
	}
	drop_range(ctx, to, len);
	luffd_count(r ? &r->ctr : &ctx->ctr, LUFFD_CTR(remap_dropped), 1);
out:
	pthread_rwlock_unlock(&ctx->lock);
}

/* Caller holds ctx->child_lock. */
static int add_child(struct uffd_ctx *ctx, struct uffd_ctx *child)
{
	struct uffd_ctx **n;

	n = realloc(ctx->children, (ctx->nchildren + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	ctx->children = n;
	ctx->children[ctx->nchildren++] = child;
	return 0;
}

/*
 * A fork: the child's copy of every registered range is registered with
 * a new userfaultfd that the kernel installed in our fd table.  Serve it
 * with a child context whose regions get the same pagers, each with its
 * own state.  Caller holds ctx->lock for reading.
 */
static void adopt_fork(struct uffd_ctx *ctx, int fd)
{
	struct uffd_ctx_opts opts = {
		.size = sizeof(opts),
		.flags = LIBUFFD_CTX_PIN_HANDLER | LIBUFFD_CTX_PIN_HELPERS,
		.handler_cpu = ctx->handler_cpu, .helper_cpu = ctx->helper_cpu,
		.handlers = ctx->nworkers, .spin_us = ctx->spin_us,
	};
	struct uffd_ctx *child;
	struct uffd_region *r;
	int err;

	if (uffd_ctx_adopt(&child, fd, &opts) < 0) {
		luffd_count(&ctx->ctr, LUFFD_CTR(pager_errors), 1);
		return;
	}
	child->is_child = true;
	for (r = ctx->all; r; r = r->next) {
		struct uffd_region_opts o = {
			.size = sizeof(o),
			.type = LIBUFFD_MEM_REMOTE,
			.addr = (void *)(uintptr_t)r->base,
			.len = r->len,
			.ops = r->ops,
			.args = r->args_str,
			.page_size = r->page_size,
			.modes = r->modes,
		};
		struct uffd_region *cr;

		if (!r->registered || r->no_fork ||
		    __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
			continue;
		if (uffd_region_create(child, &o, &cr) < 0) {
			/* never strand the child: let its copy go */
			drop_range(child, r->base, r->len);
			luffd_count(&r->ctr, LUFFD_CTR(pager_errors), 1);
			continue;
		}
		/*
		 * The parent's present map is not copied: it is read when
		 * the FORK event is, after the kernel copied the page
		 * tables, so it holds pages filled in between that the
		 * child never got.  Told they were present, the resolver
		 * skipped them and a fault on one was answered by a wake
		 * for ever.  The child's fills of pages it does have end in
		 * EEXIST, which counts them present.
		 */
		luffd_count(&r->ctr, LUFFD_CTR(events_fork), 1);
	}
	/*
	 * Listed before it serves: whoever sees the child's faults done sees
	 * it.  Listing, reading ->running and starting under child_lock:
	 * uffd_ctx_start() sets ->running and then starts every listed child
	 * under it too, and this worker may run before that (it is started
	 * first), so exactly one of the two starts the child.  (Unlocked, a
	 * grandchild adopted by a child's first worker could be started by
	 * both at once, or seen stopped by both.)
	 */
	pthread_mutex_lock(&ctx->child_lock);
	err = add_child(ctx, child);
	if (!err && ctx->running)
		uffd_ctx_start(child);
	pthread_mutex_unlock(&ctx->child_lock);
	if (err)
		uffd_ctx_destroy(child);
}

/*
 * The mapping holding @addr in /proc/@tid/maps (0: this process), as
 * [*start, end); returns 0 when it cannot be told.
 */
static uint64_t mapping_of(uint32_t tid, uint64_t addr, uint64_t *start)
{
	char path[64], buf[4096];
	unsigned long long lo, hi;
	size_t have = 0;
	uint64_t end = 0;
	ssize_t n;
	int fd;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%u/maps", tid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (!end && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		char *line = buf, *nl;

		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 &&
			    addr >= lo && addr < hi) {
				*start = lo;
				end = hi;
				break;
			}
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
	close(fd);
	return end;
}

/*
 * A fault no region covers.  Either it raced with an unregister or unmap
 * (waking lets it retry as an ordinary fault), or the range is still
 * registered behind the table's back: mremap growing a whole region
 * carries the registration into the grown part, and a wake alone would
 * have the thread fault again for ever.  So the rest of that mapping, up
 * to the next region, is unregistered first: ordinary memory.
 * Caller holds ctx->lock for reading.
 */
static void let_stray_go(struct uffd_ctx *ctx, const struct uffd_msg *m)
{
	uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t addr = m->arg.pagefault.address & ~(ps - 1), start = 0, end;
	struct uffdio_range range = { .start = addr, .len = ps };
	struct uffd_region *r;
	size_t i;

	luffd_count(&ctx->ctr, LUFFD_CTR(stray_faults), 1);
	if (__atomic_load_n(&ctx->remaps_pending, __ATOMIC_ACQUIRE))
		goto wake;	/* a region's move is being applied */
	end = mapping_of((ctx->features & UFFD_FEATURE_THREAD_ID) ?
			 m->arg.pagefault.feat.ptid : 0, addr, &start);
	/* the regions on either side keep theirs */
	i = first_ending_after(ctx, addr);
	if (i < ctx->nregions && ctx->regions[i]->base < end)
		end = LUFFD_MAX(ctx->regions[i]->base, addr + ps);
	if (i > 0) {
		r = ctx->regions[i - 1];
		start = LUFFD_MAX(start, r->base + r->len);
	}
	if (end > addr && start <= addr) {
		range.start = start;
		range.len = end - start;
		luffd_count(&ctx->ctr, LUFFD_CTR(ioctls), 1);
		ioctl(ctx->fd, UFFDIO_UNREGISTER, &range);
		range.start = addr;
		range.len = ps;
	}
wake:
	luffd_count(&ctx->ctr, LUFFD_CTR(ioctls), 1);
	ioctl(ctx->fd, UFFDIO_WAKE, &range);
}

void luffd_dispatch(struct luffd_handler *h, const struct luffd_msg *m)
{
	struct uffd_ctx *ctx = h->ctx;
	struct uffd_region *r;

	if (m->msg.event == UFFD_EVENT_FORK) {
		adopt_fork(ctx, (int)m->msg.arg.fork.ufd);
		return;
	}

	if (m->msg.event != UFFD_EVENT_PAGEFAULT) {
		deliver_event(ctx, m);
		return;
	}
	/* the pager hears of every discard read before this fault */
	luffd_events_wait(ctx, m->ev_seq);
	r = luffd_lookup(ctx, m->msg.arg.pagefault.address);
	if (!r) {
		let_stray_go(ctx, &m->msg);
		return;
	}
	luffd_dispatch_fault(h, r, m);
}

LUFFD_API void uffd_ctx_destroy(struct uffd_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->fd >= 0)
		uffd_ctx_stop(ctx);
	while (ctx->nchildren)
		uffd_ctx_destroy(ctx->children[--ctx->nchildren]);
	free(ctx->children);
	/* every region, including those UNMAP dropped from the table */
	while (ctx->all)
		uffd_region_destroy(ctx->all);
	/*
	 * SIGBUS mode: the ranges are unregistered now, so faulting threads
	 * take ordinary faults; drop the context from the signal handler and
	 * wait out handlers that were already inside it.
	 */
	luffd_sigbus_detach(ctx);
	while (__atomic_load_n(&ctx->sig_inflight, __ATOMIC_ACQUIRE))
		sched_yield();
	if (ctx->fd >= 0)
		close(ctx->fd);
	for (unsigned int i = 0; i < LIBUFFD_MAX_HANDLERS; i++)
		if (ctx->workers[i].kick_fd >= 0)
			close(ctx->workers[i].kick_fd);
	luffd_zero_source_fini(ctx);
	pthread_rwlock_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->read_lock);
	pthread_rwlock_destroy(&ctx->fill_gate);
	pthread_mutex_destroy(&ctx->ev_lock);
	pthread_rwlock_destroy(&ctx->served_lock);
	pthread_mutex_destroy(&ctx->cpu_lock);
	pthread_mutex_destroy(&ctx->child_lock);
	luffd_inboxes_free(ctx);
	free(ctx->regions);
	free(ctx);
}
