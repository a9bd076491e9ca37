/* SPDX-License-Identifier: MIT */
/*
 * An unmodified program for uffd-bench app's test: calloc MiB (argument,
 * default 64), read every page, then write it, as seed 000 does, and
 * print a checksum that is the same however the memory was paged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t len = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) << 20;
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), i;
	volatile unsigned char *p = calloc(len, 1);
	unsigned long sum = 0;

	if (!p) {
		perror("calloc");
		return 1;
	}
	for (i = 0; i < len; i += ps)
		sum += p[i];
	for (i = 0; i < len; i += ps)
		p[i] = (unsigned char)(i / ps) | 1;
	for (i = 0; i < len; i += ps)
		sum += p[i];
	printf("%zu pages, sum %lu\n", len / ps, sum);
	free((void *)p);
	return 0;
}
