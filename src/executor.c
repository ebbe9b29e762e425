/*-------------------------------------------------------------------------
 *
 * executor.c
 *	  The pool of long-lived executors that run SQL jobs.  An executor
 *	  claims a job, runs its SQL as the run's role in a transaction of its
 *	  own, and in that same transaction records the outcome, releases the
 *	  jobs that waited on it and claims the next one: a job's effects and
 *	  its "succeeded" commit together, once.
 *
 * What a job raises (NOTICE, WARNING, stellapack.log()) goes through a
 * shm_mq to the relay in the launcher, which stores and announces it at
 * once.  Before it writes the job's outcome, an executor waits for the
 * relay to have stored what the job sent, so that the outcome is the
 * job's last line.  The state machine itself (what a run's jobs do next)
 * is SQL in stellapack_internal; this file is the process around it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/libpq.h"
#include "libpq/pqmq.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "stellapack.h"


/* the role of the running job, for stellapack_internal.calling_role() */
Oid			sp_job_role = InvalidOid;

static int	my_slot = -1;
static char worker_name[64];
static shm_mq_handle *relay_mqh = NULL;
static const PQcommMethods *relay_methods = NULL;
static PQcommMethods counting_methods;

static bool in_job = false;
static SpClaim current;
static bool context_sent = false;
static int	sent_this_job = 0;
static uint64 sync_token = 0;
static List *deferred_lines = NIL;	/* SpLogLine *, in JobContext */
static MemoryContext JobContext = NULL;

/* NOTIFYs of the current transaction, sent through the relay at commit */
bool		sp_is_executor = false;
static StringInfoData announcements;
static bool announcements_ready = false;

static SPIPlanPtr end_plan = NULL;
static TimestampTz slice_start = 0;

/*
 * planner methods the engine's kept plans go without, and JIT (see
 * sp_executor_main)
 */
static const char *const engine_plan_off[] = {
	"enable_seqscan", "enable_bitmapscan", "jit"
};

/* how long an executor may stay with one run before serving others */
#define SP_SLICE_MS		5

static void executor_detach(int code, Datum arg);

/*
 * sp_in_job tells whether this backend is an executor inside a job, and
 * which one.
 */
bool
sp_in_job(pg_uuid_t *run_id, const char **job)
{
	if (!in_job)
		return false;
	if (run_id)
		*run_id = current.run_id;
	if (job)
		*job = current.job;
	return true;
}

/*
 * relay_send sends one message to the relay, blocking while the queue is
 * full.  It never raises an error itself (it runs inside error reporting,
 * through counting_putmessage): it returns false, and remembers, when the
 * relay is gone.
 */
static bool relay_lost = false;
static pid_t my_launcher = 0;	/* the launcher whose relay reads our queue */

static bool
relay_send(char msgtype, const char *data, Size len)
{
	shm_mq_iovec iov[2];

	if (relay_lost)
		return false;
	iov[0].data = &msgtype;
	iov[0].len = 1;
	iov[1].data = data;
	iov[1].len = len;
	if (shm_mq_sendv(relay_mqh, iov, 2, false, true) == SHM_MQ_DETACHED)
	{
		relay_lost = true;
		return false;
	}
	return true;
}

/* relay_required stops the executor once its relay is gone */
static void
relay_required(void)
{
	if (relay_lost)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("stellapack executor lost its relay")));
}

/*
 * send_context tells the relay, before the first line a job sends, which
 * run and job the lines that follow belong to.
 */
static void
send_context(void)
{
	char		buf[UUID_LEN + SP_JOB_NAME_LEN];
	int			len;

	memcpy(buf, current.run_id.data, UUID_LEN);
	len = strlcpy(buf + UUID_LEN, current.job, SP_JOB_NAME_LEN);
	(void) relay_send(SP_MSG_CONTEXT, buf, UUID_LEN + len + 1);
	context_sent = true;
}

/*
 * counting_putmessage forwards a protocol message (a NOTICE, WARNING or
 * ERROR raised by the job) to the relay's queue, counting it and sending
 * the job's context first.
 */
static int
counting_putmessage(char msgtype, const char *s, size_t len)
{
	if (relay_lost)
		return 0;
	if (in_job && !context_sent)
		send_context();
	sent_this_job++;
	return relay_methods->putmessage(msgtype, s, len);
}

static void
counting_putmessage_noblock(char msgtype, const char *s, size_t len)
{
	if (relay_lost)
		return;
	if (in_job && !context_sent)
		send_context();
	sent_this_job++;
	relay_methods->putmessage_noblock(msgtype, s, len);
}

/*
 * sp_executor_send sends a message of the executor's own (an explicit log
 * line) to the relay.  It blocks while the queue is full: a job that logs
 * faster than lines can be stored slows down instead of losing lines.
 */
void
sp_executor_send(char msgtype, const char *data, Size len)
{
	Assert(in_job);
	if (!context_sent)
		send_context();
	if (!relay_send(msgtype, data, len))
		relay_required();
	sent_this_job++;
}

/*
 * relay_sync waits until the relay has stored every line this job sent.
 */
static void
relay_sync(void)
{
	uint64		token;
	TimestampTz start;

	if (sent_this_job == 0)
		return;
	token = ++sync_token;
	if (!relay_send(SP_MSG_SYNC, (const char *) &token, sizeof(token)))
		relay_required();
	start = GetCurrentTimestamp();
	for (;;)
	{
		uint64		ack;

		pid_t		launcher;

		SpinLockAcquire(&sp_shared->mutex);
		ack = sp_shared->slots[my_slot].sync_ack;
		launcher = sp_shared->launcher_pid;
		SpinLockRelease(&sp_shared->mutex);
		if (ack >= token)
			break;
		if (launcher != my_launcher)
		{
			relay_lost = true;
			relay_required();
		}

		/*
		 * The relay may be stuck behind a lock that waits for this very
		 * job's transaction (DROP EXTENSION while the job runs): do not
		 * wait for it forever.  The job's last lines may then be stored
		 * after its outcome.
		 */
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), 2000))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
						 WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	sent_this_job = 0;
}

/*
 * sp_defer_log keeps a system line to be written with the job's success,
 * in its transaction, after everything the job sent.
 */
void
sp_defer_log(const char *message, const char *data_json)
{
	MemoryContext old = MemoryContextSwitchTo(JobContext);
	SpLogLine  *l = palloc0(sizeof(SpLogLine));

	l->job = current.job;
	l->level = "info";
	l->stream = "system";
	l->message = pstrdup(message);
	l->data = data_json ? pstrdup(data_json) : NULL;
	deferred_lines = lappend(deferred_lines, l);
	MemoryContextSwitchTo(old);
}

/*
 * sp_executor_announce queues a notification of the executor's current
 * transaction; announce_flush hands it to the relay once the transaction
 * has committed (see announce.c for why).
 */
void
sp_executor_announce(const char *channel, const char *payload)
{
	sp_append_pair(&announcements, &announcements_ready, channel, payload);
}

/* forget the notifications of a transaction that did not commit */
static void
announce_reset(void)
{
	if (announcements_ready)
		resetStringInfo(&announcements);
}

/* after a commit: pass its notifications to the relay, in one message */
static void
announce_flush(void)
{
	if (!announcements_ready || announcements.len == 0)
		return;
	if (!relay_send(SP_MSG_NOTIFY, announcements.data, announcements.len))
		relay_required();
	resetStringInfo(&announcements);
	/* keep a huge batch from pinning memory for the executor's life */
	if (announcements.maxlen > 1024 * 1024)
	{
		pfree(announcements.data);
		announcements_ready = false;
	}
}

/*
 * claim_next claims the job of the run served least recently, which starts
 * a new slice: for SP_SLICE_MS from here, the executor may go on with
 * further jobs of the same run at each success, which saves a claim.
 */
static bool
claim_next(SpClaim *next)
{
	if (!sp_claim_sql(worker_name, next))
		return false;
	slice_start = GetCurrentTimestamp();
	return true;
}

/*
 * job_end records the outcome of the current job through
 * stellapack_internal.job_end(), inside the caller's transaction.
 */
static void
job_end(const char *outcome, const char *error, const char *sqlstate,
		const char *result)
{
	Datum		args[6];
	char		nulls[6] = "      ";

	if (end_plan == NULL)
	{
		Oid			types[6] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID};

		end_plan = SPI_prepare("SELECT stellapack_internal.job_end($1, $2, $3,"
							   " $4, $5, $6::jsonb)", 6, types);
		if (end_plan == NULL)
			elog(ERROR, "could not prepare job end: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(end_plan);
	}
	args[0] = UUIDPGetDatum(&current.run_id);
	args[1] = CStringGetTextDatum(current.job);
	args[2] = CStringGetTextDatum(outcome);
	args[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	args[4] = sqlstate ? CStringGetTextDatum(sqlstate) : (Datum) 0;
	args[5] = result ? CStringGetTextDatum(result) : (Datum) 0;
	nulls[3] = error ? ' ' : 'n';
	nulls[4] = sqlstate ? ' ' : 'n';
	nulls[5] = result ? ' ' : 'n';
	if (SPI_execute_plan(end_plan, args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the end of job \"%s\"", current.job);
}

/*
 * set_slot publishes what this executor does, for cancels and for the
 * workers view.
 */
static void
set_slot(SpSlotState state)
{
	SpSlot	   *slot = &sp_shared->slots[my_slot];

	SpinLockAcquire(&sp_shared->mutex);
	slot->state = state;
	slot->since = GetCurrentTimestamp();
	if (state == SP_SLOT_RUNNING)
	{
		slot->run_id = current.run_id;
		strlcpy(slot->job, current.job, SP_JOB_NAME_LEN);
		slot->cancel = false;
		slot->idle = false;
	}
	else
	{
		memset(&slot->run_id, 0, sizeof(pg_uuid_t));
		slot->job[0] = '\0';
		slot->idle = (state == SP_SLOT_IDLE);
	}
	SpinLockRelease(&sp_shared->mutex);
}

/*
 * reset_session undoes what a job may have left in the session besides
 * settings (which the GUC nest level undoes): prepared statements,
 * cursors, temporary tables, LISTENs, cached sequence values.  Runs as
 * the executor's own role, inside the job's transaction.
 */
static void
reset_session(void)
{
	Oid			temp_ns;
	Oid			temp_toast_ns;

	DropAllPreparedStatements();
	Async_UnlistenAll();
	ResetSequenceCaches();
	GetTempNamespaceState(&temp_ns, &temp_toast_ns);
	if (OidIsValid(temp_ns))
		ResetTempTableNamespace();
}

/*
 * run_sql runs the job's command as the run's role, with the job's
 * timeout armed, and returns the number of rows the last statement
 * processed.  Settings changed by the job are undone before it returns;
 * the caller's SPI connection is used.
 */
static uint64
run_sql(void)
{
	Oid			role;
	Oid			save_uid;
	int			save_ctx;
	int			nest;
	int			ret;
	int			i;
	uint64		processed;

	role = get_role_oid(current.role, true);
	if (!OidIsValid(role))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" of the run does not exist",
						current.role)));

	GetUserIdAndSecContext(&save_uid, &save_ctx);
	nest = NewGUCNestLevel();
	SetUserIdAndSecContext(role, save_ctx | SECURITY_LOCAL_USERID_CHANGE);
	sp_job_role = role;
	(void) set_config_option("stellapack.tenant", current.tenant,
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("search_path", "\"$user\", public",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	for (i = 0; i < lengthof(engine_plan_off); i++)
	{
		const char *name = engine_plan_off[i];

		(void) set_config_option(name, GetConfigOptionResetString(name),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	}

	pgstat_report_activity(STATE_RUNNING, current.command);
	if (current.timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT,
							 (int) Min(current.timeout_ms, INT_MAX));
	ret = SPI_execute(current.command, false, 0);
	disable_timeout(STATEMENT_TIMEOUT, false);
	if (ret == SPI_ERROR_TRANSACTION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("a job cannot commit or roll back its transaction"),
				 errdetail("Each job runs in a transaction of its own.")));
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not run job \"%s\": %s", current.job,
						SPI_result_code_string(ret))));
	processed = SPI_processed;

	AtEOXact_GUC(false, nest);
	SetUserIdAndSecContext(save_uid, save_ctx);
	sp_job_role = InvalidOid;
	return processed;
}

/*
 * outcome_of names how a failed job ended: canceled when a cancel asked
 * for it, timed_out when its timeout fired, failed otherwise.
 */
static const char *
outcome_of(ErrorData *edata, TimestampTz started)
{
	bool		cancel;

	SpinLockAcquire(&sp_shared->mutex);
	cancel = sp_shared->slots[my_slot].cancel;
	SpinLockRelease(&sp_shared->mutex);
	if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
		return cancel ? "canceled" : "failed";
	if (cancel)
		return "canceled";
	if (current.timeout_ms > 0 &&
		TimestampDifferenceExceeds(started, GetCurrentTimestamp(),
								   (int) Min(current.timeout_ms - 1, INT_MAX)))
		return "timed_out";
	return "failed";
}

/*
 * run_job runs the job in "current" and records its outcome; when it can,
 * it claims the next job into *next in the same transaction and returns
 * true.
 */
static bool
run_job(SpClaim *next)
{
	volatile bool claimed = false;
	TimestampTz started = GetCurrentTimestamp();
	MemoryContext oldcxt = CurrentMemoryContext;
	ErrorData  *edata = NULL;

	MemoryContextReset(JobContext);
	deferred_lines = NIL;
	context_sent = false;
	sent_this_job = 0;
	set_slot(SP_SLOT_RUNNING);
	QueryCancelPending = false;

	PG_TRY();
	{
		uint64		processed;
		char		result[64];
		SpEnd		end;
		bool		in_slice;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		announce_reset();
		PortalHashTableDeleteAll();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());

		in_job = true;
		processed = run_sql();
		in_job = false;
		pgstat_report_activity(STATE_RUNNING, "stellapack: job bookkeeping");

		relay_sync();
		reset_session();
		snprintf(result, sizeof(result), "{\"rows\": " UINT64_FORMAT "}",
				 processed);
		in_slice = !TimestampDifferenceExceeds(slice_start,
											   GetCurrentTimestamp(),
											   SP_SLICE_MS);
		end = sp_job_succeeded(&current, NULL, result, deferred_lines,
							   in_slice, worker_name, next, NULL);
		/* not running any more cannot happen while we live: recount */
		if (end == SP_END_NOT_RUNNING)
			sp_engine_call("run_recount", &current.run_id, NULL);
		claimed = (end == SP_END_TOOK_NEXT) || claim_next(next);

		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
		announce_flush();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(JobContext);
		edata = CopyErrorData();
		FlushErrorState();
		in_job = false;
		sp_job_role = InvalidOid;
		disable_timeout(STATEMENT_TIMEOUT, false);
		QueryCancelPending = false;
		AbortCurrentTransaction();
		announce_reset();
		claimed = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	if (edata != NULL)
	{
		const char *outcome = outcome_of(edata, started);
		char	   *error = edata->message;

		if (strcmp(outcome, "timed_out") == 0)
			error = psprintf("the job ran longer than its timeout of "
							 INT64_FORMAT " ms", current.timeout_ms);
		else if (strcmp(outcome, "canceled") == 0)
			error = "the run was canceled";

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		relay_sync();
		reset_session();
		job_end(outcome, error, unpack_sql_state(edata->sqlerrcode), NULL);
		claimed = claim_next(next);
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
		announce_flush();
	}

	/* session state outside transactions: advisory locks, cursors */
	LockReleaseAll(USER_LOCKMETHOD, true);
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	return claimed;
}

static void
executor_detach(int code, Datum arg)
{
	SpSlot	   *slot;

	if (my_slot < 0 || sp_shared == NULL)
		return;
	slot = &sp_shared->slots[my_slot];
	SpinLockAcquire(&sp_shared->mutex);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->proc = NULL;
		slot->idle = false;
		slot->state = SP_SLOT_FREE;
	}
	SpinLockRelease(&sp_shared->mutex);
}

/*
 * sp_executor_main is the entry point of an executor.  Its argument is
 * its slot; the database and the relay queue's handle come in bgw_extra.
 * It loops: claim a job (or sleep until woken), run it, and go on with
 * the job it claimed at the end of the previous one.
 */
void
sp_executor_main(Datum arg)
{
	Oid			dboid;
	dsm_handle	handle;
	dsm_segment *seg;
	shm_mq	   *mq;
	SpClaim		next;
	bool		have_next = false;
	int			i;

	my_slot = DatumGetInt32(arg);
	sp_is_executor = true;
	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	memcpy(&handle, MyBgworkerEntry->bgw_extra + sizeof(Oid),
		   sizeof(dsm_handle));

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&sp_shared->mutex);
	my_launcher = sp_shared->launcher_pid;
	sp_shared->slots[my_slot].pid = MyProcPid;
	sp_shared->slots[my_slot].proc = MyProc;
	sp_shared->slots[my_slot].state = SP_SLOT_STARTING;
	SpinLockRelease(&sp_shared->mutex);
	before_shmem_exit(executor_detach, (Datum) 0);

	/* lines raised by jobs go to the relay */
	seg = dsm_attach(handle);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not attach to the relay's queue")));
	mq = dsm_segment_address(seg);
	shm_mq_set_sender(mq, MyProc);
	relay_mqh = shm_mq_attach(mq, seg, NULL);
	pq_redirect_to_shm_mq(seg, relay_mqh);
	relay_methods = PqCommMethods;
	counting_methods = *relay_methods;
	counting_methods.putmessage = counting_putmessage;
	counting_methods.putmessage_noblock = counting_putmessage_noblock;
	PqCommMethods = &counting_methods;

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	snprintf(worker_name, sizeof(worker_name), "executor %d (pid %d)",
			 my_slot + 1, MyProcPid);
	pgstat_report_appname("stellapack executor");

	/*
	 * The engine's statements are planned once and kept; planned while
	 * the queue tables are nearly empty (a new database, or just after a
	 * purge), they would scan whole tables once these have grown.  Only
	 * index paths serve them well, so the executor plans without sequential
	 * or bitmap scans, and without JIT, whose compilation costs more than
	 * these statements' work; jobs get the database's own settings back
	 * (see run_sql).
	 */
	for (i = 0; i < lengthof(engine_plan_off); i++)
		SetConfigOption(engine_plan_off[i], "off", PGC_SUSET, PGC_S_SESSION);
	JobContext = AllocSetContextCreate(TopMemoryContext, "stellapack job",
									   ALLOCSET_DEFAULT_SIZES);
	memset(&current, 0, sizeof(current));
	memset(&next, 0, sizeof(next));
	set_slot(SP_SLOT_IDLE);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();

		if (!have_next)
		{
			bool		exists;

			/* announce idleness before looking, so no wake-up is lost */
			ResetLatch(MyLatch);
			set_slot(SP_SLOT_IDLE);

			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			announce_reset();
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			exists = sp_extension_exists();
			if (exists)
				have_next = claim_next(&next);
			PopActiveSnapshot();
			SPI_finish();
			CommitTransactionCommand();
			announce_flush();
			pgstat_report_activity(STATE_IDLE, NULL);

			if (!have_next)
			{
				pgstat_report_stat(false);
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT |
								 WL_EXIT_ON_PM_DEATH,
								 exists ? 1000 : 5000, PG_WAIT_EXTENSION);
				continue;
			}
		}

		/* the claimed job becomes the current one */
		sp_claim_clear(&current);
		current = next;
		memset(&next, 0, sizeof(next));
		have_next = run_job(&next);
	}
}
