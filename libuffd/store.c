/* SPDX-License-Identifier: MIT */
/*
 * Page stores: the handle every store is used through.  The handle, not
 * each store, keeps the "written" bitmap: every write passes through
 * here, so one implementation answers "never written" for every store,
 * and a store stays one small file that only moves bytes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const struct uffd_store_ops *const builtin[] = {
	&luffd_store_memfd,
	&luffd_store_file,
#ifdef HAVE_MEMCACHED
	&luffd_store_memcached,
#endif
	NULL,
};

struct uffd_store {
	const struct uffd_store_ops *ops;
	void			*state;
	uint64_t		len;
	uint64_t		ps;
	unsigned int		shift;
	uint64_t		npages;
	uint64_t		*written;	/* atomic: one bit per page */
	int			*written_refs;	/* handles sharing it (dups) */
	/* finished, not yet reaped (the caller's thread only) */
	struct uffd_store_io	*done_head, *done_tail;
	unsigned int		ndone;
	unsigned int		out;		/* submitted, not reaped */
	struct uffd_store_stats	st;		/* atomic counters */
};

LUFFD_API const struct uffd_store_ops *const *uffd_store_list(void)
{
	return builtin;
}

LUFFD_API const struct uffd_store_ops *uffd_store_find(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; builtin[i]; i++)
		if (!strcmp(builtin[i]->name, name))
			return builtin[i];
	return NULL;
}

/* ------------------------------------------------------- the bitmap */

static bool bit_test(const uint64_t *map, uint64_t p)
{
	return __atomic_load_n(&map[p >> 6], __ATOMIC_ACQUIRE) &
	       (1ull << (p & 63));
}

/* Set or clear [p, end); returns how many bits changed. */
static uint64_t bits_change(uint64_t *map, uint64_t p, uint64_t end, bool set)
{
	uint64_t changed = 0;

	while (p < end) {
		unsigned int bit = (unsigned int)(p & 63);
		uint64_t n = LUFFD_MIN(end - p, 64 - bit);
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
		uint64_t old;

		if (set)
			old = __atomic_fetch_or(&map[p >> 6], mask,
						__ATOMIC_RELEASE);
		else
			old = __atomic_fetch_and(&map[p >> 6], ~mask,
						 __ATOMIC_RELEASE);
		changed += (uint64_t)__builtin_popcountll(set ? ~old & mask
							       : old & mask);
		p += n;
	}
	return changed;
}

static void count(struct uffd_store *st, uint64_t *field, int64_t n)
{
	(void)st;
	luffd_add(field, (uint64_t)n);
}

/* ------------------------------------------------------- open, close */

LUFFD_API int uffd_store_open_ops(const struct uffd_store_ops *ops,
				  const char *args, uint64_t len,
				  struct uffd_store **out)
{
	struct uffd_args a;
	struct uffd_store *st;
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t words;
	int ret;

	if (!out)
		return luffd_fail(-EINVAL, "store: no handle pointer");
	*out = NULL;
	if (!ops || ops->version < 1 || !ops->name || !ops->open ||
	    !ops->submit || !ops->close ||
	    ((ops->flags & LIBUFFD_STORE_ASYNC) && !ops->wait))
		return luffd_fail(-EINVAL, "store: incomplete ops table");
	if (len % (uint64_t)ps)
		return luffd_fail(-EINVAL,
				  "store %s: length %llu is not a multiple of the page size",
				  ops->name, (unsigned long long)len);
	ret = luffd_args_parse(args, &a);
	if (ret < 0)
		return ret;
	st = calloc(1, sizeof(*st));
	if (!st) {
		ret = luffd_fail(-ENOMEM, "out of memory");
		goto out_args;
	}
	st->ops = ops;
	st->ps = (uint64_t)ps;
	st->shift = (unsigned int)__builtin_ctzll(st->ps);
	st->len = len;
	luffd_clear_error();
	ret = ops->open(&a, &st->len, &st->state);
	if (ret < 0) {
		if (!*uffd_last_error())
			luffd_fail(ret, "store %s: open failed", ops->name);
		goto out_free;
	}
	if (!st->len || st->len % st->ps) {
		ret = luffd_fail(-EINVAL, "store %s: bad length %llu",
				 ops->name, (unsigned long long)st->len);
		goto out_close;
	}
	st->npages = st->len >> st->shift;
	words = (st->npages + 63) / 64;
	st->written = calloc(words, sizeof(uint64_t));
	st->written_refs = calloc(1, sizeof(int));
	if (!st->written || !st->written_refs) {
		ret = luffd_fail(-ENOMEM, "store %s: bitmap of %llu pages",
				 ops->name, (unsigned long long)st->npages);
		goto out_close;
	}
	if (ops->data) {
		uint64_t i, n = 0;

		ret = ops->data(st->state, st->npages, st->written);
		if (ret < 0)
			goto out_close;
		/* bits past the end are not the store's to set */
		if (st->npages & 63)
			st->written[words - 1] &= (1ull << (st->npages & 63)) - 1;
		for (i = 0; i < words; i++)
			n += (uint64_t)__builtin_popcountll(st->written[i]);
		st->st.written_pages = n;
	}
	luffd_args_free(&a);
	luffd_clear_error();
	*out = st;
	return 0;
out_close:
	ops->close(st->state);
out_free:
	free(st->written);
	free(st->written_refs);
	free(st);
out_args:
	luffd_args_free(&a);
	return ret;
}

LUFFD_API int uffd_store_open(const char *spec, uint64_t len,
			      struct uffd_store **out)
{
	const struct uffd_store_ops *ops;
	struct uffd_args a;
	const char *colon;
	int ret;

	if (!out)
		return luffd_fail(-EINVAL, "store: no handle pointer");
	*out = NULL;
	ret = luffd_spec_parse_as("store", spec, &a);
	if (ret < 0)
		return ret;
	ops = uffd_store_find(a.name);
	if (!ops) {
		ret = luffd_fail(-EINVAL, "unknown store \"%s\"", a.name);
		luffd_args_free(&a);
		return ret;
	}
	luffd_args_free(&a);
	/* parsed once above to check it; the ops get their own copy */
	colon = strchr(spec, ':');
	return uffd_store_open_ops(ops, colon ? colon + 1 : NULL, len, out);
}

static struct uffd_store_io *pop_done(struct uffd_store *st)
{
	struct uffd_store_io *io = st->done_head;

	if (io) {
		st->done_head = io->next;
		if (!st->done_head)
			st->done_tail = NULL;
		io->next = NULL;
		st->ndone--;
		st->out--;
	}
	return io;
}

LUFFD_API void uffd_store_close(struct uffd_store *st)
{
	if (!st)
		return;
	/* the store may not free what the kernel still writes into */
	while (st->out > st->ndone && st->ops->wait &&
	       st->ops->wait(st->state, st->out - st->ndone) >= 0)
		;
	while (pop_done(st))
		;
	st->ops->close(st->state);
	if (!__atomic_fetch_sub(st->written_refs, 1, __ATOMIC_ACQ_REL)) {
		free(st->written);
		free(st->written_refs);
	}
	free(st);
}

LUFFD_API int uffd_store_dup(struct uffd_store *st, struct uffd_store **out)
{
	struct uffd_store *d;
	int ret;

	if (!st || !out)
		return luffd_fail(-EINVAL, "store dup: NULL");
	*out = NULL;
	if (st->ops->version < 2 || !st->ops->dup)
		return luffd_fail(-EOPNOTSUPP, "store %s: no second handle",
				  st->ops->name);
	d = calloc(1, sizeof(*d));
	if (!d)
		return luffd_fail(-ENOMEM, "out of memory");
	ret = st->ops->dup(st->state, &d->state);
	if (ret < 0) {
		free(d);
		if (!*uffd_last_error())
			luffd_fail(ret, "store %s: dup failed", st->ops->name);
		return ret;
	}
	d->ops = st->ops;
	d->len = st->len;
	d->ps = st->ps;
	d->shift = st->shift;
	d->npages = st->npages;
	d->written = st->written;
	d->written_refs = st->written_refs;
	__atomic_fetch_add(st->written_refs, 1, __ATOMIC_RELAXED);
	*out = d;
	return 0;
}

LUFFD_API uint64_t uffd_store_len(const struct uffd_store *st)
{
	return st ? st->len : 0;
}

LUFFD_API uint64_t uffd_store_page_size(const struct uffd_store *st)
{
	return st ? st->ps : 0;
}

LUFFD_API const char *uffd_store_name(const struct uffd_store *st)
{
	return st ? st->ops->name : NULL;
}

LUFFD_API unsigned int uffd_store_inflight(const struct uffd_store *st)
{
	return st ? st->out : 0;
}

/* ------------------------------------------------------- I/O */

static bool in_range(const struct uffd_store *st, uint64_t page,
		     uint64_t npages)
{
	return npages && page < st->npages && npages <= st->npages - page;
}

LUFFD_API void uffd_store_complete(struct uffd_store_io *io, int res)
{
	struct uffd_store *st = io->store;
	uint64_t p, end = io->page + io->npages;

	io->res = res;
	io->holes = 0;
	if (res < 0) {
		count(st, &st->st.errors, 1);
	} else if (io->op == LIBUFFD_STORE_WRITE) {
		count(st, &st->st.writes, 1);
		count(st, &st->st.pages_written, (int64_t)io->npages);
		count(st, &st->st.written_pages,
		      (int64_t)bits_change(st->written, io->page, end, true));
	} else {
		/*
		 * Never-written pages read as zeros whatever the medium
		 * holds: a block device keeps older bytes, and a page may
		 * have been discarded without its space given back.
		 */
		for (p = io->page; p < end; p++) {
			if (bit_test(st->written, p))
				continue;
			memset((char *)io->buf + ((p - io->page) << st->shift),
			       0, st->ps);
			io->holes++;
		}
		count(st, &st->st.reads, 1);
		count(st, &st->st.pages_read, (int64_t)io->npages);
		count(st, &st->st.hole_pages, (int64_t)io->holes);
	}
	io->next = NULL;
	if (st->done_tail)
		st->done_tail->next = io;
	else
		st->done_head = io;
	st->done_tail = io;
	st->ndone++;
}

static bool all_holes(const struct uffd_store *st, uint64_t page,
		      uint64_t npages)
{
	int w;

	return uffd_store_extent(st, page, npages, &w) == (int64_t)npages &&
	       !w;
}

LUFFD_API int uffd_store_submit(struct uffd_store *st,
				struct uffd_store_io *const *ios,
				unsigned int n)
{
	struct uffd_store_io *batch[64];
	unsigned int i, nb = 0, started = 0;
	int ret;

	if (!st || (n && !ios))
		return luffd_fail(-EINVAL, "store: no handle or requests");
	for (i = 0; i < n; i++) {
		struct uffd_store_io *io = ios[i];

		if (!io || !io->buf ||
		    (io->op != LIBUFFD_STORE_READ &&
		     io->op != LIBUFFD_STORE_WRITE))
			return luffd_fail(-EINVAL,
					  "store %s: request %u: no buffer or bad op",
					  st->ops->name, i);
		if (!in_range(st, io->page, io->npages))
			return luffd_fail(-EINVAL,
					  "store %s: request %u: pages %llu+%llu outside the store's %llu",
					  st->ops->name, i,
					  (unsigned long long)io->page,
					  (unsigned long long)io->npages,
					  (unsigned long long)st->npages);
	}
	/*
	 * In batches the store sees at once.  Only the first batch can
	 * fail whole; a later one that fails completes its requests with
	 * the error, since earlier ones are out already.
	 */
	for (i = 0; i < n; i++) {
		struct uffd_store_io *io = ios[i];

		io->store = st;
		io->res = 0;
		io->holes = 0;
		io->out_flags = 0;
		io->next = NULL;
		io->priv[0] = io->priv[1] = 0;
		st->out++;
		if (io->op == LIBUFFD_STORE_READ &&
		    all_holes(st, io->page, io->npages)) {
			uffd_store_complete(io, 0);
			continue;
		}
		count(st, &st->st.store_ios, 1);
		batch[nb++] = io;
		if (nb < LUFFD_ARRAY_SIZE(batch) && i + 1 < n)
			continue;
		ret = st->ops->submit(st->state, batch, nb);
		if (ret < 0) {
			unsigned int k;

			if (!started && i + 1 == nb) {
				/* nothing went out: undo it all */
				st->out -= nb;
				count(st, &st->st.store_ios, -(int64_t)nb);
				return ret;
			}
			for (k = 0; k < nb; k++)
				uffd_store_complete(batch[k], ret);
		}
		started += nb;
		nb = 0;
	}
	return (int)n;
}

LUFFD_API int uffd_store_reap(struct uffd_store *st,
			      struct uffd_store_io **done, unsigned int max,
			      unsigned int min)
{
	unsigned int n = 0;
	int ret;

	if (!st || (max && !done) || min > max || min > st->out)
		return luffd_fail(-EINVAL,
				  "store: reap %u of %u out (max %u)", min,
				  st ? st->out : 0, max);
	for (;;) {
		struct uffd_store_io *io;

		while (n < max && (io = pop_done(st)))
			done[n++] = io;
		if (n >= min || n == max)
			break;
		if (!st->ops->wait)	/* synchronous: all are done */
			break;
		ret = st->ops->wait(st->state, min - n);
		if (ret == 0)	/* a store that lost track: never hang */
			ret = luffd_fail(-EIO, "store %s: nothing completed",
					 st->ops->name);
		if (ret < 0)
			return n ? (int)n : ret;
	}
	/* reap what is ready without blocking: cheaper in one go */
	if (!min && n < max && st->ops->wait && st->out > st->ndone &&
	    st->ops->wait(st->state, 0) > 0) {
		struct uffd_store_io *io;

		while (n < max && (io = pop_done(st)))
			done[n++] = io;
	}
	return (int)n;
}

/* Wait for @io alone; other requests that finish stay queued. */
static int wait_one(struct uffd_store *st, struct uffd_store_io *io)
{
	struct timespec ts = { .tv_nsec = 1000000 };
	int ret;

	for (;;) {
		struct uffd_store_io **pp, *prev = NULL;

		for (pp = &st->done_head; *pp; prev = *pp, pp = &(*pp)->next) {
			if (*pp != io)
				continue;
			*pp = io->next;
			if (st->done_tail == io)
				st->done_tail = prev;
			st->ndone--;
			st->out--;
			return io->res;
		}
		if (!st->ops->wait)
			return luffd_fail(-EIO, "store %s: a request was lost",
					  st->ops->name);
		ret = st->ops->wait(st->state, 1);
		if (ret == 0)	/* none in flight, the store says */
			return luffd_fail(-EIO, "store %s: a request was lost",
					  st->ops->name);
		if (ret > 0)
			continue;
		/*
		 * @io lives in the caller's stack frame and its buffer is
		 * the caller's: neither may be handed back while the store
		 * (the kernel) may still complete it.  Wait again, however
		 * long: a store that can no longer do I/O finishes its
		 * requests with an error rather than fail its wait (the
		 * file store does for those a failed submit left queued).
		 */
		nanosleep(&ts, NULL);
	}
}

static int rw_one(struct uffd_store *st, int op, uint64_t page,
		  uint64_t npages, void *buf)
{
	struct uffd_store_io io = {
		.op = op, .page = page, .npages = npages, .buf = buf,
	};
	struct uffd_store_io *p = &io;
	int ret;

	ret = uffd_store_submit(st, &p, 1);
	if (ret < 0)
		return ret;
	ret = wait_one(st, &io);
	if (ret < 0)
		return ret;
	return op == LIBUFFD_STORE_READ ? (int)LUFFD_MIN(io.holes, INT32_MAX)
					: 0;
}

LUFFD_API int uffd_store_read(struct uffd_store *st, uint64_t page,
			      uint64_t npages, void *buf)
{
	return rw_one(st, LIBUFFD_STORE_READ, page, npages, buf);
}

LUFFD_API int uffd_store_write(struct uffd_store *st, uint64_t page,
			       uint64_t npages, const void *buf)
{
	/* a write request only reads its buffer */
	return rw_one(st, LIBUFFD_STORE_WRITE, page, npages, (void *)buf);
}

/* ------------------------------------------------------- the rest */

LUFFD_API int uffd_store_written(const struct uffd_store *st, uint64_t page)
{
	if (!st || page >= st->npages)
		return luffd_fail(-EINVAL, "store: page out of range");
	return bit_test(st->written, page);
}

LUFFD_API int64_t uffd_store_extent(const struct uffd_store *st,
				    uint64_t page, uint64_t max, int *written)
{
	uint64_t p, end;
	bool w;

	if (!st || !written || !max || page >= st->npages)
		return luffd_fail(-EINVAL, "store: extent out of range");
	end = page + LUFFD_MIN(max, st->npages - page);
	w = bit_test(st->written, page);
	for (p = page + 1; p < end; ) {
		uint64_t word = __atomic_load_n(&st->written[p >> 6],
						__ATOMIC_ACQUIRE);

		/* whole words at once: a snapshot's extents are long */
		if (!(p & 63) && end - p >= 64 && word == (w ? ~0ull : 0)) {
			p += 64;
			continue;
		}
		if (!!(word & (1ull << (p & 63))) != w)
			break;
		p++;
	}
	*written = w;
	return (int64_t)(p - page);
}

LUFFD_API int uffd_store_discard(struct uffd_store *st, uint64_t page,
				 uint64_t npages)
{
	if (!st || !in_range(st, page, npages))
		return luffd_fail(-EINVAL, "store: discard out of range");
	/* zeros first: a read that starts after this must not see data */
	count(st, &st->st.written_pages,
	      -(int64_t)bits_change(st->written, page, page + npages, false));
	if (st->ops->discard)
		return st->ops->discard(st->state, page, npages);
	return 0;
}

LUFFD_API int uffd_store_sync(struct uffd_store *st)
{
	if (!st)
		return luffd_fail(-EINVAL, "store: no handle");
	return st->ops->sync ? st->ops->sync(st->state) : 0;
}

LUFFD_API int uffd_store_pool(struct uffd_store *st, void **buf, size_t *len)
{
	if (!st || !buf || !len)
		return luffd_fail(-EINVAL, "store: no handle or outputs");
	if (!st->ops->pool)
		return luffd_fail(-EOPNOTSUPP, "store %s has no buffer pool",
				  st->ops->name);
	return st->ops->pool(st->state, buf, len);
}

LUFFD_API int uffd_store_stats(const struct uffd_store *st,
			       struct uffd_store_stats *out, size_t size)
{
	struct uffd_store_stats s;
	const uint64_t *src;
	uint64_t *dst = (uint64_t *)&s;
	size_t i;

	if (!st || !out)
		return luffd_fail(-EINVAL, "store: no handle or output");
	src = (const uint64_t *)&st->st;
	for (i = 0; i < sizeof(s) / sizeof(uint64_t); i++)
		dst[i] = luffd_load(&src[i]);
	memcpy(out, &s, LUFFD_MIN(size, sizeof(s)));
	return 0;
}
