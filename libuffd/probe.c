/* SPDX-License-Identifier: MIT */
/*
 * Opening a userfaultfd, the UFFDIO_API handshake, and uffd_probe(): what
 * the kernel offers and the machine facts that change what libuffd does.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "internal.h"

/* Each feature bit's name and the first kernel release that offered it. */
static const struct {
	const char	*name;
	const char	*since;
} feature_info[] = {
	[0] = { "PAGEFAULT_FLAG_WP", "5.7" },
	[1] = { "EVENT_FORK", "4.11" },
	[2] = { "EVENT_REMAP", "4.11" },
	[3] = { "EVENT_REMOVE", "4.11" },
	[4] = { "MISSING_HUGETLBFS", "4.11" },
	[5] = { "MISSING_SHMEM", "4.11" },
	[6] = { "EVENT_UNMAP", "4.11" },
	[7] = { "SIGBUS", "4.14" },
	[8] = { "THREAD_ID", "4.14" },
	[9] = { "MINOR_HUGETLBFS", "5.13" },
	[10] = { "MINOR_SHMEM", "5.14" },
	[11] = { "EXACT_ADDRESS", "5.18" },
	[12] = { "WP_HUGETLBFS_SHMEM", "5.19" },
	[13] = { "WP_UNPOPULATED", "6.4" },
	[14] = { "POISON", "6.6" },
	[15] = { "WP_ASYNC", "6.7" },
	[16] = { "MOVE", "6.8" },
};

/* Every feature bit this library knows of. */
#define KNOWN_FEATURES	((1ULL << LUFFD_ARRAY_SIZE(feature_info)) - 1)

LUFFD_API const char *uffd_feature_name(unsigned int bit)
{
	if (bit >= LUFFD_ARRAY_SIZE(feature_info))
		return NULL;
	return feature_info[bit].name;
}

LUFFD_API const char *uffd_feature_since(unsigned int bit)
{
	if (bit >= LUFFD_ARRAY_SIZE(feature_info))
		return NULL;
	return feature_info[bit].since;
}

/*
 * /dev/userfaultfd first: it is governed by file permissions rather than
 * vm.unprivileged_userfaultfd, so it works for more users.  Always
 * O_NONBLOCK: poll() on a blocking userfaultfd reports POLLERR.
 */
int luffd_open_uffd(unsigned int ctx_flags, int *method)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int dev_err = 0;
	int fd;

	if (!(ctx_flags & LIBUFFD_CTX_NO_DEV)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
			dev_err = fd < 0 ? errno : 0;
			close(dev);
			if (fd >= 0) {
				*method = LIBUFFD_OPEN_DEV;
				return fd;
			}
		} else {
			dev_err = errno;
		}
	}
	fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd < 0) {
		int err = errno;

		return luffd_fail(-err, "userfaultfd: %s (/dev/userfaultfd: %s)",
				  strerror(err),
				  dev_err ? strerror(dev_err) : "not tried");
	}
	*method = LIBUFFD_OPEN_SYSCALL;
	return fd;
}

int luffd_api(int fd, uint64_t features, uint64_t *features_out,
	      uint64_t *ioctls_out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = errno;

		return luffd_fail(-err, "UFFDIO_API(features=%#llx): %s",
				  (unsigned long long)features, strerror(err));
	}
	if (features_out)
		*features_out = api.features;
	if (ioctls_out)
		*ioctls_out = api.ioctls;
	return 0;
}

/*
 * fdinfo of a userfaultfd ends with "API:\t<api>:<features>:<ioctls>":
 * the only way to learn what a descriptor made elsewhere has enabled.
 */
int luffd_fdinfo_api(int fd, uint64_t *features, uint64_t *ioctls)
{
	char path[64], line[256];
	unsigned long long api, feat, ioc;
	bool is_uffd = false, found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return luffd_fail(-EBADF, "fd %d: %s", fd, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "pending:", 8))
			is_uffd = true;
		if (sscanf(line, "API:\t%llx:%llx:%llx", &api, &feat, &ioc) == 3)
			found = true;
	}
	fclose(f);
	if (!is_uffd || !found)
		return luffd_fail(-EBADF, "fd %d is not a userfaultfd", fd);
	*features = feat;
	*ioctls = ioc;
	return 0;
}

/* True when @field of struct uffd_probe lies wholly within @size bytes. */
#define COVERS(size, field)						\
	((size) >= offsetof(struct uffd_probe, field) +		\
		   sizeof(((struct uffd_probe *)0)->field))

/* Every field "not known", as documented in the header. */
static void probe_unknown(struct uffd_probe *p, size_t size)
{
	memset(p, 0, sizeof(*p));
	p->size = size;
	p->native_zero_page = -1;
	p->thp_enabled = -1;
	p->thp_zero_page = -1;
	p->unprivileged_userfaultfd = -1;
	p->huge_pages_total = -1;
	p->huge_pages_free = -1;
	p->huge_pages_rsvd = -1;
}

/* ---- the two ways of opening, each tried on its own ---- */

static int open_dev(int *err)
{
	int dev, fd;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		*err = errno;
		return -1;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	*err = fd < 0 ? errno : 0;
	close(dev);
	return fd;
}

static int open_syscall(int *err)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	*err = fd < 0 ? errno : 0;
	return fd;
}

/*
 * Try both ways (so that uffd-probe can say why one is not used) and keep
 * the one the library would use: /dev/userfaultfd first.
 */
static int probe_open(struct uffd_probe *p)
{
	int dev = open_dev(&p->dev_errno);
	int sys = open_syscall(&p->syscall_errno);

	if (dev >= 0) {
		if (sys >= 0)
			close(sys);
		p->open_method = LIBUFFD_OPEN_DEV;
		return dev;
	}
	if (sys >= 0) {
		p->open_method = LIBUFFD_OPEN_SYSCALL;
		return sys;
	}
	return luffd_fail(-p->syscall_errno,
			  "userfaultfd: %s (/dev/userfaultfd: %s)",
			  strerror(p->syscall_errno), strerror(p->dev_errno));
}

/* A fresh descriptor opened the way @method says, or -errno. */
static int reopen(int method)
{
	int err, fd;

	fd = method == LIBUFFD_OPEN_DEV ? open_dev(&err) : open_syscall(&err);
	return fd < 0 ? -err : fd;
}

/* ---- what UFFDIO_REGISTER offers on each memory type ---- */

/*
 * Register one throwaway range of @type with the richest mode the kernel
 * offers for it, falling back to MISSING alone, and return the ioctls of
 * the reply in *ioctls, or -errno of the step that failed.  The hugetlb
 * range is mapped MAP_NORESERVE and never touched: no huge page is
 * needed.
 */
static int register_type(int fd, int type, uint64_t feat, uint64_t hps,
			 uint64_t *ioctls)
{
	struct uffdio_register reg = { 0 };
	size_t len = (size_t)sysconf(_SC_PAGESIZE);
	int flags = MAP_PRIVATE | MAP_ANONYMOUS, mfd = -1, ret;
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING;
	void *m = MAP_FAILED;

	switch (type) {
	case LIBUFFD_MEM_ANON:
		if (feat & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
			mode |= UFFDIO_REGISTER_MODE_WP;
		break;
	case LIBUFFD_MEM_MEMFD:
		mfd = memfd_create("libuffd-probe", MFD_CLOEXEC);
		flags = MAP_SHARED;
		if (feat & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
			mode |= UFFDIO_REGISTER_MODE_WP;
		if (feat & UFFD_FEATURE_MINOR_SHMEM)
			mode |= UFFDIO_REGISTER_MODE_MINOR;
		break;
	default:
		len = hps ? hps : 2u << 20;
		mfd = memfd_create("libuffd-probe", MFD_CLOEXEC | MFD_HUGETLB);
		flags = MAP_SHARED | MAP_NORESERVE;
		if (feat & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
			mode |= UFFDIO_REGISTER_MODE_WP;
		if (feat & UFFD_FEATURE_MINOR_HUGETLBFS)
			mode |= UFFDIO_REGISTER_MODE_MINOR;
		break;
	}
	if (type != LIBUFFD_MEM_ANON &&
	    (mfd < 0 || ftruncate(mfd, (off_t)len))) {
		ret = -errno;
		goto out;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, mfd, 0);
	if (m == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	reg.range.start = (uintptr_t)m;
	reg.range.len = len;
	reg.mode = mode;
	if (ioctl(fd, UFFDIO_REGISTER, &reg) &&
	    (mode == UFFDIO_REGISTER_MODE_MISSING ||
	     (reg.mode = UFFDIO_REGISTER_MODE_MISSING,
	      ioctl(fd, UFFDIO_REGISTER, &reg)))) {
		ret = -errno;
		goto out;
	}
	*ioctls = reg.ioctls;
	ret = 0;
out:
	if (m != MAP_FAILED)
		munmap(m, len);	/* unregisters it too */
	if (mfd >= 0)
		close(mfd);
	return ret;
}

/* Features a register probe may need; none that makes a process wait. */
#define REGISTER_FEATURES (UFFD_FEATURE_PAGEFAULT_FLAG_WP |		\
			   UFFD_FEATURE_MISSING_SHMEM |			\
			   UFFD_FEATURE_MISSING_HUGETLBFS |		\
			   UFFD_FEATURE_MINOR_SHMEM |			\
			   UFFD_FEATURE_MINOR_HUGETLBFS |		\
			   UFFD_FEATURE_WP_HUGETLBFS_SHMEM |		\
			   UFFD_FEATURE_POISON |			\
			   UFFD_FEATURE_MOVE)

static void probe_register(struct uffd_probe *p)
{
	uint64_t feat = p->features & REGISTER_FEATURES;
	struct uffdio_api api = { .api = UFFD_API, .features = feat };
	int fd, type, ret;

	fd = reopen(p->open_method);
	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api)) {
		ret = -errno;
		close(fd);
		fd = ret;
	}
	if (fd < 0) {
		for (type = 0; type < LIBUFFD_PROBE_MEM_TYPES; type++)
			p->reg_errno[type] = -fd;
		return;
	}
	for (type = 0; type < LIBUFFD_PROBE_MEM_TYPES; type++) {
		ret = register_type(fd, type, feat, p->huge_page_size,
				    &p->reg_ioctls[type]);
		p->reg_errno[type] = -ret;
	}
	close(fd);
}

/* ---- machine facts ---- */

/* One integer from a /proc or /sys file; -1 when absent or garbled. */
static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* "always [madvise] never": the bracketed word. */
static int read_thp_enabled(void)
{
	static const char *const modes[] = {
		[LIBUFFD_THP_NEVER] = "never",
		[LIBUFFD_THP_MADVISE] = "madvise",
		[LIBUFFD_THP_ALWAYS] = "always",
	};
	char line[256], *open_b, *close_b;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	int i, ret = -1;

	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f) && (open_b = strchr(line, '[')) &&
	    (close_b = strchr(open_b, ']'))) {
		*close_b = '\0';
		for (i = 0; i < (int)LUFFD_ARRAY_SIZE(modes); i++)
			if (!strcmp(open_b + 1, modes[i]))
				ret = i;
	}
	fclose(f);
	return ret;
}

static void read_meminfo(struct uffd_probe *p)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long long v;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "HugePages_Total: %lld", &v) == 1)
			p->huge_pages_total = v;
		else if (sscanf(line, "HugePages_Free: %lld", &v) == 1)
			p->huge_pages_free = v;
		else if (sscanf(line, "HugePages_Rsvd: %lld", &v) == 1)
			p->huge_pages_rsvd = v;
		else if (sscanf(line, "Hugepagesize: %lld kB", &v) == 1 &&
			 v > 0)
			p->huge_page_size = (uint64_t)v << 10;
	}
	fclose(f);
}

/* Rss in KiB of the mapping that starts exactly at @addr; -1 if none. */
static long smaps_rss_kib(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	unsigned long start, end;
	char *line = NULL;
	size_t cap = 0;
	bool in = false;
	long rss = -1, v;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			if (in)
				break;
			in = start == (uintptr_t)addr;
		} else if (in && sscanf(line, "Rss: %ld kB", &v) == 1) {
			rss = v;
			break;
		}
	}
	free(line);
	fclose(f);
	return rss;
}

#define ZP_PAGES	16

/*
 * The zero page is not counted in Rss: read fresh pages and see whether
 * they became resident.  PROT_NONE guards on both sides keep the mapping
 * a VMA of its own, so that smaps shows its Rss alone; MADV_NOHUGEPAGE
 * keeps THP and its huge zero page out of the answer.  Root is not
 * needed, unlike reading PFNs from pagemap.
 */
static int probe_native_zero_page(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = ZP_PAGES * ps, i;
	volatile const char *p;
	char *guard;
	long rss;
	int ret = -1;

	guard = mmap(NULL, len + 2 * ps, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED)
		return -1;
	p = guard + ps;
	if (mprotect(guard + ps, len, PROT_READ | PROT_WRITE) ||
	    madvise(guard + ps, len, MADV_NOHUGEPAGE))
		goto out;
	for (i = 0; i < len; i += ps)
		(void)p[i];
	rss = smaps_rss_kib(guard + ps);
	if (rss == 0)
		ret = 1;
	else if (rss >= (long)(len >> 10))
		ret = 0;
out:
	munmap(guard, len + 2 * ps);
	return ret;
}

static void probe_machine(struct uffd_probe *p, size_t size)
{
	struct utsname u;

	if (COVERS(size, native_zero_page))
		p->native_zero_page = probe_native_zero_page();
	if (COVERS(size, thp_enabled))
		p->thp_enabled = read_thp_enabled();
	if (COVERS(size, thp_zero_page))
		p->thp_zero_page = (int)read_long(
			"/sys/kernel/mm/transparent_hugepage/use_zero_page");
	if (COVERS(size, unprivileged_userfaultfd))
		p->unprivileged_userfaultfd =
			(int)read_long("/proc/sys/vm/unprivileged_userfaultfd");
	if (COVERS(size, huge_page_size))
		read_meminfo(p);
	if (COVERS(size, kernel_release) && !uname(&u))
		snprintf(p->kernel_release, sizeof(p->kernel_release), "%s",
			 u.release);
}

LUFFD_API int uffd_probe(struct uffd_probe *out)
{
	struct uffd_probe p;
	size_t size;
	int fd, ret;

	if (!out || out->size == 0)
		return luffd_fail(-EINVAL, "uffd_probe: NULL or size 0");
	size = out->size;
	probe_unknown(&p, size);
	/* huge_page_size first: the hugetlb register probe needs it */
	probe_machine(&p, size);

	/* a caller of the 0.1 size gets the 0.1 probe: one open */
	if (COVERS(size, syscall_errno))
		fd = probe_open(&p);
	else
		fd = luffd_open_uffd(0, &p.open_method);
	ret = fd < 0 ? fd : 0;
	if (fd >= 0) {
		/* features 0: the reply lists everything the kernel supports */
		ret = luffd_api(fd, 0, &p.features, &p.ioctls);
		close(fd);
	}
	if (ret < 0) {
		p.features = p.ioctls = 0;
		p.open_method = 0;
		p.open_errno = -ret;
	} else if (COVERS(size, reg_errno)) {
		probe_register(&p);
	}
	memcpy(out, &p, LUFFD_MIN(size, sizeof(p)));
	return ret;
}

/* ---- formatting ---- */

struct sbuf {
	char	*buf;
	size_t	len;
	size_t	used;	/* length the full output needs */
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	size_t room = sb->used < sb->len ? sb->len - sb->used : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? sb->buf + sb->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb->used += (size_t)n;
}

static const char *const ioctl_names[] = {
	[0] = "REGISTER", [1] = "UNREGISTER", [2] = "WAKE", [3] = "COPY",
	[4] = "ZEROPAGE", [5] = "MOVE", [6] = "WRITEPROTECT",
	[7] = "CONTINUE", [8] = "POISON",
};

static const char *const thp_names[] = {
	[LIBUFFD_THP_NEVER] = "never",
	[LIBUFFD_THP_MADVISE] = "madvise",
	[LIBUFFD_THP_ALWAYS] = "always",
};

static const char *const mem_names[LIBUFFD_PROBE_MEM_TYPES] = {
	[LIBUFFD_MEM_ANON] = "anon",
	[LIBUFFD_MEM_MEMFD] = "memfd",
	[LIBUFFD_MEM_HUGETLB] = "hugetlb",
};

/* "2 MiB", "1 GiB", "64 KiB" */
static void sb_size(struct sbuf *sb, uint64_t bytes)
{
	if (bytes >= (1ULL << 30) && !(bytes & ((1ULL << 30) - 1)))
		sb_printf(sb, "%llu GiB", (unsigned long long)(bytes >> 30));
	else if (bytes >= (1ULL << 20) && !(bytes & ((1ULL << 20) - 1)))
		sb_printf(sb, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		sb_printf(sb, "%llu KiB", (unsigned long long)(bytes >> 10));
}

/* Names of the feature bits this library knows and @features lacks. */
static void sb_missing(struct sbuf *sb, uint64_t features, bool since)
{
	unsigned int i;
	bool first = true;

	for (i = 0; i < LUFFD_ARRAY_SIZE(feature_info); i++) {
		if (features & (1ULL << i))
			continue;
		sb_printf(sb, "%s%s", first ? "" : " ", feature_info[i].name);
		if (since)
			sb_printf(sb, "(%s)", feature_info[i].since);
		first = false;
	}
}

static void sb_ioctls(struct sbuf *sb, uint64_t ioctls)
{
	unsigned int i;
	bool first = true;

	for (i = 0; i < 64; i++) {
		const char *name = i == 63 ? "API" :
			i < LUFFD_ARRAY_SIZE(ioctl_names) ? ioctl_names[i] :
			NULL;

		if (!(ioctls & (1ULL << i)))
			continue;
		if (name)
			sb_printf(sb, "%s%s", first ? "" : " ", name);
		else
			sb_printf(sb, "%sbit%u", first ? "" : " ", i);
		first = false;
	}
}

/* A JSON string; the fields formatted here hold no control characters
 * that matter, but escape what JSON requires anyway. */
static void sb_json_str(struct sbuf *sb, const char *s)
{
	sb_printf(sb, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			sb_printf(sb, "\\%c", c);
		else if (c < 0x20)
			sb_printf(sb, "\\u%04x", c);
		else
			sb_printf(sb, "%c", c);
	}
	sb_printf(sb, "\"");
}

/* An int that is -1 when unknown (or not within the caller's struct). */
static void sb_json_int(struct sbuf *sb, const char *key, long long v,
			bool known)
{
	if (known && v >= 0)
		sb_printf(sb, ",\"%s\":%lld", key, v);
	else
		sb_printf(sb, ",\"%s\":null", key);
}

static void sb_json_bool(struct sbuf *sb, const char *key, int v, bool known)
{
	sb_printf(sb, ",\"%s\":%s", key, !known || v < 0 ? "null" :
		  v ? "true" : "false");
}

static const char *method_name(int method)
{
	return method == LIBUFFD_OPEN_DEV ? "dev" :
	       method == LIBUFFD_OPEN_SYSCALL ? "syscall" : method ? "?" : NULL;
}

static void format_text(struct sbuf *sb, const struct uffd_probe *p,
			size_t size)
{
	sb_printf(sb, "kernel %s", COVERS(size, kernel_release) &&
		  *p->kernel_release ? p->kernel_release : "?");
	if (COVERS(size, native_zero_page))
		sb_printf(sb, "; native read: %s",
			  p->native_zero_page > 0 ? "zero page" :
			  p->native_zero_page == 0 ?
			  "fresh page (no zero page)" : "?");
	if (COVERS(size, thp_zero_page)) {
		if (p->thp_enabled < 0)
			sb_printf(sb, "; no THP");
		else
			sb_printf(sb, "; THP %s", thp_names[p->thp_enabled]);
		if (p->thp_enabled >= 0 && p->thp_zero_page >= 0)
			sb_printf(sb, " (huge zero page %s)",
				  p->thp_zero_page ? "on" : "off");
	}
	if (COVERS(size, huge_pages_free)) {
		if (!p->huge_page_size || p->huge_pages_total < 0) {
			sb_printf(sb, "; no hugetlb");
		} else if (!p->huge_pages_total) {
			sb_printf(sb, "; 0 huge pages");
		} else {
			sb_printf(sb, "; %lld huge pages of ",
				  (long long)p->huge_pages_total);
			sb_size(sb, p->huge_page_size);
			sb_printf(sb, " (%lld free)",
				  (long long)p->huge_pages_free);
		}
	}
	if (!p->open_method) {
		sb_printf(sb, "; uffd: unusable");
		if (COVERS(size, open_errno) && p->open_errno > 0)
			sb_printf(sb, " (%s)", strerror(p->open_errno));
		return;
	}
	sb_printf(sb, "; uffd: ");
	if ((p->features & KNOWN_FEATURES) == KNOWN_FEATURES) {
		sb_printf(sb, "all features");
	} else {
		sb_printf(sb, "missing ");
		sb_missing(sb, p->features, true);
	}
	sb_printf(sb, " (%s)", method_name(p->open_method));
}

static void format_json(struct sbuf *sb, const struct uffd_probe *p,
			size_t size)
{
	bool regs = COVERS(size, reg_errno), errs = COVERS(size, syscall_errno);
	const char *method = method_name(p->open_method);
	char key[32];
	int t;

	sb_printf(sb, "{\"kernel\":");
	if (COVERS(size, kernel_release) && *p->kernel_release)
		sb_json_str(sb, p->kernel_release);
	else
		sb_printf(sb, "null");
	sb_printf(sb, ",\"uffd_usable\":%s", method ? "true" : "false");
	if (method)
		sb_printf(sb, ",\"open_method\":\"%s\"", method);
	else
		sb_printf(sb, ",\"open_method\":null");
	sb_json_int(sb, "open_errno", p->open_errno, COVERS(size, open_errno));
	sb_json_int(sb, "dev_errno", p->dev_errno, errs);
	sb_json_int(sb, "syscall_errno", p->syscall_errno, errs);
	sb_printf(sb, ",\"features\":%llu,\"features_missing\":",
		  (unsigned long long)p->features);
	if (method) {
		sb_printf(sb, "\"");
		sb_missing(sb, p->features, false);
		sb_printf(sb, "\"");
	} else {
		sb_printf(sb, "null");
	}
	sb_printf(sb, ",\"ioctls\":");
	if (method) {
		sb_printf(sb, "\"");
		sb_ioctls(sb, p->ioctls);
		sb_printf(sb, "\"");
	} else {
		sb_printf(sb, "null");
	}
	for (t = 0; t < LIBUFFD_PROBE_MEM_TYPES; t++) {
		sb_printf(sb, ",\"reg_ioctls_%s\":", mem_names[t]);
		if (regs && p->reg_ioctls[t]) {
			sb_printf(sb, "\"");
			sb_ioctls(sb, p->reg_ioctls[t]);
			sb_printf(sb, "\"");
		} else {
			sb_printf(sb, "null");
		}
		snprintf(key, sizeof(key), "reg_errno_%s", mem_names[t]);
		sb_json_int(sb, key, p->reg_errno[t], regs && method);
	}
	sb_json_bool(sb, "native_zero_page", p->native_zero_page,
		     COVERS(size, native_zero_page));
	sb_printf(sb, ",\"thp_enabled\":");
	if (COVERS(size, thp_enabled) && p->thp_enabled >= 0)
		sb_printf(sb, "\"%s\"", thp_names[p->thp_enabled]);
	else
		sb_printf(sb, "null");
	sb_json_bool(sb, "thp_zero_page", p->thp_zero_page,
		     COVERS(size, thp_zero_page));
	sb_json_int(sb, "unprivileged_userfaultfd",
		    p->unprivileged_userfaultfd,
		    COVERS(size, unprivileged_userfaultfd));
	sb_json_int(sb, "huge_page_size", (long long)p->huge_page_size,
		    COVERS(size, huge_page_size) && p->huge_page_size);
	sb_json_int(sb, "huge_pages_total", p->huge_pages_total,
		    COVERS(size, huge_pages_total));
	sb_json_int(sb, "huge_pages_free", p->huge_pages_free,
		    COVERS(size, huge_pages_free));
	sb_json_int(sb, "huge_pages_rsvd", p->huge_pages_rsvd,
		    COVERS(size, huge_pages_rsvd));
	sb_printf(sb, "}");
}

LUFFD_API int uffd_probe_format(const struct uffd_probe *up, int fmt,
				char *buf, size_t len)
{
	struct sbuf sb = { .buf = buf, .len = len };
	struct uffd_probe p;
	size_t size;

	if (!up || !up->size ||
	    (fmt != LIBUFFD_FMT_TEXT && fmt != LIBUFFD_FMT_JSON) ||
	    (!buf && len))
		return luffd_fail(-EINVAL, "uffd_probe_format: bad arguments");
	/* what lies beyond the caller's struct is not read at all */
	size = LUFFD_MIN(up->size, sizeof(p));
	probe_unknown(&p, size);
	memcpy(&p, up, size);
	p.kernel_release[sizeof(p.kernel_release) - 1] = '\0';
	if (p.thp_enabled >= (int)LUFFD_ARRAY_SIZE(thp_names))
		p.thp_enabled = -1;
	if (len)
		buf[0] = '\0';
	if (fmt == LIBUFFD_FMT_JSON)
		format_json(&sb, &p, size);
	else
		format_text(&sb, &p, size);
	if (sb.used > (size_t)INT32_MAX)
		return luffd_fail(-EINVAL, "uffd_probe_format: too long");
	return (int)sb.used;
}
