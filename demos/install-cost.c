/* SPDX-License-Identifier: MIT */
/*
 * install-cost - what an eager restore of a file image into a userfaultfd
 * region costs, by the way pages are read and installed (issue 13).
 *
 * The image is read in chunks and every chunk installed, with no fault
 * taken: buffered or O_DIRECT pread into a reused buffer then UFFDIO_COPY,
 * or pread into an empty anonymous staging range then UFFDIO_MOVE (the
 * read faults fresh pages in, the move takes them out again).  The
 * baseline is the kernel's own restore, mmap(MAP_PRIVATE) of the image
 * touched one word per page.  libc only, on purpose: no libuffd in the
 * measured path.  One thread on CPU 0; reps interleaved, medians printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/* Headers here are 6.1; MOVE came in 6.8. */
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

#define MAX_REPS	64
#define MAX_RETRIES	1000000UL
#define MIB		(1024.0 * 1024.0)

enum method { MMAP_RO, MMAP_RW, COPY_BUF, COPY_DIRECT, MOVE_DIRECT, MOVE_BUF };

static const char *const method_name[] = {
	[MMAP_RO]	= "kernel mmap, read touch",
	[MMAP_RW]	= "kernel mmap, read+write (COW)",
	[COPY_BUF]	= "buffered pread + COPY",
	[COPY_DIRECT]	= "O_DIRECT pread + COPY",
	[MOVE_DIRECT]	= "O_DIRECT pread + MOVE",
	[MOVE_BUF]	= "buffered pread + MOVE",
};

struct row {
	enum method	m;
	size_t		chunk;		/* 0 for the mmap rows */
	int		warm;
	double		ms[MAX_REPS], inst_ms[MAX_REPS];
	double		anon[MAX_REPS], file[MAX_REPS], cache[MAX_REPS];
	unsigned long	retries;
	int		disturbed;	/* reps not in the cache state named */
};

#define ROW(m_, chunk_, warm_) { .m = m_, .chunk = chunk_, .warm = warm_ }
#define K64	(64 << 10)
#define M1	(1 << 20)
static struct row rows[] = {
	ROW(MMAP_RO, 0, 0), ROW(MMAP_RW, 0, 0),
	ROW(COPY_BUF, K64, 0), ROW(COPY_BUF, M1, 0),
	ROW(COPY_DIRECT, K64, 0), ROW(COPY_DIRECT, M1, 0),
	ROW(MOVE_DIRECT, K64, 0), ROW(MOVE_DIRECT, M1, 0),
	ROW(MOVE_BUF, K64, 0), ROW(MOVE_BUF, M1, 0),
	ROW(MMAP_RO, 0, 1), ROW(MMAP_RW, 0, 1),
	ROW(COPY_BUF, K64, 1), ROW(COPY_BUF, M1, 1),
	ROW(MOVE_BUF, K64, 1), ROW(MOVE_BUF, M1, 1),
};
#define NROWS	(sizeof(rows) / sizeof(rows[0]))

static size_t size, page;
static int fd, dfd, uffd;	/* image buffered, image O_DIRECT */
static unsigned char *cmap;	/* the image mapped, never touched: mincore */
static unsigned char *vec;
static char *vbuf;		/* verify and warm-up buffer, 1 MiB */
static const char *drop_failed;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* kB of a line of /proc/self/status */
static long status_kb(const char *key)
{
	char line[256];
	long kb = -1;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return kb;
}

/* MiB of the image in the page cache, mapped or not */
static double cached_mib(void)
{
	size_t i, n = 0;

	if (mincore(cmap, size, vec))
		return -1;
	for (i = 0; i < size / page; i++)
		n += vec[i] & 1;
	return n * page / MIB;
}

static int read_full(int f, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	ssize_t r;

	while (done < len) {
		r = pread(f, (char *)buf + done, len - done, off + done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += r;
	}
	return 0;
}

/* A partial image is removed, so a later run never takes it for whole. */
static int make_image(const char *path)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, *w = (uint64_t *)vbuf;
	size_t off, i;
	ssize_t n;
	int f, ret = 0;

	f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (f < 0)
		return -errno;
	fprintf(stderr, "install-cost: making %s (%zu MiB)\n", path, size >> 20);
	for (off = 0; off < size && !ret; off += 1 << 20) {
		/* xorshift64: never a zero word, so never a zero page */
		for (i = 0; i < (1 << 20) / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			w[i] = x;
		}
		n = pwrite(f, vbuf, 1 << 20, off);
		if (n != 1 << 20)
			ret = n < 0 ? -errno : -EIO;
	}
	if (!ret && fdatasync(f))
		ret = -errno;
	close(f);
	if (ret)
		unlink(path);
	return ret;
}

static void set_cache(int warm)
{
	size_t off;
	int dc;

	if (warm) {
		for (off = 0; off < size; off += 1 << 20)
			if (read_full(fd, vbuf, 1 << 20, off))
				break;
		return;
	}
	fdatasync(fd);
	dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (dc < 0 || write(dc, "1\n", 2) != 2) {
		if (!drop_failed)
			fprintf(stderr, "install-cost: vm.drop_caches: %s: cold rows are NOT cold\n",
				strerror(errno));
		drop_failed = "NOT dropped";
	}
	if (dc >= 0)
		close(dc);
}

/*
 * One COPY or MOVE of @len bytes, retried where the kernel did part of
 * it (EAGAIN, with the count done) or none yet for a passing reason:
 * EBUSY from MOVE when a page still has the pin of the O_DIRECT read
 * that filled it (the bio may wake the reader before it unpins).
 */
static int install(int move, char *dst, char *src, size_t len,
		   unsigned long *retries)
{
	unsigned long tries = 0;
	long done;
	int ret;

	while (len) {
		if (move) {
			struct uffdio_move m = {
				.dst = (uintptr_t)dst, .src = (uintptr_t)src,
				.len = len, .mode = UFFDIO_MOVE_MODE_DONTWAKE,
			};
			ret = ioctl(uffd, UFFDIO_MOVE, &m);
			done = m.move;
		} else {
			struct uffdio_copy c = {
				.dst = (uintptr_t)dst, .src = (uintptr_t)src,
				.len = len, .mode = UFFDIO_COPY_MODE_DONTWAKE,
			};
			ret = ioctl(uffd, UFFDIO_COPY, &c);
			done = c.copy;
		}
		if (!ret)
			return done == (long)len ? 0 : -EIO;
		ret = errno;
		if (done > 0) {
			dst += done;
			src += done;
			len -= done;
		}
		if (ret != EAGAIN && !(move && ret == EBUSY))
			return -ret;
		if (++tries > MAX_RETRIES)
			return -ret;
		(*retries)++;
		if (ret == EBUSY)
			sched_yield();
	}
	return 0;
}

/* Every byte of @region against the image, read around the page cache. */
static int verify(const char *region)
{
	size_t off, i;
	int ret;

	for (off = 0; off < size; off += 1 << 20) {
		ret = read_full(dfd, vbuf, 1 << 20, off);
		if (ret)
			return ret;
		if (!memcmp(region + off, vbuf, 1 << 20))
			continue;
		for (i = 0; region[off + i] == vbuf[i]; i++)
			;
		fprintf(stderr, "install-cost: MISMATCH at byte %zu\n", off + i);
		return -EBADMSG;
	}
	return 0;
}

/* Read every chunk of the image into @buf and install it at @region. */
static int restore(struct row *r, char *region, char *buf, double *ms,
		   double *inst, unsigned long *retries)
{
	int move = r->m == MOVE_DIRECT || r->m == MOVE_BUF;
	int rf = (r->m == COPY_DIRECT || r->m == MOVE_DIRECT) ? dfd : fd;
	double t0 = now_ms(), i0;
	size_t off;
	int ret;

	for (off = 0; off < size; off += r->chunk) {
		ret = read_full(rf, buf, r->chunk, off);
		if (ret)
			return ret;
		i0 = now_ms();
		ret = install(move, region + off, buf, r->chunk, retries);
		*inst += now_ms() - i0;
		if (ret)
			return ret;
	}
	*ms = now_ms() - t0;
	return 0;
}

static int run(struct row *r, int rep)
{
	long anon0 = status_kb("RssAnon"), file0 = status_kb("RssFile");
	double cache0 = cached_mib(), full = size / MIB;
	int mapped = r->m == MMAP_RO || r->m == MMAP_RW;
	char *region = MAP_FAILED, *buf = MAP_FAILED;
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	unsigned long retries = 0;
	double ms = 0, inst = 0;
	size_t off;
	int ret;

	if (mapped) {
		/* the kernel's own restore: one word per page, in order */
		region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			      fd, 0);
		if (region == MAP_FAILED)
			return -errno;
		ms = now_ms();
		for (off = 0; off < size; off += page) {
			volatile uint64_t *w = (uint64_t *)(region + off);
			uint64_t v = *w;

			if (r->m == MMAP_RW)
				*w = v;
		}
		ms = now_ms() - ms;
		goto account;
	}

	region = mmap(NULL, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = mmap(NULL, r->chunk, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED || buf == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	reg.range.start = (uintptr_t)region;
	reg.range.len = size;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		ret = -errno;
		goto out;
	}
	if (!(reg.ioctls & (1ULL << _UFFDIO_MOVE))) {
		fprintf(stderr, "install-cost: no UFFDIO_MOVE on the region\n");
		ret = -EOPNOTSUPP;
		goto out;
	}
	/*
	 * The staging range stays in small folios: moving one 4K page out
	 * of a large folio would split it first, a cost of the setting,
	 * not of MOVE.  The COPY buffer is reused, so fault it in now.
	 */
	if (r->m == MOVE_DIRECT || r->m == MOVE_BUF)
		madvise(buf, r->chunk, MADV_NOHUGEPAGE);
	else
		memset(buf, 0x5a, r->chunk);
	ret = restore(r, region, buf, &ms, &inst, &retries);
	if (ret)
		goto out;

account:
	r->ms[rep] = ms;
	r->inst_ms[rep] = inst;
	r->anon[rep] = (status_kb("RssAnon") - anon0) / 1024.0;
	r->file[rep] = (status_kb("RssFile") - file0) / 1024.0;
	r->cache[rep] = cached_mib();
	r->retries += retries;
	/*
	 * vm.drop_caches is global: a cold run elsewhere on the machine
	 * can empty the cache under a warm run here.  Count, never hide.
	 */
	if (r->warm ? cache0 < full || r->cache[rep] < full : cache0 > 0)
		r->disturbed++;
	if (mapped)
		goto out;
	/* Unregistered, a page never installed reads as zero: a mismatch. */
	if (ioctl(uffd, UFFDIO_UNREGISTER, &reg.range))
		ret = -errno;
	else
		ret = verify(region);
out:
	if (buf != MAP_FAILED)
		munmap(buf, r->chunk);
	if (region != MAP_FAILED)
		munmap(region, size);
	return ret;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_REPS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n & 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void print_table(int reps)
{
	double base[2] = { 0, 0 }, pages = (double)(size / page);
	size_t i;

	for (i = 0; i < NROWS; i++)
		if (rows[i].m == MMAP_RO)
			base[rows[i].warm] = median(rows[i].ms, reps);
	printf("install-cost: %zu MiB image, %zu pages, %d reps, 1 thread on CPU 0, medians\n",
	       size >> 20, size / page, reps);
	printf("cold = fdatasync + vm.drop_caches=1 before the run (%s); warm = image read first\n",
	       drop_failed ? drop_failed : "done");
	printf("ratio = to the kernel mmap read touch of the same cache state; install = time in the ioctls only\n");
	printf("anon/file = RssAnon/RssFile growth, cache = image pages in the page cache, after the run\n");
	printf("dist = reps whose cache state was not as named (cold: image cached at the start; warm: not all cached at start or end)\n\n");
	printf("%-5s %-30s %5s %9s %6s %8s %8s %8s %8s %8s %7s %4s\n",
	       "cache", "method", "chunk", "ms", "ratio", "ns/page",
	       "inst/pg", "anon MiB", "file MiB", "cacheMiB", "retries",
	       "dist");
	for (i = 0; i < NROWS; i++) {
		struct row *r = &rows[i];
		double ms = median(r->ms, reps);
		char chunk[24] = "-", inst[24] = "-";

		if (r->chunk) {
			snprintf(chunk, sizeof(chunk), "%zuK", r->chunk >> 10);
			snprintf(inst, sizeof(inst), "%.0f",
				 median(r->inst_ms, reps) * 1e6 / pages);
		}
		printf("%-5s %-30s %5s %9.1f %6.2f %8.0f %8s %8.1f %8.1f %8.1f %7lu %4d\n",
		       r->warm ? "warm" : "cold", method_name[r->m], chunk, ms,
		       ms / base[r->warm], ms * 1e6 / pages, inst,
		       median(r->anon, reps), median(r->file, reps),
		       median(r->cache, reps), r->retries, r->disturbed);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: install-cost [--size N[KMG]] [--reps N] [--image PATH]\n"
		"\n"
		"Restore an image into a userfaultfd region eagerly, in 64K and 1M\n"
		"chunks: buffered or O_DIRECT pread, then UFFDIO_COPY from a reused\n"
		"buffer or UFFDIO_MOVE from an anonymous staging range; against the\n"
		"kernel's mmap(MAP_PRIVATE) of the image, touched read-only and\n"
		"read+write; cold and warm page cache.  Every uffd run is checked\n"
		"byte for byte against the image (exit 1 on a mismatch).\n"
		"\n"
		"  --size N    image size, a multiple of 1M (default 256M)\n"
		"  --reps N    repetitions, interleaved (default 5, at most %d)\n"
		"  --image P   image file, made if missing (pseudo-random, no holes)\n"
		"              (default /var/tmp/install-cost-<size>M.img)\n"
		"  --help      this text\n", MAX_REPS);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "image", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MOVE };
	char path[4096], *end;
	const char *image = NULL;
	int c, reps = 5, rep, ret;
	cpu_set_t cpus;
	size_t i;

	size = 256 << 20;
	while ((c = getopt_long(argc, argv, "s:r:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			size = strtoull(optarg, &end, 0);
			size <<= *end == 'G' ? 30 : *end == 'M' ? 20 :
				 *end == 'K' ? 10 : 0;
			if (!size || size % (1 << 20) ||
			    (*end && (end[1] || !strchr("KMG", *end)))) {
				fprintf(stderr, "install-cost: --size: a multiple of 1M\n");
				return 2;
			}
			break;
		case 'r':
			reps = atoi(optarg);
			if (reps < 1 || reps > MAX_REPS) {
				fprintf(stderr, "install-cost: --reps: 1 to %d\n", MAX_REPS);
				return 2;
			}
			break;
		case 'i':
			image = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	page = sysconf(_SC_PAGESIZE);
	if (!image) {
		snprintf(path, sizeof(path), "/var/tmp/install-cost-%zuM.img",
			 size >> 20);
		image = path;
	}

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		fprintf(stderr, "install-cost: not pinned to CPU 0: %s\n",
			strerror(errno));

	vbuf = aligned_alloc(page, 1 << 20);
	vec = malloc(size / page);
	if (!vbuf || !vec)
		return 99;
	if (access(image, F_OK) && (ret = make_image(image))) {
		fprintf(stderr, "install-cost: %s: %s\n", image, strerror(-ret));
		return 99;
	}
	fd = open(image, O_RDONLY | O_CLOEXEC);
	dfd = open(image, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fd < 0 || dfd < 0) {
		fprintf(stderr, "install-cost: open %s: %s\n", image, strerror(errno));
		return 99;
	}
	/* a hole would be read as zeroes by every method: not a restore */
	if ((size_t)lseek(fd, 0, SEEK_END) != size ||
	    (size_t)lseek(fd, 0, SEEK_HOLE) != size) {
		fprintf(stderr, "install-cost: %s is not %zu bytes without holes\n",
			image, size);
		return 99;
	}
	cmap = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (cmap == MAP_FAILED)
		return 99;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		fprintf(stderr, "install-cost: userfaultfd with UFFD_FEATURE_MOVE: %s\n",
			strerror(errno));
		return 77;
	}

	for (rep = 0; rep < reps; rep++) {
		fprintf(stderr, "install-cost: rep %d/%d\n", rep + 1, reps);
		for (i = 0; i < NROWS; i++) {
			set_cache(rows[i].warm);
			ret = run(&rows[i], rep);
			if (ret) {
				fprintf(stderr, "install-cost: %s %s %zuK: %s\n",
					rows[i].warm ? "warm" : "cold",
					method_name[rows[i].m],
					rows[i].chunk >> 10, strerror(-ret));
				return ret == -EBADMSG ? 1 : 99;
			}
		}
	}
	print_table(reps);
	return 0;
}
