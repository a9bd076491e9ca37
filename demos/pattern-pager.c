/* SPDX-License-Identifier: MIT */
/*
 * pattern-pager - the smallest complete custom pager; copy it to start one.
 *
 * Each page of the region is filled on its first touch with a pattern
 * derived from its offset: every uint64_t holds its own byte offset in the
 * region XOR a seed given as the pager argument "seed=N".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libuffd.h>

#define NPAGES	16
#define SEED	20240611

struct pattern {
	uint64_t	seed;
	size_t		page_size;
	uint64_t	*page;	/* so that the fault path never allocates */
};

static int pattern_init(struct uffd_region *region,
			const struct uffd_args *args, void **state)
{
	static const char *const known[] = { "seed", NULL };
	struct pattern *p;
	void *buf = NULL;
	int ret;

	ret = uffd_args_check(args, known);
	if (ret)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->page_size = uffd_region_page_size(region);
	ret = uffd_args_u64(args, "seed", &p->seed, 0, UINT64_MAX);
	if (!ret && posix_memalign(&buf, p->page_size, p->page_size))
		ret = -ENOMEM;
	if (ret) {
		free(p);
		return ret;
	}
	p->page = buf;
	*state = p;
	return 0;
}

/* Runs in the context's one handler thread, so one buffer is enough. */
static int pattern_fault(void *state, struct uffd_resolver *res,
			 const struct uffd_fault *f)
{
	struct pattern *p = state;
	size_t i, n = p->page_size / sizeof(uint64_t);
	long ret;

	for (i = 0; i < n; i++)
		p->page[i] = (f->offset + i * sizeof(uint64_t)) ^ p->seed;
	ret = uffd_resolve_copy(res, f->offset, p->page, p->page_size);
	return ret < 0 ? (int)ret : 0;
}

static void pattern_fini(void *state)
{
	struct pattern *p = state;

	free(p->page);
	free(p);
}

static const struct uffd_pager_ops pattern_ops = {
	.version	= LIBUFFD_PAGER_OPS_VERSION,
	.name		= "pattern",
	.init		= pattern_init,
	.fault		= pattern_fault,
	.fini		= pattern_fini,
};

static int fail(const char *call, int err)
{
	fprintf(stderr, "pattern-pager: %s: %s (%s)\n", call,
		uffd_last_error(), strerror(-err));
	return 1;
}

int main(void)
{
	static const size_t touch[] = { 0, 1, 7, NPAGES - 1 };
	struct uffd_region_opts opts = {
		.size	= sizeof(opts),
		.type	= LIBUFFD_MEM_ANON,
		.len	= NPAGES * (size_t)sysconf(_SC_PAGESIZE),
		.ops	= &pattern_ops,
	};
	struct uffd_ctx *ctx = NULL;
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	size_t i, w, words, bad = 0;
	char args[32];
	int ret;

	snprintf(args, sizeof(args), "seed=%d", SEED);
	opts.args = args;
	ret = uffd_ctx_create(&ctx, NULL);
	if (ret)
		return fail("uffd_ctx_create", ret);
	ret = uffd_ctx_start(ctx);
	if (ret) {
		ret = fail("uffd_ctx_start", ret);
		goto out;
	}
	ret = uffd_region_create(ctx, &opts, &r);
	if (ret) {
		ret = fail("uffd_region_create", ret);
		goto out;
	}

	words = uffd_region_page_size(r) / sizeof(uint64_t);
	for (i = 0; i < sizeof(touch) / sizeof(touch[0]); i++) {
		const volatile uint64_t *page = (const uint64_t *)
			uffd_region_addr(r) + touch[i] * words;

		for (w = 0; w < words; w++) {
			uint64_t off = (touch[i] * words + w) * 8;

			if (page[w] != (off ^ SEED))
				bad++;
		}
	}
	printf("pattern-pager: %zu pages read, %zu bad words\n", i, bad);

	ret = uffd_region_stats(r, &st, sizeof(st));
	if (ret) {
		ret = fail("uffd_region_stats", ret);
		goto out;
	}
	ret = uffd_stats_print(&st, LIBUFFD_FMT_TEXT, stdout);
	if (ret) {
		ret = fail("uffd_stats_print", ret);
		goto out;
	}
	ret = bad ? 1 : 0;
out:
	uffd_region_destroy(r);
	uffd_ctx_destroy(ctx);
	return ret;
}
