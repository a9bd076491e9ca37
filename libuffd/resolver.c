/* SPDX-License-Identifier: MIT */
/*
 * The resolver: the one implementation of the fill protocol that every
 * pager goes through, and the dispatch of a fault to its pager.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

enum fill_op { OP_COPY, OP_ZEROPAGE, OP_MOVE, OP_CONTINUE };

/* Bounded retries of a fill whose event we could not read yet. */
#define EVENT_RETRIES	100000

/* ------------------------------------------------------- zero source */

/*
 * Read-only anonymous memory reads as the shared zero page: a source of
 * zeros for UFFDIO_COPY that costs no memory and stays in cache.  One per
 * context, as long as the biggest fill a pager may ask for in one ioctl.
 * Its first 2 MiB (a hugezero extent, a batch of 512) are populated at
 * creation so that the usual copies take no fault; the rest comes in if
 * a bigger fill reads it.  Not all of it: on a kernel that maps no zero
 * page on a read (pvm_no_zero_page=1), populating allocates real pages,
 * and 16 MiB per context is too much to pay up front.
 */
#define ZERO_SRC_POPULATE	(2ull << 20)
int luffd_zero_source_init(struct uffd_ctx *ctx)
{
	void *p = luffd_mmap(NULL, LUFFD_ZERO_SRC_LEN, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return luffd_fail(-errno, "mmap zero source: %s",
				  strerror(errno));
	madvise(p, ZERO_SRC_POPULATE, MADV_POPULATE_READ);
	ctx->zero_src = p;
	return 0;
}

void luffd_zero_source_fini(struct uffd_ctx *ctx)
{
	if (ctx->zero_src)
		munmap(ctx->zero_src, LUFFD_ZERO_SRC_LEN);
	ctx->zero_src = NULL;
}

/* ------------------------------------------------------- the protocol */

/* Returns bytes done (> 0), 0 for "nothing done, retry", or -errno. */
static long do_ioctl(struct uffd_resolver *res, enum fill_op op,
		     uint64_t dst, const char *src, uint64_t len, bool dontwake)
{
	struct uffd_region *r = res->region;
	int fd = r->ctx->fd;
	long done;
	int ret;

	luffd_count(&r->ctr, LUFFD_CTR(ioctls), 1);
	switch (op) {
	case OP_COPY: {
		struct uffdio_copy c = {
			.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len,
			.mode = (dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0) |
				(res->fill_flags & LIBUFFD_FILL_WP ?
				 UFFDIO_COPY_MODE_WP : 0),
		};
		ret = luffd_fill_ioctl(LUFFD_INJ_COPY, fd, UFFDIO_COPY, &c,
				       &c.len, &c.copy, r->page_size);
		done = (long)c.copy;
		break;
	}
	case OP_ZEROPAGE: {
		struct uffdio_zeropage z = {
			.range = { .start = dst, .len = len },
			.mode = dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0,
		};
		ret = luffd_fill_ioctl(LUFFD_INJ_ZEROPAGE, fd, UFFDIO_ZEROPAGE,
				       &z, &z.range.len, &z.zeropage,
				       r->page_size);
		done = (long)z.zeropage;
		break;
	}
	case OP_MOVE: {
		struct uffdio_move m = {
			.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len,
			.mode = dontwake ? UFFDIO_MOVE_MODE_DONTWAKE : 0,
		};
		ret = luffd_fill_ioctl(LUFFD_INJ_MOVE, fd, UFFDIO_MOVE, &m,
				       &m.len, &m.move, r->page_size);
		done = (long)m.move;
		break;
	}
	case OP_CONTINUE: {
		struct uffdio_continue c = {
			.range = { .start = dst, .len = len },
			.mode = dontwake ? UFFDIO_CONTINUE_MODE_DONTWAKE : 0,
		};
		ret = ioctl(fd, UFFDIO_CONTINUE, &c);
		done = (long)c.mapped;
		break;
	}
	default:
		return -EINVAL;
	}
	if (ret == 0)
		return (long)len;
	if (errno == EAGAIN)
		return done > 0 ? done : 0;
	return -errno;
}

static int absorb(struct uffd_resolver *res, unsigned int *tries);

/*
 * Read pending messages so the event that blocks the fill can complete,
 * with the fill gate let go meanwhile (it keeps events from being read).
 * Faults read here are queued for later; events are ingested at once.
 */
int luffd_absorb_events(struct uffd_resolver *res, unsigned int *tries)
{
	struct uffd_ctx *ctx = res->region->ctx;
	int depth = luffd_gate_pause(ctx), ret;

	ret = absorb(res, tries);
	luffd_gate_resume(ctx, depth);
	return ret;
}

/* Give the thread that can read the event 20 us, a bounded number of times. */
static int wait_reader(unsigned int *tries)
{
	struct timespec ts = { .tv_nsec = 20000 };

	if (++*tries > EVENT_RETRIES)
		return -EAGAIN;
	nanosleep(&ts, NULL);
	return 0;
}

static int absorb(struct uffd_resolver *res, unsigned int *tries)
{
	int n;

	/* a helper thread: the handler reads the event */
	if (!res->h)
		return wait_reader(tries);
	n = luffd_read_msgs(res->h);
	/* another fault's server holds the gate: it reads soon */
	if (n == -EBUSY)
		return wait_reader(tries);
	if (n < 0 && n != -ENOSPC)
		return n;
	if (n <= 0) {
		if (++*tries > EVENT_RETRIES)
			return -EAGAIN;
		sched_yield();
	}
	return 0;
}

void luffd_record_service(struct uffd_resolver *res)
{
	if (res->timed)
		return;
	res->timed = true;
	luffd_hist_add(&res->region->ctr, luffd_now_ns() - res->t_read_ns);
}

int luffd_wake_range(struct uffd_resolver *res, uint64_t off, uint64_t len)
{
	struct uffd_region *r = res->region;
	struct uffdio_range range = { .start = luffd_base(r) + off, .len = len };

	luffd_count(&r->ctr, LUFFD_CTR(ioctls), 1);
	if (ioctl(r->ctx->fd, UFFDIO_WAKE, &range) < 0)
		return -errno;
	return 0;
}

/* Fill [a, b) with one protocol loop; counts into *filled. */
static long fill_run(struct uffd_resolver *res, enum fill_op op,
		     uint64_t a, uint64_t b, const char *src, uint64_t src_off,
		     bool dontwake, uint64_t *filled, bool *need_wake)
{
	struct uffd_region *r = res->region;
	unsigned int tries = 0;
	size_t ctr = op == OP_COPY ? LUFFD_CTR(pages_copy) :
		     op == OP_ZEROPAGE ? LUFFD_CTR(pages_zero) :
		     op == OP_CONTINUE ? LUFFD_CTR(pages_continued) :
		     LUFFD_CTR(pages_move);

	while (a < b) {
		const char *s = src ? src + (a - src_off) : NULL;
		uint64_t e = b;
		long done;

		if (op == OP_COPY) {
			/*
			 * Not on a page discarded after the pager decided
			 * (an event this thread read in an EAGAIN below), nor
			 * on one whose discard the pager has not been told
			 * of: it faults again, and the pager knows by then.
			 */
			uint64_t z;

			for (z = a; z < b; z += r->page_size) {
				uint64_t v = __atomic_load_n(
					&r->zap_at[z >> r->page_shift],
					__ATOMIC_ACQUIRE);

				if ((v && !(v & LUFFD_ZAP_TOLD)) ||
				    (v & ~LUFFD_ZAP_TOLD) > res->zap_seen)
					break;
			}
			if (z == a) {
				*need_wake = true;
				a += r->page_size;
				continue;
			}
			e = z;
		}
		done = do_ioctl(res, op, luffd_base(r) + a, s, e - a, dontwake);

		if (done > 0) {
			uint64_t pages = (uint64_t)done >> r->page_shift;

			luffd_present_set(r, a, (uint64_t)done);
			luffd_failed_clear(r, a, (uint64_t)done);
			luffd_count(&r->ctr, ctr, pages);
			if (op == OP_COPY && (res->fill_flags & LIBUFFD_FILL_WP))
				luffd_count(&r->ctr,
					    LUFFD_CTR(pages_protected), pages);
			if (op == OP_COPY)
				luffd_count(&r->ctr, LUFFD_CTR(bytes_copied),
					    (uint64_t)done);
			*filled += pages;
			a += (uint64_t)done;
		} else if (done == 0) {
			int ret = luffd_absorb_events(res, &tries);

			if (ret < 0)
				return ret;
		} else if (done == -EEXIST) {
			/* present already: a lost race, not a new page */
			luffd_count(&r->ctr, LUFFD_CTR(eexist), 1);
			luffd_present_set(r, a, r->page_size);
			*need_wake = true;
			a += r->page_size;
		} else {
			return done;
		}
	}
	return 0;
}

/*
 * UFFDIO_WRITEPROTECT over [off, off+len) (already checked and clipped),
 * with the fill protocol's EAGAIN handling.  Releasing wakes.
 */
static long protect_range(struct uffd_resolver *res, uint64_t off,
			  uint64_t len, bool protect)
{
	struct uffd_region *r = res->region;
	struct uffdio_writeprotect wp = {
		.range = { .start = luffd_base(r) + off, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	unsigned int tries = 0;

	for (;;) {
		luffd_count(&r->ctr, LUFFD_CTR(ioctls), 1);
		if (ioctl(r->ctx->fd, UFFDIO_WRITEPROTECT, &wp) == 0)
			break;
		if (errno != EAGAIN)
			return -errno;
		/* an event (mremap, fork...) is pending: read it, retry */
		{
			int ret = luffd_absorb_events(res, &tries);

			if (ret < 0)
				return ret;
		}
	}
	luffd_count(&r->ctr, protect ? LUFFD_CTR(pages_protected) :
		    LUFFD_CTR(pages_released), len >> r->page_shift);
	return (long)(len >> r->page_shift);
}

static long fill(struct uffd_resolver *res, enum fill_op op, uint64_t off,
		 const void *src, uint64_t len)
{
	struct uffd_region *r;
	uint64_t end, pos, filled = 0;
	bool dontwake, nowake, need_wake = false;
	long ret = 0;

	if (!res)
		return -EINVAL;
	r = res->region;
	if (!LUFFD_ALIGNED(off, r->page_size) ||
	    !LUFFD_ALIGNED(len, r->page_size) || len == 0 || off >= r->len)
		return luffd_fail(-EINVAL, "resolve: bad range %#llx+%#llx",
				  (unsigned long long)off,
				  (unsigned long long)len);
	if ((op == OP_COPY || op == OP_MOVE) && !src)
		return luffd_fail(-EINVAL, "resolve: NULL source");
	if (len > r->len - off)
		len = r->len - off;	/* windows are clipped to the region */
	end = off + len;
	/* SIGBUS mode has no waiters: fill with wake-ups off, wake nobody */
	nowake = r->ctx->delivery == LIBUFFD_DELIVER_SIGBUS;
	/*
	 * Several pages: fill quietly, then one wake for the lot.  Zero
	 * pages to be write-protected too: no thread may write to one
	 * before it is protected.
	 */
	dontwake = nowake || len > r->page_size;

	/* every copy inside the gate: no event is read meanwhile */
	luffd_gate_enter(r->ctx);
	if (!res->zap_valid)	/* a helper's: decided just now */
		res->zap_seen = __atomic_load_n(&r->zap_gen, __ATOMIC_ACQUIRE);
	/*
	 * Runs of pages not known to be present.  The faulting page is
	 * never skipped on our word alone: only the kernel's EEXIST counts.
	 */
	for (pos = off; pos < end && ret >= 0;) {
		uint64_t run;

		if (pos != res->fault_off && luffd_present_test(r, pos)) {
			pos += r->page_size;
			continue;
		}
		for (run = pos + r->page_size; run < end; run += r->page_size)
			if (run != res->fault_off && luffd_present_test(r, run))
				break;
		ret = fill_run(res, op, pos, run, src, off, dontwake, &filled,
			       &need_wake);
		pos = run;
	}
	luffd_gate_leave(r->ctx);
	/* a write-protect fault is answered by lifting the protection */
	if (res->fault_off >= off && res->fault_off < end && !res->fault_wp &&
	    (ret >= 0 || luffd_present_test(r, res->fault_off)))
		res->covered = true;
	/*
	 * One wake for the whole range, also after an error: never strand.
	 * But a faulting page left unfilled is the dispatcher's to answer
	 * (luffd_fail_fault()): woken now, its thread would only fault on
	 * it again.
	 */
	if (!nowake && (dontwake || need_wake)) {
		uint64_t f = res->fault_off;
		int w;

		if (!res->covered && f >= off && f < end) {
			w = f > off ? luffd_wake_range(res, off, f - off) : 0;
			if (w >= 0 && f + r->page_size < end)
				w = luffd_wake_range(res, f + r->page_size,
						     end - f - r->page_size);
		} else {
			w = luffd_wake_range(res, off, len);
		}
		if (ret >= 0 && w < 0 && w != -ENOENT)
			ret = w;
	}
	if (res->covered)
		luffd_record_service(res);
	if (ret < 0)
		return luffd_fail((int)ret, "resolve %#llx+%#llx: %s",
				  (unsigned long long)off,
				  (unsigned long long)len, strerror((int)-ret));
	return (long)filled;
}

LUFFD_API long uffd_resolve_copy(struct uffd_resolver *res, uint64_t off,
				 const void *src, uint64_t len)
{
	return fill(res, OP_COPY, off, src, len);
}

/* Copy zeros from the zero source, in chunks as big as the source. */
static long zerofill(struct uffd_resolver *res, uint64_t off, uint64_t len)
{
	long ret, total = 0;

	if (!res)
		return -EINVAL;
	/* fill() checks the range (a zero length is -EINVAL) and clips it */
	do {
		uint64_t n = LUFFD_MIN(len, LUFFD_ZERO_SRC_LEN);

		ret = fill(res, OP_COPY, off, res->region->ctx->zero_src, n);
		if (ret < 0)
			return ret;
		total += ret;
		off += n;
		len -= n;
	} while (len && off < res->region->len);
	return total;
}

LUFFD_API long uffd_resolve_zerofill(struct uffd_resolver *res, uint64_t off,
				     uint64_t len)
{
	return zerofill(res, off, len);
}

LUFFD_API long uffd_resolve_zeropage(struct uffd_resolver *res, uint64_t off,
				     uint64_t len)
{
	if (!res)
		return -EINVAL;
	/*
	 * hugetlb offers no UFFDIO_ZEROPAGE; and UFFDIO_ZEROPAGE has no WP
	 * mode, so a zero page protected after the fact leaves a moment
	 * when another thread's write lands without a WP fault (untracked
	 * dirt).  Zeros copied with UFFDIO_COPY_MODE_WP are protected as
	 * they are mapped.
	 */
	if (!(res->region->reg_ioctls & (1ull << _UFFDIO_ZEROPAGE)) ||
	    (res->fill_flags & LIBUFFD_FILL_WP))
		return zerofill(res, off, len);
	return fill(res, OP_ZEROPAGE, off, NULL, len);
}

LUFFD_API long uffd_resolve_move(struct uffd_resolver *res, uint64_t off,
				 void *src, uint64_t len)
{
	if (!res)
		return -EINVAL;
	if (!(res->region->ctx->features & UFFD_FEATURE_MOVE))
		return luffd_fail(-EOPNOTSUPP, "UFFDIO_MOVE not enabled");
	return fill(res, OP_MOVE, off, src, len);
}

LUFFD_API int uffd_resolver_set_fill(struct uffd_resolver *res,
				     unsigned int flags)
{
	if (!res || (flags & ~LIBUFFD_FILL_WP))
		return luffd_fail(-EINVAL, "set_fill: bad flags %#x", flags);
	if ((flags & LIBUFFD_FILL_WP) &&
	    !(res->region->modes & LIBUFFD_REG_WP))
		return luffd_fail(-EINVAL, "set_fill: region not registered "
				  "for WP");
	res->fill_flags = flags;
	return 0;
}

LUFFD_API long uffd_resolve_writeprotect(struct uffd_resolver *res,
					 uint64_t off, uint64_t len,
					 int protect)
{
	struct uffd_region *r;
	long ret;

	if (!res)
		return luffd_fail(-EINVAL, "writeprotect: NULL resolver");
	r = res->region;
	if (!(r->modes & LIBUFFD_REG_WP))
		return luffd_fail(-EINVAL, "writeprotect: region not "
				  "registered for WP");
	if (!LUFFD_ALIGNED(off, r->page_size) ||
	    !LUFFD_ALIGNED(len, r->page_size) || !len || off >= r->len)
		return luffd_fail(-EINVAL, "writeprotect: bad range "
				  "%#llx+%#llx", (unsigned long long)off,
				  (unsigned long long)len);
	len = LUFFD_MIN(len, r->len - off);
	ret = protect_range(res, off, len, protect != 0);
	if (ret < 0)
		return luffd_fail((int)ret, "writeprotect %#llx+%#llx: %s",
				  (unsigned long long)off,
				  (unsigned long long)len, strerror((int)-ret));
	if (!protect && res->fault_off >= off && res->fault_off < off + len) {
		res->covered = true;
		luffd_record_service(res);
	}
	return ret;
}

LUFFD_API long uffd_resolve_continue(struct uffd_resolver *res, uint64_t off,
				     uint64_t len)
{
	if (!res)
		return luffd_fail(-EINVAL, "continue: NULL resolver");
	if (!(res->region->modes & LIBUFFD_REG_MINOR))
		return luffd_fail(-EINVAL, "continue: region not registered "
				  "for MINOR");
	return fill(res, OP_CONTINUE, off, NULL, len);
}

LUFFD_API int uffd_resolve_wake(struct uffd_resolver *res, uint64_t off,
				uint64_t len)
{
	int ret;

	if (!res || !LUFFD_ALIGNED(off, res->region->page_size) ||
	    !LUFFD_ALIGNED(len, res->region->page_size) || !len ||
	    off >= res->region->len)
		return luffd_fail(-EINVAL, "wake: bad range");
	len = LUFFD_MIN(len, res->region->len - off);
	ret = luffd_wake_range(res, off, len);
	if (ret >= 0 && res->fault_off >= off && res->fault_off < off + len) {
		res->covered = true;
		luffd_record_service(res);
	}
	return ret;
}

LUFFD_API struct uffd_region *uffd_resolver_region(struct uffd_resolver *res)
{
	return res ? res->region : NULL;
}

LUFFD_API int uffd_resolver_create(struct uffd_region *r,
				   struct uffd_resolver **out)
{
	struct uffd_resolver *res;

	if (!r || !out)
		return luffd_fail(-EINVAL, "uffd_resolver_create: NULL");
	res = calloc(1, sizeof(*res));
	if (!res)
		return luffd_fail(-ENOMEM, "out of memory");
	res->region = r;
	res->fault_off = UINT64_MAX;	/* no fault: nothing to time */
	res->timed = true;
	*out = res;
	return 0;
}

LUFFD_API void uffd_resolver_destroy(struct uffd_resolver *res)
{
	free(res);
}

/* ------------------------------------------------------- dispatch */

void luffd_dispatch_event(struct uffd_region *r, const struct uffd_event *ev)
{
	bool serial = !(r->pager_flags & LIBUFFD_PAGER_CONCURRENT);

	if (!r->ops->event)
		return;
	if (serial)
		pthread_mutex_lock(&r->fault_lock);
	r->ops->event(r->state, ev);
	if (serial)
		pthread_mutex_unlock(&r->fault_lock);
}

/*
 * Is the page at @off still failed?  A MADV_DONTNEED that takes the
 * failure away lets its caller go on once a handler has read the REMOVE,
 * a moment before the handler clears the bit; a fault after it must not
 * take that moment's word.  So wait (briefly: a read is ingested at once)
 * for reads in flight before answering yes.
 */
static bool still_failed(struct uffd_region *r, uint64_t off)
{
	unsigned int spins = 0;

	while (luffd_failed_test(r, off) &&
	       __atomic_load_n(&r->ctx->reading, __ATOMIC_ACQUIRE) &&
	       ++spins < 100000)
		sched_yield();
	return luffd_failed_test(r, off);
}

int luffd_dispatch_fault(struct luffd_handler *h, struct uffd_region *r,
			 const struct luffd_msg *m)
{
	bool serial = !(r->pager_flags & LIBUFFD_PAGER_CONCURRENT);
	uint64_t flags = m->msg.arg.pagefault.flags;
	uint64_t addr = m->msg.arg.pagefault.address &
			~(uint64_t)(r->page_size - 1);
	struct uffd_resolver res = {
		.region = r,
		.h = h,
		.fault_off = addr - luffd_base(r),
		.t_read_ns = m->t_read_ns,
	};
	struct uffd_fault f = {
		.addr = addr,
		.offset = addr - luffd_base(r),
		.tid = m->msg.arg.pagefault.feat.ptid,
	};
	int ret;

	res.fault_wp = (flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
	if (flags & UFFD_PAGEFAULT_FLAG_WRITE)
		f.flags |= LIBUFFD_FAULT_WRITE;
	if (flags & UFFD_PAGEFAULT_FLAG_WP)
		f.flags |= LIBUFFD_FAULT_WP;
	if (flags & UFFD_PAGEFAULT_FLAG_MINOR)
		f.flags |= LIBUFFD_FAULT_MINOR;
	luffd_count(&r->ctr,
		    (flags & UFFD_PAGEFAULT_FLAG_WP) ? LUFFD_CTR(faults_wp) :
		    (flags & UFFD_PAGEFAULT_FLAG_MINOR) ? LUFFD_CTR(faults_minor) :
		    (flags & UFFD_PAGEFAULT_FLAG_WRITE) ? LUFFD_CTR(faults_write) :
		    LUFFD_CTR(faults_read), 1);

	if (still_failed(r, f.offset)) {
		/* its pager failed already: the answer is the same */
		luffd_count(&r->ctr, LUFFD_CTR(failed_refaults), 1);
		luffd_fail_fault(&res, f.tid, m->msg.arg.pagefault.address);
		return -EFAULT;
	}
	/* several handler threads: one hook per region unless CONCURRENT */
	if (serial)
		pthread_mutex_lock(&r->fault_lock);
	/* what the pager decides on, it fills before any discard lands */
	luffd_gate_enter(r->ctx);
	res.zap_seen = __atomic_load_n(&r->zap_gen, __ATOMIC_ACQUIRE);
	res.zap_valid = true;
	ret = r->ops->fault(r->state, &res, &f);
	luffd_gate_leave(r->ctx);
	if (serial)
		pthread_mutex_unlock(&r->fault_lock);
	if (ret == 0 && res.covered)
		return 0;
	if (ret == -ESRCH)
		return 0;	/* the faulting process is gone */
	if (ret == -ENOENT && h) {
		/*
		 * The range is not there any more: moved by an mremap (whose
		 * REMAP is not read yet) or unmapped since the fault was
		 * raised.  A fault read twice (two threads, one page) may be
		 * dispatched that late, its thread long served; a thread
		 * still waiting is woken by the move or the unmap, and faults
		 * again where the page is now.  Not the pager's failure.
		 */
		luffd_count(&r->ctr, LUFFD_CTR(stray_faults), 1);
		return 0;
	}
	luffd_count(&r->ctr, LUFFD_CTR(pager_errors), 1);
	luffd_fail_fault(&res, f.tid, m->msg.arg.pagefault.address);
	return -EFAULT;
}
