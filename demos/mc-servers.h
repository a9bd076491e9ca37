/* SPDX-License-Identifier: MIT */
/*
 * Memcached servers of one's own, on free loopback ports: what
 * tests/test-memcached and the restore bench start when they are given
 * none, so that nothing depends on a server someone else started.
 */
#ifndef MC_SERVERS_H
#define MC_SERVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MC_SERVERS_MAX	8

struct mc_servers {
	unsigned int	n;
	pid_t		pid[MC_SERVERS_MAX];	/* 0: stopped; -1: not ours */
	int		port[MC_SERVERS_MAX];
	char		list[MC_SERVERS_MAX * 24];	/* "127.0.0.1:P;..." */
};

/*
 * The memcached binary: $MEMCACHED, else memcached in PATH, /usr/bin or
 * /usr/sbin; NULL if none.
 */
const char *mc_servers_binary(void);

/*
 * Start @n servers of @mem_mb MiB each (-m), on free loopback ports,
 * with -M (a full server refuses sets rather than evict pages, which
 * would read back as zeros), -R 1024 (a window's multi-get is not cut
 * into events of 20 keys) and UDP off, and wait until each accepts a
 * connection.  Returns 0, or -errno with @why filled and none left
 * running (-ENOENT: no memcached binary).
 */
int mc_servers_start(struct mc_servers *s, unsigned int n,
		     unsigned int mem_mb, char *why, size_t len);

/* Kill server @i (SIGKILL) and reap it. */
void mc_servers_kill(struct mc_servers *s, unsigned int i);

/* Kill them all; idempotent. */
void mc_servers_stop(struct mc_servers *s);

/*
 * One server's counter from "stats" (curr_items, total_items...), or -1
 * when the server cannot be asked.
 */
long long mc_servers_stat(const struct mc_servers *s, unsigned int i,
			  const char *name);

/*
 * Servers someone else started (CI): @list is "127.0.0.1:P;...", each
 * of which must accept a connection now.  They are asked for stats, and
 * never killed.  0, or -errno with @why filled.
 */
int mc_servers_attach(struct mc_servers *s, const char *list, char *why,
		      size_t len);

/*
 * Empty every running server (flush_all): a bench's next run starts with
 * the pool's memory free.  0, or -EIO when a server did not say OK.
 */
int mc_servers_flush(const struct mc_servers *s);

#endif /* MC_SERVERS_H */
