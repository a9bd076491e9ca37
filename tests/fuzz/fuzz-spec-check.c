/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: uffd_pager_spec_check, which parses a pager spec and
 * runs the pager's own init on a scratch region, so every built-in
 * pager's argument checks (and its stores') are fuzzed too.
 *
 * Input: byte 0 picks the region length (below), the rest up to a NUL is
 * the spec.  Specs holding a '/' are skipped: pagers and stores open and
 * create the files their specs name, and the fuzzer runs in a scratch
 * directory (fuzz-spec-check.d, under the current one) holding "img",
 * a 1 MiB file, so that it only ever touches files there.
 *
 * Checked: the result is 0 with no error text, or negative with a
 * reason; a spec the parser refuses, or an unknown pager, is -EINVAL;
 * and nothing leaks (LeakSanitizer, and descriptors: the lowest free one
 * is the same after each call).  Without userfaultfd (CI containers),
 * every known pager fails in uffd_ctx_create and only parsing is fuzzed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(x)							\
	do {								\
		if (!(x)) {						\
			fprintf(stderr, "%s:%d: check failed: %s\n",	\
				__FILE__, __LINE__, #x);		\
			abort();					\
		}							\
	} while (0)

#define IMG_LEN	(1u << 20)

static void make_img(void)
{
	struct stat s;
	int fd;

	if (!stat("img", &s) && S_ISREG(s.st_mode) && s.st_size == IMG_LEN)
		return;
	unlink("img");
	fd = open("img", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, IMG_LEN) == 0);
	close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct uffd_ctx *c = NULL;
	int ret;

	if (mkdir("fuzz-spec-check.d", 0700) && errno != EEXIST)
		abort();
	CHECK(chdir("fuzz-spec-check.d") == 0);
	make_img();
	ret = uffd_ctx_create(&c, NULL);
	if (ret < 0)
		fprintf(stderr, "fuzz-spec-check: no userfaultfd (%s): only "
			"the parser is fuzzed\n", uffd_last_error());
	uffd_ctx_destroy(c);
	return 0;
}

static int lowest_free_fd(void)
{
	int fd = dup(0);

	CHECK(fd >= 0);
	close(fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 0: the default 2 MiB; odd ones are refused by region creation */
	static const size_t lens[8] = {
		0, 4096, 8192, 64 << 10, 1 << 20, 4 << 20, 4097, 3 << 12,
	};
	struct uffd_args a;
	size_t len;
	char *spec;
	int ret, pret, low;

	if (size < 1)
		return 0;
	len = lens[data[0] & 7];
	spec = strndup((const char *)data + 1, size - 1);
	CHECK(spec);
	if (strchr(spec, '/'))
		goto out;
	make_img();	/* a store may have truncated or grown it */
	pret = luffd_spec_parse(spec, &a);
	if (!pret) {
		if (!uffd_pager_find(a.name))
			pret = -EINVAL;
		luffd_args_free(&a);
	}
	low = lowest_free_fd();
	luffd_clear_error();
	ret = uffd_pager_spec_check(spec, len);
	CHECK(ret <= 0);
	if (ret == 0)
		CHECK(!*uffd_last_error());
	else
		CHECK(*uffd_last_error());
	if (pret < 0)
		CHECK(ret == -EINVAL);
	CHECK(lowest_free_fd() == low);
out:
	free(spec);
	return 0;
}
