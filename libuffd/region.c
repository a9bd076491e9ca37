/* SPDX-License-Identifier: MIT */
/*
 * Regions: mapping, registration, binding a pager, and the present map.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB	0x0004U
#endif

#define HUGE_2M		(2ull << 20)

/* ------------------------------------------------------- present map */

static void bitmap_range(const struct uffd_region *r, uint64_t *map,
			 uint64_t off, uint64_t len, bool set)
{
	uint64_t p = off >> r->page_shift;
	uint64_t end = (off + len) >> r->page_shift;

	while (p < end) {
		unsigned int bit = (unsigned int)(p & 63);
		uint64_t n = LUFFD_MIN(end - p, 64 - (uint64_t)bit);
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;

		if (set)
			__atomic_fetch_or(&map[p >> 6], mask, __ATOMIC_RELAXED);
		else
			__atomic_fetch_and(&map[p >> 6], ~mask,
					   __ATOMIC_RELAXED);
		p += n;
	}
}

void luffd_present_set(struct uffd_region *r, uint64_t off, uint64_t len)
{
	bitmap_range(r, r->present, off, len, true);
}

void luffd_present_clear(struct uffd_region *r, uint64_t off, uint64_t len)
{
	bitmap_range(r, r->present, off, len, false);
}

void luffd_unmapped_set(struct uffd_region *r, uint64_t off, uint64_t len)
{
	bitmap_range(r, r->unmapped, off, len, true);
}

bool luffd_all_unmapped(const struct uffd_region *r)
{
	uint64_t pages = r->len >> r->page_shift, i;

	for (i = 0; i < pages / 64; i++)
		if (~__atomic_load_n(&r->unmapped[i], __ATOMIC_RELAXED))
			return false;
	if (pages % 64 &&
	    (~__atomic_load_n(&r->unmapped[i], __ATOMIC_RELAXED) &
	     ((1ull << (pages % 64)) - 1)))
		return false;
	return true;
}

static bool bit_test(const struct uffd_region *r, const uint64_t *map,
		     uint64_t off)
{
	uint64_t p = off >> r->page_shift;

	return (__atomic_load_n(&map[p >> 6], __ATOMIC_RELAXED) >>
		(p & 63)) & 1;
}

/*
 * Call @fn on each run of pages still mapped (not removed by a partial
 * munmap), so that nothing mapped since into a hole is touched.
 */
static int for_each_mapped_run(struct uffd_region *r,
			       int (*fn)(struct uffd_region *, uint64_t,
					 uint64_t))
{
	uint64_t pos = 0, run;
	int ret = 0, err;

	if (!__atomic_load_n(&r->partly_unmapped, __ATOMIC_ACQUIRE))
		return fn(r, 0, r->len);
	while (pos < r->len) {
		if (bit_test(r, r->unmapped, pos)) {
			pos += r->page_size;
			continue;
		}
		for (run = pos; run < r->len &&
		     !bit_test(r, r->unmapped, run); run += r->page_size)
			;
		err = fn(r, pos, run - pos);
		if (err && !ret)
			ret = err;
		pos = run;
	}
	return ret;
}

bool luffd_present_test(const struct uffd_region *r, uint64_t off)
{
	return bit_test(r, r->present, off);
}

void luffd_failed_set(struct uffd_region *r, uint64_t off, uint64_t len)
{
	__atomic_store_n(&r->any_failed, 1, __ATOMIC_RELEASE);
	bitmap_range(r, r->failed, off, len, true);
}

void luffd_failed_clear(struct uffd_region *r, uint64_t off, uint64_t len)
{
	if (__atomic_load_n(&r->any_failed, __ATOMIC_ACQUIRE))
		bitmap_range(r, r->failed, off, len, false);
}

bool luffd_failed_test(const struct uffd_region *r, uint64_t off)
{
	return __atomic_load_n(&r->any_failed, __ATOMIC_ACQUIRE) &&
	       bit_test(r, r->failed, off);
}

/* ------------------------------------------------------- mapping */

static int map_memory(struct uffd_region *r, size_t len)
{
	void *p;

	switch (r->type) {
	case LIBUFFD_MEM_ANON: {
		/* 2 MiB aligned when big enough: extents match THP's */
		size_t extra = len >= HUGE_2M ? HUGE_2M : 0;
		uint64_t a, head, tail;

		p = luffd_mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return luffd_fail(-errno, "mmap: %s", strerror(errno));
		a = ((uint64_t)(uintptr_t)p + extra - 1) & ~(uint64_t)(extra ? extra - 1 : 0);
		if (!extra)
			a = (uint64_t)(uintptr_t)p;
		head = a - (uint64_t)(uintptr_t)p;
		tail = extra - head;
		if (head)
			munmap(p, head);
		if (tail)
			munmap((char *)(uintptr_t)a + len, tail);
		r->map_addr = (void *)(uintptr_t)a;
		break;
	}
	case LIBUFFD_MEM_MEMFD:
	case LIBUFFD_MEM_HUGETLB: {
		bool huge = r->type == LIBUFFD_MEM_HUGETLB;
		int fd = memfd_create(huge ? "libuffd-hugetlb" : "libuffd",
				      MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));

		if (fd < 0)
			return luffd_fail(-errno, "memfd_create: %s",
					  strerror(errno));
		if (ftruncate(fd, (off_t)len) < 0) {
			int err = errno;

			close(fd);
			return luffd_fail(-err, "ftruncate: %s", strerror(err));
		}
		p = luffd_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, 0);
		if (p == MAP_FAILED) {
			int err = errno;

			close(fd);
			if (huge && err == ENOMEM)
				return luffd_fail(-ENOMEM,
					"hugetlb mmap: no huge pages free (vm.nr_hugepages)");
			return luffd_fail(-err, "mmap: %s", strerror(err));
		}
		r->memfd = fd;
		r->map_addr = p;
		break;
	}
	default:
		return luffd_fail(-EINVAL, "bad memory type %d", (int)r->type);
	}
	r->map_len = len;
	r->base = (uint64_t)(uintptr_t)r->map_addr;
	return 0;
}

static int unmap_run(struct uffd_region *r, uint64_t off, uint64_t len)
{
	return munmap((char *)(uintptr_t)luffd_base(r) + off, len) ? -errno : 0;
}

static void unmap_memory(struct uffd_region *r)
{
	/* after a partial munmap, the holes may hold someone else's maps */
	if (r->map_len && !__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
		for_each_mapped_run(r, unmap_run);
	r->map_len = 0;
	if (r->memfd >= 0)
		close(r->memfd);
	r->memfd = -1;
}

/* ------------------------------------------------------- pager binding */

/*
 * The kernel registers a range with holes in it; an adopted range must be
 * one mapping (or several back to back), so check.  mincore() fails with
 * ENOMEM on any unmapped page.
 */
static int check_mapped(uint64_t base, uint64_t len)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char vec[4096];
	uint64_t off, n;

	for (off = 0; off < len; off += n) {
		n = LUFFD_MIN(len - off, (uint64_t)sizeof(vec) * ps);
		if (mincore((void *)(uintptr_t)(base + off), n, vec) < 0) {
			if (errno == ENOMEM)
				return luffd_fail(-EINVAL,
					"ADOPT: %#llx+%#llx is not all mapped",
					(unsigned long long)base,
					(unsigned long long)len);
			return luffd_fail(-errno, "mincore: %s",
					  strerror(errno));
		}
	}
	return 0;
}

/*
 * The page size of the mapping at @addr (KernelPageSize in smaps): an
 * adopted hugetlb mapping faults and fills in huge pages.  Returns the
 * size in bytes, or 0 when it cannot be told.
 */
static uint64_t vma_page_size(uint64_t addr)
{
	char line[256];
	unsigned long long lo, hi, kib;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "re");
	uint64_t ps = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = addr >= lo && addr < hi;
			continue;
		}
		if (in && sscanf(line, "KernelPageSize: %llu kB", &kib) == 1) {
			ps = (uint64_t)kib << 10;
			break;
		}
	}
	fclose(f);
	return ps;
}

static int bind_pager(struct uffd_region *r, const struct uffd_region_opts *o,
		      struct uffd_args *args)
{
	const struct uffd_pager_ops *ops = o->ops;
	const char *s;
	int ret;

	if (ops && o->pager)
		return luffd_fail(-EINVAL, "give either .pager or .ops");
	if (ops) {
		if (ops->version < 1 || ops->version > LIBUFFD_PAGER_OPS_VERSION)
			return luffd_fail(-EINVAL, "pager ops version %u unknown",
					  ops->version);
		if (!ops->name || !ops->init || !ops->fault)
			return luffd_fail(-EINVAL,
					  "pager ops need name, init and fault");
		ret = luffd_args_parse(o->args, args);
		if (ret < 0)
			return ret;
	} else {
		ret = luffd_spec_parse(o->pager ? o->pager : "zero", args);
		if (ret < 0)
			return ret;
		ops = uffd_pager_find(args->name);
		if (!ops)
			return luffd_fail(-EINVAL, "unknown pager \"%s\"",
					  args->name);
	}
	r->ops = ops;
	r->pager_flags = ops->version >= 2 ? ops->flags : 0;
	snprintf(r->pager_name, sizeof(r->pager_name), "%s", ops->name);
	/* kept so a forked child's copy gets the same pager */
	if (o->ops) {
		s = o->args;
	} else {
		s = strchr(o->pager ? o->pager : "zero", ':');
		s = s ? s + 1 : NULL;
	}
	if (s && !(r->args_str = strdup(s)))
		return luffd_fail(-ENOMEM, "out of memory");
	return 0;
}

/*
 * The registration modes: what the caller asked for, against what the
 * pager handles, the delivery mode, the memory type and the kernel.
 */
static int check_modes(struct uffd_region *r, const struct uffd_region_opts *o)
{
	unsigned int m = o->modes ? o->modes :
			 (r->pager_flags & LIBUFFD_PAGER_NEEDS_WP) ?
			 LIBUFFD_REG_MISSING | LIBUFFD_REG_WP : LIBUFFD_REG_MISSING;
	uint64_t feat = r->ctx->features;
	bool shared = o->type == LIBUFFD_MEM_MEMFD ||
		      o->type == LIBUFFD_MEM_HUGETLB;

	if (m & ~(LIBUFFD_REG_MISSING | LIBUFFD_REG_WP | LIBUFFD_REG_MINOR))
		return luffd_fail(-EINVAL, "modes %#x: unknown bits", m);
	r->modes = m;
	if (m == LIBUFFD_REG_MISSING)
		return 0;
	if (r->ctx->delivery == LIBUFFD_DELIVER_SIGBUS)
		return luffd_fail(-ENOTSUP, "WP and MINOR need thread delivery");
	if ((m & LIBUFFD_REG_WP) && !(r->pager_flags & LIBUFFD_PAGER_WP))
		return luffd_fail(-EINVAL, "pager %s does not handle WP faults",
				  r->pager_name);
	if ((m & LIBUFFD_REG_MINOR) &&
	    !(r->pager_flags & LIBUFFD_PAGER_MINOR))
		return luffd_fail(-EINVAL, "pager %s does not handle minor "
				  "faults", r->pager_name);
	if ((m & LIBUFFD_REG_MINOR) && !shared &&
	    o->type != LIBUFFD_MEM_ADOPT && o->type != LIBUFFD_MEM_REMOTE)
		return luffd_fail(-EINVAL, "MINOR: memfd and hugetlb only");
	if ((m & LIBUFFD_REG_MINOR) && o->type == LIBUFFD_MEM_HUGETLB &&
	    !(feat & UFFD_FEATURE_MINOR_HUGETLBFS))
		return luffd_fail(-EOPNOTSUPP, "kernel lacks MINOR_HUGETLBFS");
	if ((m & LIBUFFD_REG_MINOR) && o->type == LIBUFFD_MEM_MEMFD &&
	    !(feat & UFFD_FEATURE_MINOR_SHMEM))
		return luffd_fail(-EOPNOTSUPP, "kernel lacks MINOR_SHMEM");
	if ((m & LIBUFFD_REG_WP) && shared &&
	    !(feat & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		return luffd_fail(-EOPNOTSUPP,
				  "kernel lacks WP_HUGETLBFS_SHMEM (5.19)");
	return 0;
}

static int check_opts(struct uffd_ctx *ctx, const struct uffd_region_opts *o,
		      size_t *page_size)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);

	if (!o || o->size == 0 || o->size > sizeof(*o))
		return luffd_fail(-EINVAL, "uffd_region_opts: NULL or bad size");
	switch (o->type) {
	case LIBUFFD_MEM_ANON:
	case LIBUFFD_MEM_MEMFD:
		if (o->addr)
			return luffd_fail(-EINVAL, ".addr is for ADOPT only");
		break;
	case LIBUFFD_MEM_HUGETLB:
		if (o->addr)
			return luffd_fail(-EINVAL, ".addr is for ADOPT only");
		ps = HUGE_2M;
		break;
	case LIBUFFD_MEM_ADOPT:
		if (!o->addr || !LUFFD_ALIGNED((uintptr_t)o->addr, ps))
			return luffd_fail(-EINVAL,
					  "ADOPT: address %p not page aligned",
					  o->addr);
		break;
	case LIBUFFD_MEM_REMOTE:
		if (o->size >= offsetof(struct uffd_region_opts, page_size) +
			       sizeof(o->page_size) && o->page_size)
			ps = o->page_size;
		if (ps & (ps - 1))
			return luffd_fail(-EINVAL, "page size %zu", ps);
		if (!o->addr || !LUFFD_ALIGNED((uintptr_t)o->addr, ps))
			return luffd_fail(-EINVAL,
					  "REMOTE: address %p not page aligned",
					  o->addr);
		break;
	default:
		return luffd_fail(-EINVAL, "unknown memory type %d",
				  (int)o->type);
	}
	if (o->len == 0 || !LUFFD_ALIGNED(o->len, ps))
		return luffd_fail(-EINVAL,
				  "length %zu is zero or not a multiple of %zu",
				  o->len, ps);
	if ((o->type == LIBUFFD_MEM_ADOPT || o->type == LIBUFFD_MEM_REMOTE) &&
	    (uintptr_t)o->addr + o->len < (uintptr_t)o->addr)
		return luffd_fail(-EINVAL, "ADOPT: range wraps");
	if (o->type == LIBUFFD_MEM_MEMFD &&
	    !(ctx->features & UFFD_FEATURE_MISSING_SHMEM))
		return luffd_fail(-EOPNOTSUPP, "kernel lacks MISSING_SHMEM");
	if (o->type == LIBUFFD_MEM_HUGETLB &&
	    !(ctx->features & UFFD_FEATURE_MISSING_HUGETLBFS))
		return luffd_fail(-EOPNOTSUPP, "kernel lacks MISSING_HUGETLBFS");
	*page_size = ps;
	return 0;
}

LUFFD_API int uffd_region_create(struct uffd_ctx *ctx,
				 const struct uffd_region_opts *uopts,
				 struct uffd_region **out)
{
	struct uffd_region_opts o = { 0 };
	struct uffd_args args = { 0 };
	struct uffdio_register reg;
	struct uffd_region *r;
	size_t ps = 0, words;
	int ret;

	if (!ctx || !out)
		return luffd_fail(-EINVAL, "uffd_region_create: NULL argument");
	ret = check_opts(ctx, uopts, &ps);
	if (ret < 0)
		return ret;
	memcpy(&o, uopts, uopts->size);

	r = calloc(1, sizeof(*r));
	if (!r)
		return luffd_fail(-ENOMEM, "out of memory");
	r->ctx = ctx;
	r->memfd = -1;
	pthread_mutex_init(&r->fault_lock, NULL);
	r->type = o.type;
	r->len = o.len;
	r->page_size = ps;
	r->page_shift = (unsigned int)__builtin_ctzll(ps);
	ret = bind_pager(r, &o, &args);
	if (ret < 0)
		goto fail_free;
	if (ctx->delivery == LIBUFFD_DELIVER_SIGBUS &&
	    !(r->pager_flags & LIBUFFD_PAGER_CONCURRENT)) {
		ret = luffd_fail(-ENOTSUP, "pager %s cannot run in SIGBUS mode "
				 "(not LIBUFFD_PAGER_CONCURRENT)", r->pager_name);
		goto fail_free;
	}
	ret = check_modes(r, &o);
	if (ret < 0)
		goto fail_free;
	luffd_clear_error();	/* so a pager's own reason shows, or none */

	if (o.type == LIBUFFD_MEM_ADOPT) {
		uint64_t vps;

		r->base = (uint64_t)(uintptr_t)o.addr;
		ret = check_mapped(r->base, r->len);
		if (ret < 0)
			goto fail_free;
		vps = vma_page_size(r->base);
		if (vps > r->page_size) {
			/* hugetlb: faults and fills come in huge pages */
			if (!LUFFD_ALIGNED(r->base | r->len, vps)) {
				ret = luffd_fail(-EINVAL, "ADOPT: a mapping of "
						 "%llu KiB pages needs that "
						 "alignment",
						 (unsigned long long)vps >> 10);
				goto fail_free;
			}
			r->page_size = vps;
			r->page_shift = (unsigned int)__builtin_ctzll(vps);
		}
	} else if (o.type == LIBUFFD_MEM_REMOTE) {
		r->base = (uint64_t)(uintptr_t)o.addr;
		if (r->len > LUFFD_MAX_USER_LEN ||
		    r->base > LUFFD_MAX_USER_LEN - r->len) {
			ret = luffd_fail(-EINVAL, "REMOTE: %#llx+%#llx is no "
					 "process's memory",
					 (unsigned long long)r->base,
					 (unsigned long long)r->len);
			goto fail_free;
		}
	}
	else if ((ret = map_memory(r, o.len)) < 0)
		goto fail_free;

	/*
	 * Per-page bookkeeping only now, for what was mapped: a length no
	 * mmap can give (1 << 60) used to calloc bitmaps of 32 TiB first.
	 */
	words = (o.len / ps + 63) / 64;
	r->present = calloc(words, sizeof(uint64_t));
	r->zap_at = calloc(o.len / ps, sizeof(uint64_t));
	r->unmapped = calloc(words, sizeof(uint64_t));
	r->failed = calloc(words, sizeof(uint64_t));
	if (!r->present || !r->unmapped || !r->failed || !r->zap_at) {
		ret = luffd_fail(-ENOMEM, "out of memory");
		goto fail_unmap;
	}

	/* claim the range first: re-registering a live range would succeed */
	luffd_remaps_settle(ctx);	/* a region just moved off it */
	pthread_rwlock_wrlock(&ctx->lock);
	ret = luffd_table_insert(ctx, r);
	pthread_rwlock_unlock(&ctx->lock);
	if (ret < 0)
		goto fail_unmap;

	ret = r->ops->init(r, &args, &r->state);
	if (ret < 0) {
		char why[200];

		if (ret > -1 || ret < -4095)
			ret = -EINVAL;
		snprintf(why, sizeof(why), "%s", uffd_last_error());
		/* "pager file: file: ..." says the name once too often */
		if (!strncmp(why, r->pager_name, strlen(r->pager_name)) &&
		    why[strlen(r->pager_name)] == ':')
			luffd_fail(ret, "pager %s", why);
		else
			luffd_fail(ret, "pager %s: %s", r->pager_name,
				   why[0] ? why : strerror(-ret));
		goto fail_untable;
	}

	memset(&reg, 0, sizeof(reg));
	reg.range.start = r->base;
	reg.range.len = r->len;
	reg.mode = (r->modes & LIBUFFD_REG_MISSING ?
		    UFFDIO_REGISTER_MODE_MISSING : 0) |
		   (r->modes & LIBUFFD_REG_WP ? UFFDIO_REGISTER_MODE_WP : 0) |
		   (r->modes & LIBUFFD_REG_MINOR ?
		    UFFDIO_REGISTER_MODE_MINOR : 0);
	if (o.type == LIBUFFD_MEM_REMOTE) {
		/* registered by its own process; hugetlb has no ZEROPAGE */
		reg.ioctls = (1ull << _UFFDIO_WAKE) | (1ull << _UFFDIO_COPY);
		if (ps == (size_t)sysconf(_SC_PAGESIZE))
			reg.ioctls |= 1ull << _UFFDIO_ZEROPAGE;
		if (r->modes & LIBUFFD_REG_WP)
			reg.ioctls |= 1ull << _UFFDIO_WRITEPROTECT;
		if (r->modes & LIBUFFD_REG_MINOR)
			reg.ioctls |= 1ull << _UFFDIO_CONTINUE;
	} else if (ioctl(ctx->fd, UFFDIO_REGISTER, &reg) < 0) {
		ret = luffd_fail(errno == EINVAL && r->modes !=
				 LIBUFFD_REG_MISSING ? -EOPNOTSUPP : -errno,
				 "UFFDIO_REGISTER: %s", strerror(errno));
		goto fail_fini;
	}
	r->reg_ioctls = reg.ioctls;
	if (((r->modes & LIBUFFD_REG_MISSING) &&
	     !(reg.ioctls & (1ull << _UFFDIO_COPY))) ||
	    ((r->modes & LIBUFFD_REG_WP) &&
	     !(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) ||
	    ((r->modes & LIBUFFD_REG_MINOR) &&
	     !(reg.ioctls & (1ull << _UFFDIO_CONTINUE)))) {
		struct uffdio_range range = { r->base, r->len };

		ioctl(ctx->fd, UFFDIO_UNREGISTER, &range);
		ret = luffd_fail(-EOPNOTSUPP, "UFFDIO_%s not offered here",
				 !(reg.ioctls & (1ull << _UFFDIO_COPY)) ?
				 "COPY" : (r->modes & LIBUFFD_REG_MINOR) &&
				 !(reg.ioctls & (1ull << _UFFDIO_CONTINUE)) ?
				 "CONTINUE" : "WRITEPROTECT");
		goto fail_fini;
	}

	pthread_rwlock_wrlock(&ctx->lock);
	r->registered = 1;
	r->next = ctx->all;
	if (ctx->all)
		ctx->all->prev = r;
	ctx->all = r;
	ret = 0;
	if (ctx->pagers_on) {
		ret = r->ops->start ? r->ops->start(r->state) : 0;
		r->started = ret == 0;
	}
	pthread_rwlock_unlock(&ctx->lock);
	if (ret < 0) {
		uffd_region_destroy(r);
		luffd_args_free(&args);
		return ret;
	}
	luffd_args_free(&args);
	luffd_clear_error();
	*out = r;
	return 0;

fail_fini:
	if (r->ops->fini)
		r->ops->fini(r->state);
fail_untable:
	pthread_rwlock_wrlock(&ctx->lock);
	luffd_table_remove(ctx, r);
	luffd_inboxes_forget(ctx, r);
	pthread_rwlock_unlock(&ctx->lock);
fail_unmap:
	unmap_memory(r);
fail_free:
	luffd_args_free(&args);
	free(r->args_str);
	free(r->present);
	free(r->zap_at);
	free(r->unmapped);
	free(r->failed);
	free(r);
	return ret;
}

static int unregister_run(struct uffd_region *r, uint64_t off, uint64_t len)
{
	struct uffdio_range range = { .start = luffd_base(r) + off,
				       .len = len };

	/* UNREGISTER wakes every thread waiting in the range */
	if (ioctl(r->ctx->fd, UFFDIO_UNREGISTER, &range) < 0) {
		/* a remote process that exited has nothing left to free */
		if (r->type == LIBUFFD_MEM_REMOTE && errno == ESRCH)
			return 0;
		return luffd_fail(-errno, "UFFDIO_UNREGISTER: %s",
				  strerror(errno));
	}
	return 0;
}

/* Caller holds ctx->lock for writing. */
static int unregister_locked(struct uffd_region *r)
{
	int ret;

	if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE))
		return luffd_fail(-ENODEV, "region was unmapped");
	if (!r->registered)
		return luffd_fail(-EALREADY, "region not registered");
	ret = for_each_mapped_run(r, unregister_run);
	if (ret < 0)
		return ret;
	r->registered = 0;
	return 0;
}

LUFFD_API int uffd_region_unregister(struct uffd_region *r)
{
	int ret;

	if (!r)
		return luffd_fail(-EINVAL, "uffd_region_unregister: NULL");
	luffd_remaps_settle(r->ctx);
	pthread_rwlock_wrlock(&r->ctx->lock);
	ret = unregister_locked(r);
	pthread_rwlock_unlock(&r->ctx->lock);
	return ret;
}

LUFFD_API void uffd_region_destroy(struct uffd_region *r)
{
	struct uffd_ctx *ctx;

	if (!r)
		return;
	ctx = r->ctx;
	/*
	 * The write lock waits out any dispatch into this region; once it
	 * is out of the table the handler treats its faults as strays.
	 * A move read but not applied yet is waited for: the range to
	 * unregister and unmap is the new one.
	 */
	luffd_remaps_settle(ctx);
	pthread_rwlock_wrlock(&ctx->lock);
	if (r->registered)
		unregister_locked(r);
	luffd_table_remove(ctx, r);
	luffd_inboxes_forget(ctx, r);
	/* a move of it never applied (the settle gave up): not pending */
	if (r->moves_pending)
		__atomic_sub_fetch(&ctx->remaps_pending, r->moves_pending,
				   __ATOMIC_SEQ_CST);
	if (r->prev)
		r->prev->next = r->next;
	else if (ctx->all == r)
		ctx->all = r->next;
	if (r->next)
		r->next->prev = r->prev;
	luffd_counters_sum(&ctx->retired, &r->ctr);
	pthread_rwlock_unlock(&ctx->lock);

	if (r->started && r->ops->stop)
		r->ops->stop(r->state);
	if (r->ops->fini)
		r->ops->fini(r->state);
	unmap_memory(r);
	pthread_mutex_destroy(&r->fault_lock);
	free(r->args_str);
	free(r->present);
	free(r->zap_at);
	free(r->unmapped);
	free(r->failed);
	free(r);
}

LUFFD_API void *uffd_region_addr(const struct uffd_region *r)
{
	if (!r)
		return NULL;
	/* an mremap that returned was read: it is there, even if the
	 * handler has not moved it in the table yet */
	luffd_reads_settle(r->ctx);
	return (void *)(uintptr_t)luffd_base(r);
}

LUFFD_API size_t uffd_region_len(const struct uffd_region *r)
{
	return r ? r->len : 0;
}

LUFFD_API size_t uffd_region_page_size(const struct uffd_region *r)
{
	return r ? r->page_size : 0;
}

LUFFD_API enum uffd_mem_type uffd_region_type(const struct uffd_region *r)
{
	return r ? r->type : LIBUFFD_MEM_ANON;
}

LUFFD_API int uffd_region_memfd(const struct uffd_region *r)
{
	return r ? r->memfd : -1;
}

LUFFD_API int uffd_region_page_present(const struct uffd_region *r,
				       uint64_t off)
{
	if (!r || off >= r->len)
		return -EINVAL;
	return luffd_present_test(r, off);
}

struct helper_start {
	void	*(*fn)(void *);
	void	*arg;
};

static void *helper_main(void *p)
{
	struct helper_start hs = *(struct helper_start *)p;

	free(p);
	luffd_internal = 1;
	return hs.fn(hs.arg);
}

LUFFD_API int uffd_region_helper_create(const struct uffd_region *r,
				       pthread_t *thread,
				       void *(*fn)(void *), void *arg)
{
	const struct uffd_ctx *ctx;
	pthread_attr_t attr;
	struct helper_start *hs;
	sigset_t all, old;
	cpu_set_t set;
	int ret;

	if (!r || !thread || !fn)
		return luffd_fail(-EINVAL, "uffd_region_helper_create: NULL");
	hs = malloc(sizeof(*hs));
	if (!hs)
		return luffd_fail(-ENOMEM, "pager %s: helper thread: no memory",
				  r->pager_name);
	hs->fn = fn;
	hs->arg = arg;
	ctx = r->ctx;
	if (ctx->helper_cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(ctx->helper_cpu, &set);
	} else if (ctx->helper_cpu == LIBUFFD_CPU_SAME) {
		set = ctx->start_cpus;
	} else {
		set = ctx->create_cpus;
	}
	pthread_attr_init(&attr);
	if (CPU_COUNT(&set))
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	/* the new thread inherits this mask */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = luffd_pthread_create(thread, &attr, helper_main, hs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret)
		free(hs);
	if (ret)
		return luffd_fail(-ret, "pager %s: helper thread: %s",
				  r->pager_name, strerror(ret));
	return 0;
}

/* PAGEMAP_SCAN (6.7): the installed headers are older. */
#define LUFFD_PAGEMAP_SCAN	_IOWR('f', 16, struct luffd_pm_scan_arg)
#define LUFFD_PAGE_IS_WRITTEN	(1ULL << 1)
#define LUFFD_PM_SCAN_WP_MATCHING	(1ULL << 0)
#define LUFFD_PM_SCAN_CHECK_WPASYNC	(1ULL << 1)

struct luffd_page_region {
	uint64_t	start, end, categories;
};

struct luffd_pm_scan_arg {
	uint64_t	size, flags, start, end, walk_end, vec, vec_len;
	uint64_t	max_pages, category_inverted, category_mask;
	uint64_t	category_anyof_mask, return_mask;
};

LUFFD_API long uffd_region_scan_written(struct uffd_region *r, uint64_t off,
					uint64_t len, uint64_t *bitmap,
					unsigned int flags)
{
	struct luffd_page_region vec[256];
	struct luffd_pm_scan_arg arg;
	uint64_t pos0, pos, end, a, i;
	long n = 0;
	int fd, ret, k;

	if (!r || !bitmap || (flags & ~LIBUFFD_SCAN_REPROTECT) ||
	    !LUFFD_ALIGNED(off | len, r->page_size) || !len ||
	    off >= r->len || len > r->len - off)
		return luffd_fail(-EINVAL, "scan_written: bad arguments");
	if (!(r->modes & LIBUFFD_REG_WP) ||
	    !(r->ctx->features & LIBUFFD_FEATURE_WP_ASYNC))
		return luffd_fail(-EINVAL, "scan_written: needs a WP region "
				  "of a WP_ASYNC context");
	if (r->type == LIBUFFD_MEM_REMOTE || r->ctx->is_child)
		return luffd_fail(-EOPNOTSUPP, "scan_written: region of "
				  "another process");
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return luffd_fail(-errno, "/proc/self/pagemap: %s",
				  strerror(errno));
	pos0 = luffd_base(r);
	pos = pos0 + off;
	end = pos + len;
	while (pos < end) {
		memset(&arg, 0, sizeof(arg));
		arg.size = sizeof(arg);
		arg.flags = (flags & LIBUFFD_SCAN_REPROTECT) ?
			    LUFFD_PM_SCAN_WP_MATCHING |
			    LUFFD_PM_SCAN_CHECK_WPASYNC : 0;
		arg.start = pos;
		arg.end = end;
		arg.vec = (uint64_t)(uintptr_t)vec;
		arg.vec_len = LUFFD_ARRAY_SIZE(vec);
		arg.category_mask = LUFFD_PAGE_IS_WRITTEN;
		arg.return_mask = LUFFD_PAGE_IS_WRITTEN;
		ret = ioctl(fd, LUFFD_PAGEMAP_SCAN, &arg);
		if (ret < 0) {
			ret = errno == ENOTTY ? -EOPNOTSUPP : -errno;
			close(fd);
			return luffd_fail(ret, "PAGEMAP_SCAN: %s",
					  strerror(-ret));
		}
		for (k = 0; k < ret; k++) {
			for (a = vec[k].start; a < vec[k].end;
			     a += r->page_size) {
				i = (a - pos0 - off) >> r->page_shift;
				bitmap[i / 64] |= 1ull << (i % 64);
				n++;
			}
		}
		if (arg.walk_end <= pos)
			break;
		pos = arg.walk_end;
	}
	close(fd);
	if (flags & LIBUFFD_SCAN_REPROTECT)
		luffd_count(&r->ctr, LUFFD_CTR(pages_protected), (uint64_t)n);
	return n;
}

LUFFD_API int uffd_region_flush(struct uffd_region *r)
{
	if (!r)
		return luffd_fail(-EINVAL, "uffd_region_flush: NULL region");
	if (r->ops->version < 3 || !r->ops->flush)
		return luffd_fail(-EOPNOTSUPP, "pager %s keeps no dirty pages",
				  r->pager_name);
	return r->ops->flush(r->state);
}

LUFFD_API unsigned int uffd_region_modes(const struct uffd_region *r)
{
	return r ? r->modes : 0;
}

LUFFD_API int uffd_region_gone(const struct uffd_region *r)
{
	return r ? __atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) : 0;
}

LUFFD_API struct uffd_ctx *uffd_region_ctx(const struct uffd_region *r)
{
	return r ? r->ctx : NULL;
}

LUFFD_API const char *uffd_region_pager_name(const struct uffd_region *r)
{
	return r ? r->pager_name : NULL;
}
