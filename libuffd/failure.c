/* SPDX-License-Identifier: MIT */
/*
 * A fault no pager could serve.  The thread touching the page must get
 * SIGBUS: never hang, never read wrong data, never spin.
 *
 * The page is first marked failed, so that until a REMOVE or UNMAP takes
 * it away (or a fill covers it) a fault on it is answered without calling
 * the pager again: a failing pager runs once per page, not once per
 * retry.  Then, from a handler thread:
 *
 *  - with POISON (6.6), UFFDIO_POISON the page and wake the thread: the
 *    kernel raises SIGBUS on every access to it, as for hardware poison,
 *    and fails kernel-side accesses (read(2) into it) with EFAULT;
 *  - without it (older kernels, or POISON in features_off), queue SIGBUS
 *    to the faulting thread (THREAD_ID names it) and wake it.
 *
 * In SIGBUS delivery the faulting thread is the caller, in its SIGBUS
 * handler, and hands that very signal on (sigbus.c).  The page is
 * poisoned there too where possible, so that it stays an error after the
 * context is gone.
 *
 * The signal has one gap, which the kernel leaves: a fault taken in the
 * kernel (read(2) into the page, O_DIRECT, MADV_POPULATE) is retried
 * until the page is there or a *fatal* signal is pending, so a SIGBUS the
 * application handles keeps the thread faulting for ever.  We see it as
 * faults again and again while our SIGBUS stays pending and not blocked
 * (from user mode the signal is taken at once; see refaults()), and end
 * it: in our
 * own process the page is made PROT_NONE until the access has failed with
 * EFAULT and the thread has taken the signal, then its protection comes
 * back; in another process, whose mappings we cannot change, the only
 * way left is SIGKILL.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "internal.h"

#define SIGBUS_BIT	(1ull << (SIGBUS - 1))
/* how long a handler waits for a thread to leave a kernel access */
#define UNSTICK_WAIT_NS	200000000ull

static int poison_page(struct uffd_resolver *res)
{
	struct uffd_region *r = res->region;
	struct uffdio_poison p = {
		.range = { .start = luffd_base(r) + res->fault_off,
			   .len = r->page_size },
	};
	unsigned int tries = 0;

	if (!(r->ctx->features & UFFD_FEATURE_POISON) ||
	    !(r->reg_ioctls & (1ull << _UFFDIO_POISON)))
		return -EOPNOTSUPP;
	for (;;) {
		luffd_count(&r->ctr, LUFFD_CTR(ioctls), 1);
		if (ioctl(r->ctx->fd, UFFDIO_POISON, &p) == 0) {
			luffd_count(&r->ctr, LUFFD_CTR(poisoned), 1);
			return 0;
		}
		if (errno == EAGAIN && p.updated <= 0 &&
		    luffd_absorb_events(res, &tries) == 0)
			continue;
		/* EEXIST: poisoned already, or filled meanwhile */
		return -errno;
	}
}

struct task_sig {
	pid_t		tgid;
	char		state;
	uint64_t	pending;	/* the thread's own pending set */
	uint64_t	blocked;
	uint64_t	ignored;
};

/* What /proc says of thread @tid; 0 or -errno.  Handler threads only. */
static int task_signals(uint32_t tid, struct task_sig *ts)
{
	char path[48], buf[2048], *line;
	unsigned long long v;
	ssize_t n;
	int fd, got = 0;

	snprintf(path, sizeof(path), "/proc/%u/status", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	for (line = buf; line; line = strchr(line, '\n')) {
		int id;

		if (*line == '\n')
			line++;
		if (sscanf(line, "State: %c", &ts->state) == 1) {
			got |= 1;
		} else if (sscanf(line, "Tgid: %d", &id) == 1) {
			ts->tgid = id;
			got |= 2;
		} else if (sscanf(line, "SigPnd: %llx", &v) == 1) {
			ts->pending = v;
			got |= 4;
		} else if (sscanf(line, "SigBlk: %llx", &v) == 1) {
			ts->blocked = v;
			got |= 8;
		} else if (sscanf(line, "SigIgn: %llx", &v) == 1) {
			ts->ignored = v;
			got |= 16;
		}
	}
	return got == 31 ? 0 : -EIO;
}

/* Protection of our own mapping holding @addr, from /proc/self/maps. */
static int vma_prot(uint64_t addr)
{
	char buf[4096], *line, *end;
	size_t have = 0;
	ssize_t n;
	int fd, prot = -ENOENT;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* line by line through a fixed buffer: no allocation */
	while ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		have += (size_t)n;
		buf[have] = '\0';
		for (line = buf; (end = strchr(line, '\n')); line = end + 1) {
			unsigned long long lo, hi;
			char perm[5];

			if (sscanf(line, "%llx-%llx %4s", &lo, &hi,
				   perm) != 3 || addr < lo || addr >= hi)
				continue;
			prot = (perm[0] == 'r' ? PROT_READ : 0) |
			       (perm[1] == 'w' ? PROT_WRITE : 0) |
			       (perm[2] == 'x' ? PROT_EXEC : 0);
			goto out;
		}
		have = (size_t)(buf + have - line);
		memmove(buf, line, have);
	}
out:
	close(fd);
	return prot;
}

/*
 * Thread @tid keeps faulting on @addr from inside the kernel with our
 * SIGBUS pending (see the top of the file).  Fail its access.
 */
static void unstick(struct uffd_resolver *res, uint32_t tid,
		    const struct task_sig *ts)
{
	struct uffd_region *r = res->region;
	uint64_t addr = luffd_base(r) + res->fault_off;
	void *page = (void *)(uintptr_t)addr;
	struct timespec pause = { .tv_nsec = 50000 };
	struct task_sig now;
	uint64_t t0;
	int prot;

	luffd_count(&r->ctr, LUFFD_CTR(kernel_unstuck), 1);
	if (ts->tgid != getpid()) {
		kill(ts->tgid, SIGKILL);
		return;
	}
	prot = vma_prot(addr);
	if (prot < 0 || mprotect(page, r->page_size, PROT_NONE) < 0) {
		/* cannot happen, but never let it spin */
		kill(ts->tgid, SIGKILL);
		return;
	}
	/* a get_user_pages() fault sleeps killable: wake it to see this */
	luffd_wake_range(res, res->fault_off, r->page_size);
	t0 = luffd_now_ns();
	while (task_signals(tid, &now) == 0 && (now.pending & SIGBUS_BIT) &&
	       luffd_now_ns() - t0 < UNSTICK_WAIT_NS)
		nanosleep(&pause, NULL);
	mprotect(page, r->page_size, prot);
}

/*
 * A fault again from a thread with our SIGBUS pending and not blocked is
 * either a thread about to take it (a stale message: it faulted again
 * before the signal was queued) or a kernel access that will never take
 * it.  The first stops after a message or two; the second comes back at
 * every wake.  So count them per thread, waking it each time, and call
 * it stuck after STUCK_REFAULTS in a row.
 */
#define STUCK_SLOTS	8
#define STUCK_REFAULTS	8

static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint32_t	tid;
	unsigned int	n;
} stuck[STUCK_SLOTS];

/* Count a refault of @tid with SIGBUS pending (@pending) or reset it. */
static unsigned int refaults(uint32_t tid, bool pending)
{
	unsigned int i, slot = 0, n = 0;

	pthread_mutex_lock(&stuck_lock);
	for (i = 0; i < STUCK_SLOTS; i++) {
		if (stuck[i].tid == tid)
			break;
		if (stuck[i].n < stuck[slot].n)
			slot = i;
	}
	if (i < STUCK_SLOTS)
		slot = i;
	else if (pending)
		stuck[slot].n = 0;
	if (pending) {
		stuck[slot].tid = tid;
		n = ++stuck[slot].n;
	} else if (i < STUCK_SLOTS) {
		stuck[slot].tid = 0;
		stuck[slot].n = 0;
	}
	pthread_mutex_unlock(&stuck_lock);
	return n;
}

/*
 * Queue SIGBUS for thread @tid, which faulted at @addr (the byte where
 * EXACT_ADDRESS, 5.18, is on, else the page).  Only the kernel may send
 * a positive si_code to another thread, so the signal carries SI_QUEUE,
 * with the address in si_addr and in si_value.  Returns
 * true when the thread should be woken to take it.  It is left to wait
 * in the fault (until the region is unregistered) rather than woken to
 * fault again for ever when the signal cannot reach it: no thread id (no
 * THREAD_ID), SIGBUS blocked and pending, or ignored in another process.
 * In our own process an ignored SIGBUS is reset to the default action
 * first, as the kernel does for a fault's SIGBUS.
 */
static bool signal_toucher(struct uffd_resolver *res, uint32_t tid,
			   uint64_t addr)
{
	struct uffd_region *r = res->region;
	struct task_sig ts;
	siginfo_t si;

	if (!tid || task_signals(tid, &ts) < 0)
		return false;
	if (ts.pending & SIGBUS_BIT) {
		if (ts.blocked & SIGBUS_BIT)
			return false;
		if (refaults(tid, true) < STUCK_REFAULTS)
			return true;
		refaults(tid, false);
		unstick(res, tid, &ts);
		return false;
	}
	refaults(tid, false);
	if (ts.ignored & SIGBUS_BIT) {
		if (ts.tgid != getpid())
			return false;
		signal(SIGBUS, SIG_DFL);
	}
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGBUS;
	si.si_code = SI_QUEUE;
	si.si_addr = (void *)(uintptr_t)addr;
	si.si_value.sival_ptr = (void *)(uintptr_t)addr;
	if (syscall(SYS_rt_tgsigqueueinfo, ts.tgid, tid, SIGBUS, &si) < 0)
		return false;
	luffd_count(&r->ctr, LUFFD_CTR(sigbus_queued), 1);
	return true;
}

void luffd_fail_fault(struct uffd_resolver *res, uint32_t tid, uint64_t addr)
{
	struct uffd_region *r = res->region;
	int ret;

	luffd_failed_set(r, res->fault_off, r->page_size);
	/*
	 * A write-protect fault's page is present: POISON would only say
	 * EEXIST, and the woken writer would fault on it again for ever.
	 * The signal is the answer there.
	 */
	ret = res->fault_wp ? -EOPNOTSUPP : poison_page(res);
	/*
	 * EEXIST: poisoned before, or a helper's fill won the race; either
	 * way the retried access gets what the page holds now.  A SIGBUS
	 * handler (no res->h) delivers the signal itself.
	 */
	if (res->h && (ret == 0 || ret == -EEXIST ||
		       signal_toucher(res, tid, addr)))
		luffd_wake_range(res, res->fault_off, r->page_size);
	luffd_record_service(res);
}
