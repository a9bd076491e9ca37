/* SPDX-License-Identifier: MIT */
/*
 * The snapshot image shared by demos/snapshot-restore and the "restore"
 * experiment (bench-restore.c), which uffd-bench can also call.
 *
 * The image is raw memory: page i of the snapshot at file offset i * 4096.
 * A quarter of the pages, chosen by a hash of the page number, are zero
 * and are left as holes (the file is sparse, as Firecracker's and CRIU's
 * images of mostly-untouched memory are); every other page holds 512
 * words "snapshot" ^ (page << 9 | word), easy to spot in a hex dump.
 */
#ifndef BENCH_RESTORE_H
#define BENCH_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESTORE_PAGE		4096
/* "snapshot" */
#define RESTORE_MAGIC		0x736e617073686f74ull

/* Is page @p of the image one of the zero quarter? */
bool restore_page_zero(uint64_t p);
/* What word @w of page @p holds. */
static inline uint64_t restore_word(uint64_t p, uint64_t w)
{
	return restore_page_zero(p) ? 0 : RESTORE_MAGIC ^ (p << 9 | w);
}
/* Fill one page of what the image holds at page @p. */
void restore_fill_page(uint64_t p, void *page);
/* Does @page hold what page @p of the image holds? */
bool restore_page_ok(const void *page, uint64_t p);
/* Pages of [base, base + pages) that differ from the image. */
uint64_t restore_verify(const void *base, uint64_t pages);

/*
 * Steps 1 and 2 of the demo: fill @size bytes of fresh memory with the
 * pattern (zero pages untouched), then write them to @path, skipping the
 * zero pages, and fsync.  Returns 0 or -errno (@why says what failed).
 */
int restore_image_make(const char *path, uint64_t size, char *why,
		       size_t len);

/*
 * Drop @path from the page cache: fdatasync, then vm.drop_caches = 3, or
 * POSIX_FADV_DONTNEED on the file where drop_caches cannot be written.
 * Returns 1 when the whole cache was dropped, 0 when only the file's
 * pages were, -1 when neither (@why says why).
 */
int restore_drop_cache(const char *path, char *why, size_t len);

/* Small tools both programs use. */
uint64_t restore_now_ns(void);
/* Pin the calling thread to @cpu, or let it run anywhere (-1). */
void restore_pin_self(int cpu);
/* A random permutation of @pages page numbers from @seed (malloc'ed). */
uint32_t *restore_page_order(uint64_t pages, uint64_t seed);
/* "1G", "512M"...: a size that is a whole number of pages, or -1. */
int restore_parse_size(const char *s, uint64_t *out);

/*
 * The "restore" experiment: restore the image through each engine of the
 * file pager and through the kernel's own mmap(MAP_PRIVATE) of it, read
 * or read then written, in order and at random, by 1 or 2 threads, from
 * a cold or warm page cache; every row against kernel-mmap.
 * Own options (see --help); returns an exit status.
 */
int bench_restore(int argc, char **argv);

#endif /* BENCH_RESTORE_H */
