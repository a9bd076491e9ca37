/* SPDX-License-Identifier: MIT */
/*
 * libuffd - page memory from user space with Linux userfaultfd.
 *
 * A *context* owns one userfaultfd and the handler thread that serves it.
 * A *region* is a page-aligned range registered with a context and bound to
 * one *pager*: a strategy (an ops table plus per-region state) that resolves
 * every fault in the region through a *resolver*.
 *
 * Conventions, for every function below unless its comment says otherwise:
 *  - 0 (or a count) on success, a negative errno on failure; nothing is
 *    changed when a call fails with -EINVAL.
 *  - The library never prints, aborts or exits.  A one-line reason for the
 *    most recent failure in the calling thread is kept for uffd_last_error().
 *  - Handles are opaque; *_destroy(NULL) is a no-op.
 *  - Option and statistics structs only grow at the end; callers say how
 *    big their copy is (the .size member, or a size argument).
 */
#ifndef LIBUFFD_H
#define LIBUFFD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIBUFFD_VERSION_MAJOR	0
#define LIBUFFD_VERSION_MINOR	3

/* ------------------------------------------------------------------ */
/* Probing the kernel                                                  */
/* ------------------------------------------------------------------ */

/*
 * Feature bits, with the same values as the kernel's UFFD_FEATURE_* bits
 * (including those newer than the installed headers).
 */
#define LIBUFFD_FEATURE_PAGEFAULT_FLAG_WP	(1ULL << 0)
#define LIBUFFD_FEATURE_EVENT_FORK		(1ULL << 1)
#define LIBUFFD_FEATURE_EVENT_REMAP		(1ULL << 2)
#define LIBUFFD_FEATURE_EVENT_REMOVE		(1ULL << 3)
#define LIBUFFD_FEATURE_MISSING_HUGETLBFS	(1ULL << 4)
#define LIBUFFD_FEATURE_MISSING_SHMEM		(1ULL << 5)
#define LIBUFFD_FEATURE_EVENT_UNMAP		(1ULL << 6)
#define LIBUFFD_FEATURE_SIGBUS			(1ULL << 7)
#define LIBUFFD_FEATURE_THREAD_ID		(1ULL << 8)
#define LIBUFFD_FEATURE_MINOR_HUGETLBFS		(1ULL << 9)
#define LIBUFFD_FEATURE_MINOR_SHMEM		(1ULL << 10)
#define LIBUFFD_FEATURE_EXACT_ADDRESS		(1ULL << 11)
#define LIBUFFD_FEATURE_WP_HUGETLBFS_SHMEM	(1ULL << 12)
#define LIBUFFD_FEATURE_WP_UNPOPULATED		(1ULL << 13)
#define LIBUFFD_FEATURE_POISON			(1ULL << 14)
#define LIBUFFD_FEATURE_WP_ASYNC		(1ULL << 15)
#define LIBUFFD_FEATURE_MOVE			(1ULL << 16)
#define LIBUFFD_FEATURE_NBITS			64

/* How a userfaultfd was obtained. */
#define LIBUFFD_OPEN_DEV	1	/* /dev/userfaultfd, USERFAULTFD_IOC_NEW */
#define LIBUFFD_OPEN_SYSCALL	2	/* userfaultfd(2) */

/*
 * ioctl bits of uffd_probe.ioctls and .reg_ioctls (1 << _UFFDIO_*, with
 * the kernel's values, including those newer than the installed headers).
 */
#define LIBUFFD_IOCTL_REGISTER		(1ULL << 0)
#define LIBUFFD_IOCTL_UNREGISTER	(1ULL << 1)
#define LIBUFFD_IOCTL_WAKE		(1ULL << 2)
#define LIBUFFD_IOCTL_COPY		(1ULL << 3)
#define LIBUFFD_IOCTL_ZEROPAGE		(1ULL << 4)
#define LIBUFFD_IOCTL_MOVE		(1ULL << 5)	/* 6.8 */
#define LIBUFFD_IOCTL_WRITEPROTECT	(1ULL << 6)	/* 5.7 */
#define LIBUFFD_IOCTL_CONTINUE		(1ULL << 7)	/* 5.13 */
#define LIBUFFD_IOCTL_POISON		(1ULL << 8)	/* 6.6 */
#define LIBUFFD_IOCTL_API		(1ULL << 63)

/* uffd_probe.thp_enabled: /sys/kernel/mm/transparent_hugepage/enabled */
#define LIBUFFD_THP_NEVER	0
#define LIBUFFD_THP_MADVISE	1
#define LIBUFFD_THP_ALWAYS	2

/* uffd_probe.reg_ioctls[]: indexed by LIBUFFD_MEM_ANON, _MEMFD, _HUGETLB */
#define LIBUFFD_PROBE_MEM_TYPES	3

/*
 * What the kernel and the machine offer: the facts that change what libuffd
 * does and what its measurements mean.  Fields other than .size are
 * written by uffd_probe(); it gathers only the fields that lie wholly
 * within the caller's .size, so a caller built against an older header
 * gets its prefix, at the older cost.  Unless said otherwise, -1 means
 * "could not be told".
 */
struct uffd_probe {
	size_t		size;		/* sizeof(struct uffd_probe), set by caller */
	uint64_t	features;	/* LIBUFFD_FEATURE_* the kernel offers */
	uint64_t	ioctls;		/* LIBUFFD_IOCTL_* from UFFDIO_API */
	int		open_method;	/* LIBUFFD_OPEN_*; 0 when none works */

	/* ---- since LIBUFFD_0.2 ---- */
	/*
	 * LIBUFFD_IOCTL_* that UFFDIO_REGISTER offers on a throwaway range of
	 * each memory type (private anonymous; a memfd mapped shared; a
	 * hugetlb memfd of the default huge page size, mapped MAP_NORESERVE
	 * so that no huge page need be free), registered in MISSING mode plus
	 * WP and MINOR where the kernel offers them for that type.  So
	 * WRITEPROTECT and CONTINUE mean "with that mode".  hugetlb has no
	 * ZEROPAGE (libuffd copies zeros there); MOVE is offered on shared
	 * memory too but works on private anonymous memory only.
	 * 0 when the type could not be registered: reg_errno[] then holds the
	 * errno of the step that failed (memfd_create, mmap or the ioctl), or
	 * 0 when no userfaultfd could be had at all.
	 */
	uint64_t	reg_ioctls[LIBUFFD_PROBE_MEM_TYPES];
	int		reg_errno[LIBUFFD_PROBE_MEM_TYPES];
	/*
	 * 0 when a userfaultfd can be opened and handshaken, else the errno
	 * that uffd_probe() returns negated.
	 */
	int		open_errno;
	/*
	 * Each way of opening, tried on its own: 0 when it works, else its
	 * errno (/dev/userfaultfd: of open() or of USERFAULTFD_IOC_NEW).  The
	 * library uses /dev/userfaultfd when both work.
	 */
	int		dev_errno;
	int		syscall_errno;
	/*
	 * 1 when a native read fault on private anonymous memory maps the
	 * shared zero page (learnt by reading fresh MADV_NOHUGEPAGE pages and
	 * finding no Rss for them in /proc/self/smaps), 0 when it allocates a
	 * page (a kernel booted with pvm_no_zero_page=1, for one), -1 when it
	 * could not be told.  UFFDIO_ZEROPAGE maps the zero page either way.
	 */
	int		native_zero_page;
	int		thp_enabled;	/* LIBUFFD_THP_*, -1: no THP */
	int		thp_zero_page;	/* THP use_zero_page: 1/0, -1 */
	int		unprivileged_userfaultfd; /* the sysctl, -1: absent */
	/* From /proc/meminfo, for the default huge page size: */
	uint64_t	huge_page_size;	/* bytes, 0: no hugetlb */
	int64_t		huge_pages_total;	/* HugePages_Total, -1 */
	int64_t		huge_pages_free;	/* HugePages_Free, -1 */
	int64_t		huge_pages_rsvd;	/* HugePages_Rsvd, -1 */
	char		kernel_release[65];	/* uname -r, "" if unknown */
};

/*
 * Ask the running kernel what it offers.  Uses throwaway userfaultfds,
 * because UFFDIO_API succeeds only once per descriptor; maps and reads a
 * few pages, registers one range of each memory type, and reads /proc and
 * /sys (smaps among them): call it once, not per context.
 * Returns 0, or:
 *  -EINVAL  @out NULL or out->size 0 (nothing written)
 *  the negated errno of opening a userfaultfd (-EPERM when neither
 *  /dev/userfaultfd nor the syscall is allowed, -ENOSYS...) or of
 *  UFFDIO_API.  Even then *out is filled: features, ioctls, open_method
 *  and reg_ioctls are 0, open_errno holds the errno, dev_errno and
 *  syscall_errno say why each way failed, and every system fact
 *  (native_zero_page to kernel_release) is gathered as usual.
 * Any thread.
 */
int uffd_probe(struct uffd_probe *out);

/*
 * Format @p snprintf-style (returns the length the whole output needs,
 * writes at most @len bytes including the NUL; @buf may be NULL when @len
 * is 0).  LIBUFFD_FMT_TEXT: one line, no newline, of the facts that change
 * what measurements mean, e.g.
 *   kernel 6.18.44; native read: zero page; THP madvise (huge zero page
 *   on); 0 huge pages; uffd: all features (dev)
 * ("uffd: missing POISON(6.6) MOVE(6.8) (syscall)", "uffd: unusable
 * (Operation not permitted)").  LIBUFFD_FMT_JSON: one object, one line,
 * no newline: a key per field (reg_ioctls as reg_ioctls_anon, _memfd,
 * _hugetlb; ioctl masks as space-separated names, e.g. "COPY ZEROPAGE";
 * thp_enabled as "madvise"...; 1/0 facts as true/false), plus
 * "uffd_usable" and "features_missing" (names), with null for whatever
 * is unknown.  Fields beyond p->size are left out of the text and null
 * in JSON.
 * Returns -EINVAL for a NULL @p, p->size 0, a bad @fmt, or a NULL @buf
 * with @len > 0.  Any thread.
 */
int uffd_probe_format(const struct uffd_probe *p, int fmt, char *buf,
		      size_t len);

/*
 * Name of feature bit @bit (0..63), e.g. "MOVE", or NULL when the bit is
 * unknown to this library.  Never fails otherwise.
 */
const char *uffd_feature_name(unsigned int bit);

/*
 * The first kernel release that offered feature bit @bit, e.g. "6.8" for
 * MOVE, or NULL when the bit is unknown to this library.
 */
const char *uffd_feature_since(unsigned int bit);

/* Reason for the most recent failure of a libuffd call in this thread. */
const char *uffd_last_error(void);

/* ------------------------------------------------------------------ */
/* Contexts                                                            */
/* ------------------------------------------------------------------ */

struct uffd_ctx;
struct uffd_region;
struct uffd_resolver;

#define LIBUFFD_CTX_NO_DEV	(1u << 0)	/* skip /dev/userfaultfd */
#define LIBUFFD_CTX_PIN_HANDLER	(1u << 1)	/* .handler_cpu is set */
#define LIBUFFD_CTX_PIN_HELPERS	(1u << 2)	/* .helper_cpu is set */
/*
 * SIGBUS delivery only.  Once a fault is served, the library's handler
 * normally resumes the faulting thread itself on x86-64: it restores the
 * saved FPU state (XRSTOR), the registers and the flags from the signal
 * frame and returns with IRETQ, as rt_sigreturn would, minus a system
 * call.  That needs the handler to have been entered by the kernel (not
 * chained from another handler), no shadow stack and no SS_AUTODISARM
 * alternate stack; otherwise, and with this flag, it returns normally.
 * sigbus_direct in the statistics counts the faults resumed directly.
 */
#define LIBUFFD_CTX_SIGRETURN	(1u << 3)

struct uffd_ctx_opts {
	size_t		size;		/* sizeof(struct uffd_ctx_opts) */
	unsigned int	flags;		/* LIBUFFD_CTX_* */
	/*
	 * Features to require on top of the defaults; a missing one fails
	 * uffd_ctx_create() with -EOPNOTSUPP.  The defaults are the ones of
	 * EVENT_REMOVE, EVENT_UNMAP, EVENT_REMAP, MISSING_SHMEM,
	 * MISSING_HUGETLBFS, THREAD_ID, EXACT_ADDRESS, POISON and MOVE that
	 * the kernel has;
	 * the three events (4.11) are required unless in .features_off (a
	 * region could not follow MADV_DONTNEED, munmap or mremap without
	 * them).  What each missing one changes: MISSING_SHMEM/HUGETLBFS,
	 * those memory types are refused (-EOPNOTSUPP); THREAD_ID (4.14),
	 * faults name no thread, and after a pager failure without POISON
	 * the thread waits instead of taking SIGBUS; POISON (6.6), a pager
	 * failure is signalled to the thread by the library instead (see
	 * the fault hook); MOVE (6.8), uffd_resolve_move() fails with
	 * -EOPNOTSUPP and prezero copies zeros instead.
	 * LIBUFFD_FEATURE_EVENT_FORK is opt-in: with it, each fork() of the
	 * process waits until the handler has read the event, and the child's
	 * regions are served by a child context the library creates (see
	 * uffd_ctx_child()); with LIBUFFD_DELIVER_SIGBUS it is -EINVAL (the
	 * child would have no userfaultfd to serve its SIGBUS faults with).
	 * Note that while a context is stopped, munmap,
	 * mremap, MADV_DONTNEED and fork on its regions wait for the next
	 * start: the kernel waits for the event to be read.
	 */
	uint64_t	features;
	/*
	 * With LIBUFFD_CTX_PIN_HANDLER in .flags (as liburing's sq_thread_cpu
	 * needs IORING_SETUP_SQ_AFF, so that a zeroed struct means "not
	 * pinned"): where the handler thread(s) run, a CPU number or
	 * LIBUFFD_CPU_SAME (the CPUs the thread calling uffd_ctx_start() may
	 * run on, so that an application thread pinned to one CPU shares it
	 * with its handler: a same-CPU wake-up is far cheaper than a
	 * cross-CPU one).  Without the flag the scheduler decides.
	 */
	int		handler_cpu;
	/*
	 * Default features not to enable (e.g. LIBUFFD_FEATURE_MOVE, to try
	 * a pager's fallback).  Overlap with .features is -EINVAL.
	 */
	uint64_t	features_off;
	/*
	 * LIBUFFD_DELIVER_THREAD (0): faulting threads block and handler
	 * threads serve them.  LIBUFFD_DELIVER_SIGBUS: UFFD_FEATURE_SIGBUS;
	 * a faulting thread serves its own fault from the library's SIGBUS
	 * handler (no message, no wake-up).  The handler thread then only
	 * reads events.  Needs pagers flagged LIBUFFD_PAGER_CONCURRENT
	 * (others: -ENOTSUP at region creation).  The library's SIGBUS
	 * handler chains to the one installed before it, or to the default
	 * action, for any SIGBUS that is not a missing page in one of its
	 * regions.  Kernel accesses (read(2) into a region, O_DIRECT,
	 * MADV_POPULATE) fail with EFAULT in this mode instead of faulting.
	 */
	int		delivery;
	unsigned int	handlers;	/* handler threads; 0 means 1 */
	/*
	 * After serving, a handler spins on the userfaultfd for up to this
	 * many microseconds before it sleeps (0: never).  Pays off when the
	 * handler has a CPU of its own; the spin time is in the statistics.
	 */
	unsigned int	spin_us;
	/*
	 * Serve this context with @served_by's handler threads instead of
	 * threads of its own (start attaches it, stop detaches it).  Destroy
	 * it before the context serving it.
	 */
	struct uffd_ctx	*served_by;
	/*
	 * With LIBUFFD_CTX_PIN_HELPERS: where pager helper threads (prezero's
	 * scrubber, the file pager's prefetch) run, a CPU number or
	 * LIBUFFD_CPU_SAME.  Without it they may run on every CPU (within
	 * the process's cpuset), whatever the thread that started them was
	 * pinned to: an application that pins itself does not drag its
	 * helpers along.
	 */
	int		helper_cpu;
};

#define LIBUFFD_CPU_ANY		(-1)	/* with a PIN flag: not pinned */
#define LIBUFFD_CPU_SAME	(-2)
#define LIBUFFD_DELIVER_THREAD	0
#define LIBUFFD_DELIVER_SIGBUS	1
#define LIBUFFD_MAX_HANDLERS	16

/*
 * Create a context: opens and initialises a userfaultfd.  @opts may be NULL
 * for the defaults.  Returns 0 and *out, or -EINVAL, -ENOMEM, -EOPNOTSUPP,
 * or the errno of open/ioctl/eventfd.  Any thread.
 */
int uffd_ctx_create(struct uffd_ctx **out, const struct uffd_ctx_opts *opts);

/*
 * Start the handler thread, with every signal blocked (signals are for
 * the application's threads).  Returns 0, -EALREADY when running, or the
 * errno of pthread_create.  Calls of start/stop/destroy on one context must
 * not overlap.
 */
int uffd_ctx_start(struct uffd_ctx *ctx);

/*
 * Stop the handler thread.  Every fault already queued on the userfaultfd
 * is served before this returns (also when the thread was never started),
 * so no thread waiting on a fault is left blocked.  Faults raised after
 * stop wait until uffd_ctx_start() or uffd_ctx_destroy().
 * Returns 0, or -EALREADY when the handler was not running (the queue is
 * still drained).  Must not be called from a pager hook.
 */
int uffd_ctx_stop(struct uffd_ctx *ctx);

/*
 * Stop, destroy every remaining region (unregistering it and unmapping
 * what the library mapped), and close the userfaultfd.  Closing wakes any
 * fault raised after stop, which then proceeds as an ordinary fault.
 */
void uffd_ctx_destroy(struct uffd_ctx *ctx);

/*
 * Make a context from a userfaultfd that already had its UFFDIO_API
 * handshake, possibly in another process (a handover, or a FORK event):
 * the features are read back from /proc/self/fdinfo.  The context owns
 * @fd from then on, also on failure (it is closed).  @opts as for
 * uffd_ctx_create (its .features are ignored, and of .flags only the
 * PIN flags count: the handshake was done already).  Regions the
 * peer registered are adopted with LIBUFFD_MEM_REMOTE.
 * Returns 0, -EBADF (not a userfaultfd), -EINVAL, -ENOMEM.
 */
int uffd_ctx_adopt(struct uffd_ctx **out, int fd,
		   const struct uffd_ctx_opts *opts);

/*
 * Child contexts made for forked children (LIBUFFD_FEATURE_EVENT_FORK),
 * in fork order: uffd_ctx_nchildren() counts them, uffd_ctx_child()
 * returns the @i-th or NULL.  They start and stop with their parent and
 * are destroyed with it.  Any thread.
 */
size_t uffd_ctx_nchildren(const struct uffd_ctx *ctx);
struct uffd_ctx *uffd_ctx_child(const struct uffd_ctx *ctx, size_t i);

/* The userfaultfd, for callers that poll it themselves (never close it). */
int uffd_ctx_fd(const struct uffd_ctx *ctx);

/* Features enabled on this context's userfaultfd (LIBUFFD_FEATURE_*). */
uint64_t uffd_ctx_features(const struct uffd_ctx *ctx);

/* ------------------------------------------------------------------ */
/* Pagers                                                              */
/* ------------------------------------------------------------------ */

/* Fault flags. */
#define LIBUFFD_FAULT_WRITE	(1u << 0)
#define LIBUFFD_FAULT_WP	(1u << 1)
#define LIBUFFD_FAULT_MINOR	(1u << 2)

struct uffd_fault {
	uint64_t	addr;		/* page-aligned faulting address */
	uint64_t	offset;		/* addr - region base */
	unsigned int	flags;		/* LIBUFFD_FAULT_* */
	uint32_t	tid;		/* faulting thread, 0 if unknown */
};

/* Events a pager may want to know about. */
#define LIBUFFD_EVENT_REMOVE	1	/* MADV_DONTNEED/REMOVE: now missing */
#define LIBUFFD_EVENT_UNMAP	2	/* munmap: range is gone */
#define LIBUFFD_EVENT_REMAP	3	/* mremap moved the whole region */

struct uffd_event {
	int		type;		/* LIBUFFD_EVENT_* */
	uint64_t	offset;		/* start, relative to the region base */
	uint64_t	len;		/* clipped to the region */
	uint64_t	new_base;	/* REMAP: the region's new address */
};

/* A key=value list parsed from a pager spec ("name:k=v,k2=v2"). */
struct uffd_args;

#define LIBUFFD_PAGER_OPS_VERSION	3

/*
 * Pager flags (ops version 2).  CONCURRENT: the fault and event hooks
 * may run at the same time on several threads (several handler threads,
 * or SIGBUS delivery, where they also run in a signal handler: only
 * async-signal-safe calls, which the resolver's are).  Without it the
 * library runs one hook of a region at a time and refuses SIGBUS mode.
 */
#define LIBUFFD_PAGER_CONCURRENT	(1u << 0)
/*
 * Since 0.3: the fault hook handles write-protect faults (LIBUFFD_FAULT_WP:
 * answer with uffd_resolve_writeprotect(..., 0)) or minor faults
 * (LIBUFFD_FAULT_MINOR: answer with uffd_resolve_continue()).  A region
 * registered with LIBUFFD_REG_WP or LIBUFFD_REG_MINOR needs a pager that
 * says so.
 */
#define LIBUFFD_PAGER_WP		(1u << 1)
#define LIBUFFD_PAGER_MINOR		(1u << 2)
/*
 * Since 0.3: a region whose uffd_region_opts.modes is 0 is registered
 * MISSING|WP for this pager, which tracks dirty pages (evict).
 */
#define LIBUFFD_PAGER_NEEDS_WP		(1u << 3)

/*
 * A pager.  Hooks get the state pointer that init returned as their first
 * argument.  Optional hooks may be NULL.
 *
 * init   (required) called by uffd_region_create(); allocate everything the
 *        fault path will need here.  Return 0 and *state, or -errno (the
 *        region is then not created).  @args is never NULL.
 * fault  (required) resolve @f through @res.  Runs in a handler thread
 *        (or, in SIGBUS mode, in the faulting thread's signal handler);
 *        one at a time per region unless flags has
 *        LIBUFFD_PAGER_CONCURRENT.
 *        Must not allocate, and must not take a lock that a faulting thread
 *        could hold.  Return 0 when the faulting page was filled (or found
 *        present), -errno otherwise.  A hook that returns 0 without
 *        covering the faulting page is treated as a failure.  After a
 *        failure the thread touching the page gets SIGBUS, never a hang
 *        or wrong data, and the page stays failed (faults on it do not
 *        call the hook again) until MADV_DONTNEED or munmap takes it away
 *        or a fill covers it:
 *         - thread delivery with POISON (6.6): the page is poisoned with
 *           UFFDIO_POISON; the kernel raises SIGBUS on every access, and
 *           kernel-side accesses (read(2) into it) fail with EFAULT;
 *         - thread delivery without POISON (older kernels, or POISON in
 *           features_off): the library queues SIGBUS to the faulting
 *           thread (rt_tgsigqueueinfo: si_code SI_QUEUE, the address
 *           touched in si_addr and si_value, the page's before 5.18)
 *           and wakes it; a kernel-side access
 *           fails with EFAULT and the thread then takes the signal.  An
 *           ignored SIGBUS is reset to the default action first, as the
 *           kernel does; a thread that blocks SIGBUS, or whose id is
 *           unknown (no THREAD_ID), stays blocked in the fault until the
 *           region is unregistered, rather than fault again for ever;
 *         - SIGBUS delivery: the library's handler hands the SIGBUS it is
 *           handling (BUS_ADRERR, the faulting address) to the handler
 *           installed before it, or to the default action; with POISON
 *           the page is poisoned as well.
 *        A failed write-protect fault's page is present, so it is never
 *        poisoned: the writer gets the queued SIGBUS.
 *        pager_errors, poisoned, sigbus_queued and failed_refaults count
 *        these.
 * event  (optional) a REMOVE or UNMAP event that overlaps the region; the
 *        library has already updated its own bookkeeping.
 * start  (optional) the context's handler starts (e.g. start a helper).
 * stop   (optional) the context's handler stopped (stop helpers).
 * fini   (optional) the region is being destroyed.
 * flush  (optional, version >= 3) write every dirty page to where the
 *        pager keeps pages (uffd_region_flush()); from any thread but a
 *        handler.  Return 0 or -errno.
 */
struct uffd_pager_ops {
	unsigned int	version;	/* LIBUFFD_PAGER_OPS_VERSION */
	const char	*name;
	int	(*init)(struct uffd_region *region,
			const struct uffd_args *args, void **state);
	int	(*fault)(void *state, struct uffd_resolver *res,
			 const struct uffd_fault *f);
	void	(*event)(void *state, const struct uffd_event *ev);
	int	(*start)(void *state);
	void	(*stop)(void *state);
	void	(*fini)(void *state);
	/* version >= 2 */
	unsigned int	flags;		/* LIBUFFD_PAGER_* */
	/* version >= 3 */
	int	(*flush)(void *state);
};

/*
 * Look up a pager argument.  uffd_args_get returns the value string or
 * NULL when absent.  uffd_args_u64 parses a decimal number with an optional
 * K/M/G suffix (powers of 1024) into *val (untouched when absent) and
 * returns 0, or -EINVAL when malformed or outside [min, max].
 * uffd_args_check returns -EINVAL when a key outside the NULL-terminated
 * list @known is present.  Failures set uffd_last_error().
 */
const char *uffd_args_get(const struct uffd_args *args, const char *key);
int uffd_args_u64(const struct uffd_args *args, const char *key,
		  uint64_t *val, uint64_t min, uint64_t max);
int uffd_args_check(const struct uffd_args *args, const char *const *known);

/* Set the calling thread's uffd_last_error() text (printf style). */
void uffd_set_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * The built-in pager @name ("zero", ...), or NULL.  uffd_pager_list()
 * returns the NULL-terminated list of built-in pagers.
 */
const struct uffd_pager_ops *uffd_pager_find(const char *name);
const struct uffd_pager_ops *const *uffd_pager_list(void);

/*
 * Check a spec string such as "zero" or "prealloc:batch=32" without
 * creating anything: parses it and runs the pager's init on a scratch
 * region of @len bytes (0: 2 MiB).  Returns 0 or -EINVAL (see
 * uffd_last_error() for why), -ENOMEM.
 */
int uffd_pager_spec_check(const char *spec, size_t len);

/* ------------------------------------------------------------------ */
/* The resolver: fills for pagers                                      */
/* ------------------------------------------------------------------ */

/*
 * All ranges are (offset, length) relative to the region base, page
 * aligned, and are clipped to the region.  Each call implements the whole
 * fill protocol: EAGAIN with progress resumes, EAGAIN for a pending event
 * reads the events and retries, EEXIST counts the page as already present
 * and moves on.  Multi-page fills are done without waking, then the whole
 * range is woken once.  Pages the library knows are present are skipped.
 *
 * Each returns the number of pages it newly filled (>= 0), or -errno:
 * -EINVAL (bad range), -ESRCH (the process is gone), -ENOENT (range not
 * registered, e.g. unmapped), -EOPNOTSUPP (MOVE without the feature).
 * Only from a pager's fault hook, with the resolver it was given.
 */

/* UFFDIO_COPY from @src.  @src must not be in a registered range. */
long uffd_resolve_copy(struct uffd_resolver *res, uint64_t off,
		       const void *src, uint64_t len);
/* Map the shared zero page (UFFDIO_ZEROPAGE); on hugetlb, copies zeros. */
long uffd_resolve_zeropage(struct uffd_resolver *res, uint64_t off,
			   uint64_t len);
/* Fill with fresh zeroed pages: UFFDIO_COPY from a zero source. */
long uffd_resolve_zerofill(struct uffd_resolver *res, uint64_t off,
			   uint64_t len);
/*
 * UFFDIO_MOVE the pages at @src (private anonymous, populated, not
 * registered) into the region; @src pages are left unmapped.
 */
long uffd_resolve_move(struct uffd_resolver *res, uint64_t off,
		       void *src, uint64_t len);

/*
 * Since 0.3.  Fill flags for this resolver's later fills (0 by default):
 * LIBUFFD_FILL_WP maps what uffd_resolve_copy(), _zerofill() and
 * _zeropage() fill write-protected, so the first write to it is a
 * LIBUFFD_FAULT_WP fault (dirty tracking), atomically with the fill.
 * _zeropage() then copies zeros instead of mapping the zero page:
 * UFFDIO_ZEROPAGE has no WP mode, and a zero page protected after the
 * fact lets a write in another thread through untracked.  Needs a region
 * registered with LIBUFFD_REG_WP; returns 0 or -EINVAL.
 */
#define LIBUFFD_FILL_WP		(1u << 0)
int uffd_resolver_set_fill(struct uffd_resolver *res, unsigned int flags);

/*
 * Since 0.3.  Write-protect (@protect nonzero) or release [off, off+len)
 * of a LIBUFFD_REG_WP region.  Releasing wakes the threads waiting on a
 * write-protect fault there, and answers the fault being served when it
 * covers it.  Pages not present are left alone.  Returns the number of
 * pages in the range (>= 0), or -EINVAL, -ENOENT, -ESRCH.
 */
long uffd_resolve_writeprotect(struct uffd_resolver *res, uint64_t off,
			       uint64_t len, int protect);

/*
 * Since 0.3.  Map the pages of [off, off+len) that are in the page cache
 * of a LIBUFFD_REG_MINOR region (memfd or hugetlb) with UFFDIO_CONTINUE:
 * the answer to a LIBUFFD_FAULT_MINOR fault.  Pages already mapped are
 * skipped.  Returns pages newly mapped, or -errno as the fills.
 */
long uffd_resolve_continue(struct uffd_resolver *res, uint64_t off,
			   uint64_t len);
/*
 * Wake threads waiting in the range without filling anything.  When the
 * range holds the faulting page, that answers the fault (since 0.3): its
 * thread retries the access and faults again if the page is still
 * missing or protected.  For a pager that found the page filled by
 * someone else, or moved away, since the fault was raised.
 */
int uffd_resolve_wake(struct uffd_resolver *res, uint64_t off, uint64_t len);

/* The region a resolver works on. */
struct uffd_region *uffd_resolver_region(struct uffd_resolver *res);

/*
 * A resolver for a pager's own helper thread (prefetch, read-ahead): the
 * same fill calls, outside any fault.  Such fills race the handler's
 * fault fills safely (the loser sees EEXIST, counted in eexist), wake any
 * thread waiting in the range, and add no histogram entry.  When a fill
 * must wait for an event the handler reads, it sleeps briefly and
 * retries.  One thread at a time per helper resolver; destroy it (in the
 * pager's stop or fini hook) before the region goes.
 * Returns 0 and *out, -EINVAL, or -ENOMEM.
 */
int uffd_resolver_create(struct uffd_region *r, struct uffd_resolver **out);
void uffd_resolver_destroy(struct uffd_resolver *res);

/* ------------------------------------------------------------------ */
/* Regions                                                             */
/* ------------------------------------------------------------------ */

enum uffd_mem_type {
	LIBUFFD_MEM_ANON = 0,	/* library mmaps anonymous private memory */
	LIBUFFD_MEM_MEMFD,	/* library mmaps a memfd, MAP_SHARED */
	LIBUFFD_MEM_HUGETLB,	/* library mmaps hugetlb (needs reserved pages) */
	LIBUFFD_MEM_ADOPT,	/* caller's existing mapping at .addr */
	/*
	 * A range at .addr that the userfaultfd's own process registered
	 * (after uffd_ctx_adopt, or a fork): not mapped here, not registered
	 * again, never touched by the library except through fills.
	 */
	LIBUFFD_MEM_REMOTE,
};

struct uffd_region_opts {
	size_t		size;		/* sizeof(struct uffd_region_opts) */
	enum uffd_mem_type type;
	void		*addr;		/* LIBUFFD_MEM_ADOPT only */
	size_t		len;		/* bytes, a multiple of the page size */
	/* Either a spec string ... */
	const char	*pager;		/* "zero", "name:k=v,..."; NULL: "zero" */
	/* ... or a caller's ops table with its argument string. */
	const struct uffd_pager_ops *ops;
	const char	*args;		/* "k=v,..." for ops->init, may be NULL */
	size_t		page_size;	/* REMOTE only: 0 for the base page */
	/*
	 * Since 0.3: what faults to register for, LIBUFFD_REG_*; 0 means
	 * LIBUFFD_REG_MISSING.  WP needs a pager flagged LIBUFFD_PAGER_WP
	 * (and, on memfd and hugetlb, WP_HUGETLBFS_SHMEM, 5.19); MINOR a
	 * pager flagged LIBUFFD_PAGER_MINOR and a memfd or hugetlb region
	 * (MINOR_SHMEM 5.14, MINOR_HUGETLBFS 5.13).  Neither works with
	 * SIGBUS delivery (-ENOTSUP).  A missing kernel feature is
	 * -EOPNOTSUPP.
	 */
	unsigned int	modes;
};

#define LIBUFFD_REG_MISSING	(1u << 0)
#define LIBUFFD_REG_WP		(1u << 1)
#define LIBUFFD_REG_MINOR	(1u << 2)

/*
 * Map (or adopt) and register a region, and bind its pager.  The page size
 * is the hugetlb size for LIBUFFD_MEM_HUGETLB, else the base page size.
 * Returns 0 and *out, or:
 *  -EINVAL  zero or unaligned length/address, bad opts, bad pager spec
 *  -EEXIST  overlaps a live region of this context
 *  -ENOMEM  no memory (hugetlb: no huge pages free)
 *  -EOPNOTSUPP  the kernel lacks the feature the memory type needs
 *  or the errno of mmap/memfd_create/UFFDIO_REGISTER.
 * Nothing is left mapped or registered on failure.  Any thread; safe while
 * the handler runs.
 */
int uffd_region_create(struct uffd_ctx *ctx,
		       const struct uffd_region_opts *opts,
		       struct uffd_region **out);

/*
 * Unregister the region from the userfaultfd (waking any thread waiting in
 * it; later accesses are ordinary faults) but keep the mapping.
 * Returns 0, -EALREADY if already unregistered, -ENODEV if the range was
 * unmapped (UFFD_EVENT_UNMAP), or the errno of UFFDIO_UNREGISTER.
 */
int uffd_region_unregister(struct uffd_region *r);

/*
 * Unregister (if still registered), call the pager's fini, unmap what the
 * library mapped, and free the region.  Any thread, not from a pager hook.
 */
void uffd_region_destroy(struct uffd_region *r);

void *uffd_region_addr(const struct uffd_region *r);
size_t uffd_region_len(const struct uffd_region *r);
size_t uffd_region_page_size(const struct uffd_region *r);
enum uffd_mem_type uffd_region_type(const struct uffd_region *r);
/* The memfd behind a LIBUFFD_MEM_MEMFD/HUGETLB region, or -1. */
int uffd_region_memfd(const struct uffd_region *r);
/*
 * 1 when the library filled the page at @off (or found it present) and no
 * REMOVE/UNMAP event has taken it away since, 0 when not, -EINVAL for a
 * bad offset.  A hint for pagers (what to read ahead, what to skip), not
 * an oracle: the kernel's EEXIST stays the authority.  Any thread.
 */
int uffd_region_page_present(const struct uffd_region *r, uint64_t off);

/*
 * Start a pager's helper thread (a scrubber, a prefetcher) running
 * @fn(@arg): placed where the context's options put helpers (see
 * uffd_ctx_opts.helper_cpu) and with every signal blocked, since signals
 * are for the application's threads.  Join it with pthread_join() in the
 * pager's stop or fini hook.  Returns 0 and *thread, or -errno (the
 * reason in uffd_last_error()).
 */
int uffd_region_helper_create(const struct uffd_region *r, pthread_t *thread,
			      void *(*fn)(void *), void *arg);

/* 1 when UFFD_EVENT_UNMAP removed the whole region, else 0. */
int uffd_region_gone(const struct uffd_region *r);
struct uffd_ctx *uffd_region_ctx(const struct uffd_region *r);
/*
 * Since 0.3.  Which pages of [off, off+len) were written since they were
 * last write-protected, asked of the kernel (PAGEMAP_SCAN's
 * PAGE_IS_WRITTEN, 6.7) rather than learnt from faults: for a
 * LIBUFFD_REG_WP region of a context created with
 * LIBUFFD_FEATURE_WP_ASYNC, whose write-protect faults the kernel
 * resolves by itself (the pager sees none).  Pages filled without
 * LIBUFFD_FILL_WP count as written.  Sets bit i of @bitmap (which the
 * caller zeroed, (len / page size + 63) / 64 words) for written page
 * off / page size + i; with LIBUFFD_SCAN_REPROTECT, the same walk
 * protects them again.  Returns the number of written pages, or -EINVAL
 * (bad range, region not WP, context not WP_ASYNC), -EOPNOTSUPP (no
 * PAGEMAP_SCAN, or the region belongs to another process), or the errno
 * of the ioctl.  Any thread.
 */
#define LIBUFFD_SCAN_REPROTECT	(1u << 0)
long uffd_region_scan_written(struct uffd_region *r, uint64_t off,
			      uint64_t len, uint64_t *bitmap,
			      unsigned int flags);

/*
 * Since 0.3.  Write every dirty page of the region to where its pager
 * keeps pages (the evict pager's store, made durable with
 * uffd_store_sync()), and wait for it.  Pages stay resident and become
 * clean.  Returns 0, -EOPNOTSUPP for a pager that keeps no dirty pages,
 * -EIO when a write failed (those pages stay dirty: nothing is lost).
 * Any thread but a handler; while the context is stopped it may wait
 * for the next start.
 */
int uffd_region_flush(struct uffd_region *r);

/* LIBUFFD_REG_* the region was registered with (since 0.3). */
unsigned int uffd_region_modes(const struct uffd_region *r);
/* The pager's name, e.g. "zero". */
const char *uffd_region_pager_name(const struct uffd_region *r);

/* ------------------------------------------------------------------ */
/* Handing a userfaultfd over to another process                       */
/* ------------------------------------------------------------------ */

/*
 * The wire format, version 1, little-endian as on the host (both ends are
 * on one machine): one datagram or stream write holding a header and
 * nranges range records, with the userfaultfd attached as SCM_RIGHTS.
 *
 *   u32 magic "UFFD" (0x44464655)   u32 version (1)
 *   u32 nranges (1..LIBUFFD_HANDOVER_MAX)   u32 header size (24)
 *   u64 features (what the sender's UFFDIO_API enabled)
 *   nranges x { u64 base, u64 len, u64 file_offset, u64 page_size }
 */
#define LIBUFFD_HANDOVER_MAGIC		0x44464655u
#define LIBUFFD_HANDOVER_VERSION	1
#define LIBUFFD_HANDOVER_MAX		64

struct uffd_handover_range {
	uint64_t	base;		/* in the sender's address space */
	uint64_t	len;
	uint64_t	file_offset;	/* where the range starts in an image */
	uint64_t	page_size;
};

/*
 * Sender: send @uffd and @n ranges (registered by the sender) over the
 * connected Unix socket @sock.  Returns 0, -EINVAL, or the errno of
 * sendmsg.  The sender keeps its own copy of @uffd (close it when done).
 */
int uffd_handover_send(int sock, int uffd, uint64_t features,
		       const struct uffd_handover_range *ranges, unsigned n);

/*
 * Receiver: read one handover from @sock.  The peer must have this
 * process's uid (SO_PEERCRED), the magic, version and sizes must be
 * right and exactly one descriptor, a userfaultfd, must come with it;
 * otherwise nothing is kept (any received fd is closed) and the call
 * returns -EPERM (wrong uid), -EPROTO (malformed, or wrong version),
 * -EBADF (no or not a userfaultfd), or the errno of recvmsg (-ECONNRESET
 * when the peer closed).  On success *uffd is the descriptor and
 * ranges[0..*n) the ranges; *n is the capacity on entry.
 */
int uffd_handover_recv(int sock, int *uffd, uint64_t *features,
		       struct uffd_handover_range *ranges, unsigned *n);

/*
 * Since 0.3.  Receiver of Firecracker's handshake with an external page
 * fault handler (snapshot load with mem_backend "Uffd"): one message on
 * the connected stream socket @sock holding the JSON array
 *   [{"base_host_virt_addr":N,"size":N,"offset":N,"page_size":N,
 *     "page_size_kib":N},...]
 * (older Firecrackers send page_size_kib only; both hold bytes, and must
 * agree when both are sent) with the userfaultfd as SCM_RIGHTS.  The
 * JSON is parsed strictly: exactly these keys, each once, unsigned
 * integers, nothing after the array.  Each region must be whole pages of
 * a power-of-two page size (the base page size to 1 GiB), in user
 * address space, its offset the sum of the sizes before it (the memory
 * file holds the regions back to back), and overlap no other.  The
 * descriptor must be a userfaultfd already through UFFDIO_API, in thread
 * delivery, with EVENT_REMOVE; the peer must have this process's uid.
 * Firecracker closes its end after sending and never speaks again.
 *
 * On success *uffd is the descriptor (for uffd_ctx_adopt), ranges[0..*n)
 * the regions (file_offset: the region's offset in the memory file; *n
 * is the capacity on entry), and, when @pidfd is not NULL, *pidfd a
 * pidfd of the peer (SO_PEERPIDFD on 6.5 and later; before, pidfd_open
 * of its SO_PEERCRED pid): a handler that stops serving a live peer must
 * kill it, or its vCPUs wait for ever on their next fault.
 * Otherwise nothing is kept (received descriptors are closed) and the
 * call returns -EPERM (another uid), -EPROTO (malformed JSON, sizes that
 * do not add up, a userfaultfd not set up as Firecracker's), -EBADF (no
 * descriptor, several, or not a userfaultfd), -ESRCH (the peer exited),
 * -ECONNRESET (closed without a message), -EINVAL, or the errno of
 * recvmsg or pidfd_open.  It blocks in recvmsg as @sock does.
 */
int uffd_handover_recv_firecracker(int sock, int *uffd,
				   struct uffd_handover_range *ranges,
				   unsigned *n, int *pidfd);

/* ------------------------------------------------------------------ */
/* Statistics                                                          */
/* ------------------------------------------------------------------ */

#define LIBUFFD_HIST_BUCKETS	32

/*
 * Counters since creation.  Fault service time is measured from the read()
 * that returned the fault message to the return of the ioctl that resolved
 * it.  hist_us[0] counts services under 1 us; hist_us[i] for i >= 1 counts
 * services in [2^(i-1), 2^i) us; the last bucket has everything longer.
 */
struct uffd_stats {
	uint64_t	faults_read;
	uint64_t	faults_write;
	uint64_t	faults_wp;
	uint64_t	faults_minor;
	uint64_t	pages_copy;	/* pages newly filled by UFFDIO_COPY */
	uint64_t	pages_zero;	/* ... by UFFDIO_ZEROPAGE */
	uint64_t	pages_move;	/* ... by UFFDIO_MOVE */
	uint64_t	bytes_copied;
	uint64_t	eexist;		/* pages found present: lost races */
	uint64_t	ioctls;		/* fill/wake/poison ioctls issued */
	uint64_t	poisoned;	/* pages poisoned after pager failures */
	uint64_t	pager_errors;	/* fault hooks that failed */
	uint64_t	events_remove;
	uint64_t	events_unmap;
	uint64_t	stray_faults;	/* faults outside any live region */
	uint64_t	helper_cpu_ns;	/* CPU time of pager helper threads */
	uint64_t	pager_misses;	/* pager-defined fallbacks (pool empty) */
	uint64_t	handler_cpu_ns;	/* context only: handler thread CPU */
	uint64_t	events_remap;	/* whole-region moves followed */
	uint64_t	events_fork;	/* children adopted */
	uint64_t	remap_dropped;	/* partial moves: moved part let go */
	uint64_t	spin_ns;	/* context only: time handlers spun */
	uint64_t	spin_hits;	/* context only: spins that found work */
	uint64_t	sigbus_faults;	/* faults served in SIGBUS handlers */
	uint64_t	sigbus_direct;	/* ... that resumed without sigreturn */
	uint64_t	hist_us[LIBUFFD_HIST_BUCKETS];
	/* since 0.2: pager failures on kernels without POISON, and repeats */
	uint64_t	sigbus_queued;	/* SIGBUS queued to faulting threads */
	uint64_t	failed_refaults; /* faults on failed pages: no hook call */
	uint64_t	kernel_unstuck;	/* kernel accesses to failed pages ended */
	/* since 0.3: write-protect and minor faults */
	uint64_t	pages_protected; /* pages write-protected (fills too) */
	uint64_t	pages_released;	/* pages whose protection was lifted */
	uint64_t	pages_continued; /* pages mapped by UFFDIO_CONTINUE */
	/* since 0.3: pagers that bound memory (evict) */
	uint64_t	pages_evicted;	/* taken out of the region */
	uint64_t	pages_written_back; /* ... written to the store first */
	uint64_t	pages_read_in;	/* filled from the store (with I/O) */
	uint64_t	writeback_errors; /* failed writes: pages kept */
	/*
	 * since 0.3: read requests the file and memcached pagers sent their
	 * store (a run of a window; for the memcached store, which reads
	 * all of one submit in one multi-get, a round trip each)
	 */
	uint64_t	store_ios;
};

/*
 * Copy up to @size bytes of the counters into @st (pass sizeof(*st)).
 * Context statistics add up every region, destroyed ones included, plus
 * stray faults and the handler thread's CPU time (handler_cpu_ns, which
 * is 0 in region statistics).
 * Returns 0 or -EINVAL.  Any thread; the counters are read without
 * stopping the handler, so each is exact but they are not one snapshot.
 * A fault's faults_* counter is bumped before its pager runs; its pages_*,
 * bytes and eexist counts just after the fill ioctl, which for a one-page
 * fill has already woken the faulting thread; its histogram entry last.
 * So a thread that resumed from its own fault may briefly see that fault
 * counted but not its pages; once the histogram total equals the number
 * of faults served, every counter of those faults is in.
 */
int uffd_region_stats(const struct uffd_region *r, struct uffd_stats *st,
		      size_t size);
int uffd_ctx_stats(const struct uffd_ctx *ctx, struct uffd_stats *st,
		   size_t size);
/* CPU time the context's handler thread(s) used, in ns (0 if never run). */
uint64_t uffd_ctx_handler_cpu_ns(const struct uffd_ctx *ctx);

/* Pagers report their own counters here (atomic, any thread). */
void uffd_region_add_helper_cpu(struct uffd_region *r, uint64_t ns);
void uffd_region_add_miss(struct uffd_region *r, uint64_t n);

/*
 * Median (q = 0.5), p99 (0.99)... of the service-time histogram, in us,
 * taken as the upper bound of the bucket holding that quantile.
 * Returns 0 when the histogram is empty.
 */
uint64_t uffd_stats_quantile_us(const struct uffd_stats *st, double q);

#define LIBUFFD_FMT_TEXT	0
#define LIBUFFD_FMT_JSON	1

/*
 * Format @st as text (several lines) or as one JSON object (one line,
 * no newline), snprintf-style: returns the length the full output needs,
 * writing at most @len bytes including the NUL.  -EINVAL on bad args.
 */
int uffd_stats_format(const struct uffd_stats *st, int fmt, char *buf,
		      size_t len);
/* Same, written to @fp.  Returns 0, -EINVAL, or -EIO. */
int uffd_stats_print(const struct uffd_stats *st, int fmt, FILE *fp);

/* ------------------------------------------------------------------ */
/* Page stores (since 0.3)                                             */
/* ------------------------------------------------------------------ */

/*
 * A store is where pages live when they are not resident: a file, a
 * block device, memory.  It is to pages at rest what a pager is to
 * faults, and knows nothing of faults or regions.  A store holds
 * uffd_store_page_size() pages numbered from 0; I/O moves runs of whole
 * pages between a store and the caller's buffers.
 *
 * I/O is submit + reap, as with io_uring: the caller fills its own
 * struct uffd_store_io requests, uffd_store_submit() starts a batch of
 * them, and uffd_store_reap() hands back finished ones.  Chosen over
 * completion callbacks because the caller owns every request (nothing is
 * allocated per I/O, as the fault path requires) and completions are seen
 * in the caller's thread, when it asks: never in a store's thread or
 * in a signal handler.  A synchronous store just finishes each request
 * inside submit; the caller's code is the same either way.
 *
 * "Never written" is answered without I/O: the library keeps one bit per
 * page, set when a write through the handle completes, cleared by
 * uffd_store_discard(), seeded at open by the store (the file store asks
 * the file system for its holes with SEEK_DATA/SEEK_HOLE, so a snapshot's
 * holes count as never written).  A read request whose pages were all
 * never written is answered with zeros without reaching the store; in a
 * run that mixes both, the store reads the run in one I/O and the library
 * then zeroes the never-written pages, so they read as zeros even where
 * the medium holds older bytes (a block device).  A caller that wants no
 * I/O at all for such pages splits its runs with uffd_store_extent().
 *
 * One handle is used by one thread at a time (submit, reap, read,
 * write, sync, discard: the caller serialises them, as for an io_uring
 * ring); uffd_store_extent(), uffd_store_written() and uffd_store_stats()
 * may be called from any thread.
 */
struct uffd_store;

#define LIBUFFD_STORE_READ	0
#define LIBUFFD_STORE_WRITE	1

/* Set by a store in uffd_store_io.out_flags. */
#define LIBUFFD_STORE_IO_FIXED	(1u << 0)  /* used registered buffers */

/* One run of pages: a request, owned by the caller. */
struct uffd_store_io {
	int		op;		/* LIBUFFD_STORE_READ / _WRITE */
	int		res;		/* out: 0 or -errno */
	uint64_t	page;		/* first page of the run */
	uint64_t	npages;		/* pages, >= 1 */
	void		*buf;		/* npages * page size bytes */
	void		*data;		/* the caller's, untouched */
	uint64_t	holes;		/* out, reads: never-written pages */
	unsigned int	out_flags;	/* out: LIBUFFD_STORE_IO_* */
	/* below: the library's and the store's while the request is out */
	struct uffd_store	*store;
	struct uffd_store_io	*next;
	uint64_t	priv[2];	/* the store's own */
};

#define LIBUFFD_STORE_OPS_VERSION	2

/*
 * Store flags.  ASYNC: submit may return before the I/O is done (the
 * store then has a wait hook).  PERSISTENT: what was written outlives
 * the handle (a file; not memfd).
 */
#define LIBUFFD_STORE_ASYNC		(1u << 0)
#define LIBUFFD_STORE_PERSISTENT	(1u << 1)

/*
 * A store.  Hooks get the state pointer that open returned as their
 * first argument; optional hooks may be NULL.  A store never calls back
 * into the handle except through uffd_store_complete().
 *
 * open   (required) parse @args (never NULL), set things up.  *len is
 *        the caller's length in bytes (0: the store's own size, e.g. the
 *        file's); set it to the store's length (a multiple of the page
 *        size, not 0).  Return 0 and *state, or -errno with a reason set
 *        by uffd_set_error().
 * data   (optional) report which pages already hold data, for a store
 *        that outlives its handles: set bit p (bitmap[p / 64], bit p % 64)
 *        of @bitmap for each such page of the @npages.  NULL: none do.
 * submit (required) start @n requests, already checked (in range, op
 *        valid, buffer given, a direct store's alignment is its own to
 *        check).  Finish each with uffd_store_complete() exactly once, in
 *        submit itself or later from wait.  Return 0, or -errno when none
 *        was started (then none may be completed).
 * wait   (required with LIBUFFD_STORE_ASYNC) complete in-flight requests:
 *        at least @min of them (0: those ready now, without blocking).
 *        Return how many it completed, or -errno.
 * discard (optional) pages [page, page + npages) will not be read again
 *        before they are written: give their space back (punch a hole).
 * sync   (optional) make completed writes durable.  NULL: nothing to do.
 * pool   (optional) the store's buffer pool: page-aligned memory the
 *        store does its fastest I/O from (registered with io_uring).
 *        Return 0 and *buf, *len, or -errno.
 * close  (required) everything in flight has completed; free it all.
 * dup    (optional, version >= 2) a second state on the same pages, with
 *        I/O resources of its own (uffd_store_dup()): what one writes,
 *        the other reads.  Return 0 and *out, or -errno.
 */
struct uffd_store_ops {
	unsigned int	version;	/* LIBUFFD_STORE_OPS_VERSION */
	const char	*name;
	unsigned int	flags;		/* LIBUFFD_STORE_* */
	int	(*open)(const struct uffd_args *args, uint64_t *len,
			void **state);
	int	(*data)(void *state, uint64_t npages, uint64_t *bitmap);
	int	(*submit)(void *state, struct uffd_store_io *const *ios,
			  unsigned int n);
	int	(*wait)(void *state, unsigned int min);
	int	(*discard)(void *state, uint64_t page, uint64_t npages);
	int	(*sync)(void *state);
	int	(*pool)(void *state, void **buf, size_t *len);
	void	(*close)(void *state);
	/* version >= 2 */
	int	(*dup)(void *state, void **out);
};

/*
 * A store finishes @io with 0 or -errno, from inside its submit or wait
 * hook only (the handle's completion queue is the caller's thread's).
 */
void uffd_store_complete(struct uffd_store_io *io, int res);

/*
 * The built-in store @name ("memfd", "file", "memcached"), or NULL.
 * uffd_store_list() returns the NULL-terminated list of built-in stores.
 *
 *  memfd[:inject_eio=PAGE]
 *      memory (memfd_create, mapped): synchronous memcpy, nothing
 *      outlives the handle.  The fastest bound for a store.
 *  file:path=P[,offset=O][,direct=1][,readonly=1][,fresh=1][,pool=N]
 *       [,engine=E][,spin=US][,inject_eio=PAGE]
 *      a regular file (created if missing, extended sparse to the
 *      length) or a block device.  offset=O: page 0 is the file's byte O
 *      (a multiple of the page size, and of 4096 with direct=1).
 *      engine=uring (default; asynchronous, requests from the pool=N
 *      pages buffer pool, 256 by default, use READ_FIXED/WRITE_FIXED) or
 *      pread (synchronous; a pool only if pool=N asks for one).
 *      direct=1: O_DIRECT (page-aligned buffers).
 *      readonly=1: opened read-only, never extended, writes fail with
 *      -EBADF; pages past the file's end at open read as zeros without
 *      I/O, and the page straddling it is zeroed from there on.
 *      fresh=1: forget what the file holds: every page starts never
 *      written (a block device reused as scratch).
 *      spin=US (uring): a wait for a completion polls the ring for up to
 *      US microseconds before it sleeps (0, the default: sleep at once);
 *      for a thread that has nothing else to do meanwhile.  A dup
 *      (uffd_store_dup) sleeps.
 *  memcached:servers=H:P;H:P...,namespace=NS[,replicas=N][,readonly=1]
 *           [,fresh=1][,pool=N][,timeout=MS]
 *      (when built with libmemcached) a pool of memcached servers: page p
 *      is the key "NS:p" (hex) on the server of libmemcached's consistent
 *      hashing, and on the N after it with replicas=N.  Zero pages are
 *      not stored: writing one deletes its key, an absent key reads as
 *      zeros; a key whose servers do not answer fails the read (-EIO),
 *      never zeros.  Synchronous; a length must be given.  fresh=1: no
 *      page counts as written at open (else all do).
 *  inject_eio=PAGE (testing): every I/O that covers page PAGE and reaches
 *      the store fails with -EIO.
 */
const struct uffd_store_ops *uffd_store_find(const char *name);
const struct uffd_store_ops *const *uffd_store_list(void);

/*
 * Open the store @spec ("memfd", "file:path=/x,direct=1", parsed as a
 * pager spec is) for @len bytes (a multiple of the page size; 0: the
 * store's own size), or the store @ops with @args (a "k=v,k=v" list, may
 * be NULL) for uffd_store_open_ops.  Returns 0 and *out, or
 *  -EINVAL  bad spec, unknown store, bad length or argument
 *  -ENOMEM, or what the store's open returned (-ENOENT, -EACCES...)
 * with the reason in uffd_last_error().  Any thread.
 */
int uffd_store_open(const char *spec, uint64_t len, struct uffd_store **out);
int uffd_store_open_ops(const struct uffd_store_ops *ops, const char *args,
			uint64_t len, struct uffd_store **out);

/* Wait for whatever is in flight, then free everything.  NULL: no-op. */
void uffd_store_close(struct uffd_store *st);

/*
 * Since 0.3.  A second handle on the same store, for a second thread:
 * its own I/O queue, ring and pool, the same pages and the same "never
 * written" bitmap (what a write through one completes, a read through
 * the other sees).  The stores built in have it (-EOPNOTSUPP for one
 * without the dup hook).  Close it like any handle, in any order.
 * Returns 0 and *out, -EINVAL, -ENOMEM, or the store's -errno.
 */
int uffd_store_dup(struct uffd_store *st, struct uffd_store **out);

uint64_t uffd_store_len(const struct uffd_store *st);
uint64_t uffd_store_page_size(const struct uffd_store *st);
const char *uffd_store_name(const struct uffd_store *st);

/*
 * Start @n requests.  All are checked first: a page run outside the
 * store, npages 0, no buffer or a bad op is -EINVAL and none starts;
 * a write to a read-only store is -EBADF, likewise.  Returns @n (every
 * request is then out, to come back once from uffd_store_reap, read
 * requests of never-written pages maybe finished already), or -errno
 * from the store when none started.
 */
int uffd_store_submit(struct uffd_store *st, struct uffd_store_io *const *ios,
		      unsigned int n);
/*
 * Put up to @max finished requests in @done, waiting until at least
 * @min (<= @max) have finished (0: do not wait).  Returns how many, or
 * -errno; -EINVAL when @min exceeds what is out.  Each request's res
 * says how it went.
 */
int uffd_store_reap(struct uffd_store *st, struct uffd_store_io **done,
		    unsigned int max, unsigned int min);
/* Requests submitted and not yet reaped. */
unsigned int uffd_store_inflight(const struct uffd_store *st);

/*
 * Synchronous one-run I/O: submit one request and wait for it (others
 * that finish meanwhile stay for uffd_store_reap).  Returns 0 or -errno
 * as submit and the request's res; reads return the count of
 * never-written pages (zeroed) on success.
 */
int uffd_store_read(struct uffd_store *st, uint64_t page, uint64_t npages,
		    void *buf);
int uffd_store_write(struct uffd_store *st, uint64_t page, uint64_t npages,
		     const void *buf);

/*
 * Whether page @page was ever written (1), never (0), or -EINVAL out of
 * range.  uffd_store_extent returns how many pages from @page (at most
 * @max) share its state, in *written; -EINVAL out of range.  No I/O.
 */
int uffd_store_written(const struct uffd_store *st, uint64_t page);
int64_t uffd_store_extent(const struct uffd_store *st, uint64_t page,
			  uint64_t max, int *written);

/*
 * Mark [page, page + npages) never written (they read as zeros again)
 * and let the store reclaim their space.  0, -EINVAL, or the store's
 * -errno (the pages are marked never written all the same; a read-only
 * memcached store deletes nothing and returns 0).
 */
int uffd_store_discard(struct uffd_store *st, uint64_t page,
		       uint64_t npages);
/*
 * Make every write that has completed durable.  Requests still out are
 * not waited for: reap them first.  0 or -errno.
 */
int uffd_store_sync(struct uffd_store *st);

/*
 * The store's buffer pool (see the ops' pool hook): requests whose
 * buffers lie in it take the store's fastest path.  Returns 0, *buf and
 * *len, or -EOPNOTSUPP when the store has none.  The pool lives as long
 * as the handle; the caller carves it up as it likes.
 */
int uffd_store_pool(struct uffd_store *st, void **buf, size_t *len);

struct uffd_store_stats {
	uint64_t	reads;		/* read requests finished */
	uint64_t	writes;		/* write requests finished */
	uint64_t	pages_read;
	uint64_t	pages_written;
	uint64_t	hole_pages;	/* read as zeros, never written */
	uint64_t	store_ios;	/* requests that reached the store */
	uint64_t	errors;		/* requests that failed */
	uint64_t	written_pages;	/* pages marked written now */
};

/* Copy at most @size bytes of the handle's counters.  0 or -EINVAL. */
int uffd_store_stats(const struct uffd_store *st, struct uffd_store_stats *out,
		     size_t size);


#ifdef __cplusplus
}
#endif

#endif /* LIBUFFD_H */
