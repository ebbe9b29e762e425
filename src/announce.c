/*-------------------------------------------------------------------------
 *
 * announce.c
 *	  Notifications without the notification lock.  A transaction that
 *	  runs NOTIFY holds a database-wide lock from its pre-commit until its
 *	  commit is flushed, so every stellapack call that announced a log
 *	  line or a state change would commit one after the other.  Instead,
 *	  sp_announce() collects a transaction's notifications, and when the
 *	  transaction has committed they go to the launcher, which sends them
 *	  in batches: executors through their relay queue, every other backend
 *	  through a ring in shared memory.
 *
 * Notifications queued in a subtransaction that rolls back are dropped
 * with it.  When the ring lacks room at pre-commit, the transaction falls
 * back to a plain NOTIFY, so nothing committed goes unannounced.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "stellapack.h"

#define SP_RING_SIZE	(1024 * 1024)

/* entries: a uint32 length, then channel\0payload\0 pairs */
typedef struct SpRing
{
	slock_t		mutex;
	uint64		head;			/* bytes ever written */
	uint64		tail;			/* bytes ever read */
	char		data[SP_RING_SIZE];
} SpRing;

static SpRing *ring = NULL;

/* this backend's notifications, and where each open subtransaction began */
static StringInfoData pending;
static bool pending_ready = false;
static List *sub_marks = NIL;
static bool callbacks_registered = false;

Size
sp_announce_shmem_size(void)
{
	return sizeof(SpRing);
}

void
sp_announce_shmem_init(void)
{
	bool		found;

	ring = ShmemInitStruct("stellapack notify ring", sizeof(SpRing), &found);
	if (!found)
	{
		SpinLockInit(&ring->mutex);
		ring->head = ring->tail = 0;
	}
}

static uint64
ring_free(void)
{
	return SP_RING_SIZE - (ring->head - ring->tail);
}

static void
ring_copy_in(const char *src, Size len)
{
	Size		off = ring->head % SP_RING_SIZE;
	Size		first = Min(len, SP_RING_SIZE - off);

	memcpy(ring->data + off, src, first);
	memcpy(ring->data, src + first, len - first);
	ring->head += len;
}

static void
ring_copy_out(char *dst, Size len)
{
	Size		off = ring->tail % SP_RING_SIZE;
	Size		first = Min(len, SP_RING_SIZE - off);

	memcpy(dst, ring->data + off, first);
	memcpy(dst + first, ring->data, len - first);
	ring->tail += len;
}

/*
 * sp_notify_pairs sends the channel\0payload\0 pairs of a buffer as plain
 * NOTIFYs of the current transaction.
 */
void
sp_notify_pairs(const char *p, const char *end)
{
	while (p < end)
	{
		const char *channel = p;
		const char *payload = channel + strlen(channel) + 1;

		if (payload >= end)
			break;
		Async_Notify(channel, payload);
		p = payload + strlen(payload) + 1;
	}
}

/*
 * sp_notify_in_own_xact sends the pairs of a buffer in a transaction of
 * their own, as the launcher does for what other backends committed.  That
 * transaction writes nothing that must survive a crash (notifications die
 * with the server's connections), so its commit does not wait for the WAL
 * flush: listeners are signalled sooner, and the committing backends do
 * not share their flushes with it.
 */
void
sp_notify_in_own_xact(const char *p, const char *end)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	sp_notify_pairs(p, end);
	CommitTransactionCommand();
}

static void
pending_reset(void)
{
	if (pending_ready)
		resetStringInfo(&pending);
	list_free(sub_marks);
	sub_marks = NIL;
}

static void
announce_xact_callback(XactEvent event, void *arg)
{
	if (!pending_ready || pending.len == 0)
	{
		if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
			pending_reset();
		return;
	}

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			{
				bool		room;

				/* no room: NOTIFY now, the ordinary way */
				SpinLockAcquire(&ring->mutex);
				room = ring_free() >= (uint64) pending.len + 2 * sizeof(uint32);
				SpinLockRelease(&ring->mutex);
				if (!room)
				{
					sp_notify_pairs(pending.data, pending.data + pending.len);
					resetStringInfo(&pending);
				}
				break;
			}
		case XACT_EVENT_COMMIT:
			{
				uint32		len = pending.len;
				bool		sent = false;
				PGPROC	   *launcher = sp_shared ? sp_shared->launcher : NULL;

				SpinLockAcquire(&ring->mutex);
				if (ring_free() >= len + sizeof(uint32))
				{
					ring_copy_in((const char *) &len, sizeof(uint32));
					ring_copy_in(pending.data, len);
					sent = true;
				}
				SpinLockRelease(&ring->mutex);
				if (!sent)
					elog(LOG, "stellapack could not announce %u bytes of notifications: the ring is full",
						 len);
				if (launcher != NULL)
					SetLatch(&launcher->procLatch);
				pending_reset();
				break;
			}
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending_reset();
			break;
		default:
			break;
	}
}

static void
announce_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	MemoryContext old;

	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			old = MemoryContextSwitchTo(TopMemoryContext);
			sub_marks = lappend_int(sub_marks,
									pending_ready ? pending.len : 0);
			MemoryContextSwitchTo(old);
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			if (sub_marks != NIL)
				sub_marks = list_delete_last(sub_marks);
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			if (sub_marks != NIL)
			{
				int			mark = llast_int(sub_marks);

				sub_marks = list_delete_last(sub_marks);
				if (pending_ready && mark <= pending.len)
				{
					pending.len = mark;
					pending.data[mark] = '\0';
				}
			}
			break;
		default:
			break;
	}
}

/*
 * sp_append_pair appends channel\0payload\0 to a buffer that lives for
 * the process, making the buffer (in TopMemoryContext) on first use.
 */
void
sp_append_pair(StringInfo buf, bool *ready, const char *channel,
			   const char *payload)
{
	if (!*ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(buf);
		MemoryContextSwitchTo(old);
		*ready = true;
	}
	appendBinaryStringInfo(buf, channel, strlen(channel) + 1);
	appendBinaryStringInfo(buf, payload, strlen(payload) + 1);
}

/*
 * sp_announce queues a NOTIFY for when the current transaction commits.
 * The launcher notifies directly; executors hand their notifications to
 * their relay; every other backend goes through the ring.  Without shared
 * memory (not preloaded), it is a plain NOTIFY.
 */
void
sp_announce(const char *channel, const char *payload)
{
	if (sp_is_executor)
	{
		sp_executor_announce(channel, payload);
		return;
	}
	if (ring == NULL || sp_is_launcher)
	{
		Async_Notify(channel, payload);
		return;
	}
	if (!callbacks_registered)
	{
		RegisterXactCallback(announce_xact_callback, NULL);
		RegisterSubXactCallback(announce_subxact_callback, NULL);
		callbacks_registered = true;
	}
	sp_append_pair(&pending, &pending_ready, channel, payload);
}

/*
 * sp_announce_drain is the launcher's side: it sends what committed
 * transactions left in the ring, in one transaction of its own per batch
 * of at most 256 kB.  Returns true when it sent something.
 */
bool
sp_announce_drain(void)
{
	char	   *buf;
	Size		used = 0;
	Size		cap = 256 * 1024;

	if (ring == NULL)
		return false;
	buf = palloc(cap);
	SpinLockAcquire(&ring->mutex);
	while (ring->head > ring->tail)
	{
		uint32		len;
		Size		off = ring->tail % SP_RING_SIZE;

		/* peek at the length without consuming it */
		if (SP_RING_SIZE - off >= sizeof(uint32))
			memcpy(&len, ring->data + off, sizeof(uint32));
		else
		{
			Size		first = SP_RING_SIZE - off;

			memcpy(&len, ring->data + off, first);
			memcpy((char *) &len + first, ring->data, sizeof(uint32) - first);
		}
		if (used > 0 && used + len > cap)
			break;
		if (used + len > cap)
		{
			cap = used + len;
			SpinLockRelease(&ring->mutex);
			buf = repalloc(buf, cap);
			SpinLockAcquire(&ring->mutex);
		}
		ring->tail += sizeof(uint32);
		ring_copy_out(buf + used, len);
		used += len;
	}
	SpinLockRelease(&ring->mutex);

	if (used > 0)
		sp_notify_in_own_xact(buf, buf + used);
	pfree(buf);
	return used > 0;
}
