/* SPDX-License-Identifier: MIT */
/*
 * Injected faults (configure --enable-fault-injection; see
 * libuffd/inject.c): the fill ioctls, read() of the userfaultfd, mmap,
 * pthread_create and io_uring fail at chosen rates while real faults go
 * through the real pagers, and the library keeps its promises:
 *
 *  - no thread is left blocked (Check's timeout is the watchdog);
 *  - no page is wrong: every page is compared with what it must hold;
 *  - a transient error (EAGAIN, EINTR) is retried unseen: no SIGBUS;
 *  - a hard one (ENOMEM, EFAULT, EIO) ends as SIGBUS for the toucher,
 *    and the page stays failed until MADV_DONTNEED takes it away;
 *  - the counters say what happened: one pager error per SIGBUS, and one
 *    poisoned page (or queued signal) per pager error;
 *  - a failed create or start returns the injected error and leaves no
 *    descriptor, thread or mapping behind, and neither does destroy.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <check.h>

#include "helpers.h"
#include "inject.h"

#define NPAGES		512
#define FILE_PAGES	NPAGES
#define HUGE_NPAGES	4096	/* hugezero: 8 extents of 2 MiB */
#define ZERO_EVERY	5	/* file pages p % ZERO_EVERY == 1 are zeros */

static size_t ps;
static char file_path[64];

/* ---- what each page must hold ------------------------------------ */

enum base { BASE_ZERO, BASE_FILE };

static uint8_t file_byte(size_t p, size_t j)
{
	if (p % ZERO_EVERY == 1)
		return 0;
	return (uint8_t)((p * 131 + j * 7) | 1);
}

static void base_page(enum base b, size_t p, uint8_t *out)
{
	size_t j;

	if (b == BASE_ZERO) {
		memset(out, 0, ps);
		return;
	}
	for (j = 0; j < ps; j++)
		out[j] = file_byte(p, j);
}

static size_t mark_off(size_t p)
{
	return (p * 13) % ps;
}

static uint8_t mark_val(size_t p)
{
	return (uint8_t)(p * 3 + 0x40) | 0x80;
}

static void make_file(void)
{
	uint8_t *buf = malloc(ps);
	size_t p;
	int fd;

	ck_assert_ptr_nonnull(buf);
	snprintf(file_path, sizeof(file_path), "/tmp/test-inject-XXXXXX");
	fd = mkstemp(file_path);
	ck_assert_int_ge(fd, 0);
	for (p = 0; p < FILE_PAGES; p++) {
		base_page(BASE_FILE, p, buf);
		ck_assert_int_eq(pwrite(fd, buf, ps, (off_t)(p * ps)),
				 (ssize_t)ps);
	}
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	free(buf);
}

static void setup(void)
{
	ps = page_size();
	file_path[0] = '\0';
	ck_assert_int_eq(luffd_inject_set(NULL), 0);
}

static void teardown(void)
{
	luffd_inject_set(NULL);
	if (file_path[0])
		unlink(file_path);
}

/* ---- the cases ---------------------------------------------------- */

enum kind {
	TRANSIENT,	/* retried invisibly: no SIGBUS at all */
	HARD,		/* SIGBUS (or a correct page), never a hang */
};

struct icase {
	const char	*name;
	const char	*pager;		/* "%s": the image file's path */
	int		delivery;
	bool		nopoison;	/* POISON off: signals instead */
	enum kind	kind;
	const char	*rules;		/* the injection spec */
	int		site;		/* must have been hit */
	uint64_t	features;	/* the kernel must have these */
	enum base	base;
	bool		writes;		/* every other page written first */
	bool		dontneed;	/* MADV_DONTNEED brings back base */
	size_t		npages;		/* 0: NPAGES */
};

#define T	LIBUFFD_DELIVER_THREAD
#define S	LIBUFFD_DELIVER_SIGBUS
#define MOVE	LIBUFFD_FEATURE_MOVE

static const struct icase cases[] = {
	/* transient: EAGAIN from every fill, EINTR from read() */
	{ "zero/copy+zeropage=EAGAIN/thread", "zero", T, 0, TRANSIENT,
	  "copy=EAGAIN@0.3,zeropage=EAGAIN@0.3,seed=1", LUFFD_INJ_COPY, 0,
	  BASE_ZERO, true, true, 0 },
	{ "zero/copy+zeropage=EAGAIN/sigbus", "zero", S, 0, TRANSIENT,
	  "copy=EAGAIN@0.3,zeropage=EAGAIN@0.3,seed=2", LUFFD_INJ_ZEROPAGE, 0,
	  BASE_ZERO, true, true, 0 },
	{ "prealloc/copy+zeropage=EAGAIN/thread", "prealloc:batch=16", T, 0,
	  TRANSIENT, "copy=EAGAIN@0.3,zeropage=EAGAIN@0.3,seed=3",
	  LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, 0 },
	{ "prealloc/copy+zeropage=EAGAIN/sigbus", "prealloc:batch=16", S, 0,
	  TRANSIENT, "copy=EAGAIN@0.3,zeropage=EAGAIN@0.3,seed=4",
	  LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, 0 },
	{ "prezero/move+copy=EAGAIN/thread", "prezero:batch=8", T, 0,
	  TRANSIENT, "move=EAGAIN@0.3,copy=EAGAIN@0.3,seed=5",
	  LUFFD_INJ_MOVE, MOVE, BASE_ZERO, true, true, 0 },
	{ "prezero/move+copy=EAGAIN/sigbus", "prezero:batch=8", S, 0,
	  TRANSIENT, "move=EAGAIN@0.3,copy=EAGAIN@0.3,seed=6",
	  LUFFD_INJ_MOVE, MOVE, BASE_ZERO, true, true, 0 },
	{ "hugezero/zeropage+copy=EAGAIN/thread", "hugezero", T, 0,
	  TRANSIENT, "zeropage=EAGAIN@0.7,copy=EAGAIN@0.7,seed=7",
	  LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, HUGE_NPAGES },
	{ "file/copy+zeropage=EAGAIN/thread", "file:path=%s", T, 0,
	  TRANSIENT, "copy=EAGAIN@0.3,zeropage=EAGAIN@0.3,seed=8",
	  LUFFD_INJ_COPY, 0, BASE_FILE, true, false, 0 },
	{ "evict/copy+move=EAGAIN/thread", "evict:limit=1M,batch=16", T, 0,
	  TRANSIENT, "copy=EAGAIN@0.3,move=EAGAIN@0.3,seed=9",
	  LUFFD_INJ_COPY, MOVE, BASE_ZERO, true, true, 0 },
	{ "zero/read=EINTR/thread", "zero", T, 0, TRANSIENT,
	  "read=EINTR@0.5,seed=10", LUFFD_INJ_READ, 0, BASE_ZERO, true, true, 0 },
	{ "prealloc/read=EINTR/thread", "prealloc:batch=16", T, 0, TRANSIENT,
	  "read=EINTR@0.5,seed=11", LUFFD_INJ_READ, 0, BASE_ZERO, true, true, 0 },
	{ "file/read=EINTR/thread", "file:path=%s", T, 0, TRANSIENT,
	  "read=EINTR@0.5,seed=12", LUFFD_INJ_READ, 0, BASE_FILE, false,
	  false, 0 },
	{ "evict/read=EINTR/thread", "evict:limit=1M,batch=16", T, 0,
	  TRANSIENT, "read=EINTR@0.5,seed=13", LUFFD_INJ_READ, MOVE,
	  BASE_ZERO, true, true, 0 },

	/* hard: ENOMEM and EFAULT from the fills, EIO from io_uring */
	{ "zero/copy=ENOMEM/thread", "zero", T, 0, HARD,
	  "copy=ENOMEM@0.1,seed=21", LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, 0 },
	{ "zero/zeropage=EFAULT/thread", "zero", T, 0, HARD,
	  "zeropage=EFAULT@0.1,seed=22", LUFFD_INJ_ZEROPAGE, 0, BASE_ZERO,
	  true, true, 0 },
	{ "zero/copy=EFAULT,zeropage=ENOMEM/thread-nopoison", "zero", T, 1,
	  HARD, "copy=EFAULT@0.1,zeropage=ENOMEM@0.1,seed=23",
	  LUFFD_INJ_ZEROPAGE, 0, BASE_ZERO, true, true, 0 },
	{ "zero/copy=EFAULT,zeropage=ENOMEM/sigbus", "zero", S, 0, HARD,
	  "copy=EFAULT@0.1,zeropage=ENOMEM@0.1,seed=24", LUFFD_INJ_COPY, 0,
	  BASE_ZERO, true, true, 0 },
	{ "zero/copy=ENOMEM,zeropage=EFAULT/sigbus-nopoison", "zero", S, 1,
	  HARD, "copy=ENOMEM@0.1,zeropage=EFAULT@0.1,seed=25",
	  LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, 0 },
	{ "prealloc/copy=ENOMEM,zeropage=EFAULT/thread", "prealloc:batch=16",
	  T, 0, HARD, "copy=ENOMEM@0.2,zeropage=EFAULT@0.2,seed=26",
	  LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, 0 },
	{ "prealloc/copy=EFAULT,zeropage=ENOMEM/sigbus", "prealloc:batch=16",
	  S, 0, HARD, "copy=EFAULT@0.2,zeropage=ENOMEM@0.2,seed=27",
	  LUFFD_INJ_ZEROPAGE, 0, BASE_ZERO, true, true, 0 },
	/*
	 * copy too: a scrubber starved by a busy machine has no page ready
	 * for the first touches, which then COPY zeros (CI under ASan saw
	 * "nothing injected in 0 calls" of move)
	 */
	{ "prezero/move+copy=ENOMEM/thread", "prezero:batch=8", T, 0, HARD,
	  "move=ENOMEM@0.1,copy=ENOMEM@0.1,seed=28", LUFFD_INJ_MOVE, MOVE,
	  BASE_ZERO, true, true, 0 },
	{ "prezero/move=EFAULT,copy=ENOMEM/sigbus", "prezero:batch=8", S, 0,
	  HARD, "move=EFAULT@0.1,copy=ENOMEM@0.1,seed=29", LUFFD_INJ_COPY,
	  MOVE, BASE_ZERO, true, true, 0 },
	{ "hugezero/zeropage=ENOMEM,copy=EFAULT/thread", "hugezero", T, 0,
	  HARD, "zeropage=ENOMEM@0.3,copy=EFAULT@0.3,seed=30",
	  LUFFD_INJ_COPY, 0, BASE_ZERO, true, true, HUGE_NPAGES },
	{ "file/copy=ENOMEM,zeropage=EFAULT/thread", "file:path=%s", T, 0,
	  HARD, "copy=ENOMEM@0.1,zeropage=EFAULT@0.1,seed=31",
	  LUFFD_INJ_COPY, 0, BASE_FILE, true, false, 0 },
	{ "file/uring_cqe=EIO/thread", "file:path=%s", T, 0, HARD,
	  "uring_cqe=EIO@0.5,seed=32", LUFFD_INJ_URING_CQE, 0, BASE_FILE,
	  false, false, 0 },
	{ "file-prefetch/uring_cqe=EIO/thread",
	  "file:path=%s,prefetch=1,readahead=16", T, 0, HARD,
	  "uring_cqe=EIO@0.5,seed=33", LUFFD_INJ_URING_CQE, 0, BASE_FILE,
	  false, false, 0 },
	{ "file/uring_submit=EIO/thread", "file:path=%s", T, 0, HARD,
	  "uring_submit=EIO@0.5,seed=34", LUFFD_INJ_URING_SUBMIT, 0,
	  BASE_FILE, false, false, 0 },
	{ "evict/copy=ENOMEM,move=EFAULT/thread", "evict:limit=1M,batch=16",
	  T, 0, HARD, "copy=ENOMEM@0.05,move=EFAULT@0.05,seed=35",
	  LUFFD_INJ_MOVE, MOVE, BASE_ZERO, true, true, 0 },
	{ "evict-file/uring_cqe=EIO/thread",
	  "evict:limit=1M,batch=16,store=file,direct=0,path=%s", T, 0, HARD,
	  "uring_cqe=EIO@0.05,seed=36", LUFFD_INJ_URING_CQE, MOVE, BASE_ZERO,
	  true, true, 0 },
	{ "evict-file/uring_submit=EIO/thread",
	  "evict:limit=1M,batch=16,store=file,direct=0,path=%s", T, 0, HARD,
	  "uring_submit=EIO@0.05,seed=37", LUFFD_INJ_URING_SUBMIT, MOVE,
	  BASE_ZERO, true, true, 0 },
};

/* Touch page @p of @base (a write of its mark, or a read); 1: SIGBUS. */
static int touch_page(uint8_t *base, size_t p, bool write)
{
	uint8_t v = mark_val(p);

	return touch_catch_sigbus(base + p * ps + (write ? mark_off(p) : 0),
				  write, &v, NULL);
}

/* Page @p as it must read: its base, with its mark if written. */
static void want_page(const struct icase *c, size_t p, bool written,
		      uint8_t *out)
{
	base_page(c->base, p, out);
	if (written)
		out[mark_off(p)] = mark_val(p);
}

static uint64_t injected_total(void)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < LUFFD_INJ_NSITES; i++)
		n += luffd_inject_count((enum luffd_inject_site)i);
	return n;
}

static void print_case(const struct icase *c, const char *what,
		       unsigned int sigbus, const struct uffd_stats *st)
{
	printf("%s: %s: injected %llu of %llu calls; SIGBUS %u; "
	       "pager_errors %llu poisoned %llu sigbus_queued %llu "
	       "failed_refaults %llu\n", c->name, what,
	       (unsigned long long)luffd_inject_count(c->site),
	       (unsigned long long)luffd_inject_calls(c->site), sigbus,
	       (unsigned long long)st->pager_errors,
	       (unsigned long long)st->poisoned,
	       (unsigned long long)st->sigbus_queued,
	       (unsigned long long)st->failed_refaults);
	fflush(stdout);
}

START_TEST(faults_under_injection)
{
	const struct icase *c = &cases[_i];
	struct uffd_ctx_opts co = {
		.size = sizeof(co), .delivery = c->delivery,
		.features_off = c->nopoison ? LIBUFFD_FEATURE_POISON : 0,
	};
	const size_t npages = c->npages ? c->npages : NPAGES;
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON,
		.len = npages * page_size(),
	};
	bool *failed = calloc(npages, sizeof(bool));
	bool *written = calloc(npages, sizeof(bool));
	uint8_t *want = malloc(page_size());
	struct uffd_stats st;
	unsigned int sigbus = 0, again = 0, refilled = 0;
	struct uffd_ctx *cx;
	struct uffd_region *r;
	char spec[200];
	uint8_t *base;
	size_t p;
	int ret;

	ck_assert_ptr_nonnull(failed);
	ck_assert_ptr_nonnull(written);
	ck_assert_ptr_nonnull(want);
	if (c->base == BASE_FILE || strstr(c->pager, "%s"))
		make_file();
	snprintf(spec, sizeof(spec), c->pager, file_path);
	ro.pager = spec;
	/* the library's SIGBUS handler chains to the catcher */
	sigbus_catcher_install();
	ck_assert_int_eq(uffd_ctx_create(&cx, &co), 0);
	ret = uffd_region_create(cx, &ro, &r);
	ck_assert_msg(ret == 0, "%s: %d %s", spec, ret, uffd_last_error());
	base = uffd_region_addr(r);
	ck_assert_int_eq(uffd_ctx_start(cx), 0);
	ck_assert_int_eq(luffd_inject_set(c->rules), 0);

	/* every page once, every other one written when asked */
	for (p = 0; p < npages; p++) {
		bool w = c->writes && p % 2 == 0;

		if (touch_page(base, p, w)) {
			failed[p] = true;
			sigbus++;
			continue;
		}
		written[p] = w;
		want_page(c, p, w, want);
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "%s: page %zu is wrong after its fault",
			      c->name, p);
	}
	ck_assert_int_eq(settled_region_stats(r, &st, TEST_WAIT_MS), 0);
	print_case(c, "first touch", sigbus, &st);
	/*
	 * Something was injected: at the case's site, or (prezero, whose
	 * pool may not be ready, COPYs instead of MOVEs) at another one.
	 */
	ck_assert_msg(injected_total() > 0, "%s: nothing injected in %llu "
		      "calls", c->name,
		      (unsigned long long)luffd_inject_calls(c->site));
	if (c->kind == TRANSIENT) {
		ck_assert_msg(sigbus == 0, "%s: %u SIGBUS for transient "
			      "errors", c->name, sigbus);
		ck_assert_uint_eq(st.pager_errors, 0);
	}
	/* each SIGBUS was one failed fault, and was poisoned or signalled */
	ck_assert_uint_eq(st.pager_errors + st.failed_refaults, sigbus);
	if (!c->nopoison)
		ck_assert_uint_eq(st.poisoned, st.pager_errors);
	else if (c->delivery == T)
		ck_assert_uint_eq(st.sigbus_queued, st.pager_errors);
	if (c->nopoison)
		ck_assert_uint_eq(st.poisoned, 0);

	/* again with injection still on: evicted pages come back */
	for (p = 0; p < npages; p++) {
		if (touch_page(base, p, false)) {
			if (!failed[p]) {
				ck_assert_msg(c->kind == HARD, "%s: page %zu: "
					      "SIGBUS for transient errors",
					      c->name, p);
				failed[p] = true;
			}
			continue;
		}
		if (failed[p]) {
			/* a later fill (a neighbour's batch) took it */
			refilled++;
			continue;
		}
		want_page(c, p, written[p], want);
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "%s: page %zu is wrong on its second touch",
			      c->name, p);
	}

	/* injection off: good pages stay good, failed ones stay failed */
	ck_assert_int_eq(luffd_inject_set(NULL), 0);
	for (p = 0; p < npages; p++) {
		if (touch_page(base, p, false)) {
			ck_assert_msg(failed[p], "%s: page %zu: SIGBUS without "
				      "injection", c->name, p);
			again++;
			continue;
		}
		want_page(c, p, written[p], want);
		if (failed[p]) {
			uint8_t *b = malloc(ps);

			/* refilled from scratch, or its data kept */
			base_page(c->base, p, b);
			ck_assert_msg(!memcmp(base + p * ps, want, ps) ||
				      !memcmp(base + p * ps, b, ps),
				      "%s: failed page %zu came back wrong",
				      c->name, p);
			free(b);
			continue;
		}
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "%s: page %zu is wrong after injection",
			      c->name, p);
	}
	/* a failure lasts until a REMOVE takes it away: then base pages */
	if (c->dontneed) {
		ck_assert_int_eq(madvise(base, npages * ps, MADV_DONTNEED), 0);
		for (p = 0; p < npages; p++) {
			ck_assert_msg(!touch_page(base, p, false),
				      "%s: page %zu: SIGBUS after DONTNEED",
				      c->name, p);
			base_page(c->base, p, want);
			ck_assert_msg(!memcmp(base + p * ps, want, ps),
				      "%s: page %zu is wrong after DONTNEED",
				      c->name, p);
		}
	}
	ck_assert_int_eq(settled_region_stats(r, &st, TEST_WAIT_MS), 0);
	printf("%s: at the end: %u failed pages, %u still failed, %u "
	       "refilled\n", c->name, sigbus, again, refilled);
	fflush(stdout);
	uffd_ctx_destroy(cx);
	free(failed);
	free(written);
	free(want);
}
END_TEST

/* ---- create, start, destroy: failures leave nothing behind ------- */

struct state {
	int	fds, threads;
	char	*maps;
};

static void snap(struct state *s)
{
	s->fds = count_fds();
	s->threads = count_threads();
	s->maps = maps_snapshot();
	ck_assert_int_ge(s->fds, 0);
	ck_assert_int_ge(s->threads, 0);
	ck_assert_ptr_nonnull(s->maps);
}

static void assert_same(const char *what, struct state *before)
{
	int fds = count_fds();
	int threads = wait_threads(before->threads, TEST_WAIT_MS);

	ck_assert_msg(fds == before->fds, "%s: %d descriptors, %d before",
		      what, fds, before->fds);
	char *maps = maps_snapshot(), diff[512];

	ck_assert_msg(threads == before->threads, "%s: %d threads, %d before",
		      what, threads, before->threads);
	ck_assert_ptr_nonnull(maps);
	maps_diff(before->maps, maps, diff, sizeof(diff));
	ck_assert_msg(maps_equal(before->maps, maps), "%s: mappings "
		      "changed:\n%s", what, diff);
	free(maps);
	free(before->maps);
	before->maps = NULL;
}

static const char *const lifecycle_pagers[] = {
	"zero",
	"prealloc:batch=16",
	"prezero:batch=8",
	"hugezero",
	"file:path=%s,prefetch=1,readahead=16",
	"evict:limit=1M,batch=16",
	"evict:limit=1M,batch=16,store=file,direct=0,path=%s",
};

/*
 * One life: create, region, start, touch every page, destroy.  Returns
 * 0, or the first error (which must be @err) with everything undone.
 */
static int one_life(const char *pager, int delivery, unsigned int handlers,
		    int err, const char **where)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co), .delivery = delivery,
		.handlers = handlers,
	};
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON,
		.len = NPAGES * page_size(), .pager = pager,
	};
	struct uffd_region *r;
	struct uffd_ctx *cx;
	uint8_t *base;
	size_t p;
	int ret;

	*where = "uffd_ctx_create";
	ret = uffd_ctx_create(&cx, &co);
	if (ret)
		return ret;
	*where = "uffd_region_create";
	ret = uffd_region_create(cx, &ro, &r);
	if (ret)
		goto out;
	*where = "uffd_ctx_start";
	ret = uffd_ctx_start(cx);
	if (ret)
		goto out;
	base = uffd_region_addr(r);
	for (p = 0; p < NPAGES; p++) {
		uint8_t v = 0;

		/* an injected error may fail a fill too: SIGBUS then */
		if (touch_catch_sigbus(base + p * ps, 1, &v, NULL) &&
		    !err)
			ck_abort_msg("%s: page %zu: SIGBUS", pager, p);
	}
	*where = "";
out:
	uffd_ctx_destroy(cx);
	return ret;
}

/*
 * glibc keeps the stacks of joined threads for the next ones: one life
 * of each pager first, so that a later life's threads find their stacks
 * there and the mappings count only what the library leaves.
 */
static void warm_up(void)
{
	char spec[200];
	const char *where;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(lifecycle_pagers); i++) {
		snprintf(spec, sizeof(spec), lifecycle_pagers[i], file_path);
		ck_assert_msg(one_life(spec, T, 2, 0, &where) == 0, "%s: %s",
			      spec, where);
	}
}

/*
 * The Nth call of a site fails, for N = 1, 2, ... until a whole life
 * makes fewer calls: every mmap (or pthread_create) of every pager's
 * life fails once, and each failure is -ENOMEM with nothing left.
 */
static void every_call_fails(const char *site, int s, int err)
{
	unsigned int i, lives = 0, failures = 0;
	char spec[200], rule[64];

	make_file();
	warm_up();
	for (i = 0; i < ARRAY_SIZE(lifecycle_pagers); i++) {
		int delivery;

		snprintf(spec, sizeof(spec), lifecycle_pagers[i], file_path);
		for (delivery = T; delivery <= S; delivery++) {
			uint64_t n;

			if (delivery == S && (strstr(spec, "evict") ||
					      strstr(spec, "file")))
				continue;	/* not CONCURRENT, or WP */
			for (n = 1;; n++) {
				struct state before;
				const char *where;
				int ret;

				snap(&before);
				snprintf(rule, sizeof(rule), "%s=%d#%llu",
					 site, err, (unsigned long long)n);
				ck_assert_int_eq(luffd_inject_set(rule), 0);
				ret = one_life(spec, delivery, 2, err, &where);
				lives++;
				ck_assert_msg(ret == 0 || ret == -err,
					      "%s: %s: %s: %d (%s)", spec, rule,
					      where, ret, uffd_last_error());
				if (ret)
					failures++;
				/* the touch's own faults may have hit it */
				assert_same(rule, &before);
				if (!luffd_inject_count(s))
					break;
			}
			printf("%s (%s): %s failed in turn at each of its "
			       "%llu calls\n", spec,
			       delivery == S ? "sigbus" : "thread", site,
			       (unsigned long long)(n - 1));
		}
	}
	printf("%s: %u lives, %u ended in -%s\n", site, lives, failures,
	       "ENOMEM");
	fflush(stdout);
	ck_assert_uint_gt(failures, 0);
}

START_TEST(every_mmap_fails)
{
	every_call_fails("mmap", LUFFD_INJ_MMAP, ENOMEM);
}
END_TEST

START_TEST(every_thread_fails)
{
	every_call_fails("thread", LUFFD_INJ_THREAD, ENOMEM);
}
END_TEST

/*
 * Lives under every rule at once, at rates: whatever fails, nothing
 * leaks and no call hangs.
 */
START_TEST(lives_leak_nothing)
{
	static const char *const rules =
		"copy=ENOMEM@0.02,zeropage=EAGAIN@0.2,move=EFAULT@0.02,"
		"read=EINTR@0.3,mmap=ENOMEM@0.05,thread=ENOMEM@0.1,"
		"uring_submit=EIO@0.05,uring_cqe=EIO@0.05,seed=77";
	unsigned int i, round, ok = 0, failed = 0;
	struct state before;
	char spec[200];

	make_file();
	warm_up();
	snap(&before);
	ck_assert_int_eq(luffd_inject_set(rules), 0);
	for (round = 0; round < 4; round++) {
		for (i = 0; i < ARRAY_SIZE(lifecycle_pagers); i++) {
			const char *where;
			int ret;

			snprintf(spec, sizeof(spec), lifecycle_pagers[i],
				 file_path);
			ret = one_life(spec, T, 1 + round % 2, ENOMEM, &where);
			ck_assert_msg(ret == 0 || ret == -ENOMEM, "%s: %s: %d "
				      "(%s)", spec, where, ret,
				      uffd_last_error());
			if (ret)
				failed++;
			else
				ok++;
		}
	}
	printf("lives_leak_nothing: %u lives whole, %u failed with -ENOMEM;"
	       " injected: mmap %llu, thread %llu, copy %llu, read %llu, "
	       "uring %llu+%llu\n", ok, failed,
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_MMAP),
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_THREAD),
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_COPY),
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_READ),
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_URING_SUBMIT),
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_URING_CQE));
	fflush(stdout);
	luffd_inject_set(NULL);
	assert_same("lives_leak_nothing", &before);
}
END_TEST

/* ---- io_uring submits that fail for good ------------------------- */

/*
 * Every submit fails (uring_submit=EIO@1): the file store's wait tries
 * again for a while, then gives up.  A request the kernel never got must
 * then be over (failed) before its caller gets its memory back: once
 * submits work again, a request left queued in the ring would go out
 * with the next one, reading into a buffer the caller has reused, or
 * writing from one, and its completion would land in a dead stack frame
 * (uffd_store_read() and uffd_store_write() keep their request there).
 */
START_TEST(store_submits_fail_sync_io)
{
	uint8_t *a = malloc(ps), *b = malloc(ps), *w = malloc(ps);
	uint8_t *want = malloc(ps);
	struct uffd_store_stats ss;
	struct uffd_store *st;
	char spec[128];
	size_t j;
	int ret;

	ck_assert(a && b && w && want);
	make_file();
	/* the page cache, not O_DIRECT: tmpfs has none before 6.6 */
	snprintf(spec, sizeof(spec), "file:path=%s", file_path);
	ck_assert_int_eq(uffd_store_open(spec, FILE_PAGES * ps, &st), 0);

	ck_assert_int_eq(luffd_inject_set("uring_submit=EIO@1"), 0);
	memset(a, 0x11, ps);
	ret = uffd_store_read(st, 3, 1, a);
	if (!luffd_inject_calls(LUFFD_INJ_URING_SUBMIT)) {
		/* io_uring refused here (io_uring_disabled): pread */
		skip_case("store_submits_fail_sync_io", "no io_uring");
		goto out;
	}
	ck_assert_msg(ret == -EIO, "read under failing submits: %d", ret);
	memset(w, 0xc3, ps);
	ret = uffd_store_write(st, 7, 1, w);
	ck_assert_msg(ret == -EIO, "write under failing submits: %d", ret);
	printf("store_submits_fail_sync_io: %llu submits failed\n",
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_URING_SUBMIT));
	fflush(stdout);

	/* the caller has its buffers back: it reuses them */
	memset(a, 0x5a, ps);
	memset(w, 0x3c, ps);
	ck_assert_int_eq(luffd_inject_set(NULL), 0);
	ret = uffd_store_read(st, 5, 1, b);
	ck_assert_msg(ret == 0, "read after injection: %d %s", ret,
		      uffd_last_error());
	base_page(BASE_FILE, 5, want);
	ck_assert_msg(!memcmp(b, want, ps), "page 5 read back wrong");
	for (j = 0; j < ps; j++)
		ck_assert_msg(a[j] == 0x5a, "the failed read of page 3 wrote "
			      "into its buffer after it returned (byte %zu: "
			      "%#x)", j, a[j]);
	/* the failed write never reached the file, nor a later buffer */
	ck_assert_int_eq(uffd_store_read(st, 7, 1, b), 0);
	base_page(BASE_FILE, 7, want);
	ck_assert_msg(!memcmp(b, want, ps), "page 7 changed by a write that "
		      "failed (first byte %#x; %#x is the buffer's after the "
		      "call)", b[0], 0x3c);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	ck_assert_int_eq(uffd_store_stats(st, &ss, sizeof(ss)), 0);
	ck_assert_uint_eq(ss.errors, 2);
	ck_assert_uint_eq(ss.writes, 0);
	ck_assert_uint_eq(ss.reads, 2);
out:
	uffd_store_close(st);
	free(a);
	free(b);
	free(w);
	free(want);
}
END_TEST

/* A read in a frame of its own, gone once it returns. */
static __attribute__((noinline)) int read_in_frame(struct uffd_store *st,
						   uint64_t page, void *buf)
{
	volatile char pad[256];

	pad[0] = 1;
	(void)pad[0];
	return uffd_store_read(st, page, 1, buf);
}

/*
 * The first wait for a completion fails (uring_wait=EIO#1): the read is
 * in the kernel, its request in uffd_store_read()'s stack frame.  The
 * call may not return before the completion is back: it waits again, and
 * the read succeeds; nothing is left in flight to complete later into a
 * dead frame (ASan with detect_stack_use_after_return=1 sees that).
 */
START_TEST(store_wait_fails_sync_io)
{
	uint8_t *a = malloc(ps), *want = malloc(ps);
	struct uffd_store *st;
	char spec[128];
	int ret;

	ck_assert(a && want);
	make_file();
	snprintf(spec, sizeof(spec), "file:path=%s", file_path);
	ck_assert_int_eq(uffd_store_open(spec, FILE_PAGES * ps, &st), 0);
	ck_assert_int_eq(luffd_inject_set("uring_wait=EIO#1"), 0);
	ret = read_in_frame(st, 3, a);
	if (!luffd_inject_calls(LUFFD_INJ_URING_SUBMIT)) {
		skip_case("store_wait_fails_sync_io", "no io_uring");
		goto out;
	}
	printf("store_wait_fails_sync_io: %llu of %llu waits failed\n",
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_URING_WAIT),
	       (unsigned long long)luffd_inject_calls(LUFFD_INJ_URING_WAIT));
	fflush(stdout);
	ck_assert_uint_eq(luffd_inject_count(LUFFD_INJ_URING_WAIT), 1);
	/* a later read reaps whatever the first one left */
	ck_assert_int_eq(uffd_store_read(st, 5, 1, want), 0);
	ck_assert_msg(ret == 0, "read with one failed wait: %d", ret);
	ck_assert_uint_eq(uffd_store_inflight(st), 0);
	base_page(BASE_FILE, 3, want);
	ck_assert_msg(!memcmp(a, want, ps), "page 3 read back wrong");
out:
	uffd_store_close(st);
	free(a);
	free(want);
}
END_TEST

/*
 * An eviction round under a failing ring.  The region: EV_LIMIT pages of
 * budget, rounds of 4, one page per fault; writing EV_LIMIT - 4 + 1
 * pages starts the first round.
 *
 *  - every submit fails: the round's writes never reach the store, and
 *    the pages it took out must come back resident and dirty, counted
 *    in writeback_errors, never dropped as written;
 *  - the first wait for a completion fails: the writes are in the
 *    kernel, and only their completions say how they went: the round
 *    waits again, and counts them written once they are.
 */
#define EV_LIMIT	16
#define EV_BATCH	4

static const struct {
	const char	*rules;
	bool		writes_fail;
} ev_rounds[] = {
	{ "uring_submit=EIO@1", true },
	{ "uring_wait=EIO#1", false },
};

/*
 * The evict region both cases below use: EV_LIMIT pages of budget over a
 * store file of its own (fresh=1, evict's default), started, and pages
 * 0..@high written with their base (no round yet).  Returns its address.
 */
static uint8_t *ev_start(struct uffd_ctx **cx, struct uffd_region **r,
			 size_t high, uint8_t *want)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co), .delivery = LIBUFFD_DELIVER_THREAD,
	};
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON,
		.len = 2 * EV_LIMIT * page_size(),
	};
	char spec[200];
	uint8_t *base;
	size_t p;
	int ret;

	make_file();
	snprintf(spec, sizeof(spec), "evict:limit=%zu,batch=%d,readahead=1,"
		 "policy=fifo,store=file,direct=0,path=%s", EV_LIMIT * ps,
		 EV_BATCH, file_path);
	ro.pager = spec;
	ck_assert_int_eq(uffd_ctx_create(cx, &co), 0);
	ret = uffd_region_create(*cx, &ro, r);
	ck_assert_msg(ret == 0, "%s: %d %s", spec, ret, uffd_last_error());
	base = uffd_region_addr(*r);
	ck_assert_int_eq(uffd_ctx_start(*cx), 0);
	for (p = 0; p < high; p++) {
		base_page(BASE_FILE, p, want);
		memcpy(base + p * ps, want, ps);
	}
	return base;
}

START_TEST(evict_round_ring_fails)
{
	const char *rules = ev_rounds[_i].rules;
	const bool writes_fail = ev_rounds[_i].writes_fail;
	uint64_t injected;
	const size_t high = EV_LIMIT - EV_BATCH, n = high + 1;
	uint8_t *want = malloc(ps);
	struct uffd_stats st;
	struct uffd_ctx *cx;
	struct uffd_region *r;
	uint8_t *base;
	size_t p;
	int i;

	ck_assert_ptr_nonnull(want);
	/* up to the high watermark: no round yet */
	base = ev_start(&cx, &r, high, want);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.pages_evicted, 0);
	/* one more, the ring failing: the round starts */
	ck_assert_int_eq(luffd_inject_set(rules), 0);
	base_page(BASE_FILE, high, want);
	memcpy(base + high * ps, want, ps);
	for (i = 0; i < 300; i++) {
		ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
		if (st.pages_evicted &&
		    st.pages_written_back + st.writeback_errors >=
		    st.pages_evicted)
			break;
		usleep(100000);
	}
	printf("evict_round_ring_fails: %s: evicted %llu, written back %llu, "
	       "writeback_errors %llu; %llu of %llu submits, %llu of %llu "
	       "waits failed\n", rules, (unsigned long long)st.pages_evicted,
	       (unsigned long long)st.pages_written_back,
	       (unsigned long long)st.writeback_errors,
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_URING_SUBMIT),
	       (unsigned long long)luffd_inject_calls(LUFFD_INJ_URING_SUBMIT),
	       (unsigned long long)luffd_inject_count(LUFFD_INJ_URING_WAIT),
	       (unsigned long long)luffd_inject_calls(LUFFD_INJ_URING_WAIT));
	fflush(stdout);
	injected = injected_total();
	if (!luffd_inject_calls(LUFFD_INJ_URING_SUBMIT)) {
		skip_case("evict_round_ring_fails", "no io_uring");
		goto out;
	}
	ck_assert_msg(st.pages_evicted > 0, "no round ran");

	/* every page holds what was written, resident or read back */
	ck_assert_int_eq(luffd_inject_set(NULL), 0);
	for (p = 0; p < n; p++) {
		base_page(BASE_FILE, p, want);
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "page %zu lost: its first byte is %#x, %#x was "
			      "written", p, base[p * ps], want[0]);
	}
	ck_assert_uint_gt(injected, 0);
	if (writes_fail) {
		/* no submit went through: nothing can have been written */
		ck_assert_msg(st.pages_written_back == 0, "%llu pages "
			      "counted written back while every submit "
			      "failed",
			      (unsigned long long)st.pages_written_back);
		ck_assert_uint_eq(st.writeback_errors, st.pages_evicted);
	} else {
		ck_assert_uint_eq(st.writeback_errors, 0);
		ck_assert_uint_eq(st.pages_written_back, st.pages_evicted);
	}
	/* and still after a flush, which writes the failed ones again */
	ck_assert_int_eq(uffd_region_flush(r), 0);
	for (p = 0; p < n; p++) {
		base_page(BASE_FILE, p, want);
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "page %zu wrong after the flush", p);
	}
out:
	uffd_ctx_destroy(cx);
	free(want);
}
END_TEST

/*
 * A round's write fails and so does the copy back of the page it took
 * out (both injected: every submit, every UFFDIO_COPY): the page is
 * neither in the store nor resident.  A touch of it must raise SIGBUS,
 * counted as a pager error, never read zeros; thrown away
 * (MADV_DONTNEED), it reads zeros again.  The others are untouched.
 * Before the fix such a page read zeros: lost without a word.
 */
START_TEST(evict_lost_page_sigbus)
{
	const size_t high = EV_LIMIT - EV_BATCH;
	uint8_t *want = malloc(ps);
	struct uffd_stats st;
	struct uffd_ctx *cx;
	struct uffd_region *r;
	size_t p, lost = 0;
	uint8_t *base;
	int ret;

	ck_assert_ptr_nonnull(want);
	base = ev_start(&cx, &r, high, want);
	/*
	 * A flush takes every dirty page out, writes it and copies it
	 * back: no fault of ours fills anything meanwhile.
	 */
	ck_assert_int_eq(luffd_inject_set("uring_submit=EIO@1,copy=EFAULT@1"),
			 0);
	ret = uffd_region_flush(r);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	if (!luffd_inject_calls(LUFFD_INJ_URING_SUBMIT)) {
		skip_case("evict_lost_page_sigbus", "no io_uring");
		goto out;
	}
	ck_assert_msg(ret < 0, "a flush whose every write failed said %d",
		      ret);
	ck_assert_uint_eq(st.writeback_errors, high);
	ck_assert_uint_gt(luffd_inject_count(LUFFD_INJ_COPY), 0);
	ck_assert_int_eq(luffd_inject_set(NULL), 0);

	for (p = 0; p < high; p++) {
		base_page(BASE_FILE, p, want);
		if (touch_page(base, p, false)) {
			lost++;
			continue;
		}
		ck_assert_msg(!memcmp(base + p * ps, want, ps),
			      "page %zu read %#x, %#x was written: a page "
			      "whose write-back and copy back failed read "
			      "as something else, not SIGBUS", p,
			      base[p * ps], want[0]);
	}
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	printf("evict_lost_page_sigbus: flushed %zu, writeback_errors %llu, "
	       "lost (SIGBUS) %zu, pager_errors %llu\n", high,
	       (unsigned long long)st.writeback_errors, lost,
	       (unsigned long long)st.pager_errors);
	fflush(stdout);
	ck_assert_uint_eq(lost, high);
	ck_assert_uint_ge(st.pager_errors, lost);
	/* thrown away, a lost page reads zeros from then on */
	for (p = 0; p < high; p++) {
		ck_assert_int_eq(madvise(base + p * ps, ps, MADV_DONTNEED), 0);
		ck_assert_int_eq(touch_page(base, p, false), 0);
		ck_assert_uint_eq(base[p * ps], 0);
	}
out:
	uffd_ctx_destroy(cx);
	free(want);
}
END_TEST

/* ---- the rules themselves ---------------------------------------- */

START_TEST(rules_parse_and_reproduce)
{
	static const char *const bad[] = {
		"copy", "copy=EAGAIN", "copy=EAGAIN@2", "copy=EAGAIN@-1",
		"nosuch=EIO@0.5", "copy=EWHAT@0.5", "copy=EIO#0", "seed=",
		"copy=EIO@0.5x",
	};
	uint64_t first[64];
	unsigned int i, round;

	for (i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(luffd_inject_set(bad[i]) == -EINVAL, "%s",
			      bad[i]);
	/* the same seed draws the same failures */
	for (round = 0; round < 2; round++) {
		ck_assert_int_eq(luffd_inject_set("read=EINTR@0.5,seed=9"), 0);
		for (i = 0; i < ARRAY_SIZE(first); i++) {
			int e = luffd_inject(LUFFD_INJ_READ);

			ck_assert(e == 0 || e == EINTR);
			if (round == 0)
				first[i] = (uint64_t)e;
			else
				ck_assert_uint_eq(first[i], (uint64_t)e);
		}
	}
	ck_assert_uint_eq(luffd_inject_calls(LUFFD_INJ_READ), 64);
	/* about half: far from none and from all */
	ck_assert_uint_gt(luffd_inject_count(LUFFD_INJ_READ), 16);
	ck_assert_uint_lt(luffd_inject_count(LUFFD_INJ_READ), 48);
	ck_assert_int_eq(luffd_inject_set("mmap=ENOMEM#3"), 0);
	for (i = 1; i <= 5; i++)
		ck_assert_int_eq(luffd_inject(LUFFD_INJ_MMAP),
				 i == 3 ? ENOMEM : 0);
	ck_assert_int_eq(luffd_inject_set("copy=5@1,copy=off"), 0);
	ck_assert_int_eq(luffd_inject(LUFFD_INJ_COPY), 0);
	ck_assert_int_eq(luffd_inject_set("copy=5@1"), 0);
	ck_assert_int_eq(luffd_inject(LUFFD_INJ_COPY), 5);
}
END_TEST

static Suite *inject_suite(void)
{
	Suite *s = suite_create("inject");
	TCase *tc;
	unsigned int i;

	tc = add_tcase(s, "rules", setup, teardown);
	tcase_add_test(tc, rules_parse_and_reproduce);
	tc = add_tcase(s, "faults", setup, teardown);
	tcase_set_timeout(tc, 60);
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		add_loop_test_if(tc, faults_under_injection, (int)i,
				 (int)i + 1, cases[i].features, 0);
	tc = add_tcase(s, "lifecycle", setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, every_mmap_fails);
	tcase_add_test(tc, every_thread_fails);
	tcase_add_test(tc, lives_leak_nothing);
	tc = add_tcase(s, "uring", setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, store_submits_fail_sync_io);
	tcase_add_test(tc, store_wait_fails_sync_io);
	add_loop_test_if(tc, evict_round_ring_fails, 0,
			 (int)ARRAY_SIZE(ev_rounds), LIBUFFD_FEATURE_MOVE, 0);
	add_loop_test_if(tc, evict_lost_page_sigbus, 0, 1,
			 LIBUFFD_FEATURE_MOVE, 0);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	return run_suite(inject_suite());
}
