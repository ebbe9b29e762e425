/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The supervisor, the launcher, and the launcher's two duties besides
 *	  starting executors: relaying the lines that running jobs raise into
 *	  the run log, and the timers (retries that are due, pack timeouts,
 *	  expired leases).
 *
 * The supervisor is the static background worker.  It connects to no
 * database, waits quietly until the database named by stellapack.database
 * exists, then starts the launcher there and starts it again if it
 * stops; it never restarts in a loop.  The launcher waits quietly while
 * the extension is not created, recovers the jobs that lost their
 * executor (after a crash or a restart), keeps the executor pool full,
 * and sleeps on its latch: executors' queues, commits that changed its
 * timers, and executors that stopped all wake it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "stellapack.h"

#define SP_RELAY_BATCH		2000	/* lines stored in one transaction */

/* the launcher's view of one executor */
typedef struct SpExecutor
{
	BackgroundWorkerHandle *handle;
	dsm_segment *seg;
	shm_mq_handle *mqh;
	/* lines received and not stored yet, all of one run */
	bool		has_context;
	pg_uuid_t	run_id;
	char		job[SP_JOB_NAME_LEN];
	SpLogLine  *lines;
	int			nlines;
	int			maxlines;
	uint64		ack_pending;	/* sync token to ack after storing */
	StringInfoData notifies;	/* committed NOTIFYs to send: channel\0payload\0 */
} SpExecutor;

bool		sp_is_launcher = false;
static SpExecutor *executors = NULL;
static Oid	launcher_dboid = InvalidOid;
static MemoryContext RelayContext = NULL;
static bool start_warned = false;

/*
 * database_oid finds a database by name with a plain scan of pg_database:
 * a process connected to no database may read shared catalogs, but not
 * open their indexes.
 */
static Oid
database_oid(const char *name)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), name) == 0)
		{
			result = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * launcher_alive tells whether a launcher runs already (one started by a
 * supervisor that was terminated since).
 */
static bool
launcher_alive(void)
{
	pid_t		pid;

	SpinLockAcquire(&sp_shared->mutex);
	pid = sp_shared->launcher_pid;
	SpinLockRelease(&sp_shared->mutex);
	return pid != 0 && kill(pid, 0) == 0;
}

/*
 * sp_supervisor_main waits for the database to exist and keeps a launcher
 * running in it.
 */
void
sp_supervisor_main(Datum arg)
{
	bool		told = false;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("stellapack supervisor");

	for (;;)
	{
		Oid			dboid;

		CHECK_FOR_INTERRUPTS();
		StartTransactionCommand();
		dboid = database_oid(sp_database);
		CommitTransactionCommand();

		if (OidIsValid(dboid) && launcher_alive())
		{
			/* a launcher of an earlier supervisor still serves: let it */
		}
		else if (OidIsValid(dboid))
		{
			BackgroundWorker w;
			BackgroundWorkerHandle *handle;

			told = false;
			memset(&w, 0, sizeof(w));
			w.bgw_flags = BGWORKER_SHMEM_ACCESS |
				BGWORKER_BACKEND_DATABASE_CONNECTION;
			w.bgw_start_time = BgWorkerStart_RecoveryFinished;
			w.bgw_restart_time = BGW_NEVER_RESTART;
			snprintf(w.bgw_library_name, BGW_MAXLEN, "stellapack");
			snprintf(w.bgw_function_name, BGW_MAXLEN, "sp_launcher_main");
			snprintf(w.bgw_name, BGW_MAXLEN, "stellapack launcher");
			snprintf(w.bgw_type, BGW_MAXLEN, "stellapack launcher");
			w.bgw_main_arg = ObjectIdGetDatum(dboid);
			w.bgw_notify_pid = MyProcPid;
			if (RegisterDynamicBackgroundWorker(&w, &handle))
			{
				(void) WaitForBackgroundWorkerShutdown(handle);
				pfree(handle);
			}
			else
				ereport(WARNING,
						(errmsg("stellapack could not start its launcher"),
						 errhint("Raise max_worker_processes.")));
		}
		else if (!told)
		{
			ereport(LOG,
					(errmsg("stellapack is waiting for database \"%s\" to exist",
							sp_database)));
			told = true;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
						 WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * run_sql_in_xact runs one statement in a transaction of its own and
 * returns the first column of its first row as text (or NULL).
 */
static char *
run_sql_in_xact(const char *sql)
{
	char	   *result = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_execute(sql, false, 0) < 0)
		elog(ERROR, "could not run \"%s\"", sql);
	if (SPI_processed > 0 && SPI_tuptable != NULL)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			result = MemoryContextStrdup(TopMemoryContext, v);
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/*
 * recover_jobs fails or retries the SQL jobs that were running on an
 * executor that is gone (all of them when prefix is NULL).
 */
static void
recover_jobs(const char *prefix, const char *reason)
{
	StringInfoData sql;
	char	   *n;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT stellapack_internal.recover_executor_jobs(%s, %s)",
					 quote_literal_cstr(reason),
					 prefix ? quote_literal_cstr(prefix) : "NULL");
	n = run_sql_in_xact(sql.data);
	if (n != NULL && strcmp(n, "0") != 0)
		ereport(LOG,
				(errmsg("stellapack recovered %s job(s): %s", n, reason)));
	pfree(sql.data);
}

/*
 * store_lines stores the lines an executor sent since the last time, in a
 * transaction of their own (one run per transaction, so that the relay
 * never holds one run's sequence lock while waiting for another's), then
 * acknowledges a pending sync.  A failure is reported to the server log
 * and the lines are dropped; the relay goes on.
 */
static void
store_lines(int i)
{
	SpExecutor *ex = &executors[i];

	if (ex->nlines > 0 && ex->has_context)
	{
		MemoryContext old = CurrentMemoryContext;

		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			sp_log_store(&ex->run_id, ex->lines, ex->nlines);
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(old);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			ereport(WARNING,
					(errmsg("stellapack could not store %d log line(s) of job \"%s\": %s",
							ex->nlines, ex->job, edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	ex->nlines = 0;

	if (ex->ack_pending > 0)
	{
		PGPROC	   *proc;

		SpinLockAcquire(&sp_shared->mutex);
		sp_shared->slots[i].sync_ack = ex->ack_pending;
		proc = sp_shared->slots[i].proc;
		SpinLockRelease(&sp_shared->mutex);
		ex->ack_pending = 0;
		if (proc != NULL)
			SetLatch(&proc->procLatch);
	}
}

static void
add_line(SpExecutor *ex, const char *level, const char *stream,
		 const char *message, const char *data)
{
	SpLogLine  *l;

	if (ex->nlines == ex->maxlines)
	{
		ex->maxlines = ex->maxlines ? ex->maxlines * 2 : 64;
		ex->lines = ex->lines ?
			repalloc(ex->lines, sizeof(SpLogLine) * ex->maxlines) :
			MemoryContextAlloc(TopMemoryContext,
							   sizeof(SpLogLine) * ex->maxlines);
	}
	l = &ex->lines[ex->nlines++];
	l->job = ex->job;
	l->level = level;
	l->stream = stream;
	l->message = MemoryContextStrdup(RelayContext, message);
	l->data = data ? MemoryContextStrdup(RelayContext, data) : NULL;
}

/*
 * error_line turns a NOTICE, WARNING or ERROR message of the protocol into
 * a log line: its level, its text, and the SQLSTATE, detail and hint as
 * data.
 */
static void
error_line(SpExecutor *ex, const char *data, Size len)
{
	StringInfoData msg;
	StringInfoData js;
	ErrorData	edata;
	const char *level;

	initStringInfo(&msg);
	appendBinaryStringInfo(&msg, data, len);
	memset(&edata, 0, sizeof(edata));
	pq_parse_errornotice(&msg, &edata);

	if (edata.elevel >= ERROR)
		level = "error";
	else if (edata.elevel >= WARNING)
		level = "warning";
	else if (edata.elevel >= NOTICE)
		level = "notice";
	else if (edata.elevel >= INFO || edata.elevel == LOG)
		level = "info";
	else
		level = "debug";

	initStringInfo(&js);
	appendStringInfo(&js, "{\"sqlstate\":\"%s\"",
					 unpack_sql_state(edata.sqlerrcode ? edata.sqlerrcode :
									  ERRCODE_SUCCESSFUL_COMPLETION));
	if (edata.detail)
	{
		appendStringInfoString(&js, ",\"detail\":");
		escape_json(&js, edata.detail);
	}
	if (edata.hint)
	{
		appendStringInfoString(&js, ",\"hint\":");
		escape_json(&js, edata.hint);
	}
	appendStringInfoChar(&js, '}');
	add_line(ex, level, "log", edata.message ? edata.message : "", js.data);
}

/*
 * send_notifies sends, in one transaction, the notifications an executor
 * handed over after its commits.
 */
static void
send_notifies(SpExecutor *ex)
{
	if (ex->notifies.data == NULL || ex->notifies.len == 0)
		return;
	PG_TRY();
	{
		sp_notify_in_own_xact(ex->notifies.data,
							  ex->notifies.data + ex->notifies.len);
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	resetStringInfo(&ex->notifies);
	if (ex->notifies.maxlen > 1024 * 1024)
	{
		pfree(ex->notifies.data);
		ex->notifies.data = NULL;
	}
}

/*
 * relay_drain reads what executor i has sent, without waiting, storing
 * lines in batches.  Returns false when the queue is detached.
 */
static bool
relay_drain(int i)
{
	SpExecutor *ex = &executors[i];

	for (;;)
	{
		Size		nbytes;
		void	   *raw;
		const char *data;
		shm_mq_result res;

		res = shm_mq_receive(ex->mqh, &nbytes, &raw, true);
		if (res == SHM_MQ_WOULD_BLOCK)
			break;
		if (res == SHM_MQ_DETACHED)
		{
			store_lines(i);
			return false;
		}
		if (nbytes < 1)
			continue;
		data = (const char *) raw + 1;
		nbytes--;

		switch (((const char *) raw)[0])
		{
			case SP_MSG_CONTEXT:
				store_lines(i);
				if (nbytes > UUID_LEN)
				{
					memcpy(ex->run_id.data, data, UUID_LEN);
					strlcpy(ex->job, data + UUID_LEN,
							Min(SP_JOB_NAME_LEN, nbytes - UUID_LEN + 1));
					ex->has_context = true;
				}
				break;
			case 'N':
			case 'E':
				error_line(ex, data, nbytes);
				break;
			case SP_MSG_LOG:
				{
					const char *level = data;
					const char *js = level + strlen(level) + 1;
					const char *message = js + strlen(js) + 1;

					add_line(ex, MemoryContextStrdup(RelayContext, level),
							 "log", message, js[0] ? js : NULL);
					break;
				}
			case SP_MSG_NOTIFY:
				if (ex->notifies.data == NULL)
				{
					MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

					initStringInfo(&ex->notifies);
					MemoryContextSwitchTo(old);
				}
				appendBinaryStringInfo(&ex->notifies, data, nbytes);
				break;
			case SP_MSG_SYNC:
				if (nbytes >= sizeof(uint64))
					memcpy(&ex->ack_pending, data, sizeof(uint64));
				store_lines(i);
				break;
			default:
				break;
		}
		if (ex->nlines >= SP_RELAY_BATCH)
			store_lines(i);
	}
	store_lines(i);
	send_notifies(ex);
	return true;
}

/*
 * start_executor gives slot i a fresh queue and starts an executor on it.
 */
static void
start_executor(int i)
{
	SpExecutor *ex = &executors[i];
	BackgroundWorker w;
	shm_mq	   *mq;
	dsm_handle	h;

	ex->seg = dsm_create(SP_MQ_SIZE, 0);
	dsm_pin_mapping(ex->seg);
	mq = shm_mq_create(dsm_segment_address(ex->seg), SP_MQ_SIZE);
	shm_mq_set_receiver(mq, MyProc);
	ex->mqh = shm_mq_attach(mq, ex->seg, NULL);
	ex->has_context = false;
	ex->nlines = 0;
	ex->ack_pending = 0;

	SpinLockAcquire(&sp_shared->mutex);
	sp_shared->slots[i].sync_ack = 0;
	SpinLockRelease(&sp_shared->mutex);

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "stellapack");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "sp_executor_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "stellapack executor %d", i + 1);
	snprintf(w.bgw_type, BGW_MAXLEN, "stellapack executor");
	w.bgw_main_arg = Int32GetDatum(i);
	memcpy(w.bgw_extra, &launcher_dboid, sizeof(Oid));
	h = dsm_segment_handle(ex->seg);
	memcpy(w.bgw_extra + sizeof(Oid), &h, sizeof(dsm_handle));
	w.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&w, &ex->handle))
	{
		ex->handle = NULL;
		dsm_detach(ex->seg);
		ex->seg = NULL;
		ex->mqh = NULL;
		if (!start_warned)
			ereport(WARNING,
					(errmsg("stellapack could not start executor %d", i + 1),
					 errhint("Raise max_worker_processes.")));
		start_warned = true;
	}
}

/*
 * stop_executor forgets slot i's executor once it has stopped: what it
 * sent is stored, its queue detached, and the jobs it was running are
 * retried or failed.
 */
static void
reap_executor(int i, const char *reason)
{
	SpExecutor *ex = &executors[i];
	char		prefix[32];

	if (ex->mqh != NULL)
		(void) relay_drain(i);
	send_notifies(ex);
	if (ex->seg != NULL)
		dsm_detach(ex->seg);
	if (ex->handle != NULL)
		pfree(ex->handle);
	ex->seg = NULL;
	ex->mqh = NULL;
	ex->handle = NULL;
	snprintf(prefix, sizeof(prefix), "executor %d (", i + 1);
	if (reason != NULL)
		recover_jobs(prefix, reason);
}

/*
 * stop_all_executors terminates the pool and waits for it to stop.
 */
static void
stop_all_executors(void)
{
	int			i;

	for (i = 0; i < sp_shared->nslots; i++)
		if (executors[i].handle != NULL)
			TerminateBackgroundWorker(executors[i].handle);
	for (i = 0; i < sp_shared->nslots; i++)
		if (executors[i].handle != NULL)
		{
			(void) WaitForBackgroundWorkerShutdown(executors[i].handle);
			reap_executor(i, NULL);
		}
}

/*
 * stop_leftovers terminates executors started by an earlier launcher,
 * which would otherwise run on with a relay that is gone.
 */
static void
stop_leftovers(void)
{
	int			i;
	int			waited;

	for (waited = 0; waited < 100; waited++)
	{
		bool		any = false;

		SpinLockAcquire(&sp_shared->mutex);
		for (i = 0; i < sp_shared->nslots; i++)
		{
			pid_t		pid = sp_shared->slots[i].pid;

			if (pid != 0)
			{
				any = true;
				kill(pid, SIGTERM);
			}
		}
		SpinLockRelease(&sp_shared->mutex);
		if (!any)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
						 WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * recover_orphans ends the SQL jobs marked running on an executor that is
 * not one of the pool's live ones, such as jobs restored from a dump that
 * was taken while they ran.
 */
static void
recover_orphans(void)
{
	StringInfoData sql;
	int			i;
	char	   *n;

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "SET LOCAL lock_timeout = '200ms';"
						   " SELECT stellapack_internal.recover_orphans(ARRAY[''");
	SpinLockAcquire(&sp_shared->mutex);
	for (i = 0; i < sp_shared->nslots; i++)
		if (sp_shared->slots[i].pid != 0)
			appendStringInfo(&sql, ", 'executor %d (pid %d)'", i + 1,
							 (int) sp_shared->slots[i].pid);
	SpinLockRelease(&sp_shared->mutex);
	appendStringInfoString(&sql, "])");
	n = run_sql_in_xact(sql.data);
	if (n != NULL && strcmp(n, "0") != 0)
		ereport(LOG,
				(errmsg("stellapack recovered %s job(s) of executors that are gone", n)));
	pfree(sql.data);
}

static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&sp_shared->mutex);
	if (sp_shared->launcher_pid == MyProcPid)
	{
		sp_shared->launcher = NULL;
		sp_shared->launcher_pid = 0;
	}
	SpinLockRelease(&sp_shared->mutex);
}

/*
 * sp_launcher_main serves one database: recovery, the executor pool, the
 * relay and the timers.
 */
void
sp_launcher_main(Datum arg)
{
	volatile bool recovered = false;
	TimestampTz next_tick = 0;
	int			i;

	launcher_dboid = DatumGetObjectId(arg);
	sp_is_launcher = true;
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(launcher_dboid, InvalidOid, 0);
	pgstat_report_appname("stellapack launcher");
	/* the engine's statements are small: compiling them costs more */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_SESSION);

	SpinLockAcquire(&sp_shared->mutex);
	sp_shared->launcher = MyProc;
	sp_shared->launcher_pid = MyProcPid;
	SpinLockRelease(&sp_shared->mutex);
	before_shmem_exit(launcher_detach, (Datum) 0);

	RelayContext = AllocSetContextCreate(TopMemoryContext, "stellapack relay",
										 ALLOCSET_DEFAULT_SIZES);
	executors = MemoryContextAllocZero(TopMemoryContext,
									   sizeof(SpExecutor) * sp_shared->nslots);
	stop_leftovers();
	ereport(LOG, (errmsg("stellapack launcher started")));

	for (;;)
	{
		bool		exists;
		long		sleep_ms = 1000;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		ResetLatch(MyLatch);

		StartTransactionCommand();
		exists = sp_extension_exists();
		CommitTransactionCommand();

		if (!exists)
		{
			if (recovered)
			{
				/* the extension was dropped: stop the pool, and remove the
				 * pg_cron jobs of its schedules, which would fail from now */
				stop_all_executors();
				(void) run_sql_in_xact(
					"DO $$BEGIN IF to_regclass('cron.job') IS NOT NULL THEN"
					" PERFORM cron.unschedule(jobid) FROM cron.job"
					" WHERE jobname LIKE 'stellapack:%' AND"
					" database = current_database(); END IF; END$$");
				recovered = false;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
							 WL_EXIT_ON_PM_DEATH, 5000, PG_WAIT_EXTENSION);
			continue;
		}

		if (!recovered)
		{
			recover_jobs(NULL, "the executor running the job stopped "
						 "(server or launcher restart)");
			recovered = true;
			next_tick = 0;
		}

		/* the pool: reap stopped executors, start missing ones */
		for (i = 0; i < sp_shared->nslots; i++)
		{
			SpExecutor *ex = &executors[i];
			pid_t		pid;

			if (ex->handle != NULL &&
				GetBackgroundWorkerPid(ex->handle, &pid) == BGWH_STOPPED)
				reap_executor(i, "the executor running the job stopped");
			if (ex->handle == NULL)
				start_executor(i);
		}

		/* the relay, and what other backends left to announce */
		MemoryContextReset(RelayContext);
		for (i = 0; i < sp_shared->nslots; i++)
			if (executors[i].mqh != NULL)
				(void) relay_drain(i);
		while (sp_announce_drain())
			;

		/* the timers */
		now = GetCurrentTimestamp();
		SpinLockAcquire(&sp_shared->mutex);
		if (sp_shared->tick_requested)
			next_tick = 0;
		sp_shared->tick_requested = false;
		SpinLockRelease(&sp_shared->mutex);
		if (now >= next_tick)
		{
			char	   *nxt = NULL;
			MemoryContext oldcxt = CurrentMemoryContext;

			/* a deadlock or a conflict is reported and tried again soon */
			PG_TRY();
			{
				recover_orphans();
				nxt = run_sql_in_xact("SET LOCAL lock_timeout = '200ms';"
									  " SELECT stellapack_internal.tick()");
			}
			PG_CATCH();
			{
				MemoryContextSwitchTo(oldcxt);
				EmitErrorReport();
				FlushErrorState();
				AbortCurrentTransaction();
				nxt = MemoryContextStrdup(TopMemoryContext,
										  timestamptz_to_str(
											  TimestampTzPlusMilliseconds(now, 100)));
			}
			PG_END_TRY();

			/* at least once a second: leases are reaped on time without
			 * every claim and heartbeat having to wake the launcher */
			if (nxt == NULL)
				next_tick = TimestampTzPlusMilliseconds(now, 1000);
			else
			{
				next_tick = DatumGetTimestampTz(
					DirectFunctionCall3(timestamptz_in, CStringGetDatum(nxt),
										ObjectIdGetDatum(InvalidOid),
										Int32GetDatum(-1)));
				pfree(nxt);
				next_tick = Min(next_tick,
								TimestampTzPlusMilliseconds(now, 1000));
			}
			now = GetCurrentTimestamp();
		}
		if (next_tick > now)
			sleep_ms = Min(sleep_ms,
						   TimestampDifferenceMilliseconds(now, next_tick) + 1);
		else
			sleep_ms = 1;

		pgstat_report_stat(false);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT |
						 WL_EXIT_ON_PM_DEATH, sleep_ms, PG_WAIT_EXTENSION);
	}
}
