/* SPDX-License-Identifier: MIT */
/*
 * SIGBUS delivery (UFFD_FEATURE_SIGBUS): a missing page in a registered
 * range raises SIGBUS in the faulting thread instead of queueing a message.
 * The library's handler finds the region and runs its pager right there,
 * then returns, and the faulting instruction runs again.  No message, no
 * handler thread, no cross-CPU wake-up.
 *
 * A signal handler may only do async-signal-safe work.  What runs here is
 * a table lookup, ioctls and atomics.  The region table's rwlock is taken
 * for reading: the interrupted thread cannot hold it, because no library
 * code that takes it touches region memory, and user code never holds it.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define LUFFD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LUFFD_ASAN 1
#endif
#endif
#ifdef LUFFD_ASAN
void __asan_handle_no_return(void);
#endif
#if defined(__SANITIZE_THREAD__)
#define LUFFD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LUFFD_TSAN 1
#endif
#endif

#define MAX_SIG_CTX	64

__thread int luffd_in_signal;
__thread int luffd_internal;
/* gettid() is a system call; a fault costs a few of them already */
static __thread uint32_t tid_cache;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uffd_ctx *sig_ctx[MAX_SIG_CTX];	/* atomic slots */

/*
 * A forked child's one thread has a new tid, and the contexts are the
 * parent's: their userfaultfds fill the parent's memory, not ours.
 */
static void forget_tid(void)
{
	int i;

	tid_cache = 0;
	for (i = 0; i < MAX_SIG_CTX; i++)
		__atomic_store_n(&sig_ctx[i], NULL, __ATOMIC_RELEASE);
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, forget_tid);
}

static struct sigaction old_action;
static bool installed;

/* Hand a SIGBUS that is not ours to whoever had it before us. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if (old_action.sa_flags & SA_SIGINFO) {
		if (old_action.sa_sigaction) {
			old_action.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old_action.sa_handler != SIG_DFL &&
		   old_action.sa_handler != SIG_IGN) {
		old_action.sa_handler(sig);
		return;
	}
	/*
	 * Default action: restore it and return; the faulting instruction
	 * runs again and the kernel delivers SIGBUS with the default action
	 * (a hardware fault cannot be ignored, so SIG_IGN ends the same way).
	 */
	signal(SIGBUS, SIG_DFL);
}

/* Was it a write?  x86 reports the page-fault error code. */
static bool fault_was_write(void *ucv)
{
#if defined(__x86_64__) && defined(REG_ERR)
	ucontext_t *uc = ucv;

	return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
	(void)ucv;
	return true;	/* unknown: a real page is right for both */
#endif
}

/*
 * Direct resume.  Returning from a signal handler costs an rt_sigreturn
 * system call that restores the registers, the FPU state, the signal mask
 * and the alternate stack from the frame.  Our handler runs with
 * SA_NODEFER and an empty sa_mask, so the mask never changed; without an
 * SS_AUTODISARM alternate stack neither did the stack settings.  What is
 * left can be done in user space: XRSTOR the FPU state the kernel saved
 * with XSAVE (the handler started with it reset), then IRETQ, which loads
 * RIP, RFLAGS and RSP together from a frame on the handler's stack.  Only
 * the handler's own stack is written, so a signal arriving meanwhile is
 * harmless.  A shadow stack (CET) would hold the kernel's restore token:
 * then, and when another handler chained to us (it expects us to
 * return), we return normally.
 */
#if defined(__x86_64__) && defined(REG_RIP)
#include <cpuid.h>

#define FP_XSTATE_MAGIC1_	0x46505853u
#define FX_SW_BYTES_OFF		464	/* struct _fpx_sw_bytes in fxsave */
#define ARCH_SHSTK_STATUS_	0x5005
#define ARCH_SHSTK_SHSTK_	(1ull << 0)
#ifndef SS_AUTODISARM
#define SS_AUTODISARM		(1u << 31)
#endif

static void *sig_restorer;	/* where a kernel-entered handler returns */
static bool direct_ok;		/* no shadow stack, restorer known */

/*
 * QEMU's TCG emulation before 2024 did IRETQ's stack reads as kernel
 * accesses: with SMAP in the guest, an IRETQ from user to user mode
 * faults and the guest kernel kills the process.  The hypervisor CPUID
 * leaf names TCG; it is slow anyway, so there we return normally.
 */
static bool under_tcg(void)
{
	unsigned int a, b, c, d;
	char sig[12];

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 31)))
		return false;
	__cpuid(0x40000000, a, b, c, d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	return !memcmp(sig, "TCGTCGTCGTCG", sizeof(sig));
}

static void direct_setup(void)
{
	struct {
		void		*handler;
		unsigned long	flags;
		void		*restorer;
		uint64_t	mask;
	} k;
	uint64_t shstk = 0;

	direct_ok = false;
#ifdef LUFFD_TSAN
	/*
	 * ThreadSanitizer's own handler calls ours (at once for SIGBUS,
	 * later for a deferred signal, with a copy of the context) and
	 * restores its per-thread state when ours returns: an IRETQ from
	 * here would skip that.  The return address check would refuse too,
	 * but only by the accident of who the caller is: say it here.
	 */
	return;
#endif
	if (under_tcg())
		return;
	if (syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS_, &shstk) == 0 &&
	    (shstk & ARCH_SHSTK_SHSTK_))
		return;
	if (syscall(SYS_rt_sigaction, SIGBUS, NULL, &k, sizeof(k.mask)) ||
	    !(k.flags & 0x04000000ul /* SA_RESTORER */) || !k.restorer)
		return;
	sig_restorer = k.restorer;
	direct_ok = true;
}

/* Loads every register but RDI from the gregs at RDI, then RDI; IRETQ. */
#define RESUME_TAIL							\
	"movq %%ss, %%rax\n\t"						\
	"pushq %%rax\n\t"						\
	"pushq %c[rsp](%%rdi)\n\t"					\
	"pushq %c[efl](%%rdi)\n\t"					\
	"movq %%cs, %%rax\n\t"						\
	"pushq %%rax\n\t"						\
	"pushq %c[rip](%%rdi)\n\t"					\
	"movq %c[r8](%%rdi), %%r8\n\t"					\
	"movq %c[r9](%%rdi), %%r9\n\t"					\
	"movq %c[r10](%%rdi), %%r10\n\t"				\
	"movq %c[r11](%%rdi), %%r11\n\t"				\
	"movq %c[r12](%%rdi), %%r12\n\t"				\
	"movq %c[r13](%%rdi), %%r13\n\t"				\
	"movq %c[r14](%%rdi), %%r14\n\t"				\
	"movq %c[r15](%%rdi), %%r15\n\t"				\
	"movq %c[rbx](%%rdi), %%rbx\n\t"				\
	"movq %c[rbp](%%rdi), %%rbp\n\t"				\
	"movq %c[rsi](%%rdi), %%rsi\n\t"				\
	"movq %c[rdx](%%rdi), %%rdx\n\t"				\
	"movq %c[rcx](%%rdi), %%rcx\n\t"				\
	"movq %c[rax](%%rdi), %%rax\n\t"				\
	"movq %c[rdi](%%rdi), %%rdi\n\t"				\
	"iretq\n\t"

#define RESUME_OFFSETS							\
	[rsp] "i" (REG_RSP * 8), [efl] "i" (REG_EFL * 8),		\
	[rip] "i" (REG_RIP * 8), [r8] "i" (REG_R8 * 8),			\
	[r9] "i" (REG_R9 * 8), [r10] "i" (REG_R10 * 8),			\
	[r11] "i" (REG_R11 * 8), [r12] "i" (REG_R12 * 8),		\
	[r13] "i" (REG_R13 * 8), [r14] "i" (REG_R14 * 8),		\
	[r15] "i" (REG_R15 * 8), [rbx] "i" (REG_RBX * 8),		\
	[rbp] "i" (REG_RBP * 8), [rsi] "i" (REG_RSI * 8),		\
	[rdx] "i" (REG_RDX * 8), [rcx] "i" (REG_RCX * 8),		\
	[rax] "i" (REG_RAX * 8), [rdi] "i" (REG_RDI * 8)

/* May the interrupted context at @uc be resumed without rt_sigreturn? */
static bool can_resume(const ucontext_t *uc, void *ret_addr)
{
	const char *fp = (const char *)uc->uc_mcontext.fpregs;

	return direct_ok && ret_addr == sig_restorer && fp &&
	       ((uintptr_t)fp & 63) == 0 &&
	       !(uc->uc_stack.ss_flags & SS_AUTODISARM);
}

__attribute__((noreturn, noinline))
static void resume(ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	char *fp = (char *)uc->uc_mcontext.fpregs;
	uint32_t magic;
	uint64_t mask;

	memcpy(&magic, fp + FX_SW_BYTES_OFF, sizeof(magic));
	memcpy(&mask, fp + FX_SW_BYTES_OFF + 8, sizeof(mask));
#ifdef LUFFD_ASAN
	__asan_handle_no_return();	/* as longjmp does */
#endif
	if (magic == FP_XSTATE_MAGIC1_)
		__asm__ volatile("xrstor64 (%%rsi)\n\t"
				 RESUME_TAIL
				 : : "D" (g), "S" (fp),
				   "a" ((uint32_t)mask),
				   "d" ((uint32_t)(mask >> 32)),
				   RESUME_OFFSETS
				 : "memory");
	else
		__asm__ volatile("fxrstor64 (%%rsi)\n\t"
				 RESUME_TAIL
				 : : "D" (g), "S" (fp), RESUME_OFFSETS
				 : "memory");
	__builtin_unreachable();
}
#else
static void direct_setup(void)
{
}

static bool can_resume(const ucontext_t *uc, void *ret_addr)
{
	(void)uc;
	(void)ret_addr;
	return false;
}

__attribute__((noreturn))
static void resume(ucontext_t *uc)
{
	(void)uc;
	abort();
}
#endif

enum served { NOT_OURS, SERVED, FAILED };

/*
 * Serve @addr if it is in one of @ctx's regions.  *direct says on entry
 * whether the frame allows a direct resume, and on return whether this
 * fault takes one (counted here, where the region is known).  FAILED:
 * the pager could not fill the page (now, or before), and the SIGBUS is
 * the application's.
 */
static enum served serve(struct uffd_ctx *ctx, uint64_t addr, bool write,
			 uint64_t t0, bool *direct)
{
	enum served ret = SERVED;
	struct uffd_region *r;
	struct luffd_msg m;

	luffd_remap_gate(ctx);
	/* a pager hears of every discard read before it serves this */
	luffd_events_wait(ctx, __atomic_load_n(&ctx->ev_read,
					       __ATOMIC_ACQUIRE));
	pthread_rwlock_rdlock(&ctx->lock);
	r = luffd_lookup(ctx, addr);
	if (!r && __atomic_load_n(&ctx->reading, __ATOMIC_ACQUIRE)) {
		/* an mremap returned, its REMAP is not ingested yet */
		sched_yield();
		goto retry;
	}
	if (!r) {
		pthread_rwlock_unlock(&ctx->lock);
		return NOT_OURS;
	}
	/* a stopped context: wait for start, as a blocked fault would */
	while (!__atomic_load_n(&ctx->sig_active, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&ctx->sig_dead, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { .tv_nsec = 1000000 };

		pthread_rwlock_unlock(&ctx->lock);
		nanosleep(&ts, NULL);
		pthread_rwlock_rdlock(&ctx->lock);
		r = luffd_lookup(ctx, addr);
		if (!r)
			goto retry;	/* gone meanwhile */
	}
	if (__atomic_load_n(&ctx->sig_dead, __ATOMIC_ACQUIRE))
		goto retry;
	memset(&m, 0, sizeof(m));
	m.msg.event = UFFD_EVENT_PAGEFAULT;
	m.msg.arg.pagefault.address = addr;
	m.msg.arg.pagefault.flags = write ? UFFD_PAGEFAULT_FLAG_WRITE : 0;
	if (!tid_cache)
		tid_cache = (uint32_t)gettid();
	m.msg.arg.pagefault.feat.ptid = tid_cache;
	m.t_read_ns = t0;
	luffd_count(&r->ctr, LUFFD_CTR(sigbus_faults), 1);
	*direct = *direct && !ctx->sig_sigreturn;
	if (*direct)
		luffd_count(&r->ctr, LUFFD_CTR(sigbus_direct), 1);
	if (luffd_dispatch_fault(NULL, r, &m) < 0) {
		*direct = false;
		ret = FAILED;
	}
	pthread_rwlock_unlock(&ctx->lock);
	return ret;

retry:	/* nothing served: a plain return, and the access runs again */
	*direct = false;
	pthread_rwlock_unlock(&ctx->lock);
	return SERVED;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr;
	uint64_t t0 = luffd_now_ns();
	/* asked once per signal; serve() narrows it per context */
	bool resumable = can_resume(uc, __builtin_return_address(0));
	int saved = errno;
	unsigned int i;

	/* a missing page in a SIGBUS-mode range reports BUS_ADRERR */
	if (si->si_code != BUS_ADRERR)
		goto not_ours;
	for (i = 0; i < MAX_SIG_CTX; i++) {
		struct uffd_ctx *ctx = __atomic_load_n(&sig_ctx[i],
						       __ATOMIC_ACQUIRE);
		bool direct = resumable;
		enum served done;

		if (!ctx)
			continue;
		__atomic_add_fetch(&ctx->sig_inflight, 1, __ATOMIC_ACQ_REL);
		/* re-check: detach clears the slot, then waits for inflight */
		if (__atomic_load_n(&sig_ctx[i], __ATOMIC_ACQUIRE) != ctx) {
			__atomic_sub_fetch(&ctx->sig_inflight, 1,
					   __ATOMIC_ACQ_REL);
			continue;
		}
		luffd_in_signal++;
		done = serve(ctx, addr, fault_was_write(uc), t0, &direct);
		luffd_in_signal--;
		__atomic_sub_fetch(&ctx->sig_inflight, 1, __ATOMIC_ACQ_REL);
		if (done == FAILED)
			break;
		if (done == SERVED) {
			errno = saved;
			if (direct)
				resume(uc);
			return;
		}
	}
	/*
	 * Not ours, or a page no pager could fill: the SIGBUS is the
	 * application's, with the kernel's own siginfo (BUS_ADRERR and the
	 * address).  Taking a failed page for another missing one would
	 * call the pager again for ever: without CONFIG_MEMORY_FAILURE a
	 * poisoned page raises the same BUS_ADRERR as a missing one.
	 */
not_ours:
	errno = saved;
	chain(sig, si, uc);
}

/* Register @ctx with the process-wide SIGBUS handler (at start). */
int luffd_sigbus_attach(struct uffd_ctx *ctx)
{
	int ret = 0, i, free_slot = -1;

	pthread_once(&atfork_once, register_atfork);
	pthread_mutex_lock(&sig_lock);
	for (i = 0; i < MAX_SIG_CTX; i++) {
		struct uffd_ctx *c = __atomic_load_n(&sig_ctx[i],
						     __ATOMIC_RELAXED);

		if (c == ctx) {
			free_slot = -2;
			break;
		}
		if (!c && free_slot == -1)
			free_slot = i;
	}
	if (free_slot == -1) {
		ret = luffd_fail(-ENOSPC, "at most %d SIGBUS contexts",
				 MAX_SIG_CTX);
		goto out;
	}
	if (!installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		/* NODEFER: a pager bug faulting inside must not hang */
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_action) < 0) {
			ret = luffd_fail(-errno, "sigaction: %s",
					 strerror(errno));
			goto out;
		}
		installed = true;
		direct_setup();
	}
	if (free_slot >= 0)
		__atomic_store_n(&sig_ctx[free_slot], ctx, __ATOMIC_RELEASE);
	__atomic_store_n(&ctx->sig_active, 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&sig_lock);
	return ret;
}

int luffd_sigbus_swap_chain(const struct sigaction *act,
			    struct sigaction *old)
{
	struct sigaction prev;
	int done = 0;

	pthread_mutex_lock(&sig_lock);
	if (installed) {
		prev = old_action;
		if (act)
			old_action = *act;
		if (old)
			*old = prev;
		done = 1;
	}
	pthread_mutex_unlock(&sig_lock);
	return done;
}

/*
 * Unregister @ctx for good (at destroy).  Handlers waiting for a start are
 * released; the caller then unregisters the ranges and waits for
 * sig_inflight to drop to zero before freeing.
 */
void luffd_sigbus_detach(struct uffd_ctx *ctx)
{
	bool any = false;
	int i;

	if (ctx->delivery != LIBUFFD_DELIVER_SIGBUS)
		return;
	__atomic_store_n(&ctx->sig_dead, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&sig_lock);
	for (i = 0; i < MAX_SIG_CTX; i++) {
		if (__atomic_load_n(&sig_ctx[i], __ATOMIC_RELAXED) == ctx)
			__atomic_store_n(&sig_ctx[i], NULL, __ATOMIC_RELEASE);
		if (__atomic_load_n(&sig_ctx[i], __ATOMIC_RELAXED))
			any = true;
	}
	/*
	 * Give SIGBUS back when no context needs it, unless the
	 * application installed a handler of its own after ours.
	 */
	if (!any && installed) {
		struct sigaction cur;

		if (sigaction(SIGBUS, NULL, &cur) == 0 &&
		    (cur.sa_flags & SA_SIGINFO) &&
		    cur.sa_sigaction == on_sigbus) {
			sigaction(SIGBUS, &old_action, NULL);
			installed = false;
		}
	}
	pthread_mutex_unlock(&sig_lock);
}
