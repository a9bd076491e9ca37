/* SPDX-License-Identifier: MIT */
/*
 * The file pager: a region restored from a snapshot file made here comes
 * back byte for byte through every engine; zero pages (written zeros,
 * holes, the part of the region past the end of the file) map the shared
 * zero page; read-ahead and prefetch fill each page exactly once even
 * while several threads race them; read errors (the file shrinking under
 * the pager, an injected EIO) poison the page so its toucher gets SIGBUS,
 * and the handler goes on serving the others; bad specs are refused.
 *
 * Oracles: contents, /proc/self/pagemap (present bit, the zero page's
 * PFN), and the statistics once the handler and the prefetch thread are
 * stopped (so that every counter is final).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"

/*
 * The image: FILE_PAGES whole pages plus TAIL_BYTES of one more, then a
 * region of REGION_PAGES, so the last ones are past the end of the file.
 * Pages HOLE_A..HOLE_B are a hole (never written), every page p with
 * p % 7 == 3 holds written zeros, the rest a pattern.
 */
#define FILE_PAGES	64
#define TAIL_BYTES	123
#define REGION_PAGES	80
#define HOLE_A		20
#define HOLE_B		28
#define BIG_PAGES	8192	/* 32 MiB, for the races */
#define NTHREADS	4

static size_t ps;
static char dir[] = "/tmp/test-file-XXXXXX";
static char path[256];
static char spec[512];
static uint64_t file_len;

/* ------------------------------------------------------- the image */

static bool zero_kind(uint64_t p)
{
	return (p >= HOLE_A && p < HOLE_B) || p % 7 == 3;
}

static uint64_t word(uint64_t p, uint64_t w)
{
	return ((p + 1) * 0x9e3779b97f4a7c15ull) ^ (w << 3) ^ 0x5a;
}

/* Page @p of the image, as the region must show it. */
static void expect_page(uint64_t p, uint64_t len, uint8_t *out)
{
	uint64_t *w = (uint64_t *)(void *)out, i;
	uint64_t start = p * ps;

	memset(out, 0, ps);
	if (start >= len || zero_kind(p))
		return;
	for (i = 0; i < ps / 8; i++)
		w[i] = word(p, i);
	if (len - start < ps)
		memset(out + (len - start), 0, ps - (len - start));
}

/* Write an image of @pages pages plus @tail bytes to @file. */
static uint64_t make_image(const char *file, uint64_t pages, uint64_t tail)
{
	uint64_t len = pages * ps + tail, p;
	uint8_t *buf = malloc(ps);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);	/* holes stay */
	for (p = 0; p * ps < len; p++) {
		size_t n = len - p * ps < ps ? len - p * ps : ps;

		if (p >= HOLE_A && p < HOLE_B)
			continue;
		expect_page(p, len, buf);
		ck_assert_int_eq(pwrite(fd, buf, n, (off_t)(p * ps)),
				 (ssize_t)n);
	}
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	free(buf);
	return len;
}

static void setup(void)
{
	ps = page_size();
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/image", dir);
	file_len = make_image(path, FILE_PAGES, TAIL_BYTES);
	ctx_setup();
}

static void teardown(void)
{
	char other[300];

	ctx_teardown();
	unlink(path);
	snprintf(other, sizeof(other), "%s/big", dir);
	unlink(other);
	rmdir(dir);
}

static struct uffd_region *make(const char *file, const char *args,
				size_t pages)
{
	struct uffd_region *r = NULL;
	int ret;

	snprintf(spec, sizeof(spec), "file:path=%s%s%s", file,
		 *args ? "," : "", args);
	ret = make_region(ctx, LIBUFFD_MEM_ANON, pages, spec, &r);
	ck_assert_msg(ret == 0, "%s: %d (%s)", spec, ret, uffd_last_error());
	return r;
}

/* Stop handler and helpers: the counters are then final. */
static struct uffd_stats final_stats(struct uffd_region *r)
{
	struct uffd_stats st;

	uffd_ctx_stop(ctx);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	return st;
}

static void check_page(const uint8_t *base, uint64_t p, uint64_t len)
{
	uint8_t want[ps];

	expect_page(p, len, want);
	ck_assert_msg(!memcmp(base + p * ps, want, ps),
		      "%s: page %llu differs", spec, (unsigned long long)p);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void shuffle(uint32_t *v, size_t n, uint64_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	for (i = n - 1; i > 0; i--) {
		size_t j = rnd(&seed) % (i + 1);
		uint32_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

/* Pages of an image of @pages whole pages that hold data: no holes. */
static uint64_t data_pages(uint64_t pages)
{
	return pages - (HOLE_B - HOLE_A);
}

/* ------------------------------------------------------- restore */

static const char *const engines[] = {
	"engine=uring,readahead=1",
	"",					/* the defaults */
	"engine=uring,readahead=8,prefetch=1",
	"engine=uring,prefetch=1",
	"engine=uring,direct=1,readahead=1",
	"engine=uring,direct=1,readahead=16,prefetch=1",
	"engine=pread,readahead=1",
	"engine=pread,readahead=16,prefetch=1",
	"engine=pread,direct=1,readahead=4",
	"engine=mmap,readahead=1",
	"engine=mmap,readahead=16,prefetch=1",
};

/* Every byte, in a random order, through each engine. */
START_TEST(restore_exact)
{
	struct uffd_region *r = make(path, engines[_i], REGION_PAGES);
	const uint8_t *base = uffd_region_addr(r);
	uint32_t order[REGION_PAGES];
	struct uffd_stats st;
	size_t i;

	shuffle(order, REGION_PAGES, 42 + (uint64_t)_i);
	for (i = 0; i < REGION_PAGES; i++)
		check_page(base, order[i], file_len);
	st = final_stats(r);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, REGION_PAGES);
	ck_assert_uint_eq(st.poisoned, 0);
	ck_assert_uint_eq(st.pager_errors, 0);
	ck_assert_uint_ge(st.faults_read, 1);
	ck_assert_uint_eq(present_pages(base, REGION_PAGES * ps),
			  REGION_PAGES);
}
END_TEST

/* offset=: region page 0 is file page 3. */
START_TEST(restore_offset)
{
	struct uffd_region *r;
	const uint8_t *base;
	uint8_t want[ps];
	char args[64];
	uint64_t p;

	snprintf(args, sizeof(args), "offset=%zu,readahead=4", 3 * ps);
	r = make(path, args, 16);
	base = uffd_region_addr(r);
	for (p = 0; p < 16; p++) {
		expect_page(p + 3, file_len, want);
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "page %llu", (unsigned long long)p);
	}
}
END_TEST

/* ------------------------------------------------------- zero pages */

static const char *const zero_engines[] = {
	"engine=uring,readahead=1",
	"engine=uring,readahead=16",
	"engine=uring,direct=1,readahead=16,prefetch=1",
	"engine=pread,readahead=4",
};

/*
 * Written zeros, the hole and the part past the end map the zero page;
 * data pages, and the partial last page, are real pages.
 */
START_TEST(zero_pages_mapped)
{
	struct uffd_region *r = make(path, zero_engines[_i], REGION_PAGES);
	const uint8_t *base = uffd_region_addr(r);
	uint64_t zpfn = zero_page_pfn(), pfn, p, nzero = 0;
	struct uffd_stats st;
	int present;

	for (p = 0; p < REGION_PAGES; p++)
		check_page(base, p, file_len);
	for (p = 0; p < REGION_PAGES; p++) {
		bool z = p > FILE_PAGES || zero_kind(p);

		ck_assert_int_eq(page_lookup(base + p * ps, &present, &pfn),
				 0);
		ck_assert_msg(present, "page %llu absent",
			      (unsigned long long)p);
		ck_assert_msg(z == (pfn == zpfn), "%s: page %llu: pfn %#llx",
			      spec, (unsigned long long)p,
			      (unsigned long long)pfn);
		nzero += z;
	}
	st = final_stats(r);
	ck_assert_uint_eq(st.pages_zero, nzero);
	ck_assert_uint_eq(st.pages_copy, REGION_PAGES - nzero);
}
END_TEST

/* The mmap engine copies what the file has; only past the end is zero. */
START_TEST(zero_pages_mmap)
{
	struct uffd_region *r = make(path, "engine=mmap,readahead=8",
				     REGION_PAGES);
	const uint8_t *base = uffd_region_addr(r);
	uint64_t zpfn = zero_page_pfn(), pfn, p;
	int present;

	for (p = 0; p < REGION_PAGES; p++)
		check_page(base, p, file_len);
	for (p = 0; p < REGION_PAGES; p++) {
		ck_assert_int_eq(page_lookup(base + p * ps, &present, &pfn),
				 0);
		ck_assert_msg(present && (p > FILE_PAGES) == (pfn == zpfn),
			      "page %llu: pfn %#llx", (unsigned long long)p,
			      (unsigned long long)pfn);
	}
}
END_TEST

/* Bytes this process has read with read(2) and kin: /proc/self/io rchar. */
static uint64_t rchar(void)
{
	char buf[512];
	const char *at;
	ssize_t n;
	int fd = open("/proc/self/io", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	at = strstr(buf, "rchar: ");
	ck_assert_ptr_nonnull(at);
	return strtoull(at + 7, NULL, 10);
}

/*
 * The hole and the pages past the end are mapped without reading the
 * file: the store's map of holes answers.  With engine=pread the
 * handler's reads count in rchar; touching all of them adds only the
 * fault messages the handler reads (32 bytes each), while one data page
 * adds a page: the oracle sees reads.  They are touched last page first:
 * in order, the faults would be a stream, whose read-ahead goes on into
 * the data past the hole, as it should.
 */
START_TEST(holes_without_io)
{
	struct uffd_region *r = make(path, "engine=pread,readahead=4",
				     REGION_PAGES);
	const uint8_t *base = uffd_region_addr(r);
	uint64_t before, p, zpfn = zero_page_pfn(), pfn;
	int present;

	before = rchar();
	for (p = HOLE_B; p-- > HOLE_A;)
		check_page(base, p, file_len);
	for (p = REGION_PAGES; p-- > FILE_PAGES + 4;)
		check_page(base, p, file_len);
	ck_assert_uint_lt(rchar() - before, ps);
	for (p = HOLE_A; p < HOLE_B; p++) {
		ck_assert_int_eq(page_lookup(base + p * ps, &present, &pfn),
				 0);
		ck_assert(present && pfn == zpfn);
	}
	before = rchar();
	check_page(base, 0, file_len);
	ck_assert_uint_ge(rchar() - before, ps);
}
END_TEST

/*
 * hole_gap=16: the hole inside the 16-page window around it is read with
 * the data on both sides, in one request (rchar sees 16 pages, not 8),
 * and its pages still map the zero page and do not count as read in.
 */
START_TEST(hole_gap_reads_through)
{
	struct uffd_region *r = make(path, "engine=pread,readahead=16,"
				     "hole_gap=16", REGION_PAGES);
	const uint8_t *base = uffd_region_addr(r);
	uint64_t before, p, zpfn = zero_page_pfn(), pfn;
	struct uffd_stats st;
	int present;

	before = rchar();
	check_page(base, HOLE_A + 2, file_len);
	ck_assert_uint_ge(rchar() - before, 16 * ps);
	for (p = 16; p < 32; p++) {
		check_page(base, p, file_len);
		ck_assert_int_eq(page_lookup(base + p * ps, &present, &pfn),
				 0);
		ck_assert(present);
		if (zero_kind(p))
			ck_assert_uint_eq(pfn, zpfn);
	}
	st = final_stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_read_in, 16 - (HOLE_B - HOLE_A));
}
END_TEST

/* A write to a zero page gets a page of its own, in one fault. */
START_TEST(write_zero_page)
{
	struct uffd_region *r = make(path, "readahead=8", REGION_PAGES);
	uint8_t *base = uffd_region_addr(r);
	uint64_t zpfn = zero_page_pfn(), pfn;
	struct uffd_stats st;
	int present;

	poke(base + 3 * ps + 5, 77);	/* page 3 is zero in the file */
	ck_assert_uint_eq(peek(base + 3 * ps + 5), 77);
	ck_assert_int_eq(page_lookup(base + 3 * ps, &present, &pfn), 0);
	ck_assert(present && pfn != zpfn);
	/* its window neighbours came with it, right */
	check_page(base, 2, file_len);
	check_page(base, 4, file_len);
	st = final_stats(r);
	ck_assert_uint_eq(st.faults_write, 1);
	ck_assert_uint_eq(st.faults_read, 0);
}
END_TEST

/* MADV_DONTNEED throws the contents away: the page reads back as zeros. */
START_TEST(removed_reads_zero)
{
	struct uffd_region *r = make(path, "readahead=4", REGION_PAGES);
	uint8_t *base = uffd_region_addr(r);

	check_page(base, 1, file_len);
	ck_assert_int_eq(madvise(base + ps, ps, MADV_DONTNEED), 0);
	ck_assert_uint_eq(peek(base + ps + 100), 0);
	check_page(base, 2, file_len);	/* neighbours keep their data */
}
END_TEST

/*
 * On a memfd, MADV_DONTNEED keeps the pages (they are in the memfd) and
 * MADV_REMOVE punches them out, with the same REMOVE event.  A page
 * DONTNEED'd before it was ever restored is restored when first touched
 * (it read zeros for ever, found by tests/stress); one punched out after
 * it was restored reads zeros.
 */
START_TEST(memfd_dontneed_keeps)
{
	struct uffd_region *r = NULL;
	uint8_t *base;
	int ret;

	snprintf(spec, sizeof(spec), "file:path=%s,readahead=1", path);
	ret = make_region(ctx, LIBUFFD_MEM_MEMFD, REGION_PAGES, spec, &r);
	ck_assert_msg(ret == 0, "%s: %d (%s)", spec, ret, uffd_last_error());
	base = uffd_region_addr(r);
	/* never touched, discarded, touched: the snapshot's */
	ck_assert_int_eq(madvise(base + ps, ps, MADV_DONTNEED), 0);
	check_page(base, 1, file_len);
	/* restored, discarded: still there (the memfd has it) */
	check_page(base, 2, file_len);
	ck_assert_int_eq(madvise(base + 2 * ps, ps, MADV_DONTNEED), 0);
	check_page(base, 2, file_len);
	/* restored, punched out: zeros */
	check_page(base, 4, file_len);
	ck_assert_int_eq(madvise(base + 4 * ps, ps, MADV_REMOVE), 0);
	ck_assert_uint_eq(peek(base + 4 * ps + 100), 0);
	check_page(base, 5, file_len);	/* neighbours keep their data */
}
END_TEST

/*
 * The windows read ahead of a stream are filled as they come back, all
 * but their marker page.  Pages the application discarded while they
 * were being read must stay discarded: such fills brought the
 * snapshot's data back (found by tests/stress under TSan).  The image
 * is dropped from the page cache first, so that reads are still out
 * when the MADV_DONTNEED comes; it takes the odd pages only, so that
 * the windows' first pages, their markers, stay.
 */
START_TEST(readahead_discarded)
{
	const uint64_t stream = 256, gone = 512;
	static uint8_t zero[65536];
	uint64_t len, s0, p, bad = 0;
	struct uffd_region *r;
	const uint8_t *base;
	char big[300];
	int fd;

	ck_assert_uint_le(ps, sizeof(zero));
	snprintf(big, sizeof(big), "%s/big", dir);
	len = make_image(big, BIG_PAGES, 0);
	r = make(big, "readahead=4,readahead_max=64", BIG_PAGES);
	base = uffd_region_addr(r);
	fd = open(big, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (s0 = 0; s0 + stream + gone < BIG_PAGES / 2;
	     s0 += stream + gone) {
		ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED),
				 0);
		for (p = s0; p < s0 + stream; p++)
			check_page(base, p, len);
		/* the windows ahead of the stream, while they are read */
		for (p = s0 + stream + 1; p < s0 + stream + gone; p += 2)
			ck_assert_int_eq(madvise((void *)(uintptr_t)
						 (base + p * ps), ps,
						 MADV_DONTNEED), 0);
		/* faults elsewhere fill what came back */
		check_page(base, BIG_PAGES - 1 - s0 / 64, len);
		usleep(2000);
		check_page(base, BIG_PAGES / 2 + s0 / 64, len);
		for (p = s0 + stream; p < s0 + stream + gone; p++)
			if (p & 1)
				bad += memcmp(base + p * ps, zero, ps) != 0;
			else
				check_page(base, p, len);
	}
	close(fd);
	ck_assert_msg(bad == 0, "%llu discarded pages read the snapshot's data",
		      (unsigned long long)bad);
	ck_assert_uint_eq(final_stats(r).pager_errors, 0);
}
END_TEST

/* ------------------------------------------------------- exactly once */

struct toucher {
	const uint8_t	*base;
	uint64_t	pages, len, seed;
	uint32_t	*order;
	long		bad;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t i;

	shuffle(t->order, t->pages, t->seed);
	for (i = 0; i < t->pages; i++) {
		uint64_t p = t->order[i];
		const uint64_t *w = (const uint64_t *)(const void *)
				    (t->base + p * ps);
		uint64_t want = p * ps >= t->len || zero_kind(p) ? 0 :
				word(p, 17);

		if (w[17] != want)
			t->bad++;
	}
	return NULL;
}

static const char *const race_specs[] = {
	"readahead=16",
	"readahead=1,prefetch=1",
	"readahead=8,prefetch=1",
	"engine=pread,readahead=4,prefetch=1",
	"engine=mmap,readahead=4,prefetch=1",
};

/*
 * Threads touch every page in their own random orders while read-ahead
 * and prefetch fill the same pages: each is still filled exactly once.
 */
START_TEST(exactly_once_racing)
{
	struct toucher t[NTHREADS];
	pthread_t th[NTHREADS];
	char big[300];
	struct uffd_region *r;
	const uint8_t *base;
	struct uffd_stats st;
	uint64_t len, p;
	int i;

	snprintf(big, sizeof(big), "%s/big", dir);
	len = make_image(big, BIG_PAGES - 100, 0);
	r = make(big, race_specs[_i], BIG_PAGES);
	base = uffd_region_addr(r);
	for (i = 0; i < NTHREADS; i++) {
		t[i] = (struct toucher){
			.base = base, .pages = BIG_PAGES, .len = len,
			.seed = 1000 + (uint64_t)i,
			.order = malloc(BIG_PAGES * sizeof(uint32_t)),
		};
		ck_assert_ptr_nonnull(t[i].order);
		ck_assert_int_eq(pthread_create(&th[i], NULL, touch_main,
						&t[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(join_timeout(th[i], NULL, TEST_WAIT_MS), 0);
		ck_assert_int_eq(t[i].bad, 0);
		free(t[i].order);
	}
	for (p = 0; p < BIG_PAGES; p += 97)
		check_page(base, p, len);
	st = final_stats(r);
	ck_assert_msg(st.pages_copy + st.pages_zero == BIG_PAGES,
		      "%s: copy %llu + zero %llu != %d (eexist %llu)",
		      race_specs[_i], (unsigned long long)st.pages_copy,
		      (unsigned long long)st.pages_zero, BIG_PAGES,
		      (unsigned long long)st.eexist);
	ck_assert_uint_eq(st.poisoned, 0);
	ck_assert_uint_eq(present_pages(base, BIG_PAGES * ps), BIG_PAGES);
	/* one reader per page: each data page read once, holes never */
	ck_assert_msg(st.pages_read_in == (strstr(race_specs[_i], "mmap") ?
					   0 : data_pages(BIG_PAGES - 100)),
		      "%s: %llu pages read", race_specs[_i],
		      (unsigned long long)st.pages_read_in);
}
END_TEST

/* ------------------------------------------------------- streams */

/*
 * Each of @nthreads threads reads its share of the big image's pages in
 * order (thread i the i-th slice): every fault but the first of a slice
 * continues its thread's stream, so the window doubles from readahead=4
 * to readahead_max=64 and the next windows are read ahead of the touch.
 * Without streams a fault would bring 4 pages: 2048 faults.  The faults
 * that find their page being read wait for that read (pager_misses
 * counts the faults that read for themselves), and no page is read
 * twice.
 */
struct slicer {
	const uint8_t	*base;
	uint64_t	from, to, len;
	long		bad;
};

static void *slice_main(void *arg)
{
	struct slicer *s = arg;
	uint64_t p;

	for (p = s->from; p < s->to; p++) {
		const uint64_t *w = (const uint64_t *)(const void *)
				    (s->base + p * ps);
		uint64_t want = p * ps >= s->len || zero_kind(p) ? 0 :
				word(p, 5);

		if (w[5] != want)
			s->bad++;
	}
	return NULL;
}

/* each twice: even cases 1 thread, odd ones 2 */
static const char *const stream_specs[] = {
	"readahead=4,readahead_max=64",
	"readahead=4,readahead_max=64",
	"engine=pread,readahead=4,readahead_max=64",
	"engine=pread,readahead=4,readahead_max=64",
	"engine=uring,direct=1,readahead=4,readahead_max=64",
	"engine=uring,direct=1,readahead=4,readahead_max=64",
	/* the prefetcher reads too: still each page once */
	"readahead=4,readahead_max=64,prefetch=1",
	"readahead=4,readahead_max=64,prefetch=1",
};

START_TEST(stream_grows)
{
	unsigned int nthreads = 1 + (unsigned int)(_i & 1), i;
	const char *args = stream_specs[_i];
	struct slicer sl[2];
	pthread_t th[2];
	char big[300];
	struct uffd_region *r;
	const uint8_t *base;
	struct uffd_stats st;
	uint64_t len, p, faults;

	snprintf(big, sizeof(big), "%s/big", dir);
	len = make_image(big, BIG_PAGES - 100, 0);
	r = make(big, args, BIG_PAGES);
	base = uffd_region_addr(r);
	for (i = 0; i < nthreads; i++) {
		sl[i] = (struct slicer){
			.base = base, .len = len,
			.from = BIG_PAGES / nthreads * i,
			.to = BIG_PAGES / nthreads * (i + 1),
		};
		ck_assert_int_eq(pthread_create(&th[i], NULL, slice_main,
						&sl[i]), 0);
	}
	for (i = 0; i < nthreads; i++) {
		ck_assert_int_eq(join_timeout(th[i], NULL, TEST_WAIT_MS), 0);
		ck_assert_int_eq(sl[i].bad, 0);
	}
	for (p = 0; p < BIG_PAGES; p += 61)
		check_page(base, p, len);
	st = final_stats(r);
	faults = st.faults_read + st.faults_write;
	ck_assert_msg(faults < BIG_PAGES / 16, "%s, %u threads: %llu faults",
		      args, nthreads, (unsigned long long)faults);
	/*
	 * misses: a slice's first faults, before it is a stream, and a
	 * few where every read slot was taken (with the prefetcher, also
	 * those that start a stream again past its pages); without streams
	 * every fault is one
	 */
	ck_assert_msg(strstr(args, "prefetch") ||
		      st.pager_misses * 4 <= faults,
		      "%s: %llu of %llu faults read for themselves", args,
		      (unsigned long long)st.pager_misses,
		      (unsigned long long)faults);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, BIG_PAGES);
	ck_assert_uint_eq(st.pages_read_in, data_pages(BIG_PAGES - 100));
	ck_assert_uint_eq(st.pager_errors, 0);
}
END_TEST

/*
 * A stream grown to readahead_max, then random touches far from it and
 * from each other: each brings in its readahead-aligned block of 4 pages
 * and nothing around it, as the first fault of a stream does.
 */
START_TEST(random_shrinks)
{
	static const uint64_t far[] = { 3001, 7003, 4097, 6150, 5003, 3555 };
	char big[300];
	struct uffd_region *r;
	const uint8_t *base;
	struct uffd_stats st;
	uint64_t len, p, before, misses;
	size_t i;

	snprintf(big, sizeof(big), "%s/big", dir);
	len = make_image(big, BIG_PAGES - 100, 0);
	r = make(big, "readahead=4,readahead_max=64", BIG_PAGES);
	base = uffd_region_addr(r);
	for (p = 0; p < 1024; p++)
		check_page(base, p, len);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	before = st.faults_read;
	misses = st.pager_misses;
	ck_assert_msg(before < 1024 / 16 && misses <= 4,
		      "%llu faults, %llu misses: no stream",
		      (unsigned long long)before, (unsigned long long)misses);
	for (i = 0; i < ARRAY_SIZE(far); i++) {
		uint64_t q = far[i], a = q - q % 4;

		check_page(base, q, len);
		/* the faulting page's run is filled first: wait for the rest */
		for (p = 0; p < 1000 &&
		     present_pages(base + a * ps, 4 * ps) < 4; p++)
			sleep_us(1000);
		ck_assert_msg(present_pages(base + (q - 128) * ps, 256 * ps) ==
			      4 && present_pages(base + a * ps, 4 * ps) == 4,
			      "page %llu: %ld present around it",
			      (unsigned long long)q,
			      present_pages(base + (q - 128) * ps, 256 * ps));
	}
	st = final_stats(r);
	ck_assert_uint_eq(st.faults_read - before, ARRAY_SIZE(far));
	ck_assert_uint_eq(st.pager_misses - misses, ARRAY_SIZE(far));
}
END_TEST

/* One touch, and the prefetcher brings in all the rest by itself. */
START_TEST(prefetch_fills_all)
{
	struct uffd_region *r = make(path, "readahead=1,prefetch=1",
				     REGION_PAGES);
	const uint8_t *base = uffd_region_addr(r);
	struct uffd_stats st;
	uint64_t p;

	check_page(base, 40, file_len);
	/* copy + zero is what counts: poll their sum, bounded */
	for (p = 0; p < 10000; p++) {
		ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
		if (st.pages_copy + st.pages_zero == REGION_PAGES)
			break;
		sleep_us(1000);
	}
	ck_assert_uint_eq(present_pages(base, REGION_PAGES * ps),
			  REGION_PAGES);
	for (p = 0; p < REGION_PAGES; p++)
		check_page(base, p, file_len);
	st = final_stats(r);
	ck_assert_uint_eq(st.faults_read, 1);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, REGION_PAGES);
	ck_assert_uint_gt(st.helper_cpu_ns, 0);
}
END_TEST

/* ------------------------------------------------------- I/O errors */

static const char *const err_engines[] = {
	"engine=uring,readahead=8",
	"engine=uring,direct=1,readahead=1",
	"engine=pread,readahead=8",
	"engine=mmap,readahead=8",
};

/*
 * The file shrinks under the pager: pages it held at init are errors
 * (SIGBUS), never zeros; the region past the old end is still zeros,
 * and the pages still in the file are still served.
 */
/* POISON (6.6) poisons a failed page; without it the library signals */
static uint64_t poisoned_pages(uint64_t failed)
{
	return uffd_ctx_features(ctx) & LIBUFFD_FEATURE_POISON ? failed : 0;
}

START_TEST(truncated_sigbus)
{
	struct uffd_region *r = make(path, err_engines[_i], REGION_PAGES);
	uint8_t *base = uffd_region_addr(r);
	void *where = NULL;
	struct uffd_stats st;
	uint8_t v;

	check_page(base, 0, file_len);
	ck_assert_int_eq(truncate(path, (off_t)(10 * ps)), 0);
	ck_assert_int_eq(touch_catch_sigbus(base + 40 * ps + 8, 0, &v,
					    &where), 1);
	ck_assert_ptr_eq(where, base + 40 * ps + 8);
	/* a second touch of the failed page: SIGBUS again */
	ck_assert_int_eq(touch_catch_sigbus(base + 40 * ps, 0, &v, NULL), 1);
	/* the handler lives on */
	check_page(base, 9, file_len);
	check_page(base, 5, file_len);
	check_page(base, 70, file_len);		/* past the old end */
	ck_assert_int_eq(touch_catch_sigbus(base + 63 * ps, 0, &v, NULL), 1);
	st = final_stats(r);
	ck_assert_uint_eq(st.poisoned, poisoned_pages(2));
	ck_assert_uint_eq(st.pager_errors, 2);
}
END_TEST

static const struct {
	const char	*args;
	uint64_t	page;		/* its inject_eio */
} inject_engines[] = {
	{ "engine=uring,readahead=8,inject_eio=13", 13 },
	{ "engine=uring,readahead=8,prefetch=1,inject_eio=13", 13 },
	{ "engine=pread,readahead=1,inject_eio=13", 13 },
	{ "engine=mmap,readahead=8,inject_eio=13", 13 },
	/* a hole's page, read without I/O, fails all the same */
	{ "engine=uring,readahead=8,inject_eio=22", HOLE_A + 2 },
	{ "engine=mmap,readahead=8,inject_eio=22", HOLE_A + 2 },
};

/* A read that fails: SIGBUS on that page only, its window still served. */
START_TEST(injected_eio)
{
	const uint64_t bad = inject_engines[_i].page;
	struct uffd_region *r = make(path, inject_engines[_i].args,
				     REGION_PAGES);
	uint8_t *base = uffd_region_addr(r);
	struct uffd_stats st;
	uint8_t v;
	uint64_t p;

	/* a neighbour first: its window holds the bad page */
	check_page(base, bad - 1, file_len);
	ck_assert_int_eq(touch_catch_sigbus(base + bad * ps, 0, &v, NULL), 1);
	v = 1;
	ck_assert_int_eq(touch_catch_sigbus(base + bad * ps, 1, &v, NULL), 1);
	for (p = 0; p < REGION_PAGES; p++)
		if (p != bad)
			check_page(base, p, file_len);
	st = final_stats(r);
	ck_assert_uint_eq(st.poisoned, poisoned_pages(1));
	ck_assert_uint_eq(st.pager_errors, 1);
	ck_assert_uint_eq(st.pages_copy + st.pages_zero, REGION_PAGES - 1);
}
END_TEST

/* ------------------------------------------------------- specs */

struct bad_spec {
	const char	*args;		/* "%s": the image */
	int		err;
	const char	*why;		/* in uffd_last_error() */
};

static const struct bad_spec bad_specs[] = {
	{ "readahead=4", -EINVAL, "path" },
	{ "path=/nonexistent/image", -ENOENT, "/nonexistent/image" },
	{ "path=%s,readahead=0", -EINVAL, "readahead" },
	{ "path=%s,readahead=x", -EINVAL, "readahead" },
	{ "path=%s,readahead=5000", -EINVAL, "readahead" },
	{ "path=%s,offset=-1", -EINVAL, "offset" },
	{ "path=%s,offset=1x", -EINVAL, "offset" },
	{ "path=%s,prefetch=2", -EINVAL, "prefetch" },
	{ "path=%s,direct=yes", -EINVAL, "direct" },
	{ "path=%s,engine=aio", -EINVAL, "engine" },
	{ "path=%s,engine=mmap,direct=1", -EINVAL, "direct" },
	{ "path=%s,direct=1,offset=512", -EINVAL, "offset" },
	{ "path=%s,offset=100", -EINVAL, "offset=100 is not a multiple" },
	{ "path=%s,inject_eio=80", -EINVAL, "inject_eio" },
	{ "path=%s,colour=blue", -EINVAL, "colour" },
	{ "path=%s,readahead=16,readahead_max=8", -EINVAL,
	  "readahead_max=8 is below readahead=16" },
	{ "path=%s,readahead_max=5000", -EINVAL, "readahead_max" },
	{ "path=%s,hole_gap=x", -EINVAL, "hole_gap" },
	{ "path=/tmp", -EINVAL, "regular" },
};

START_TEST(bad_spec_refused)
{
	const struct bad_spec *b = &bad_specs[_i];
	struct uffd_region *r = NULL;
	char args[300];
	int ret;

	snprintf(args, sizeof(args), b->args, path);
	snprintf(spec, sizeof(spec), "file:%s", args);
	clear_last_error();
	ret = make_region(ctx, LIBUFFD_MEM_ANON, REGION_PAGES, spec, &r);
	ck_assert_msg(ret == b->err, "%s: %d, expected %d", spec, ret,
		      b->err);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(uffd_last_error(), b->why),
		      "%s: reason \"%s\" lacks \"%s\"", spec,
		      uffd_last_error(), b->why);
	clear_last_error();
	ck_assert_int_eq(uffd_pager_spec_check(spec, REGION_PAGES * ps),
			 b->err);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), b->why));
}
END_TEST

START_TEST(spec_ok)
{
	snprintf(spec, sizeof(spec),
		 "file:path=%s,offset=8K,readahead=32,prefetch=1,direct=1,"
		 "engine=uring,inject_eio=3,readahead_max=64,hole_gap=4",
		 path);
	ck_assert_int_eq(uffd_pager_spec_check(spec, REGION_PAGES * ps), 0);
	ck_assert_ptr_nonnull(uffd_pager_find("file"));
}
END_TEST

/* ------------------------------------------------------- suite */

/*
 * Whether the filesystem the images go to takes O_DIRECT: tmpfs did not
 * before 6.6, and an old kernel's /tmp may be tmpfs.
 */
static int direct_ok(void)
{
	char d[] = "/tmp/test-file-XXXXXX", f[64];
	int fd, ok = 0;

	if (!mkdtemp(d))
		return 0;
	snprintf(f, sizeof(f), "%s/probe", d);
	fd = open(f, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		fd = open(f, O_RDONLY | O_DIRECT | O_CLOEXEC);
		ok = fd >= 0;
		if (fd >= 0)
			close(fd);
		unlink(f);
	}
	rmdir(d);
	return ok;
}

/*
 * The loop test @t over @eng, each engine a case of its own, those that
 * read with O_DIRECT left out (SKIP-CASE) where the filesystem refuses.
 */
static void add_engines(TCase *tc, const TTest *t, const char *const *eng,
			int n, uint64_t features)
{
	static int direct = -1;
	char name[128];
	int i;

	if (!case_runs(t->name, features, 0))
		return;
	if (direct < 0)
		direct = direct_ok();
	for (i = 0; i < n; i++) {
		if (!direct && strstr(eng[i], "direct=1")) {
			snprintf(name, sizeof(name), "%s:%d (%s)", t->name, i,
				 eng[i]);
			skip_case(name, "/tmp refuses O_DIRECT "
				  "(as tmpfs did before 6.6)");
			continue;
		}
		tcase_add_loop_test(tc, t, i, i + 1);
	}
}

static Suite *file_suite(void)
{
	Suite *s = suite_create("file");
	TCase *tc;

	tc = add_tcase(s, "restore", setup, teardown);
	add_engines(tc, restore_exact, engines, ARRAY_SIZE(engines), 0);
	tcase_add_test(tc, restore_offset);

	tc = add_tcase(s, "zero", setup, teardown);
	add_engines(tc, zero_pages_mapped, zero_engines,
		    ARRAY_SIZE(zero_engines), 0);
	tcase_add_test(tc, zero_pages_mmap);
	/* its oracle, rchar, needs CONFIG_TASK_IO_ACCOUNTING */
	if (access("/proc/self/io", R_OK) == 0) {
		tcase_add_test(tc, holes_without_io);
		tcase_add_test(tc, hole_gap_reads_through);
	} else {
		skip_case("holes_without_io", "no /proc/self/io (a kernel "
			  "without CONFIG_TASK_IO_ACCOUNTING)");
		skip_case("hole_gap_reads_through", "no /proc/self/io");
	}
	tcase_add_test(tc, write_zero_page);
	tcase_add_test(tc, removed_reads_zero);
	tcase_add_test(tc, memfd_dontneed_keeps);
	tcase_add_test(tc, readahead_discarded);

	tc = add_tcase(s, "once", setup, teardown);
	tcase_add_loop_test(tc, exactly_once_racing, 0, ARRAY_SIZE(race_specs));
	tcase_add_test(tc, prefetch_fills_all);

	tc = add_tcase(s, "streams", setup, teardown);
	add_engines(tc, stream_grows, stream_specs, ARRAY_SIZE(stream_specs),
		    0);
	tcase_add_test(tc, random_shrinks);

	/* a failed read ends in SIGBUS, poisoned or signalled */
	tc = add_tcase(s, "errors", setup, teardown);
	add_engines(tc, truncated_sigbus, err_engines,
		    ARRAY_SIZE(err_engines), LIBUFFD_FEATURE_THREAD_ID);
	add_loop_test_if(tc, injected_eio, 0, ARRAY_SIZE(inject_engines),
			 LIBUFFD_FEATURE_THREAD_ID, 0);

	tc = add_tcase(s, "specs", setup, teardown);
	tcase_add_loop_test(tc, bad_spec_refused, 0, ARRAY_SIZE(bad_specs));
	/* every key, direct=1 among them, which opens with O_DIRECT */
	if (direct_ok())
		tcase_add_test(tc, spec_ok);
	else
		skip_case("spec_ok", "/tmp refuses O_DIRECT "
			  "(as tmpfs did before 6.6)");
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	require_pfns();
	return run_suite(file_suite());
}
