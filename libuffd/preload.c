/* SPDX-License-Identifier: MIT */
/*
 * libuffd-preload.so: page an unmodified program's anonymous memory with
 * libuffd.  uffd-run sets LD_PRELOAD and the LIBUFFD_RUN_* variables; see
 * docs/uffd-run.md for the design, summed up here.
 *
 * What is caught, and how.  Every private anonymous mapping of at least
 * min_size bytes becomes a region (LIBUFFD_MEM_ADOPT) of one context per
 * process.  Direct mmap() calls are interposed.  glibc's malloc maps its
 * large chunks with an internal mmap that no interposer sees, so the
 * malloc family is interposed instead, the way glibc documents for
 * replacing malloc: requests of at least min_size get a mapping of their
 * own (page aligned; 2 MiB aligned from 2 MiB on, as the library's own
 * regions are), everything smaller goes to glibc's allocator through its
 * __libc_* entry points.  calloc() needs no memset: the mapping is fresh.
 * A table of those mappings (sorted, under a mutex; only page-aligned
 * pointers are looked up) tells free() and friends which are ours.
 *
 * Following the program.  munmap, mremap and MAP_FIXED over a region
 * unregister it first (cheaper than the UNMAP event round trip), realloc
 * of one of ours is mremap; partial unmaps and MADV_DONTNEED/MADV_FREE are
 * the kernel's events, which the library follows by itself.  fork: with
 * thread delivery the context has EVENT_FORK, so the child's inherited
 * regions stay paged (served by this process's handler); the child makes
 * a context of its own for what it allocates next.  exec: the environment
 * carries LD_PRELOAD and the settings into the new image.
 *
 * Never paging ourselves.  Everything the library allocates, in its own
 * threads (luffd_internal is set there) or in calls from here (we set it),
 * passes straight through, so a handler never faults on a region.
 *
 * Statistics.  Each process image appends one line of raw counters to
 * LIBUFFD_RUN_STATS at exit, at _exit, before exec and when it dies of a
 * catchable signal whose action was the default; uffd-run adds them up.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define EXPORT		__attribute__((visibility("default")))
#define HUGE_ALIGN	(2ul << 20)

/* glibc's allocator, reached without dlsym (which itself allocates) */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

/* ------------------------------------------------------------ settings */

enum { OFF = 0, ON = 1, BROKEN = -1 };

static struct {
	const char	*pager;
	size_t		min_size;
	int		delivery;
	const char	*stats_path;
	size_t		ps;
	pid_t		owner;		/* not a vfork child sharing our memory */
	uint64_t	image;		/* tells exec'd images of one pid apart */
} cfg;

static int state = OFF;			/* ON once configured */
static struct uffd_ctx *ctx;		/* made at the first region */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t nregions, nbytes;	/* this process image, atomic */

#define INSIDE()	(luffd_internal || state != ON)

/* ---------------------------------------------------- the mapping table */

#define ENT_FOREIGN	1u	/* a fork's parent registered it */

struct ent {
	uintptr_t		addr;
	size_t			len;
	struct uffd_region	*r;	/* NULL: mapped, not paged */
	unsigned int		flags;
};

static struct ent *tab;
static size_t ntab, captab;
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

/* glibc's syscall(): -1 and errno on failure, like the wrappers */
static void *raw_mmap(void *a, size_t len, int prot, int flags, int fd,
		      off_t off)
{
	return (void *)syscall(SYS_mmap, a, len, prot, flags, fd, off);
}

static int raw_munmap(void *a, size_t len)
{
	return (int)syscall(SYS_munmap, a, len);
}

/* First entry ending after @a.  Caller holds tab_lock. */
static size_t tab_find(uintptr_t a)
{
	size_t lo = 0, hi = ntab;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (tab[mid].addr + tab[mid].len <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int tab_insert(const struct ent *e)
{
	size_t i;

	pthread_mutex_lock(&tab_lock);
	if (ntab == captab) {
		size_t cap = captab ? captab * 2 : 256;
		struct ent *n = raw_mmap(NULL, cap * sizeof(*n),
					 PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (n == MAP_FAILED) {
			pthread_mutex_unlock(&tab_lock);
			return -ENOMEM;
		}
		if (tab) {
			memcpy(n, tab, ntab * sizeof(*n));
			raw_munmap(tab, captab * sizeof(*n));
		}
		tab = n;
		captab = cap;
	}
	i = tab_find(e->addr);
	memmove(&tab[i + 1], &tab[i], (ntab - i) * sizeof(*tab));
	tab[i] = *e;
	ntab++;
	pthread_mutex_unlock(&tab_lock);
	return 0;
}

/* Move tab[i] into *out.  Caller holds tab_lock. */
static void tab_remove(size_t i, struct ent *out)
{
	*out = tab[i];
	memmove(&tab[i], &tab[i + 1], (ntab - i - 1) * sizeof(*tab));
	ntab--;
}

/* Remove the entry starting exactly at @a into *out.  1 found, 0 not. */
static int tab_take(uintptr_t a, struct ent *out)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&tab_lock);
	i = tab_find(a);
	if (i < ntab && tab[i].addr == a) {
		tab_remove(i, out);
		found = 1;
	}
	pthread_mutex_unlock(&tab_lock);
	return found;
}

/* Copy of the entry starting exactly at @a.  1 found, 0 not. */
static int tab_get(uintptr_t a, struct ent *out)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&tab_lock);
	i = tab_find(a);
	if (i < ntab && tab[i].addr == a) {
		*out = tab[i];
		found = 1;
	}
	pthread_mutex_unlock(&tab_lock);
	return found;
}

/*
 * Take out one entry wholly inside [a, a+len) (1), or report in *part
 * that one overlaps it only partly.  Caller loops until 0.
 */
static int tab_take_inside(uintptr_t a, size_t len, struct ent *out,
			   bool *part)
{
	uintptr_t end = a + len;
	size_t i;

	pthread_mutex_lock(&tab_lock);
	for (i = tab_find(a); i < ntab && tab[i].addr < end; i++) {
		if (tab[i].addr >= a && tab[i].addr + tab[i].len <= end) {
			tab_remove(i, out);
			pthread_mutex_unlock(&tab_lock);
			return 1;
		}
		*part = true;
	}
	pthread_mutex_unlock(&tab_lock);
	return 0;
}

/* Take out one entry overlapping [a, a+len) whose region is gone. */
static int tab_take_gone(uintptr_t a, size_t len, struct ent *out)
{
	size_t i;

	pthread_mutex_lock(&tab_lock);
	for (i = tab_find(a); i < ntab && tab[i].addr < a + len; i++) {
		if (tab[i].r && uffd_region_gone(tab[i].r)) {
			tab_remove(i, out);
			pthread_mutex_unlock(&tab_lock);
			return 1;
		}
	}
	pthread_mutex_unlock(&tab_lock);
	return 0;
}

/* ---------------------------------------------------- talking to libuffd */

static const int death_sigs[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE,
	SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGXCPU,
	SIGXFSZ, SIGVTALRM, SIGPROF, SIGSYS,
};

/*
 * Library calls take its locks: block the signals whose handler (ours)
 * reads the statistics, so it never interrupts a lock holder.
 */
static void enter(sigset_t *old)
{
	sigset_t set;
	size_t i;

	sigemptyset(&set);
	for (i = 0; i < LUFFD_ARRAY_SIZE(death_sigs); i++)
		sigaddset(&set, death_sigs[i]);
	pthread_sigmask(SIG_BLOCK, &set, old);
	luffd_internal++;
}

static void leave(const sigset_t *old)
{
	luffd_internal--;
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void warn(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void warn(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "uffd-run: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

/* The context, made on first use.  Caller is enter()ed. */
static struct uffd_ctx *get_ctx(void)
{
	struct uffd_ctx_opts o = { .size = sizeof(o) };
	struct uffd_ctx *c;
	int ret;

	c = __atomic_load_n(&ctx, __ATOMIC_ACQUIRE);
	if (c || state != ON)
		return c;
	pthread_mutex_lock(&ctx_lock);
	if (ctx || state != ON)
		goto out;
	o.delivery = cfg.delivery;
	if (cfg.delivery == LIBUFFD_DELIVER_THREAD)
		o.features = LIBUFFD_FEATURE_EVENT_FORK;
	ret = uffd_ctx_create(&c, &o);
	if (ret == 0) {
		ret = uffd_ctx_start(c);
		if (ret < 0)
			uffd_ctx_destroy(c);
	}
	if (ret < 0) {
		warn("userfaultfd unusable in %d (%s): running unpaged",
		     (int)getpid(), uffd_last_error());
		__atomic_store_n(&state, BROKEN, __ATOMIC_RELEASE);
		goto out;
	}
	__atomic_store_n(&ctx, c, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&ctx_lock);
	return ctx;
}

/* Let go of a region (unregistering it), not of the mapping. */
static void untrack(const struct ent *e)
{
	sigset_t old;

	if (!e->r || (e->flags & ENT_FOREIGN))
		return;
	enter(&old);
	uffd_region_destroy(e->r);
	leave(&old);
}

/* Forget what [a, a+len) held before the kernel unmaps or replaces it. */
static void forget_before(uintptr_t a, size_t len, bool *part)
{
	struct ent e;

	while (tab_take_inside(a, len, &e, part))
		untrack(&e);
}

/* After it did: regions an UNMAP event took whole are dropped too. */
static void forget_after(uintptr_t a, size_t len)
{
	struct ent e;

	while (tab_take_gone(a, len, &e))
		untrack(&e);
}

/* Register [a, a+len) and remember it.  The mapping stays either way. */
static void track(void *a, size_t len)
{
	struct uffd_region_opts o = {
		.size = sizeof(o), .type = LIBUFFD_MEM_ADOPT,
		.addr = a, .len = len, .pager = cfg.pager,
	};
	struct ent e = { .addr = (uintptr_t)a, .len = len };
	struct uffd_ctx *c;
	bool part = false;
	sigset_t old;

	/* the kernel gave us this range: whatever we knew there is stale */
	forget_before((uintptr_t)a, len, &part);
	enter(&old);
	c = get_ctx();
	if (c && uffd_region_create(c, &o, &e.r) == 0) {
		__atomic_add_fetch(&nregions, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&nbytes, len, __ATOMIC_RELAXED);
	}
	if (tab_insert(&e) < 0 && e.r) {
		uffd_region_destroy(e.r);
		e.r = NULL;
	}
	leave(&old);
}

static bool eligible(size_t len, int flags, int fd)
{
	return len >= cfg.min_size && (flags & MAP_ANONYMOUS) &&
	       (flags & MAP_TYPE) == MAP_PRIVATE && fd == -1 &&
	       !(flags & (MAP_HUGETLB | MAP_STACK | MAP_GROWSDOWN));
}

/* ------------------------------------------------------- mmap & friends */

EXPORT void *mmap(void *a, size_t len, int prot, int flags, int fd,
		  off_t off)
{
	bool part = false;
	void *p;

	if (INSIDE())
		return raw_mmap(a, len, prot, flags, fd, off);
	/* what MAP_FIXED replaces; a call the kernel refuses changes nothing */
	if ((flags & MAP_FIXED) && len && !((uintptr_t)a & (cfg.ps - 1)))
		forget_before((uintptr_t)a, len, &part);
	p = raw_mmap(a, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		return p;	/* errno set by syscall() */
	if (part)
		forget_after((uintptr_t)a, len);
	if (eligible(len, flags, fd))
		track(p, (len + cfg.ps - 1) & ~(cfg.ps - 1));
	return p;
}

EXPORT void *mmap64(void *a, size_t len, int prot, int flags, int fd,
		    off_t off)
	__attribute__((alias("mmap")));

EXPORT int munmap(void *a, size_t len)
{
	bool part = false;
	int ret;

	if (INSIDE() || !len || ((uintptr_t)a & (cfg.ps - 1)))
		return (int)syscall(SYS_munmap, a, len);
	len = (len + cfg.ps - 1) & ~(cfg.ps - 1);
	forget_before((uintptr_t)a, len, &part);
	ret = (int)syscall(SYS_munmap, a, len);
	if (part)
		forget_after((uintptr_t)a, len);
	return ret;
}

/* mremap an entry of ours: unregistered while it moves, then again. */
static void *move_ent(struct ent *e, size_t nlen, int flags, void *to)
{
	long p;

	untrack(e);
	p = syscall(SYS_mremap, (void *)e->addr, e->len, nlen, flags, to);
	if (p != -1) {
		e->addr = (uintptr_t)p;
		e->len = nlen;
	}
	/* the old or the new range, re-registered (a fork's: left alone) */
	if (e->flags & ENT_FOREIGN)
		tab_insert(e);
	else if (e->len >= cfg.min_size)
		track((void *)e->addr, e->len);
	return (void *)p;
}

EXPORT void *mremap(void *old, size_t olen, size_t nlen, int flags, ...)
{
	void *to = NULL;
	struct ent e;
	va_list ap;
	long p;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		to = va_arg(ap, void *);
		va_end(ap);
	}
	if (!INSIDE() && nlen && !(flags & MREMAP_DONTUNMAP) &&
	    tab_get((uintptr_t)old, &e) &&
	    e.len == ((olen + cfg.ps - 1) & ~(cfg.ps - 1))) {
		nlen = (nlen + cfg.ps - 1) & ~(cfg.ps - 1);
		if (to) {
			bool part = false;

			forget_before((uintptr_t)to, nlen, &part);
		}
		if (tab_take((uintptr_t)old, &e))
			return move_ent(&e, nlen, flags, to);
	}
	p = syscall(SYS_mremap, old, olen, nlen, flags, to);
	return p == -1 ? MAP_FAILED : (void *)p;
}

/* --------------------------------------------------------- the allocator */

/* A mapping of @n bytes of ours, @align aligned, or NULL. */
static void *big_alloc(size_t n, size_t align)
{
	size_t len = (n + cfg.ps - 1) & ~(cfg.ps - 1), map;
	uintptr_t p, a;

	if (len < n)
		return NULL;
	if (len >= HUGE_ALIGN && align < HUGE_ALIGN)
		align = HUGE_ALIGN;
	if (align < cfg.ps)
		align = cfg.ps;
	map = len + align - cfg.ps;
	if (map < len)
		return NULL;
	p = (uintptr_t)raw_mmap(NULL, map, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == (uintptr_t)MAP_FAILED)
		return NULL;
	a = (p + align - 1) & ~(align - 1);
	if (a > p)
		raw_munmap((void *)p, a - p);
	if (a + len < p + map)
		raw_munmap((void *)(a + len), p + map - (a + len));
	track((void *)a, len);
	return (void *)a;
}

/* Only page-aligned pointers can be ours: glibc's sit 16 bytes in. */
static bool maybe_ours(const void *p)
{
	return p && !((uintptr_t)p & (cfg.ps - 1)) && state != OFF;
}

/* Ours? Then *e is its entry. */
static bool ours(const void *p, struct ent *e)
{
	return maybe_ours(p) && tab_get((uintptr_t)p, e);
}

/* Unregister and unmap an entry taken out of the table. */
static void release(const struct ent *e)
{
	untrack(e);
	raw_munmap((void *)e->addr, e->len);
}

static void big_free(void *p)
{
	struct ent e;

	if (tab_take((uintptr_t)p, &e))
		release(&e);
}

EXPORT void *malloc(size_t n)
{
	void *p;

	if (INSIDE() || n < cfg.min_size)
		return __libc_malloc(n);
	p = big_alloc(n, 0);
	if (!p)
		errno = ENOMEM;
	return p;
}

EXPORT void *calloc(size_t n, size_t m)
{
	size_t t;
	void *p;

	if (INSIDE() || __builtin_mul_overflow(n, m, &t) || t < cfg.min_size)
		return __libc_calloc(n, m);
	p = big_alloc(t, 0);	/* a fresh mapping reads as zeros */
	if (!p)
		errno = ENOMEM;
	return p;
}

EXPORT void free(void *p)
{
	struct ent e;

	/* one look-up: taken out of the table if it is there */
	if (!luffd_internal && maybe_ours(p) && tab_take((uintptr_t)p, &e))
		release(&e);
	else
		__libc_free(p);
}

static size_t libc_usable(void *p)
{
	static size_t (*real)(void *);

	if (!real)
		real = (size_t (*)(void *))dlsym(RTLD_NEXT,
						 "malloc_usable_size");
	return real && p ? real(p) : 0;
}

EXPORT void *realloc(void *p, size_t n)
{
	struct ent e;
	void *q;

	if (luffd_internal || !ours(p, &e)) {
		size_t have;

		if (INSIDE() || !p || n < cfg.min_size)
			return __libc_realloc(p, n);
		/* growing out of glibc's heap into a mapping of ours */
		have = libc_usable(p);
		q = big_alloc(n, 0);
		if (!q) {
			errno = ENOMEM;
			return NULL;
		}
		memcpy(q, p, have < n ? have : n);
		__libc_free(p);
		return q;
	}
	if (n == 0) {
		big_free(p);
		return NULL;
	}
	if (n >= cfg.min_size && state == ON) {
		size_t len = (n + cfg.ps - 1) & ~(cfg.ps - 1);

		if (len == e.len)
			return p;
		/*
		 * A fork's parent serves this one: mremap would grow a range
		 * its context does not know.  Copy into one of ours instead.
		 */
		if (e.flags & ENT_FOREIGN) {
			q = big_alloc(n, 0);
			if (!q) {
				errno = ENOMEM;
				return NULL;
			}
			memcpy(q, p, n < e.len ? n : e.len);
			big_free(p);
			return q;
		}
		if (!tab_take((uintptr_t)p, &e))
			return NULL;
		q = move_ent(&e, len, MREMAP_MAYMOVE, NULL);
		if (q == MAP_FAILED) {
			errno = ENOMEM;
			return NULL;
		}
		return q;
	}
	/* shrinking below min_size: back to glibc */
	q = __libc_malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, n < e.len ? n : e.len);
	big_free(p);
	return q;
}

EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
	size_t t;

	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, t);
}

static void *aligned(size_t align, size_t n)
{
	void *p;

	if (INSIDE() || n < cfg.min_size)
		return __libc_memalign(align, n);
	p = big_alloc(n, align);
	if (!p)
		errno = ENOMEM;
	return p;
}

static bool pow2(size_t a)
{
	return a && !(a & (a - 1));
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (!pow2(align) || align % sizeof(void *))
		return EINVAL;
	p = aligned(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (!pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return aligned(align, n);
}

EXPORT void *memalign(size_t align, size_t n)
{
	return aligned(align, n);
}

EXPORT void *valloc(size_t n)
{
	return aligned(cfg.ps ? cfg.ps : 4096, n);
}

EXPORT void *pvalloc(size_t n)
{
	size_t ps = cfg.ps ? cfg.ps : 4096;

	return aligned(ps, n ? (n + ps - 1) & ~(ps - 1) : ps);
}

EXPORT size_t malloc_usable_size(void *p)
{
	struct ent e;

	if (!luffd_internal && ours(p, &e))
		return e.len;
	return libc_usable(p);
}

/* --------------------------------------------------------- statistics */

/*
 * One line per process image, cumulative: uffd-run keeps the last line
 * of each (pid, image) and adds them up.  Async-signal-safe enough: the
 * counters are read without a lock the interrupted thread could hold
 * (signals are blocked around our library calls).
 */
static void write_stats(void)
{
	struct uffd_stats st, sum;
	uint64_t *v = (uint64_t *)&sum;
	struct uffd_ctx *c = __atomic_load_n(&ctx, __ATOMIC_ACQUIRE);
	char line[2048];
	size_t i, k, nf = sizeof(sum) / sizeof(uint64_t);
	int fd, n;

	if (!cfg.stats_path || getpid() != cfg.owner)
		return;
	memset(&sum, 0, sizeof(sum));
	if (c && uffd_ctx_stats(c, &sum, sizeof(sum)) == 0) {
		for (k = 0; k < uffd_ctx_nchildren(c); k++) {
			const uint64_t *cv = (const uint64_t *)&st;

			if (uffd_ctx_stats(uffd_ctx_child(c, k), &st,
					   sizeof(st)))
				continue;
			for (i = 0; i < nf; i++)
				v[i] += cv[i];
		}
	}
	n = snprintf(line, sizeof(line), "L1 %d %llu %llu %llu %zu",
		     (int)getpid(), (unsigned long long)cfg.image,
		     (unsigned long long)__atomic_load_n(&nregions,
							 __ATOMIC_RELAXED),
		     (unsigned long long)__atomic_load_n(&nbytes,
							 __ATOMIC_RELAXED),
		     nf);
	for (i = 0; i < nf && n < (int)sizeof(line) - 24; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %llu",
			      (unsigned long long)v[i]);
	line[n++] = '\n';
	fd = open(cfg.stats_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) < 0)
		n = 0;
	close(fd);
}

static int (*real_sigaction)(int, const struct sigaction *,
			     struct sigaction *);

static void on_death(int sig)
{
	struct sigaction dfl;

	write_stats();
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
	raise(sig);	/* delivered when this handler returns */
}

static bool watched(int sig)
{
	size_t i;

	if (!cfg.stats_path || !real_sigaction)
		return false;
	for (i = 0; i < LUFFD_ARRAY_SIZE(death_sigs); i++)
		if (death_sigs[i] == sig)
			return true;
	return false;
}

static void death_action(struct sigaction *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sa_handler = on_death;
	sigemptyset(&sa->sa_mask);
	sa->sa_flags = SA_RESTART;
}

static bool is_death(const struct sigaction *sa)
{
	return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == on_death;
}

/*
 * The program sees the actions it set: ours stands in for SIG_DFL on the
 * signals that kill, and in SIGBUS mode the library's SIGBUS handler
 * stays in front, chaining to the program's.
 */
EXPORT int sigaction(int sig, const struct sigaction *act,
		     struct sigaction *old)
{
	struct sigaction mine, prev;
	int ret;

	if (!real_sigaction)
		real_sigaction = (int (*)(int, const struct sigaction *,
					  struct sigaction *))
			dlsym(RTLD_NEXT, "sigaction");
	if (luffd_internal || state == OFF)
		return real_sigaction(sig, act, old);
	if (sig == SIGBUS && cfg.delivery == LIBUFFD_DELIVER_SIGBUS) {
		if (act && !(act->sa_flags & SA_SIGINFO) &&
		    act->sa_handler == SIG_DFL && watched(sig)) {
			death_action(&mine);
			act = &mine;
		}
		if (luffd_sigbus_swap_chain(act, &prev)) {
			if (old) {
				*old = prev;
				if (is_death(old))
					old->sa_handler = SIG_DFL;
			}
			return 0;
		}
	}
	if (!watched(sig))
		return real_sigaction(sig, act, old);
	if (act && !(act->sa_flags & SA_SIGINFO) &&
	    act->sa_handler == SIG_DFL) {
		death_action(&mine);
		act = &mine;
	}
	ret = real_sigaction(sig, act, old);
	if (ret == 0 && old && is_death(old)) {
		old->sa_handler = SIG_DFL;
		old->sa_flags = 0;
	}
	return ret;
}

EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

EXPORT void _exit(int status)
{
	write_stats();
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

EXPORT void _Exit(int status)
	__attribute__((alias("_exit")));

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	write_stats();
	return (int)syscall(SYS_execve, path, argv, envp);
}

#define REAL(name)							\
	static __typeof__(name) *real_##name;				\
	if (!real_##name)						\
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* glibc's exec family calls its internal execve: each needs a wrapper */
EXPORT int execv(const char *path, char *const argv[])
{
	REAL(execv);
	write_stats();
	return real_execv(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	REAL(execvp);
	write_stats();
	return real_execvp(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	REAL(execvpe);
	write_stats();
	return real_execvpe(file, argv, envp);
}

/* ----------------------------------- kernel-side access in SIGBUS mode */

/*
 * In SIGBUS mode the kernel answers its own accesses to a missing page
 * (read(2) into it, O_DIRECT) with EFAULT instead of a signal.  These
 * wrappers then touch the paged pages of the buffer from user space,
 * which serves them, and try once more.  Calls glibc makes internally
 * (fread's large reads among them) are not seen: see docs/uffd-run.md.
 */
static bool touch_paged(const void *buf, size_t n)
{
	uintptr_t a = (uintptr_t)buf, end = a + n, p;
	bool any = false;
	size_t i;

	if (cfg.delivery != LIBUFFD_DELIVER_SIGBUS || state != ON || !n ||
	    end < a)
		return false;
	while (a < end) {
		uintptr_t s, e;

		pthread_mutex_lock(&tab_lock);
		i = tab_find(a);
		if (i >= ntab || tab[i].addr >= end || !tab[i].r) {
			pthread_mutex_unlock(&tab_lock);
			break;
		}
		s = tab[i].addr > a ? tab[i].addr : a;
		e = tab[i].addr + tab[i].len < end ?
		    tab[i].addr + tab[i].len : end;
		pthread_mutex_unlock(&tab_lock);
		for (p = s & ~(cfg.ps - 1); p < e; p += cfg.ps)
			(void)*(volatile const char *)p;
		any = true;
		a = e;
	}
	return any;
}

static bool touch_iov(const struct iovec *iov, int n)
{
	bool any = false;
	int i;

	for (i = 0; i < n; i++)
		any |= touch_paged(iov[i].iov_base, iov[i].iov_len);
	return any;
}

#define RETRY(call, touch)						\
	do {								\
		ssize_t r_ = call;					\
		if (r_ < 0 && errno == EFAULT && (touch))		\
			r_ = call;					\
		return r_;						\
	} while (0)

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	REAL(read);
	RETRY(real_read(fd, buf, n), touch_paged(buf, n));
}

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	REAL(pread);
	RETRY(real_pread(fd, buf, n, off), touch_paged(buf, n));
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
	__attribute__((alias("pread")));

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	REAL(readv);
	RETRY(real_readv(fd, iov, n), touch_iov(iov, n));
}

EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	REAL(preadv);
	RETRY(real_preadv(fd, iov, n, off), touch_iov(iov, n));
}

EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
	__attribute__((alias("preadv")));

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	REAL(recv);
	RETRY(real_recv(fd, buf, n, flags), touch_paged(buf, n));
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			struct sockaddr *sa, socklen_t *salen)
{
	REAL(recvfrom);
	RETRY(real_recvfrom(fd, buf, n, flags, sa, salen),
	      touch_paged(buf, n));
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	REAL(recvmsg);
	RETRY(real_recvmsg(fd, m, flags),
	      touch_iov(m->msg_iov, (int)m->msg_iovlen));
}

EXPORT size_t fread(void *buf, size_t size, size_t n, FILE *f)
{
	size_t t;

	REAL(fread);
	/* no EFAULT to retry on: touch first (pages read stay zero) */
	if (!__builtin_mul_overflow(size, n, &t))
		touch_paged(buf, t);
	return real_fread(buf, size, n, f);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif

EXPORT int madvise(void *a, size_t len, int advice)
{
	int ret = (int)syscall(SYS_madvise, a, len, advice);

	if (ret < 0 && errno == EFAULT &&
	    (advice == MADV_POPULATE_READ || advice == MADV_POPULATE_WRITE) &&
	    touch_paged(a, len))
		ret = (int)syscall(SYS_madvise, a, len, advice);
	return ret;
}

/* ------------------------------------------------------------ set-up */

static void atfork_prepare(void)
{
	pthread_mutex_lock(&ctx_lock);
	pthread_mutex_lock(&tab_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&tab_lock);
	pthread_mutex_unlock(&ctx_lock);
}

/*
 * The child's inherited regions belong to the parent's context (served
 * through EVENT_FORK, or unregistered by the kernel without it); what the
 * child maps next gets a context of its own.
 */
static void atfork_child(void)
{
	size_t i;

	for (i = 0; i < ntab; i++)
		tab[i].flags |= ENT_FOREIGN;
	ctx = NULL;
	nregions = nbytes = 0;
	cfg.owner = getpid();
	pthread_mutex_init(&tab_lock, NULL);
	pthread_mutex_init(&ctx_lock, NULL);
}

static void at_exit(void)
{
	write_stats();
}

__attribute__((constructor))
static void preload_init(void)
{
	const char *s = getenv("LIBUFFD_RUN_PAGER");
	struct timespec ts;
	size_t i;

	cfg.ps = (size_t)sysconf(_SC_PAGESIZE);
	if (!s)
		return;		/* loaded without uffd-run: stay out */
	cfg.pager = s;
	s = getenv("LIBUFFD_RUN_MIN_SIZE");
	cfg.min_size = s ? strtoull(s, NULL, 10) : 1u << 20;
	if (cfg.min_size < cfg.ps)
		cfg.min_size = cfg.ps;
	s = getenv("LIBUFFD_RUN_DELIVERY");
	cfg.delivery = s && !strcmp(s, "sigbus") ? LIBUFFD_DELIVER_SIGBUS :
						   LIBUFFD_DELIVER_THREAD;
	cfg.stats_path = getenv("LIBUFFD_RUN_STATS");
	cfg.owner = getpid();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	cfg.image = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	real_sigaction = (int (*)(int, const struct sigaction *,
				  struct sigaction *))
		dlsym(RTLD_NEXT, "sigaction");
	if (cfg.stats_path && real_sigaction) {
		atexit(at_exit);
		for (i = 0; i < LUFFD_ARRAY_SIZE(death_sigs); i++) {
			struct sigaction cur, sa;

			if (real_sigaction(death_sigs[i], NULL, &cur) ||
			    (cur.sa_flags & SA_SIGINFO) ||
			    cur.sa_handler != SIG_DFL)
				continue;
			death_action(&sa);
			real_sigaction(death_sigs[i], &sa, NULL);
		}
	}
	__atomic_store_n(&state, ON, __ATOMIC_RELEASE);
}
