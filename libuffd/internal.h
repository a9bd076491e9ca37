/* SPDX-License-Identifier: MIT */
/*
 * libuffd internals: never installed.  Internal functions are named
 * luffd_* and are hidden from the shared library (see libuffd.map).
 */
#ifndef LIBUFFD_INTERNAL_H
#define LIBUFFD_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/userfaultfd.h>

#include "libuffd.h"
#include "inject.h"

#ifdef LUFFD_PRELOAD	/* linked into the preload: only its interposers show */
#define LUFFD_API
#else
#define LUFFD_API __attribute__((visibility("default")))
#endif

/* ---- kernel definitions newer than the installed 6.1 headers ---- */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON		(1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE		(1 << 16)
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE			(0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE		((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES	((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE	_IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON			(0x08)
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE	((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON	_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif

/* ---- small helpers ---- */
#define LUFFD_MIN(a, b)		((a) < (b) ? (a) : (b))
#define LUFFD_MAX(a, b)		((a) > (b) ? (a) : (b))
#define LUFFD_ALIGNED(x, a)	(((x) & ((a) - 1)) == 0)
/* above any process's address space (5-level paging: 2^56 bytes) */
#define LUFFD_MAX_USER_LEN	(1ull << 57)
#define LUFFD_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

static inline void luffd_add(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static inline uint64_t luffd_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

uint64_t luffd_now_ns(void);

/* error.c: the thread's last error text; returns @err for tail calls */
int luffd_fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void luffd_clear_error(void);

/* probe.c */
int luffd_open_uffd(unsigned int ctx_flags, int *method);
int luffd_api(int fd, uint64_t features, uint64_t *features_out,
	      uint64_t *ioctls_out);
/* What a userfaultfd has enabled, from its fdinfo; -EBADF if not one. */
int luffd_fdinfo_api(int fd, uint64_t *features, uint64_t *ioctls);

/* ---- statistics: plain counters updated with atomics ---- */
struct luffd_counters {
	uint64_t v[sizeof(struct uffd_stats) / sizeof(uint64_t)];
};
#define LUFFD_CTR(field)	(offsetof(struct uffd_stats, field) / sizeof(uint64_t))

static inline void luffd_count(struct luffd_counters *c, size_t idx,
			       uint64_t n)
{
	luffd_add(&c->v[idx], n);
}

void luffd_hist_add(struct luffd_counters *c, uint64_t ns);
void luffd_counters_sum(struct luffd_counters *dst,
			const struct luffd_counters *src);
void luffd_counters_to_stats(const struct luffd_counters *c,
			     struct uffd_stats *st);

/* ---- args.c: parsed pager specs ---- */
#define LUFFD_MAX_ARGS	16
struct uffd_args {
	int	n;
	char	*key[LUFFD_MAX_ARGS];
	char	*val[LUFFD_MAX_ARGS];
	char	*buf;		/* owns the strings */
	char	*name;		/* pager name, when parsed from a spec */
};

int luffd_spec_parse(const char *spec, struct uffd_args *a);
int luffd_spec_parse_as(const char *what, const char *spec,
			struct uffd_args *a);
int luffd_args_parse(const char *s, struct uffd_args *a);
void luffd_args_free(struct uffd_args *a);

/* ---- handover.c ---- */
/*
 * Check one received handover message (@len bytes at @buf): header,
 * sizes, room in @ranges (*n on entry) and every range.  On success
 * ranges[0..*n) and *features (if not NULL) are set and 0 returned;
 * otherwise -EPROTO with the reason set, and nothing written.  Apart from
 * uffd_handover_recv, the fuzz target tests/fuzz/fuzz-handover.c calls it.
 */
int luffd_handover_parse(const void *buf, size_t len, uint64_t *features,
			 struct uffd_handover_range *ranges, unsigned *n);

/*
 * Receive one message on @sock into @buf (@cap bytes) with at most
 * LUFFD_HANDOVER_FDS descriptors (more are closed by the kernel and the
 * message refused), from a peer of our uid.  Returns the length (> 0),
 * the descriptors in fds[0..*nfds) and the peer's credentials; or
 * -errno (-ECONNRESET: closed; -EPERM: another uid; -EPROTO: truncated)
 * with the reason prefixed by @who, and every descriptor closed.
 */
#define LUFFD_HANDOVER_FDS	4
struct ucred;
ssize_t luffd_handover_recvmsg(int sock, void *buf, size_t cap, int *fds,
			       int *nfds, struct ucred *cred, const char *who);

/* ---- firecracker.c ---- */
/*
 * Check Firecracker's handshake (@len bytes of JSON at @buf) and turn it
 * into ranges (file_offset: the region's offset in the memory file).
 * Returns 0 with ranges[0..*n) (*n is the capacity on entry), or
 * -EPROTO with the reason, leaving the outputs untouched; -EINVAL for
 * NULL arguments or a capacity of 0.  uffd_handover_recv_firecracker
 * runs it; so does the fuzz target tests/fuzz/fuzz-firecracker.c.
 */
int luffd_fc_parse(const void *buf, size_t len,
		   struct uffd_handover_range *ranges, unsigned *n);

/* ---- regions ---- */
struct uffd_region {
	struct uffd_ctx		*ctx;
	uint64_t		base;
	uint64_t		len;
	uint64_t		page_size;
	unsigned int		page_shift;
	enum uffd_mem_type	type;
	int			memfd;
	uint64_t		map_len;	/* what we mmap'd (0: adopted) */
	void			*map_addr;
	uint64_t		reg_ioctls;	/* UFFDIO_REGISTER's reply */
	unsigned int		modes;		/* LIBUFFD_REG_* */

	int			registered;	/* guarded by ctx->lock */
	bool			in_table;	/* guarded by ctx->lock */
	struct uffd_region	*next, *prev;	/* ctx->all, under ctx->lock */
	bool			started;	/* pager start hook ran */
	pthread_mutex_t		fault_lock;	/* non-CONCURRENT pagers */
	unsigned int		pager_flags;	/* LIBUFFD_PAGER_* */
	int			gone;		/* atomic: UNMAP covered it */
	/*
	 * atomic: where a REMAP that was read but not yet applied moved the
	 * whole region (0: none).  Applying it needs the table's write
	 * lock, so it waits for the handler's queue; events read meanwhile
	 * (the UNMAP of the old range that follows every move, a REMOVE at
	 * the new place) are matched against this, not the old base.
	 */
	uint64_t		moving_to;
	int			moves_pending;	/* atomic: REMAPs of it read */
	/*
	 * Per page, the number of the last REMOVE or UNMAP that hit it
	 * (zap_gen counts them, atomic; both written at ingest), with
	 * LUFFD_ZAP_TOLD once the pager was told of it: a copy must not
	 * land on a page discarded after its pager decided on it, nor on
	 * one whose discard the pager has not heard of yet (fill_gate).
	 */
	uint64_t		*zap_at;
	uint64_t		zap_gen;
	int			partly_unmapped; /* atomic */
	bool			no_fork;	/* MADV_DONTFORK: no child copy */

	/*
	 * One bit per page the library filled (or found present), cleared
	 * by REMOVE/UNMAP.  Lets multi-page fills skip known-present pages
	 * without a failing ioctl each; the kernel's EEXIST stays the
	 * authority.
	 */
	uint64_t		*present;
	/* pages a partial munmap took away (UNMAP events) */
	uint64_t		*unmapped;
	/*
	 * Pages whose pager failed, until a REMOVE or UNMAP (or a fill)
	 * takes them away: a fault on one is answered without calling the
	 * pager again.  any_failed (atomic) spares fills the clearing
	 * while no page ever failed.
	 */
	uint64_t		*failed;
	int			any_failed;

	const struct uffd_pager_ops *ops;
	char			*args_str;	/* pager args, for fork copies */
	void			*state;
	char			pager_name[32];

	struct luffd_counters	ctr;
};

/* ---- the resolver: one per dispatched fault ---- */
struct luffd_handler;
struct uffd_resolver {
	struct uffd_region	*region;
	uint64_t		zap_seen;	/* zap_gen when it was decided */
	bool			zap_valid;	/* zap_seen set (a fault's) */
	struct luffd_handler	*h;
	uint64_t		fault_off;	/* faulting page offset */
	uint64_t		t_read_ns;	/* when its message was read */
	bool			covered;	/* faulting page filled/present */
	bool			fault_wp;	/* a write-protect fault */
	unsigned int		fill_flags;	/* LIBUFFD_FILL_* */
	bool			timed;		/* histogram entry recorded */
};

/*
 * Messages read but not yet dispatched.  A handler owns one.  Bounded by
 * the number of threads that can be blocked at once on this uffd, since
 * each blocked thread has one message outstanding.
 */
#define LUFFD_INBOX_CAP	4096
/* Messages per read(): faults come before events in what read returns. */
#define LUFFD_READ_BATCH	64
/*
 * A message read, with what reading it established: the regions (and
 * their parts) a REMOVE or UNMAP hit where they were when it was read,
 * delivered to their pagers later from here, never looked up again (a
 * move read after it may have been applied by then), and the event
 * order: an event's number, or for a fault the number of the last event
 * read before it, which must reach its pager first.
 */
#define LUFFD_EV_HITS	2
#define LUFFD_ZAP_TOLD	(1ULL << 63)
#define LUFFD_EV_RING	8192
struct luffd_msg {
	struct uffd_msg	msg;
	uint64_t	t_read_ns;
	uint64_t	ev_seq;
	unsigned int	nhits;		/* > LUFFD_EV_HITS: look them up */
	struct uffd_region *hit[LUFFD_EV_HITS];
	uint64_t	hit_off[LUFFD_EV_HITS], hit_len[LUFFD_EV_HITS];
	uint64_t	hit_gen[LUFFD_EV_HITS];	/* its zap_at number */
};
struct luffd_handler {
	struct uffd_ctx	*ctx;
	unsigned int	head, tail;	/* tail - head messages queued */
	struct luffd_msg q[LUFFD_INBOX_CAP];
};

/* ---- handler threads ---- */
struct luffd_worker {
	struct uffd_ctx		*leader;	/* the context that owns it */
	unsigned int		idx;
	int			kick_fd;	/* eventfd: stop, or list changed */
	pthread_t		thread;
	clockid_t		clk;		/* valid while live */
	bool			live;		/* under leader->cpu_lock */
};

#define LUFFD_MAX_SERVED	64

/* ---- context ---- */
struct uffd_ctx {
	int			fd;
	int			open_method;
	uint64_t		features;
	uint64_t		ioctls;
	int			handler_cpu;
	int			delivery;	/* LIBUFFD_DELIVER_* */
	unsigned int		nworkers;
	unsigned int		spin_us;
	struct uffd_ctx		*served_by;	/* NULL: serves itself */

	pthread_rwlock_t	lock;		/* region table */
	struct uffd_region	**regions;	/* sorted by base */
	size_t			nregions, cap;
	struct uffd_region	*all;		/* every region, for destroy */

	bool			running;
	bool			pagers_on;	/* under lock: start hooks run */
	int			stopping;	/* atomic: workers leave */
	int			reading;	/* atomic: reads not yet ingested */
	pthread_mutex_t		read_lock;	/* read() and ingest, together */
	/*
	 * Taken for reading by a fault's dispatch (and by every copy a
	 * helper makes), for writing around read() and ingest.  The kernel
	 * lets a MADV_DONTNEED zap as soon as its REMOVE is read, so a copy
	 * the pager decided before must be done by then: while anyone
	 * serves a fault, events are read only by that server itself (its
	 * fill's EAGAIN lets the gate go to read them), and its copies then
	 * skip the pages those events discarded (zap_at).  Writers first.
	 */
	pthread_rwlock_t	fill_gate;
	/*
	 * REMOVE and UNMAP events are numbered as read (ev_read, under
	 * read_lock); ev_done is the number up to which all have reached
	 * their pagers (ev_ring marks those done out of order).  A fault
	 * waits for the events read before it: with several handlers, the
	 * one that read a MADV_DONTNEED may not have told the pager yet
	 * when another serves the fault that followed it.
	 */
	uint64_t		ev_read, ev_done;	/* atomic */
	pthread_mutex_t		ev_lock;
	uint8_t			ev_ring[LUFFD_EV_RING];
	int			remaps_pending;	/* atomic: moving_to set */
	int			remap_waiting;	/* atomic: see luffd_remap_gate */
	cpu_set_t		start_cpus;	/* for LIBUFFD_CPU_SAME */
	cpu_set_t		create_cpus;	/* helpers' default: all CPUs */
	int			helper_cpu;

	/* a leader's (self-serving context's) workers and served list */
	struct luffd_worker	workers[LIBUFFD_MAX_HANDLERS];
	pthread_rwlock_t	served_lock;
	struct uffd_ctx		*served[LUFFD_MAX_SERVED];
	unsigned int		nserved;
	unsigned int		served_gen;	/* atomic */
	pthread_mutex_t		cpu_lock;
	uint64_t		handler_cpu_done;	/* from finished runs */

	/* one inbox per worker of whoever serves us; [0] also for drains */
	struct luffd_handler	*inbox[LIBUFFD_MAX_HANDLERS];
	void			*zero_src;	/* LUFFD_ZERO_SRC_LEN of zeros */

	/* SIGBUS delivery */
	int			sig_active;	/* atomic: serve in handler */
	int			sig_dead;	/* atomic: being destroyed */
	int			sig_inflight;	/* atomic: handlers inside */
	bool			sig_sigreturn;	/* LIBUFFD_CTX_SIGRETURN */

	pthread_mutex_t		child_lock;	/* children[] */
	struct uffd_ctx		**children;	/* contexts of forked children */
	size_t			nchildren;
	bool			is_child;

	struct luffd_counters	retired;	/* destroyed regions */
	struct luffd_counters	ctr;		/* stray faults etc. */
};

/* context.c */
struct uffd_region *luffd_lookup(struct uffd_ctx *ctx, uint64_t addr);
void luffd_dispatch(struct luffd_handler *h, const struct luffd_msg *m);
void luffd_apply_remap(struct luffd_handler *h, const struct luffd_msg *lm);

/* handler.c */
int luffd_serve_pending(struct luffd_handler *h, bool drain);
int luffd_inboxes_alloc(struct uffd_ctx *ctx, unsigned int n);
void luffd_inboxes_free(struct uffd_ctx *ctx);

/* sigbus.c */
int luffd_sigbus_attach(struct uffd_ctx *ctx);
void luffd_sigbus_detach(struct uffd_ctx *ctx);
extern __thread int luffd_in_signal;
/*
 * Nonzero in the library's own threads (handlers, pager helpers), and
 * while an interposer (the preload) calls into the library: memory those
 * allocate must never be paged by the library itself.
 */
extern __thread int luffd_internal;
/*
 * For an interposer of sigaction(): while the library's SIGBUS handler is
 * installed, make @act (may be NULL) the handler it chains to, and return
 * the one it chained to before in @old (may be NULL).  Returns 1 when
 * done, 0 when the library's handler is not installed.
 */
int luffd_sigbus_swap_chain(const struct sigaction *act,
			    struct sigaction *old);
int luffd_read_msgs(struct luffd_handler *h);
void luffd_ingest_event(struct uffd_ctx *ctx, struct luffd_msg *lm);
void luffd_events_wait(struct uffd_ctx *ctx, uint64_t seq);
void luffd_inboxes_forget(struct uffd_ctx *ctx, struct uffd_region *r);
void luffd_remaps_settle(struct uffd_ctx *ctx);

/*
 * Where region @r is now: r->base is its key in the table, which moves
 * only when the handler applies a REMAP; an mremap that returned was
 * read, and moving_to has it already.  Every fill, wake and poison goes
 * here (the apply sets base before it clears moving_to).
 */
static inline uint64_t luffd_base(const struct uffd_region *r)
{
	uint64_t to = __atomic_load_n(&r->moving_to, __ATOMIC_ACQUIRE);

	return to ? to : __atomic_load_n(&r->base, __ATOMIC_ACQUIRE);
}
void luffd_reads_settle(struct uffd_ctx *ctx);
void luffd_remap_gate(struct uffd_ctx *ctx);
void luffd_gate_enter(struct uffd_ctx *ctx);
void luffd_gate_leave(struct uffd_ctx *ctx);
int luffd_gate_pause(struct uffd_ctx *ctx);
void luffd_gate_resume(struct uffd_ctx *ctx, int depth);
extern __thread int luffd_gate_depth;
int luffd_table_insert(struct uffd_ctx *ctx, struct uffd_region *r);
void luffd_table_remove(struct uffd_ctx *ctx, struct uffd_region *r);

/* region.c */
void luffd_present_set(struct uffd_region *r, uint64_t off, uint64_t len);
void luffd_present_clear(struct uffd_region *r, uint64_t off, uint64_t len);
bool luffd_present_test(const struct uffd_region *r, uint64_t off);
void luffd_unmapped_set(struct uffd_region *r, uint64_t off, uint64_t len);
bool luffd_all_unmapped(const struct uffd_region *r);
void luffd_failed_set(struct uffd_region *r, uint64_t off, uint64_t len);
void luffd_failed_clear(struct uffd_region *r, uint64_t off, uint64_t len);
bool luffd_failed_test(const struct uffd_region *r, uint64_t off);

/* resolver.c */
/*
 * Serve one fault through its region's pager.  Returns 0 when it was
 * served (or its process is gone), -EFAULT when the page could not be
 * filled: a handler thread has then poisoned it or signalled the
 * faulting thread; a SIGBUS handler must deliver the SIGBUS itself.
 */
int luffd_dispatch_fault(struct luffd_handler *h, struct uffd_region *r,
			 const struct luffd_msg *m);
void luffd_dispatch_event(struct uffd_region *r, const struct uffd_event *ev);
/* 16 MiB: prealloc's largest batch (4096 pages) in one COPY */
#define LUFFD_ZERO_SRC_LEN	(16ull << 20)
int luffd_zero_source_init(struct uffd_ctx *ctx);
/* Read pending events so a fill blocked on one can go on; 0 or -errno. */
int luffd_absorb_events(struct uffd_resolver *res, unsigned int *tries);
/* The fault's histogram entry, once. */
void luffd_record_service(struct uffd_resolver *res);
int luffd_wake_range(struct uffd_resolver *res, uint64_t off, uint64_t len);

/*
 * failure.c: a fault no pager could serve; @tid is the faulting thread,
 * @addr the address it touched (exact where EXACT_ADDRESS is on).
 */
void luffd_fail_fault(struct uffd_resolver *res, uint32_t tid, uint64_t addr);
void luffd_zero_source_fini(struct uffd_ctx *ctx);

/* pager.c */
extern const struct uffd_pager_ops luffd_pager_zero;
extern const struct uffd_pager_ops luffd_pager_prealloc;
extern const struct uffd_pager_ops luffd_pager_prezero;
extern const struct uffd_pager_ops luffd_pager_hugezero;
extern const struct uffd_pager_ops luffd_pager_file;
extern const struct uffd_pager_ops luffd_pager_evict;
#ifdef HAVE_MEMCACHED
extern const struct uffd_pager_ops luffd_pager_memcached;
#endif

/* store.c */
extern const struct uffd_store_ops luffd_store_memfd;
extern const struct uffd_store_ops luffd_store_file;
#ifdef HAVE_MEMCACHED
extern const struct uffd_store_ops luffd_store_memcached;
#endif

#endif /* LIBUFFD_INTERNAL_H */
