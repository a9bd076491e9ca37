/* SPDX-License-Identifier: MIT */
/*
 * memcached: a page store spread over a pool of memcached servers, with
 * libmemcached.  Far memory for the evict pager, and a restore source
 * for the memcached pager (pagers/file.c).
 *
 *   memcached:servers=H:P;H:P...,namespace=NS[,replicas=N][,readonly=1]
 *       [,fresh=1][,pool=N][,timeout=MS][,offset=BYTES]
 *
 * Page p is the key "NS:p" (p in lowercase hex), holding the page's
 * bytes and the flags word LIBUFFD_MC_FLAGS.  Which server holds a key
 * is libmemcached's consistent hashing (MEMCACHED_DISTRIBUTION_CONSISTENT
 * _KETAMA) over the servers listed, of the name of its extent, "NS/e"
 * for e = p / 16 (libmemcached's group keys, memcached_*_by_key, do the
 * same): a pager's window of neighbours (16 pages by default) goes to
 * one server, not to all, and a multi-get to one server costs about
 * half one spread over three (16 keys on loopback here: 50 against 87
 * us).  The extent is fixed, not an option: a reader that hashed with
 * another would look for keys on the wrong servers, find them absent
 * and read zeros.  replicas=N keeps N more
 * copies on the N servers that follow in the list, the layout of
 * libmemcached's MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS.  A port may be
 * left out (11211).
 *
 * Zero pages take no space: a page written all zeros deletes its key,
 * and an absent key reads as zeros.  So "absent" must be told from "the
 * server holding it did not answer", or a server lost would read as a
 * page of zeros.  libmemcached cannot tell: its multi-get skips the keys
 * of a server it cannot reach, its replicated get loses the keys sent to
 * a server that dies during the request, and quiet requests' errors are
 * thrown away.  So this store talks to each server through a
 * memcached_st of its own (binary protocol), which makes every error
 * that server's: it decides which server each key goes to (the hashing
 * handle, which never connects, says where libmemcached would put it)
 * and a key missing from a multi-get is absent only when that server's
 * handle finished the request with no error and nothing left unread
 * (GETKQ for every key, then a NOOP the server answers after them all).
 * Otherwise the key is asked of its next replica, in the same round for
 * all such keys; when none is left the request fails with -EIO.
 *
 * Reads: one round trip per submit (a window of the pager's, in one or
 * more requests): every server's multi-get is sent before any reply is
 * read, so they run side by side; at most MC_BATCH keys a round trip.
 * Writes: sets (and deletes) are buffered per server (BUFFER_REQUESTS)
 * and flushed once per batch; then every reply is read, and a batch
 * counts as written only if each set was answered with success: quiet
 * or no-reply sets would be faster, but libmemcached drops their
 * errors, and a set refused (a full server started with -M) must not
 * later read back as zeros.  A write succeeds only when every copy was
 * written: a copy missed by a server that was down would be stale when
 * it comes back.
 *
 * Never written: with fresh=1 no page counts as written at open (the
 * evict pager's default: whatever the pool holds under NS is not this
 * region's); otherwise every page does, and reads go to the pool.
 * readonly=1: writes fail with -EBADF, discard deletes nothing.
 * pool=N: a buffer pool of N pages (uffd_store_pool), for the pager.
 * timeout=MS: connect and poll timeout per server (default 1000).
 * offset=BYTES: the store's page 0 is the pool's page BYTES / page size
 * (a multiple of it), as a file store's offset=: one region of a
 * snapshot pushed whole (Firecracker's guest regions, uffd-serve).
 *
 * What it cannot see: memcached keeps nothing on disk, so a server that
 * restarts comes back empty and its keys read as zeros, and a server
 * that runs out of memory evicts keys unless started with -M (then its
 * sets fail instead).  Run the pool with -M and enough memory.
 *
 * One handle is one thread's (libmemcached's handles are not shared);
 * uffd_store_dup() opens connections of its own.  libmemcached allocates
 * as it goes: the pagers that use this store serve faults in handler
 * threads, never in SIGBUS delivery's signal handlers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <libmemcached/memcached.h>

#include <libuffd.h>
#include "inject.h"

#define MC_MAX_SERVERS	32
#define MC_BATCH	512		/* keys in one round trip */
#define MC_NS_MAX	200		/* memcached keys: 250 bytes */
#define MC_KEY_MAX	(MC_NS_MAX + 20)
#define MC_POOL_MAX	(1ull << 16)	/* pages */
#define MC_PORT		11211
#define MC_EXTENT	16		/* pages hashed as one: the layout */
/* "uffd": the flags of every page this store writes */
#define LIBUFFD_MC_FLAGS	0x75666664u

struct mc_server {
	char		host[256];
	in_port_t	port;
};

/* What open parsed: a dup opens connections from it again. */
struct mc_conf {
	struct mc_server srv[MC_MAX_SERVERS];
	unsigned int	nsrv;
	unsigned int	replicas;
	char		ns[MC_NS_MAX + 1];
	size_t		nslen;
	bool		readonly;
	bool		fresh;
	uint64_t	pool_pages;
	uint64_t	timeout_ms;
	uint64_t	ps;
	uint64_t	base;		/* offset= in pages: our page 0's key */
};

/* A key of the batch, and what became of it. */
enum { K_PENDING, K_GOT, K_ABSENT, K_FAILED };

struct mc_slot {
	uint64_t	page;
	char		*buf;		/* its page in the request's buffer */
	uint32_t	home;		/* the server of copy 0 */
	uint16_t	req;		/* request index in the submit */
	uint8_t		state;
	uint8_t		zero;		/* writes: delete, not set */
};

struct mc_store {
	struct mc_conf		c;
	memcached_st		*hash;	/* all servers: where keys go */
	memcached_st		*srv[MC_MAX_SERVERS];
	memcached_result_st	res[MC_MAX_SERVERS];
	bool			res_made[MC_MAX_SERVERS];
	char			*pool;
	size_t			pool_len;
	/* one batch of keys */
	struct mc_slot		slot[MC_BATCH];
	char			key[MC_BATCH][MC_KEY_MAX];
	size_t			klen[MC_BATCH];
	/* keys grouped by server, for one multi-get each */
	const char		*gkey[MC_BATCH];
	size_t			glen[MC_BATCH];
	unsigned int		gslot[MC_BATCH];
};

static const char *const mc_keys[] = {
	"servers", "namespace", "replicas", "readonly", "fresh", "pool",
	"timeout", "offset", NULL
};

static void mc_close(void *state)
{
	struct mc_store *ms = state;
	unsigned int i;

	for (i = 0; i < MC_MAX_SERVERS; i++) {
		if (ms->res_made[i])
			memcached_result_free(&ms->res[i]);
		if (ms->srv[i])
			memcached_free(ms->srv[i]);
	}
	if (ms->hash)
		memcached_free(ms->hash);
	if (ms->pool)
		munmap(ms->pool, ms->pool_len);
	free(ms);
}

/* "h:p;h:p": at most MC_MAX_SERVERS, a port 1..65535 or 11211. */
static int parse_servers(struct mc_conf *c, const char *s)
{
	const char *p = s;

	while (*p) {
		const char *end = strchr(p, ';'), *colon;
		size_t n = end ? (size_t)(end - p) : strlen(p);
		struct mc_server *sv = &c->srv[c->nsrv];
		unsigned long port = MC_PORT;
		char *e;

		if (c->nsrv == MC_MAX_SERVERS) {
			uffd_set_error("memcached: more than %d servers",
				       MC_MAX_SERVERS);
			return -EINVAL;
		}
		colon = memchr(p, ':', n);
		if (colon) {
			port = strtoul(colon + 1, &e, 10);
			if (e != p + n || e == colon + 1 || !port ||
			    port > 65535) {
				uffd_set_error("memcached: bad port in \"%.*s\"",
					       (int)n, p);
				return -EINVAL;
			}
			n = (size_t)(colon - p);
		}
		if (!n || n >= sizeof(sv->host)) {
			uffd_set_error("memcached: bad server in \"%s\"", s);
			return -EINVAL;
		}
		memcpy(sv->host, p, n);
		sv->host[n] = '\0';
		sv->port = (in_port_t)port;
		c->nsrv++;
		if (!end)
			break;
		p = end + 1;
	}
	if (!c->nsrv) {
		uffd_set_error("memcached: servers=H:P;H:P... lists none");
		return -EINVAL;
	}
	return 0;
}

static int parse(struct mc_conf *c, const struct uffd_args *args)
{
	const char *servers = uffd_args_get(args, "servers");
	const char *ns = uffd_args_get(args, "namespace");
	uint64_t ro = 0, fresh = 0, replicas = 0, off = 0;
	size_t i;
	int ret;

	ret = uffd_args_check(args, mc_keys);
	if (ret < 0)
		return ret;
	if (!servers || !ns) {
		uffd_set_error("memcached: servers=H:P;H:P... and namespace=NS "
			       "are needed");
		return -EINVAL;
	}
	c->nslen = strlen(ns);
	if (c->nslen > MC_NS_MAX) {
		uffd_set_error("memcached: namespace longer than %d bytes",
			       MC_NS_MAX);
		return -EINVAL;
	}
	/* keys travel in the text protocol too (tools, stats): no blanks */
	for (i = 0; i < c->nslen; i++) {
		if (ns[i] <= ' ' || ns[i] > '~') {
			uffd_set_error("memcached: namespace=%s: printable "
				       "characters only, no blanks", ns);
			return -EINVAL;
		}
	}
	memcpy(c->ns, ns, c->nslen + 1);
	ret = parse_servers(c, servers);
	if (ret < 0)
		return ret;
	c->timeout_ms = 1000;
	if ((ret = uffd_args_u64(args, "readonly", &ro, 0, 1)) < 0 ||
	    (ret = uffd_args_u64(args, "fresh", &fresh, 0, 1)) < 0 ||
	    (ret = uffd_args_u64(args, "replicas", &replicas, 0,
				 c->nsrv - 1)) < 0 ||
	    (ret = uffd_args_u64(args, "pool", &c->pool_pages, 0,
				 MC_POOL_MAX)) < 0 ||
	    (ret = uffd_args_u64(args, "timeout", &c->timeout_ms, 1,
				 600000)) < 0 ||
	    (ret = uffd_args_u64(args, "offset", &off, 0, INT64_MAX)) < 0)
		return ret;
	c->readonly = ro;
	c->fresh = fresh;
	c->replicas = (unsigned int)replicas;
	c->ps = (uint64_t)sysconf(_SC_PAGESIZE);
	if (off % c->ps) {
		uffd_set_error("memcached: offset=%llu is not a multiple of "
			       "the page size", (unsigned long long)off);
		return -EINVAL;
	}
	c->base = off / c->ps;
	return 0;
}

static int mc_fail(const char *what, const memcached_st *m,
		   memcached_return_t rc)
{
	uffd_set_error("memcached: %s: %s", what,
		       m ? memcached_last_error_message(m) :
		       memcached_strerror(NULL, rc));
	return -EIO;
}

/*
 * Connections are made when first used: a server down at open is found
 * by the first request that needs it, and only its keys suffer.
 */
static int connect_all(struct mc_store *ms)
{
	const struct mc_conf *c = &ms->c;
	memcached_return_t rc;
	unsigned int i;

	ms->hash = memcached_create(NULL);
	if (!ms->hash)
		return mc_fail("memcached_create", NULL,
			       MEMCACHED_MEMORY_ALLOCATION_FAILURE);
	for (i = 0; i < c->nsrv; i++) {
		rc = memcached_server_add(ms->hash, c->srv[i].host,
					  c->srv[i].port);
		if (rc != MEMCACHED_SUCCESS)
			return mc_fail(c->srv[i].host, ms->hash, rc);
	}
	rc = memcached_behavior_set(ms->hash, MEMCACHED_BEHAVIOR_DISTRIBUTION,
				    MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(ms->hash,
					    MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS,
					    c->replicas);
	if (rc != MEMCACHED_SUCCESS)
		return mc_fail("hashing", ms->hash, rc);
	for (i = 0; i < c->nsrv; i++) {
		memcached_st *m = memcached_create(NULL);
		static const struct {
			memcached_behavior_t	b;
			uint64_t		v;
		} set[] = {
			{ MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1 },
			{ MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1 },
			{ MEMCACHED_BEHAVIOR_TCP_NODELAY, 1 },
			/* never read replies behind our back: we count them */
			{ MEMCACHED_BEHAVIOR_IO_MSG_WATERMARK, UINT32_MAX },
			{ MEMCACHED_BEHAVIOR_IO_BYTES_WATERMARK, UINT32_MAX },
		};
		size_t k;

		ms->srv[i] = m;
		if (!m)
			return mc_fail("memcached_create", NULL,
				       MEMCACHED_MEMORY_ALLOCATION_FAILURE);
		rc = memcached_server_add(m, c->srv[i].host, c->srv[i].port);
		for (k = 0; rc == MEMCACHED_SUCCESS && k < 5; k++)
			rc = memcached_behavior_set(m, set[k].b, set[k].v);
		if (rc == MEMCACHED_SUCCESS)
			rc = memcached_behavior_set(m,
					MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT,
					c->timeout_ms);
		if (rc == MEMCACHED_SUCCESS)
			rc = memcached_behavior_set(m,
					MEMCACHED_BEHAVIOR_POLL_TIMEOUT,
					c->timeout_ms);
		if (rc != MEMCACHED_SUCCESS)
			return mc_fail(c->srv[i].host, m, rc);
		if (!memcached_result_create(m, &ms->res[i]))
			return mc_fail("result", NULL,
				       MEMCACHED_MEMORY_ALLOCATION_FAILURE);
		ms->res_made[i] = true;
	}
	return 0;
}

static int setup(struct mc_store *ms)
{
	int ret = connect_all(ms);

	if (ret < 0 || !ms->c.pool_pages)
		return ret;
	ms->pool_len = ms->c.pool_pages * ms->c.ps;
	ms->pool = luffd_mmap(NULL, ms->pool_len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ms->pool == MAP_FAILED) {
		ms->pool = NULL;
		uffd_set_error("memcached: buffer pool of %zu bytes: %s",
			       ms->pool_len, strerror(errno));
		return -ENOMEM;
	}
	madvise(ms->pool, ms->pool_len, MADV_DONTFORK);
	return 0;
}

static int mc_open(const struct uffd_args *args, uint64_t *len,
		   void **state)
{
	struct mc_store *ms;
	int ret;

	ms = calloc(1, sizeof(*ms));
	if (!ms) {
		uffd_set_error("memcached: out of memory");
		return -ENOMEM;
	}
	ret = parse(&ms->c, args);
	if (ret < 0)
		goto fail;
	if (!*len) {
		/* the pool keeps no length of its own */
		uffd_set_error("memcached: a length is needed");
		ret = -EINVAL;
		goto fail;
	}
	ret = setup(ms);
	if (ret < 0)
		goto fail;
	*state = ms;
	return 0;
fail:
	mc_close(ms);
	return ret;
}

static int mc_data(void *state, uint64_t npages, uint64_t *bitmap)
{
	struct mc_store *ms = state;

	/* asking the pool key by key would read it all: assume it holds all */
	if (!ms->c.fresh)
		memset(bitmap, 0xff, (npages + 63) / 64 * sizeof(uint64_t));
	return 0;
}

static bool page_is_zero(const char *page, size_t len)
{
	const uint64_t *w = (const uint64_t *)page;
	size_t i;

	for (i = 0; i < len / sizeof(*w); i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
		    w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

static void make_key(struct mc_store *ms, unsigned int j)
{
	struct mc_slot *s = &ms->slot[j];
	char group[MC_KEY_MAX];
	int n, g;

	n = snprintf(ms->key[j], MC_KEY_MAX, "%s:%llx", ms->c.ns,
		     (unsigned long long)(s->page + ms->c.base));
	ms->klen[j] = (size_t)n;
	g = snprintf(group, sizeof(group), "%s/%llx", ms->c.ns,
		     (unsigned long long)((s->page + ms->c.base) /
					  MC_EXTENT));
	s->home = memcached_generate_hash(ms->hash, group, (size_t)g);
	if (s->home >= ms->c.nsrv)	/* cannot happen: one per server */
		s->home = 0;
	s->state = K_PENDING;
}

/* The page a returned key names, or UINT64_MAX if none of ours. */
static uint64_t key_page(const struct mc_store *ms, const char *key,
			 size_t len)
{
	uint64_t p = 0;
	size_t i;

	if (len <= ms->c.nslen + 1 || len > ms->c.nslen + 17 ||
	    memcmp(key, ms->c.ns, ms->c.nslen) || key[ms->c.nslen] != ':')
		return UINT64_MAX;
	for (i = ms->c.nslen + 1; i < len; i++) {
		char ch = key[i];

		if (ch >= '0' && ch <= '9')
			p = p << 4 | (uint64_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			p = p << 4 | (uint64_t)(ch - 'a' + 10);
		else
			return UINT64_MAX;
	}
	return p >= ms->c.base ? p - ms->c.base : UINT64_MAX;
}

/* Did server @s's handle finish its request cleanly: no error, all read? */
static bool server_clean(struct mc_store *ms, unsigned int s)
{
	const memcached_instance_st *in =
		memcached_server_instance_by_position(ms->srv[s], 0);

	return memcached_last_error(ms->srv[s]) == MEMCACHED_SUCCESS &&
	       in && memcached_server_response_count(in) == 0;
}

/* Server of copy @r of slot @j. */
static unsigned int copy_server(const struct mc_store *ms, unsigned int j,
				unsigned int r)
{
	return (ms->slot[j].home + r) % ms->c.nsrv;
}

/*
 * Read the pending slots of [0, n) whose copy @r lives on each server:
 * all multi-gets out first, then every reply.  Slots whose server
 * answered cleanly end K_GOT or K_ABSENT; the others stay K_PENDING.
 */
static void read_round(struct mc_store *ms, unsigned int n, unsigned int r)
{
	unsigned int count[MC_MAX_SERVERS] = { 0 }, at[MC_MAX_SERVERS];
	bool ok[MC_MAX_SERVERS], sent[MC_MAX_SERVERS] = { false };
	unsigned int j, s, g = 0;

	for (j = 0; j < n; j++)
		if (ms->slot[j].state == K_PENDING)
			count[copy_server(ms, j, r)]++;
	for (s = 0; s < ms->c.nsrv; s++) {
		at[s] = g;
		g += count[s];
	}
	for (j = 0; j < n; j++) {
		unsigned int k;

		if (ms->slot[j].state != K_PENDING)
			continue;
		s = copy_server(ms, j, r);
		k = at[s]++;
		ms->gkey[k] = ms->key[j];
		ms->glen[k] = ms->klen[j];
		ms->gslot[k] = j;
	}
	for (s = 0, g = 0; s < ms->c.nsrv; g += count[s], s++) {
		memcached_return_t rc;

		ok[s] = false;
		if (!count[s])
			continue;
		rc = memcached_mget(ms->srv[s], ms->gkey + g, ms->glen + g,
				    count[s]);
		ok[s] = rc == MEMCACHED_SUCCESS;
		sent[s] = true;
	}
	for (s = 0, g = 0; s < ms->c.nsrv; g += count[s], s++) {
		memcached_result_st *res;
		memcached_return_t rc;

		if (!sent[s])
			continue;
		while ((res = memcached_fetch_result(ms->srv[s], &ms->res[s],
						     &rc))) {
			const char *key = memcached_result_key_value(res);
			size_t klen = memcached_result_key_length(res);
			uint64_t p = key_page(ms, key, klen);
			bool mine = false;

			for (j = g; j < g + count[s]; j++) {
				struct mc_slot *sl = &ms->slot[ms->gslot[j]];

				if (sl->page != p || sl->state != K_PENDING)
					continue;
				mine = true;
				if (memcached_result_length(res) != ms->c.ps ||
				    memcached_result_flags(res) !=
				    LIBUFFD_MC_FLAGS) {
					sl->state = K_FAILED;
					continue;
				}
				memcpy(sl->buf, memcached_result_value(res),
				       ms->c.ps);
				sl->state = K_GOT;
			}
			/* a reply to nothing asked: the stream is not ours */
			if (!mine)
				ok[s] = false;
		}
		ok[s] = ok[s] && server_clean(ms, s);
		for (j = g; j < g + count[s]; j++) {
			struct mc_slot *sl = &ms->slot[ms->gslot[j]];

			if (ok[s] && sl->state == K_PENDING)
				sl->state = K_ABSENT;
		}
	}
}

static void read_batch(struct mc_store *ms, unsigned int n)
{
	unsigned int j, r;
	bool left = true;

	for (r = 0; r <= ms->c.replicas && left; r++) {
		read_round(ms, n, r);
		left = false;
		for (j = 0; j < n; j++)
			left |= ms->slot[j].state == K_PENDING;
	}
	for (j = 0; j < n; j++) {
		struct mc_slot *sl = &ms->slot[j];

		if (sl->state == K_ABSENT)
			memset(sl->buf, 0, ms->c.ps);
		else if (sl->state == K_PENDING)
			sl->state = K_FAILED;
	}
}

/*
 * Write (or, @del, delete) slots [0, n) on every copy's server: buffered,
 * one flush per server, then each reply read.  A slot fails when any of
 * its servers did.
 */
static void write_batch(struct mc_store *ms, unsigned int n, bool del)
{
	unsigned int sets[MC_MAX_SERVERS] = { 0 }, dels[MC_MAX_SERVERS] = { 0 };
	bool bad[MC_MAX_SERVERS] = { false }, used[MC_MAX_SERVERS] = { false };
	unsigned int j, r, s;

	for (r = 0; r <= ms->c.replicas; r++) {
		for (j = 0; j < n; j++) {
			struct mc_slot *sl = &ms->slot[j];
			memcached_return_t rc;

			s = copy_server(ms, j, r);
			if (bad[s])
				continue;
			used[s] = true;
			if (del || sl->zero) {
				rc = memcached_delete(ms->srv[s], ms->key[j],
						      ms->klen[j], 0);
				dels[s]++;
			} else {
				rc = memcached_set(ms->srv[s], ms->key[j],
						   ms->klen[j], sl->buf,
						   ms->c.ps, 0,
						   LIBUFFD_MC_FLAGS);
				sets[s]++;
			}
			if (rc != MEMCACHED_BUFFERED && rc != MEMCACHED_SUCCESS)
				bad[s] = true;
		}
	}
	for (s = 0; s < ms->c.nsrv; s++) {
		memcached_return_t rc;
		unsigned int got = 0;

		if (!used[s])
			continue;
		if (!bad[s] &&
		    memcached_flush_buffers(ms->srv[s]) != MEMCACHED_SUCCESS)
			bad[s] = true;
		/*
		 * A set answers success (a result here) or an error, which
		 * ends the loop; a delete answers success or "not found"
		 * (no result: the loop goes on).  libmemcached reports an
		 * error before any result as "not found", so the count of
		 * results is what proves every set went in.
		 */
		while (memcached_fetch_result(ms->srv[s], &ms->res[s], &rc))
			got++;
		if (got < sets[s] || got > sets[s] + dels[s] ||
		    (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND) ||
		    !server_clean(ms, s))
			bad[s] = true;
	}
	for (j = 0; j < n; j++) {
		ms->slot[j].state = K_GOT;
		for (r = 0; r <= ms->c.replicas; r++)
			if (bad[copy_server(ms, j, r)])
				ms->slot[j].state = K_FAILED;
	}
}

/* Requests [first, last] of @ios hold slots [0, n): finish their batch. */
static void run_batch(struct mc_store *ms, int op, unsigned int n,
		      int *res)
{
	unsigned int j;

	for (j = 0; j < n; j++)
		make_key(ms, j);
	if (op == LIBUFFD_STORE_READ)
		read_batch(ms, n);
	else
		write_batch(ms, n, false);
	for (j = 0; j < n; j++)
		if (ms->slot[j].state == K_FAILED)
			res[ms->slot[j].req] = -EIO;
}

static int mc_submit(void *state, struct uffd_store_io *const *ios,
		     unsigned int n)
{
	struct mc_store *ms = state;
	int res[64];
	unsigned int i, k = 0, nreq;
	int op = -1;

	if (ms->c.readonly) {
		for (i = 0; i < n; i++) {
			if (ios[i]->op == LIBUFFD_STORE_WRITE) {
				uffd_set_error("memcached: opened readonly=1: "
					       "no writes");
				return -EBADF;
			}
		}
	}
	/* the library hands over at most 64 at once; more, in turns */
	for (i = 0; i < n; i += nreq) {
		unsigned int q;

		nreq = n - i < 64 ? n - i : 64;
		for (q = 0; q < nreq; q++) {
			struct uffd_store_io *io = ios[i + q];
			uint64_t p;

			res[q] = 0;
			/* a batch holds one kind of request */
			if (k && io->op != op) {
				run_batch(ms, op, k, res);
				k = 0;
			}
			op = io->op;
			for (p = 0; p < io->npages; p++) {
				struct mc_slot *sl = &ms->slot[k];

				sl->page = io->page + p;
				sl->buf = (char *)io->buf + p * ms->c.ps;
				sl->req = (uint16_t)q;
				sl->zero = op == LIBUFFD_STORE_WRITE &&
					   page_is_zero(sl->buf, ms->c.ps);
				if (++k == MC_BATCH) {
					run_batch(ms, op, k, res);
					k = 0;
				}
			}
		}
		if (k)
			run_batch(ms, op, k, res);
		k = 0;
		for (q = 0; q < nreq; q++) {
			if (res[q] < 0)
				uffd_set_error("memcached: %s of pages "
					       "%llu+%llu failed: a server "
					       "did not answer (%s)",
					       ios[i + q]->op ==
					       LIBUFFD_STORE_READ ? "read" :
					       "write",
					       (unsigned long long)ios[i + q]->page,
					       (unsigned long long)ios[i + q]->npages,
					       ms->c.ns);
			uffd_store_complete(ios[i + q], res[q]);
		}
	}
	return 0;
}

static int mc_discard(void *state, uint64_t page, uint64_t npages)
{
	struct mc_store *ms = state;
	uint64_t p = 0;
	int ret = 0;

	if (ms->c.readonly)
		return 0;
	/* the bitmap already reads them as zeros: deleting frees space */
	while (p < npages) {
		unsigned int k = 0, j;

		for (; k < MC_BATCH && p < npages; k++, p++) {
			ms->slot[k].page = page + p;
			ms->slot[k].buf = NULL;
			ms->slot[k].req = 0;
			ms->slot[k].zero = 1;
			make_key(ms, k);
		}
		write_batch(ms, k, true);
		for (j = 0; j < k; j++)
			if (ms->slot[j].state == K_FAILED)
				ret = -EIO;
	}
	if (ret < 0)
		uffd_set_error("memcached: discard: a server did not answer");
	return ret;
}

static int mc_pool(void *state, void **buf, size_t *len)
{
	struct mc_store *ms = state;

	if (!ms->pool) {
		uffd_set_error("memcached: no buffer pool (pool=N)");
		return -EOPNOTSUPP;
	}
	*buf = ms->pool;
	*len = ms->pool_len;
	return 0;
}

/* The same pool through connections of its own. */
static int mc_dup(void *state, void **out)
{
	struct mc_store *ms = state, *d = calloc(1, sizeof(*d));
	int ret;

	if (!d) {
		uffd_set_error("memcached: out of memory");
		return -ENOMEM;
	}
	d->c = ms->c;
	ret = setup(d);
	if (ret < 0) {
		mc_close(d);
		return ret;
	}
	*out = d;
	return 0;
}

const struct uffd_store_ops luffd_store_memcached = {
	.version	= LIBUFFD_STORE_OPS_VERSION,
	.name		= "memcached",
	.flags		= LIBUFFD_STORE_PERSISTENT,
	.open		= mc_open,
	.data		= mc_data,
	.submit		= mc_submit,
	.discard	= mc_discard,
	.pool		= mc_pool,
	.close		= mc_close,
	.dup		= mc_dup,
};
