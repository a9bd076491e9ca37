/* SPDX-License-Identifier: MIT */
/*
 * Page stores: runs written through a store read back byte for byte,
 * alone and in large asynchronous batches reaped in every way; pages
 * never written read as zeros without reaching the store; bad specs,
 * out-of-range runs, writes to a read-only file and injected EIO fail
 * with their exact codes; the file store agrees with the file on disk
 * after sync, and with the file system's own hole map.
 *
 * Oracles for "without I/O": the file on disk (pread on a fd of our
 * own, SEEK_HOLE), an EIO injected on the page, and garbage left in a
 * file whose contents the store was told to forget: a page that reached
 * the file would read as the garbage or fail, not as zeros.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <check.h>

#include "helpers.h"

#define NPAGES		96
#define NBATCH		200	/* requests in a batch: several store batches */

static size_t ps;
static char dir[] = "/tmp/test-store-XXXXXX";
static char path[256];
static char spec[512];

/* The store specs every common test runs with; "@" is the file's path. */
static const char *const specs[] = {
	"memfd",
	"file:path=@",
	"file:path=@,engine=pread",
	"file:path=@,direct=1",
	"file:path=@,pool=0",
	"file:path=@,direct=1,spin=200",	/* waits poll first */
};
#define NSPECS	((int)(sizeof(specs) / sizeof(specs[0])))

static void setup(void)
{
	ps = page_size();
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
	strcpy(dir, "/tmp/test-store-XXXXXX");
}

static const char *spec_of(int i)
{
	const char *at = strchr(specs[i], '@');

	if (!at)
		return specs[i];
	snprintf(spec, sizeof(spec), "%.*s%s%s", (int)(at - specs[i]),
		 specs[i], path, at + 1);
	return spec;
}

static uint64_t word(uint64_t page, uint64_t w, uint64_t gen)
{
	return ((page + 1) * 0x9e3779b97f4a7c15ull) ^ (w << 3) ^ gen ^ 0x5a;
}

static void fill(void *buf, uint64_t page, uint64_t n, uint64_t gen)
{
	uint64_t *w = buf;
	uint64_t i, k, per = ps / sizeof(*w);

	for (i = 0; i < n; i++)
		for (k = 0; k < per; k++)
			w[i * per + k] = word(page + i, k, gen);
}

/* The first page of @buf (pages from @page) that differs, or -1. */
static long check_fill(const void *buf, uint64_t page, uint64_t n,
		       uint64_t gen)
{
	const uint64_t *w = buf;
	uint64_t i, k, per = ps / sizeof(*w);

	for (i = 0; i < n; i++)
		for (k = 0; k < per; k++)
			if (w[i * per + k] != word(page + i, k, gen))
				return (long)i;
	return -1;
}

static bool all_zero(const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static void *pages(uint64_t n)
{
	void *p = NULL;

	/* page aligned: direct=1 needs it */
	ck_assert_int_eq(posix_memalign(&p, ps, n * ps), 0);
	memset(p, 0x77, n * ps);
	return p;
}

static struct uffd_store *open_store(int i, uint64_t npages)
{
	struct uffd_store *st = NULL;
	int ret = uffd_store_open(spec_of(i), npages * ps, &st);

	ck_assert_msg(ret == 0, "%s: %d %s", spec, ret, uffd_last_error());
	ck_assert_uint_eq(uffd_store_len(st), npages * ps);
	ck_assert_uint_eq(uffd_store_page_size(st), ps);
	return st;
}

static struct uffd_store_stats stats(const struct uffd_store *st)
{
	struct uffd_store_stats s;

	ck_assert_int_eq(uffd_store_stats(st, &s, sizeof(s)), 0);
	return s;
}

/* ------------------------------------------------------- both stores */

/* Runs written, read back; what was never written reads as zeros. */
START_TEST(roundtrip)
{
	struct uffd_store *st = open_store(_i, NPAGES);
	struct uffd_store_stats s0, s1;
	char *buf = pages(NPAGES);
	uint64_t p;
	int w;

	for (p = 0; p < NPAGES; p++)
		ck_assert_int_eq(uffd_store_written(st, p), 0);
	/* runs of 1, 3 and 17 pages, the last one ending the store */
	fill(buf, 0, 1, 1);
	ck_assert_int_eq(uffd_store_write(st, 0, 1, buf), 0);
	fill(buf, 10, 3, 1);
	ck_assert_int_eq(uffd_store_write(st, 10, 3, buf), 0);
	fill(buf, NPAGES - 17, 17, 1);
	ck_assert_int_eq(uffd_store_write(st, NPAGES - 17, 17, buf), 0);

	ck_assert_int_eq(uffd_store_written(st, 0), 1);
	ck_assert_int_eq(uffd_store_written(st, 1), 0);
	ck_assert_int_eq(uffd_store_extent(st, 1, NPAGES, &w), 9);
	ck_assert_int_eq(w, 0);
	ck_assert_int_eq(uffd_store_extent(st, 10, NPAGES, &w), 3);
	ck_assert_int_eq(w, 1);
	ck_assert_int_eq(uffd_store_extent(st, NPAGES - 17, NPAGES, &w), 17);
	ck_assert_int_eq(uffd_store_extent(st, 13, 5, &w), 5);	/* max */
	ck_assert_int_eq(w, 0);
	ck_assert_uint_eq(stats(st).written_pages, 21);

	/* back, in runs of other shapes than written */
	ck_assert_int_eq(uffd_store_read(st, 10, 3, buf), 0);
	ck_assert_int_eq(check_fill(buf, 10, 3, 1), -1);
	ck_assert_int_eq(uffd_store_read(st, NPAGES - 17, 17, buf), 0);
	ck_assert_int_eq(check_fill(buf, NPAGES - 17, 17, 1), -1);
	ck_assert_int_eq(uffd_store_read(st, NPAGES - 5, 5, buf), 0);
	ck_assert_int_eq(check_fill(buf, NPAGES - 5, 5, 1), -1);

	/* never written, a whole run: zeros, and the store never sees it */
	s0 = stats(st);
	ck_assert_int_eq(uffd_store_read(st, 20, 30, buf), 30);
	ck_assert(all_zero(buf, 30 * ps));
	s1 = stats(st);
	ck_assert_uint_eq(s1.store_ios, s0.store_ios);
	ck_assert_uint_eq(s1.hole_pages - s0.hole_pages, 30);

	/* mixed: written pages are data, the rest zeros over the 0x77 */
	memset(buf, 0x77, 6 * ps);
	ck_assert_int_eq(uffd_store_read(st, 8, 6, buf), 3);
	ck_assert(all_zero(buf, 2 * ps));
	ck_assert_int_eq(check_fill(buf + 2 * ps, 10, 3, 1), -1);
	ck_assert(all_zero(buf + 5 * ps, ps));

	/* rewrite one page of a run: only it changes */
	fill(buf, 11, 1, 2);
	ck_assert_int_eq(uffd_store_write(st, 11, 1, buf), 0);
	ck_assert_int_eq(uffd_store_read(st, 10, 3, buf), 0);
	ck_assert_int_eq(check_fill(buf, 10, 1, 1), -1);
	ck_assert_int_eq(check_fill(buf + ps, 11, 1, 2), -1);
	ck_assert_int_eq(check_fill(buf + 2 * ps, 12, 1, 1), -1);
	ck_assert_uint_eq(stats(st).written_pages, 21);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_sync(st), 0);

	uffd_store_close(st);
	free(buf);
}
END_TEST

/* A run layout for the batches: NBATCH runs over NBATCH * 4 pages. */
static void batch_layout(struct uffd_store_io *io, char *buf, int op,
			 bool skip_odd)
{
	uint64_t p = 0;
	int i;

	for (i = 0; i < NBATCH; i++) {
		uint64_t n = 1 + (uint64_t)(i * 7) % 4;	/* 1..4 pages */

		io[i] = (struct uffd_store_io){
			.op = op, .page = p, .npages = n,
			.buf = buf + p * ps, .data = (void *)(uintptr_t)i,
		};
		/* a page left out after some runs: holes between */
		p += n + (skip_odd && (i & 1));
	}
}

/*
 * Many runs in one submit (more than a store batch), reaped all at once
 * for writes, one by one and in small bunches for reads; each request
 * comes back once, in whatever order, with its data.
 */
START_TEST(batch)
{
	uint64_t npages = NBATCH * 5;
	struct uffd_store *st = open_store(_i, npages);
	struct uffd_store_io io[NBATCH], *ptr[NBATCH], *done[NBATCH];
	char *wbuf = pages(npages), *rbuf = pages(npages);
	int seen[NBATCH] = { 0 };
	int i, n, got = 0;
	uint64_t p;

	fill(wbuf, 0, npages, 3);
	batch_layout(io, wbuf, LIBUFFD_STORE_WRITE, true);
	for (i = 0; i < NBATCH; i++)
		ptr[i] = &io[i];
	ck_assert_int_eq(uffd_store_submit(st, ptr, NBATCH), NBATCH);
	ck_assert_uint_eq(uffd_store_inflight(st), NBATCH);
	n = uffd_store_reap(st, done, NBATCH, NBATCH);
	ck_assert_int_eq(n, NBATCH);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(done[i]->res, 0);
		seen[(uintptr_t)done[i]->data]++;
	}
	for (i = 0; i < NBATCH; i++)
		ck_assert_int_eq(seen[i], 1);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_reap(st, done, NBATCH, 0), 0);

	/* the same runs, read back: reaped 1 at a time, then up to 7 */
	batch_layout(io, rbuf, LIBUFFD_STORE_READ, true);
	ck_assert_int_eq(uffd_store_submit(st, ptr, NBATCH), NBATCH);
	memset(seen, 0, sizeof(seen));
	while (got < NBATCH) {
		bool one = got < NBATCH / 2;

		n = uffd_store_reap(st, done, one ? 1 : 7, 1);
		ck_assert_int_ge(n, 1);
		ck_assert_int_le(n, one ? 1 : 7);
		for (i = 0; i < n; i++) {
			struct uffd_store_io *d = done[i];

			ck_assert_int_eq(d->res, 0);
			ck_assert_uint_eq(d->holes, 0);
			ck_assert_int_eq(check_fill(d->buf, d->page,
						    d->npages, 3), -1);
			seen[(uintptr_t)d->data]++;
		}
		got += n;
	}
	for (i = 0; i < NBATCH; i++)
		ck_assert_int_eq(seen[i], 1);

	/* the pages skipped between runs were never written */
	for (p = 0, i = 0; i < NBATCH; i++) {
		p += io[i].npages;
		ck_assert_int_eq(uffd_store_written(st, io[i].page), 1);
		if (i & 1) {
			ck_assert_int_eq(uffd_store_written(st, p), 0);
			p++;
		}
	}

	uffd_store_close(st);
	free(wbuf);
	free(rbuf);
}
END_TEST

/*
 * Synchronous calls between asynchronous ones: requests that finish
 * while uffd_store_read waits stay queued for uffd_store_reap, and
 * close waits for whatever is still out.
 */
START_TEST(mixed_sync_async)
{
	struct uffd_store *st = open_store(_i, NPAGES);
	struct uffd_store_io io[8], *ptr[8], *done[8];
	char *buf = pages(NPAGES), *one = pages(1);
	int i, n;

	fill(buf, 0, 16, 4);
	ck_assert_int_eq(uffd_store_write(st, 0, 16, buf), 0);
	memset(buf, 0, 16 * ps);
	for (i = 0; i < 8; i++) {
		io[i] = (struct uffd_store_io){
			.op = LIBUFFD_STORE_READ, .page = (uint64_t)i * 2,
			.npages = 2, .buf = buf + (size_t)i * 2 * ps,
		};
		ptr[i] = &io[i];
	}
	ck_assert_int_eq(uffd_store_submit(st, ptr, 8), 8);
	ck_assert_int_eq(uffd_store_read(st, 5, 1, one), 0);
	ck_assert_int_eq(check_fill(one, 5, 1, 4), -1);
	ck_assert_uint_eq(uffd_store_inflight(st), 8);
	n = uffd_store_reap(st, done, 8, 8);
	ck_assert_int_eq(n, 8);
	ck_assert_int_eq(check_fill(buf, 0, 16, 4), -1);

	/* out at close: close waits, nothing leaks (ASan would say) */
	ck_assert_int_eq(uffd_store_submit(st, ptr, 8), 8);
	uffd_store_close(st);
	free(buf);
	free(one);
}
END_TEST

/* Runs outside the store, and malformed requests: -EINVAL, none out. */
START_TEST(out_of_range)
{
	struct uffd_store *st = open_store(_i, NPAGES);
	char *buf = pages(4);
	struct uffd_store_io ok = {
		.op = LIBUFFD_STORE_WRITE, .page = 0, .npages = 1, .buf = buf,
	}, bad = ok;
	struct uffd_store_io *ptr[2] = { &ok, &bad }, *done[2];
	int w;

	ck_assert_int_eq(uffd_store_read(st, NPAGES, 1, buf), -EINVAL);
	ck_assert_int_eq(uffd_store_read(st, NPAGES - 1, 2, buf), -EINVAL);
	ck_assert_int_eq(uffd_store_write(st, NPAGES - 1, 2, buf), -EINVAL);
	ck_assert_int_eq(uffd_store_read(st, 0, 0, buf), -EINVAL);
	ck_assert_int_eq(uffd_store_read(st, UINT64_MAX, 2, buf), -EINVAL);
	ck_assert_int_eq(uffd_store_read(st, 0, 1, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "no buffer"));

	/* one bad request: the good one does not go out either */
	bad.page = NPAGES;
	clear_last_error();
	ck_assert_int_eq(uffd_store_submit(st, ptr, 2), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "outside"));
	bad.page = 0;
	bad.op = 7;
	ck_assert_int_eq(uffd_store_submit(st, ptr, 2), -EINVAL);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_written(st, 0), 0);
	ck_assert_uint_eq(stats(st).store_ios, 0);

	ck_assert_int_eq(uffd_store_reap(st, done, 2, 1), -EINVAL);
	ck_assert_int_eq(uffd_store_reap(st, done, 1, 2), -EINVAL);
	ck_assert_int_eq(uffd_store_written(st, NPAGES), -EINVAL);
	ck_assert_int_eq(uffd_store_extent(st, NPAGES, 1, &w), -EINVAL);
	ck_assert_int_eq(uffd_store_extent(st, 0, 0, &w), -EINVAL);
	ck_assert_int_eq(uffd_store_discard(st, NPAGES - 1, 2), -EINVAL);

	uffd_store_close(st);
	free(buf);
}
END_TEST

/* Discarded pages read as zeros again, and stop counting as written. */
START_TEST(discard)
{
	struct uffd_store *st = open_store(_i, NPAGES);
	char *buf = pages(8);

	fill(buf, 0, 8, 5);
	ck_assert_int_eq(uffd_store_write(st, 0, 8, buf), 0);
	ck_assert_int_eq(uffd_store_discard(st, 2, 3), 0);
	ck_assert_int_eq(uffd_store_written(st, 1), 1);
	ck_assert_int_eq(uffd_store_written(st, 2), 0);
	ck_assert_int_eq(uffd_store_written(st, 4), 0);
	ck_assert_int_eq(uffd_store_written(st, 5), 1);
	ck_assert_uint_eq(stats(st).written_pages, 5);
	ck_assert_int_eq(uffd_store_read(st, 0, 8, buf), 3);
	ck_assert_int_eq(check_fill(buf, 0, 2, 5), -1);
	ck_assert(all_zero(buf + 2 * ps, 3 * ps));
	ck_assert_int_eq(check_fill(buf + 5 * ps, 5, 3, 5), -1);
	uffd_store_close(st);
	free(buf);
}
END_TEST

/*
 * A second handle (uffd_store_dup): what one writes the other reads,
 * holes and discards included, each with its own requests in flight;
 * closed in either order.
 */
START_TEST(dup_handle)
{
	struct uffd_store *st = open_store(_i, NPAGES), *d = NULL;
	struct uffd_store_io io = { .op = LIBUFFD_STORE_WRITE, .page = 8,
				    .npages = 4 }, *ptr = &io, *done;
	char *buf = pages(8), *other = pages(4);

	ck_assert_int_eq(uffd_store_dup(st, &d), 0);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(uffd_store_len(d), uffd_store_len(st));
	fill(buf, 0, 4, 7);
	ck_assert_int_eq(uffd_store_write(d, 0, 4, buf), 0);
	ck_assert_int_eq(uffd_store_written(st, 3), 1);
	memset(buf, 0, 8 * ps);
	ck_assert_int_eq(uffd_store_read(st, 0, 8, buf), 4);
	ck_assert_int_eq(check_fill(buf, 0, 4, 7), -1);
	ck_assert(all_zero(buf + 4 * ps, 4 * ps));
	/* one request out on the dup while the original does I/O */
	fill(other, 8, 4, 8);
	io.buf = other;
	ck_assert_int_eq(uffd_store_submit(d, &ptr, 1), 1);
	ck_assert_int_eq(uffd_store_write(st, 4, 1, buf), 0);
	ck_assert_int_eq(uffd_store_reap(d, &done, 1, 1), 1);
	ck_assert_int_eq(io.res, 0);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_read(st, 8, 4, buf), 0);
	ck_assert_int_eq(check_fill(buf, 8, 4, 8), -1);
	/* a discard through the original is a hole through the dup */
	ck_assert_int_eq(uffd_store_discard(st, 9, 1), 0);
	ck_assert_int_eq(uffd_store_read(d, 8, 2, buf), 1);
	ck_assert(all_zero(buf + ps, ps));
	uffd_store_close(st);
	/* the dup outlives the original */
	ck_assert_int_eq(uffd_store_read(d, 0, 4, buf), 0);
	ck_assert_int_eq(check_fill(buf, 0, 4, 7), -1);
	uffd_store_close(d);
	ck_assert_int_eq(uffd_store_dup(NULL, &d), -EINVAL);
	free(buf);
	free(other);
}
END_TEST

/* One writer or many readers per file: never two handles writing it. */
START_TEST(file_one_writer)
{
	struct uffd_store *w = NULL, *w2 = NULL, *r1 = NULL, *r2 = NULL;
	char s[600], ro[600];

	snprintf(s, sizeof(s), "file:path=%s", path);
	snprintf(ro, sizeof(ro), "file:path=%s,readonly=1", path);
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &w), 0);
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &w2), -EBUSY);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "in use"));
	ck_assert_int_eq(uffd_store_open(ro, 0, &r1), -EBUSY);
	uffd_store_close(w);
	ck_assert_int_eq(uffd_store_open(ro, 0, &r1), 0);
	ck_assert_int_eq(uffd_store_open(ro, 0, &r2), 0);
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &w2), -EBUSY);
	uffd_store_close(r1);
	uffd_store_close(r2);
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &w2), 0);
	uffd_store_close(w2);
}
END_TEST

/* inject_eio: requests covering the page fail; holes never reach it. */
START_TEST(inject_eio)
{
	char s[600];
	struct uffd_store *st = NULL;
	char *buf = pages(4);
	struct uffd_store_stats s0;

	snprintf(s, sizeof(s), "%s%sinject_eio=3", spec_of(_i),
		 strchr(spec_of(_i), ':') ? "," : ":");
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &st), 0);

	/* page 3 never written: read without I/O, so no EIO */
	s0 = stats(st);
	ck_assert_int_eq(uffd_store_read(st, 2, 2, buf), 2);
	ck_assert_uint_eq(stats(st).store_ios, s0.store_ios);
	ck_assert(all_zero(buf, 2 * ps));

	/* a write over it fails and marks nothing written */
	fill(buf, 2, 2, 6);
	ck_assert_int_eq(uffd_store_write(st, 2, 2, buf), -EIO);
	ck_assert_int_eq(uffd_store_written(st, 2), 0);
	ck_assert_int_eq(uffd_store_written(st, 3), 0);
	ck_assert_uint_eq(stats(st).errors, 1);

	/* its neighbours are fine; a read over written pages and 3 fails */
	ck_assert_int_eq(uffd_store_write(st, 2, 1, buf), 0);
	ck_assert_int_eq(uffd_store_read(st, 2, 1, buf), 0);
	ck_assert_int_eq(check_fill(buf, 2, 1, 6), -1);
	ck_assert_int_eq(uffd_store_read(st, 2, 2, buf), -EIO);
	ck_assert_uint_eq(stats(st).errors, 2);
	uffd_store_close(st);
	free(buf);
}
END_TEST

/* ------------------------------------------------------- specs */

static const struct {
	const char	*spec;
	uint64_t	len;
	const char	*why;		/* in uffd_last_error() */
} bad_specs[] = {
	{ "", 4096, "empty store spec" },
	{ ":x=1", 4096, "no store name" },
	{ "mem fd", 4096, "bad name" },
	{ "nosuch", 4096, "unknown store \"nosuch\"" },
	{ "memfd:bogus=1", 4096, "unknown key \"bogus\"" },
	{ "memfd:inject_eio", 4096, "expected key=value" },
	{ "memfd", 0, "a length is needed" },
	{ "memfd", 100, "not a multiple of the page size" },
	{ "file", 4096, "path=P is needed" },
	{ "file:path=@,engine=aio", 4096, "engine=aio" },
	{ "file:path=@,direct=2", 4096, "direct" },
	{ "file:path=@,pool=x", 4096, "pool" },
	{ "file:path=/dev/null", 4096, "not a regular file" },
	{ "file:path=@", 0, "is empty and no length" },
	{ "file:path=@,offset=100", 4096, "offset=100 is not a multiple" },
	{ "file:path=@,offset=4x", 4096, "offset" },
	{ "file:path=@,offset=-1", 4096, "offset" },
	{ "file:path=@,offset=8M", 0, "is empty past offset" },
};

START_TEST(bad_spec)
{
	const char *sp = bad_specs[_i].spec, *at = strchr(sp, '@');
	struct uffd_store *st = (struct uffd_store *)1;
	char s[600];

	if (at)
		snprintf(s, sizeof(s), "%.*s%s%s", (int)(at - sp), sp, path,
			 at + 1);
	else
		snprintf(s, sizeof(s), "%s", sp);
	clear_last_error();
	ck_assert_int_eq(uffd_store_open(s, bad_specs[_i].len, &st), -EINVAL);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(uffd_last_error(), bad_specs[_i].why),
		      "\"%s\": reason \"%s\", expected \"%s\"", s,
		      uffd_last_error(), bad_specs[_i].why);
}
END_TEST

START_TEST(find_list)
{
	const struct uffd_store_ops *const *l = uffd_store_list();
	int n = 0, memfd = 0, file = 0;

	for (; *l; l++, n++) {
		ck_assert_uint_ge((*l)->version, 1);
		memfd += !strcmp((*l)->name, "memfd");
		file += !strcmp((*l)->name, "file");
		ck_assert_ptr_eq(uffd_store_find((*l)->name), *l);
	}
	ck_assert_int_eq(memfd, 1);
	ck_assert_int_eq(file, 1);
	ck_assert_int_ge(n, 2);
	ck_assert_ptr_null(uffd_store_find("nosuch"));
	ck_assert_ptr_null(uffd_store_find(NULL));
	ck_assert(uffd_store_find("file")->flags & LIBUFFD_STORE_ASYNC);
	ck_assert(uffd_store_find("file")->flags & LIBUFFD_STORE_PERSISTENT);
	ck_assert(!(uffd_store_find("memfd")->flags &
		    LIBUFFD_STORE_PERSISTENT));
	uffd_store_close(NULL);
}
END_TEST

/* ------------------------------------------------------- the file store */

static int open_ro(void)
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* After sync, the file holds what was written, and holes where not. */
START_TEST(file_on_disk)
{
	struct uffd_store *st = NULL;
	char *buf = pages(NPAGES), *disk = pages(NPAGES);
	struct stat sb;
	uint64_t p;
	int fd;

	ck_assert_int_eq(uffd_store_open(spec_of(_i), NPAGES * ps, &st), 0);
	for (p = 0; p < NPAGES; p += 8) {
		fill(buf + p * ps, p, 5, 7);	/* 5 of every 8 pages */
		ck_assert_int_eq(uffd_store_write(st, p, 5, buf + p * ps), 0);
	}
	ck_assert_int_eq(uffd_store_sync(st), 0);

	fd = open_ro();
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_int_eq(sb.st_size, (off_t)(NPAGES * ps));
	ck_assert_int_eq(pread(fd, disk, NPAGES * ps, 0),
			 (ssize_t)(NPAGES * ps));
	for (p = 0; p < NPAGES; p++) {
		if (p % 8 < 5)
			ck_assert_msg(!memcmp(disk + p * ps, buf + p * ps, ps),
				      "page %lu differs on disk",
				      (unsigned long)p);
		else
			ck_assert(all_zero(disk + p * ps, ps));
	}
	/* never written is a hole on disk too: the file grew sparse */
	ck_assert_int_eq(lseek(fd, (off_t)(5 * ps), SEEK_HOLE),
			 (off_t)(5 * ps));
	close(fd);

	/* a second handle sees the same, and the same holes */
	uffd_store_close(st);
	ck_assert_int_eq(uffd_store_open(spec_of(_i), 0, &st), 0);
	ck_assert_uint_eq(uffd_store_len(st), NPAGES * ps);
	for (p = 0; p < NPAGES; p++)
		ck_assert_int_eq(uffd_store_written(st, p), p % 8 < 5);
	ck_assert_int_eq(uffd_store_read(st, 0, NPAGES, disk),
			 NPAGES / 8 * 3);
	for (p = 0; p < NPAGES; p++)
		if (p % 8 < 5)
			ck_assert_int_eq(check_fill(disk + p * ps, p, 1, 7), -1);
	uffd_store_close(st);
	free(buf);
	free(disk);
}
END_TEST

/* Fill @n pages of the file at @p with @c. */
static void put(int fd, uint64_t p, uint64_t n, int c)
{
	char *b = malloc(n * ps);

	memset(b, c, n * ps);
	ck_assert_int_eq(pwrite(fd, b, n * ps, (off_t)(p * ps)),
			 (ssize_t)(n * ps));
	free(b);
}

/*
 * A snapshot made elsewhere: its holes (SEEK_HOLE) count as never
 * written at open and read as zeros without I/O; its data reads back.
 */
START_TEST(file_snapshot_holes)
{
	struct uffd_store *st = NULL;
	struct uffd_store_stats s0;
	char *buf = pages(64);
	int64_t n;
	int fd, w;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(64 * ps)), 0);
	put(fd, 0, 16, 0xa1);		/* data 0..15, hole 16..31 */
	put(fd, 32, 16, 0xa2);		/* data 32..47, hole 48..63 */
	ck_assert_int_eq(fsync(fd), 0);
	if (lseek(fd, 0, SEEK_HOLE) != (off_t)(16 * ps)) {
		close(fd);
		skip_case("file_snapshot_holes",
			  "this file system reports no 64 KiB holes");
		free(buf);
		return;
	}
	close(fd);

	ck_assert_int_eq(uffd_store_open(spec_of(_i), 0, &st), 0);
	ck_assert_uint_eq(uffd_store_len(st), 64 * ps);
	n = uffd_store_extent(st, 0, 64, &w);
	ck_assert_int_eq(n, 16);
	ck_assert_int_eq(w, 1);
	ck_assert_int_eq(uffd_store_extent(st, 16, 64, &w), 16);
	ck_assert_int_eq(w, 0);
	ck_assert_int_eq(uffd_store_extent(st, 32, 64, &w), 16);
	ck_assert_int_eq(w, 1);
	ck_assert_int_eq(uffd_store_extent(st, 48, 64, &w), 16);
	ck_assert_int_eq(w, 0);
	ck_assert_uint_eq(stats(st).written_pages, 32);

	s0 = stats(st);
	ck_assert_int_eq(uffd_store_read(st, 16, 16, buf), 16);
	ck_assert_int_eq(uffd_store_read(st, 48, 16, buf + 16 * ps), 16);
	ck_assert(all_zero(buf, 32 * ps));
	ck_assert_uint_eq(stats(st).store_ios, s0.store_ios);
	ck_assert_int_eq(uffd_store_read(st, 30, 4, buf), 2);
	ck_assert(all_zero(buf, 2 * ps));
	ck_assert_int_eq(((unsigned char *)buf)[2 * ps], 0xa2);
	ck_assert_int_eq(((unsigned char *)buf)[4 * ps - 1], 0xa2);
	ck_assert_uint_eq(stats(st).store_ios, s0.store_ios + 1);
	uffd_store_close(st);
	free(buf);
}
END_TEST

/*
 * fresh=1 over a file full of garbage: every page is never written, so
 * reads give zeros while the garbage is still on disk; in a mixed run
 * the garbage pages are read and zeroed, the written one is data.
 */
START_TEST(file_fresh_garbage)
{
	struct uffd_store *st = NULL;
	char s[600];
	char *buf = pages(8), *disk = pages(1);
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	put(fd, 0, 32, 0xaa);
	close(fd);

	snprintf(s, sizeof(s), "%s,fresh=1", spec_of(_i));
	ck_assert_int_eq(uffd_store_open(s, 0, &st), 0);
	ck_assert_uint_eq(stats(st).written_pages, 0);
	ck_assert_int_eq(uffd_store_read(st, 0, 8, buf), 8);
	ck_assert(all_zero(buf, 8 * ps));
	ck_assert_uint_eq(stats(st).store_ios, 0);

	fill(buf, 5, 1, 8);
	ck_assert_int_eq(uffd_store_write(st, 5, 1, buf), 0);
	memset(buf, 0x55, 8 * ps);
	ck_assert_int_eq(uffd_store_read(st, 4, 4, buf), 3);
	ck_assert(all_zero(buf, ps));
	ck_assert_int_eq(check_fill(buf + ps, 5, 1, 8), -1);
	ck_assert(all_zero(buf + 2 * ps, 2 * ps));
	uffd_store_close(st);

	/* the garbage was there to read: the zeros did not come from disk */
	fd = open_ro();
	ck_assert_int_eq(pread(fd, disk, ps, (off_t)(4 * ps)), (ssize_t)ps);
	ck_assert_int_eq(((unsigned char *)disk)[0], 0xaa);
	close(fd);
	free(buf);
	free(disk);
}
END_TEST

/* readonly=1: reads work, writes fail with -EBADF and change nothing. */
START_TEST(file_readonly)
{
	struct uffd_store *st = NULL;
	char s[600];
	char *buf = pages(2);
	struct uffd_store_io io = {
		.op = LIBUFFD_STORE_WRITE, .page = 1, .npages = 1, .buf = buf,
	}, *ptr = &io;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	put(fd, 0, 2, 0xbb);
	close(fd);
	ck_assert_int_eq(chmod(path, 0400), 0);

	snprintf(s, sizeof(s), "%s,readonly=1", spec_of(_i));
	ck_assert_int_eq(uffd_store_open(s, 0, &st), 0);
	ck_assert_int_eq(uffd_store_read(st, 0, 2, buf), 0);
	ck_assert_int_eq(((unsigned char *)buf)[2 * ps - 1], 0xbb);
	memset(buf, 0x11, ps);
	clear_last_error();
	ck_assert_int_eq(uffd_store_write(st, 0, 1, buf), -EBADF);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "readonly"));
	ck_assert_int_eq(uffd_store_submit(st, &ptr, 1), -EBADF);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_sync(st), 0);
	uffd_store_close(st);

	fd = open_ro();
	ck_assert_int_eq(pread(fd, buf, ps, 0), (ssize_t)ps);
	ck_assert_int_eq(((unsigned char *)buf)[0], 0xbb);
	close(fd);
	free(buf);
}
END_TEST

/*
 * Requests whose buffers come from the pool use registered buffers
 * (READ_FIXED/WRITE_FIXED); others do not.  engine=pread has a pool
 * only when pool=N asks for one (plain memory, no FIXED), memfd none.
 */
START_TEST(file_pool)
{
	struct uffd_store *st = NULL;
	struct uffd_store_io io[2], *ptr[2] = { &io[0], &io[1] }, *done[2];
	char s[600];
	char *plain = pages(4);
	void *pool;
	size_t len;

	ck_assert_int_eq(uffd_store_open(spec_of(1), NPAGES * ps, &st), 0);
	ck_assert_int_eq(uffd_store_pool(st, &pool, &len), 0);
	ck_assert_uint_eq(len, 256 * ps);
	ck_assert_uint_eq((uintptr_t)pool % ps, 0);
	fill(pool, 0, 4, 9);
	fill(plain, 4, 4, 9);
	io[0] = (struct uffd_store_io){ .op = LIBUFFD_STORE_WRITE,
		.page = 0, .npages = 4, .buf = pool };
	io[1] = (struct uffd_store_io){ .op = LIBUFFD_STORE_WRITE,
		.page = 4, .npages = 4, .buf = plain };
	ck_assert_int_eq(uffd_store_submit(st, ptr, 2), 2);
	ck_assert_int_eq(uffd_store_reap(st, done, 2, 2), 2);
	ck_assert_int_eq(io[0].res, 0);
	ck_assert_int_eq(io[1].res, 0);
	ck_assert_uint_eq(io[0].out_flags & LIBUFFD_STORE_IO_FIXED,
			  LIBUFFD_STORE_IO_FIXED);
	ck_assert_uint_eq(io[1].out_flags & LIBUFFD_STORE_IO_FIXED, 0);

	/* read both back through the pool's last pages */
	memset(pool, 0, len);
	ck_assert_int_eq(uffd_store_read(st, 0, 8,
					 (char *)pool + len - 8 * ps), 0);
	ck_assert_int_eq(check_fill((char *)pool + len - 8 * ps, 0, 8, 9), -1);
	uffd_store_close(st);

	snprintf(s, sizeof(s), "%s", spec_of(2));	/* engine=pread */
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &st), 0);
	ck_assert_int_eq(uffd_store_pool(st, &pool, &len), -EOPNOTSUPP);
	uffd_store_close(st);
	snprintf(s, sizeof(s), "%s,pool=8", spec_of(2));
	ck_assert_int_eq(uffd_store_open(s, NPAGES * ps, &st), 0);
	ck_assert_int_eq(uffd_store_pool(st, &pool, &len), 0);
	ck_assert_uint_eq(len, 8 * ps);
	ck_assert_uint_eq((uintptr_t)pool % ps, 0);
	ck_assert_int_eq(uffd_store_read(st, 0, 8, pool), 0);
	ck_assert_int_eq(check_fill(pool, 0, 8, 9), -1);
	uffd_store_close(st);
	ck_assert_int_eq(uffd_store_open("memfd", ps, &st), 0);
	ck_assert_int_eq(uffd_store_pool(st, &pool, &len), -EOPNOTSUPP);
	uffd_store_close(st);
	free(plain);
}
END_TEST

/* direct=1 refuses buffers O_DIRECT cannot take, before any I/O. */
START_TEST(file_direct_align)
{
	struct uffd_store *st = NULL;
	char *buf = pages(3);

	ck_assert_int_eq(uffd_store_open(spec_of(3), NPAGES * ps, &st), 0);
	ck_assert_int_eq(uffd_store_write(st, 0, 1, buf + 512), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "aligned"));
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_written(st, 0), 0);
	uffd_store_close(st);
	free(buf);
}
END_TEST

/* @spec (a file spec) with ",@extra" appended. */
static const char *spec_with(int i, const char *extra, char *out, size_t len)
{
	snprintf(out, len, "%s,%s", spec_of(i), extra);
	return out;
}

/* A file of @hdr pages of 0xee, then @n pages of fill(gen) at @hdr. */
static int make_at(uint64_t hdr, uint64_t n, uint64_t gen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	char *b = pages(n);

	ck_assert_int_ge(fd, 0);
	if (hdr)
		put(fd, 0, hdr, 0xee);
	fill(b, 0, n, gen);
	ck_assert_int_eq(pwrite(fd, b, n * ps, (off_t)(hdr * ps)),
			 (ssize_t)(n * ps));
	free(b);
	return fd;
}

/*
 * offset=O: page p is the file's bytes at O + p * page size, for reads,
 * for the hole map (a hole is seen at its page counted from O, not from
 * the file's start), for writes and for discard; the header before O is
 * never touched, and the length taken from the file is what follows O.
 */
START_TEST(file_offset)
{
	const uint64_t hdr = 3, n = 40;
	struct uffd_store *st = NULL;
	char s[600], x[64], *buf = pages(n), *disk = pages(hdr);
	bool holes;
	int fd, w;

	/* data at store pages 0..15 and 32..39, a hole at 16..31 */
	fd = make_at(hdr, n, 11);
	ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
				   FALLOC_FL_KEEP_SIZE,
				   (off_t)((hdr + 16) * ps), (off_t)(16 * ps)),
			 0);
	ck_assert_int_eq(fsync(fd), 0);
	holes = lseek(fd, (off_t)(hdr * ps), SEEK_HOLE) ==
		(off_t)((hdr + 16) * ps);
	close(fd);

	snprintf(x, sizeof(x), "offset=%zu,readonly=1", hdr * ps);
	ck_assert_int_eq(uffd_store_open(spec_with(_i, x, s, sizeof(s)), 0,
					 &st), 0);
	ck_assert_uint_eq(uffd_store_len(st), n * ps);
	ck_assert_int_eq(uffd_store_read(st, 0, 16, buf), 0);
	ck_assert_int_eq(check_fill(buf, 0, 16, 11), -1);
	ck_assert_int_eq(uffd_store_read(st, 32, 8, buf), 0);
	ck_assert_int_eq(check_fill(buf, 32, 8, 11), -1);
	memset(buf, 0x55, 16 * ps);
	ck_assert_int_eq(uffd_store_read(st, 16, 16, buf), holes ? 16 : 0);
	ck_assert(all_zero(buf, 16 * ps));
	if (holes) {
		ck_assert_int_eq(uffd_store_extent(st, 0, n, &w), 16);
		ck_assert_int_eq(w, 1);
		ck_assert_int_eq(uffd_store_extent(st, 16, n, &w), 16);
		ck_assert_int_eq(w, 0);
		ck_assert_int_eq(uffd_store_extent(st, 32, n, &w), 8);
		ck_assert_int_eq(w, 1);
	}
	uffd_store_close(st);

	/* writable, longer than the file: grown to O + length, sparse */
	snprintf(x, sizeof(x), "offset=%zu", hdr * ps);
	ck_assert_int_eq(uffd_store_open(spec_with(_i, x, s, sizeof(s)),
					 (n + 8) * ps, &st), 0);
	fill(buf, n + 4, 1, 12);
	ck_assert_int_eq(uffd_store_write(st, n + 4, 1, buf), 0);
	fill(buf, 1, 1, 12);
	ck_assert_int_eq(uffd_store_write(st, 1, 1, buf), 0);
	ck_assert_int_eq(uffd_store_discard(st, 2, 1), 0);
	ck_assert_int_eq(uffd_store_sync(st), 0);
	ck_assert_int_eq(uffd_store_read(st, 0, 3, buf), 1);
	ck_assert_int_eq(check_fill(buf, 0, 1, 11), -1);
	ck_assert_int_eq(check_fill(buf + ps, 1, 1, 12), -1);
	ck_assert(all_zero(buf + 2 * ps, ps));
	uffd_store_close(st);

	fd = open_ro();
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), (off_t)((hdr + n + 8) * ps));
	ck_assert_int_eq(pread(fd, buf, ps, (off_t)((hdr + n + 4) * ps)),
			 (ssize_t)ps);
	ck_assert_int_eq(check_fill(buf, n + 4, 1, 12), -1);
	ck_assert_int_eq(pread(fd, buf, ps, (off_t)((hdr + 1) * ps)),
			 (ssize_t)ps);
	ck_assert_int_eq(check_fill(buf, 1, 1, 12), -1);
	/* the header: never written, never punched */
	ck_assert_int_eq(pread(fd, disk, hdr * ps, 0), (ssize_t)(hdr * ps));
	for (w = 0; w < (int)(hdr * ps); w++)
		ck_assert_int_eq((unsigned char)disk[w], 0xee);
	if (holes)	/* the discard punched page 2 at O, nothing else */
		ck_assert_int_eq(lseek(fd, (off_t)(hdr * ps), SEEK_HOLE),
				 (off_t)((hdr + 2) * ps));
	close(fd);
	free(buf);
	free(disk);
}
END_TEST

/*
 * Read-only, longer than a file that ends inside a page (at offset 0
 * and at an offset): pages past the end are never written and read as
 * zeros without I/O; the page straddling the end reads the file's bytes
 * then zeros, alone or in one run with its neighbours (with direct=1
 * too, where the rest of a short read would start unaligned); the file
 * growing later does not show, and shrinking fails the read (-EIO)
 * instead of giving zeros.
 */
START_TEST(file_short_tail)
{
	const uint64_t full = 10, tail = 123, n = 16;
	uint64_t hdr;

	for (hdr = 0; hdr <= 2; hdr += 2) {
		struct uffd_store *st = NULL;
		struct uffd_store_stats s0;
		char s[600], x[64], *buf = pages(n), *want = pages(1);
		uint64_t p;
		int fd, w;

		fd = make_at(hdr, full + 1, 13);
		ck_assert_int_eq(ftruncate(fd, (off_t)((hdr + full) * ps +
						       tail)), 0);
		close(fd);
		fill(want, full, 1, 13);
		memset(want + tail, 0, ps - tail);

		snprintf(x, sizeof(x), "offset=%zu,readonly=1", hdr * ps);
		ck_assert_int_eq(uffd_store_open(spec_with(_i, x, s,
							   sizeof(s)),
						 n * ps, &st), 0);
		for (p = 0; p < n; p++)
			ck_assert_int_eq(uffd_store_written(st, p), p <= full);
		ck_assert_int_eq(uffd_store_extent(st, full + 1, n, &w),
				 (int64_t)(n - full - 1));
		ck_assert_int_eq(w, 0);

		s0 = stats(st);
		memset(buf, 0x77, n * ps);
		ck_assert_int_eq(uffd_store_read(st, full + 1, n - full - 1,
						 buf), (int)(n - full - 1));
		ck_assert(all_zero(buf, (n - full - 1) * ps));
		ck_assert_uint_eq(stats(st).store_ios, s0.store_ios);

		memset(buf, 0x77, n * ps);
		ck_assert_int_eq(uffd_store_read(st, full, 1, buf), 0);
		ck_assert(!memcmp(buf, want, ps));

		/* 8, 9 data, 10 the tail, 11.. past the end: one run */
		memset(buf, 0x77, n * ps);
		ck_assert_int_eq(uffd_store_read(st, full - 2, n - full + 2,
						 buf), (int)(n - full - 1));
		ck_assert_int_eq(check_fill(buf, full - 2, 2, 13), -1);
		ck_assert(!memcmp(buf + 2 * ps, want, ps));
		ck_assert(all_zero(buf + 3 * ps, (n - full - 1) * ps));

		/* the file grows: the store still ends where it did */
		fd = open(path, O_RDWR);
		ck_assert_int_ge(fd, 0);
		put(fd, hdr + full + 1, 4, 0xcc);
		memset(buf, 0xcc, ps - tail);
		ck_assert_int_eq(pwrite(fd, buf, ps - tail,
					(off_t)((hdr + full) * ps + tail)),
				 (ssize_t)(ps - tail));
		ck_assert_int_eq(fsync(fd), 0);
		memset(buf, 0x77, n * ps);
		ck_assert_int_eq(uffd_store_read(st, full, 2, buf), 1);
		ck_assert(!memcmp(buf, want, ps));
		ck_assert(all_zero(buf + ps, ps));

		/* it shrinks: what it held at open is an error, not zeros */
		ck_assert_int_eq(ftruncate(fd, (off_t)((hdr + 5) * ps)), 0);
		close(fd);
		ck_assert_int_eq(uffd_store_read(st, full - 2, 2, buf), -EIO);
		ck_assert_int_eq(uffd_store_read(st, full, 1, buf), -EIO);
		ck_assert_int_eq(uffd_store_read(st, 3, 2, buf), 0);
		ck_assert_int_eq(check_fill(buf, 3, 2, 13), -1);
		uffd_store_close(st);
		free(buf);
		free(want);
	}
}
END_TEST

/* ------------------------------------------------------- a custom store */

/*
 * A store of the caller's own, asynchronous, that finishes requests in
 * reverse order one wait at a time: the handle's reaping and the
 * never-written zeroing do not depend on a store's order.
 */
struct rev_store {
	char			*mem;
	struct uffd_store_io	*q[NBATCH];
	unsigned int		n;
	int			fail_submit;
};

static int rev_open(const struct uffd_args *args, uint64_t *len,
		    void **state)
{
	struct rev_store *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	rs->mem = calloc(1, *len);
	memset(rs->mem, 0xee, *len);	/* garbage where never written */
	rs->fail_submit = uffd_args_get(args, "fail") != NULL;
	*state = rs;
	return 0;
}

static int rev_submit(void *state, struct uffd_store_io *const *ios,
		      unsigned int n)
{
	struct rev_store *rs = state;
	unsigned int i;

	if (rs->fail_submit) {
		uffd_set_error("rev: refused");
		return -ENOSPC;
	}
	for (i = 0; i < n; i++)
		rs->q[rs->n++] = ios[i];
	return 0;
}

static int rev_wait(void *state, unsigned int min)
{
	struct rev_store *rs = state;
	struct uffd_store_io *io;
	size_t off, len;

	(void)min;
	if (!rs->n)
		return 0;
	io = rs->q[--rs->n];
	off = io->page * (size_t)ps;
	len = io->npages * (size_t)ps;
	if (io->op == LIBUFFD_STORE_WRITE)
		memcpy(rs->mem + off, io->buf, len);
	else
		memcpy(io->buf, rs->mem + off, len);
	uffd_store_complete(io, 0);
	return 1;
}

static void rev_close(void *state)
{
	struct rev_store *rs = state;

	free(rs->mem);
	free(rs);
}

static const struct uffd_store_ops rev_ops = {
	.version = LIBUFFD_STORE_OPS_VERSION,
	.name = "rev",
	.flags = LIBUFFD_STORE_ASYNC,
	.open = rev_open,
	.submit = rev_submit,
	.wait = rev_wait,
	.close = rev_close,
};

START_TEST(custom_store)
{
	struct uffd_store *st = NULL;
	struct uffd_store_io io[4], *ptr[4], *done[4];
	struct uffd_store_ops no_wait = rev_ops;
	char *buf = pages(8);
	int i;

	ck_assert_int_eq(uffd_store_open_ops(&rev_ops, NULL, 8 * ps, &st), 0);
	ck_assert_str_eq(uffd_store_name(st), "rev");
	fill(buf, 0, 8, 10);
	for (i = 0; i < 4; i++) {
		/* pages 0, 2, 4, 6 */
		io[i] = (struct uffd_store_io){ .op = LIBUFFD_STORE_WRITE,
			.page = (uint64_t)i * 2, .npages = 1,
			.buf = buf + (size_t)i * 2 * ps };
		ptr[i] = &io[i];
	}
	ck_assert_int_eq(uffd_store_submit(st, ptr, 4), 4);
	ck_assert_int_eq(uffd_store_reap(st, done, 4, 0), 1);
	ck_assert_ptr_eq(done[0], &io[3]);
	ck_assert_int_eq(uffd_store_reap(st, done, 4, 3), 3);
	ck_assert_ptr_eq(done[0], &io[2]);
	ck_assert_ptr_eq(done[2], &io[0]);

	/* the odd pages hold 0xee in the store: never written, zeros */
	memset(buf, 0x33, 8 * ps);
	ck_assert_int_eq(uffd_store_read(st, 0, 8, buf), 4);
	for (i = 0; i < 8; i++) {
		if (i & 1)
			ck_assert(all_zero(buf + (size_t)i * ps, ps));
		else
			ck_assert_int_eq(check_fill(buf + (size_t)i * ps,
						    (uint64_t)i, 1, 10), -1);
	}
	uffd_store_close(st);

	/* a submit the store refuses: its error, and nothing out */
	ck_assert_int_eq(uffd_store_open_ops(&rev_ops, "fail=1", 8 * ps,
					     &st), 0);
	ck_assert_int_eq(uffd_store_write(st, 0, 1, buf), -ENOSPC);
	ck_assert_str_eq(uffd_last_error(), "rev: refused");
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_uint_eq(stats(st).store_ios, 0);
	uffd_store_close(st);

	/* an ASYNC table without wait is refused */
	no_wait.wait = NULL;
	ck_assert_int_eq(uffd_store_open_ops(&no_wait, NULL, 8 * ps, &st),
			 -EINVAL);
	ck_assert_int_eq(uffd_store_open_ops(&rev_ops, "a", 8 * ps, &st),
			 -EINVAL);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = add_tcase(s, "both", setup, teardown);
	tcase_add_loop_test(tc, roundtrip, 0, NSPECS);
	tcase_add_loop_test(tc, batch, 0, NSPECS);
	tcase_add_loop_test(tc, mixed_sync_async, 0, NSPECS);
	tcase_add_loop_test(tc, out_of_range, 0, NSPECS);
	tcase_add_loop_test(tc, discard, 0, NSPECS);
	tcase_add_loop_test(tc, dup_handle, 0, NSPECS);
	tcase_add_test(tc, file_one_writer);
	tcase_add_loop_test(tc, inject_eio, 0, NSPECS);

	tc = add_tcase(s, "specs", setup, teardown);
	tcase_add_loop_test(tc, bad_spec, 0,
			    (int)(sizeof(bad_specs) / sizeof(bad_specs[0])));
	tcase_add_test(tc, find_list);
	tcase_add_test(tc, custom_store);

	tc = add_tcase(s, "file", setup, teardown);
	/* every file spec: indexes 1.. of specs[] */
	tcase_add_loop_test(tc, file_on_disk, 1, NSPECS);
	tcase_add_loop_test(tc, file_snapshot_holes, 1, NSPECS);
	tcase_add_loop_test(tc, file_fresh_garbage, 1, NSPECS);
	tcase_add_loop_test(tc, file_readonly, 1, NSPECS);
	tcase_add_loop_test(tc, file_offset, 1, NSPECS);
	tcase_add_loop_test(tc, file_short_tail, 1, NSPECS);
	tcase_add_test(tc, file_pool);
	tcase_add_test(tc, file_direct_align);
	return run_suite(s);
}
