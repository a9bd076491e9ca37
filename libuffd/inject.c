/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for tests (configure --enable-fault-injection; without
 * it this file compiles to nothing and inject.h's wrappers are the plain
 * calls).
 *
 * Rules come from LIBUFFD_INJECT, read once when the library loads, or
 * from luffd_inject_set() (tests): a comma-separated list of
 *
 *	SITE=ERRNO@RATE	fail that fraction of the site's calls (0 to 1)
 *	SITE=ERRNO#N	fail the site's Nth call only (1 is the first)
 *	SITE=off	no rule for the site
 *	seed=N		the seed of the draws (default 1)
 *
 * SITE is copy, zeropage, move (the fill ioctls), read (read() of the
 * userfaultfd), mmap, thread (pthread_create), uring_submit, uring_cqe
 * (a completion's res becomes -ERRNO) or uring_wait (a wait for a
 * completion fails, the request still in flight).  ERRNO is a name (EAGAIN, ENOMEM,
 * EFAULT, EINTR, EIO, EBUSY, ENOSPC) or a number.  For example:
 *
 *	LIBUFFD_INJECT="copy=EAGAIN@0.05,read=EINTR@0.2,uring_cqe=EIO@0.1,seed=42"
 *
 * Reproducible: the Nth call of a site fails or not as a hash of the
 * seed, the site and N decides, never the clock; the call numbers are
 * atomic counters.  Which thread makes the Nth call can differ between
 * runs where several threads call the same site.  Everything here is
 * lock-free and allocates nothing after the parse: a SIGBUS handler
 * calls it.
 */
#include "internal.h"

#ifdef LUFFD_FAULT_INJECT

#include <stdlib.h>
#include <string.h>

struct rule {
	int		err;		/* 0: no rule */
	uint64_t	threshold;	/* of 2^32: fail when draw < it */
	uint64_t	nth;		/* or fail only call nth (1-based) */
	uint64_t	calls;
	uint64_t	injected;
};

static struct rule rules[LUFFD_INJ_NSITES];
static uint64_t seed = 1;

static const char *const site_names[LUFFD_INJ_NSITES] = {
	[LUFFD_INJ_COPY] = "copy",
	[LUFFD_INJ_ZEROPAGE] = "zeropage",
	[LUFFD_INJ_MOVE] = "move",
	[LUFFD_INJ_READ] = "read",
	[LUFFD_INJ_MMAP] = "mmap",
	[LUFFD_INJ_THREAD] = "thread",
	[LUFFD_INJ_URING_SUBMIT] = "uring_submit",
	[LUFFD_INJ_URING_CQE] = "uring_cqe",
	[LUFFD_INJ_URING_WAIT] = "uring_wait",
};

static const struct {
	const char *name;
	int err;
} errnos[] = {
	{ "EAGAIN", EAGAIN }, { "ENOMEM", ENOMEM }, { "EFAULT", EFAULT },
	{ "EINTR", EINTR }, { "EIO", EIO }, { "EBUSY", EBUSY },
	{ "ENOSPC", ENOSPC },
};

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash(enum luffd_inject_site site, uint64_t n)
{
	return mix(__atomic_load_n(&seed, __ATOMIC_RELAXED) ^
		   mix(((uint64_t)site << 56) ^ n));
}

LUFFD_INJ_API int luffd_inject(enum luffd_inject_site site)
{
	struct rule *r = &rules[site];
	int err = __atomic_load_n(&r->err, __ATOMIC_ACQUIRE);
	uint64_t n, nth;
	bool hit;

	n = __atomic_add_fetch(&r->calls, 1, __ATOMIC_RELAXED);
	if (!err)
		return 0;
	nth = __atomic_load_n(&r->nth, __ATOMIC_RELAXED);
	if (nth)
		hit = n == nth;
	else
		hit = (hash(site, n) >> 32) <
		      __atomic_load_n(&r->threshold, __ATOMIC_RELAXED);
	if (!hit)
		return 0;
	__atomic_add_fetch(&r->injected, 1, __ATOMIC_RELAXED);
	return err;
}

uint64_t luffd_inject_draw(enum luffd_inject_site site)
{
	static uint64_t draws;

	return hash(site, __atomic_add_fetch(&draws, 1, __ATOMIC_RELAXED) |
			  (1ull << 55));
}

int luffd_fill_ioctl_inject(int err, int fd, unsigned long req, void *arg,
			    __u64 *len, __s64 *out, uint64_t page_size)
{
	uint64_t want = *len, part;
	int ret;

	/*
	 * A fill cut short (the kernel stops at a pending signal or event
	 * after some pages) on every other EAGAIN of a several-page fill:
	 * its first half done for real, and reported as such.
	 */
	if (err == EAGAIN && want > page_size &&
	    (luffd_inject_draw(LUFFD_INJ_COPY) & 1)) {
		part = (want / 2) & ~(page_size - 1);
		*len = part;
		ret = ioctl(fd, req, arg);
		*len = want;
		if (ret)
			return ret;	/* its own error, as it would be */
		*out = (__s64)part;
		errno = EAGAIN;
		return -1;
	}
	*out = -err;
	errno = err;
	return -1;
}

static int parse_errno(const char *s, size_t n)
{
	char buf[16];
	char *end;
	long v;
	size_t i;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (i = 0; i < LUFFD_ARRAY_SIZE(errnos); i++)
		if (!strcmp(buf, errnos[i].name))
			return errnos[i].err;
	v = strtol(buf, &end, 10);
	if (*end || v <= 0 || v > 4095)
		return -1;
	return (int)v;
}

/* Parse @spec into @out and @seed_out; 0 or -EINVAL. */
static int parse(const char *spec, struct rule *out, uint64_t *seed_out)
{
	const char *p = spec;

	while (p && *p) {
		const char *end = strchr(p, ','), *eq, *val, *sep;
		size_t klen, vlen;
		char *num_end;
		int site = -1, i, err;

		if (!end)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (!eq)
			return -EINVAL;
		klen = (size_t)(eq - p);
		val = eq + 1;
		vlen = (size_t)(end - val);
		if (klen == 4 && !strncmp(p, "seed", 4)) {
			*seed_out = strtoull(val, &num_end, 0);
			if (num_end != end || vlen == 0)
				return -EINVAL;
			goto next;
		}
		for (i = 0; i < LUFFD_INJ_NSITES; i++)
			if (strlen(site_names[i]) == klen &&
			    !strncmp(p, site_names[i], klen))
				site = i;
		if (site < 0)
			return -EINVAL;
		memset(&out[site], 0, sizeof(out[site]));
		if (vlen == 3 && !strncmp(val, "off", 3))
			goto next;
		sep = val;
		while (sep < end && *sep != '@' && *sep != '#')
			sep++;
		if (sep == end)
			return -EINVAL;
		err = parse_errno(val, (size_t)(sep - val));
		if (err < 0)
			return -EINVAL;
		if (*sep == '@') {
			double rate = strtod(sep + 1, &num_end);

			if (num_end != end || sep + 1 == end || !(rate >= 0) ||
			    rate > 1)
				return -EINVAL;
			out[site].threshold = (uint64_t)(rate * 4294967296.0);
		} else {
			out[site].nth = strtoull(sep + 1, &num_end, 10);
			if (num_end != end || !out[site].nth)
				return -EINVAL;
		}
		out[site].err = err;
next:
		p = *end ? end + 1 : end;
	}
	return 0;
}

LUFFD_INJ_API int luffd_inject_set(const char *spec)
{
	struct rule next[LUFFD_INJ_NSITES];
	uint64_t s = 1;
	int i;

	memset(next, 0, sizeof(next));
	if (parse(spec, next, &s) < 0)
		return -EINVAL;
	for (i = 0; i < LUFFD_INJ_NSITES; i++)
		__atomic_store_n(&rules[i].err, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&seed, s, __ATOMIC_RELAXED);
	for (i = 0; i < LUFFD_INJ_NSITES; i++) {
		__atomic_store_n(&rules[i].threshold, next[i].threshold,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&rules[i].nth, next[i].nth, __ATOMIC_RELAXED);
		__atomic_store_n(&rules[i].calls, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&rules[i].injected, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&rules[i].err, next[i].err, __ATOMIC_RELEASE);
	}
	return 0;
}

LUFFD_INJ_API uint64_t luffd_inject_count(enum luffd_inject_site site)
{
	if ((unsigned int)site >= LUFFD_INJ_NSITES)
		return 0;
	return __atomic_load_n(&rules[site].injected, __ATOMIC_RELAXED);
}

LUFFD_INJ_API uint64_t luffd_inject_calls(enum luffd_inject_site site)
{
	if ((unsigned int)site >= LUFFD_INJ_NSITES)
		return 0;
	return __atomic_load_n(&rules[site].calls, __ATOMIC_RELAXED);
}

/* The environment's rules, before any library call can use them. */
__attribute__((constructor)) static void inject_from_env(void)
{
	const char *spec = getenv("LIBUFFD_INJECT");

	/* a bad spec injects nothing: the library never prints */
	if (spec)
		luffd_inject_set(spec);
}

#else
/* ISO C wants something in a translation unit */
typedef int luffd_inject_unused;
#endif /* LUFFD_FAULT_INJECT */
