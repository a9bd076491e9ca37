/* SPDX-License-Identifier: MIT */
/*
 * Handler threads: they poll the userfaultfds they serve, read messages
 * into per-thread inboxes and dispatch them.  A context either has threads
 * of its own (a leader, which serves itself and any contexts attached to
 * it with .served_by) or is served by a leader's threads.
 */
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int luffd_inboxes_alloc(struct uffd_ctx *ctx, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n && i < LIBUFFD_MAX_HANDLERS; i++) {
		if (ctx->inbox[i])
			continue;
		ctx->inbox[i] = calloc(1, sizeof(*ctx->inbox[i]));
		if (!ctx->inbox[i])
			return luffd_fail(-ENOMEM, "out of memory");
		ctx->inbox[i]->ctx = ctx;
	}
	return 0;
}

void luffd_inboxes_free(struct uffd_ctx *ctx)
{
	unsigned int i;

	for (i = 0; i < LIBUFFD_MAX_HANDLERS; i++) {
		free(ctx->inbox[i]);
		ctx->inbox[i] = NULL;
	}
}

/*
 * Serve everything queued and readable now.  Returns 0 when the uffd had
 * nothing more, 1 when it served something, or -errno from read().
 * Unless @drain, a read that came back short ends the round once its
 * messages are served: the caller polls next, which sees any newer fault
 * at once, and a read that would only say EAGAIN costs a system call the
 * woken application waits for when it shares the handler's CPU.
 */
int luffd_serve_pending(struct luffd_handler *h, bool drain)
{
	struct uffd_ctx *ctx = h->ctx;
	int ret, served = 0;
	bool short_read = false;

	for (;;) {
		luffd_remap_gate(ctx);
		pthread_rwlock_rdlock(&ctx->lock);
		if (h->head == h->tail) {
			if (short_read && !drain) {
				pthread_rwlock_unlock(&ctx->lock);
				return served;
			}
			ret = luffd_read_msgs(h);
			if (ret == -EBUSY) {
				/* a fault is being served: its turn first */
				pthread_rwlock_unlock(&ctx->lock);
				sched_yield();
				if (drain)
					continue;
				return 1;	/* not idle: come back */
			}
			if (ret <= 0) {
				pthread_rwlock_unlock(&ctx->lock);
				return ret < 0 ? ret : served;
			}
			short_read = ret < LUFFD_READ_BATCH;
		}
		while (h->head != h->tail) {
			/* copy: a fill may read more messages and compact */
			struct luffd_msg m = h->q[h->head++];

			served = 1;
			if (m.msg.event == UFFD_EVENT_REMAP) {
				/* moving a region changes the table */
				pthread_rwlock_unlock(&ctx->lock);
				luffd_apply_remap(h, &m);
				pthread_rwlock_rdlock(&ctx->lock);
				continue;
			}
			luffd_dispatch(h, &m);
		}
		pthread_rwlock_unlock(&ctx->lock);
	}
}

static uint64_t thread_cpu_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Serve every context on the leader's list once. */
static int serve_round(struct luffd_worker *w, struct pollfd *pfd,
		       unsigned int *npfd, unsigned int *gen)
{
	struct uffd_ctx *leader = w->leader;
	int any = 0, ret;
	unsigned int i;

	pthread_rwlock_rdlock(&leader->served_lock);
	if (*gen != __atomic_load_n(&leader->served_gen, __ATOMIC_ACQUIRE)) {
		*gen = __atomic_load_n(&leader->served_gen, __ATOMIC_ACQUIRE);
		for (i = 0; i < leader->nserved; i++) {
			pfd[i].fd = leader->served[i]->fd;
			pfd[i].events = POLLIN;
		}
		*npfd = leader->nserved;
	}
	for (i = 0; i < leader->nserved; i++) {
		ret = luffd_serve_pending(leader->served[i]->inbox[w->idx],
					  false);
		if (ret > 0)
			any = 1;
		/* a uffd whose process is gone reports errors: keep going */
	}
	pthread_rwlock_unlock(&leader->served_lock);
	return any;
}

/*
 * Busy-poll the served descriptors for up to spin_us.  A handler with a
 * CPU of its own then takes the next fault without being woken.
 */
static bool spin(struct luffd_worker *w, struct pollfd *pfd, unsigned int n)
{
	struct uffd_ctx *leader = w->leader;
	uint64_t t0 = luffd_now_ns(), t;
	uint64_t limit = (uint64_t)leader->spin_us * 1000;
	bool hit = false;

	do {
		if (poll(pfd, n, 0) > 0) {
			hit = true;
			break;
		}
		if (__atomic_load_n(&leader->stopping, __ATOMIC_ACQUIRE))
			break;
		t = luffd_now_ns();
	} while (t - t0 < limit);
	luffd_count(&leader->ctr, LUFFD_CTR(spin_ns), luffd_now_ns() - t0);
	if (hit)
		luffd_count(&leader->ctr, LUFFD_CTR(spin_hits), 1);
	return hit;
}

static void *worker_main(void *arg)
{
	struct luffd_worker *w = arg;
	struct uffd_ctx *leader = w->leader;
	struct pollfd pfd[LUFFD_MAX_SERVED + 1];
	unsigned int npfd = 0, gen = ~0u;
	uint64_t v;

	luffd_internal = 1;
	for (;;) {
		int any = serve_round(w, pfd, &npfd, &gen);

		if (__atomic_load_n(&leader->stopping, __ATOMIC_ACQUIRE))
			break;
		/* spin only once a round found nothing: about to sleep */
		if (leader->spin_us && (any || spin(w, pfd, npfd)))
			continue;
		pfd[npfd].fd = w->kick_fd;
		pfd[npfd].events = POLLIN;
		if (poll(pfd, npfd + 1, -1) < 0 && errno != EINTR)
			break;
		if (pfd[npfd].revents & POLLIN) {
			/* stop, or the list changed: drain the kick */
			if (read(w->kick_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				break;
		}
	}
	pthread_mutex_lock(&leader->cpu_lock);
	leader->handler_cpu_done += thread_cpu_ns(CLOCK_THREAD_CPUTIME_ID);
	w->live = false;
	pthread_mutex_unlock(&leader->cpu_lock);
	return NULL;
}

static void kick(struct uffd_ctx *leader)
{
	uint64_t one = 1;
	unsigned int i;

	for (i = 0; i < leader->nworkers; i++)
		if (leader->workers[i].kick_fd >= 0 &&
		    write(leader->workers[i].kick_fd, &one, sizeof(one)) < 0)
			continue;	/* EAGAIN: a kick is pending anyway */
}

LUFFD_API uint64_t uffd_ctx_handler_cpu_ns(const struct uffd_ctx *cctx)
{
	struct uffd_ctx *ctx = (struct uffd_ctx *)cctx;
	unsigned int i;
	uint64_t ns;

	if (!ctx)
		return 0;
	pthread_mutex_lock(&ctx->cpu_lock);
	ns = ctx->handler_cpu_done;
	for (i = 0; i < ctx->nworkers; i++)
		if (ctx->workers[i].live)
			ns += thread_cpu_ns(ctx->workers[i].clk);
	pthread_mutex_unlock(&ctx->cpu_lock);
	return ns;
}

/*
 * Run the pagers' start hooks.  Under the write lock, so that a region
 * created meanwhile sees pagers_on and starts itself.
 */
static int start_pagers(struct uffd_ctx *ctx)
{
	struct uffd_region *r;
	int ret = 0;

	pthread_rwlock_wrlock(&ctx->lock);
	ctx->pagers_on = true;
	for (r = ctx->all; r && !ret; r = r->next) {
		if (r->started)
			continue;
		if (r->ops->start)
			ret = r->ops->start(r->state);
		if (!ret)
			r->started = true;
	}
	pthread_rwlock_unlock(&ctx->lock);
	return ret;
}

static void stop_pagers(struct uffd_ctx *ctx)
{
	struct uffd_region *r;

	pthread_rwlock_wrlock(&ctx->lock);
	ctx->pagers_on = false;
	for (r = ctx->all; r; r = r->next) {
		if (r->started && r->ops->stop)
			r->ops->stop(r->state);
		r->started = false;
	}
	pthread_rwlock_unlock(&ctx->lock);
}

/* Add @ctx to @leader's list (a leader lists itself first). */
static int attach(struct uffd_ctx *leader, struct uffd_ctx *ctx)
{
	int ret = luffd_inboxes_alloc(ctx, leader->nworkers);

	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&leader->served_lock);
	if (leader->nserved == LUFFD_MAX_SERVED) {
		pthread_rwlock_unlock(&leader->served_lock);
		return luffd_fail(-ENOSPC, "a handler serves at most %d "
				  "contexts", LUFFD_MAX_SERVED);
	}
	leader->served[leader->nserved++] = ctx;
	__atomic_add_fetch(&leader->served_gen, 1, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&leader->served_lock);
	kick(leader);
	return 0;
}

/*
 * Take @ctx off @leader's list.  Taking the write lock waits until no
 * worker is serving it; a worker still polling its fd re-reads the list
 * before it serves anything.
 */
static void detach(struct uffd_ctx *leader, struct uffd_ctx *ctx)
{
	unsigned int i;

	pthread_rwlock_wrlock(&leader->served_lock);
	for (i = 0; i < leader->nserved; i++) {
		if (leader->served[i] != ctx)
			continue;
		memmove(&leader->served[i], &leader->served[i + 1],
			(leader->nserved - i - 1) * sizeof(leader->served[0]));
		leader->nserved--;
		break;
	}
	__atomic_add_fetch(&leader->served_gen, 1, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&leader->served_lock);
	kick(leader);
}

static int start_workers(struct uffd_ctx *ctx)
{
	pthread_attr_t attr;
	sigset_t all, old;
	unsigned int i;
	int ret = 0;

	pthread_attr_init(&attr);
	if (ctx->handler_cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(ctx->handler_cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	} else if (ctx->handler_cpu == LIBUFFD_CPU_SAME) {
		pthread_attr_setaffinity_np(&attr, sizeof(ctx->start_cpus),
					    &ctx->start_cpus);
	}
	__atomic_store_n(&ctx->stopping, 0, __ATOMIC_RELEASE);
	/* signals are for the application's threads: ours inherit none */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < ctx->nworkers && !ret; i++) {
		struct luffd_worker *w = &ctx->workers[i];

		pthread_mutex_lock(&ctx->cpu_lock);
		ret = -luffd_pthread_create(&w->thread, &attr, worker_main, w);
		if (!ret)
			w->live = pthread_getcpuclockid(w->thread, &w->clk) == 0;
		pthread_mutex_unlock(&ctx->cpu_lock);
	}	pthread_sigmask(SIG_SETMASK, &old, NULL);

	pthread_attr_destroy(&attr);
	if (ret < 0) {
		unsigned int started = i - 1;

		__atomic_store_n(&ctx->stopping, 1, __ATOMIC_RELEASE);
		kick(ctx);
		for (i = 0; i < started; i++)
			pthread_join(ctx->workers[i].thread, NULL);
		return luffd_fail(ret, "pthread_create: %s", strerror(-ret));
	}
	return 0;
}

static void stop_workers(struct uffd_ctx *ctx)
{
	unsigned int i;

	__atomic_store_n(&ctx->stopping, 1, __ATOMIC_RELEASE);
	kick(ctx);
	for (i = 0; i < ctx->nworkers; i++)
		pthread_join(ctx->workers[i].thread, NULL);
}

LUFFD_API int uffd_ctx_start(struct uffd_ctx *ctx)
{
	int ret;

	if (!ctx)
		return luffd_fail(-EINVAL, "uffd_ctx_start: NULL context");
	if (ctx->running)
		return luffd_fail(-EALREADY, "handler already running");
	if (sched_getaffinity(0, sizeof(ctx->start_cpus), &ctx->start_cpus))
		return luffd_fail(-errno, "sched_getaffinity: %s",
				  strerror(errno));
	ret = start_pagers(ctx);
	if (ret < 0)
		goto fail_pagers;
	if (ctx->delivery == LIBUFFD_DELIVER_SIGBUS) {
		ret = luffd_sigbus_attach(ctx);
		if (ret < 0)
			goto fail_pagers;
	}
	if (ctx->served_by) {
		ret = attach(ctx->served_by, ctx);
	} else {
		ret = luffd_inboxes_alloc(ctx, ctx->nworkers);
		if (!ret)
			ret = attach(ctx, ctx);
		if (!ret) {
			ret = start_workers(ctx);
			if (ret < 0)
				detach(ctx, ctx);
		}
	}
	if (ret < 0)
		goto fail_sig;
	/* under child_lock: a worker adopting a fork reads it (adopt_fork) */
	pthread_mutex_lock(&ctx->child_lock);
	ctx->running = true;
	for (size_t i = 0; i < ctx->nchildren; i++)
		uffd_ctx_start(ctx->children[i]);
	pthread_mutex_unlock(&ctx->child_lock);
	return 0;
fail_sig:
	__atomic_store_n(&ctx->sig_active, 0, __ATOMIC_RELEASE);
fail_pagers:
	stop_pagers(ctx);
	return ret;
}

LUFFD_API int uffd_ctx_stop(struct uffd_ctx *ctx)
{
	unsigned int i;
	int ret = 0;

	if (!ctx)
		return luffd_fail(-EINVAL, "uffd_ctx_stop: NULL context");
	if (ctx->running) {
		if (ctx->served_by) {
			detach(ctx->served_by, ctx);
		} else {
			stop_workers(ctx);
			detach(ctx, ctx);
		}
		pthread_mutex_lock(&ctx->child_lock);
		ctx->running = false;
		pthread_mutex_unlock(&ctx->child_lock);
		/* SIGBUS faults now wait for the next start */
		__atomic_store_n(&ctx->sig_active, 0, __ATOMIC_RELEASE);
	} else {
		ret = luffd_fail(-EALREADY, "handler not running");
	}
	/*
	 * Serve whatever is still queued, also when no thread ever ran: no
	 * faulting thread may be left blocked by a stop.  The workers are
	 * gone (or no longer list us), so one inbox is enough.  Contexts
	 * still attached to a stopped leader are drained too.
	 */
	luffd_serve_pending(ctx->inbox[0], true);
	if (!ctx->served_by) {
		pthread_rwlock_rdlock(&ctx->served_lock);
		for (i = 0; i < ctx->nserved; i++)
			if (ctx->served[i] != ctx)
				luffd_serve_pending(ctx->served[i]->inbox[0],
						    true);
		pthread_rwlock_unlock(&ctx->served_lock);
	}
	stop_pagers(ctx);
	pthread_mutex_lock(&ctx->child_lock);
	for (size_t c = 0; c < ctx->nchildren; c++)
		uffd_ctx_stop(ctx->children[c]);
	pthread_mutex_unlock(&ctx->child_lock);
	return ret;
}
